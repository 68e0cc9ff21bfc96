from django.dispatch import Signal

# Sent (store_id=…) by the provisioning job once a store is live; the backups app schedules backups.
store_ready = Signal()

# Sent (store_id=…) before a store whose subscription ended is stopped, so the backups app takes its
# final backup. Until the backups app connects a receiver, no final backup is taken (see billing/README.md).
store_final_backup_requested = Signal()
