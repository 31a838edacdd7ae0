"""Who may do what: the only place that decides access (DESIGN.md "Inside an app").

Pure functions of the acting user and the object. The security-core issue extends
them with object grants (django-guardian) for doctors and departments.
"""

from __future__ import annotations

from typing import Any

from accounts.models import STAFF_ROLES, PatientProfile, Role, User


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_staff_member(user: Any) -> bool:
    return _active(user) and user.role in STAFF_ROLES


def staff_requires_mfa(user: Any) -> bool:
    """Every staff account must have TOTP before any staff page or the admin opens."""
    return is_staff_member(user) or (_active(user) and (user.is_staff or user.is_superuser))


def can_edit_own_profile(user: Any, profile: PatientProfile) -> bool:
    return _active(user) and user.role == Role.PATIENT and profile.user_id == user.pk


def can_view_patient_demographics(user: Any, profile: PatientProfile) -> bool:
    if not _active(user):
        return False
    if user.role == Role.PATIENT:
        return profile.user_id == user.pk
    return user.role in {Role.RECEPTION, Role.ADMIN, Role.DOCTOR, Role.NURSE}


def can_search_patients(user: Any) -> bool:
    return _active(user) and user.role in {Role.RECEPTION, Role.ADMIN}


def can_verify_identity(user: Any, profile: PatientProfile) -> bool:
    """Reception or an administrator, never on their own record."""
    return (
        _active(user) and user.role in {Role.RECEPTION, Role.ADMIN} and profile.user_id != user.pk
    )


def can_change_role(user: Any, target: User) -> bool:
    return _active(user) and user.role == Role.ADMIN and target.pk != user.pk


def can_manage_consents(user: Any, profile: PatientProfile) -> bool:
    """Consent is the patient's own act; nobody gives or withdraws it for them here."""
    return _active(user) and profile.user_id == user.pk
