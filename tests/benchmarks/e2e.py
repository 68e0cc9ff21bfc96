"""The end-to-end mode of tests/benchmarks/provision.py: a paying customer's wait, from the signed
`checkout.session.completed` webhook to their store's front page through nginx on its platform name.

A whole platform runs as separate processes, as in production: gunicorn (the web tier, where the webhook
lands), RQ workers (`manage.py rqworker provisioning default`) and an nginx of its own on 127.0.0.1:18190
that routes the stores' vhosts. Stripe's API is a local HTTP server in this process that answers from
tests/stripe_fake.py's in-memory objects, the only outside system faked, and only at its HTTP boundary.
Settings: tests/benchmarks/e2e_settings.py (its own database, Redis index, nginx prefix and store prefix).

Each order: a signup with its Checkout session (not timed: the customer is on Stripe's page meanwhile),
Stripe completing the checkout, then the clock starts and the signed event is POSTed to the real webhook
endpoint; the clock stops when nginx answers 200 with the store's title for its platform name.
"""

import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "var" / "bench" / "e2e"
WEB_PORT = 18191
WEBHOOK_SECRET = "whsec_bench_end_to_end_secret"


class StripeServer:
    """tests/stripe_fake.StripeFake's answers over real HTTP on a loopback port, for the platform's processes."""

    def __init__(self):
        from tests.stripe_fake import StripeFake

        class _NoMock:  # StripeFake registers itself with `responses`; here a server calls it instead
            def add_passthru(self, *args):
                pass

            def add_callback(self, *args, **kwargs):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.fake = StripeFake(_NoMock(), self.base)
        # Ids unique across runs: the benchmark's database keeps the dj-stripe mirror of earlier ones.
        self.fake._ids = itertools.count(int(time.time() * 1000) % 10**12)
        self.lock = threading.Lock()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = SimpleNamespace(method=self.command, url=owner.base + self.path, body=body)
                with owner.lock:
                    status, _headers, text = owner.fake._dispatch(request)
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Platform:
    """nginx, gunicorn and `workers` RQ workers, started here and stopped together."""

    def __init__(self, *, stripe_base: str, workers: int, pool_worker: bool = False):
        self.pool_worker = pool_worker
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.benchmarks.e2e_settings",
            "BENCH_STRIPE_API_HOST": stripe_base,
        }
        self.processes: list[subprocess.Popen] = []
        self.workers = workers

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(BENCH_DIR / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def start(self) -> None:
        from django.conf import settings

        from tests.plugins.nginx import nginx_test_conf

        prefix = Path(settings.NGINX_SITES_DIR).parent
        for directory in ("sites", "acme", "tmp", "firewall"):
            (prefix / directory).mkdir(parents=True, exist_ok=True)
        for stale in (prefix / "sites").glob("*.conf"):
            stale.unlink()
        (prefix / "nginx.conf").write_text(nginx_test_conf(prefix=prefix, listen=settings.NGINX_LISTEN_HTTP))
        subprocess.run([*settings.NGINX_COMMAND, "-s", "quit"], capture_output=True)
        time.sleep(0.2)
        subprocess.run(settings.NGINX_COMMAND, check=True)
        python = sys.executable
        self._spawn(
            "web",
            [python, "-m", "gunicorn", "-b", f"127.0.0.1:{WEB_PORT}", "-w", "2", "--threads", "2", "shophosting.wsgi"],
        )
        # --with-scheduler, as production's units run every worker: a job whose host has no free slot goes back
        # on its queue due a few seconds later (provisioning/host_slots.py), and only a scheduler moves it back.
        for n in range(self.workers):
            self._spawn(f"worker-{n}", [python, "manage.py", "rqworker", "provisioning", "default", "--with-scheduler"])
        # Every new store's first backup (backups.first_backup), FIRST_BACKUP_DELAY_SECONDS after it goes live as
        # in production (e2e_settings), on a worker of its own; a teardown waits for one that runs.
        self._backup_repository()
        self._spawn("worker-backups", [python, "manage.py", "rqworker", "backups", "--with-scheduler"])
        if self.pool_worker:  # the warm pool's builds, on their own worker at Nice=10, as its unit runs it
            pool_worker = [python, "manage.py", "rqworker", "pool", "--with-scheduler"]
            self._spawn("worker-pool", ["nice", "-n", "10", *pool_worker])
        self._wait_web()

    @staticmethod
    def _backup_repository() -> None:
        from django.conf import settings

        from backups import restic

        password = Path(settings.RESTIC_PASSWORD_FILE)
        password.parent.mkdir(parents=True, exist_ok=True)
        if not password.exists():
            password.write_text(f"bench only {uuid.uuid4().hex}\n")
        restic.repository_init()

    def _wait_web(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=30)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the web server did not answer; see {BENCH_DIR / 'web.log'}")

    def stop(self) -> None:
        from django.conf import settings

        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes:
            process.wait(timeout=30)
        subprocess.run([*settings.NGINX_COMMAND, "-s", "quit"], capture_output=True)


class Orders:
    """Signups, Checkout and the webhook, as the customer and Stripe produce them."""

    def __init__(self, stripe: StripeServer):
        from billing.models import Plan
        from billing.services.plans import plan_price_create
        from tests.stripe_fake import webhook_endpoint_create

        self.stripe = stripe
        plan = Plan.objects.select_related("stripe_product").get(slug="woocommerce-commerce-core")
        if plan.stripe_product is not None:  # created in an earlier run's fake: known to this one too
            product = stripe.fake.add("product", id=plan.stripe_product.id, name=plan.name)
            if plan.stripe_price_id:
                stripe.fake.add("price", id=plan.stripe_price_id, product=product["id"])
        self.plan = plan_price_create(plan_id=plan.pk)
        endpoint = webhook_endpoint_create(
            endpoint_id=f"we_bench_{uuid.uuid4().hex[:10]}", secret=WEBHOOK_SECRET, url="https://bench.test/hook/"
        )
        self.webhook_path = f"/stripe/webhook/{endpoint.djstripe_uuid}/"

    def sign_up(self, n: int) -> dict:
        """A new customer's signup and Checkout session; Stripe then completes it. Returns the event to send."""
        from billing.services.checkout import checkout_start, signup_create

        tag = uuid.uuid4().hex[:6]
        title = f"E2E Shop {n} {tag}"
        subscription = signup_create(
            plan=self.plan,
            domain=f"e2e{n}-{tag}.bench.test",
            email=f"e2e-{n}-{tag}@example.com",
            password="an end to end password 1",
            company=title,
        )
        checkout_start(subscription_id=subscription.pk, success_url="https://x/ok", cancel_url="https://x/no")
        subscription.refresh_from_db()
        with self.stripe.lock:
            fake = self.stripe.fake
            session = fake.objects[subscription.checkout_session_id]
            customer = fake.add("customer", email=session["customer_email"])
            paid = fake.subscription(
                customer=customer["id"], price=fake.objects[self.plan.stripe_price_id], metadata=session["metadata"]
            )
            session.update(status="complete", payment_status="paid", customer=customer["id"], subscription=paid["id"])
            event = fake.event("checkout.session.completed", session, event_id=f"evt_bench_{uuid.uuid4().hex}")
        return {"event": event, "title": title, "subscription_id": subscription.pk}

    def pay(self, order: dict) -> None:
        """POST the signed event to the web server, as Stripe does; returns when it answered."""
        from tests.stripe_fake import StripeFake

        payload = json.dumps(order["event"])
        headers = {"Content-Type": "application/json"}
        headers.update(
            {
                key.removeprefix("HTTP_").replace("_", "-").title(): value
                for key, value in StripeFake.signed_headers(payload, WEBHOOK_SECRET).items()
            }
        )
        connection = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=30)
        connection.request("POST", self.webhook_path, body=payload, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"the webhook answered {response.status}: {body[:500]!r}")


def wait_live(order: dict, timeout: float = 180) -> float:
    """Until nginx answers 200 with the title for the store's platform name; returns the monotonic time then."""
    from django.conf import settings

    from stores.models import StoreName

    host, _, port = settings.NGINX_LISTEN_HTTP.rpartition(":")
    deadline = time.monotonic() + timeout
    name = None
    while time.monotonic() < deadline:
        if name is None:
            row = (
                StoreName.objects.filter(store__subscription_id=order["subscription_id"], kind=StoreName.Kind.PLATFORM)
                .values_list("name", flat=True)
                .first()
            )
            name = row
            if name is None:
                time.sleep(0.05)
                continue
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("GET", "/", headers={"Host": name, "Connection": "close"})
            response = connection.getresponse()
            if response.status == 200 and order["title"] in response.read().decode(errors="replace"):
                return time.monotonic()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    raise RuntimeError(f"{order['title']} was not live through nginx within {timeout} s")


def order_path(order: dict) -> str:
    """claimed or built: the path the order's provision job took."""
    from provisioning.models import ProvisioningJob

    job = ProvisioningJob.objects.filter(store__subscription_id=order["subscription_id"], kind="provision").first()
    return job.path if job else "?"


def teardown_all(subscription_ids: list[int], timeout: float = 300) -> None:
    """Every benchmark store torn down by the platform's own teardown jobs, on the running workers."""
    from provisioning.exceptions import JobConflict
    from provisioning.services import job_enqueue
    from stores.models import Store

    stores = list(Store.objects.filter(subscription_id__in=subscription_ids))
    deadline = time.monotonic() + timeout
    waiting = [store.pk for store in stores if store.status not in (Store.Status.DELETED, Store.Status.DELETING)]
    while waiting:  # a store whose first backup still runs is busy: asked again until it is free
        if time.monotonic() > deadline:
            raise RuntimeError(f"stores {waiting} stayed busy; the benchmark could not tear them down")
        for store_id in list(waiting):
            try:
                job_enqueue(store_id=store_id, kind="teardown")
                waiting.remove(store_id)
            except JobConflict:  # its first backup runs
                pass
        time.sleep(0.5)
    while Store.objects.filter(pk__in=[s.pk for s in stores]).exclude(status=Store.Status.DELETED).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark's stores were not torn down in time")
        time.sleep(0.5)


def leftovers_remove() -> int:
    """Stacks an interrupted earlier run left holding host capacity (its teardown never ran): removed and
    their reservations released, so every run starts with the host as empty as the first."""
    from provisioning.models import PoolStack
    from provisioning.steps import stack_remove
    from stores.models import Store
    from stores.services import store_release

    leftovers = list(Store.objects.select_related("host").filter(host__isnull=False))
    for store in leftovers:
        stack_remove(store, lambda message: None)
        store_release(store_id=store.pk)
    # The warm pool's stacks were among them (or never got built): the pool starts empty too.
    PoolStack.objects.filter(state__in=[*PoolStack.LIVE, PoolStack.State.REMOVING]).update(
        state=PoolStack.State.REMOVED, note="removed by the benchmark"
    )
    return len(leftovers)


def pool_set(ready: int) -> None:
    """The warm pool's target for the benchmark plan's size class (0: no pool)."""
    from billing.models import Plan
    from provisioning.models import PoolTarget

    plan = Plan.objects.get(slug="woocommerce-commerce-core")
    PoolTarget.objects.update_or_create(
        platform=plan.platform, memory_mb=plan.memory_mb, cpus=plan.cpu_limit, defaults={"ready_target": ready}
    )


def pool_wait_ready(ready: int, timeout: float = 300) -> float:
    """Refill (what the periodic job does every minute) and wait until `ready` stacks are ready; returns the
    seconds it took."""
    from provisioning.models import PoolStack
    from provisioning.pool import pool_refill

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pool_refill()
        if PoolStack.objects.filter(state=PoolStack.State.READY).count() >= ready:
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"the warm pool had not {ready} ready stacks after {timeout} s; see {BENCH_DIR}/worker-pool.log")


def step_times(subscription_ids: list[int]) -> str:
    """Where the provision jobs' time went: the median of each step's time, and of the job's wait in the queue
    (created to started) and its run (started to finished), as staff read them on each job."""
    import statistics

    from provisioning.models import JobStep, ProvisioningJob

    jobs = list(ProvisioningJob.objects.filter(store__subscription_id__in=subscription_ids, kind="provision"))
    if not jobs:
        return "no provision jobs"
    parts = [
        f"queued {statistics.median((j.started_at - j.created_at).total_seconds() for j in jobs if j.started_at):.2f}",
        f"run {statistics.median((j.finished_at - j.started_at).total_seconds() for j in jobs if j.finished_at):.2f}",
    ]
    by_step: dict[str, list[float]] = {}
    steps = JobStep.objects.filter(job__in=jobs).exclude(started_at=None).exclude(finished_at=None).order_by("order")
    for step in steps:
        by_step.setdefault(step.name, []).append((step.finished_at - step.started_at).total_seconds())
    parts += [f"{name} {statistics.median(times):.2f}" for name, times in by_step.items()]
    return f"median s over {len(jobs)} jobs: " + ", ".join(parts)
