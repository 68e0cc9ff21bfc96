from django.core.management.base import BaseCommand

from stores.selectors import host_usage_list


def _placement(host) -> str:
    if host.status != host.Status.READY:
        return host.get_status_display().lower()
    return "accepts new stores" if host.active else "takes no new stores"


class Command(BaseCommand):
    help = "Show each Docker host's capacity, what its stores reserve, and the ports in use."

    def handle(self, *args, **options):
        rows = host_usage_list()
        if not rows:
            self.stdout.write("no hosts")
        for row in rows:
            host = row.host
            keys = " (TLS)" if host.tls_encrypted else " (SSH key)" if host.ssh_encrypted else ""
            self.stdout.write(
                f"{host.name} ({_placement(host)}) "
                f"{host.docker_url}{keys} private address {host.bind_address}\n"
                f"  memory {row.memory_mb} / {host.memory_capacity_mb} MB   cpu {row.cpus} / {host.cpu_capacity}\n"
                f"  ports {len(row.ports)} of {host.port_range_end - host.port_range_start + 1} used"
                f"{': ' + ', '.join(map(str, row.ports)) if row.ports else ''}"
            )
