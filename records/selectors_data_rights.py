"""Reads of the patient's data requests, already filtered to what the asking user may see.

Only the patient opens these pages (accounts.policies: there are no representatives
acting for a patient). Anyone else gets a 404, recorded as DENIED (with the patient
concerned when there is one), for missing and forbidden alike. Handing over a prepared
PDF export is recorded as an EXPORT; polls of an export's state read no personal data
and are not recorded one by one (access is still checked on each).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import Http404
from django.utils import timezone

from accounts import policies
from accounts.models import PatientProfile, Role
from audit.models import AuditAction
from audit.services import audit_record
from records.models import DataRequest, DataRequestKind, DataRequestStatus

HISTORY_LIMIT = 50


def deny(user: Any, what: str, *, obj: Any = None, patient: Any = None, **detail: Any) -> Http404:
    """Recorded, and answered like a page that does not exist."""
    audit_record(
        actor=user,
        action=AuditAction.DENIED,
        obj=obj,
        object_type="" if obj is not None else "page",
        patient=patient,
        detail={"what": what, **detail},
    )
    return Http404()


def _key(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def own_profile(user: Any, what: str) -> PatientProfile:
    """The signed-in patient's own profile, for their data-rights pages (a recorded 404
    for anyone else)."""
    profile = (
        getattr(user, "patient_profile", None)
        if getattr(user, "role", None) == Role.PATIENT
        else None
    )
    if profile is None or not policies.can_export_patient_data(user, profile):
        raise deny(user, what)
    return profile


@dataclass
class MyData:
    profile: PatientProfile
    requests: list[DataRequest]
    active_pdf: DataRequest | None


def my_data(user: Any) -> MyData:
    """The "My data" page: the patient's requests, newest first. Recorded as the
    patient's view of their own page, as accounts' own pages are."""
    profile = own_profile(user, "data_rights")
    requests = list(
        DataRequest.objects.filter(patient=profile).order_by("-requested_at", "-id")[:HISTORY_LIMIT]
    )
    active = next((r for r in requests if r.is_pdf_export and r.active), None)
    audit_record(
        actor=user,
        action=AuditAction.VIEW,
        object_type=DataRequest._meta.label_lower,
        patient=profile.user,
        detail={"what": "data_rights", "list": True, "ids": [str(r.pk) for r in requests]},
    )
    return MyData(profile=profile, requests=requests, active_pdf=active)


def data_request_get_for(user: Any, public_id: Any, *, record: bool = True) -> DataRequest:
    """One of the patient's requests (its page, or with `record=False` a poll of its
    state). 404, recorded, for missing and someone else's alike."""
    key = _key(public_id)
    request = (
        DataRequest.objects.select_related("patient__user").filter(public_id=key).first()
        if key is not None
        else None
    )
    if request is None:
        raise deny(user, "data_request", found=False)
    if not policies.can_view_data_request(user, request):
        raise deny(user, "data_request", obj=request, patient=request.patient.user)
    if record:
        audit_record(
            actor=user,
            action=AuditAction.VIEW,
            obj=request,
            patient=request.patient.user,
            detail={"what": "data_request", "kind": request.kind, "state": request.status},
        )
    return request


def data_export_file_for(user: Any, public_id: Any) -> tuple[DataRequest, bytes]:
    """A prepared PDF export, decrypted, for its patient; the hand-over is recorded as
    an EXPORT. 404 (recorded) for anyone else, and while there is no file."""
    key = _key(public_id)
    request = (
        DataRequest.objects.select_related("patient__user").filter(public_id=key).first()
        if key is not None
        else None
    )
    if request is None:
        raise deny(user, "data_export_file", found=False)
    if not policies.can_view_data_request(user, request):
        raise deny(user, "data_export_file", obj=request, patient=request.patient.user)
    if not request.file_available:
        raise deny(user, "data_export_file", obj=request, patient=request.patient.user, ready=False)
    with request.file.open("rb") as stored:
        data = stored.read()
    audit_record(
        actor=user,
        action=AuditAction.EXPORT,
        obj=request,
        patient=request.patient.user,
        detail={"what": "data_export", "format": "pdf", "size": len(data)},
    )
    return request, data


def deletion_outcome(public_id: Any) -> DataRequest | None:
    """The outcome of a completed deletion, for the page its patient sees once signed
    out (the request's id comes from that browser's session, never from the URL). The
    outcome holds no personal data."""
    key = _key(public_id)
    if key is None:
        return None
    return DataRequest.objects.filter(
        public_id=key, kind=DataRequestKind.DELETION, status=DataRequestStatus.COMPLETED
    ).first()


# --- Deletion -----------------------------------------------------------------------------------


def upcoming_appointments(profile: PatientProfile, *, now: datetime | None = None) -> list[Any]:
    """The appointments a deletion cancels: booked, confirmed or held, not yet begun."""
    from scheduling.models import Appointment, AppointmentStatus

    now = now or timezone.now()
    return list(
        Appointment.objects.filter(
            patient=profile,
            status__in=[
                AppointmentStatus.HELD,
                AppointmentStatus.BOOKED,
                AppointmentStatus.CONFIRMED,
            ],
            during__startswith__gt=now,
        )
        .select_related("consultation_type", "location", "doctor__staff_profile")
        .order_by("during")
    )


def deletion_blockers(
    profile: PatientProfile, *, by: Any, now: datetime | None = None
) -> list[Any]:
    """Upcoming appointments that cannot be cancelled online free of charge now (the
    patient cancels them on their page, paying a fee, or calls the clinic first)."""
    from scheduling.services import cancellation_quote

    blocked = []
    for appointment in upcoming_appointments(profile, now=now):
        quote = cancellation_quote(appointment, by=by, now=now)
        if not quote.allowed or quote.fee:
            blocked.append(appointment)
    return blocked


@dataclass
class DeletionPreview:
    profile: PatientProfile
    appointments: list[Any]  # cancelled by the deletion
    blocked: list[Any]  # cannot be cancelled online free of charge now


def deletion_preview(user: Any) -> DeletionPreview:
    """What a deletion would do now, for the confirmation page."""
    profile = own_profile(user, "data_deletion")
    now = timezone.now()
    return DeletionPreview(
        profile=profile,
        appointments=upcoming_appointments(profile, now=now),
        blocked=deletion_blockers(profile, by=user, now=now),
    )
