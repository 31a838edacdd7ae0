"""Pulling from the MIS over FHIR R4: incremental, idempotent, robust to outages.

One run (`sync_pull`) handles one resource type of one MIS:

1. It claims the type's `SyncCursor` (a lease, committed), unless a run holds it or a
   failed run's backoff is not over.
2. It searches `_lastUpdated=ge<cursor>&_sort=_lastUpdated&_count=N` and follows the
   Bundle's `next` links. Each resource is parsed with the R4B models and applied in
   its own transaction through the owning app's services, with `by=None` (the system)
   and their audit events: patients are matched (mis.matching), doctors created in
   accounts, appointments booked in scheduling, lab reports received in records, ...
3. A resource that cannot be applied is quarantined (`QuarantinedResource`, its JSON
   encrypted) with the reason, and the run goes on. An applied version is remembered in
   `ExternalLink.version` (or `ResourceMark`), so the same pages pulled again change
   nothing.
4. After each page the cursor moves to the newest `meta.lastUpdated` applied. The MIS
   going away midway (`MisUnavailable`) ends the run with the error recorded and
   `next_retry_at` set with exponential backoff; what was applied stays, what was not
   comes again from the cursor.

Offset paging (what most servers' `next` links are) shifts when a resource is changed
during the run: it jumps to the end of the sort order, and the one after it could be
skipped. A resource newer than the first page's server time is the sign; the cursor is
then held at the last page read before that change, so the next run reads again from
there (see docs/adr/0014-fhir-pull-by-cursor.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Location, PatientProfile, Role, User
from mis import matching
from mis.fhir import mappers
from mis.fhir.client import (
    FhirClient,
    MalformedResource,
    MisError,
    MisNotConfigured,
    MisUnavailable,
    parse_resource,
)
from mis.fhir.mappers import Unmappable
from mis.models import (
    ExternalLink,
    LinkedKind,
    MatchReason,
    MatchState,
    PatientMatchReview,
    QuarantinedResource,
    QuarantineReason,
    ResourceMark,
    SyncCursor,
    SyncResourceType,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
LEASE = timedelta(minutes=15)  # a run that holds a cursor longer than this died
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
ERROR_MAX = 2000
PULL_ORDER = tuple(SyncResourceType.values)


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    QUARANTINED = "quarantined"


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    quarantined: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "quarantined": self.quarantined,
        }


@dataclass
class PullContext:
    client: FhirClient
    system: str
    schedule_master: bool
    # Resources a search brought along (_include), by "Type/id".
    included: dict[str, dict] = field(default_factory=dict)
    # Open quarantine rows of the page being applied, by resource id (None: not loaded).
    open_quarantine: dict[str, QuarantinedResource] | None = None

    @property
    def source(self) -> str:
        """records' LabReport.source is 40 characters: a short, stable name of this MIS."""
        return source_label(self.system)


def source_label(system: str) -> str:
    if len(system) <= 40:
        return system
    return "fhir:" + hashlib.sha256(system.encode()).hexdigest()[:24]


def backoff(failures: int) -> timedelta:
    """30 s, 1 min, 2 min, ... at most an hour."""
    seconds = BACKOFF_BASE_SECONDS * (2 ** max(0, failures - 1))
    return timedelta(seconds=min(BACKOFF_MAX_SECONDS, seconds))


# --- cursors -------------------------------------------------------------------------------


def cursor_for(system: str, resource_type: str) -> SyncCursor:
    cursor, _created = SyncCursor.objects.get_or_create(system=system, resource_type=resource_type)
    return cursor


def _claim(system: str, resource_type: str, *, now: datetime, force: bool) -> SyncCursor | None:
    """Take the type's lease (committed at once), or None when a live run holds it or a
    retry is not due yet (unless `force`)."""
    cursor_for(system, resource_type)
    with transaction.atomic():
        row = SyncCursor.objects.select_for_update().get(system=system, resource_type=resource_type)
        if row.running_since is not None and row.running_since > now - LEASE:
            return None
        if not force and row.next_retry_at is not None and row.next_retry_at > now:
            return None
        row.running_since = now
        row.save(update_fields=["running_since"])
    return row


def _save_progress(row: SyncCursor, cursor: datetime | None) -> None:
    if cursor is not None and (row.cursor is None or cursor > row.cursor):
        row.cursor = cursor
        SyncCursor.objects.filter(pk=row.pk).update(cursor=cursor)


def _finish(
    row: SyncCursor,
    *,
    counts: Counts,
    now: datetime,
    error: str = "",
    cursor: datetime | None = None,
) -> SyncCursor:
    fields = {
        "running_since": None,
        "last_run_at": now,
        "created_count": counts.created,
        "updated_count": counts.updated,
        "unchanged_count": counts.unchanged,
        "skipped_count": counts.skipped,
        "quarantined_count": counts.quarantined,
    }
    if cursor is not None:
        fields["cursor"] = cursor
    if error:
        failures = row.failures + 1
        fields.update(
            last_error=error[:ERROR_MAX],
            failures=failures,
            next_retry_at=now + backoff(failures),
        )
    else:
        fields.update(last_error="", failures=0, next_retry_at=None, last_success_at=now)
    SyncCursor.objects.filter(pk=row.pk).update(**fields)
    row.refresh_from_db()
    return row


def sync_cursor_retry_now(*, by: User | None, cursor: SyncCursor) -> SyncCursor:
    """An operator's "retry now": the backoff is over; the next sweep (or the task this
    queues on commit) runs the type at once."""
    from audit.models import AuditAction
    from audit.services import audit_record

    with transaction.atomic():
        SyncCursor.objects.filter(pk=cursor.pk).update(next_retry_at=None)
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=cursor,
            detail={"mis_sync": "retry_now", "resource_type": cursor.resource_type},
        )
        from mis.tasks import sync_pull as sync_pull_task

        transaction.on_commit(
            lambda: sync_pull_task.delay(cursor.resource_type)  # noqa: B023
        )
    cursor.refresh_from_db()
    return cursor


# --- one run -------------------------------------------------------------------------------


def _search_params(resource_type: str, cursor: datetime | None, page_size: int) -> list:
    params: list[tuple[str, str]] = []
    if cursor is not None:
        stamp = cursor.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        params.append(("_lastUpdated", f"ge{stamp}"))
    params += [("_sort", "_lastUpdated"), ("_count", str(page_size))]
    if resource_type == SyncResourceType.DIAGNOSTIC_REPORT:
        params.append(("_include", "DiagnosticReport:result"))
    return params


def sync_pull(
    *,
    resource_type: str,
    client: FhirClient | None = None,
    page_size: int = PAGE_SIZE,
    now: datetime | None = None,
    force: bool = False,
) -> SyncCursor | None:
    """Pull one resource type from the MIS; None when the MIS is not configured or the
    type is not due. Never raises for the MIS's sake: errors are recorded on the cursor."""
    if resource_type not in SyncResourceType.values:
        raise ValueError(f"not a pulled resource type: {resource_type}")
    if client is None:
        try:
            client = FhirClient.from_settings()
        except MisNotConfigured:
            return None
    now = now or timezone.now()
    row = _claim(client.system, resource_type, now=now, force=force)
    if row is None:
        return None
    ctx = PullContext(
        client=client, system=client.system, schedule_master=settings.MIS_SCHEDULE_MASTER
    )
    counts = Counts()
    start_cursor = row.cursor
    progress = row.cursor
    # For the offset-paging shift (module docstring): when each page was read, and the
    # cursor after the page before it.
    run_started: datetime | None = None
    pages: list[tuple[datetime, datetime | None]] = []
    changed_during_run: datetime | None = None
    try:
        for page in client.search_pages(
            resource_type, _search_params(resource_type, start_cursor, page_size)
        ):
            read_at = page.server_time or timezone.now()
            run_started = run_started or read_at
            pages.append((read_at, progress))
            ctx.included = {
                f"{r.get('resourceType')}/{r.get('id')}": r
                for r in page.included
                if isinstance(r, dict)
            }
            page_ids = [str(r.get("id")) for r in page.resources if isinstance(r, dict)]
            ctx.open_quarantine = {
                row.resource_id: row
                for row in QuarantinedResource.objects.filter(
                    system=ctx.system,
                    resource_type=resource_type,
                    resource_id__in=page_ids,
                    resolved_at__isnull=True,
                )
            }
            page_newest = progress
            for raw in page.resources:
                counts.add(_apply_one(ctx, resource_type, raw))
                stamp = mappers.last_updated_of(raw) if isinstance(raw, dict) else None
                if stamp is not None:
                    if page_newest is None or stamp > page_newest:
                        page_newest = stamp
                    if stamp > run_started and (
                        changed_during_run is None or stamp < changed_during_run
                    ):
                        changed_during_run = stamp
            progress = page_newest
            _save_progress(row, progress)
    except MisError as exc:
        logger.warning("MIS pull of %s failed: %s", resource_type, type(exc).__name__)
        return _finish(row, counts=counts, now=now, error=exc.message)
    final = progress
    if changed_during_run is not None:
        # Hold the cursor at the last page read before the change (module docstring).
        held = start_cursor
        for read_at, cursor_before in pages:
            if read_at >= changed_during_run:
                held = cursor_before
                break
        else:
            held = final
        final = held
    if final is not None and row.cursor is not None and final < row.cursor:
        SyncCursor.objects.filter(pk=row.pk).update(cursor=final)
    return _finish(row, counts=counts, now=now, cursor=final)


def sync_pull_all(
    *, client: FhirClient | None = None, page_size: int = PAGE_SIZE, force: bool = False
) -> dict[str, SyncCursor | None]:
    """Every type once, in dependency order (operators, tests, `mis_sync --once`)."""
    if client is None:
        try:
            client = FhirClient.from_settings()
        except MisNotConfigured:
            return {}
    return {
        rt: sync_pull(resource_type=rt, client=client, page_size=page_size, force=force)
        for rt in PULL_ORDER
    }


def sync_due_types(*, system: str, now: datetime | None = None) -> list[str]:
    """The types the beat sweep should pull now: not running, not backing off."""
    now = now or timezone.now()
    rows = {c.resource_type: c for c in SyncCursor.objects.filter(system=system)}
    due = []
    for rt in PULL_ORDER:
        row = rows.get(rt)
        if row is None:
            due.append(rt)
            continue
        if row.running_since is not None and row.running_since > now - LEASE:
            continue
        if row.next_retry_at is not None and row.next_retry_at > now:
            continue
        due.append(rt)
    return due


# --- applying one resource -----------------------------------------------------------------


class Rejected(Exception):
    """The portal's rules refuse the resource (a service said no)."""


def _apply_one(ctx: PullContext, resource_type: str, raw: Any) -> str:
    resource_id = str(raw.get("id") or "") if isinstance(raw, dict) else ""
    version = mappers.version_of(raw) if isinstance(raw, dict) else ""
    if ctx.open_quarantine is not None:
        open_row = ctx.open_quarantine.get(resource_id)
    elif resource_id:
        open_row = QuarantinedResource.objects.filter(
            system=ctx.system,
            resource_type=resource_type,
            resource_id=resource_id,
            resolved_at__isnull=True,
        ).first()
    else:
        open_row = None
    if open_row is not None and open_row.version == version:
        return Outcome.UNCHANGED  # the same broken version again: nothing new to say
    try:
        model = parse_resource(raw, resource_type)
        if not resource_id:
            raise MalformedResource(f"{resource_type} without an id")
    except MalformedResource as exc:
        return _quarantine(
            ctx, resource_type, resource_id, version, raw, QuarantineReason.MALFORMED, str(exc)
        )
    handler = HANDLERS[resource_type]
    try:
        with transaction.atomic():
            outcome = handler(ctx, model, raw, version)
    except MisUnavailable:
        raise  # the MIS went away while we followed a reference: end the run
    except Unmappable as exc:
        reason = (
            QuarantineReason.MISSING_REFERENCE
            if exc.missing_reference
            else QuarantineReason.UNMAPPABLE
        )
        return _quarantine(ctx, resource_type, resource_id, version, raw, reason, str(exc))
    except (Rejected, ValidationError, PermissionDenied, IntegrityError) as exc:
        return _quarantine(
            ctx, resource_type, resource_id, version, raw, QuarantineReason.REJECTED, _describe(exc)
        )
    except MisError as exc:  # a referenced resource the MIS refused to give
        return _quarantine(
            ctx,
            resource_type,
            resource_id,
            version,
            raw,
            QuarantineReason.MISSING_REFERENCE,
            exc.message,
        )
    except Exception as exc:  # a bug must not stop the feed: set it aside, loudly
        logger.exception("MIS %s could not be applied", resource_type)
        return _quarantine(
            ctx,
            resource_type,
            resource_id,
            version,
            raw,
            QuarantineReason.UNMAPPABLE,
            f"unexpected {type(exc).__name__}",
        )
    if open_row is not None:
        QuarantinedResource.objects.filter(pk=open_row.pk).update(
            resolved_at=timezone.now(), resolution=f"version {version} applied"[:200]
        )
    return outcome


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(m) for m in exc.messages)[:ERROR_MAX]
    if isinstance(exc, PermissionDenied):
        return "the portal's rules do not let the system make this change"
    if isinstance(exc, IntegrityError):
        return "the database refused it (a conflicting row exists)"
    return str(exc)[:ERROR_MAX] or type(exc).__name__


def _quarantine(
    ctx: PullContext,
    resource_type: str,
    resource_id: str,
    version: str,
    raw: Any,
    reason: str,
    error: str,
) -> str:
    now = timezone.now()
    try:
        text = json.dumps(raw, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(raw)
    resource_id = resource_id or "sha:" + hashlib.sha256(text.encode()).hexdigest()[:32]
    with transaction.atomic():
        row = (
            QuarantinedResource.objects.select_for_update()
            .filter(system=ctx.system, resource_type=resource_type, resource_id=resource_id)
            .first()
        )
        if row is None:
            QuarantinedResource.objects.create(
                system=ctx.system,
                resource_type=resource_type,
                resource_id=resource_id[:255],
                version=version,
                reason=reason,
                error=error[:ERROR_MAX],
                raw=text,
                first_seen_at=now,
                last_seen_at=now,
            )
        else:
            row.version = version
            row.reason = reason
            row.error = error[:ERROR_MAX]
            row.raw = text
            row.last_seen_at = now
            row.times_seen += 1
            row.resolved_at = None
            row.resolution = ""
            row.save()
    return Outcome.QUARANTINED


def quarantine_retry(
    *, by: User | None, row: QuarantinedResource, client: FhirClient | None = None
) -> str:
    """Apply a quarantined resource again, from the MIS's current version (an operator
    fixed the cause: added a test type, linked the patient, fixed it in the MIS)."""
    from audit.models import AuditAction
    from audit.services import audit_record

    client = client or FhirClient.from_settings()
    ctx = PullContext(
        client=client, system=row.system, schedule_master=settings.MIS_SCHEDULE_MASTER
    )
    try:
        raw = client.read_raw(row.resource_type, row.resource_id)
    except MisError:
        raw = json.loads(row.raw)
    if row.resource_type == SyncResourceType.DIAGNOSTIC_REPORT:
        ctx.included = {}
    QuarantinedResource.objects.filter(pk=row.pk).update(version="")  # apply, do not skip
    outcome = _apply_one(ctx, row.resource_type, raw)
    audit_record(
        actor=by,
        action=AuditAction.CHANGE,
        obj=row,
        detail={"mis_quarantine": "retry", "outcome": outcome},
    )
    return outcome


def quarantine_resolve(*, by: User, rows: list[QuarantinedResource], note: str = "") -> int:
    """An operator closes quarantined resources handled outside the portal."""
    from accounts import policies
    from audit.models import AuditAction
    from audit.services import audit_record

    if not policies.can_operate_mis_sync(by):
        raise PermissionDenied
    now = timezone.now()
    count = 0
    with transaction.atomic():
        for row in rows:
            if row.resolved_at is not None:
                continue
            QuarantinedResource.objects.filter(pk=row.pk).update(
                resolved_at=now, resolution=(note or "marked resolved by an operator")[:200]
            )
            audit_record(
                actor=by, action=AuditAction.CHANGE, obj=row, detail={"mis_quarantine": "resolved"}
            )
            count += 1
    return count


# --- links ---------------------------------------------------------------------------------


def _link(kind: str, ctx: PullContext, value: str) -> ExternalLink | None:
    return ExternalLink.objects.filter(kind=kind, system=ctx.system, value=value).first()


def _mark(ctx: PullContext, resource_type: str, resource_id: str) -> ResourceMark | None:
    return ResourceMark.objects.filter(
        system=ctx.system, resource_type=resource_type, resource_id=resource_id
    ).first()


def _mark_set(
    ctx: PullContext,
    resource_type: str,
    resource_id: str,
    version: str,
    *,
    object_kind: str = "",
    object_id: int | None = None,
    extra: dict | None = None,
) -> ResourceMark:
    mark, _created = ResourceMark.objects.update_or_create(
        system=ctx.system,
        resource_type=resource_type,
        resource_id=resource_id,
        defaults={
            "version": version,
            "object_kind": object_kind,
            "object_id": object_id,
            "extra": extra or {},
            "updated_at": timezone.now(),
        },
    )
    return mark


def _fetch(ctx: PullContext, resource_type: str, resource_id: str) -> dict:
    """A referenced resource: from the page's _include, else read from the MIS."""
    key = f"{resource_type}/{resource_id}"
    if key in ctx.included:
        return ctx.included[key]
    raw = ctx.client.read_raw(resource_type, resource_id)
    ctx.included[key] = raw
    return raw


# --- Patient -------------------------------------------------------------------------------


def _review_summary(model: Any) -> str:
    parts = [mappers.human_name(model.name)]
    if model.birthDate:
        parts.append(str(model.birthDate))
    for identifier in model.identifier or []:
        if identifier.value:
            parts.append(f"{identifier.system or '?'}|{identifier.value}")
    return "; ".join(p for p in parts if p)[:2000]


def _review_upsert(ctx: PullContext, model: Any, raw: dict, version: str, reason: str) -> str:
    review = PatientMatchReview.objects.filter(system=ctx.system, resource_id=model.id).first()
    now = timezone.now()
    if review is not None and review.version == version:
        return Outcome.UNCHANGED
    if review is None:
        PatientMatchReview.objects.create(
            system=ctx.system,
            resource_id=model.id,
            version=version,
            reason=reason,
            summary=_review_summary(model),
            raw=json.dumps(raw, ensure_ascii=False),
            created_at=now,
            updated_at=now,
        )
    else:
        review.version = version
        review.reason = reason
        review.summary = _review_summary(model)
        review.raw = json.dumps(raw, ensure_ascii=False)
        review.updated_at = now
        if review.state == MatchState.LINKED:
            review.state = MatchState.PENDING  # the link went away: decide again
        review.save()
    return Outcome.SKIPPED


def _apply_patient(ctx: PullContext, model: Any, raw: dict, version: str) -> str:
    link = _link(LinkedKind.PATIENT, ctx, model.id)
    if link is not None and link.version == version:
        return Outcome.UNCHANGED
    snils = matching.snils_from_identifiers(model.identifier)
    by_link = PatientProfile.objects.filter(pk=link.object_id).first() if link is not None else None
    by_snils = (
        PatientProfile.objects.filter(snils=snils).first() if snils else None
    )  # accounts' blind-indexed lookup
    if by_link is not None and by_snils is not None and by_link.pk != by_snils.pk:
        return _review_upsert(ctx, model, raw, version, MatchReason.CONFLICT)
    patient = by_link or by_snils
    if patient is None:
        reason = MatchReason.NOT_FOUND if snils else MatchReason.NO_IDENTIFIERS
        return _review_upsert(ctx, model, raw, version, reason)
    matching.link_set(
        kind=LinkedKind.PATIENT,
        system=ctx.system,
        value=model.id,
        object_id=patient.pk,
        version=version,
    )
    PatientMatchReview.objects.filter(
        system=ctx.system, resource_id=model.id, state=MatchState.PENDING
    ).update(state=MatchState.LINKED, patient=patient, decided_at=timezone.now())
    return Outcome.CREATED if link is None else Outcome.UPDATED


def _patient_of(ctx: PullContext, reference: Any) -> PatientProfile | None:
    mis_id = mappers.reference_id(reference, "Patient")
    if not mis_id:
        return None
    return matching.patient_for_identifiers(system=ctx.system, mis_id=mis_id, snils=None)


# --- Practitioner, PractitionerRole ------------------------------------------------------------


def _apply_practitioner(ctx: PullContext, model: Any, raw: dict, version: str) -> str:
    link = _link(LinkedKind.PRACTITIONER, ctx, model.id)
    if link is not None:
        if link.version != version:
            # accounts has no service to rename a doctor: the portal keeps its profile.
            matching.link_set(
                kind=LinkedKind.PRACTITIONER,
                system=ctx.system,
                value=model.id,
                object_id=link.object_id,
                version=version,
            )
        return Outcome.UNCHANGED
    if model.active is False:
        return Outcome.SKIPPED
    full_name = mappers.human_name(model.name)
    if not full_name:
        raise Unmappable("Practitioner has no name")
    email = mappers.telecom(model.telecom, "email").lower()
    user = User.objects.filter(email=email).first() if email else None
    if user is not None:
        if user.role != Role.DOCTOR:
            raise Rejected("a portal account with the practitioner's email is not a doctor")
        outcome = Outcome.UPDATED
    else:
        if not email:
            digest = hashlib.sha256(f"{ctx.system}|{model.id}".encode()).hexdigest()[:20]
            email = f"mis-{digest}@mis.invalid"  # RFC 2606: never delivered
        user = account_services.staff_create(
            by=None, email=email, password=None, role=Role.DOCTOR, full_name=full_name[:200]
        )
        outcome = Outcome.CREATED
    matching.link_set(
        kind=LinkedKind.PRACTITIONER,
        system=ctx.system,
        value=model.id,
        object_id=user.pk,
        version=version,
    )
    return outcome


def _doctor_of(ctx: PullContext, reference: Any) -> User | None:
    """The portal doctor of a Practitioner reference, pulling the Practitioner first
    when the portal does not know it yet."""
    mis_id = mappers.reference_id(reference, "Practitioner")
    if not mis_id:
        return None
    object_id = matching.linked_id(LinkedKind.PRACTITIONER, system=ctx.system, value=mis_id)
    if object_id is None:
        raw = _fetch(ctx, "Practitioner", mis_id)
        try:
            model = parse_resource(raw, "Practitioner")
        except MalformedResource as exc:
            raise Unmappable(
                f"the referenced Practitioner is not valid: {exc}", missing_reference=True
            ) from exc
        _apply_practitioner(ctx, model, raw, mappers.version_of(raw))
        object_id = matching.linked_id(LinkedKind.PRACTITIONER, system=ctx.system, value=mis_id)
    if object_id is None:
        return None
    return User.objects.filter(pk=object_id, role=Role.DOCTOR).first()


def _apply_practitioner_role(ctx: PullContext, model: Any, raw: dict, version: str) -> str:
    mark = _mark(ctx, "PractitionerRole", model.id)
    if mark is not None and mark.version == version:
        return Outcome.UNCHANGED
    if model.practitioner is None:
        raise Unmappable("PractitionerRole names no practitioner")
    doctor = _doctor_of(ctx, model.practitioner)
    if doctor is None:
        raise Unmappable("PractitionerRole's practitioner is unknown", missing_reference=True)
    _mark_set(ctx, "PractitionerRole", model.id, version, object_kind="doctor", object_id=doctor.pk)
    return Outcome.CREATED if mark is None else Outcome.UPDATED


# --- Schedule, Slot (only when the MIS is the master of schedules) ------------------------------


def _apply_schedule(ctx: PullContext, model: Any, raw: dict, version: str) -> str:
    if not ctx.schedule_master:
        return Outcome.SKIPPED
    mark = _mark(ctx, "Schedule", model.id)
    if mark is not None and mark.version == version:
        return Outcome.UNCHANGED
    doctor = None
    location_id = None
    for actor in model.actor or []:
        doctor = doctor or _doctor_of(ctx, actor)
        mis_location = mappers.reference_id(actor, "Location")
        if mis_location and location_id is None:
            location_id = matching.linked_id(
                LinkedKind.LOCATION, system=ctx.system, value=mis_location
            )
    if doctor is None:
        raise Unmappable("Schedule has no practitioner the portal knows", missing_reference=True)
    profile = getattr(doctor, "staff_profile", None)
    location_id = location_id or (profile.location_id if profile is not None else None)
    if location_id is None:
        raise Unmappable("Schedule's doctor has no location in the portal", missing_reference=True)
    _mark_set(
        ctx,
        "Schedule",
        model.id,
        version,
        object_kind="doctor",
        object_id=doctor.pk,
        extra={"location_id": location_id, "active": model.active is not False},
    )
    return Outcome.CREATED if mark is None else Outcome.UPDATED


SLOT_OPEN = {"free"}
SLOT_BUSY = {"busy", "busy-tentative"}
SLOT_CLOSED = {"busy-unavailable", "entered-in-error"}


def _apply_slot(ctx: PullContext, model: Any, raw: dict, version: str) -> str:
    if not ctx.schedule_master:
        return Outcome.SKIPPED
    from scheduling import schedule as calendars
    from scheduling.models import ExceptionKind, ScheduleException

    mark = _mark(ctx, "Slot", model.id)
    if mark is not None and mark.version == version:
        return Outcome.UNCHANGED
    schedule_id = mappers.reference_id(model.schedule, "Schedule")
    if not schedule_id:
        raise Unmappable("Slot names no Schedule")
    schedule_mark = _mark(ctx, "Schedule", schedule_id)
    if schedule_mark is None:
        raw_schedule = _fetch(ctx, "Schedule", schedule_id)
        try:
            schedule_model = parse_resource(raw_schedule, "Schedule")
        except MalformedResource as exc:
            raise Unmappable(f"its Schedule is not valid: {exc}", missing_reference=True) from exc
        _apply_schedule(ctx, schedule_model, raw_schedule, mappers.version_of(raw_schedule))
        schedule_mark = _mark(ctx, "Schedule", schedule_id)
    doctor = User.objects.get(pk=schedule_mark.object_id)
    location_id = schedule_mark.extra.get("location_id")
    starts_at, ends_at = mappers.as_instant(model.start), mappers.as_instant(model.end)
    if starts_at is None or ends_at is None or ends_at <= starts_at:
        raise Unmappable("Slot has no valid start and end")
    status = str(model.status)
    if status in SLOT_OPEN or status in SLOT_BUSY:
        # Working time. A busy one stays working time only while a portal appointment
        # occupies it (an MIS appointment pulled in); otherwise it is blocked, so the
        # portal never offers time the MIS has given away.
        occupied = bool(calendars.appointments_overlapping(doctor, starts_at, ends_at))
        kind = ExceptionKind.EXTRA if status in SLOT_OPEN or occupied else ExceptionKind.BLOCKED
    else:
        kind = None
    wanted = None if kind is None else (kind, starts_at, ends_at)
    current = None
    if mark is not None and mark.object_id:
        current = ScheduleException.objects.filter(pk=mark.object_id).first()
    if (
        current is not None
        and wanted is not None
        and (
            current.kind,
            current.during.lower,
            current.during.upper,
        )
        == wanted
    ):
        _mark_set(
            ctx, "Slot", model.id, version, object_kind="schedule_exception", object_id=current.pk
        )
        return Outcome.UNCHANGED
    if current is not None:
        calendars.schedule_exception_remove(by=None, exception=current)
    exception_id = None
    if kind is not None:
        exception = calendars.schedule_exception_add(
            by=None,
            doctor=doctor,
            kind=kind,
            starts_at=starts_at,
            ends_at=ends_at,
            location=Location.objects.get(pk=location_id) if kind == ExceptionKind.EXTRA else None,
            slot_minutes=max(5, min(240, int((ends_at - starts_at).total_seconds() // 60))),
            reason=f"MIS slot ({status})",
        )
        exception_id = exception.pk
    _mark_set(
        ctx, "Slot", model.id, version, object_kind="schedule_exception", object_id=exception_id
    )
    return Outcome.CREATED if mark is None else Outcome.UPDATED


def _open_slots_for(ctx: PullContext, appointment_model: Any) -> None:
    """Before booking an MIS appointment: its slots we blocked (busy in the MIS) become
    working time again, which the appointment itself then occupies."""
    if not ctx.schedule_master:
        return
    from scheduling import schedule as calendars
    from scheduling.models import ExceptionKind, ScheduleException

    for reference in appointment_model.slot or []:
        slot_id = mappers.reference_id(reference, "Slot")
        mark = _mark(ctx, "Slot", slot_id) if slot_id else None
        if mark is None or not mark.object_id:
            continue
        current = ScheduleException.objects.filter(pk=mark.object_id).first()
        if current is None or current.kind != ExceptionKind.BLOCKED:
            continue
        schedule_mark = ResourceMark.objects.filter(
            system=ctx.system,
            resource_type="Schedule",
            object_kind="doctor",
            object_id=current.doctor_id,
        ).first()
        location_id = (schedule_mark.extra.get("location_id") if schedule_mark else None) or (
            current.doctor.staff_profile.location_id
        )
        starts_at, ends_at = current.during.lower, current.during.upper
        calendars.schedule_exception_remove(by=None, exception=current)
        extra = calendars.schedule_exception_add(
            by=None,
            doctor=current.doctor,
            kind=ExceptionKind.EXTRA,
            starts_at=starts_at,
            ends_at=ends_at,
            location=Location.objects.get(pk=location_id),
            slot_minutes=max(5, min(240, int((ends_at - starts_at).total_seconds() // 60))),
            reason="MIS slot (booked)",
        )
        ResourceMark.objects.filter(pk=mark.pk).update(object_id=extra.pk)


# --- Appointment -------------------------------------------------------------------------------


def _consultation_type_for(doctor: User, model: Any, minutes: int | None):  # noqa: ANN202
    from scheduling.models import ConsultationType

    offered = list(ConsultationType.objects.filter(doctors=doctor, active=True).order_by("pk"))
    wanted_codes = set()
    for concept in [*(model.serviceType or []), model.appointmentType]:
        wanted_codes.update(mappers.codes(concept))
    for ctype in offered:
        if ctype.code in wanted_codes:
            return ctype
    if minutes:
        for ctype in offered:
            if ctype.duration_minutes == minutes:
                return ctype
    return offered[0] if len(offered) == 1 else None


def _portal_appointment_id(model: Any) -> int | None:
    """An Appointment the portal itself pushed (mis.services_push) carries the portal's
    identifier (its public id): it is that appointment, never a new one."""
    from scheduling.models import Appointment

    try:
        from mis import services_push
    except ImportError:
        return None
    system = getattr(services_push, "PORTAL_APPOINTMENT_SYSTEM", None)
    if not system:
        return None
    for identifier in model.identifier or []:
        if identifier.system == system and identifier.value:
            value = str(identifier.value).strip()
            try:
                return (
                    Appointment.objects.filter(public_id=value).values_list("pk", flat=True).first()
                )
            except (ValueError, ValidationError):
                return None
    return None


def _push_pending(appointment_id: int) -> bool:
    """The portal has a change of this appointment still on its way to the MIS."""
    from mis.models import push as push_models

    jobs = getattr(push_models, "PushJob", None)
    states = getattr(push_models, "OPEN_PUSH_STATES", ())
    if jobs is None:
        return False
    return jobs.objects.filter(appointment_id=appointment_id, state__in=states).exists()


def _apply_appointment(ctx: PullContext, model: Any, raw: dict, version: str) -> str:
    from scheduling import services as booking
    from scheduling.models import ACTIVE_STATUSES, Appointment, AppointmentSource, AppointmentStatus

    link = _link(LinkedKind.APPOINTMENT, ctx, model.id)
    if link is not None and link.version == version:
        return Outcome.UNCHANGED
    if link is None:
        own = _portal_appointment_id(model)
        if own is not None:
            matching.link_set(
                kind=LinkedKind.APPOINTMENT,
                system=ctx.system,
                value=model.id,
                object_id=own,
                version=version,
            )
            return Outcome.UNCHANGED  # ours, pushed: the portal is its master
    status = str(model.status)
    mis_patient, mis_practitioner = mappers.appointment_participants(model)
    if link is None:
        if status not in mappers.BOOKED_STATUSES or status == "fulfilled":
            return Outcome.SKIPPED  # proposed, pending, waitlisted, past or cancelled
        patient = matching.patient_for_identifiers(
            system=ctx.system, mis_id=mis_patient, snils=None
        )
        if patient is None:
            return Outcome.SKIPPED  # not a portal patient
        doctor = _doctor_of(ctx, f"Practitioner/{mis_practitioner}") if mis_practitioner else None
        if doctor is None:
            raise Unmappable(
                "Appointment has no practitioner the portal knows", missing_reference=True
            )
        starts_at = mappers.as_instant(model.start)
        ends_at = mappers.as_instant(model.end)
        if starts_at is None:
            raise Unmappable("Appointment has no start")
        minutes = model.minutesDuration or (
            int((ends_at - starts_at).total_seconds() // 60) if ends_at else None
        )
        ctype = _consultation_type_for(doctor, model, minutes)
        if ctype is None:
            raise Unmappable("no consultation type of this doctor fits the Appointment")
        _open_slots_for(ctx, model)
        try:
            appointment = booking.appointment_book_slot(
                by=None,
                patient=patient,
                doctor=doctor,
                consultation_type=ctype,
                starts_at=starts_at,
                source=AppointmentSource.MIS,
            )
        except booking.SlotTaken as exc:
            raise Rejected("the time is not free in the portal's calendar") from exc
        matching.link_set(
            kind=LinkedKind.APPOINTMENT,
            system=ctx.system,
            value=model.id,
            object_id=appointment.pk,
            version=version,
        )
        return Outcome.CREATED
    appointment = Appointment.objects.filter(pk=link.object_id).first()
    if appointment is None:
        raise Unmappable("the linked portal appointment no longer exists")
    if appointment.source != AppointmentSource.MIS:
        # Booked in the portal: the portal is its master (mis.services_push). Only a
        # cancellation made at the MIS's desk comes back, when no push is on its way.
        if (
            status in mappers.CANCELLED_STATUSES
            and appointment.status in ACTIVE_STATUSES
            and not _push_pending(appointment.pk)
        ):
            booking.appointment_cancel(
                by=None, appointment=appointment, reason="cancelled in the MIS"
            )
            outcome = Outcome.UPDATED
        else:
            outcome = Outcome.UNCHANGED
        matching.link_set(
            kind=LinkedKind.APPOINTMENT,
            system=ctx.system,
            value=model.id,
            object_id=appointment.pk,
            version=version,
        )
        return outcome
    if status in mappers.CANCELLED_STATUSES and appointment.status in ACTIVE_STATUSES:
        if status == "noshow" and appointment.status in (
            AppointmentStatus.BOOKED,
            AppointmentStatus.CONFIRMED,
        ):
            booking.appointment_set_status(
                by=None, appointment=appointment, status=AppointmentStatus.NO_SHOW
            )
        else:
            booking.appointment_cancel(
                by=None, appointment=appointment, reason="cancelled in the MIS"
            )
    elif status in mappers.BOOKED_STATUSES and appointment.status in ACTIVE_STATUSES:
        starts_at = mappers.as_instant(model.start)
        if starts_at is not None and starts_at != appointment.starts_at:
            try:
                booking.appointment_reschedule(
                    by=None, appointment=appointment, new_start=starts_at
                )
            except booking.SlotTaken as exc:
                raise Rejected("the new time is not free in the portal's calendar") from exc
        if status in ("arrived", "checked-in", "fulfilled") and appointment.status in (
            AppointmentStatus.BOOKED,
            AppointmentStatus.CONFIRMED,
        ):
            appointment = booking.appointment_set_status(
                by=None, appointment=appointment, status=AppointmentStatus.ARRIVED
            )
        if status == "fulfilled" and appointment.status == AppointmentStatus.ARRIVED:
            booking.appointment_set_status(
                by=None, appointment=appointment, status=AppointmentStatus.COMPLETED
            )
    matching.link_set(
        kind=LinkedKind.APPOINTMENT,
        system=ctx.system,
        value=model.id,
        object_id=appointment.pk,
        version=version,
    )
    return Outcome.UPDATED


# --- DiagnosticReport ---------------------------------------------------------------------------


def _observations_of(ctx: PullContext, report: Any) -> tuple[list[dict], list[str]]:
    """The report's results as records' observation inputs; a panel Observation (no value,
    `hasMember`) stands for its members. Versions of each, to notice a changed result."""
    contained = {f"#{c.id}": c for c in (report.contained or []) if getattr(c, "id", None)}
    items: list[dict] = []
    versions: list[str] = []

    def load(reference: Any) -> Any:
        value = reference.reference or ""
        if value in contained:
            versions.append(value)
            return contained[value]
        observation_id = mappers.reference_id(reference, "Observation")
        if not observation_id:
            raise Unmappable("a result of the DiagnosticReport is not an Observation reference")
        raw = _fetch(ctx, "Observation", observation_id)
        try:
            observation = parse_resource(raw, "Observation")
        except MalformedResource as exc:
            raise Unmappable(f"one of its Observations is not valid: {exc}") from exc
        versions.append(f"{observation_id}@{mappers.version_of(raw)}")
        return observation

    def walk(reference: Any, depth: int) -> None:
        observation = load(reference)
        is_panel = (
            observation.hasMember
            and observation.valueQuantity is None
            and not observation.valueString
            and observation.valueCodeableConcept is None
            and not observation.component
        )
        if is_panel and depth < 3:
            for member in observation.hasMember:
                walk(member, depth + 1)
            return
        items.extend(mappers.observation_inputs(observation))

    for reference in report.result or []:
        walk(reference, 0)
    return items, versions


def _test_type_for(report: Any, items: list[dict]):  # noqa: ANN202
    from records.models import TestType

    for code in mappers.codes(report.code, mappers.LOINC):
        found = TestType.objects.filter(loinc_code=code, active=True).first()
        if found is not None:
            return found
    if len(items) == 1:
        found = TestType.objects.filter(loinc_code=items[0]["loinc_code"], active=True).first()
        if found is not None:
            return found
    raise Unmappable(
        "the portal has no test type with this report's LOINC code; add it in the admin "
        "(Records, Test types) and retry",
        missing_reference=True,
    )


def _apply_diagnostic_report(ctx: PullContext, model: Any, raw: dict, version: str) -> str:
    from records import services as records_services

    patient = _patient_of(ctx, model.subject)
    if patient is None:
        return Outcome.SKIPPED  # not a portal patient (or not matched yet)
    items, observation_versions = _observations_of(ctx, model)
    combined = (
        f"{version}:" + hashlib.sha256("|".join(observation_versions).encode()).hexdigest()[:16]
    )
    link = _link(LinkedKind.LAB_REPORT, ctx, model.id)
    if link is not None and link.version == combined:
        return Outcome.UNCHANGED
    fields = mappers.report_fields(model)
    test_type = _test_type_for(model, items)
    report = records_services.lab_report_receive(
        by=None,
        patient=patient,
        test_type=test_type,
        observations=items,
        source=ctx.source,
        external_id=model.id,
        **fields,
    )
    matching.link_set(
        kind=LinkedKind.LAB_REPORT,
        system=ctx.system,
        value=model.id,
        object_id=report.pk,
        version=combined,
    )
    return Outcome.CREATED if link is None else Outcome.UPDATED


# --- DocumentReference --------------------------------------------------------------------------


def _apply_document_reference(ctx: PullContext, model: Any, raw: dict, version: str) -> str:
    from records import services_documents as documents
    from records.models import Document

    patient = _patient_of(ctx, model.subject)
    if patient is None:
        return Outcome.SKIPPED
    fields = mappers.document_fields(model)
    digest = hashlib.sha256(
        json.dumps([fields["kind"], fields["title"], fields["body"]]).encode()
    ).hexdigest()[:16]
    stamp = f"{version[:40]}#{digest}"
    link = _link(LinkedKind.DOCUMENT, ctx, model.id)
    if link is not None and link.version == stamp:
        return Outcome.UNCHANGED
    if link is None:
        document = documents.document_issue(
            by=None,
            patient=patient,
            kind=fields["kind"],
            title=fields["title"],
            body=fields["body"],
            release=fields["final"],
        )
        outcome = Outcome.CREATED
    else:
        document = Document.objects.filter(pk=link.object_id).first()
        if document is None:
            raise Unmappable("the linked portal document no longer exists")
        if not link.version.endswith(f"#{digest}"):
            raise Rejected(
                "the document's text changed in the MIS; the portal keeps the issued copy "
                "(issue a new document for the patient)"
            )
        if fields["final"] and not document.released:
            documents.document_release(by=None, document=document)
        outcome = Outcome.UPDATED
    matching.link_set(
        kind=LinkedKind.DOCUMENT,
        system=ctx.system,
        value=model.id,
        object_id=document.pk,
        version=stamp,
    )
    return outcome


HANDLERS: dict[str, Callable[[PullContext, Any, dict, str], str]] = {
    SyncResourceType.PATIENT: _apply_patient,
    SyncResourceType.PRACTITIONER: _apply_practitioner,
    SyncResourceType.PRACTITIONER_ROLE: _apply_practitioner_role,
    SyncResourceType.SCHEDULE: _apply_schedule,
    SyncResourceType.SLOT: _apply_slot,
    SyncResourceType.APPOINTMENT: _apply_appointment,
    SyncResourceType.DIAGNOSTIC_REPORT: _apply_diagnostic_report,
    SyncResourceType.DOCUMENT_REFERENCE: _apply_document_reference,
}


# --- review queue ------------------------------------------------------------------------------


def patient_match_link(
    *, by: User, review: PatientMatchReview, patient: PatientProfile
) -> PatientMatchReview:
    """A person decides: this MIS patient is that portal patient. The MIS's reports and
    documents of the patient are pulled on commit (`mis.backfill_patient`)."""
    from accounts import policies
    from audit.models import AuditAction
    from audit.services import audit_record

    if not policies.can_link_mis_patient(by):
        raise PermissionDenied
    with transaction.atomic():
        review = PatientMatchReview.objects.select_for_update().get(pk=review.pk)
        other = ExternalLink.objects.filter(
            kind=LinkedKind.PATIENT, system=review.system, object_id=patient.pk
        ).exclude(value=review.resource_id)
        if other.exists():
            raise ValidationError(
                _t("This portal patient is already linked to another patient of the MIS.")
            )
        matching.link_set(
            kind=LinkedKind.PATIENT,
            system=review.system,
            value=review.resource_id,
            object_id=patient.pk,
            version=review.version,
        )
        review.state = MatchState.LINKED
        review.patient = patient
        review.decided_by = by
        review.decided_at = timezone.now()
        review.updated_at = review.decided_at
        review.save()
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=review,
            patient=patient.user,
            detail={"mis_patient": "linked", "system": review.system},
        )
        from mis.tasks import backfill_patient

        review_id = review.pk
        transaction.on_commit(lambda: backfill_patient.delay(review_id))
    return review


def patient_match_dismiss(*, by: User, review: PatientMatchReview) -> PatientMatchReview:
    """Not a portal patient: nothing of theirs is pulled (until a new version matches)."""
    from accounts import policies
    from audit.models import AuditAction
    from audit.services import audit_record

    if not policies.can_link_mis_patient(by):
        raise PermissionDenied
    with transaction.atomic():
        review = PatientMatchReview.objects.select_for_update().get(pk=review.pk)
        review.state = MatchState.DISMISSED
        review.decided_by = by
        review.decided_at = timezone.now()
        review.save(update_fields=["state", "decided_by", "decided_at"])
        audit_record(
            actor=by, action=AuditAction.CHANGE, obj=review, detail={"mis_patient": "dismissed"}
        )
    return review


def patient_reviews_rematch(*, limit: int = 500) -> int:
    """Pending reviews whose SNILS now belongs to a portal patient (who registered since)
    are linked by the system. Returns how many were linked."""
    linked = 0
    for review in PatientMatchReview.objects.filter(
        state=MatchState.PENDING, reason=MatchReason.NOT_FOUND
    ).order_by("updated_at")[:limit]:
        try:
            model = parse_resource(json.loads(review.raw), "Patient")
        except (MalformedResource, ValueError):
            continue
        snils = matching.snils_from_identifiers(model.identifier)
        patient = PatientProfile.objects.filter(snils=snils).first() if snils else None
        if patient is None:
            continue
        with transaction.atomic():
            matching.link_set(
                kind=LinkedKind.PATIENT,
                system=review.system,
                value=review.resource_id,
                object_id=patient.pk,
                version=review.version,
            )
            PatientMatchReview.objects.filter(pk=review.pk).update(
                state=MatchState.LINKED, patient=patient, decided_at=timezone.now()
            )
        transaction.on_commit(lambda rid=review.pk: _backfill_later(rid))
        linked += 1
    return linked


def _backfill_later(review_id: int) -> None:
    from mis.tasks import backfill_patient

    backfill_patient.delay(review_id)


def patient_backfill(*, review: PatientMatchReview, client: FhirClient | None = None) -> Counts:
    """Pull what the MIS holds for a patient linked after its resources went by (their
    cursors had passed them as "not a portal patient")."""
    counts = Counts()
    client = client or FhirClient.from_settings()
    if client.system != review.system:
        return counts
    ctx = PullContext(
        client=client, system=review.system, schedule_master=settings.MIS_SCHEDULE_MASTER
    )
    searches: Iterable[tuple[str, list[tuple[str, str]]]] = (
        (
            SyncResourceType.DIAGNOSTIC_REPORT,
            [("subject", f"Patient/{review.resource_id}"), ("_include", "DiagnosticReport:result")],
        ),
        (SyncResourceType.DOCUMENT_REFERENCE, [("subject", f"Patient/{review.resource_id}")]),
        (SyncResourceType.APPOINTMENT, [("patient", f"Patient/{review.resource_id}")]),
    )
    for resource_type, params in searches:
        for page in client.search_pages(resource_type, [*params, ("_count", str(PAGE_SIZE))]):
            ctx.included = {
                f"{r.get('resourceType')}/{r.get('id')}": r
                for r in page.included
                if isinstance(r, dict)
            }
            for raw in page.resources:
                counts.add(_apply_one(ctx, resource_type, raw))
    PatientMatchReview.objects.filter(pk=review.pk).update(backfilled_at=timezone.now())
    return counts


def patient_backfills_due(*, limit: int = 50) -> list[int]:
    """Linked reviews whose history has not been fetched yet (a lost task, the MIS down)."""
    return list(
        PatientMatchReview.objects.filter(
            state=MatchState.LINKED, backfilled_at__isnull=True, decided_at__isnull=False
        )
        .order_by("decided_at")
        .values_list("pk", flat=True)[:limit]
    )


def _t(text: str) -> str:
    from django.utils.translation import gettext

    return gettext(text)
