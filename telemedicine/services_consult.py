"""Writes from the doctor's consultation screen: a note, a prescription, a referral and
the post-call summary, each on the visit of the video appointment.

Records owns every one of these writes: these functions only find (or make, once) the
visit the appointment's consultation is recorded on, then call records' services, which
check their own policies, validate, and record their audit events in the same
transaction. What records adds by its rules applies here unchanged: a patient-visible
note is shown once the visit is released; prescribing, referring and releasing need a
care relationship (not break-glass); a released visit fires records' "visit summary"
hook on commit, which notifies the patient ("open the portal", nothing medical).

Every function first asks `accounts.policies.can_use_consultation_screen` (the
appointment's own doctor, a video appointment), then runs in one transaction: when
records refuses bad input (a ValidationError), nothing is written, not even the visit
made for it. The visit is made under a transaction-level advisory lock on the
appointment, so two writes at the same moment make one visit, not two. The summary's
release takes its row locks before anything is recorded (the audit chain's lock is held
until the commit), so it makes the visit first, in a transaction of its own, when there
is none yet; the summary itself is checked before that.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import User
from records import services as records_services
from records import services_care as records_care
from records import services_documents as records_documents
from records.models import DocumentKind
from records.services import NOTE_MAX_LENGTH
from telemedicine import selectors_consult, services_video
from telemedicine.models import Consultation

if TYPE_CHECKING:
    from records.models import Document, Prescription, Visit, VisitNote

# Class id of the two-key advisory lock on an appointment's visit (scheduling uses
# 4201 and 4202; the audit chain a 64-bit key, another key space).
CONSULT_VISIT_LOCK_CLASS = 4380


def _allowed(by: User, appointment: Any) -> None:
    if not policies.can_use_consultation_screen(by, appointment):
        raise PermissionDenied


def _lock_appointment_visit(appointment: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", [CONSULT_VISIT_LOCK_CLASS, appointment.pk]
        )


def _visit_of(by: User, appointment: Any, *, lock: bool = False) -> Visit:
    """The appointment's visit, made by records' `visit_create` if there is none (at the
    appointment's time and location). Call inside a transaction."""
    _lock_appointment_visit(appointment)
    visit = selectors_consult.consultation_visit(by, appointment, lock=lock)
    if visit is None:
        visit = records_services.visit_create(
            by=by, patient=appointment.patient, appointment=appointment
        )
    return visit


def consultation_visit_ensure(*, by: User, appointment: Any) -> Visit:
    """The visit this consultation is recorded on: the appointment's, made once."""
    _allowed(by, appointment)
    with transaction.atomic():
        return _visit_of(by, appointment)


def consultation_note_add(*, by: User, appointment: Any, text: str, internal: bool) -> VisitNote:
    """A note on the consultation's visit: internal (clinic staff only) or for the patient
    (shown once the visit is released)."""
    _allowed(by, appointment)
    with transaction.atomic():
        visit = _visit_of(by, appointment)
        return records_services.visit_note_add(by=by, visit=visit, text=text, internal=internal)


def consultation_prescribe(
    *,
    by: User,
    appointment: Any,
    medication: str,
    dosage: str,
    instructions: str = "",
    is_repeat: bool = False,
    repeats_allowed: int = 0,
    valid_until: date | None = None,
) -> Prescription:
    """A prescription written during the call, linked to the consultation's visit. The
    patient sees it at once under "My prescriptions"."""
    _allowed(by, appointment)
    with transaction.atomic():
        visit = _visit_of(by, appointment)
        return records_care.prescription_create(
            by=by,
            patient=appointment.patient,
            medication=medication,
            dosage=dosage,
            instructions=instructions,
            is_repeat=is_repeat,
            repeats_allowed=repeats_allowed,
            valid_until=valid_until,
            visit=visit,
        )


def consultation_refer(
    *, by: User, appointment: Any, title: str, body: str, release: bool
) -> Document:
    """A referral written during the call (records renders its PDF in a worker), linked
    to the consultation's visit; with `release` the patient finds it under "My
    documents" once the PDF is ready."""
    _allowed(by, appointment)
    with transaction.atomic():
        visit = _visit_of(by, appointment)
        return records_documents.document_issue(
            by=by,
            patient=appointment.patient,
            kind=DocumentKind.REFERRAL,
            title=title,
            body=body,
            visit=visit,
            release=release,
        )


def _live_call(appointment: Any) -> Consultation | None:
    """The appointment's call, locked, if someone is in it (not before it started, not
    after it ended)."""
    return (
        Consultation.objects.select_for_update()
        .filter(appointment_id=appointment.pk, state__in=selectors_consult.LIVE_CALL_STATES)
        .first()
    )


def consultation_summary_release(
    *, by: User, appointment: Any, summary: str, end_call: bool = True
) -> Visit:
    """End the consultation with a summary the patient reads: the visit's summary is
    saved, the visit ends (now, unless it already has an end) and is signed and
    released through records' services — the patient then finds it under "My visits"
    with the patient-visible notes, and records' "visit summary" notification goes out
    on commit. With `end_call`, a call still going on is ended for both
    (`telemedicine.services_video.consultation_end`) in the same transaction.

    Writing the summary again after the release corrects it (the patient sees the new
    text; no second notification)."""
    _allowed(by, appointment)
    summary = (summary or "").strip()
    if not summary:
        raise ValidationError({"summary": _("Write the summary for the patient.")})
    if len(summary) > NOTE_MAX_LENGTH:
        raise ValidationError({"summary": _("The summary is too long (at most 10000 characters).")})
    if selectors_consult.consultation_visit(by, appointment) is None:
        # Made first, on its own: the release below then takes every row lock it needs
        # (the call, the visit and its patient) before the first audit record, which
        # holds the audit chain's lock until the commit.
        consultation_visit_ensure(by=by, appointment=appointment)
    with transaction.atomic():
        _lock_appointment_visit(appointment)
        call = _live_call(appointment) if end_call else None
        visit = _visit_of(by, appointment, lock=True)
        now = timezone.now()
        ended_at = now if visit.ended_at is None and now >= visit.started_at else None
        visit = records_services.visit_update(
            by=by, visit=visit, summary=summary, ended_at=ended_at
        )
        visit = records_services.visit_release(by=by, visit=visit)
        if call is not None and policies.can_end_consultation(by, appointment):
            services_video.consultation_end(by=by, appointment=appointment)
    return visit
