"""Reads of visits and lab results, already filtered to what the asking user may see.

The single access path to a patient's medical data in records: every function here
checks `accounts.policies` (`can_view_clinical_item` for a result, a visit or a note),
answers 404 for missing and forbidden alike, records a denial with the patient concerned,
and records each view — a list with the ids shown, a single item with its patient —
flagged as break-glass when that is the viewer's only way in.

A patient sees their own released results and visits and the non-internal notes on
them. Doctors and nurses in charge of the patient see everything (unreleased results
marked). Reception and administrators see none of it. Every page reads a fixed number of
queries, however many reports a patient has.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Prefetch, Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from accounts import policies
from accounts import selectors as account_selectors
from accounts.models import BreakGlassAccess, PatientProfile, Role
from audit.models import AuditAction
from audit.services import audit_record
from records.models import (
    LOINC_PATTERN,
    LabReport,
    Observation,
    ReportStatus,
    ReviewState,
    Visit,
    VisitDiagnosis,
    VisitNote,
)

RESULTS_PER_PAGE = 20
VISITS_PER_PAGE = 10
CHART_RESULTS_PER_PAGE = 25
CHART_VISITS = 50
TREND_POINTS = 100
QUEUE_LIMIT = 200

CLINICIANS = frozenset({Role.DOCTOR, Role.NURSE})


# --- Recording -----------------------------------------------------------------------------


def deny(user: Any, what: str, *, obj: Any = None, patient: Any = None, **detail: Any) -> Http404:
    """A refusal: recorded (with the patient concerned, if any) and answered like a page
    that does not exist, so ids cannot be probed."""
    audit_record(
        actor=user,
        action=AuditAction.DENIED,
        obj=obj,
        object_type="" if obj is not None else "page",
        patient=patient,
        detail={"what": what, **detail},
    )
    return Http404()


def break_glass_reason(user: Any, profile: PatientProfile) -> str:
    if profile.user_id == user.pk or policies.has_care_relationship(user, profile):
        return ""
    access = (
        BreakGlassAccess.objects.filter(
            doctor_id=user.pk, patient=profile, expires_at__gt=timezone.now()
        )
        .order_by("-opened_at")
        .first()
    )
    return access.reason if access is not None else ""


def record_access(
    user: Any,
    profile: PatientProfile,
    what: str,
    *,
    action: str = AuditAction.VIEW,
    obj: Any = None,
    object_type: str = "",
    ids: list[Any] | None = None,
    **detail: Any,
) -> bool:
    """Record a read of the patient's data (flagged when it is under break-glass); the one
    recorder of every records selector. Returns whether it was under break-glass."""
    reason = break_glass_reason(user, profile)
    if ids is not None:
        detail = {"list": True, "ids": [str(i) for i in ids][:200], **detail}
    audit_record(
        actor=user,
        action=action,
        obj=obj,
        object_type=object_type,
        patient=profile.user,
        detail={"what": what, **detail},
        break_glass=bool(reason),
        reason=reason,
    )
    return bool(reason)


_record_view = record_access


def _own_profile(user: Any) -> PatientProfile | None:
    if getattr(user, "role", None) != Role.PATIENT:
        return None
    return getattr(user, "patient_profile", None)


def _public_id(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


# --- Lab reports: querysets -------------------------------------------------------------


def _reports() -> QuerySet[LabReport]:
    return LabReport.objects.select_related(
        "test_type", "patient__user", "reviewed_by__staff_profile", "visit"
    )


def _with_observations(queryset: QuerySet[LabReport]) -> QuerySet[LabReport]:
    return queryset.prefetch_related(
        Prefetch("observations", queryset=Observation.objects.order_by("sort_order", "id"))
    )


def lab_reports_visible_to(user: Any) -> QuerySet[LabReport]:
    """A patient: their own released reports. A doctor or nurse: every report of the
    patients in their care (not those opened through break-glass). Anyone else: none."""
    profile = _own_profile(user)
    if profile is not None:
        return _reports().filter(patient=profile, released_to_patient_at__isnull=False)
    if getattr(user, "role", None) in CLINICIANS:
        patients = account_selectors.patients_in_care_of(user).values("pk")
        return _reports().filter(patient__in=patients)
    return LabReport.objects.none()


def results_page(user: Any, page_number: Any = None) -> Page:
    """The patient's results, newest first, a page at a time, with their observations
    (for the flags summary). Five queries plus the audit record, whatever the count."""
    profile = _own_profile(user)
    if profile is None:
        raise deny(user, "lab_reports")
    queryset = _with_observations(lab_reports_visible_to(user)).order_by("-issued_at", "-id")
    page = Paginator(queryset, RESULTS_PER_PAGE).get_page(page_number)
    _record_view(
        user,
        profile,
        "lab_reports",
        object_type=LabReport._meta.label_lower,
        ids=[r.pk for r in page.object_list],
    )
    return page


def lab_report_get_for(user: Any, public_id: Any, *, audience: str = "patient") -> LabReport:
    """One report with its observations. `audience="patient"`: the patient's own and
    released; `"staff"`: clinicians with access to the record (unreleased too). 404 for
    missing and forbidden alike; a forbidden attempt is recorded with the patient."""
    key = _public_id(public_id)
    report = (
        _with_observations(_reports()).filter(public_id=key).first() if key is not None else None
    )
    if report is None:
        raise deny(user, "lab_report", found=False, audience=audience)
    is_patient = getattr(user, "role", None) == Role.PATIENT
    allowed = is_patient == (audience == "patient") and policies.can_view_clinical_item(
        user, report.patient, released_to_patient=report.released, internal=False
    )
    if not allowed:
        raise deny(user, "lab_report", obj=report, patient=report.patient.user, audience=audience)
    _record_view(user, report.patient, "lab_report", obj=report, audience=audience)
    return report


# --- Trends --------------------------------------------------------------------------------


def _series(profile: PatientProfile, loinc_code: str, *, released_only: bool) -> list[Observation]:
    """One analyte's values across the patient's reports, oldest first (the newest
    TREND_POINTS). One query."""
    queryset = (
        Observation.objects.filter(report__patient=profile, loinc_code=loinc_code)
        .exclude(status=ReportStatus.CANCELLED)
        .exclude(report__status__in=[ReportStatus.CANCELLED])
        .select_related("report__test_type")
        .annotate(effective=Coalesce("report__collected_at", "report__issued_at"))
        .order_by("-effective", "-report_id", "sort_order")
    )
    if released_only:
        queryset = queryset.filter(report__released_to_patient_at__isnull=False)
    return list(reversed(queryset[:TREND_POINTS]))


def _valid_code(user: Any, loinc_code: str) -> str:
    code = (loinc_code or "").strip()
    if not LOINC_PATTERN.match(code):
        raise deny(user, "trend", found=False)
    return code


def patient_trend(user: Any, loinc_code: str) -> list[Observation]:
    """The patient's own released values of one analyte."""
    profile = _own_profile(user)
    if profile is None:
        raise deny(user, "trend")
    code = _valid_code(user, loinc_code)
    series = _series(profile, code, released_only=True)
    _record_view(
        user,
        profile,
        "trend",
        object_type=LabReport._meta.label_lower,
        ids=[o.report_id for o in series],
        loinc=code,
    )
    return series


def staff_trend(user: Any, profile_id: int, loinc_code: str) -> tuple[PatientProfile, list]:
    """A patient's values of one analyte for a clinician who may open the record (all
    final values, released or not)."""
    profile = _clinical_record(user, profile_id, "trend")
    code = _valid_code(user, loinc_code)
    series = _series(profile, code, released_only=False)
    _record_view(
        user,
        profile,
        "trend",
        object_type=LabReport._meta.label_lower,
        ids=[o.report_id for o in series],
        loinc=code,
    )
    return profile, series


# --- Visits ----------------------------------------------------------------------------------


def _visits_for_patient_view() -> QuerySet[Visit]:
    return Visit.objects.select_related("doctor__staff_profile", "location").prefetch_related(
        Prefetch("diagnoses", queryset=VisitDiagnosis.objects.order_by("sort_order", "id")),
        Prefetch(
            "notes",
            queryset=VisitNote.objects.filter(internal=False)
            .select_related("author__staff_profile")
            .order_by("created_at", "id"),
            to_attr="patient_notes",
        ),
        Prefetch(
            "lab_reports",
            queryset=LabReport.objects.filter(released_to_patient_at__isnull=False)
            .select_related("test_type")
            .order_by("-issued_at", "-id"),
            to_attr="released_reports",
        ),
    )


def visits_visible_to(user: Any) -> QuerySet[Visit]:
    """A patient: their own released visits. Clinicians: their patients' visits."""
    profile = _own_profile(user)
    if profile is not None:
        return Visit.objects.filter(patient=profile, released_at__isnull=False)
    if getattr(user, "role", None) in CLINICIANS:
        patients = account_selectors.patients_in_care_of(user).values("pk")
        return Visit.objects.filter(patient__in=patients)
    return Visit.objects.none()


def visits_page(user: Any, page_number: Any = None) -> Page:
    """The patient's visit history, newest first: summary, diagnoses, their notes (never
    internal ones) and the released results ordered at the visit."""
    profile = _own_profile(user)
    if profile is None:
        raise deny(user, "visits")
    queryset = _visits_for_patient_view().filter(patient=profile, released_at__isnull=False)
    page = Paginator(queryset.order_by("-started_at", "-id"), VISITS_PER_PAGE).get_page(page_number)
    _record_view(
        user,
        profile,
        "visits",
        object_type=Visit._meta.label_lower,
        ids=[v.pk for v in page.object_list],
    )
    return page


# --- Staff: the chart, a visit, the review queue -------------------------------------------


def _clinical_record(user: Any, profile_id: int, what: str) -> PatientProfile:
    """The patient whose record a clinician opens: doctors and nurses with access
    (break-glass included, flagged). Reception, administrators and patients: 404."""
    profile = (
        PatientProfile.objects.select_related("user", "department").filter(pk=profile_id).first()
    )
    allowed = (
        profile is not None
        and getattr(user, "role", None) in CLINICIANS
        and policies.can_view_clinical_item(user, profile, released_to_patient=False, internal=True)
    )
    if not allowed:
        raise deny(
            user,
            what,
            obj=profile,
            patient=profile.user if profile is not None else None,
            found=profile is not None,
        )
    return profile


@dataclass
class Chart:
    """A clinician's view of a patient's record: visits and results, unreleased ones
    marked, internal notes included."""

    profile: PatientProfile
    visits: list[Visit]
    results: Page
    break_glass: bool


def patient_chart(user: Any, profile_id: int, page_number: Any = None) -> Chart:
    profile = _clinical_record(user, profile_id, "chart")
    visits = list(
        Visit.objects.filter(patient=profile)
        .select_related("doctor__staff_profile", "location")
        .prefetch_related(
            Prefetch("diagnoses", queryset=VisitDiagnosis.objects.order_by("sort_order", "id"))
        )
        .annotate(
            note_count=Count("notes", distinct=True),
            internal_count=Count("notes", filter=Q(notes__internal=True), distinct=True),
        )
        .order_by("-started_at", "-id")[:CHART_VISITS]
    )
    reports = _with_observations(_reports().filter(patient=profile)).order_by("-issued_at", "-id")
    results = Paginator(reports, CHART_RESULTS_PER_PAGE).get_page(page_number)
    reason = break_glass_reason(user, profile)
    _record_view(
        user,
        profile,
        "chart",
        obj=profile,
        visits=[v.pk for v in visits][:200],
        reports=[r.pk for r in results.object_list],
    )
    return Chart(profile=profile, visits=visits, results=results, break_glass=bool(reason))


def visit_get_for(user: Any, public_id: Any, *, purpose: str = "view") -> Visit:
    """One visit as a clinician opens it: every note (internal ones too), diagnoses and
    all its results. 404 (recorded) for anyone who may not open the patient's record;
    with `purpose="edit"` (the summary and diagnoses form) also for anyone but the
    visit's own doctor in charge of the patient."""
    key = _public_id(public_id)
    visit = (
        Visit.objects.select_related(
            "patient__user", "doctor__staff_profile", "location", "released_by__staff_profile"
        )
        .prefetch_related(
            Prefetch("diagnoses", queryset=VisitDiagnosis.objects.order_by("sort_order", "id")),
            Prefetch(
                "notes",
                queryset=VisitNote.objects.select_related("author__staff_profile").order_by(
                    "created_at", "id"
                ),
            ),
            Prefetch(
                "lab_reports",
                queryset=LabReport.objects.select_related("test_type").order_by("-issued_at"),
            ),
        )
        .filter(public_id=key)
        .first()
        if key is not None
        else None
    )
    if visit is None:
        raise deny(user, "visit", found=False)
    allowed = getattr(user, "role", None) in CLINICIANS and policies.can_view_clinical_item(
        user, visit.patient, released_to_patient=visit.released, internal=True
    )
    if allowed and purpose == "edit":
        allowed = policies.can_edit_visit(user, visit)
    if not allowed:
        raise deny(user, "visit", obj=visit, patient=visit.patient.user, purpose=purpose)
    _record_view(user, visit.patient, "visit", obj=visit, purpose=purpose)
    return visit


# Appointments a visit may be recorded for: the patient's with this doctor that took
# place or are under way (not cancelled, expired or missed), from today back.
VISIT_APPOINTMENT_STATUSES = ("booked", "confirmed", "arrived", "in_progress", "completed")
VISIT_APPOINTMENT_DAYS = 90
VISIT_APPOINTMENT_CHOICES = 20


@dataclass
class NewVisit:
    """What the "record a visit" page needs: the patient and the appointments with this
    doctor that have no visit yet (newest first)."""

    profile: PatientProfile
    appointments: list[Any]


def visit_new_for(user: Any, profile_id: int) -> NewVisit:
    """The "record a visit" page of a patient: a doctor in charge of the patient only
    (not through break-glass, not a nurse). 404 (recorded) for anyone else.

    Appointments are read through the patient's reverse relation of the foreign key
    Visit.appointment already declares (records does not import scheduling, DESIGN.md's
    dependency rules): one query, at most VISIT_APPOINTMENT_CHOICES rows."""
    profile = _clinical_record(user, profile_id, "visit_new")
    if not policies.can_record_visit(user, profile):
        raise deny(user, "visit_new", obj=profile, patient=profile.user, found=True)
    now = timezone.now()
    appointments = list(
        profile.appointments.filter(
            doctor_id=user.pk,
            status__in=VISIT_APPOINTMENT_STATUSES,
            during__startswith__lte=now + timedelta(hours=12),
            during__startswith__gte=now - timedelta(days=VISIT_APPOINTMENT_DAYS),
            visits__isnull=True,
        )
        .select_related("location", "consultation_type")
        .order_by("-during__startswith")[:VISIT_APPOINTMENT_CHOICES]
    )
    _record_view(
        user,
        profile,
        "visit_new",
        obj=profile,
        appointments=[a.pk for a in appointments],
    )
    return NewVisit(profile=profile, appointments=appointments)


def review_queue(user: Any) -> list[LabReport]:
    """Reports waiting for this doctor's review: final or amended results of tests
    released after review, of the patients in their care; their own orders first, then
    oldest first. Recorded as a list view with the ids shown."""
    if not policies.can_use_review_queue(user):
        raise deny(user, "review_queue")
    patients = account_selectors.patients_in_care_of(user).values("pk")
    reports = list(
        _with_observations(
            _reports().filter(
                patient__in=patients,
                review_state=ReviewState.PENDING,
                status__in=[ReportStatus.FINAL, ReportStatus.AMENDED],
            )
        ).order_by("issued_at", "id")[:QUEUE_LIMIT]
    )
    reports.sort(key=lambda r: (r.ordered_by_id != user.pk, r.issued_at, r.pk))
    audit_record(
        actor=user,
        action=AuditAction.VIEW,
        object_type=LabReport._meta.label_lower,
        detail={"what": "review_queue", "list": True, "ids": [str(r.pk) for r in reports][:200]},
    )
    return reports
