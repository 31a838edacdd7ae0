"""Reads for the doctor's consultation screen of a video appointment.

The screen shows the patient's context beside the call (or on its own, after it): recent
visits with their diagnoses, results released or not with their flags, the intake form
of this appointment, the patient's files waiting for review, current prescriptions and
care plans, and the patient's past video calls.

Every read of the medical record goes through records' audited selectors (the chart,
the patient's care, documents, the intake form): each checks `accounts.policies`,
answers 404 for missing and forbidden alike and records what it read, flagged as
break-glass when that is the doctor's only way in. This module adds the gate in front of
them (`consultation_appointment_get_for`: only the appointment's own doctor, for a video
appointment; anyone else gets a recorded 404 through records' `deny`) and the read of the
past calls (telemedicine's own data, recorded with records' recorder). The number of
queries is fixed, however long the record is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from accounts import policies
from accounts.models import PatientProfile
from records import selectors as records_selectors
from records import selectors_care as records_care
from records import selectors_documents as records_documents
from records.models import PrescriptionStatus, UploadState
from telemedicine.models import Consultation, ConsultationState
from telemedicine.selectors_video import consultation_for

# A call someone is in (the patient waiting, the doctor joined, both connected): the
# summary's "end the call" applies to these only.
LIVE_CALL_STATES = (
    ConsultationState.WAITING,
    ConsultationState.DOCTOR_JOINED,
    ConsultationState.IN_PROGRESS,
)

# What the panel shows at once; the rest of what the chart read is one click away.
VISITS_SHOWN = 10
RESULTS_SHOWN = 10
CALLS_LIMIT = 20


def _key(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def consultation_appointment_get_for(user: Any, public_id: Any, *, what: str = "consultation"):  # noqa: ANN201
    """The video appointment whose consultation screen `user` opens: its own doctor only,
    while they may open the patient's record (break-glass included). 404 for a missing
    appointment and for everyone else alike, recorded as DENIED with the patient.

    Scheduling offers no unaudited look-up of a doctor's own appointment, so the
    appointment is read here as records.selectors_care reads it (by its public id, with
    what the gate and the page need); nothing of the record is read before the gate."""
    from scheduling.models import Appointment

    key = _key(public_id)
    appointment = (
        Appointment.objects.select_related(
            "patient__user", "doctor__staff_profile", "location", "consultation_type"
        )
        .filter(public_id=key)
        .first()
        if key is not None
        else None
    )
    if appointment is None:
        raise records_selectors.deny(user, what, found=False)
    if not policies.can_use_consultation_screen(user, appointment):
        raise records_selectors.deny(
            user, what, obj=appointment, patient=appointment.patient.user, found=True
        )
    return appointment


def call_is_live(call: Consultation | None) -> bool:
    return call is not None and call.state in LIVE_CALL_STATES


def consultation_visit(user: Any, appointment: Any, *, lock: bool = False):  # noqa: ANN201
    """The visit recorded for this appointment, if any (the first, should there be more),
    through records' visits visible to the doctor; None when there is none yet. With
    `lock` (inside a transaction) its row is locked with its patient's rows, the rows
    records' visit services lock, so a caller takes them before recording anything."""
    visits = records_selectors.visits_visible_to(user).filter(appointment_id=appointment.pk)
    if lock:
        visits = visits.select_related("patient__user").select_for_update()
    return visits.order_by("started_at", "id").first()


@dataclass
class ConsultContext:
    """Everything the consultation panel shows. Lists are newest first."""

    appointment: Any
    profile: PatientProfile
    break_glass: bool
    visit: Any  # this appointment's visit, or None before anything was written
    visits: list[Any]  # recent visits (this one included)
    older_visits: list[Any]
    results: list[Any]  # recent reports with their observations, released or not
    older_results: list[Any]
    intake: Any  # records.selectors_care.IntakeItem (form None: not started)
    uploads: list[Any]  # the patient's files waiting for review
    prescriptions: list[Any]  # active ones
    care_plans: list[Any]  # active ones
    call: Consultation | None  # this appointment's call
    calls: list[Consultation] = field(default_factory=list)  # the patient's other calls


def _past_calls(user: Any, appointment: Any, profile: PatientProfile) -> list[Consultation]:
    """The patient's other video consultations that took place (started or ended), with
    any doctor, newest first. Recorded as a list view with their ids."""
    calls = list(
        Consultation.objects.filter(appointment__patient_id=profile.pk)
        .exclude(appointment_id=appointment.pk)
        .filter(Q(started_at__isnull=False) | Q(state=ConsultationState.ENDED))
        .select_related(
            "appointment__doctor__staff_profile",
            "appointment__consultation_type",
            "appointment__location",
        )
        .order_by("-started_at", "-id")[:CALLS_LIMIT]
    )
    records_selectors.record_access(
        user,
        profile,
        "video_consultations",
        object_type=Consultation._meta.label_lower,
        ids=[c.pk for c in calls],
        appointment=appointment.pk,
    )
    return calls


def consult_context(user: Any, appointment: Any) -> ConsultContext:
    """The panel's reads, for an appointment `consultation_appointment_get_for` let
    through. Each part comes from the records selector that owns it and is recorded
    there; the panel adds only the past calls."""
    profile = appointment.patient
    chart = records_selectors.patient_chart(user, profile.pk)
    care = records_care.patient_care(user, profile.pk)
    documents = records_documents.patient_documents(user, profile.pk)
    intake = records_care.intake_get_for_staff(user, appointment.public_id)
    calls = _past_calls(user, appointment, profile)
    results = list(chart.results.object_list)
    visit = next((v for v in chart.visits if v.appointment_id == appointment.pk), None)
    return ConsultContext(
        appointment=appointment,
        profile=chart.profile,
        break_glass=chart.break_glass,
        visit=visit,
        visits=chart.visits[:VISITS_SHOWN],
        older_visits=chart.visits[VISITS_SHOWN:],
        results=results[:RESULTS_SHOWN],
        older_results=results[RESULTS_SHOWN:],
        intake=intake,
        uploads=[
            d for d in documents.documents if d.is_upload and d.review_state == UploadState.PENDING
        ],
        prescriptions=[p for p in care.prescriptions if p.status == PrescriptionStatus.ACTIVE],
        care_plans=[p for p in care.care_plans if p.active],
        call=consultation_for(appointment),
        calls=calls,
    )
