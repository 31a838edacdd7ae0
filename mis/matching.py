"""Which portal patient an MIS patient is: by identifier only, never by name.

1. The MIS id, through `ExternalLink` (a link made earlier by a match or by a person);
2. SNILS, through accounts' blind index (`PatientProfile.snils` is encrypted; an exact
   filter on it compiles to a lookup of the keyed HMAC of its digits, see
   `clinic.crypto.BlindIndexExact`), the same lookup accounts' `patient_find` uses.

Names and birth dates are never used to match: two people share them often enough, and
a wrong merge would show one patient another's results. What does not match goes to the
review queue (`PatientMatchReview`), where a person decides.

Used by the FHIR pull (mis.services_sync) and the HL7 v2 feed (mis.hl7): keep the
signature of `patient_for_identifiers` stable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import PatientProfile
from accounts.validators import snils_digits
from mis.models import ExternalLink, LinkedKind

# SNILS in Russian FHIR profiles (EGISZ OID) and common spellings of it.
SNILS_SYSTEMS = frozenset(
    {
        "urn:oid:1.2.643.100.3",
        "http://ns.nsi.rosminzdrav.ru/snils",
        "https://ns.nsi.rosminzdrav.ru/snils",
        "urn:snils",
    }
)
SNILS_TYPE_CODES = frozenset({"SNILS"})


def normalise_snils(value: str | None) -> str | None:
    """The 11 digits of a SNILS, or None when it is not one."""
    if not value:
        return None
    digits = snils_digits(str(value))
    return digits if len(digits) == 11 else None


def snils_from_identifiers(identifiers: Iterable[Any] | None) -> str | None:
    """The SNILS among FHIR identifiers (models or dicts), by system or type code."""
    for identifier in identifiers or []:
        get = identifier.get if isinstance(identifier, dict) else identifier.__dict__.get
        system = get("system") or ""
        type_ = get("type")
        codes = set()
        if type_ is not None:
            codings = type_.get("coding") if isinstance(type_, dict) else type_.coding
            for coding in codings or []:
                code = coding.get("code") if isinstance(coding, dict) else coding.code
                if code:
                    codes.add(str(code).upper())
        if system in SNILS_SYSTEMS or codes & SNILS_TYPE_CODES:
            found = normalise_snils(get("value"))
            if found:
                return found
    return None


def linked_id(kind: str, *, system: str, value: str) -> int | None:
    """The portal id linked to an MIS resource, or None."""
    return (
        ExternalLink.objects.filter(kind=kind, system=system, value=value)
        .values_list("object_id", flat=True)
        .first()
    )


def link_set(
    *, kind: str, system: str, value: str, object_id: int, version: str = ""
) -> ExternalLink:
    """Record (or move) the link of an MIS resource to a portal row. Idempotent."""
    with transaction.atomic():
        link, _created = ExternalLink.objects.update_or_create(
            kind=kind,
            system=system,
            value=value,
            defaults={
                "object_id": object_id,
                "version": version[:64],
                "updated_at": timezone.now(),
            },
        )
    return link


def patient_for_identifiers(
    *, system: str, mis_id: str | None, snils: str | None
) -> PatientProfile | None:
    """The portal patient with this MIS id (linked before) or this SNILS; else None."""
    if mis_id:
        object_id = linked_id(LinkedKind.PATIENT, system=system, value=mis_id)
        if object_id is not None:
            found = PatientProfile.objects.select_related("user").filter(pk=object_id).first()
            if found is not None:
                return found
    digits = normalise_snils(snils)
    if digits:
        return PatientProfile.objects.select_related("user").filter(snils=digits).first()
    return None
