"""Django admin for accounts. Personal data is read-only here: its changes go through
services (with audit), and the admin sits behind staff MFA."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from accounts import services
from accounts.models import (
    BreakGlassAccess,
    ConsentRecord,
    ConsentText,
    Department,
    IdentityVerification,
    Location,
    PatientProfile,
    Specialty,
    StaffProfile,
    User,
)
from audit.models import AuditAction
from audit.services import audit_record
from clinic.admin_audit import AuditedAdminMixin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records and history: viewable, never edited or deleted in the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("id", "role", "is_active", "is_staff", "email_verified_at", "date_joined")
    list_filter = ("role", "is_active", "is_staff")
    fields = (
        "email",
        "role",
        "language",
        "is_active",
        "is_staff",
        "is_superuser",
        "email_verified_at",
        "date_joined",
        "last_login",
    )
    readonly_fields = (
        "email",
        "is_staff",
        "is_superuser",
        "email_verified_at",
        "date_joined",
        "last_login",
    )
    ordering = ("-id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Accounts are created by registration (patients) or `staff_create` (staff).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Medical records are kept 25 years; accounts are deactivated, not deleted.
        return False

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if "role" in form.changed_data:
            new_role = obj.role
            stored = User.objects.get(pk=obj.pk)
            try:
                services.user_set_role(by=request.user, user=stored, role=new_role)
            except (PermissionDenied, ValidationError):
                messages.error(request, "You may not change this user's role.")
                obj.role = stored.role
        obj.is_staff = User.objects.values_list("is_staff", flat=True).get(pk=obj.pk)
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,
            action=AuditAction.CHANGE,
            obj=obj,
            detail={"fields": form.changed_data, "via": "admin"},
        )

    def patient_of(self, obj: User) -> Any:
        return obj if obj.is_patient else None


@admin.register(PatientProfile)
class PatientProfileAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    list_display = ("id", "user", "created_at")
    # Encrypted fields cannot be searched or sorted; staff use the blind-index search page.
    readonly_fields = (
        "user",
        "last_name",
        "first_name",
        "middle_name",
        "birth_date",
        "sex",
        "phone",
        "address",
        "snils",
        "passport",
        "insurance_policy",
        "created_at",
    )
    exclude = ("snils_index", "passport_index", "identity_scan")

    def patient_of(self, obj: PatientProfile) -> Any:
        return obj.user


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin):
    list_display = ("full_name", "role", "specialty", "department", "location")
    list_filter = ("specialty", "department", "location")
    search_fields = ("full_name",)
    readonly_fields = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(IdentityVerification)
class IdentityVerificationAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    def patient_of(self, obj: IdentityVerification) -> Any:
        return obj.patient.user

    list_display = ("patient", "method", "verified_by", "verified_at", "revoked_at")
    list_filter = ("method",)
    exclude = ("note",)


@admin.register(ConsentText)
class ConsentTextAdmin(admin.ModelAdmin):
    list_display = ("kind", "version", "published_at")
    list_filter = ("kind",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Published texts are what patients agreed to: new wording is a new version.
        if obj is not None:
            return [f.name for f in ConsentText._meta.fields]
        return ("version", "published_at")

    def save_model(self, request: HttpRequest, obj: ConsentText, form: Any, change: bool) -> None:
        if change:
            return
        published = services.consent_text_publish(
            by=request.user,
            kind=obj.kind,
            title_ru=obj.title_ru,
            title_en=obj.title_en,
            body_ru=obj.body_ru,
            body_en=obj.body_en,
        )
        obj.pk = published.pk
        obj.version = published.version

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    def patient_of(self, obj: ConsentRecord) -> Any:
        return obj.patient.user

    list_display = ("patient", "kind", "decision", "decided_at")
    list_filter = ("kind", "decision")


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "time_zone")


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "location")
    list_filter = ("location",)


@admin.register(Specialty)
class SpecialtyAdmin(admin.ModelAdmin):
    list_display = ("code", "name_en", "name_ru")


@admin.register(BreakGlassAccess)
class BreakGlassAccessAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    list_display = ("opened_at", "doctor", "patient", "expires_at")
    date_hierarchy = "opened_at"

    def patient_of(self, obj: BreakGlassAccess) -> Any:
        return obj.patient.user
