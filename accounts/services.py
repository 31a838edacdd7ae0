"""Every write to accounts data: one function per change, audited in the same transaction."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import (
    STAFF_ROLES,
    BreakGlassAccess,
    ConsentDecision,
    ConsentKind,
    ConsentRecord,
    ConsentText,
    Department,
    IdentityVerification,
    Language,
    PatientProfile,
    Role,
    StaffProfile,
    User,
    VerificationMethod,
)
from accounts.tokens import (
    InvalidToken,
    make_email_verification_token,
    read_email_verification_token,
    token_matches_state,
)
from audit.models import AuditAction
from audit.services import audit_record
from clinic.files import validate_upload

# Django-admin permissions each role's group holds. Patients and clinicians work in the
# portal, not in the admin; administrators get the admin for everything.
ROLE_ADMIN_PERMISSIONS: dict[str, str | list[str]] = {
    Role.PATIENT: [],
    Role.DOCTOR: [],
    Role.NURSE: [],
    Role.RECEPTION: [],
    Role.ADMIN: "__all__",
}


def roles_sync_groups() -> None:
    """Create one group per role and give it its admin permissions (idempotent)."""
    with transaction.atomic():
        for role in Role:
            group, _created = Group.objects.get_or_create(name=role.value)
            wanted = ROLE_ADMIN_PERMISSIONS[role]
            if wanted == "__all__":
                group.permissions.set(Permission.objects.all())
            else:
                group.permissions.set(Permission.objects.filter(codename__in=wanted))


def _apply_role(user: User, role: str) -> None:
    user.role = role
    user.is_staff = role == Role.ADMIN
    user.save(update_fields=["role", "is_staff"])
    user.groups.set(Group.objects.filter(name=role))


# --- Registration and email verification ---------------------------------------------


def patient_register(
    *,
    email: str,
    password: str,
    first_name: str,
    last_name: str,
    middle_name: str = "",
    birth_date: Any = None,
    phone: str = "",
    language: str = Language.RUSSIAN,
    accept_health_data_consent: bool,
    send_verification: bool = True,
) -> User:
    """A patient signs up. Processing of health data needs consent from the first moment
    (152-FZ art. 10), so registration records it or refuses."""
    if not accept_health_data_consent:
        raise ValidationError(
            {
                "accept_health_data_consent": _(
                    "Consent to the processing of health data is required."
                )
            }
        )
    if User.objects.filter(email=email).exists():
        raise ValidationError({"email": _("An account with this email already exists.")})
    with transaction.atomic():
        user = User.objects.create_user(email=email, password=password, language=language)
        _apply_role(user, Role.PATIENT)
        profile = PatientProfile.objects.create(
            user=user,
            first_name=first_name,
            last_name=last_name,
            middle_name=middle_name,
            birth_date=birth_date,
            phone=phone,
        )
        audit_record(actor=user, action=AuditAction.CREATE, obj=profile, patient=user)
        _consent_decide(
            by=user, profile=profile, kind=ConsentKind.HEALTH_DATA, decision=ConsentDecision.GIVEN
        )
        if send_verification:
            from accounts.tasks import send_email_verification

            send_email_verification.delay_on_commit(user.pk)
    return user


def email_verification_send(*, user: User) -> None:
    """Send the verification link. The message names no medical content."""
    token = make_email_verification_token(user)
    from django.conf import settings

    link = settings.SITE_URL.rstrip("/") + reverse("accounts:verify_email", args=[token])
    with translation.override(user.language):
        subject = _("Confirm your email for the patient portal")
        body = render_to_string(
            "accounts/email/verify_email.txt", {"link": link, "clinic": settings.CLINIC_NAME}
        )
    send_mail(subject, body, None, [user.email])


class EmailVerificationError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def email_verify(*, token: str) -> User:
    """Mark the address verified. The link works once: verifying changes the token state."""
    try:
        user_id, state = read_email_verification_token(token)
    except InvalidToken as exc:
        raise EmailVerificationError(str(exc)) from exc
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first()
        if user is None:
            raise EmailVerificationError("tampered")
        if not token_matches_state(user, state):
            raise EmailVerificationError("used")
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
        audit_record(
            actor=user, action=AuditAction.CHANGE, obj=user, detail={"field": "email_verified"}
        )
    return user


# --- Staff and roles ------------------------------------------------------------------


def staff_create(
    *,
    by: User | None,
    email: str,
    password: str | None,
    role: str,
    full_name: str,
    **profile_fields: Any,
) -> User:
    """Create a staff account (by an administrator, or by seed_demo with by=None)."""
    if role not in STAFF_ROLES:
        raise ValidationError({"role": _("Not a staff role.")})
    if by is not None and by.role != Role.ADMIN:
        raise PermissionDenied
    with transaction.atomic():
        user = User.objects.create_user(
            email=email, password=password, email_verified_at=timezone.now()
        )
        _apply_role(user, role)
        profile = StaffProfile.objects.create(user=user, full_name=full_name, **profile_fields)
        audit_record(actor=by, action=AuditAction.CREATE, obj=profile, detail={"role": role})
    return user


def user_set_role(*, by: User, user: User, role: str) -> User:
    if not policies.can_change_role(by, user):
        audit_record(actor=by, action=AuditAction.DENIED, obj=user, detail={"wanted_role": role})
        raise PermissionDenied
    if role not in Role.values:
        raise ValidationError({"role": _("Unknown role.")})
    with transaction.atomic():
        previous = user.role
        _apply_role(user, role)
        if role in STAFF_ROLES and not hasattr(user, "staff_profile"):
            StaffProfile.objects.create(user=user, full_name=user.display_name())
        audit_record(
            actor=by,
            action=AuditAction.ROLE_CHANGE,
            obj=user,
            detail={"from": previous, "to": role},
        )
    return user


def user_set_language(*, by: User, language: str) -> None:
    if language not in Language.values:
        raise ValidationError({"language": _("Unsupported language.")})
    if by.language != language:
        by.language = language
        by.save(update_fields=["language"])


# --- Patient profile and identity ----------------------------------------------------

IDENTITY_FIELDS = ("snils", "passport")
PROFILE_FIELDS = (
    "last_name",
    "first_name",
    "middle_name",
    "birth_date",
    "sex",
    "phone",
    "address",
    "insurance_policy",
    "snils",
    "passport",
)


def _check_unique_document(profile: PatientProfile, field: str, value: str) -> None:
    if value and PatientProfile.objects.filter(**{field: value}).exclude(pk=profile.pk).exists():
        raise ValidationError(
            {
                field: _(
                    "This document is already registered to another patient. "
                    "Please contact reception."
                )
            }
        )


def patient_profile_update(*, by: User, profile: PatientProfile, **changes: Any) -> PatientProfile:
    """Change personal data. Changing SNILS or passport revokes an identity verification."""
    if not policies.can_edit_patient_profile(by, profile):
        audit_record(actor=by, action=AuditAction.DENIED, obj=profile, patient=profile.user)
        raise PermissionDenied
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"Not profile fields: {sorted(unknown)}")
    for field in IDENTITY_FIELDS:
        if field in changes:
            _check_unique_document(profile, field, changes[field])
    with transaction.atomic():
        profile = PatientProfile.objects.select_for_update().get(pk=profile.pk)
        changed = [f for f, v in changes.items() if getattr(profile, f) != v]
        if not changed:
            return profile
        for field in changed:
            setattr(profile, field, changes[field])
        profile.full_clean(exclude=["user", "identity_scan"])
        profile.save()
        documents_changed = set(changed) & set(IDENTITY_FIELDS)
        if documents_changed:
            _revoke_verification(
                profile, reason="documents changed: " + ", ".join(sorted(documents_changed))
            )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=profile,
            patient=profile.user,
            detail={"fields": sorted(changed)},
        )
    return profile


def _revoke_verification(profile: PatientProfile, *, reason: str) -> None:
    IdentityVerification.objects.filter(patient=profile, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason
    )


def identity_scan_upload(
    *, by: User, profile: PatientProfile, upload: UploadedFile
) -> PatientProfile:
    if not policies.can_edit_own_profile(by, profile):
        raise PermissionDenied
    validate_upload(upload)
    with transaction.atomic():
        old_name = profile.identity_scan.name if profile.identity_scan else ""
        profile.identity_scan.save("scan", upload, save=False)
        profile.save(update_fields=["identity_scan", "updated_at"])
        _revoke_verification(profile, reason="new document scan")
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=profile,
            patient=profile.user,
            detail={"file": "identity_scan"},
        )
        if old_name:
            storage = profile.identity_scan.storage
            transaction.on_commit(lambda: storage.delete(old_name))
    return profile


def identity_verify(
    *, by: User, profile: PatientProfile, method: str, note: str = ""
) -> IdentityVerification:
    """Reception or an admin confirms the patient's SNILS and passport."""
    if not policies.can_verify_identity(by, profile):
        audit_record(actor=by, action=AuditAction.DENIED, obj=profile, patient=profile.user)
        raise PermissionDenied
    if method not in VerificationMethod.values:
        raise ValidationError({"method": _("Choose how the documents were checked.")})
    profile = PatientProfile.objects.get(pk=profile.pk)  # check what is stored, not a stale copy
    if not profile.identity_documents_complete:
        raise ValidationError(_("The patient has not entered both SNILS and passport yet."))
    if method == VerificationMethod.SCAN and not profile.identity_scan:
        raise ValidationError({"method": _("There is no scan to check.")})
    with transaction.atomic():
        _revoke_verification(profile, reason="superseded")
        verification = IdentityVerification.objects.create(
            patient=profile, verified_by=by, method=method, note=note
        )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=profile,
            patient=profile.user,
            detail={"identity_verified": method},
        )
    return verification


# --- Consents --------------------------------------------------------------------------


def consent_current_text(kind: str) -> ConsentText:
    text = ConsentText.objects.filter(kind=kind).order_by("-version").first()
    if text is None:
        raise ValidationError(_("This consent is not available yet."))
    return text


def _consent_decide(
    *, by: User, profile: PatientProfile, kind: str, decision: str
) -> ConsentRecord:
    text = consent_current_text(kind)
    from audit.context import current_context

    record = ConsentRecord.objects.create(
        patient=profile, text=text, decision=decision, ip_address=current_context().ip_address
    )
    audit_record(
        actor=by,
        action=AuditAction.CREATE,
        obj=record,
        patient=profile.user,
        detail={"kind": kind, "version": text.version, "decision": decision},
    )
    return record


def consent_give(*, by: User, profile: PatientProfile, kind: str) -> ConsentRecord:
    if not policies.can_manage_consents(by, profile):
        raise PermissionDenied
    if kind not in ConsentKind.values:
        raise ValidationError(_("Unknown consent."))
    with transaction.atomic():
        return _consent_decide(by=by, profile=profile, kind=kind, decision=ConsentDecision.GIVEN)


def consent_withdraw(*, by: User, profile: PatientProfile, kind: str) -> ConsentRecord:
    if not policies.can_manage_consents(by, profile):
        raise PermissionDenied
    if kind not in ConsentKind.values:
        raise ValidationError(_("Unknown consent."))
    with transaction.atomic():
        return _consent_decide(
            by=by, profile=profile, kind=kind, decision=ConsentDecision.WITHDRAWN
        )


def consent_texts_ensure_published() -> None:
    """Publish version 1 of any consent that has no text yet (idempotent)."""
    from accounts.consent_texts import TEXTS

    for kind, (title_ru, title_en, body_ru, body_en) in TEXTS.items():
        ConsentText.objects.get_or_create(
            kind=kind,
            version=1,
            defaults={
                "title_ru": title_ru,
                "title_en": title_en,
                "body_ru": body_ru,
                "body_en": body_en,
            },
        )


def consent_text_publish(
    *, by: User | None, kind: str, title_ru: str, title_en: str, body_ru: str, body_en: str
) -> ConsentText:
    """A new version; patients' earlier decisions stay tied to the version they saw."""
    with transaction.atomic():
        last = (
            ConsentText.objects.select_for_update().filter(kind=kind).order_by("-version").first()
        )
        text = ConsentText.objects.create(
            kind=kind,
            version=(last.version + 1) if last else 1,
            title_ru=title_ru,
            title_en=title_en,
            body_ru=body_ru,
            body_en=body_en,
        )
        audit_record(actor=by, action=AuditAction.CREATE, obj=text)
    return text


# --- Care relationships, departments, break-glass ------------------------------------


def care_access_grant(
    *, by: User | None, doctor: User, patient: PatientProfile, reason: str
) -> None:
    """Give a doctor standing access to a patient's record (called when an appointment
    is booked; by=None when the system does it on a service's behalf)."""
    from guardian.shortcuts import assign_perm

    if not policies.can_manage_care_access(by) or doctor.role != Role.DOCTOR:
        raise PermissionDenied
    with transaction.atomic():
        assign_perm(policies.RECORD_PERMISSION, doctor, patient)
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=patient,
            patient=patient.user,
            detail={"care_access": "granted", "doctor": doctor.pk, "reason": reason},
        )


def care_access_revoke(
    *, by: User | None, doctor: User, patient: PatientProfile, reason: str
) -> None:
    from guardian.shortcuts import remove_perm

    if not policies.can_manage_care_access(by):
        raise PermissionDenied
    with transaction.atomic():
        remove_perm(policies.RECORD_PERMISSION, doctor, patient)
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=patient,
            patient=patient.user,
            detail={"care_access": "revoked", "doctor": doctor.pk, "reason": reason},
        )


def patient_department_assign(
    *, by: User, patient: PatientProfile, department: Department | None
) -> PatientProfile:
    if not policies.can_assign_department(by, patient):
        audit_record(actor=by, action=AuditAction.DENIED, obj=patient, patient=patient.user)
        raise PermissionDenied
    with transaction.atomic():
        patient = PatientProfile.objects.select_for_update().get(pk=patient.pk)
        previous = patient.department_id
        patient.department = department
        patient.save(update_fields=["department", "updated_at"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=patient,
            patient=patient.user,
            detail={"department": {"from": previous, "to": department.pk if department else None}},
        )
    return patient


BREAK_GLASS_MIN_REASON = 15


def break_glass_open(*, by: User, patient: PatientProfile, reason: str) -> BreakGlassAccess:
    """Emergency access for a doctor without a care relationship: time-limited, flagged in
    the audit trail for admin review, and shown to the patient."""
    reason = " ".join(reason.split())
    if not policies.can_break_glass(by, patient):
        audit_record(
            actor=by,
            action=AuditAction.DENIED,
            obj=patient,
            patient=patient.user,
            detail={"break_glass": "refused"},
        )
        raise PermissionDenied
    if len(reason) < BREAK_GLASS_MIN_REASON:
        raise ValidationError(
            {
                "reason": _("Describe the emergency in at least %(n)d characters.")
                % {"n": BREAK_GLASS_MIN_REASON}
            }
        )
    now = timezone.now()
    with transaction.atomic():
        access = BreakGlassAccess.objects.create(
            doctor=by,
            patient=patient,
            reason=reason,
            opened_at=now,
            expires_at=now + timezone.timedelta(hours=BreakGlassAccess.DURATION_HOURS),
        )
        audit_record(
            actor=by,
            action=AuditAction.BREAK_GLASS,
            obj=patient,
            patient=patient.user,
            reason=reason,
            break_glass=True,
            detail={"expires_at": access.expires_at.isoformat()},
        )
    return access
