"""A test-only job kind, `test_sleep`: one step that sleeps, so tests can see how real workers share slow
jobs between hosts (tests/test_fleet_hostops.py). It touches no engine; the engine bounds jobs by their
store's host whatever they do.

Run as a module it is a real `manage.py rqworker` that knows the kind:
    python -m tests.host_slots_kind provisioning --with-scheduler
"""

import os
import sys
import time

from provisioning.kinds import JobKind, Step, register

SLEEP_KIND = "test_sleep"


def _sleep(store, log) -> None:
    seconds = float(os.environ.get("TEST_SLEEP_SECONDS", "3"))
    log(f"sleeping {seconds} s")
    time.sleep(seconds)


KIND = JobKind(
    name=SLEEP_KIND,
    title="Sleep (tests only)",
    steps=(Step("sleep", "Sleep", _sleep),),
    store_statuses=frozenset({"awaiting_payment"}),
)


def kind_register() -> None:
    register(KIND)


if __name__ == "__main__":
    import django
    from django.core.management import call_command

    django.setup()
    kind_register()
    call_command("rqworker", *sys.argv[1:])
