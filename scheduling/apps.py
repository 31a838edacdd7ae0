from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SchedulingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scheduling"
    verbose_name = _("Scheduling")

    def ready(self) -> None:
        # Scheduling's own reaction to its hooks: offering freed slots to the waitlist.
        # Higher apps (notifications: confirmations and reminders) register theirs the
        # same way.
        from scheduling import waitlist

        waitlist.connect()
