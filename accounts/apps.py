from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and security"

    def ready(self):
        from accounts import handlers, roles  # noqa: F401 - connects signal receivers
        from accounts.services import audit_record
        from shophosting.core.audit import audit_writer_set

        audit_writer_set(audit_record)
