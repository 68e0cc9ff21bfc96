"""Benchmark: a paid WooCommerce order to a front page that answers 200 with the site title.

Prints the median over N runs of the platform's provisioning job (job start -> title on the front page)
and, measured in the same run and interleaved, a plain Docker SDK script that starts the same containers
from the same images, waits for the database, installs WordPress and polls the page. Then the ratio.

    .venv/bin/python tests/benchmarks/provision.py [--runs 5]

Needs what bin/test needs (dockerd, MariaDB, Redis, the local images). Uses its own MariaDB database
`shophosting_bench` (migrated on first use, which takes about two minutes) and Redis database 12.
nginx is left out of both sides: the figure is the container path.
"""

import argparse
import http.client
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "shophosting.settings.test"
os.environ["DATABASE_URL"] = "mysql://root@127.0.0.1:3306/shophosting_bench"
os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/12"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import MySQLdb

    MySQLdb.connect(host="127.0.0.1", user="root").cursor().execute(
        "CREATE DATABASE IF NOT EXISTS shophosting_bench CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from billing.services.plans import plan_catalogue_seed
    from provisioning.images import images_build

    plan_catalogue_seed()
    images_build(log=lambda message: None)

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
