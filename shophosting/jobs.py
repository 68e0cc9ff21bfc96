"""Platform-wide periodic jobs (scheduled by shophosting/cron.py). Thin: each calls one command or service."""

from django.core.management import call_command


def sessions_clear_expired() -> None:
    call_command("clearsessions")


def axes_attempts_expire() -> None:
    # Failed-login records past their cool-off no longer lock anyone out; drop them.
    call_command("axes_reset_failure_logs", age=30)


def pages_publish_scheduled() -> None:
    # Wagtail's scheduled publishing and expiry: drafts whose go-live time has passed go live, expired pages go.
    call_command("publish_scheduled")


def platform_checks_run() -> None:
    # Docker engines (recorded for the web tier too) and each queue's workers, with staff incidents.
    from shophosting.health import platform_checks_run

    platform_checks_run()


def docker_engines_check() -> None:
    # The web tier may not talk to Docker: a worker asks the engines and records the answer for /healthz
    # and the staff's System health page.
    from shophosting.health import docker_engines_record

    docker_engines_record()
