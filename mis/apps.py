from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MisConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "mis"
    verbose_name = _("MIS integration")
