from django.dispatch import Signal

# Sent (store_id=…) by the provisioning job once a store is live; the backups app schedules backups.
store_ready = Signal()
