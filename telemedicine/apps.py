from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TelemedicineConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "telemedicine"
    verbose_name = _("Telemedicine")
