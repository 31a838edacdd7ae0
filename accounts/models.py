"""Users, roles, the organisation they work in, patient and staff profiles, identity
verification and consents.

Personal data of patients is encrypted column by column (clinic.crypto); the login
email too, with a blind index for lookup. Staff names and professional details are
public-facing and stored in clear.
"""

from __future__ import annotations

import zoneinfo

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.validators import validate_passport, validate_phone, validate_snils
from clinic.crypto import (
    BlindIndexField,
    EncryptedCharField,
    EncryptedDateField,
    EncryptedEmailField,
    EncryptedTextField,
)
from clinic.files import EncryptedFileSystemStorage


class Role(models.TextChoices):
    PATIENT = "patient", _("Patient")
    DOCTOR = "doctor", _("Doctor")
    NURSE = "nurse", _("Nurse")
    RECEPTION = "reception", _("Reception")
    ADMIN = "admin", _("Administrator")


STAFF_ROLES = frozenset({Role.DOCTOR, Role.NURSE, Role.RECEPTION, Role.ADMIN})


class Language(models.TextChoices):
    RUSSIAN = "ru", _("Russian")
    ENGLISH = "en", _("English")


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("role", Role.PATIENT)
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("role", Role.ADMIN)
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("email_verified_at", timezone.now())
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = EncryptedEmailField(_("email address"), max_length=254)
    email_index = BlindIndexField(source="email", normaliser="email", unique=True)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.PATIENT)
    language = models.CharField(
        _("language"), max_length=8, choices=Language.choices, default=Language.RUSSIAN
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Django admin access; only administrators get it (services keep it in step with role).
    is_staff = models.BooleanField(_("admin site access"), default=False)
    date_joined = models.DateTimeField(_("joined"), default=timezone.now)
    email_verified_at = models.DateTimeField(_("email verified"), null=True, blank=True)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return f"{self.get_role_display()} #{self.pk}"

    @property
    def is_patient(self) -> bool:
        return self.role == Role.PATIENT

    @property
    def is_clinic_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def display_name(self) -> str:
        if self.role == Role.PATIENT and hasattr(self, "patient_profile"):
            return self.patient_profile.short_name()
        if hasattr(self, "staff_profile"):
            return self.staff_profile.full_name
        return str(self)


# --- Organisation -------------------------------------------------------------
# Reference data about the clinic network lives here, below scheduling, because
# access rules (accounts.policies) need departments and staff profiles need all three.


class Location(models.Model):
    name = models.CharField(_("name"), max_length=200)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    address = models.CharField(_("address"), max_length=300)
    time_zone = models.CharField(_("time zone"), max_length=64, default="Europe/Moscow")
    phone = models.CharField(_("phone"), max_length=32, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("location")
        verbose_name_plural = _("locations")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.time_zone not in zoneinfo.available_timezones():
            raise ValidationError({"time_zone": _("Unknown time zone.")})

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Department(models.Model):
    name = models.CharField(_("name"), max_length=200)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="departments", verbose_name=_("location")
    )

    class Meta:
        ordering = ["location__name", "name"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")

    def __str__(self) -> str:
        return f"{self.name} ({self.location})"


class Specialty(models.Model):
    code = models.SlugField(_("code"), max_length=40, unique=True)
    name_ru = models.CharField(_("name (Russian)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=120)

    class Meta:
        ordering = ["name_en"]
        verbose_name = _("specialty")
        verbose_name_plural = _("specialties")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        from django.utils.translation import get_language

        return self.name_ru if (get_language() or "ru").startswith("ru") else self.name_en


# --- Profiles -------------------------------------------------------------------


class Sex(models.TextChoices):
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")


def identity_scan_path(instance: PatientProfile, filename: str) -> str:
    # Random name: the original file name may carry personal data.
    import uuid

    return f"identity/{uuid.uuid4().hex}"


class PatientProfile(models.Model):
    user = models.OneToOneField(
        User, on_delete=models.CASCADE, related_name="patient_profile", verbose_name=_("user")
    )
    last_name = EncryptedCharField(_("last name"), max_length=100)
    first_name = EncryptedCharField(_("first name"), max_length=100)
    middle_name = EncryptedCharField(_("middle name"), max_length=100, blank=True)
    birth_date = EncryptedDateField(_("date of birth"), null=True, blank=True)
    sex = EncryptedCharField(_("sex"), max_length=10, choices=Sex.choices, blank=True)
    phone = EncryptedCharField(_("phone"), max_length=32, blank=True, validators=[validate_phone])
    address = EncryptedTextField(_("address"), blank=True)
    snils = EncryptedCharField(_("SNILS"), max_length=14, blank=True, validators=[validate_snils])
    snils_index = BlindIndexField(source="snils", normaliser="digits", unique=True)
    passport = EncryptedCharField(
        _("passport (series and number)"), max_length=20, blank=True, validators=[validate_passport]
    )
    passport_index = BlindIndexField(source="passport", normaliser="digits", unique=True)
    insurance_policy = EncryptedCharField(_("insurance policy (OMS)"), max_length=32, blank=True)
    # The department whose clinicians care for this patient (nurses and doctors there see
    # the record); set by reception or admin through `patient_department_assign`.
    department = models.ForeignKey(
        "Department",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="patients",
        verbose_name=_("department"),
    )
    identity_scan = models.FileField(
        _("identity document scan"),
        upload_to=identity_scan_path,
        storage=EncryptedFileSystemStorage(),
        blank=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("patient profile")
        verbose_name_plural = _("patient profiles")
        permissions = [
            # Granted per patient (django-guardian) to a doctor who has or had an
            # appointment with them; see accounts.services.care_access_grant.
            ("view_patient_record", "Can open this patient's medical record"),
        ]

    def __str__(self) -> str:
        return f"{_('Patient')} #{self.user_id}"

    def full_name(self) -> str:
        return " ".join(p for p in (self.last_name, self.first_name, self.middle_name) if p)

    def short_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or str(self)

    @property
    def identity_documents_complete(self) -> bool:
        return bool(self.snils and self.passport)

    def current_verification(self) -> IdentityVerification | None:
        """The verification in force: the newest, if not revoked by a change of documents."""
        latest = self.verifications.order_by("-verified_at").first()
        if latest is None or latest.revoked_at is not None:
            return None
        return latest

    @property
    def identity_verified(self) -> bool:
        return self.current_verification() is not None


class StaffProfile(models.Model):
    user = models.OneToOneField(
        User, on_delete=models.CASCADE, related_name="staff_profile", verbose_name=_("user")
    )
    full_name = models.CharField(_("full name"), max_length=200)
    title = models.CharField(_("title"), max_length=120, blank=True)
    specialty = models.ForeignKey(
        Specialty,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
        verbose_name=_("specialty"),
    )
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
        verbose_name=_("department"),
    )
    location = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
        verbose_name=_("location"),
    )
    bio = models.TextField(_("about"), blank=True)
    photo = models.ImageField(_("photo"), upload_to="staff/", blank=True)
    languages = models.CharField(_("languages spoken"), max_length=120, blank=True)
    practising_since = models.PositiveSmallIntegerField(
        _("practising since (year)"), null=True, blank=True
    )

    class Meta:
        ordering = ["full_name"]
        verbose_name = _("staff profile")
        verbose_name_plural = _("staff profiles")

    def __str__(self) -> str:
        return self.full_name

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def years_of_experience(self) -> int | None:
        if not self.practising_since:
            return None
        return max(0, timezone.now().year - self.practising_since)


# --- Identity verification -------------------------------------------------------


class VerificationMethod(models.TextChoices):
    IN_PERSON = "in_person", _("Original documents checked in person")
    SCAN = "scan", _("Scan checked against records")
    ESIA = "esia", _("Confirmed through Gosuslugi (ESIA)")


class IdentityVerification(models.Model):
    """Reception or an admin confirmed the patient's documents. Kept as history."""

    patient = models.ForeignKey(
        PatientProfile, on_delete=models.CASCADE, related_name="verifications"
    )
    verified_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("verified by")
    )
    verified_at = models.DateTimeField(_("verified at"), default=timezone.now)
    method = models.CharField(_("method"), max_length=16, choices=VerificationMethod.choices)
    note = EncryptedTextField(_("note"), blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_reason = models.CharField(_("revoked because"), max_length=200, blank=True)

    class Meta:
        ordering = ["-verified_at"]
        verbose_name = _("identity verification")
        verbose_name_plural = _("identity verifications")

    def __str__(self) -> str:
        return f"{self.get_method_display()} {self.verified_at:%Y-%m-%d}"


# --- Consents ------------------------------------------------------------------------


class ConsentKind(models.TextChoices):
    HEALTH_DATA = "health_data", _("Processing of personal and health data")
    TELEMEDICINE = "telemedicine", _("Telemedicine consultations")
    MIS_SHARING = "mis_sharing", _("Sharing data with the clinic's medical information system")


class ConsentText(models.Model):
    """One published version of a consent text. Never edited once published."""

    kind = models.CharField(_("kind"), max_length=32, choices=ConsentKind.choices)
    version = models.PositiveIntegerField(_("version"))
    title_ru = models.CharField(_("title (Russian)"), max_length=200)
    title_en = models.CharField(_("title (English)"), max_length=200)
    body_ru = models.TextField(_("text (Russian)"))
    body_en = models.TextField(_("text (English)"))
    published_at = models.DateTimeField(_("published"), default=timezone.now)

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="consent_text_kind_version")
        ]
        verbose_name = _("consent text")
        verbose_name_plural = _("consent texts")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.version}"

    def _localised(self, ru: str, en: str) -> str:
        from django.utils.translation import get_language

        return ru if (get_language() or "ru").startswith("ru") else en

    @property
    def title(self) -> str:
        return self._localised(self.title_ru, self.title_en)

    @property
    def body(self) -> str:
        return self._localised(self.body_ru, self.body_en)


class ConsentDecision(models.TextChoices):
    GIVEN = "given", _("Given")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class ConsentRecord(models.Model):
    """A patient's decision on a consent text: the history is every row, newest wins."""

    patient = models.ForeignKey(PatientProfile, on_delete=models.CASCADE, related_name="consents")
    text = models.ForeignKey(ConsentText, on_delete=models.PROTECT, related_name="records")
    kind = models.CharField(max_length=32, choices=ConsentKind.choices, editable=False)
    decision = models.CharField(_("decision"), max_length=16, choices=ConsentDecision.choices)
    decided_at = models.DateTimeField(_("when"), default=timezone.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-decided_at", "-id"]
        indexes = [models.Index(fields=["patient", "kind", "-decided_at"])]
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")

    def __str__(self) -> str:
        return f"{self.text} {self.get_decision_display()}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.kind = self.text.kind
        super().save(*args, **kwargs)  # type: ignore[arg-type]


# --- Break-glass -------------------------------------------------------------------------


class BreakGlassAccess(models.Model):
    """A doctor opened a record without a care relationship, giving a reason.

    Time-limited; the audit trail holds the flagged event that admins review and the
    patient sees.
    """

    DURATION_HOURS = 4

    doctor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(PatientProfile, on_delete=models.PROTECT, related_name="+")
    reason = EncryptedTextField(_("reason"))
    opened_at = models.DateTimeField(_("opened"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["doctor", "patient", "-expires_at"])]
        verbose_name = _("break-glass access")
        verbose_name_plural = _("break-glass accesses")

    def __str__(self) -> str:
        return f"{_('Break-glass')} {self.opened_at:%Y-%m-%d %H:%M}"
