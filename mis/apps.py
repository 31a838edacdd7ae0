from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MisConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "mis"
    verbose_name = _("MIS integration")

    def ready(self) -> None:
        # Scheduling's hooks write an MIS push job inside the booking, move and cancel
        # transactions (only when an MIS is configured: checked per call, so settings
        # changed in tests apply), and show the push state on the staff appointment page.
        from mis import services_push, tasks_push  # noqa: F401 (registers the tasks)

        services_push.connect()
