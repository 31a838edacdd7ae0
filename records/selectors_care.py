"""Reads of prescriptions, renewal requests, intake forms, vaccinations and care plans,
already filtered to what the asking user may see.

The single access path to this part of the record, as in records.selectors: every
function checks `accounts.policies`, answers 404 for missing and forbidden alike (a
forbidden attempt is recorded as DENIED with the patient concerned), and records each
view (VIEW, with the ids shown, flagged as break-glass when that is the viewer's only
way in).

- A patient sees their own prescriptions, renewal requests (with their history),
  intake forms, vaccinations and care plans.
- Doctors and nurses who may open the record see the same (nurses: their department's
  patients); the renewal queue is for doctors, listing requests of the patients in
  their care with each patient's medication history.
- An intake form is shown to the appointment's doctor (and the patient's clinicians)
  once the patient submits it; before that only its state.
- Reception and administrators see none of it.

Pages read a fixed number of queries whatever the number of rows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from accounts import policies
from accounts import selectors as account_selectors
from accounts.models import PatientProfile, Role, User
from records.models import (
    OPEN_RENEWAL_STATUSES,
    CarePlan,
    IntakeForm,
    Prescription,
    PrescriptionStatus,
    RenewalEvent,
    RenewalRequest,
    RenewalStatus,
    Vaccination,
)
from records.selectors import deny as _deny
from records.selectors import record_access as _record_view

CLINICIANS = frozenset({Role.DOCTOR, Role.NURSE})
QUEUE_LIMIT = 200
HISTORY_LIMIT = 100
LIST_LIMIT = 200
# The queue's sections: what waits for a decision, and what waits to be dispatched.
TO_REVIEW = (RenewalStatus.SUBMITTED, RenewalStatus.UNDER_REVIEW)
TO_DISPATCH = (RenewalStatus.APPROVED, RenewalStatus.SENT_TO_PHARMACY, RenewalStatus.READY)


# --- Recording -------------------------------------------------------------------------------


def _public_id(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _own_profile(user: Any, what: str) -> PatientProfile:
    """The signed-in patient's own profile; anyone else gets a recorded 404."""
    profile = (
        getattr(user, "patient_profile", None)
        if getattr(user, "role", None) == Role.PATIENT
        else None
    )
    if profile is None:
        raise _deny(user, what)
    return profile


def _is_clinician(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role in CLINICIANS)


# --- Querysets ---------------------------------------------------------------------------------


def _prescriptions() -> QuerySet[Prescription]:
    return Prescription.objects.select_related("prescriber__staff_profile")


def _events() -> Prefetch:
    return Prefetch(
        "events",
        queryset=RenewalEvent.objects.select_related(
            "by__staff_profile", "by__patient_profile"
        ).order_by("at", "id"),
    )


def _renewals() -> QuerySet[RenewalRequest]:
    return RenewalRequest.objects.select_related(
        "prescription__prescriber__staff_profile",
        "patient__user",
        "reviewer__staff_profile",
    )


def _with_open_renewal(queryset: QuerySet[Prescription]) -> QuerySet[Prescription]:
    return queryset.prefetch_related(
        Prefetch(
            "renewals",
            queryset=RenewalRequest.objects.filter(status__in=OPEN_RENEWAL_STATUSES),
            to_attr="open_renewals",
        )
    )


def _mark_requestable(prescriptions: list[Prescription]) -> None:
    for p in prescriptions:
        open_renewals = getattr(p, "open_renewals", [])
        p.open_renewal = open_renewals[0] if open_renewals else None
        p.requestable = p.renewable and p.open_renewal is None


# --- The patient's own pages -------------------------------------------------------------------


def my_prescriptions(user: Any) -> list[Prescription]:
    """The patient's prescriptions, active first, newest first, each marked
    `requestable` (a renewal may be asked for now) with its `open_renewal`, if any."""
    profile = _own_profile(user, "prescriptions")
    rows = list(
        _with_open_renewal(_prescriptions().filter(patient=profile)).order_by(
            "status", "-issued_at", "-id"
        )[:LIST_LIMIT]
    )
    rows.sort(key=lambda p: p.status != PrescriptionStatus.ACTIVE)
    _mark_requestable(rows)
    _record_view(
        user,
        profile,
        "prescriptions",
        object_type=Prescription._meta.label_lower,
        ids=[p.pk for p in rows],
    )
    return rows


def renewable_prescriptions(user: Any) -> list[Prescription]:
    """The patient's repeat prescriptions a renewal may be asked for now: active,
    unexpired, with repeats left and no request in progress."""
    profile = _own_profile(user, "renewable_prescriptions")
    candidates = list(
        _with_open_renewal(
            _prescriptions().filter(
                patient=profile, status=PrescriptionStatus.ACTIVE, is_repeat=True
            )
        ).order_by("-issued_at", "-id")[:LIST_LIMIT]
    )
    _mark_requestable(candidates)
    rows = [p for p in candidates if p.requestable]
    _record_view(
        user,
        profile,
        "renewable_prescriptions",
        object_type=Prescription._meta.label_lower,
        ids=[p.pk for p in rows],
    )
    return rows


def my_renewals(user: Any) -> list[RenewalRequest]:
    """The patient's renewal requests, newest first, each with its history."""
    profile = _own_profile(user, "renewals")
    rows = list(
        _renewals()
        .filter(patient=profile)
        .prefetch_related(_events())
        .order_by("-submitted_at", "-id")[:LIST_LIMIT]
    )
    _record_view(
        user,
        profile,
        "renewals",
        object_type=RenewalRequest._meta.label_lower,
        ids=[r.pk for r in rows],
    )
    return rows


def renewal_get_for(user: Any, public_id: Any, *, audience: str = "patient") -> RenewalRequest:
    """One renewal request with its history. `audience="patient"`: the patient's own;
    `"staff"`: doctors and nurses who may open the patient's record, with the patient's
    medication history (`renewal.medication_history`). 404 for missing and forbidden
    alike; a forbidden attempt is recorded with the patient."""
    key = _public_id(public_id)
    renewal = (
        _renewals().prefetch_related(_events()).filter(public_id=key).first()
        if key is not None
        else None
    )
    if renewal is None:
        raise _deny(user, "renewal_request", found=False, audience=audience)
    is_patient = getattr(user, "role", None) == Role.PATIENT
    allowed = (
        is_patient == (audience == "patient")
        and (is_patient or _is_clinician(user))
        and policies.can_view_care_item(user, renewal.patient)
    )
    if not allowed:
        raise _deny(
            user, "renewal_request", obj=renewal, patient=renewal.patient.user, audience=audience
        )
    history: list[Prescription] = []
    if audience == "staff":
        # The reviewer sees the patient's medication history beside the request.
        history = _histories([renewal.patient_id])[renewal.patient_id].prescriptions
    renewal.medication_history = history
    renewal.break_glass = _record_view(
        user,
        renewal.patient,
        "renewal_request",
        obj=renewal,
        audience=audience,
        prescriptions=[p.pk for p in history][:200],
    )
    return renewal


@dataclass
class IntakeItem:
    """An upcoming appointment and its intake form (None: not started)."""

    appointment: Any
    form: IntakeForm | None


def _upcoming_appointments(profile: PatientProfile, now: datetime):  # noqa: ANN202
    from scheduling.models import UPCOMING_STATUSES, Appointment

    return (
        Appointment.objects.filter(
            patient=profile, status__in=UPCOMING_STATUSES, during__startswith__gt=now
        )
        .select_related("doctor__staff_profile", "location", "consultation_type", "intake_form")
        .order_by("during")
    )


def _intake_of(appointment: Any) -> IntakeForm | None:
    try:
        return appointment.intake_form
    except IntakeForm.DoesNotExist:
        return None


def my_intake_forms(user: Any) -> list[IntakeItem]:
    """The patient's upcoming appointments, soonest first, with their form's state."""
    profile = _own_profile(user, "intake_forms")
    items = [
        IntakeItem(a, _intake_of(a))
        for a in _upcoming_appointments(profile, timezone.now())[:LIST_LIMIT]
    ]
    _record_view(
        user,
        profile,
        "intake_forms",
        object_type=IntakeForm._meta.label_lower,
        ids=[i.form.pk for i in items if i.form is not None],
    )
    return items


def _appointment_with_form(public_id: Any):  # noqa: ANN202
    from scheduling.models import Appointment

    key = _public_id(public_id)
    if key is None:
        return None
    return (
        Appointment.objects.select_related(
            "patient__user",
            "doctor__staff_profile",
            "location",
            "consultation_type",
            "intake_form",
        )
        .filter(public_id=key)
        .first()
    )


def intake_get_for_patient(user: Any, appointment_public_id: Any) -> IntakeItem:
    """The intake form of the patient's own appointment (None if not started yet)."""
    appointment = _appointment_with_form(appointment_public_id)
    if appointment is None:
        raise _deny(user, "intake_form", found=False, audience="patient")
    if not (
        getattr(user, "role", None) == Role.PATIENT
        and policies.can_fill_intake_form(user, appointment)
    ):
        raise _deny(
            user,
            "intake_form",
            obj=appointment,
            patient=appointment.patient.user,
            audience="patient",
        )
    form = _intake_of(appointment)
    _record_view(
        user,
        appointment.patient,
        "intake_form",
        obj=form,
        object_type="" if form else IntakeForm._meta.label_lower,
        appointment=appointment.pk,
    )
    return IntakeItem(appointment, form)


def my_vaccinations(user: Any) -> list[Vaccination]:
    profile = _own_profile(user, "vaccinations")
    rows = list(
        Vaccination.objects.filter(patient=profile)
        .select_related("recorded_by__staff_profile")
        .order_by("-given_on", "-id")[:LIST_LIMIT]
    )
    _record_view(
        user,
        profile,
        "vaccinations",
        object_type=Vaccination._meta.label_lower,
        ids=[v.pk for v in rows],
    )
    return rows


def my_care_plans(user: Any) -> list[CarePlan]:
    """The patient's care plans, active first."""
    profile = _own_profile(user, "care_plans")
    rows = list(
        CarePlan.objects.filter(patient=profile)
        .select_related("doctor__staff_profile")
        .order_by("-active", "-start_date", "-id")[:LIST_LIMIT]
    )
    _record_view(
        user,
        profile,
        "care_plans",
        object_type=CarePlan._meta.label_lower,
        ids=[p.pk for p in rows],
    )
    return rows


# --- Staff: a patient's care, the renewal queue, one renewal, an intake form ---------------------


def _clinical_profile(user: Any, profile_id: int, what: str, allowed: Any = None) -> PatientProfile:
    """The patient whose care pages a clinician opens. `allowed` (a policy of user and
    profile) defaults to reading: doctors and nurses who may open the record."""
    profile = (
        PatientProfile.objects.select_related("user", "department").filter(pk=profile_id).first()
    )
    check = allowed or (lambda u, p: _is_clinician(u) and policies.can_view_care_item(u, p))
    if profile is None or not check(user, profile):
        raise _deny(
            user,
            what,
            obj=profile,
            patient=profile.user if profile is not None else None,
            found=profile is not None,
        )
    return profile


def patient_for_care_writing(user: Any, profile_id: int, what: str, allowed: Any) -> PatientProfile:
    """The patient a clinician is about to prescribe for, vaccinate or plan care for:
    404 (recorded) unless `allowed(user, profile)`; the form page is recorded as a view."""
    profile = _clinical_profile(user, profile_id, what, allowed)
    _record_view(user, profile, what, obj=profile)
    return profile


@dataclass
class MedicationHistory:
    """A patient's prescriptions, newest first, each with its renewal requests."""

    prescriptions: list[Prescription] = field(default_factory=list)


def _histories(patient_ids: list[int]) -> dict[int, MedicationHistory]:
    """Medication histories of several patients in two queries."""
    out: dict[int, MedicationHistory] = defaultdict(MedicationHistory)
    if not patient_ids:
        return out
    rows = (
        _prescriptions()
        .filter(patient_id__in=patient_ids)
        .prefetch_related(
            Prefetch(
                "renewals",
                queryset=RenewalRequest.objects.select_related("reviewer__staff_profile").order_by(
                    "-submitted_at", "-id"
                ),
                to_attr="renewal_list",
            )
        )
        .order_by("patient_id", "-issued_at", "-id")
    )
    for p in rows:
        history = out[p.patient_id]
        if len(history.prescriptions) < HISTORY_LIMIT:
            history.prescriptions.append(p)
    return out


@dataclass
class PatientCare:
    profile: PatientProfile
    prescriptions: list[Prescription]
    renewals: list[RenewalRequest]
    vaccinations: list[Vaccination]
    care_plans: list[CarePlan]
    intake: list[IntakeItem]
    break_glass: bool


def patient_care(user: Any, profile_id: int) -> PatientCare:
    """A clinician's view of a patient's care: prescriptions with their renewals,
    vaccinations, care plans and the intake forms of upcoming appointments."""
    profile = _clinical_profile(user, profile_id, "patient_care")
    prescriptions = _histories([profile.pk])[profile.pk].prescriptions
    renewals = list(
        _renewals()
        .filter(patient=profile, status__in=OPEN_RENEWAL_STATUSES)
        .order_by("submitted_at", "id")
    )
    vaccinations = list(
        Vaccination.objects.filter(patient=profile)
        .select_related("recorded_by__staff_profile")
        .order_by("-given_on", "-id")[:LIST_LIMIT]
    )
    plans = list(
        CarePlan.objects.filter(patient=profile)
        .select_related("doctor__staff_profile")
        .order_by("-active", "-start_date", "-id")[:LIST_LIMIT]
    )
    intake = [
        IntakeItem(a, _intake_of(a))
        for a in _upcoming_appointments(profile, timezone.now())[:LIST_LIMIT]
    ]
    break_glass = _record_view(
        user,
        profile,
        "patient_care",
        obj=profile,
        prescriptions=[p.pk for p in prescriptions][:200],
        vaccinations=[v.pk for v in vaccinations][:200],
        care_plans=[c.pk for c in plans][:200],
        intake_forms=[i.form.pk for i in intake if i.form is not None][:200],
    )
    return PatientCare(
        profile=profile,
        prescriptions=prescriptions,
        renewals=renewals,
        vaccinations=vaccinations,
        care_plans=plans,
        intake=intake,
        break_glass=break_glass,
    )


@dataclass
class RenewalQueue:
    to_review: list[RenewalRequest]
    to_dispatch: list[RenewalRequest]
    histories: dict[int, MedicationHistory]


def renewal_queue(user: Any) -> RenewalQueue:
    """Renewal requests of the patients this doctor is in charge of, oldest first:
    those waiting for a decision, and approved ones waiting to be sent or collected;
    each patient's medication history beside them. Recorded per patient shown."""
    if not policies.can_use_renewal_queue(user):
        raise _deny(user, "renewal_queue")
    patients = account_selectors.patients_in_care_of(user).values("pk")
    rows = list(
        _renewals()
        .filter(patient__in=patients, status__in=OPEN_RENEWAL_STATUSES)
        .exclude(patient__user=user)
        .order_by("submitted_at", "id")[:QUEUE_LIMIT]
    )
    patient_ids = sorted({r.patient_id for r in rows})
    histories = _histories(patient_ids)
    by_patient: dict[int, list[RenewalRequest]] = defaultdict(list)
    for r in rows:
        by_patient[r.patient_id].append(r)
    for shown in by_patient.values():
        profile = shown[0].patient
        _record_view(
            user,
            profile,
            "renewal_queue",
            object_type=RenewalRequest._meta.label_lower,
            ids=[r.pk for r in shown],
            prescriptions=[p.pk for p in histories[profile.pk].prescriptions][:200],
        )
    return RenewalQueue(
        to_review=[r for r in rows if r.status in TO_REVIEW],
        to_dispatch=[r for r in rows if r.status in TO_DISPATCH],
        histories=histories,
    )


def care_plan_get_for_edit(user: Any, public_id: Any) -> CarePlan:
    """A care plan a doctor in charge of the patient is about to change."""
    key = _public_id(public_id)
    plan = (
        CarePlan.objects.select_related("patient__user", "doctor__staff_profile")
        .filter(public_id=key)
        .first()
        if key is not None
        else None
    )
    if plan is None:
        raise _deny(user, "care_plan", found=False)
    if not policies.can_manage_care_plan(user, plan.patient):
        raise _deny(user, "care_plan", obj=plan, patient=plan.patient.user)
    _record_view(user, plan.patient, "care_plan", obj=plan)
    return plan


def intake_get_for_staff(user: Any, appointment_public_id: Any) -> IntakeItem:
    """An appointment's intake form as its doctor (or another clinician of the patient)
    reads it. The answers are there once the patient has submitted them; a draft shows
    only its state (the view leaves its answers out)."""
    appointment = _appointment_with_form(appointment_public_id)
    if appointment is None:
        raise _deny(user, "intake_form", found=False, audience="staff")
    allowed = _is_clinician(user) and policies.can_view_intake_form(user, appointment)
    if not allowed:
        raise _deny(
            user,
            "intake_form",
            obj=appointment,
            patient=appointment.patient.user,
            audience="staff",
        )
    form = _intake_of(appointment)
    shown = form if form is not None and form.submitted else None
    _record_view(
        user,
        appointment.patient,
        "intake_form",
        obj=shown or appointment,
        audience="staff",
        submitted=shown is not None,
    )
    return IntakeItem(appointment, form)


def renewals_visible_to(user: User) -> QuerySet[RenewalRequest]:
    """A patient: their own requests. Doctors and nurses: their patients' requests (not
    those opened through break-glass). Anyone else: none."""
    if getattr(user, "role", None) == Role.PATIENT:
        return _renewals().filter(patient__user=user)
    if _is_clinician(user):
        patients = account_selectors.patients_in_care_of(user).values("pk")
        return _renewals().filter(patient__in=patients)
    return RenewalRequest.objects.none()
