from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaymentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments"
    verbose_name = _("Payments")

    def ready(self) -> None:
        # Scheduling never imports payments: it calls these through its hook points.
        from payments import sections, workflows
        from scheduling import hooks

        hooks.appointment_cancelled.register(workflows.on_appointment_cancelled)
        hooks.appointment_hold_released.register(workflows.on_hold_released)
        hooks.appointment_checkout_url.register(workflows.checkout_url)
        hooks.appointment_page_sections.register(sections.appointment_money_section)
