"""A WordPress store's object cache on the real engine: kept in the store's own Redis under the store's
prefix, and the store keeps answering when that Redis is down."""

import json
import time
from pathlib import Path

import pytest

from provisioning import docker_client, steps
from tests.test_provisioning import fetch, paid_store  # noqa: F401 - paid_store is a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.docker]
PROBE_CODE = (
    (Path(__file__).parent / "fixtures" / "wordpress" / "object_cache_probe.php").read_text().removeprefix("<?php\n")
)
WORDPRESS_LOAD = (
    "$_SERVER['HTTP_HOST'] = parse_url(getenv('WORDPRESS_URL'), PHP_URL_HOST); $_SERVER['REQUEST_URI'] = '/';"
    " require '/var/www/html/wp-load.php';"
)


def redis_cli(container: str, *args: str) -> str:
    code, output = docker_client.container_exec(name=container, command=["redis-cli", *args])
    assert code == 0, output
    return output


def redis_keys(container: str) -> list[str]:
    return redis_cli(container, "--scan").splitlines()


def wordpress_php(store, code: str) -> str:
    """PHP run in the store's web container, with the container's own configuration (its environment)."""
    status, output = docker_client.container_exec(name=f"{store.slug}-web", command=["php", "-r", code])
    assert status == 0, output
    return output


def test_wordpress_object_cache_lives_in_the_stores_own_redis_and_the_store_answers_without_it(paid_store):  # noqa: F811
    """Also: the cache is emptied whenever the app starts while its Redis kept running (a restore)."""
    store, job = paid_store
    cache, prefix = f"{store.slug}-cache", f"{store.slug}:"

    # The store's Redis is bounded below its container's memory and evicts instead of being OOM-killed.
    assert redis_cli(cache, "CONFIG", "GET", "maxmemory").split() == ["maxmemory", str(192 * 1024 * 1024)]
    assert redis_cli(cache, "CONFIG", "GET", "maxmemory-policy").split() == ["maxmemory-policy", "allkeys-lru"]

    # The drop-in's settings, as the local image's wp-config reads them from the environment and as the
    # official image's (production) reads them from WORDPRESS_CONFIG_EXTRA, which it evals.
    constants = "echo json_encode([WP_REDIS_HOST, WP_REDIS_DATABASE, WP_REDIS_PREFIX]);"
    assert json.loads(wordpress_php(store, WORDPRESS_LOAD + constants)) == ["cache", 0, prefix]
    assert json.loads(wordpress_php(store, "eval(getenv('WORDPRESS_CONFIG_EXTRA'));" + constants)) == [
        "cache",
        0,
        prefix,
    ]

    # A page load fills the store's Redis, every key under the store's prefix.
    redis_cli(cache, "FLUSHALL")
    assert fetch(store.port, "shop1.test").status == 200
    keys = redis_keys(cache)
    assert f"{prefix}1:options:alloptions" in keys
    assert all(key.startswith(prefix) for key in keys), keys
    # The next page load is served from it.
    hits = _keyspace_hits(cache)
    page = fetch(store.port, "shop1.test")
    assert page.status == 200 and "<title>Ada&#039;s Shop" in page.text
    assert _keyspace_hits(cache) > hits
    # No other Redis on the engine holds a key of this store.
    engine = docker_client.client()
    others = [c.name for c in engine.containers.list() if c.name.endswith("-cache") and c.name != cache]
    for other in others:
        assert not [key for key in redis_keys(other) if key.startswith(prefix)], other

    # The drop-in answers the cache API as core's in-memory cache does, with the values kept in Redis.
    probe = json.loads(wordpress_php(store, PROBE_CODE))
    assert probe == {
        "drop_in": True,
        "redis": True,
        "supports": [True, True, True, False],
        "add existing": False,
        "add new": True,
        "replace missing": False,
        "replace existing": True,
        "set_multiple": {"m1": True, "m2": True},
        "add_multiple": {"m2": False, "m4": True},
        "object": 1,
        "array": {"x": 1},
        "false": [False, True],
        "missing": [False, False],
        "int": 5,
        "numeric string is a string": True,
        "text": "abcd",
        "added": "new",
        "ttl": probe["ttl"],
        "get_multiple": {"m1": 1, "m2": "two", "m3": False, "m4": 4},
        "incr": 7,
        "decr below zero": 0,
        "incr missing": False,
        "incr text": 1,
        "int after incr": 0,
        "delete_multiple": {"m1": True, "m3": False},
        "delete": True,
        "deleted": False,
        "force": ["mine", "theirs"],
        "non-persistent": [1, 0],
        "global": 1,
        "flush_group": [False, []],
        "flush": True,
        "after flush": [[], "theirs"],
    }
    assert 55 <= probe["ttl"] <= 60

    # Redis stopped: the store answers from the database, its cache in memory for each request. Timed against
    # a render with Redis up, just before, so a busy machine's slowness counts on both sides.
    started = time.monotonic()
    fetch(store.port, "shop1.test")
    with_redis = time.monotonic() - started
    docker_client.container_stop(name=cache, timeout=5)
    started = time.monotonic()
    page = fetch(store.port, "shop1.test")
    assert page.status == 200 and "<title>Ada&#039;s Shop" in page.text
    without = time.monotonic() - started
    assert without < 2 * with_redis + 3, (with_redis, without)  # no waiting on a Redis that is not there
    memory_only = (
        "wp_cache_set('k', 'v'); echo json_encode([$GLOBALS['wp_object_cache']->redis_connected(), wp_cache_get('k')]);"
    )
    output = wordpress_php(store, WORDPRESS_LOAD + memory_only)
    assert "ShopHosting object cache: Redis unavailable, using memory only" in output  # one line, in the log
    assert json.loads(output.splitlines()[-1]) == [False, "v"]

    # Redis back (empty, as after any restart): the next request uses it again.
    docker_client.container_start(name=cache)
    deadline = time.monotonic() + 10
    while f"{prefix}1:options:alloptions" not in redis_keys(cache) and time.monotonic() < deadline:
        assert fetch(store.port, "shop1.test").status == 200
        time.sleep(0.2)
    assert f"{prefix}1:options:alloptions" in redis_keys(cache)

    # The app stopped and started again while its Redis kept running, as a restore does: the cache is
    # emptied before the app starts, so no key outlives a database that changed meanwhile.
    redis_cli(cache, "SET", f"{prefix}1:options:stale", "from before the restore")
    steps.app_stop(store, lambda message: None)
    log = []
    steps.app_start(store, log.append)
    assert "cache emptied" in log
    keys = redis_keys(cache)
    assert f"{prefix}1:options:stale" not in keys and f"{prefix}1:options:alloptions" in keys  # refilled


def _keyspace_hits(container: str) -> int:
    stats = redis_cli(container, "INFO", "stats")
    return int(next(line.split(":")[1] for line in stats.splitlines() if line.startswith("keyspace_hits:")))
