"""Thin tasks: take ids or names, call a service. The cursors are the record
(DESIGN.md rule 1): the beat sweep finds the types that are due, so a lost message only
delays a pull until the next minute."""

from __future__ import annotations

import importlib

from celery import shared_task

from mis import services_sync

# A pull runs until its pages are done; the cursor's lease (15 min) outlives it.
PULL_OPTIONS = {"acks_late": True, "ignore_result": True, "soft_time_limit": 840, "time_limit": 900}


def _result(cursor) -> dict | None:  # noqa: ANN001
    if cursor is None:
        return None
    return {
        "created": cursor.created_count,
        "updated": cursor.updated_count,
        "unchanged": cursor.unchanged_count,
        "skipped": cursor.skipped_count,
        "quarantined": cursor.quarantined_count,
        "error": cursor.last_error,
    }


@shared_task(name="mis.sync_pull", **PULL_OPTIONS)
def sync_pull(resource_type: str) -> dict | None:
    """Pull one resource type from the MIS (no-op when not configured or not due)."""
    return _result(services_sync.sync_pull(resource_type=resource_type))


@shared_task(name="mis.sync_sweep", ignore_result=True)
def sync_sweep() -> list[str]:
    """Beat, every minute: queue a pull of each type that is not running or backing off,
    one after another in dependency order (a chain: a report needs its patient)."""
    from celery import chain

    from mis.fhir.client import FhirClient, MisNotConfigured

    try:
        system = FhirClient.from_settings().system
    except MisNotConfigured:
        return []
    due = services_sync.sync_due_types(system=system)
    if due:
        chain(*(sync_pull.si(rt) for rt in due)).delay()
    services_sync.patient_reviews_rematch()
    for review_id in services_sync.patient_backfills_due():
        backfill_patient.delay(review_id)
    return due


@shared_task(name="mis.backfill_patient", **PULL_OPTIONS)
def backfill_patient(review_id: int) -> dict | None:
    """Pull the reports, documents and appointments of a patient linked by review."""
    from mis.fhir.client import MisError
    from mis.models import PatientMatchReview

    review = PatientMatchReview.objects.filter(pk=review_id).first()
    if review is None:
        return None
    try:
        return services_sync.patient_backfill(review=review).as_dict()
    except MisError:
        return None  # the patient's resources come with their next versions, or a retry


# The push (M2) and HL7 (M3) parts register their tasks from their own modules.
for _module in ("mis.tasks_push", "mis.tasks_hl7"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:  # not written (yet): nothing to register
        if exc.name != _module:
            raise
