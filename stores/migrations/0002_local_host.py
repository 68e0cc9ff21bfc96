"""The default Host row: the local Docker engine. Staff edit its capacity in the admin.

CPU capacity counts CPU limits, which are caps rather than reservations, so it is overcommitted
(32 on a small machine); memory limits are closer to real use and are not."""

from django.conf import settings
from django.db import migrations


def create_local_host(apps, schema_editor):
    Host = apps.get_model("stores", "Host")
    Host.objects.get_or_create(
        name="local",
        defaults={"docker_url": settings.DOCKER_HOST, "memory_capacity_mb": 20 * 1024, "cpu_capacity": 32},
    )


class Migration(migrations.Migration):
    dependencies = [("stores", "0001_initial")]
    operations = [migrations.RunPython(create_local_host, migrations.RunPython.noop)]
