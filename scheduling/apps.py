from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SchedulingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scheduling"
    verbose_name = _("Scheduling")

    def ready(self) -> None:
        # Scheduling's own reactions to its hooks: the booking confirmation email and
        # offering freed slots to the waitlist. Higher apps register theirs the same way.
        from scheduling import emails, waitlist

        emails.connect()
        waitlist.connect()
