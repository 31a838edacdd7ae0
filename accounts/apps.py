from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = _("Accounts and identity")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts import audit_hooks

        audit_hooks.connect()
        # Role groups need the permission rows, which exist only after migrate.
        post_migrate.connect(_sync_role_groups, dispatch_uid="accounts_sync_roles")


def _sync_role_groups(app_config: AppConfig, **kwargs: object) -> None:
    from django.apps import apps

    from accounts.services import roles_sync_groups

    # post_migrate fires once per app with models; act after the last one.
    with_models = [c for c in apps.get_app_configs() if c.models_module is not None]
    if app_config is with_models[-1]:
        roles_sync_groups()
