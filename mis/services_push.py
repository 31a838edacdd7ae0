"""Pushing portal appointments to the MIS as FHIR R4 Appointments (issue 9, item 3).

Rows, not messages (DESIGN.md rule 1). Scheduling's hooks call `push_record` inside the
booking, move, cancel or status-change transaction: it writes a `PushJob` (only when an
MIS is configured) and publishes a task on commit. `push_send` (the task) claims the
job, commits the claim, then talks to the MIS; `push_sweep` (beat, every minute) sends
what is due again (retries with backoff) and what was lost (a dropped message, a worker
that died mid-send).

What a send does: it makes the MIS's Appointment match the portal's appointment *as it
is now*, whichever change the job records. So all open jobs of one appointment go out
as one exchange (in order, never two at once: the claim covers them all), a job sent
twice converges on the same resource, and a later change simply wins.

- Not yet in the MIS (no `ExternalLink`): a conditional create,
  `If-None-Exist: identifier=<APPOINTMENT_SYSTEM>|<public_id>`. A retry whose first
  answer was lost finds the resource made the first time: the MIS holds it once. An
  appointment cancelled before the MIS ever had it is searched for (a lost answer again)
  and otherwise skipped.
- Known (linked): read it, change only what the portal owns (status, start/end, the
  cancellation reason), write it back with `If-Match` on the version just read; nothing
  changed, nothing written. The MIS's id and version go into `ExternalLink`.

Who takes part. The patient, the doctor and the location are literal references
("Patient/123") when `ExternalLink` knows their MIS ids (the pull and matching make
those links). Otherwise they are *logical references* (`Reference.identifier` with
`Reference.type`): the patient by SNILS (urn:oid:1.2.643.100.3, the identifier the MIS
matches patients by) or else by the portal's own id, the doctor and the location by the
portal's ids. No contained resources: the MIS gets identifiers, not a copy of the
patient's demographics it did not ask for.

Answers. 2xx: delivered. 409, 412 (a precondition of a create) and 422 are the MIS
refusing the appointment (the time is taken there): every open job of it is
"rejected", the portal booking is cancelled through scheduling's services (by=None,
`REFUSED_REASON`), the patient gets the "cancelled by the clinic" message and reception
sees it in admin ("Bookings refused by the MIS") and on the staff appointment page. A
network error, a timeout, 5xx, 429, 401/403 (credentials being fixed) or a 412 on our
own `If-Match` (someone changed it in the MIS meanwhile) is retried with exponential
backoff (`RETRY_BASE` doubling up to `RETRY_MAX`); the portal never waits for it. Any
other 4xx is a request the MIS will never take as it is: "failed", shown in admin with a
"send again" action.

Appointments that came from the MIS (source "mis") are pushed only once linked, so the
pull never echoes them back as new ones. Code that applies the MIS's own changes (the
pull, HL7 SIU) should run inside `pushes_suppressed()`: then it writes no push jobs at
all (without it, the push reads the MIS's copy, finds it already so, and writes nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _

from audit.models import AuditAction
from audit.services import audit_record
from mis.fhir.client import FhirClient, MisError, MisRejected, MisUnavailable
from mis.matching import normalise_snils
from mis.models import (
    OPEN_PUSH_STATES,
    ExternalLink,
    LinkedKind,
    PushChange,
    PushJob,
    PushState,
)
from scheduling.models import (
    UPCOMING_STATUSES,
    Appointment,
    AppointmentSource,
    AppointmentStatus,
)

logger = logging.getLogger(__name__)

# Our identifiers in the MIS. Never change them once an MIS has appointments from the
# portal: a retry would no longer find what the first attempt created.
PORTAL_SYSTEM = "urn:clinic-portal"
APPOINTMENT_SYSTEM = f"{PORTAL_SYSTEM}:appointment"
PATIENT_SYSTEM = f"{PORTAL_SYSTEM}:patient"
PRACTITIONER_SYSTEM = f"{PORTAL_SYSTEM}:practitioner"
LOCATION_SYSTEM = f"{PORTAL_SYSTEM}:location"
CONSULTATION_TYPE_SYSTEM = f"{PORTAL_SYSTEM}:consultation-type"
# The name the pull looks for (mis.services_sync): our appointments carry it.
PORTAL_APPOINTMENT_SYSTEM = APPOINTMENT_SYSTEM
SNILS_SYSTEM = "urn:oid:1.2.643.100.3"

# Stored on the cancelled appointment (its history shows it to staff).
REFUSED_REASON = "Refused by the clinic's MIS: the time is not available there"

# The send task's hard time limit; a claim older than CLAIM_LEASE belongs to a worker
# that died (a send is at most a read, a create or a search, and a write).
SEND_TIME_LIMIT = 120
CLAIM_LEASE = timedelta(seconds=2 * SEND_TIME_LIMIT)
# Queued and never claimed for this long: the message was lost; the sweep queues again.
QUEUE_LEASE = timedelta(minutes=5)
# Retries: 30 s, 1, 2, 4 ... minutes, at most 30 minutes apart (under the broker's 1 h
# visibility timeout, DESIGN.md), for as long as it takes: nothing is dropped.
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(minutes=30)
SWEEP_BATCH = 500
SWEEP_SECONDS = 45

# Portal status -> FHIR Appointment.status.
FHIR_STATUS = {
    AppointmentStatus.HELD: "pending",
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.ARRIVED: "arrived",
    AppointmentStatus.IN_PROGRESS: "checked-in",
    AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.NO_SHOW: "noshow",
    AppointmentStatus.EXPIRED: "cancelled",
}
CLOSED_FHIR_STATUSES = frozenset({"cancelled", "entered-in-error"})
REFUSAL_STATUSES = frozenset({409, 412, 422})
RETRY_STATUSES = frozenset({401, 403, 408})

_suppressed: ContextVar[bool] = ContextVar("mis_pushes_suppressed", default=False)


@contextmanager
def pushes_suppressed() -> Iterator[None]:
    """Write no push jobs inside this block: for applying changes that come *from* the
    MIS (the pull, HL7 SIU messages), which must not be pushed back to it."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def mis_configured() -> bool:
    return bool(getattr(settings, "MIS_FHIR_BASE_URL", ""))


def mis_system() -> str:
    """`ExternalLink.system` of the configured MIS (the client's own naming)."""
    return f"fhir:{settings.MIS_FHIR_BASE_URL.rstrip('/')}"


# --- Writing jobs (inside scheduling's transactions) ------------------------------------


def push_record(*, appointment_id: int, change: str) -> PushJob | None:
    """Write the job for one change of an appointment, in the caller's transaction, and
    send it once that commits. None when there is nothing to push: no MIS configured,
    inside `pushes_suppressed()`, or a change the MIS never needs to hear about (a hold,
    a cancelled hold, an MIS appointment the portal has no link for)."""
    if not mis_configured() or _suppressed.get():
        return None
    row = Appointment.objects.filter(pk=appointment_id).values("status", "source").first()
    if row is None:
        return None
    system = mis_system()
    known = (
        PushJob.objects.filter(appointment_id=appointment_id, mis_system=system).exists()
        or _link(appointment_id, system) is not None
    )
    if not known:
        if row["source"] == AppointmentSource.MIS:
            return None  # the MIS's own appointment, not (yet) linked by the pull
        if change == PushChange.CANCEL or row["status"] == AppointmentStatus.HELD:
            return None  # the MIS never had it
    now = timezone.now()
    job = PushJob.objects.create(
        appointment_id=appointment_id,
        change=change,
        mis_system=system,
        state=PushState.QUEUED,
        queued_at=now,
        next_attempt_at=now,
    )
    transaction.on_commit(lambda: _publish([job.pk]))
    return job


def on_appointment_booked(*, appointment_id: int, **_kwargs: object) -> None:
    push_record(appointment_id=appointment_id, change=PushChange.BOOK)


def on_appointment_rescheduled(*, appointment_id: int, **_kwargs: object) -> None:
    push_record(appointment_id=appointment_id, change=PushChange.MOVE)


def on_appointment_cancelled(*, appointment_id: int, **_kwargs: object) -> None:
    push_record(appointment_id=appointment_id, change=PushChange.CANCEL)


def on_appointment_status_changed(
    *, appointment_id: int, previous_status: str = "", status: str = "", **_kwargs: object
) -> None:
    if FHIR_STATUS.get(previous_status) == FHIR_STATUS.get(status):
        return  # booked -> confirmed: the same "booked" in FHIR
    push_record(appointment_id=appointment_id, change=PushChange.STATUS)


def _publish(job_ids: list[int]) -> None:
    """Publish one task per job; when the broker is away, put the rest back to "pending"
    at once for the sweep (the rows are the record, the message only a nudge)."""
    from mis.tasks_push import push_send_task

    for index, job_id in enumerate(job_ids):
        try:
            push_send_task.delay(job_id)
        except Exception:  # kombu raises OperationalError and others when the broker is gone
            logger.warning("broker unavailable: %s MIS pushes left for the sweep", len(job_ids))
            PushJob.objects.filter(
                pk__in=job_ids[index:], state=PushState.QUEUED, claimed_at__isnull=True
            ).update(state=PushState.PENDING, queued_at=None, updated_at=timezone.now())
            return


# --- Sweeping -------------------------------------------------------------------------------


def push_sweep(*, now: datetime | None = None) -> int:
    """Queue jobs that are due (first tries whose message was lost, retries after their
    backoff) and jobs whose claim ran out. Returns how many were queued."""
    if not mis_configured():
        return 0
    now = now or timezone.now()
    started = time.monotonic()
    total = 0
    while True:
        queued = _sweep_batch(now)
        total += queued
        if queued < SWEEP_BATCH or time.monotonic() - started > SWEEP_SECONDS:
            return total


def _sweep_batch(now: datetime) -> int:
    due = Q(state=PushState.PENDING, next_attempt_at__lte=now)
    lost = Q(state=PushState.QUEUED) & (
        Q(claimed_at__isnull=True, queued_at__lt=now - QUEUE_LEASE)
        | Q(claimed_at__lt=now - CLAIM_LEASE)
    )
    with transaction.atomic():
        ids = list(
            PushJob.objects.select_for_update(skip_locked=True)
            .filter(due | lost)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        # A claim that ran out is dropped: its worker died (or lost the job to the lease,
        # and its late answer then updates nothing: see _claimed).
        PushJob.objects.filter(pk__in=ids).update(
            state=PushState.QUEUED, queued_at=now, claimed_at=None, updated_at=now
        )
        transaction.on_commit(lambda: _publish(ids))
    return len(ids)


# --- Sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    appointment_id: int
    system: str
    job_ids: tuple[int, ...]
    at: datetime


@dataclass(frozen=True)
class _Delivered:
    mis_id: str = ""
    version: str = ""
    status: int = 200
    skipped: bool = False


class _Refused(Exception):
    def __init__(self, error: MisError) -> None:
        super().__init__(error.message)
        self.error = error


def push_send(*, job_id: int, client: FhirClient | None = None, now: datetime | None = None) -> str:
    """Send one job (with every other open job of its appointment). Idempotent: a job
    that is done, or being sent by another worker, is left alone. Returns what happened
    ("delivered", "skipped", "retry", "rejected", "failed", "busy", "not_due", ...)."""
    if not mis_configured():
        return "no_mis"
    now = now or timezone.now()
    claim = _claim(job_id, now)
    if isinstance(claim, str):
        return claim
    own_client = client is None
    try:
        client = client or FhirClient.from_settings()
    except MisError as exc:
        return _fail(claim, exc)
    try:
        delivered = _exchange(client, claim)
    except _Refused as refused:
        return _reject(claim, refused.error)
    except MisUnavailable as exc:
        return _retry(claim, exc)
    except MisRejected as exc:
        if exc.status in RETRY_STATUSES:
            return _retry(claim, exc)
        return _fail(claim, exc)
    except Exception as exc:  # an answer we cannot read, or a bug: retry later, loudly
        logger.exception("MIS push of appointment %s broke", claim.appointment_id)
        return _retry(claim, MisError(f"unexpected {type(exc).__name__}"))
    finally:
        if own_client and client is not None:
            client.close()
    return _deliver(claim, delivered)


def _claim(job_id: int, now: datetime) -> _Claim | str:
    """Claim the job and every other open job of its appointment, and commit the claim
    before the MIS is called: no other worker sends this appointment meanwhile."""
    with transaction.atomic():
        job = (
            PushJob.objects.select_for_update(skip_locked=True)
            .filter(pk=job_id, state__in=OPEN_PUSH_STATES)
            .first()
        )
        if job is None:
            return "busy"  # done already, or another worker holds it right now
        if job.state == PushState.PENDING and job.next_attempt_at > now:
            return "not_due"  # a retry's stray message: the sweep sends it when due
        if job.mis_system != mis_system():
            job.state = PushState.FAILED
            job.last_error = "the MIS address changed since this change was recorded"
            job.finished_at = now
            job.save(update_fields=["state", "last_error", "finished_at", "updated_at"])
            return "failed"
        group = list(
            PushJob.objects.select_for_update(skip_locked=True)
            .filter(
                appointment_id=job.appointment_id,
                mis_system=job.mis_system,
                state__in=OPEN_PUSH_STATES,
            )
            .order_by("pk")
        )
        if any(g.claimed_at is not None and g.claimed_at > now - CLAIM_LEASE for g in group):
            return "busy"  # another worker is sending this appointment: it finishes ours
        ids = tuple(g.pk for g in group)
        for g in group:
            g.attempts += 1
        PushJob.objects.bulk_update(group, ["attempts"])
        PushJob.objects.filter(pk__in=ids).update(
            state=PushState.QUEUED, claimed_at=now, updated_at=now
        )
    return _Claim(job.appointment_id, job.mis_system, ids, now)


def _claimed(claim: _Claim) -> Any:
    """The claim's jobs, still ours (a worker past its lease may have lost them)."""
    return PushJob.objects.filter(
        pk__in=claim.job_ids, claimed_at=claim.at, state__in=OPEN_PUSH_STATES
    )


def _deliver(claim: _Claim, result: _Delivered) -> str:
    now = timezone.now()
    with transaction.atomic():
        appointment = Appointment.objects.select_related("patient").get(pk=claim.appointment_id)
        updated = _claimed(claim).update(
            state=PushState.SKIPPED if result.skipped else PushState.DELIVERED,
            mis_id=result.mis_id[:255],
            mis_version=result.version[:64],
            last_status=result.status,
            last_error="",
            finished_at=now,
            claimed_at=None,
            updated_at=now,
        )
        if result.mis_id:
            _link_set(claim.appointment_id, claim.system, result.mis_id, result.version)
        if updated and not result.skipped:
            audit_record(
                actor=None,
                action=AuditAction.EXPORT,
                obj=appointment,
                patient=appointment.patient.user,
                detail={"to": "mis", "mis_id": result.mis_id, "version": result.version},
            )
        _publish_rest(claim)
    return "skipped" if result.skipped else "delivered"


def _retry(claim: _Claim, error: MisError) -> str:
    now = timezone.now()
    with transaction.atomic():
        for job in _claimed(claim).select_for_update():
            job.state = PushState.PENDING
            job.next_attempt_at = now + retry_delay(job.attempts)
            job.claimed_at = None
            job.queued_at = None
            job.last_status = error.status
            job.last_error = error.message[:300]
            job.save(
                update_fields=[
                    "state",
                    "next_attempt_at",
                    "claimed_at",
                    "queued_at",
                    "last_status",
                    "last_error",
                    "updated_at",
                ]
            )
    logger.info("MIS push of appointment %s deferred: %s", claim.appointment_id, error.status)
    return "retry"


def retry_delay(attempts: int) -> timedelta:
    """30 s after the first failed attempt, doubling, at most RETRY_MAX."""
    exponent = max(0, min(attempts - 1, 16))
    return min(RETRY_BASE * (2**exponent), RETRY_MAX)


def _fail(claim: _Claim, error: MisError) -> str:
    now = timezone.now()
    with transaction.atomic():
        _claimed(claim).update(
            state=PushState.FAILED,
            last_status=error.status,
            last_error=error.message[:300],
            finished_at=now,
            claimed_at=None,
            updated_at=now,
        )
    logger.warning("MIS push of appointment %s failed: %s", claim.appointment_id, error.status)
    return "failed"


def _reject(claim: _Claim, error: MisError) -> str:
    """The MIS refused the appointment: record it, cancel the portal booking (if it is
    still upcoming), tell the patient; reception sees the row in admin."""
    from notifications.models import Event
    from notifications.services import notification_send
    from scheduling import services as scheduling

    now = timezone.now()
    with transaction.atomic():
        appointment = (
            Appointment.objects.select_for_update()
            .select_related("patient", "consultation_type")
            .get(pk=claim.appointment_id)
        )
        updated = _claimed(claim).update(
            state=PushState.REJECTED,
            last_status=error.status,
            last_error=error.message[:300],
            finished_at=now,
            claimed_at=None,
            updated_at=now,
        )
        if not updated or appointment.status not in UPCOMING_STATUSES:
            return "rejected"
        try:
            with transaction.atomic():
                scheduling.appointment_cancel(
                    by=None,
                    appointment=appointment,
                    reason=REFUSED_REASON,
                )
        except (ValidationError, PermissionDenied) as exc:
            # Scheduling would not cancel it (it changed meanwhile): reception decides.
            logger.warning("refused appointment %s not cancelled: %s", appointment.pk, exc)
            return "rejected"
        notification_send(
            user_id=appointment.patient.user_id,
            event=Event.APPOINTMENT_CANCELLED,
            object_type="appointment",
            object_id=appointment.pk,
        )
    logger.warning("the MIS refused appointment %s (%s)", claim.appointment_id, error.status)
    return "rejected"


def _publish_rest(claim: _Claim) -> None:
    """Jobs of the same appointment written while we were sending: send them next."""
    rest = list(
        PushJob.objects.filter(
            appointment_id=claim.appointment_id,
            mis_system=claim.system,
            state=PushState.QUEUED,
            claimed_at__isnull=True,
        )
        .exclude(pk__in=claim.job_ids)
        .values_list("pk", flat=True)
    )
    if rest:
        transaction.on_commit(lambda: _publish(rest[:1]))


# --- The exchange with the MIS ------------------------------------------------------------


def _exchange(client: FhirClient, claim: _Claim) -> _Delivered:
    """Make the MIS's Appointment match the portal's appointment as it is now."""
    appointment = Appointment.objects.select_related(
        "patient", "doctor", "location", "consultation_type"
    ).get(pk=claim.appointment_id)
    desired = appointment_resource(appointment, system=claim.system)
    closed = desired["status"] in CLOSED_FHIR_STATUSES

    current = None
    link = _link(appointment.pk, claim.system)
    if link is not None:
        current = _read_or_none(client, link.value)
    if current is None:
        if closed:
            # Cancelled: only the MIS's copy (if a lost answer left one) needs changing.
            current = _find_ours(client, appointment)
            if current is None:
                return _Delivered(status=200, skipped=True)
        else:
            try:
                stored, created = client.create(
                    desired,
                    if_none_exist=f"identifier={APPOINTMENT_SYSTEM}|{appointment.public_id}",
                )
            except MisRejected as exc:
                if exc.status in REFUSAL_STATUSES:
                    raise _Refused(exc) from exc
                raise
            version = _version_of_model(stored)
            if created:
                return _Delivered(mis_id=str(stored.id), version=version, status=201)
            current = client.read_raw("Appointment", str(stored.id))

    merged = merge_into(current, desired)
    if not _differs(current, merged):
        return _Delivered(mis_id=str(current["id"]), version=_version_of(current))
    try:
        stored = client.update(merged, if_match=_version_of(current) or None)
    except MisRejected as exc:
        if exc.status == 412:
            # Changed in the MIS since we read it: read again on the next attempt.
            raise MisUnavailable(exc.message, status=412) from exc
        if exc.status in REFUSAL_STATUSES:
            raise _Refused(exc) from exc
        raise
    return _Delivered(mis_id=str(stored.id), version=_version_of_model(stored))


def _read_or_none(client: FhirClient, mis_id: str) -> dict | None:
    try:
        return client.read_raw("Appointment", mis_id)
    except MisRejected as exc:
        if exc.status in (404, 410):
            return None  # deleted in the MIS: as if it never had it
        raise


def portal_appointment_id(identifiers: Any) -> int | None:
    """The portal appointment a FHIR Appointment's identifiers (models or dicts) name,
    when it is one the portal pushed; else None. For the pull (mis.services_sync)."""
    import uuid

    for identifier in identifiers or []:
        get = identifier.get if isinstance(identifier, dict) else identifier.__dict__.get
        if get("system") != APPOINTMENT_SYSTEM or not get("value"):
            continue
        try:
            public_id = uuid.UUID(str(get("value")))
        except ValueError:
            return None
        return Appointment.objects.filter(public_id=public_id).values_list("pk", flat=True).first()
    return None


def _find_ours(client: FhirClient, appointment: Appointment) -> dict | None:
    page = client.search_page(
        "Appointment", {"identifier": f"{APPOINTMENT_SYSTEM}|{appointment.public_id}"}
    )
    return page.resources[0] if page.resources else None


def _version_of(raw: dict) -> str:
    return str((raw.get("meta") or {}).get("versionId") or "")


def _version_of_model(model: Any) -> str:
    meta = getattr(model, "meta", None)
    return str(getattr(meta, "versionId", "") or "") if meta is not None else ""


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def appointment_resource(appointment: Appointment, *, system: str) -> dict:
    """The FHIR R4 Appointment the portal wants the MIS to hold (as JSON)."""
    ctype = appointment.consultation_type
    status = FHIR_STATUS.get(appointment.status, "booked")
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "identifier": [{"system": APPOINTMENT_SYSTEM, "value": str(appointment.public_id)}],
        "status": status,
        "serviceType": [
            {
                "coding": [{"system": CONSULTATION_TYPE_SYSTEM, "code": ctype.code}],
                "text": ctype.name_en,
            }
        ],
        "start": _instant(appointment.starts_at),
        "end": _instant(appointment.ends_at),
        "minutesDuration": int((appointment.ends_at - appointment.starts_at).total_seconds() // 60),
        "created": _instant(appointment.created_at),
        "participant": [
            {
                "actor": _patient_reference(appointment, system),
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": _reference(
                    LinkedKind.PRACTITIONER,
                    "Practitioner",
                    appointment.doctor_id,
                    system,
                    PRACTITIONER_SYSTEM,
                ),
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": _reference(
                    LinkedKind.LOCATION,
                    "Location",
                    appointment.location_id,
                    system,
                    LOCATION_SYSTEM,
                ),
                "required": "required",
                "status": "accepted",
            },
        ],
    }
    if status == "cancelled":
        resource["cancelationReason"] = {
            "text": (appointment.cancellation_reason or "cancelled in the portal")[:200]
        }
    return resource


def _patient_reference(appointment: Appointment, system: str) -> dict:
    linked = _linked_value(LinkedKind.PATIENT, appointment.patient_id, system)
    if linked:
        return {"reference": f"Patient/{linked}", "type": "Patient"}
    snils = normalise_snils(appointment.patient.snils)
    if snils:
        return {"type": "Patient", "identifier": {"system": SNILS_SYSTEM, "value": snils}}
    return {
        "type": "Patient",
        "identifier": {"system": PATIENT_SYSTEM, "value": str(appointment.patient_id)},
    }


def _reference(kind: str, resource_type: str, object_id: int, system: str, ours: str) -> dict:
    linked = _linked_value(kind, object_id, system)
    if linked:
        return {"reference": f"{resource_type}/{linked}", "type": resource_type}
    return {"type": resource_type, "identifier": {"system": ours, "value": str(object_id)}}


def _linked_value(kind: str, object_id: int, system: str) -> str | None:
    return (
        ExternalLink.objects.filter(kind=kind, object_id=object_id, system=system)
        .order_by("-updated_at")
        .values_list("value", flat=True)
        .first()
    )


def merge_into(current: dict, desired: dict) -> dict:
    """The MIS's resource with what the portal owns changed: the status, and (unless it
    is being cancelled) the time; our identifier added when missing. Everything else
    (participants the MIS resolved, its own identifiers and extensions) stays."""
    merged = {key: value for key, value in current.items() if key != "meta"}
    if desired["status"] in CLOSED_FHIR_STATUSES:
        if current.get("status") not in CLOSED_FHIR_STATUSES:
            merged["status"] = desired["status"]
            if desired.get("cancelationReason"):
                merged["cancelationReason"] = desired["cancelationReason"]
        # Cancelled there already (perhaps by the MIS itself): its reason stays.
    else:
        merged["status"] = desired["status"]
        for key in ("start", "end", "minutesDuration"):
            merged[key] = desired[key]
        merged.pop("cancelationReason", None)
    ours = desired["identifier"][0]
    identifiers = list(merged.get("identifier") or [])
    if not any(
        i.get("system") == ours["system"] and i.get("value") == ours["value"] for i in identifiers
    ):
        merged["identifier"] = [*identifiers, ours]
    if not merged.get("participant"):
        merged["participant"] = desired["participant"]
    return merged


def _differs(current: dict, merged: dict) -> bool:
    """Whether writing `merged` would change the MIS's resource (times compared as
    instants: "09:00:00Z" and "09:00:00+00:00" are the same)."""
    for key in set(current) | set(merged):
        if key == "meta":
            continue
        a, b = current.get(key), merged.get(key)
        if key in ("start", "end"):
            if _parse_instant(a) != _parse_instant(b):
                return True
        elif a != b:
            return True
    return False


# --- Links ------------------------------------------------------------------------------------


def _link(appointment_id: int, system: str) -> ExternalLink | None:
    return (
        ExternalLink.objects.filter(
            kind=LinkedKind.APPOINTMENT, object_id=appointment_id, system=system
        )
        .order_by("-updated_at")
        .first()
    )


def _link_set(appointment_id: int, system: str, mis_id: str, version: str) -> None:
    ExternalLink.objects.update_or_create(
        kind=LinkedKind.APPOINTMENT,
        system=system,
        value=mis_id,
        defaults={
            "object_id": appointment_id,
            "version": version[:64],
            "updated_at": timezone.now(),
        },
    )


# --- Staff actions (admin) ---------------------------------------------------------------------


def _require_staff(by: Any) -> None:
    from accounts.policies import is_staff_member

    if not (getattr(by, "is_superuser", False) or is_staff_member(by)):
        raise PermissionDenied


def push_retry(*, by: Any, job: PushJob) -> PushJob:
    """Send a failed job again (after the cause was fixed: credentials, the MIS's
    configuration). Refused and delivered jobs stay as they are."""
    _require_staff(by)
    with transaction.atomic():
        job = PushJob.objects.select_for_update().get(pk=job.pk)
        if job.state != PushState.FAILED:
            raise ValidationError(_("Only a failed push can be sent again."))
        now = timezone.now()
        job.state = PushState.QUEUED
        job.queued_at = now
        job.next_attempt_at = now
        job.finished_at = None
        job.mis_system = mis_system() if mis_configured() else job.mis_system
        job.save(
            update_fields=[
                "state",
                "queued_at",
                "next_attempt_at",
                "finished_at",
                "mis_system",
                "updated_at",
            ]
        )
        audit_record(
            actor=by, action=AuditAction.CHANGE, obj=job, detail={"state": "queued", "retry": True}
        )
        transaction.on_commit(lambda: _publish([job.pk]))
    return job


def push_mark_handled(*, by: Any, job: PushJob) -> PushJob:
    """Reception has dealt with a refused booking (called the patient, found a time)."""
    _require_staff(by)
    with transaction.atomic():
        job = PushJob.objects.select_for_update().get(pk=job.pk)
        if job.state != PushState.REJECTED:
            raise ValidationError(_("Only a refused booking can be marked as handled."))
        if job.handled_at is None:
            job.handled_at = timezone.now()
            job.handled_by = by
            job.save(update_fields=["handled_at", "handled_by", "updated_at"])
            audit_record(actor=by, action=AuditAction.CHANGE, obj=job, detail={"handled": True})
    return job


# --- The staff appointment page -----------------------------------------------------------------


def appointment_mis_section(*, user: Any, appointment: Appointment, audience: str) -> str:
    """Answers scheduling's `appointment_page_sections` for staff: where the appointment
    stands with the MIS (nothing for patients, nothing when it was never pushed)."""
    if audience != "staff":
        return ""
    jobs = list(PushJob.objects.filter(appointment=appointment).order_by("-pk")[:5])
    if not jobs:
        return ""
    latest = jobs[0]
    if any(job.state == PushState.REJECTED for job in jobs):
        summary = _(
            "The clinic's MIS refused this appointment, so it was cancelled here and the "
            "patient was told. Please contact the patient to offer another time."
        )
    elif latest.state in OPEN_PUSH_STATES:
        summary = _("Waiting to reach the MIS (attempt %(n)s).") % {"n": latest.attempts}
    elif latest.state == PushState.FAILED:
        summary = _("The MIS did not accept the data; an administrator must look at it.")
    elif latest.state == PushState.SKIPPED:
        summary = _("Cancelled before the MIS had it: nothing was sent.")
    else:
        summary = _("The MIS has this appointment as it is here.")
    rows = format_html_join(
        "",
        "<li>{} — {}{}</li>",
        (
            (
                job.get_change_display(),
                job.get_state_display(),
                f" ({job.last_error})" if job.last_error else "",
            )
            for job in jobs
        ),
    )
    return format_html(
        '<section aria-labelledby="mis-push-title"><h2 class="h4" id="mis-push-title">{}</h2>'
        "<p>{}</p><ul>{}</ul></section>",
        _("Clinic MIS"),
        summary,
        rows,
    )


HANDLERS = (
    ("appointment_booked", on_appointment_booked),
    ("appointment_rescheduled", on_appointment_rescheduled),
    ("appointment_cancelled", on_appointment_cancelled),
    ("appointment_status_changed", on_appointment_status_changed),
    ("appointment_page_sections", appointment_mis_section),
)


def connect() -> None:
    """Register on scheduling's hooks (MisConfig.ready). Idempotent."""
    from scheduling import hooks

    for name, handler in HANDLERS:
        getattr(hooks, name).register(handler)


def disconnect() -> None:
    from scheduling import hooks

    for name, handler in HANDLERS:
        getattr(hooks, name).unregister(handler)
