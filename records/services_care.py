"""Every write to prescriptions, renewal requests, intake forms, vaccinations and care
plans.

Like records.services: keyword-only arguments, the acting user first (`by=`; None for
the system), `accounts.policies` decides who may act (PermissionDenied otherwise), one
transaction per call with its audit event recorded last. Bad input raises a
ValidationError with a message for the person before anything is written, so a refused
call changes nothing.

A renewal request follows one state machine (`records.models.care.RENEWAL_TRANSITIONS`):

    submitted → under_review → approved → sent_to_pharmacy → completed
                             ↘ rejected   ↘ ready          ↗

Every change is a `RenewalEvent` row (who, when, from, to: the history the patient
sees) and fires `hooks.prescription_status_changed` on commit, so the notifications app
can tell the patient there is news (never which medication). Approving uses one of the
prescription's repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from records import hooks
from records.models import (
    INTAKE_FIELDS,
    OPEN_RENEWAL_STATUSES,
    CarePlan,
    IntakeForm,
    IntakeStatus,
    Prescription,
    PrescriptionStatus,
    RenewalEvent,
    RenewalRequest,
    RenewalStatus,
    Vaccination,
    Visit,
)

MEDICATION_MAX_LENGTH = 300
PHARMACY_MAX_LENGTH = 300
NOTES_MAX_LENGTH = 2_000
REASON_MAX_LENGTH = 2_000
INTAKE_ANSWER_MAX_LENGTH = 5_000
INSTRUCTIONS_MAX_LENGTH = 10_000
MAX_REPEATS = 12
MAX_DOSE_NUMBER = 20
INTAKE_REMINDER_WINDOW = timedelta(hours=48)


def _text(value: Any, *, field: str, limit: int, required: str = "") -> str:
    """A stripped text within its limit; `required` is the message when it is empty."""
    text = (value or "").strip() if isinstance(value, str) or value is None else str(value)
    if required and not text:
        raise ValidationError({field: required})
    if len(text) > limit:
        raise ValidationError(
            {field: _("This is too long (at most %(limit)d characters).") % {"limit": limit}}
        )
    return text


# --- Prescriptions -------------------------------------------------------------------------


def prescription_create(
    *,
    by: User | None,
    patient: PatientProfile,
    medication: str,
    dosage: str,
    instructions: str = "",
    is_repeat: bool = False,
    repeats_allowed: int = 0,
    valid_until: date | None = None,
    visit: Visit | None = None,
    prescriber: User | None = None,
    issued_at: datetime | None = None,
) -> Prescription:
    """A doctor in charge of the patient prescribes a medication (the system, e.g. the
    MIS, names the prescriber). A repeat prescription may be renewed `repeats_allowed`
    times (1 to 12)."""
    if not policies.can_prescribe(by, patient):
        raise PermissionDenied
    prescriber = prescriber or by
    if prescriber is None or prescriber.role != Role.DOCTOR:
        raise ValidationError({"prescriber": _("Prescriptions are written by doctors.")})
    if by is not None and prescriber.pk != by.pk:
        raise PermissionDenied
    medication = _text(
        medication,
        field="medication",
        limit=MEDICATION_MAX_LENGTH,
        required=_("Enter the medication."),
    )
    dosage = _text(
        dosage, field="dosage", limit=MEDICATION_MAX_LENGTH, required=_("Enter the dosage.")
    )
    instructions = _text(instructions, field="instructions", limit=INSTRUCTIONS_MAX_LENGTH)
    repeats = int(repeats_allowed or 0)
    if is_repeat and not 1 <= repeats <= MAX_REPEATS:
        raise ValidationError(
            {
                "repeats_allowed": _("A repeat prescription allows from 1 to %(max)d renewals.")
                % {"max": MAX_REPEATS}
            }
        )
    if not is_repeat and repeats:
        raise ValidationError({"repeats_allowed": _("Only a repeat prescription can be renewed.")})
    if valid_until is not None and valid_until < timezone.localdate():
        raise ValidationError({"valid_until": _("The end of validity cannot be in the past.")})
    if visit is not None and visit.patient_id != patient.pk:
        raise ValidationError({"visit": _("This visit belongs to another patient.")})
    with transaction.atomic():
        prescription = Prescription.objects.create(
            patient=patient,
            prescriber=prescriber,
            visit=visit,
            medication=medication,
            dosage=dosage,
            instructions=instructions,
            is_repeat=bool(is_repeat),
            repeats_allowed=repeats if is_repeat else 0,
            valid_until=valid_until,
            issued_at=issued_at or timezone.now(),
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=prescription,
            patient=patient.user,
            detail={"what": "prescription", "repeat": prescription.is_repeat},
        )
    return prescription


def prescription_end(*, by: User | None, prescription: Prescription, status: str) -> Prescription:
    """A doctor in charge of the patient marks an active prescription completed (the
    course is over) or cancelled. An ended prescription is no longer renewable; a
    renewal still in progress can then only be rejected."""
    if not policies.can_prescribe(by, prescription.patient):
        raise PermissionDenied
    if status not in (PrescriptionStatus.COMPLETED, PrescriptionStatus.CANCELLED):
        raise ValidationError({"status": _("Choose completed or cancelled.")})
    with transaction.atomic():
        locked = (
            Prescription.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=prescription.pk)
        )
        if locked.status != PrescriptionStatus.ACTIVE:
            raise ValidationError(
                _("This prescription is already %(status)s.")
                % {"status": locked.get_status_display().lower()}
            )
        previous = locked.status
        locked.status = status
        locked.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=locked,
            patient=locked.patient.user,
            detail={"what": "prescription", "from": previous, "to": status},
        )
    return locked


def _renewable_or_error(prescription: Prescription) -> None:
    if prescription.status != PrescriptionStatus.ACTIVE:
        raise ValidationError(
            _("This prescription is %(status)s and cannot be renewed.")
            % {"status": prescription.get_status_display().lower()}
        )
    if not prescription.is_repeat:
        raise ValidationError(
            _("This is not a repeat prescription. Please book an appointment with your doctor.")
        )
    if prescription.repeats_left <= 0:
        raise ValidationError(
            _("All renewals of this prescription are used. Please book an appointment.")
        )
    if prescription.expired:
        raise ValidationError(
            _("This prescription has expired. Please book an appointment with your doctor.")
        )


# --- Renewal requests ---------------------------------------------------------------------


def _record_change(renewal: RenewalRequest, *, by: User | None, previous: str, action: str) -> None:
    """The history row, the hook and the audit event of one state change."""
    RenewalEvent.objects.create(
        renewal=renewal, by=by, from_status=previous, to_status=renewal.status
    )
    hooks.prescription_status_changed.fire_on_commit(
        renewal_id=renewal.pk,
        patient_user_id=renewal.patient.user_id,
        status=renewal.status,
    )
    audit_record(
        actor=by,
        action=action,
        obj=renewal,
        patient=renewal.patient.user,
        detail={
            "what": "renewal_request",
            "prescription": renewal.prescription_id,
            "from": previous,
            "to": renewal.status,
        },
    )


def renewal_request_submit(
    *,
    by: User,
    prescription: Prescription,
    confirmed_dosage: str,
    pharmacy: str,
    notes: str = "",
) -> RenewalRequest:
    """The patient asks to renew their own active repeat prescription that has repeats
    left, confirming the dosage they take and the pharmacy it should go to. One request
    per prescription at a time."""
    if not policies.can_request_renewal(by, prescription):
        raise PermissionDenied
    confirmed_dosage = _text(
        confirmed_dosage,
        field="confirmed_dosage",
        limit=MEDICATION_MAX_LENGTH,
        required=_("Confirm the dosage you take."),
    )
    pharmacy = _text(
        pharmacy,
        field="pharmacy",
        limit=PHARMACY_MAX_LENGTH,
        required=_("Enter the pharmacy the prescription should go to."),
    )
    notes = _text(notes, field="notes", limit=NOTES_MAX_LENGTH)
    with transaction.atomic():
        # The prescription's row lock serialises requests for it: a second one sees the
        # first as open.
        locked = (
            Prescription.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=prescription.pk)
        )
        _renewable_or_error(locked)
        if locked.renewals.filter(status__in=OPEN_RENEWAL_STATUSES).exists():
            raise ValidationError(_("A renewal of this prescription is already in progress."))
        try:
            with transaction.atomic():
                renewal = RenewalRequest.objects.create(
                    prescription=locked,
                    patient=locked.patient,
                    confirmed_dosage=confirmed_dosage,
                    pharmacy=pharmacy,
                    notes=notes,
                    status=RenewalStatus.SUBMITTED,
                )
        except IntegrityError as exc:
            raise ValidationError(
                _("A renewal of this prescription is already in progress.")
            ) from exc
        _record_change(renewal, by=by, previous="", action=AuditAction.CREATE)
    return renewal


_ACTION_WORDS = {
    RenewalStatus.UNDER_REVIEW: "start_review",
    RenewalStatus.APPROVED: "approve",
    RenewalStatus.REJECTED: "reject",
    RenewalStatus.SENT_TO_PHARMACY: "mark_sent",
    RenewalStatus.READY: "mark_ready",
    RenewalStatus.COMPLETED: "complete",
}


def _refusal(renewal: RenewalRequest, to: str) -> ValidationError:
    current = RenewalStatus(renewal.status).label
    target = RenewalStatus(to).label
    return ValidationError(
        _("This request is “%(current)s”; it cannot become “%(target)s” from there.")
        % {"current": current, "target": target},
        code="invalid_transition",
    )


def _advance(
    *,
    by: User,
    renewal: RenewalRequest,
    to: str,
    apply: Callable[[RenewalRequest, Prescription], None] | None = None,
) -> RenewalRequest:
    """Move a renewal request one step along the state machine, or refuse (nothing
    changes). Rows are locked prescription first, then the request (as on submit)."""
    if not policies.can_review_renewal(by, renewal):
        raise PermissionDenied
    with transaction.atomic():
        prescription = Prescription.objects.select_for_update(of=("self",)).get(
            pk=renewal.prescription_id
        )
        locked = (
            RenewalRequest.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=renewal.pk)
        )
        if not locked.can_go_to(to):
            raise _refusal(locked, to)
        previous = locked.status
        if apply is not None:
            apply(locked, prescription)
        locked.status = to
        locked.save()
        locked.prescription = prescription
        _record_change(locked, by=by, previous=previous, action=AuditAction.CHANGE)
    return locked


def renewal_request_start_review(*, by: User, renewal: RenewalRequest) -> RenewalRequest:
    """A doctor in charge of the patient takes a submitted request into review."""

    def apply(r: RenewalRequest, _p: Prescription) -> None:
        r.reviewer = by

    return _advance(by=by, renewal=renewal, to=RenewalStatus.UNDER_REVIEW, apply=apply)


def renewal_request_approve(*, by: User, renewal: RenewalRequest) -> RenewalRequest:
    """Approve a request under review: it uses one repeat of the prescription, which
    must still be active, unexpired and have repeats left."""

    def apply(r: RenewalRequest, p: Prescription) -> None:
        _renewable_or_error(p)
        p.repeats_used += 1
        p.save(update_fields=["repeats_used", "updated_at"])
        r.reviewer = by
        r.decided_at = timezone.now()

    return _advance(by=by, renewal=renewal, to=RenewalStatus.APPROVED, apply=apply)


def renewal_request_reject(*, by: User, renewal: RenewalRequest, reason: str) -> RenewalRequest:
    """Reject a request under review, telling the patient why (required)."""
    reason = _text(
        reason,
        field="reason",
        limit=REASON_MAX_LENGTH,
        required=_("Tell the patient why the request is rejected."),
    )

    def apply(r: RenewalRequest, _p: Prescription) -> None:
        r.rejection_reason = reason
        r.reviewer = by
        r.decided_at = timezone.now()

    return _advance(by=by, renewal=renewal, to=RenewalStatus.REJECTED, apply=apply)


def renewal_request_mark_sent(*, by: User, renewal: RenewalRequest) -> RenewalRequest:
    """The approved prescription went to the patient's pharmacy."""
    return _advance(by=by, renewal=renewal, to=RenewalStatus.SENT_TO_PHARMACY)


def renewal_request_mark_ready(*, by: User, renewal: RenewalRequest) -> RenewalRequest:
    """The approved prescription is ready to collect at the clinic."""
    return _advance(by=by, renewal=renewal, to=RenewalStatus.READY)


def renewal_request_complete(*, by: User, renewal: RenewalRequest) -> RenewalRequest:
    """The patient has the prescription: the request is done."""
    return _advance(by=by, renewal=renewal, to=RenewalStatus.COMPLETED)


RENEWAL_ACTIONS: dict[str, Callable[..., RenewalRequest]] = {
    "start_review": renewal_request_start_review,
    "approve": renewal_request_approve,
    "reject": renewal_request_reject,
    "mark_sent": renewal_request_mark_sent,
    "mark_ready": renewal_request_mark_ready,
    "complete": renewal_request_complete,
}


def renewal_actions_from(status: str) -> list[str]:
    """The action names that move a request on from `status` (for the staff page)."""
    from records.models import RENEWAL_TRANSITIONS

    return [_ACTION_WORDS[to] for to in RENEWAL_TRANSITIONS.get(status, ())]


# --- Intake forms -----------------------------------------------------------------------------


def _appointment_upcoming(appointment: Any, now: datetime) -> bool:
    from scheduling.models import UPCOMING_STATUSES

    return appointment.status in UPCOMING_STATUSES and appointment.starts_at > now


def _intake_answers(answers: dict[str, Any]) -> dict[str, str]:
    unknown = set(answers) - set(INTAKE_FIELDS)
    if unknown:
        raise ValidationError(
            _("Unknown intake form fields: %(names)s") % {"names": ", ".join(sorted(unknown))}
        )
    return {
        name: _text(value, field=name, limit=INTAKE_ANSWER_MAX_LENGTH)
        for name, value in answers.items()
        if value is not None
    }


def _intake_save(
    *, by: User, appointment: Any, answers: dict[str, Any], submit: bool
) -> IntakeForm:
    if not policies.can_fill_intake_form(by, appointment):
        raise PermissionDenied
    cleaned = _intake_answers(answers)
    now = timezone.now()
    if not _appointment_upcoming(appointment, now):
        raise ValidationError(
            _("The intake form can only be filled in before an upcoming appointment.")
        )
    with transaction.atomic():
        form, created = IntakeForm.objects.get_or_create(
            appointment=appointment, defaults={"patient": appointment.patient}
        )
        form = IntakeForm.objects.select_for_update().get(pk=form.pk)
        if form.submitted:
            raise ValidationError(
                _("This form has already been sent to your doctor and can no longer be changed.")
            )
        for name, value in cleaned.items():
            setattr(form, name, value)
        if submit:
            if not (form.reason or "").strip():
                raise ValidationError({"reason": _("Tell the doctor why you are coming.")})
            form.status = IntakeStatus.SUBMITTED
            form.submitted_at = now
        form.save()
        audit_record(
            actor=by,
            action=AuditAction.CREATE if created else AuditAction.CHANGE,
            obj=form,
            patient=appointment.patient.user,
            detail={
                "what": "intake_form",
                "appointment": appointment.pk,
                "status": form.status,
                "fields": sorted(cleaned),
            },
        )
    return form


def intake_form_save_draft(*, by: User, appointment: Any, **answers: str | None) -> IntakeForm:
    """The patient saves their answers for their own upcoming appointment; the draft
    resumes where they left it. Answers not given (None) are kept as they were."""
    return _intake_save(by=by, appointment=appointment, answers=answers, submit=False)


def intake_form_submit(*, by: User, appointment: Any, **answers: str | None) -> IntakeForm:
    """Save the answers and send the form to the doctor (the reason for the visit is
    required). A submitted form no longer changes."""
    return _intake_save(by=by, appointment=appointment, answers=answers, submit=True)


def intake_forms_due_reminders(*, now: datetime | None = None) -> list[int]:
    """The beat sweep for unfinished intake forms. Appointments (booked or confirmed)
    starting within the next 48 hours whose form is missing or still a draft, and not
    reminded yet, get their reminder once: a missing form becomes an empty draft row,
    `reminded_at` is set, and `hooks.intake_form_reminder_due` fires on commit for each.
    Returns the ids of those appointments. Idempotent, and safe to run concurrently
    (rows are claimed with SKIP LOCKED)."""
    from scheduling.models import UPCOMING_STATUSES, Appointment

    now = now or timezone.now()
    due = Appointment.objects.filter(
        status__in=UPCOMING_STATUSES,
        during__startswith__gt=now,
        during__startswith__lte=now + INTAKE_REMINDER_WINDOW,
    )
    with transaction.atomic():
        missing = list(due.filter(intake_form__isnull=True).values_list("pk", "patient_id"))
        if missing:
            IntakeForm.objects.bulk_create(
                [IntakeForm(appointment_id=a, patient_id=p) for a, p in missing],
                ignore_conflicts=True,
            )
        forms = list(
            IntakeForm.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                appointment__in=due.values("pk"),
                status=IntakeStatus.DRAFT,
                reminded_at__isnull=True,
            )
            .select_related("patient")
            .order_by("pk")
        )
        if not forms:
            return []
        IntakeForm.objects.filter(pk__in=[f.pk for f in forms]).update(reminded_at=now)
        for form in forms:
            hooks.intake_form_reminder_due.fire_on_commit(
                appointment_id=form.appointment_id, patient_user_id=form.patient.user_id
            )
        audit_record(
            actor=None,
            action=AuditAction.CHANGE,
            object_type=IntakeForm._meta.label_lower,
            detail={
                "what": "intake_form_reminders",
                "ids": [str(f.pk) for f in forms][:200],
                "appointments": [f.appointment_id for f in forms][:200],
            },
        )
    return [form.appointment_id for form in forms]


# --- Vaccinations ---------------------------------------------------------------------------


def vaccination_record(
    *,
    by: User | None,
    patient: PatientProfile,
    vaccine: str,
    given_on: date,
    dose_number: int = 1,
    lot: str = "",
    notes: str = "",
) -> Vaccination:
    """A doctor or nurse in charge of the patient records a vaccination."""
    if not policies.can_record_vaccination(by, patient):
        raise PermissionDenied
    vaccine = _text(vaccine, field="vaccine", limit=200, required=_("Enter the vaccine."))
    lot = _text(lot, field="lot", limit=60)
    notes = _text(notes, field="notes", limit=NOTES_MAX_LENGTH)
    if given_on is None:
        raise ValidationError({"given_on": _("Enter the date the vaccine was given.")})
    if given_on > timezone.localdate():
        raise ValidationError({"given_on": _("The date cannot be in the future.")})
    try:
        dose = int(dose_number)
    except (TypeError, ValueError) as exc:
        raise ValidationError({"dose_number": _("Enter the dose number.")}) from exc
    if not 1 <= dose <= MAX_DOSE_NUMBER:
        raise ValidationError(
            {"dose_number": _("The dose number is from 1 to %(max)d.") % {"max": MAX_DOSE_NUMBER}}
        )
    with transaction.atomic():
        vaccination = Vaccination.objects.create(
            patient=patient,
            vaccine=vaccine,
            given_on=given_on,
            dose_number=dose,
            lot=lot,
            notes=notes,
            recorded_by=by,
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=vaccination,
            patient=patient.user,
            detail={"what": "vaccination"},
        )
    return vaccination


# --- Care plans -------------------------------------------------------------------------------


def _plan_dates(start: date, review: date | None) -> None:
    if review is not None and review < start:
        raise ValidationError({"review_date": _("The review date cannot be before the start.")})


def care_plan_create(
    *,
    by: User,
    patient: PatientProfile,
    condition: str,
    instructions: str,
    start_date: date | None = None,
    review_date: date | None = None,
) -> CarePlan:
    """A doctor in charge of the patient writes a care plan for a chronic condition."""
    if not policies.can_manage_care_plan(by, patient):
        raise PermissionDenied
    condition = _text(condition, field="condition", limit=300, required=_("Enter the condition."))
    instructions = _text(
        instructions,
        field="instructions",
        limit=INSTRUCTIONS_MAX_LENGTH,
        required=_("Write the instructions for the patient."),
    )
    start_date = start_date or timezone.localdate()
    _plan_dates(start_date, review_date)
    with transaction.atomic():
        plan = CarePlan.objects.create(
            patient=patient,
            doctor=by,
            condition=condition,
            instructions=instructions,
            start_date=start_date,
            review_date=review_date,
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=plan,
            patient=patient.user,
            detail={"what": "care_plan"},
        )
    return plan


_UNSET: Any = object()


def care_plan_update(
    *,
    by: User,
    plan: CarePlan,
    condition: str | None = None,
    instructions: str | None = None,
    start_date: date | None = None,
    review_date: date | None = _UNSET,
    active: bool | None = None,
) -> CarePlan:
    """A doctor in charge of the patient changes a plan (arguments left out stay as
    they are; `review_date=None` clears it; `active=False` ends the plan)."""
    if not policies.can_manage_care_plan(by, plan.patient):
        raise PermissionDenied
    changes: dict[str, Any] = {}
    if condition is not None:
        changes["condition"] = _text(
            condition, field="condition", limit=300, required=_("Enter the condition.")
        )
    if instructions is not None:
        changes["instructions"] = _text(
            instructions,
            field="instructions",
            limit=INSTRUCTIONS_MAX_LENGTH,
            required=_("Write the instructions for the patient."),
        )
    if start_date is not None:
        changes["start_date"] = start_date
    if review_date is not _UNSET:
        changes["review_date"] = review_date
    if active is not None:
        changes["active"] = bool(active)
    with transaction.atomic():
        locked = (
            CarePlan.objects.select_for_update().select_related("patient__user").get(pk=plan.pk)
        )
        _plan_dates(
            changes.get("start_date", locked.start_date),
            changes.get("review_date", locked.review_date),
        )
        for name, value in changes.items():
            setattr(locked, name, value)
        locked.save()
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=locked,
            patient=locked.patient.user,
            detail={"what": "care_plan", "fields": sorted(changes), "active": locked.active},
        )
    return locked
