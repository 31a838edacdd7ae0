"""The intake form's place on the appointment pages (scheduling's).

`appointment_intake_section` answers scheduling's `appointment_page_sections` hook (a
hook that asks rather than tells): for the patient, a link to fill in, continue or read
the form before an upcoming appointment; for the appointment's doctor and the patient's
clinicians, a link to the form and its state. It shows states and links only, never the
answers (those are read, and recorded, on the intake pages). The lead registers it in
`RecordsConfig.ready()`:

    from scheduling import hooks as scheduling_hooks
    scheduling_hooks.appointment_page_sections.register(appointment_intake_section)
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from accounts import policies
from accounts.models import Role
from records.models import IntakeForm, IntakeStatus


def _state(form: IntakeForm | None) -> tuple[str, str]:
    from django.utils.translation import gettext as _

    if form is None or (form.status == IntakeStatus.DRAFT and form.is_empty):
        return "warning", _("Not started")
    if form.status == IntakeStatus.DRAFT:
        return "pending", _("Draft saved, not sent")
    return "success", _("Sent to the doctor")


def appointment_intake_section(*, user: Any, appointment: Any, audience: str, **_: Any) -> str:
    from scheduling.models import UPCOMING_STATUSES

    form = IntakeForm.objects.filter(appointment=appointment).first()
    upcoming = appointment.status in UPCOMING_STATUSES and appointment.starts_at > timezone.now()
    if audience == "patient":
        if not policies.can_fill_intake_form(user, appointment) or (form is None and not upcoming):
            return ""
        url_name = "records:care_intake"
    else:
        clinician = getattr(user, "role", None) in {Role.DOCTOR, Role.NURSE}
        if not (clinician and policies.can_view_intake_form(user, appointment)):
            return ""
        url_name = "records:care_staff_intake"
    variant, label = _state(form)
    return render_to_string(
        "records/care/_appointment_section.html",
        {
            "appointment": appointment,
            "audience": audience,
            "url_name": url_name,
            "variant": variant,
            "label": label,
            "editable": audience == "patient" and upcoming and not (form and form.submitted),
        },
    )
