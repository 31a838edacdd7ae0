"""Reads of accounts data, already filtered to what the asking user may see."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404

from accounts import policies
from accounts.models import (
    ConsentDecision,
    ConsentKind,
    ConsentRecord,
    ConsentText,
    IdentityVerification,
    PatientProfile,
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
    if not policies.can_search_patients(user):
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


def patient_profile_get_for(user: User, profile_id: int) -> PatientProfile:
    """404 for both missing and forbidden, so ids cannot be probed."""
    profile = PatientProfile.objects.select_related("user").filter(pk=profile_id).first()
    if profile is None or not policies.can_view_patient_demographics(user, profile):
        if profile is not None:
            audit_record(actor=user, action=AuditAction.DENIED, obj=profile, patient=profile.user)
        raise Http404
    if profile.user_id != user.pk:
        audit_record(actor=user, action=AuditAction.VIEW, obj=profile, patient=profile.user)
    return profile


def identity_verifications_for(profile: PatientProfile) -> QuerySet[IdentityVerification]:
    return profile.verifications.select_related("verified_by__staff_profile")
