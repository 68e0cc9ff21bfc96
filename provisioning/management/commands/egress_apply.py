from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from provisioning import egress
from provisioning.exceptions import ProvisioningError
from stores.models import Host


class Command(BaseCommand):
    help = (
        "Install or refresh the fence around the stores' outbound traffic: on this machine (iptables; needs root; "
        "run at boot and after every dockerd restart by shophosting-egress.service), or with --host/--all-hosts on "
        "registered hosts through their Docker API (a short-lived helper container on each). Idempotent."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--check", action="store_true", help="Report drift from the settings; exit 1 if any.")
        mode.add_argument("--dry-run", action="store_true", help="Print the rules without touching the host.")
        mode.add_argument("--remove", action="store_true", help="Take the fence away (stores then reach anything).")
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--host", action="append", default=[], metavar="NAME", help="A registered host (repeatable), via its API."
        )
        where.add_argument("--all-hosts", action="store_true", help="Every registered host, via its API.")

    def handle(self, *args, **options):
        hosts = self._hosts(options)
        try:
            if options["remove"]:
                self._remove(hosts)
                return
            if not settings.EGRESS_MANAGED:
                self.stdout.write("the fence is not managed here (EGRESS_MANAGED=false); nothing done")
                return
            policy = egress.policy_from_settings()
            if options["dry_run"]:
                for rules in egress.chain_rules(policy).values():
                    self.stdout.write("\n".join(rules))
                self.stdout.write("\n".join(jump for _, jump in egress.JUMPS))
                return
            if hosts is not None:
                self._hosts_apply_or_check(hosts, check=options["check"])
                return
            if options["check"]:
                problems = egress.fence_drift(policy)
                for problem in problems:
                    self.stdout.write(problem)
                self._warn_unfenced()
                if problems:
                    raise CommandError(f"the fence differs from the settings ({len(problems)}); run egress_apply")
                self.stdout.write("the fence is in place")
                return
            rules = egress.fence_apply(policy)
        except ImproperlyConfigured as exc:
            raise CommandError(f"bad egress settings: {exc}") from exc
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"the fence is in place ({len(rules)} rules)")
        self._warn_unfenced()

    def _hosts(self, options) -> list[Host] | None:
        """The registered hosts asked for; None for this machine."""
        if options["all_hosts"]:
            return list(Host.objects.order_by("name"))
        if not options["host"]:
            return None
        found = {host.name: host for host in Host.objects.filter(name__in=options["host"])}
        unknown = [name for name in options["host"] if name not in found]
        if unknown:
            known = ", ".join(Host.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"no host named {', '.join(unknown)} (registered: {known})")
        return [found[name] for name in dict.fromkeys(options["host"])]

    def _remove(self, hosts: list[Host] | None) -> None:
        if hosts is None:
            egress.fence_remove()
            self.stdout.write("the fence is removed")
            return
        for host in hosts:
            egress.host_fence_remove(host.engine)
            self.stdout.write(f"{host.name}: the fence is removed")

    def _hosts_apply_or_check(self, hosts: list[Host], *, check: bool) -> None:
        """Each host in turn; one that fails or drifts does not stop the others, and makes the command fail."""
        failed = []
        for host in hosts:
            try:
                if check:
                    problems = egress.host_fence_drift(host.engine)
                    for problem in problems:
                        self.stdout.write(f"{host.name}: {problem}")
                    if problems:
                        failed.append(f"{host.name} differs from the settings ({len(problems)})")
                    else:
                        self.stdout.write(f"{host.name}: the fence is in place")
                else:
                    rules = egress.host_fence_apply(host.engine)
                    self.stdout.write(f"{host.name}: the fence is in place ({len(rules)} rules)")
            except ProvisioningError as exc:
                self.stdout.write(f"{host.name}: {exc}")
                failed.append(f"{host.name}: {exc}")
                continue
            self._warn_unfenced(host)
        if failed:
            raise CommandError("; ".join(failed) + ("; run egress_apply --host" if check else ""))

    def _warn_unfenced(self, host: Host | None = None) -> None:
        try:
            unfenced = egress.unfenced_store_networks(base_url=host.engine if host else None)
        except ProvisioningError as exc:
            self.stderr.write(f"could not list the store networks: {exc}")
            return
        where = f"{host.name}: " if host else ""
        for network in unfenced:
            self.stderr.write(
                f"warning: {where}store network {network} predates the fence and is not inside it; "
                "it is fenced once the store's network is created again"
            )
