from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = _("Accounts and identity")

    def ready(self) -> None:
        from accounts import audit_hooks

        audit_hooks.connect()
