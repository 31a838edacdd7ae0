from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecordsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "records"
    verbose_name = _("Records")

    def ready(self) -> None:
        # Records' section on an appointment's page (the intake form's state and link),
        # through scheduling's hook: scheduling never imports records.
        from records import sections_care
        from scheduling import hooks

        hooks.appointment_page_sections.register(sections_care.appointment_intake_section)
