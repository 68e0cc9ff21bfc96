"""Benchmark: a paid WooCommerce order to a front page that answers 200 with the site title.

Prints the median over N runs of the platform's provisioning job (job start -> title on the front page)
and, measured in the same run and interleaved, a plain Docker SDK script that starts the same containers
from the same images, waits for the database, installs WordPress and polls the page. Then the ratio.

    .venv/bin/python tests/benchmarks/provision.py [--runs 5]

Needs what bin/test needs (dockerd, MariaDB, Redis, the local images). Uses its own MariaDB database
`shophosting_bench` (migrated on first use, which takes about two minutes; BENCH_DATABASE names another, for
a branch whose migrations the shared one should not get) and Redis database 12 (BENCH_REDIS_URL names another).
nginx is left out of both sides: the figure is the container path.
"""

import argparse
import http.client
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "shophosting.settings.test"
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "shophosting_bench")
os.environ["DATABASE_URL"] = f"mysql://root@127.0.0.1:3306/{BENCH_DATABASE}"
os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
os.environ["NGINX_ENABLED"] = "false"
os.environ["STORE_OBJECT_PREFIX"] = "shbench-store"


def wait_for_title(port: int, domain: str, title: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/", headers={"Host": domain, "Connection": "close"})
            response = connection.getresponse()
            if response.status == 200 and title in response.read().decode(errors="replace"):
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    raise RuntimeError(f"no front page with {title!r} on port {port} within {timeout} s")


def platform_run(n: int) -> float:
    from accounts.services import customer_create
    from billing.models import Plan
    from provisioning.orders import store_order_paid
    from provisioning.services import job_execute
    from provisioning.steps import stack_remove
    from stores.models import Store
    from stores.services import store_create, store_release

    customer = customer_create(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password="bench-password-1")
    domain = f"bench{n}-{uuid.uuid4().hex[:6]}.test"
    store = store_create(
        customer=customer,
        plan=Plan.objects.get(slug="woocommerce-commerce-core"),
        domain=domain,
        site_title="Bench Shop",
    )
    job = store_order_paid(store_id=store.pk)
    started = time.monotonic()
    job_execute(job_id=job.pk)
    store.refresh_from_db()
    wait_for_title(store.port, domain, "Bench Shop")
    elapsed = time.monotonic() - started
    store = Store.objects.select_related("host").get(pk=store.pk)
    stack_remove(store, lambda message: None)
    store_release(store_id=store.pk)
    return elapsed


def sdk_run(n: int, port: int) -> float:
    """The raw floor: the same three containers, images and limits, straight through the Docker SDK."""
    import docker

    engine = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    name = f"shbench-sdk-{n}-{uuid.uuid4().hex[:6]}"
    domain = f"{name}.test"
    labels = {"shbench.sdk": name}
    started = time.monotonic()
    network = engine.networks.create(f"{name}-net", labels=labels)
    engine.volumes.create(f"{name}-db", labels=labels)
    engine.volumes.create(f"{name}-wp", labels=labels)
    common = {"detach": True, "network": network.name, "labels": labels}
    engine.containers.run(
        "shophosting/mariadb:local",
        name=f"{name}-db",
        mem_limit="512m",
        nano_cpus=500_000_000,
        volumes={f"{name}-db": {"bind": "/var/lib/mysql"}},
        hostname="db",
        environment={
            "MARIADB_ROOT_PASSWORD": "r",
            "MARIADB_DATABASE": "wordpress",
            "MARIADB_USER": "wordpress",
            "MARIADB_PASSWORD": "p",
        },
        **common,
    )
    engine.containers.run(
        "shophosting/redis:local", name=f"{name}-cache", mem_limit="256m", nano_cpus=250_000_000, **common
    )
    engine.containers.run(
        "shophosting/wordpress:local",
        name=f"{name}-web",
        mem_limit="1g",
        nano_cpus=1_000_000_000,
        volumes={f"{name}-wp": {"bind": "/var/www/html/wp-content"}},
        ports={"80/tcp": ("127.0.0.1", port)},
        environment={
            "WORDPRESS_DB_HOST": f"{name}-db",
            "WORDPRESS_DB_USER": "wordpress",
            "WORDPRESS_DB_PASSWORD": "p",
            "WORDPRESS_DB_NAME": "wordpress",
            "WORDPRESS_URL": f"http://{domain}",
        },
        **common,
    )
    db = engine.containers.get(f"{name}-db")
    while db.exec_run(["healthcheck.sh", "--connect"]).exit_code != 0:
        time.sleep(0.2)
    web = engine.containers.get(f"{name}-web")
    result = web.exec_run(
        ["php", "/usr/local/share/shophosting/wp-install.php"],
        environment={
            "WORDPRESS_URL": f"http://{domain}",
            "WP_TITLE": "Bench Shop",
            "WP_ADMIN_USER": "a",
            "WP_ADMIN_EMAIL": "a@example.com",
            "WP_ADMIN_PASSWORD": "pw-pw-pw-pw",
        },
    )
    if result.exit_code != 0:
        raise RuntimeError(result.output.decode())
    wait_for_title(port, domain, "Bench Shop")
    elapsed = time.monotonic() - started
    for container in engine.containers.list(all=True, filters={"label": f"shbench.sdk={name}"}):
        container.remove(force=True, v=True)
    network.remove()
    for volume in engine.volumes.list(filters={"label": f"shbench.sdk={name}"}):
        volume.remove(force=True)
    return elapsed


def percentile_95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def end_to_end(args) -> None:
    """Webhook to front page through nginx on a running platform (tests/benchmarks/e2e.py), next to the SDK
    floor measured in the same run; with --burst, `--orders` orders paid at once."""
    from tests.benchmarks import e2e

    e2e.BENCH_DIR.mkdir(parents=True, exist_ok=True)
    stripe = e2e.StripeServer()
    os.environ["BENCH_STRIPE_API_HOST"] = stripe.base
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.benchmarks.e2e_settings"
    for name in ("NGINX_ENABLED", "STORE_OBJECT_PREFIX"):
        os.environ.pop(name)  # e2e_settings: nginx on, a store prefix of its own
    setup()
    if removed := e2e.leftovers_remove():
        print(f"removed {removed} stacks an earlier run left behind")
    e2e.pool_set(args.pool)
    platform = e2e.Platform(stripe_base=stripe.base, workers=args.workers, pool_worker=bool(args.pool))
    platform.start()
    subscriptions = []
    try:
        orders = e2e.Orders(stripe)
        if args.burst:
            batch = [orders.sign_up(n) for n in range(args.orders)]
            if args.pool:
                print(f"warm pool: {args.pool} ready after {e2e.pool_wait_ready(args.pool):.1f} s", flush=True)
            subscriptions += [order["subscription_id"] for order in batch]
            started = time.monotonic()
            live_at = {}

            def watch(order):
                live_at[order["title"]] = e2e.wait_live(order)

            threads = [threading.Thread(target=orders.pay, args=(order,)) for order in batch]
            threads += [threading.Thread(target=watch, args=(order,)) for order in batch]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            times = sorted(at - started for at in live_at.values())
            if len(times) != len(batch):
                sys.exit(f"only {len(times)} of {len(batch)} stores went live")
            print(
                f"burst of {len(batch)} orders, {args.workers} workers: all live after {times[-1]:.2f} s; "
                f"first {times[0]:.2f} s, median {statistics.median(times):.2f} s, slowest store {times[-1]:.2f} s"
            )
            paths = [e2e.order_path(order) for order in batch]
            print(f"paths: {paths.count('claimed')} claimed, {paths.count('built')} built")
            print(e2e.step_times([order["subscription_id"] for order in batch]))
            return
        waits, floor, paths = [], [], []
        for n in range(args.orders):
            order = orders.sign_up(n)
            subscriptions.append(order["subscription_id"])
            if args.pool:  # the pool refilled between orders, as the periodic refill does
                e2e.pool_wait_ready(args.pool)
            started = time.monotonic()
            orders.pay(order)
            waits.append(e2e.wait_live(order) - started)
            paths.append(e2e.order_path(order))
            floor.append(sdk_run(n, port=29_900 + n))
            print(
                f"order {n + 1} ({paths[-1]}): webhook to front page {waits[-1]:.2f} s, "
                f"plain SDK script {floor[-1]:.2f} s",
                flush=True,
            )
        median, floor_median = statistics.median(waits), statistics.median(floor)
        print(
            f"webhook -> front page through nginx: median {median:.2f} s, p95 {percentile_95(waits):.2f} s "
            f"({len(waits)} orders, {args.workers} workers, "
            + (f"warm pool of {args.pool}: {paths.count('claimed')} claimed)" if args.pool else "no warm pool)")
        )
        print(f"plain Docker SDK script, same containers: median {floor_median:.2f} s")
        print(e2e.step_times(subscriptions))
        print(
            f"ratio {median / floor_median:.2f}; goal without a pool: at most 1.3 x floor + 1 s = "
            f"{1.3 * floor_median + 1:.2f} s"
        )
    finally:
        try:
            e2e.teardown_all(subscriptions)
        finally:
            platform.stop()
            stripe.close()
            e2e.leftovers_remove()  # the warm pool's stacks


def setup() -> None:
    import MySQLdb

    MySQLdb.connect(host="127.0.0.1", user="root").cursor().execute(
        f"CREATE DATABASE IF NOT EXISTS {BENCH_DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from billing.services.plans import plan_catalogue_seed
    from provisioning.images import images_build

    plan_catalogue_seed()
    images_build(log=lambda message: None)
    from stores.models import Host

    # Ports of their own: the test suite's stores (other databases, the same engine) publish from 20000 up.
    Host.objects.filter(name="local").update(port_range_start=29_000, port_range_end=29_899)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--end-to-end", action="store_true", help="webhook to front page on a running platform")
    parser.add_argument("--orders", type=int, default=10, help="end to end: orders (one at a time, or the burst)")
    parser.add_argument("--burst", action="store_true", help="end to end: every order paid at once")
    parser.add_argument("--workers", type=int, default=2, help="end to end: RQ worker processes")
    parser.add_argument(
        "--pool",
        type=int,
        default=0,
        help="end to end: keep this many stacks ready in the warm pool (refilled before each order; for --burst, "
        "filled once before it); 0: every store is built from scratch",
    )
    args = parser.parse_args()
    if args.end_to_end:
        end_to_end(args)
        return

    setup()
    platform, sdk = [], []
    for n in range(args.runs):
        platform.append(platform_run(n))
        sdk.append(sdk_run(n, port=29_900 + n))
        print(f"run {n + 1}: platform {platform[-1]:.2f} s, plain SDK script {sdk[-1]:.2f} s", flush=True)
    platform_median, sdk_median = statistics.median(platform), statistics.median(sdk)
    print(
        f"platform job start -> front page with title: median {platform_median:.2f} s "
        f"(min {min(platform):.2f}, max {max(platform):.2f}, {args.runs} runs)"
    )
    print(
        f"plain Docker SDK script, same containers:     median {sdk_median:.2f} s "
        f"(min {min(sdk):.2f}, max {max(sdk):.2f}, {args.runs} runs)"
    )
    print(f"ratio platform / SDK: {platform_median / sdk_median:.2f} (goal: 2.0 or less)")


if __name__ == "__main__":
    main()
