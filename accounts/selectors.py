"""Reads of accounts data, already filtered to what the asking user may see."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts import policies
from accounts.models import (
    BreakGlassAccess,
    ConsentDecision,
    ConsentKind,
    ConsentRecord,
    ConsentText,
    IdentityVerification,
    PatientProfile,
    Role,
    User,
)
from accounts.validators import snils_digits
from audit.models import AuditAction
from audit.services import audit_record


@dataclass(frozen=True)
class ConsentState:
    kind: str
    label: str
    text: ConsentText | None
    latest: ConsentRecord | None

    @property
    def given(self) -> bool:
        return self.latest is not None and self.latest.decision == ConsentDecision.GIVEN

    @property
    def outdated(self) -> bool:
        """Given for an older version of the text: the patient should read the new one."""
        return self.given and self.text is not None and self.latest.text_id != self.text.pk


def consent_states_for(profile: PatientProfile) -> list[ConsentState]:
    texts: dict[str, ConsentText] = {}
    for text in ConsentText.objects.order_by("kind", "-version"):
        texts.setdefault(text.kind, text)
    latest: dict[str, ConsentRecord] = {}
    for record in ConsentRecord.objects.filter(patient=profile).select_related("text"):
        latest.setdefault(record.kind, record)
    return [
        ConsentState(kind=kind, label=label, text=texts.get(kind), latest=latest.get(kind))
        for kind, label in ConsentKind.choices
    ]


def consent_given(profile: PatientProfile, kind: str) -> bool:
    record = ConsentRecord.objects.filter(patient=profile, kind=kind).first()
    return record is not None and record.decision == ConsentDecision.GIVEN


def consent_history_for(profile: PatientProfile) -> QuerySet[ConsentRecord]:
    return ConsentRecord.objects.filter(patient=profile).select_related("text")


def patients_awaiting_verification(user: User) -> QuerySet[PatientProfile]:
    """Patients with both documents entered and no verification in force."""
    if not policies.can_list_identity_checks(user):
        return PatientProfile.objects.none()
    in_force = IdentityVerification.objects.filter(patient=OuterRef("pk"), revoked_at__isnull=True)
    return (
        PatientProfile.objects.exclude(snils_index=None)
        .exclude(passport_index=None)
        .exclude(Exists(in_force))
        .select_related("user")
        .order_by("updated_at")
    )


def patient_find(user: User, query: str) -> PatientProfile | None:
    """Exact lookup by SNILS, passport or email through the blind indexes."""
    if not policies.can_search_patients(user):
        return None
    query = query.strip()
    if not query:
        return None
    if "@" in query:
        found = PatientProfile.objects.filter(user__email=query).select_related("user").first()
    else:
        digits = snils_digits(query)
        found = None
        if len(digits) == 11:
            found = PatientProfile.objects.filter(snils=query).select_related("user").first()
        elif len(digits) == 10:
            found = PatientProfile.objects.filter(passport=query).select_related("user").first()
    if found is not None:
        audit_record(
            actor=user,
            action=AuditAction.VIEW,
            obj=found,
            patient=found.user,
            detail={"via": "search"},
        )
    return found


def _get_or_404(
    user: User, profile_id: int, allowed: Callable[[User, PatientProfile], bool], what: str
) -> PatientProfile:
    """404 for both missing and forbidden, so ids cannot be probed; denials recorded."""
    profile = (
        PatientProfile.objects.select_related("user", "department").filter(pk=profile_id).first()
    )
    if profile is None or not allowed(user, profile):
        if profile is not None:
            audit_record(
                actor=user,
                action=AuditAction.DENIED,
                obj=profile,
                patient=profile.user,
                detail={"what": what},
            )
        raise Http404
    if profile.user_id != user.pk:
        emergency = None
        if not policies.has_care_relationship(user, profile):
            emergency = (
                BreakGlassAccess.objects.filter(
                    doctor_id=user.pk, patient=profile, expires_at__gt=timezone.now()
                )
                .order_by("-opened_at")
                .first()
            )
        audit_record(
            actor=user,
            action=AuditAction.VIEW,
            obj=profile,
            patient=profile.user,
            detail={"what": what},
            break_glass=emergency is not None,
            reason=emergency.reason if emergency else "",
        )
    return profile


def patient_profile_get_for(user: User, profile_id: int) -> PatientProfile:
    """Demographics (name, documents, contacts)."""
    return _get_or_404(user, profile_id, policies.can_view_patient_demographics, "demographics")


def patient_record_get_for(user: User, profile_id: int) -> PatientProfile:
    """The medical record as staff open it: the patient's clinicians, or a doctor through
    break-glass. (Patients read their own record on their own pages.)"""
    return _get_or_404(user, profile_id, policies.can_open_record_as_staff, "record")


def identity_check_subject_get_for(user: User, profile_id: int) -> PatientProfile:
    """The patient whose documents reception or an admin is about to check."""
    return _get_or_404(user, profile_id, policies.can_verify_identity, "identity_check")


def identity_scan_profile_get_for(user: User, profile_id: int) -> PatientProfile:
    """The patient whose identity scan is asked for: the patient, reception or admin."""
    return _get_or_404(user, profile_id, policies.can_view_own_identity_scan, "identity_scan")


def patient_for_break_glass(user: User, profile_id: int) -> PatientProfile:
    """The patient a doctor is about to open in an emergency; reveals nothing but the id."""
    return _get_or_404(user, profile_id, policies.can_ask_break_glass, "break_glass")


def patients_in_care_of(user: User) -> QuerySet[PatientProfile]:
    """A clinician's patients: their department's, and (doctors) those they were granted."""
    from guardian.shortcuts import get_objects_for_user

    if user.role not in {Role.DOCTOR, Role.NURSE}:
        return PatientProfile.objects.none()
    department = getattr(getattr(user, "staff_profile", None), "department_id", None)
    in_department = PatientProfile.objects.filter(department_id=department) if department else None
    granted = (
        get_objects_for_user(
            user,
            policies.RECORD_PERMISSION,
            PatientProfile,
            with_superuser=False,
            accept_global_perms=False,
        )
        if user.role == Role.DOCTOR
        else PatientProfile.objects.none()
    )
    ids = set(granted.values_list("pk", flat=True))
    if in_department is not None:
        ids |= set(in_department.values_list("pk", flat=True))
    return PatientProfile.objects.filter(pk__in=ids).select_related("user")


def identity_verifications_for(profile: PatientProfile) -> QuerySet[IdentityVerification]:
    return profile.verifications.select_related("verified_by__staff_profile")
