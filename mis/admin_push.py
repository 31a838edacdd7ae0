"""Admin of the appointment push (imported by mis/admin.py).

- "MIS pushes": every job with its state, attempts, next attempt and the MIS's last
  answer; failed ones can be sent again (action) once the cause is fixed.
- "Bookings refused by the MIS": reception's list. Each row is a booking the MIS refused
  and the portal cancelled (the patient was told): when, with whom, whom to call, what
  the MIS said, and "mark as handled" once reception has offered another time.

Rows belong to patients, so list and change views are audited (DESIGN.md rule 4).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from clinic.admin_audit import AuditedAdminMixin
from mis import services_push
from mis.models import PushJob, PushState, RejectedPush

PUSH_FIELDS = [
    "id",
    "appointment_link",
    "change",
    "mis_system",
    "state",
    "attempts",
    "next_attempt_at",
    "last_status",
    "last_error",
    "mis_id",
    "mis_version",
    "queued_at",
    "claimed_at",
    "finished_at",
    "handled_at",
    "handled_by",
    "created_at",
]


class _PushAdminBase(AuditedAdminMixin, admin.ModelAdmin):
    readonly_fields = PUSH_FIELDS
    fields = PUSH_FIELDS
    list_select_related = ["appointment__patient__user", "appointment__location"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Read-only pages; the actions go through services (which check and audit).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def patient_of(self, obj: PushJob) -> Any:
        return obj.appointment.patient.user

    @admin.display(description=_("appointment"))
    def appointment_link(self, obj: PushJob) -> str:
        url = reverse("scheduling:staff_appointment", args=[obj.appointment.public_id])
        return format_html('<a href="{}">#{}</a>', url, obj.appointment_id)

    @admin.display(description=_("time"))
    def appointment_time(self, obj: PushJob) -> str:
        appointment = obj.appointment
        local = timezone.localtime(appointment.starts_at, appointment.location.tzinfo)
        return f"{local:%Y-%m-%d %H:%M} ({appointment.location.time_zone})"


@admin.register(PushJob)
class PushJobAdmin(_PushAdminBase):
    list_display = [
        "id",
        "appointment_link",
        "change",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status",
        "last_error",
        "created_at",
    ]
    list_filter = ["state", "change"]
    actions = ["send_again"]

    @admin.action(description=_("Send the selected failed pushes again"))
    def send_again(self, request: HttpRequest, queryset: QuerySet[PushJob]) -> None:
        done = 0
        for job in queryset.filter(state=PushState.FAILED):
            try:
                services_push.push_retry(by=request.user, job=job)
            except (PermissionDenied, ValidationError):
                continue
            done += 1
        self.message_user(
            request,
            _("%(n)s push(es) queued again.") % {"n": done},
            messages.SUCCESS if done else messages.WARNING,
        )


class HandledFilter(admin.SimpleListFilter):
    title = _("handled")
    parameter_name = "handled"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("no", _("Not yet")), ("yes", _("Handled"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "no":
            return queryset.filter(handled_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(handled_at__isnull=False)
        return queryset


@admin.register(RejectedPush)
class RejectedPushAdmin(_PushAdminBase):
    list_display = [
        "appointment_link",
        "appointment_time",
        "doctor",
        "patient",
        "patient_phone",
        "last_error",
        "created_at",
        "handled",
    ]
    list_filter = [HandledFilter]
    list_select_related = [
        "appointment__patient__user",
        "appointment__location",
        "appointment__doctor__staff_profile",
    ]
    actions = ["mark_handled"]

    @admin.display(description=_("doctor"))
    def doctor(self, obj: PushJob) -> str:
        return obj.appointment.doctor.display_name()

    @admin.display(description=_("patient"))
    def patient(self, obj: PushJob) -> str:
        return obj.appointment.patient.full_name()

    @admin.display(description=_("phone"))
    def patient_phone(self, obj: PushJob) -> str:
        return obj.appointment.patient.phone or "—"

    @admin.display(description=_("handled"), boolean=True)
    def handled(self, obj: PushJob) -> bool:
        return obj.handled_at is not None

    @admin.action(description=_("Mark as handled (the patient was contacted)"))
    def mark_handled(self, request: HttpRequest, queryset: QuerySet[PushJob]) -> None:
        done = 0
        for job in queryset.filter(handled_at__isnull=True):
            try:
                services_push.push_mark_handled(by=request.user, job=job)
            except (PermissionDenied, ValidationError):
                continue
            done += 1
        self.message_user(request, _("%(n)s marked as handled.") % {"n": done}, messages.SUCCESS)
