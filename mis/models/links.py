"""Which MIS resource a portal row is: one row per (resource type, MIS id).

Portal rows live in other apps (patients in accounts, appointments in scheduling, lab
reports in records); the link keeps the MIS's identifiers out of their tables, so those
apps never know an MIS exists (DESIGN.md: mis -> records, scheduling, accounts).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["ExternalLink", "LinkedKind"]


class LinkedKind(models.TextChoices):
    PATIENT = "patient", _("Patient")
    PRACTITIONER = "practitioner", _("Doctor")
    APPOINTMENT = "appointment", _("Appointment")
    LAB_REPORT = "lab_report", _("Lab report")
    DOCUMENT = "document", _("Document")
    LOCATION = "location", _("Location")


class ExternalLink(models.Model):
    """`kind` + `object_id` (the portal row's primary key) is MIS resource `system|value`.

    `system` names the source ("fhir:<base url>" or "hl7:<sending facility>") so two
    MIS never collide; `version` is the resource's `meta.versionId` (or the HL7 message
    control id) last applied, so the same version pulled twice changes nothing."""

    kind = models.CharField(_("kind"), max_length=16, choices=LinkedKind.choices)
    object_id = models.BigIntegerField(_("portal id"))
    system = models.CharField(_("source"), max_length=255)
    value = models.CharField(_("MIS id"), max_length=255)
    version = models.CharField(_("version"), max_length=64, blank=True)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "system", "value"], name="external_link_one_per_mis_id"
            ),
        ]
        indexes = [models.Index(fields=["kind", "object_id"])]
        verbose_name = _("MIS link")
        verbose_name_plural = _("MIS links")

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} = {self.system}|{self.value}"
