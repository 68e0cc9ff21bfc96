"""Every existing store records the images it runs now: the settings' STORE_IMAGES for its platform, which
every store used until images were recorded per store. From now on a new default reaches new stores only,
and an update changes one store's record."""

from django.conf import settings
from django.db import migrations


def record(apps, schema_editor):
    Store = apps.get_model("stores", "Store")
    StoreImage = apps.get_model("provisioning", "StoreImage")
    rows = []
    for store_id, platform in Store.objects.exclude(status="deleted").values_list("pk", "platform"):
        recorded = set(StoreImage.objects.filter(store_id=store_id).values_list("role", flat=True))
        for role, image in settings.STORE_IMAGES.get(platform, {}).items():
            if role not in recorded:
                rows.append(StoreImage(store_id=store_id, role=role, image=image))
    StoreImage.objects.bulk_create(rows, batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0006_updates_and_rollouts"),
        ("stores", "0011_storeevent_message"),
    ]

    operations = [migrations.RunPython(record, migrations.RunPython.noop)]
