"""Benchmark: one round of store-care checks for 200 stores, against real HTTP servers on loopback (one per
store, answering like WordPress: the title, the login form, no WooCommerce) and the real Docker engine (which
holds no containers for these stores, so every containers check asks it and finds them missing).

The rounds run one after another in one process: what a single `default` worker gets through. The figure to
compare is CARE_CHECK_INTERVAL_MINUTES (5 minutes): a round of every store must fit in it many times over.
Everything is written inside one transaction that is rolled back at the end; nothing stays behind.

    DATABASE_URL=mysql://root@127.0.0.1:3306/test_sh_<name> .venv/bin/python tests/benchmarks/care.py [--stores 200]

Needs a migrated database (a copy of the test database is fine), Redis, and the Docker engine (under the
shared lock: `flock /tmp/docker-tests.lock ...`).
"""

import argparse
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "shophosting.settings.test"
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
os.environ["STORE_OBJECT_PREFIX"] = "shbench-store"
FIRST_PORT = 23100


class FakeStore(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):  # noqa: N802 - http.server's name
        title = self.server.title
        if self.path == "/":
            status, body = 200, f"<html><head><title>{title} – Just another shop</title></head><body>Shop</body></html>"
        elif self.path == "/wp-login.php":
            status, body = 200, '<form><input name="log"><input name="pwd"></form>'
        else:  # the Store API without WooCommerce: WordPress's REST 404
            status, body = 404, '{"code":"rest_no_route","message":"No route was found"}'
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=200)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed
    from provisioning.care.services import store_checks_run
    from stores.models import Host, Store
    from stores.services import store_create, store_transition

    servers = []
    with transaction.atomic():
        plan_catalogue_seed()
        plan = Plan.objects.get(slug="woocommerce-commerce-core")
        host = Host.objects.create(
            name="care-bench", docker_url=settings.DOCKER_HOST, memory_capacity_mb=10**6, cpu_capacity=100
        )
        customer = get_user_model().objects.create_user(email="care-bench@example.com", password="x" * 20)
        stores = []
        for n in range(args.stores):
            store = store_create(customer=customer, plan=plan, domain=f"care-bench-{n}.test", site_title=f"Shop {n}")
            for to in ("queued", "provisioning", "active"):
                store_transition(store_id=store.pk, to=to)
            Store.objects.filter(pk=store.pk).update(host=host, port=FIRST_PORT + n)
            server = ThreadingHTTPServer(("127.0.0.1", FIRST_PORT + n), FakeStore)
            server.title = f"Shop {n}"
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
            stores.append(store.pk)

        durations, outcomes = [], {}
        started = time.monotonic()
        for store_id in stores:
            round_started = time.monotonic()
            found = store_checks_run(store_id=store_id)
            durations.append(time.monotonic() - round_started)
            outcomes[found.outcome] = outcomes.get(found.outcome, 0) + 1
        total = time.monotonic() - started
        sample = list(found.results.all())  # read before the rollback
        transaction.set_rollback(True)

    for server in servers:
        server.shutdown()
        server.server_close()
    interval = settings.CARE_CHECK_INTERVAL_MINUTES * 60
    print(f"{args.stores} stores, one worker: {total:.1f} s for every round (interval {interval} s)")
    print(f"per round: median {statistics.median(durations) * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms")
    print(f"outcomes: {outcomes}")
    print("last round: " + ", ".join(f"{r.check_name}={r.result} {r.latency_ms} ms" for r in sample))


if __name__ == "__main__":
    main()
