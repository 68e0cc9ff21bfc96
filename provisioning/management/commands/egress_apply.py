from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from provisioning import egress
from provisioning.exceptions import ProvisioningError


class Command(BaseCommand):
    help = (
        "Install or refresh the fence around the stores' outbound traffic on this host (iptables; needs root). "
        "Idempotent: run at boot and after every dockerd restart by shophosting-egress.service."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--check", action="store_true", help="Report drift from the settings; exit 1 if any.")
        mode.add_argument("--dry-run", action="store_true", help="Print the rules without touching the host.")
        mode.add_argument("--remove", action="store_true", help="Take the fence away (stores then reach anything).")

    def handle(self, *args, **options):
        try:
            if options["remove"]:
                egress.fence_remove()
                self.stdout.write("the fence is removed")
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

    def _warn_unfenced(self) -> None:
        try:
            unfenced = egress.unfenced_store_networks()
        except ProvisioningError as exc:
            self.stderr.write(f"could not list the store networks: {exc}")
            return
        for network in unfenced:
            self.stderr.write(
                f"warning: store network {network} predates the fence and is not inside it; "
                "it is fenced once the store's network is created again"
            )
