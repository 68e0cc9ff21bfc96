"""Benchmark: how many requests per second the platform's pages serve, next to a bare Django view.

Starts gunicorn as production does (deploy/gunicorn.conf.py, production settings, gthread with 2 workers and
2 threads unless told otherwise) against MariaDB and Redis, then runs ApacheBench (`ab -c 8`, `X-Forwarded-
Proto: https` as nginx sends it; keep-alive) several times per page and prints the median requests per second, the
median p95 in ms, the ratio to the bare view measured in the same run, and the queries each page takes
(counted in-process, once with 3 stores and once with `--many` more).

    .venv/bin/python tests/benchmarks/pages.py [--runs 3] [--seconds 4] [--many 1000]

Pages: a bare Django view (HttpResponse, no template, no query: the floor), the marketing home served from
the page cache and rendered afresh (PAGE_CACHE_SECONDS=0 in a second gunicorn), the customer dashboard
with 3 stores, the staff index and the store changelist (a super admin; two-factor sign-in is not asked for
here, which the figure does not depend on).

Needs MariaDB and Redis as the tests do, and `ab` (Debian's apache2-utils; installed when missing and root).
Uses its own MariaDB database `shophosting_bench_pages` (migrated on first use, a few minutes; BENCH_DATABASE
names another) and Redis database 11 (`BENCH_REDIS_URL` chooses another). Nothing is sent anywhere but 127.0.0.1.
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PORT_CACHED, PORT_UNCACHED = 18731, 18732
HOST = "bench.shophosting.test"
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "shophosting_bench_pages")
ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "tests.benchmarks.pages_settings",
    "DJANGO_SECRET_KEY": "bench-only-" + "x" * 50,
    "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{BENCH_DATABASE}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
    "PLATFORM_DOMAIN": "shophosting.test",
    "CREDENTIALS_KEY": "gBo9k6DlouK83RNGJS0SIQQTNTor9HIowlzu2RbYRO0=",
    "DJANGO_ALLOWED_HOSTS": HOST,
    "SITE_URL": f"https://{HOST}",
    "STAFF_TWO_FACTOR_REQUIRED": "false",
    "LOG_DIR": str(ROOT / "var" / "bench" / "log"),
    "SECURITY_LOG_PATH": str(ROOT / "var" / "bench" / "security.log"),
    "DOCKER_HOST": "unix:///nonexistent/bench.sock",  # the pages must not wait on an engine
}


def ensure_ab() -> str:
    if shutil.which("ab") is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "apache2-utils"], check=True, capture_output=True)
    if shutil.which("ab") is None:
        sys.exit("ApacheBench (`ab`, Debian's apache2-utils) is needed")
    return shutil.which("ab")


def seed(many: int) -> dict:
    """The catalogue, the marketing site, a customer with 3 active stores and a super admin; their sessions.
    Also counts each page's queries in-process with 3 stores and with `many` stores."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # production's manifest storage needs it
    from accounts.models import User
    from accounts.roles import Role
    from accounts.services import customer_create, staff_user_ensure
    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed
    from cms.services import site_seed
    from stores.models import Store
    from stores.services import store_create

    plan_catalogue_seed()
    site_seed()
    from wagtail.models import Site

    Site.objects.filter(is_default_site=True).update(hostname=HOST, port=443)
    plan = Plan.objects.get(slug="woocommerce-commerce-core")
    customer = User.objects.filter(email="bench-customer@example.com").first() or customer_create(
        email="bench-customer@example.com", password="bench-password-1"
    )
    for n in range(customer.stores.count(), 3):
        store_create(customer=customer, plan=plan, domain=f"bench-shop-{n}.test", site_title=f"Bench Shop {n}")
    Store.objects.filter(customer=customer).update(status=Store.Status.ACTIVE)
    staff, _ = staff_user_ensure(email="bench-staff@example.com", role=Role.SUPER_ADMIN, password="bench staff 1")

    sessions, queries = {}, {}
    for who, user in (("customer", customer), ("staff", staff)):
        client = Client(HTTP_HOST=HOST, HTTP_X_FORWARDED_PROTO="https")
        client.force_login(user)
        sessions[who] = client.cookies["sessionid"].value

    def count(path: str, who: str | None, cached: bool) -> int:
        client = Client(HTTP_HOST=HOST, HTTP_X_FORWARDED_PROTO="https")
        if who:
            client.cookies["sessionid"] = sessions[who]
        with override_settings(PAGE_CACHE_SECONDS=300 if cached else 0):
            client.get(path)  # warm: the first request loads what every later one finds cached
            with CaptureQueriesContext(connection) as captured:
                response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return len(captured)

    for label, path, who, cached in PAGES:
        queries[label] = [count(path, who, cached)]
    other = User.objects.filter(email="bench-crowd@example.com").first() or customer_create(
        email="bench-crowd@example.com", password="bench-password-1"
    )
    for n in range(other.stores.count(), many):
        store_create(customer=other, plan=plan, domain=f"bench-crowd-{n}.test", site_title=f"Crowd {n}")
    Store.objects.filter(customer=other).update(status=Store.Status.ACTIVE)
    for label, path, who, cached in PAGES:
        queries[label].append(count(path, who, cached))
    return {"sessions": sessions, "queries": queries, "stores": Store.objects.count()}


# (label, path, signed in as, served by the gunicorn with the page cache)
PAGES = [
    ("bare Django view", "/bench/bare/", None, True),
    ("marketing home, cached", "/", None, True),
    ("marketing home, rendered", "/", None, False),
    ("customer dashboard, 3 stores", "/accounts/", "customer", True),
    ("staff index", "/admin/", "staff", True),
    ("store changelist", "/admin/stores/store/", "staff", True),
]


def gunicorn(port: int, extra_env: dict) -> subprocess.Popen:
    env = {**os.environ, **ENVIRONMENT, **extra_env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    env.setdefault("GUNICORN_WORKERS", "2")
    env.setdefault("GUNICORN_THREADS", "2")
    process = subprocess.Popen(
        # Production's config, but no worker recycling (max_requests 2000): a recycled worker's first request
        # imports the project again, a stall of seconds that would be counted as the page's.
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--max-requests",
            "0",
            "shophosting.wsgi",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(ROOT / "var" / "bench" / f"gunicorn-{port}.log", "w"),  # noqa: SIM115 - lives with the process
        start_new_session=True,
    )
    # The master listens at once; each worker imports the project on its first request. Ask until both
    # have answered, so the timed runs start warm.
    deadline, answered = time.monotonic() + 60, 0
    while time.monotonic() < deadline and answered < 8:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", "/bench/bare/", headers={"Host": HOST, "X-Forwarded-Proto": "https"})
            answered += connection.getresponse().status == 200
        except OSError:
            if process.poll() is not None:
                sys.exit(f"gunicorn on {port} exited; see var/bench/gunicorn-{port}.log")
            time.sleep(0.2)
        finally:
            connection.close()
    if answered < 8:
        sys.exit(f"gunicorn on {port} did not answer within 60 s; see var/bench/gunicorn-{port}.log")
    return process


def warm(port: int, path: str, session: str | None, requests: int = 8) -> None:
    """A few requests, not timed: a second of `ab` may complete none on a slow page of a loaded machine."""
    headers = {"Host": HOST, "X-Forwarded-Proto": "https", **({"Cookie": f"sessionid={session}"} if session else {})}
    for _ in range(requests):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("GET", path, headers=headers)
            status = connection.getresponse().status
        finally:
            connection.close()
        if status != 200:
            sys.exit(f"{path} answered {status} before the timed runs")


def ab(binary: str, port: int, path: str, session: str | None, seconds: float) -> tuple[float, float]:
    command = [binary, "-k", "-q", "-c", "8", "-t", str(seconds), "-n", "1000000", "-H", "X-Forwarded-Proto: https"]
    command += ["-H", f"Host: {HOST}"]
    if session:
        command += ["-C", f"sessionid={session}"]
    done = subprocess.run([*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True)
    output = done.stdout
    if "Requests per second" not in output:
        sys.exit(f"ab on {path} failed:\n{output}\n{done.stderr}")
    rate = float(re.search(r"Requests per second:\s+([\d.]+)", output).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", output).group(1))
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
    if failed or non_2xx:
        sys.exit(f"{path}: {failed} failed, {non_2xx.group(1) if non_2xx else 0} not 2xx:\n{output}")
    p95 = float(re.search(r"^\s*95%\s+(\d+)", output, re.MULTILINE).group(1))
    return rate, p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--many", type=int, default=1000, help="stores for the second query count")
    args = parser.parse_args()
    (ROOT / "var" / "bench" / "log").mkdir(parents=True, exist_ok=True)
    import MySQLdb

    MySQLdb.connect(host="127.0.0.1", user="root").cursor().execute(
        f"CREATE DATABASE IF NOT EXISTS {BENCH_DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    os.environ.update(ENVIRONMENT)
    binary = ensure_ab()
    seeded = seed(args.many)
    servers = [
        gunicorn(PORT_CACHED, {"PAGE_CACHE_SECONDS": "300"}),
        gunicorn(PORT_UNCACHED, {"PAGE_CACHE_SECONDS": "0"}),
    ]
    try:
        figures = {label: [] for label, *_ in PAGES}
        for _label, path, who, cached in PAGES:  # a first, untimed round: each page's first render is slower
            warm(PORT_CACHED if cached else PORT_UNCACHED, path, seeded["sessions"].get(who))
        for _ in range(args.runs):  # interleaved, so a slow moment of the machine hits every page alike
            for label, path, who, cached in PAGES:
                port = PORT_CACHED if cached else PORT_UNCACHED
                session = seeded["sessions"][who] if who else None
                figures[label].append(ab(binary, port, path, session, args.seconds))
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
    bare = statistics.median(rate for rate, _ in figures["bare Django view"])
    print(
        f"gunicorn gthread, {os.environ.get('GUNICORN_WORKERS', 2)} workers x {os.environ.get('GUNICORN_THREADS', 2)}"
        f" threads; ab -c 8 for {args.seconds} s; median of {args.runs} runs; {seeded['stores']} stores in the database"
    )
    print(f"{'page':32} {'req/s':>8} {'p95 ms':>7} {'x bare':>7} {'queries (3 stores / many)':>27}")
    for label, *_ in PAGES:
        rate = statistics.median(r for r, _ in figures[label])
        p95 = statistics.median(p for _, p in figures[label])
        few, many = seeded["queries"][label]
        print(f"{label:32} {rate:8.0f} {p95:7.0f} {rate / bare:7.2f} {f'{few} / {many}':>27}")


if __name__ == "__main__":
    main()
