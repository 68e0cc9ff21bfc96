"""Real RQ workers on the test Redis: a separate `manage.py rqworker` process, or a SimpleWorker that
drains one queue in the test's own process (no fork, so it sees the test's uncommitted data)."""

import os
import subprocess
import sys
import time

import pytest

from tests.plugins import ROOT


@pytest.fixture(scope="module")
def rq_worker_process():
    """A real `manage.py rqworker` on the test Redis, so the worker heartbeat is genuine.

    Module-scoped: it must be gone before provisioning tests enqueue jobs, which it would otherwise take
    (it runs outside the test's transaction)."""
    from rq import Worker

    from shophosting.health import _redis_connection

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shophosting.settings.test"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "default", "provisioning", "backups", "pool", "--with-scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(w.pid == process.pid for w in Worker.all(connection=_redis_connection())):
            break
        if process.poll() is not None:
            raise RuntimeError(f"rqworker exited: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("rqworker did not register within 30 s")
    yield process
    process.terminate()
    process.wait(timeout=15)


def _burst(queue: str) -> None:
    import django_rq
    from rq import SimpleWorker

    django_rq.get_worker(queue, worker_class=SimpleWorker).work(burst=True)


@pytest.fixture
def run_provisioning_worker():
    """Drains the `provisioning` queue with a real RQ worker in this process (SimpleWorker: no fork,
    so it sees the test's data)."""
    return lambda: _burst("provisioning")


@pytest.fixture
def run_backups_worker(restic_repository):
    """Drains the `backups` queue with a real RQ worker in this process (SimpleWorker, like provisioning)."""
    return lambda: _burst("backups")


@pytest.fixture
def run_pool_worker():
    """Drains the warm pool's `pool` queue in this process, like run_provisioning_worker."""
    return lambda: _burst("pool")
