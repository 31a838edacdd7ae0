"""FHIR sync state: cursors per resource type, quarantined resources, the review queue of
MIS patients no portal patient matches, and the versions of MIS resources that have no
portal row of their own (schedules, slots, practitioner roles).

Everything here is a row with a state (DESIGN.md rule 1): a lost Celery message loses
nothing, the beat sweep finds the cursors that are due.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clinic.crypto import EncryptedTextField

__all__ = [
    "MatchReason",
    "MatchState",
    "PatientMatchReview",
    "QuarantineReason",
    "QuarantinedResource",
    "ResourceMark",
    "SyncCursor",
    "SyncResourceType",
]


class SyncResourceType(models.TextChoices):
    """Pulled in this order: a report needs its patient, an appointment its doctor."""

    PATIENT = "Patient", "Patient"
    PRACTITIONER = "Practitioner", "Practitioner"
    PRACTITIONER_ROLE = "PractitionerRole", "PractitionerRole"
    SCHEDULE = "Schedule", "Schedule"
    SLOT = "Slot", "Slot"
    APPOINTMENT = "Appointment", "Appointment"
    DIAGNOSTIC_REPORT = "DiagnosticReport", "DiagnosticReport"
    DOCUMENT_REFERENCE = "DocumentReference", "DocumentReference"


class SyncCursor(models.Model):
    """How far the pull of one resource type from one MIS has got.

    `cursor` is the `meta.lastUpdated` (the MIS's clock) up to which every resource has
    been applied or quarantined; the next run asks for `_lastUpdated=ge<cursor>` (equal
    instants come again and are recognised by their version). The counts are those of
    the last run. A failed run leaves the cursor where it was and sets `next_retry_at`
    with exponential backoff."""

    system = models.CharField(_("MIS"), max_length=255)
    resource_type = models.CharField(
        _("resource type"), max_length=40, choices=SyncResourceType.choices
    )
    cursor = models.DateTimeField(_("applied up to (MIS time)"), null=True, blank=True)
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True)
    last_success_at = models.DateTimeField(_("last successful run"), null=True, blank=True)
    created_count = models.PositiveIntegerField(_("created"), default=0)
    updated_count = models.PositiveIntegerField(_("updated"), default=0)
    unchanged_count = models.PositiveIntegerField(_("unchanged"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped (not for the portal)"), default=0)
    quarantined_count = models.PositiveIntegerField(_("quarantined"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    next_retry_at = models.DateTimeField(_("next retry"), null=True, blank=True)
    # A run holds the cursor while it works; a lease a dead worker left is taken over.
    running_since = models.DateTimeField(_("running since"), null=True, blank=True)

    class Meta:
        ordering = ["system", "resource_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["system", "resource_type"], name="sync_cursor_one_per_type"
            ),
        ]
        verbose_name = _("sync status")
        verbose_name_plural = _("sync status")

    def __str__(self) -> str:
        return f"{self.resource_type} @ {self.system}"


class QuarantineReason(models.TextChoices):
    MALFORMED = "malformed", _("Not valid FHIR R4")
    UNMAPPABLE = "unmappable", _("Valid, but the portal cannot use it")
    REJECTED = "rejected", _("Refused by the portal's rules")
    MISSING_REFERENCE = "missing_reference", _("Refers to something the portal does not know")


class QuarantinedResource(models.Model):
    """A resource that could not be applied. The rest of its page went on; this one waits
    here, with its JSON (encrypted: it may hold personal data) and the reason, until it
    is fixed in the MIS (a new version is pulled again) or retried from the admin."""

    system = models.CharField(_("MIS"), max_length=255)
    resource_type = models.CharField(_("resource type"), max_length=64)
    resource_id = models.CharField(_("MIS id"), max_length=255)
    version = models.CharField(_("version"), max_length=64, blank=True)
    reason = models.CharField(_("reason"), max_length=20, choices=QuarantineReason.choices)
    error = EncryptedTextField(_("error"))
    raw = EncryptedTextField(_("resource (JSON)"))
    first_seen_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    times_seen = models.PositiveIntegerField(_("times seen"), default=1)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolution = models.CharField(_("resolution"), max_length=200, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["system", "resource_type", "resource_id"],
                name="quarantine_one_per_resource",
            ),
        ]
        indexes = [
            models.Index(
                fields=["system", "resource_type"],
                condition=models.Q(resolved_at__isnull=True),
                name="quarantine_open",
            )
        ]
        verbose_name = _("quarantined resource")
        verbose_name_plural = _("quarantined resources")

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None


class MatchReason(models.TextChoices):
    NO_IDENTIFIERS = "no_identifiers", _("No SNILS and no known MIS id")
    NOT_FOUND = "not_found", _("No portal patient has this SNILS")
    CONFLICT = "conflict", _("The MIS id and the SNILS point to different patients")


class MatchState(models.TextChoices):
    PENDING = "pending", _("Waiting for a decision")
    LINKED = "linked", _("Linked to a portal patient")
    DISMISSED = "dismissed", _("Not a portal patient")


class PatientMatchReview(models.Model):
    """An MIS patient the portal could not match by identifier. Never merged on name
    alone: a person decides (link to a portal patient found by SNILS, passport or
    email) or the match is retried when the identifiers change."""

    system = models.CharField(_("MIS"), max_length=255)
    resource_id = models.CharField(_("MIS patient id"), max_length=255)
    version = models.CharField(_("version"), max_length=64, blank=True)
    reason = models.CharField(_("reason"), max_length=20, choices=MatchReason.choices)
    state = models.CharField(
        _("state"), max_length=12, choices=MatchState.choices, default=MatchState.PENDING
    )
    # What the reviewer needs to recognise the person (encrypted: personal data).
    summary = EncryptedTextField(_("MIS patient"), blank=True)
    raw = EncryptedTextField(_("resource (JSON)"))
    patient = models.ForeignKey(
        "accounts.PatientProfile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("portal patient"),
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    # After a link, the patient's reports and documents the pull had passed by are
    # fetched (mis.backfill_patient); set when that finished, swept until then.
    backfilled_at = models.DateTimeField(_("history fetched"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["state", "-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["system", "resource_id"], name="match_review_one_per_mis_patient"
            ),
        ]
        indexes = [models.Index(fields=["state", "updated_at"])]
        verbose_name = _("patient match review")
        verbose_name_plural = _("patient match reviews")

    def __str__(self) -> str:
        return f"Patient/{self.resource_id}"


class ResourceMark(models.Model):
    """The version applied of an MIS resource that has no ExternalLink kind of its own
    (Schedule, Slot, PractitionerRole), and the portal row it produced, if any (for a
    Slot: the schedule exception)."""

    system = models.CharField(_("MIS"), max_length=255)
    resource_type = models.CharField(_("resource type"), max_length=40)
    resource_id = models.CharField(_("MIS id"), max_length=255)
    version = models.CharField(_("version"), max_length=64, blank=True)
    object_kind = models.CharField(_("portal kind"), max_length=40, blank=True)
    object_id = models.BigIntegerField(_("portal id"), null=True, blank=True)
    # What later resources need from this one (a Schedule's doctor and location).
    extra = models.JSONField(_("details"), default=dict, blank=True)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["system", "resource_type", "resource_id"], name="resource_mark_one"
            ),
        ]
        verbose_name = _("MIS resource state")
        verbose_name_plural = _("MIS resource states")

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"
