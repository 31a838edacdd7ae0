"""Notification writes: reminders, event messages and action links.

Reminders and messages are rows (DESIGN.md rule 1). `reminders_sweep` and
`messages_sweep` (beat, every minute) move due rows to "queued" and enqueue a task that
takes the row's id on commit; the sender claims the row under
`SELECT ... FOR UPDATE SKIP LOCKED` and commits the claim before it talks to a provider,
so two workers (or a redelivered message) never send the same row twice. A row queued
but never claimed (its message was lost) is queued again after QUEUE_LEASE; a claim older
than CLAIM_LEASE (its worker died mid-send) is picked up again. See ADR 0008 for what
that means when a worker dies between a provider's answer and our record of it.

Late reminders: a reminder whose appointment is closer than its cut-off is recorded as
"skipped_late" and not sent. The cut-off of an offset is the next smaller offset (the
24 h reminder is late when the appointment is less than 2 h away); for the smallest
offset it is a quarter of it (the 2 h reminder is late when less than 30 min are left).

Action links (in reminders): signed with Django's signer (a tampered link fails before
the database is asked), expiring when the appointment starts, single-use by a row that
stores only the token's hash.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditAction
from audit.services import audit_record
from notifications import compose
from notifications.channels import (
    Attachment,
    ChannelError,
    EmailChannel,
    Outgoing,
    channel_for,
)
from notifications.models import (
    OPEN_STATES,
    ActionLink,
    Channel,
    Delivery,
    Event,
    LinkAction,
    Message,
    NotificationPreference,
    Reminder,
    ReminderState,
)
from scheduling import services as scheduling_services
from scheduling.ics import appointment_ics, ics_filename
from scheduling.models import (
    UPCOMING_STATUSES,
    Appointment,
    AppointmentEventKind,
    AppointmentStatus,
)

logger = logging.getLogger(__name__)

# Longer than the send tasks' hard time limit (SEND_TIME_LIMIT): a claim this old
# belongs to a worker that died.
SEND_TIME_LIMIT = 90
CLAIM_LEASE = timedelta(seconds=2 * SEND_TIME_LIMIT)
# A row queued this long ago and still not claimed lost its message (dropped by the
# broker): the sweep queues it again. Publishing failures do not wait for it (`_enqueue`
# puts those rows back at once); the lease only catches the rare silent loss, and is long
# enough that a busy queue is not flooded with duplicates (under the broker's 1 h
# visibility timeout).
QUEUE_LEASE = timedelta(minutes=15)
MAX_ATTEMPTS = 3
SWEEP_BATCH = 1000
# One sweep keeps taking batches while they come back full, for up to this long (beat
# runs it every minute; more than a batch a minute may fall due).
SWEEP_SECONDS = 45
LINK_SALT = "notifications.action-link"
LINK_MAX_AGE = timedelta(days=14)  # the signer's cap; the row expires at the start


# --- Preferences and recipients ---------------------------------------------------------


def reminder_offsets() -> list[float]:
    """Offsets in hours before the appointment, largest first."""
    offsets = getattr(settings, "REMINDER_OFFSETS_HOURS", (24, 2))
    return sorted({float(h) for h in offsets}, reverse=True)


def reminder_kind(hours: float) -> str:
    return f"{hours:g}h"


def late_cutoff(kind: str) -> timedelta:
    """How close to the appointment a reminder of this kind may still go out."""
    offsets = reminder_offsets()
    hours = float(kind.rstrip("h"))
    smaller = [h for h in offsets if h < hours]
    return timedelta(hours=max(smaller) if smaller else hours / 4)


def preference_for(user) -> NotificationPreference:  # noqa: ANN001
    """The user's preference, or the default (email on, SMS off) unsaved."""
    found = NotificationPreference.objects.filter(user=user).first()
    return found or NotificationPreference(user=user)


def message_language(user, preference: NotificationPreference) -> str:  # noqa: ANN001
    language = preference.language or getattr(user, "language", "") or "ru"
    return language if language in compose.LANGUAGES else "ru"


def _phone_of(user) -> str:  # noqa: ANN001
    profile = getattr(user, "patient_profile", None)
    return getattr(profile, "phone", "") or ""


def user_channels(user, preference: NotificationPreference | None = None) -> list[str]:  # noqa: ANN001
    preference = preference or preference_for(user)
    channels = []
    if preference.email_enabled and user.email:
        channels.append(Channel.EMAIL)
    if preference.sms_enabled and _phone_of(user):
        channels.append(Channel.SMS)
    return channels


def enabled_channels(appointment: Appointment) -> list[str]:
    return user_channels(appointment.patient.user)


def preference_update(
    *,
    by,
    email_enabled: bool,
    sms_enabled: bool,
    language: str,  # noqa: ANN001
) -> NotificationPreference:
    """The user's own channels and language of messages. At least one channel stays on:
    reminders are how patients learn of a change by the clinic."""
    with transaction.atomic():
        preference, _created = NotificationPreference.objects.select_for_update().get_or_create(
            user=by
        )
        preference.email_enabled = email_enabled or not sms_enabled
        preference.sms_enabled = sms_enabled
        preference.language = language if language in compose.LANGUAGES else ""
        preference.save()
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=preference,
            detail={
                "email": preference.email_enabled,
                "sms": preference.sms_enabled,
                "language": preference.language,
            },
        )
    return preference


# --- Reminders ---------------------------------------------------------------------------


def reminders_schedule_for(*, appointment_id: int, now: datetime | None = None) -> list[Reminder]:
    """Create (or reset after a move) the rows of the appointment's future reminders.

    Idempotent: rows already planned for the appointment's current start are left as
    they are. Offsets whose due time has passed get no row (the booking confirmation
    covers an appointment booked inside them).
    """
    now = now or timezone.now()
    with transaction.atomic():
        appointment = (
            Appointment.objects.select_for_update(of=("self",))
            .select_related("patient__user", "location")
            .filter(pk=appointment_id)
            .first()
        )
        if appointment is None or appointment.status not in UPCOMING_STATUSES:
            return []
        start = appointment.starts_at
        existing = {
            (row.kind, row.channel): row
            for row in Reminder.objects.select_for_update().filter(appointment=appointment)
        }
        channels = enabled_channels(appointment)
        result = []
        for hours in reminder_offsets():
            due_at = start - timedelta(hours=hours)
            if due_at <= now:
                continue
            kind = reminder_kind(hours)
            for channel in channels:
                row = existing.get((kind, channel))
                if row is None:
                    row = Reminder.objects.create(
                        appointment=appointment,
                        kind=kind,
                        channel=channel,
                        appointment_starts_at=start,
                        due_at=due_at,
                    )
                elif row.appointment_starts_at != start or row.state == ReminderState.REVOKED:
                    _reset(row, start=start, due_at=due_at)
                result.append(row)
        return result


def _reset(row: Reminder, *, start: datetime, due_at: datetime) -> None:
    row.appointment_starts_at = start
    row.due_at = due_at
    row.state = ReminderState.PENDING
    row.attempts = 0
    row.last_error = ""
    row.queued_at = row.claimed_at = row.sent_at = None
    row.sent_channel = row.provider_message_id = ""
    row.save()


def reminders_revoke_for(*, appointment_id: int) -> int:
    """Pending, queued and retrying reminders of the appointment are revoked, and the
    action links already sent for it stop working."""
    now = timezone.now()
    with transaction.atomic():
        ActionLink.objects.filter(appointment_id=appointment_id, used_at__isnull=True).update(
            expires_at=now
        )
        return Reminder.objects.filter(appointment_id=appointment_id, state__in=OPEN_STATES).update(
            state=ReminderState.REVOKED, updated_at=now
        )


def reminders_sweep(*, now: datetime | None = None) -> int:
    """Queue due reminders (and ones whose message or worker was lost); each is sent by
    `notifications.send_reminder` after this transaction commits."""
    from notifications.tasks import send_reminder

    return _sweep(Reminder, send_reminder, now=now or timezone.now())


def reminder_send(*, reminder_id: int, now: datetime | None = None) -> str:
    """Send one reminder at most once. Returns the outcome (a state, or "busy" when
    another worker holds or has claimed it, or "not_due")."""
    return _send(
        Reminder,
        reminder_id,
        now=now or timezone.now(),
        related=("appointment__patient__user", "appointment__location"),
        prepare=_prepare_reminder,
    )


def _prepare_reminder(reminder: Reminder, now: datetime) -> _Ready:
    appointment = reminder.appointment
    user = appointment.patient.user
    preference = preference_for(user)
    if (
        appointment.status not in UPCOMING_STATUSES
        or appointment.starts_at != reminder.appointment_starts_at
        or reminder.channel not in user_channels(user, preference)
    ):
        raise _Stop(ReminderState.REVOKED)
    if appointment.starts_at - now < late_cutoff(reminder.kind):
        raise _Stop(ReminderState.SKIPPED_LATE, "late")
    language = message_language(user, preference)
    links = action_links_issue(appointment=appointment, now=now)
    message = compose.reminder_message(appointment, language=language, links=links)
    return _Ready(
        user=user,
        address=user.email if reminder.channel == Channel.EMAIL else appointment.patient.phone,
        message=_with_message_id(
            message, f"reminder-{reminder.pk}-{reminder.appointment_starts_at.timestamp():.0f}"
        ),
    )


# --- Event messages ----------------------------------------------------------------------


def notification_send(
    *,
    user_id: int,
    event: str,
    object_type: str = "",
    object_id: int | None = None,
    link: str = "",
    key: str = "",
    due_at: datetime | None = None,
) -> list[Message]:
    """Queue a message about `event` to a user through each channel they chose.

    The one entry point for every app's events (results ready, a prescription's new
    status, a receipt...). Call it inside the transaction that makes the event true:
    the rows commit with it and are sent once it commits (and by the sweep, if the
    broker is away). Idempotent by `key` (default: event and object): a retried caller
    queues nothing twice. `link` is for a page outside the portal (a fiscal receipt);
    portal pages come from notifications/texts.py. `due_at` delays it (the sweep sends
    it then).
    """
    from django.contrib.auth import get_user_model

    if event not in Event.values:
        raise ValueError(f"unknown event {event!r}")
    key = (key or f"{event}:{object_type}:{object_id}")[:120]
    with transaction.atomic():
        user = get_user_model().objects.select_related("patient_profile").get(pk=user_id)
        rows = []
        for channel in user_channels(user) or [Channel.EMAIL]:
            row, created = Message.objects.get_or_create(
                dedupe_key=key,
                channel=channel,
                defaults={
                    "user": user,
                    "event": event,
                    "object_type": object_type,
                    "object_id": object_id,
                    "link": link,
                    "due_at": due_at or timezone.now(),
                },
            )
            if created:
                rows.append(row)
        if rows and due_at is None:
            from notifications.tasks import send_message

            ids = [row.pk for row in rows]
            transaction.on_commit(lambda: _enqueue(send_message, ids, model=Message))
    return rows


def messages_sweep(*, now: datetime | None = None) -> int:
    from notifications.tasks import send_message

    return _sweep(Message, send_message, now=now or timezone.now())


def message_send(*, message_id: int, now: datetime | None = None) -> str:
    return _send(
        Message,
        message_id,
        now=now or timezone.now(),
        related=("user__patient_profile",),
        prepare=_prepare_message,
    )


def _prepare_message(row: Message, now: datetime) -> _Ready:
    user = row.user
    if not user.is_active:
        raise _Stop(ReminderState.REVOKED, "inactive")
    language = message_language(user, preference_for(user))
    appointment = None
    attachments: tuple[Attachment, ...] = ()
    if row.object_type == "appointment" and row.object_id:
        appointment = (
            Appointment.objects.select_related("location").filter(pk=row.object_id).first()
        )
        if appointment is None:
            raise _Stop(ReminderState.REVOKED, "gone")
        if row.event in (Event.BOOKING_CONFIRMED, Event.APPOINTMENT_MOVED):
            if appointment.status not in UPCOMING_STATUSES:
                raise _Stop(ReminderState.REVOKED, "not-upcoming")
            if row.channel == Channel.EMAIL:
                sequence = appointment.events.filter(kind=AppointmentEventKind.MOVED).count()
                attachments = (
                    Attachment(
                        ics_filename(appointment),
                        appointment_ics(appointment, language=language, sequence=sequence),
                        "text/calendar; charset=utf-8; method=PUBLISH",
                    ),
                )
    message = compose.event_message(
        row.event,
        language=language,
        appointment=appointment,
        link=row.link,
        attachments=attachments,
    )
    return _Ready(
        user=user,
        address=user.email if row.channel == Channel.EMAIL else _phone_of(user),
        message=_with_message_id(message, f"message-{row.pk}"),
    )


def follow_up_invite(*, by, appointment: Appointment, weeks: int) -> list[Message]:  # noqa: ANN001
    """The doctor (or reception) asks the patient to book a follow-up; the message goes
    out in `weeks` weeks (0: now). One invitation per appointment."""
    if weeks < 0 or weeks > 52:
        raise ValidationError(_("Choose between 0 and 52 weeks."))
    if appointment.status != AppointmentStatus.COMPLETED:
        raise ValidationError(_("A follow-up can be arranged once the visit is completed."))
    with transaction.atomic():
        rows = notification_send(
            user_id=appointment.patient.user_id,
            event=Event.FOLLOW_UP,
            object_type="appointment",
            object_id=appointment.pk,
            due_at=timezone.now() + timedelta(weeks=weeks) if weeks else None,
        )
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            object_type="notifications.followup",
            object_id=appointment.pk,
            patient=appointment.patient.user,
            detail={"weeks": weeks, "queued": bool(rows)},
        )
    return rows


# --- Sending, shared by reminders and messages --------------------------------------------


class _Stop(Exception):
    """The row is finished without sending (revoked, late...)."""

    def __init__(self, state: str, error: str = "") -> None:
        super().__init__(state)
        self.state = state
        self.error = error


class _Ready:
    def __init__(self, *, user, address: str, message: Outgoing) -> None:  # noqa: ANN001
        self.user = user
        self.address = address
        self.message = message


def _with_message_id(message: Outgoing, ident: str) -> Outgoing:
    domain = settings.SITE_URL.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "clinic"
    return Outgoing(
        subject=message.subject,
        body=message.body,
        sms_text=message.sms_text,
        attachments=message.attachments,
        message_id=f"<{ident}@{domain}>",
    )


def _sweep(model: type[Delivery], task, *, now: datetime) -> int:  # noqa: ANN001
    started = time.monotonic()
    total = 0
    while True:
        queued = _sweep_batch(model, task, now=now)
        total += queued
        if queued < SWEEP_BATCH or time.monotonic() - started > SWEEP_SECONDS:
            return total


def _sweep_batch(model: type[Delivery], task, *, now: datetime) -> int:  # noqa: ANN001
    due = Q(state__in=(ReminderState.PENDING, ReminderState.RETRIED), due_at__lte=now)
    lost = Q(state=ReminderState.QUEUED) & (
        Q(claimed_at__isnull=True, queued_at__lt=now - QUEUE_LEASE)
        | Q(claimed_at__lt=now - CLAIM_LEASE)
    )
    with transaction.atomic():
        ids = list(
            model.objects.select_for_update(skip_locked=True)
            .filter(due | lost)
            .order_by("due_at")
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        model.objects.filter(pk__in=ids).update(
            state=ReminderState.QUEUED, queued_at=now, updated_at=now
        )
        transaction.on_commit(lambda: _enqueue(task, ids, model=model))
    return len(ids)


def _enqueue(task, ids: list[int], *, model: type[Delivery] | None = None) -> None:  # noqa: ANN001
    """Publish one message per row; stop at the first failure (the broker is down, and
    each further attempt would wait out kombu's retries). Rows not published go back to
    "pending" (unless a worker got to them), so the next sweep tries them again."""
    for index, row_id in enumerate(ids):
        try:
            task.delay(row_id)
        except Exception:  # kombu raises OperationalError and others when the broker is gone
            logger.warning("broker unavailable: %s rows left for the next sweep", len(ids))
            if model is not None:
                model.objects.filter(
                    pk__in=ids[index:], state=ReminderState.QUEUED, claimed_at__isnull=True
                ).update(state=ReminderState.PENDING, queued_at=None, updated_at=timezone.now())
            return


def _send(
    model: type[Delivery],
    row_id: int,
    *,
    now: datetime,
    related: tuple[str, ...],
    prepare: Callable[[Delivery, datetime], _Ready],
) -> str:
    with transaction.atomic():
        row = (
            model.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related(*related)
            .filter(pk=row_id, state__in=OPEN_STATES)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_LEASE))
            .first()
        )
        if row is None:
            return "busy"
        if row.due_at > now:
            return "not_due"
        row.attempts += 1
        try:
            ready = prepare(row, now)
        except _Stop as stop:
            return _finish(row, state=stop.state, error=stop.error)
        row.claimed_at = now
        row.save(update_fields=["claimed_at", "attempts", "updated_at"])
    # The claim is committed: from here on no other worker sends this row.
    try:
        provider_id = channel_for(row.channel).send(to=ready.address, message=ready.message)
    except ChannelError as exc:
        return _failed(row, exc, email=ready.user.email, message=ready.message)
    return _finish(
        row,
        state=ReminderState.SENT,
        sent_channel=row.channel,
        provider_message_id=provider_id,
    )


def _email_sibling_covers(row: Delivery) -> bool:
    """Another row of the same reminder or message goes out by email."""
    if isinstance(row, Reminder):
        siblings = Reminder.objects.filter(appointment_id=row.appointment_id, kind=row.kind)
    else:
        siblings = Message.objects.filter(dedupe_key=row.dedupe_key)
    return (
        siblings.filter(channel=Channel.EMAIL)
        .exclude(
            state__in=(ReminderState.REVOKED, ReminderState.SKIPPED_LATE, ReminderState.FAILED)
        )
        .exists()
    )


def _failed(row: Delivery, exc: ChannelError, *, email: str, message: Outgoing) -> str:
    if not exc.permanent and row.attempts < MAX_ATTEMPTS:
        return _finish(
            row,
            state=ReminderState.RETRIED,
            error=exc.code,
            due_at=timezone.now() + timedelta(minutes=2**row.attempts),
            claimed_at=None,
        )
    if row.channel != Channel.SMS:
        return _finish(row, state=ReminderState.FAILED, error=exc.code)
    # SMS failed for good: fall back to email. If an email row of the same reminder or
    # message is on its way, it carries it; otherwise send the email from this row.
    if _email_sibling_covers(row):
        return _finish(row, state=ReminderState.FELL_BACK, error=exc.code)
    try:
        provider_id = EmailChannel().send(to=email, message=message)
    except ChannelError as email_exc:
        return _finish(row, state=ReminderState.FAILED, error=f"{exc.code};{email_exc.code}")
    return _finish(
        row,
        state=ReminderState.FELL_BACK,
        error=exc.code,
        sent_channel=Channel.EMAIL,
        provider_message_id=provider_id,
    )


def _finish(row: Model, *, state: str, error: str = "", **fields: object) -> str:
    now = timezone.now()
    if fields.get("sent_channel"):
        fields["sent_at"] = now
    type(row).objects.filter(pk=row.pk).update(
        state=state, last_error=error[:120], updated_at=now, **fields
    )
    return state


# --- Action links --------------------------------------------------------------------------


class LinkProblem(Exception):
    """Why a link cannot be used. `reason`: invalid, expired, used, not_yours, closed."""

    def __init__(self, reason: str, link: ActionLink | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.link = link  # known when the token was genuine: its page speaks the patient's language


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=LINK_SALT, sep=".")


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def action_links_issue(*, appointment: Appointment, now: datetime | None = None) -> dict[str, str]:
    """Three links (confirm, reschedule, cancel) for one reminder, as absolute URLs. Runs
    inside the sender's transaction: the rows commit with the claim."""
    now = now or timezone.now()
    group = uuid.uuid4()
    urls = {}
    rows = []
    for action in LinkAction.values:
        raw = secrets.token_urlsafe(16)
        rows.append(
            ActionLink(
                token_hash=_token_hash(raw),
                appointment=appointment,
                action=action,
                group=group,
                appointment_starts_at=appointment.starts_at,
                expires_at=appointment.starts_at,
                created_at=now,
            )
        )
        token = _signer().sign(raw)
        urls[action] = compose.absolute(reverse("notifications:action_link", args=[token]))
    ActionLink.objects.bulk_create(rows)
    return urls


def action_link_resolve(token: str, *, now: datetime | None = None) -> ActionLink:
    """The link behind a token, or LinkProblem. Reads only."""
    now = now or timezone.now()
    try:
        raw = _signer().unsign(token, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise LinkProblem("expired") from exc
    except signing.BadSignature as exc:
        raise LinkProblem("invalid") from exc
    link = (
        ActionLink.objects.select_related(
            "appointment__patient__user", "appointment__location", "appointment__consultation_type"
        )
        .filter(token_hash=_token_hash(raw))
        .first()
    )
    if link is None:
        raise LinkProblem("invalid")
    _check_usable(link, now=now)
    return link


def _check_usable(link: ActionLink, *, now: datetime) -> None:
    if link.used_at is not None:
        raise LinkProblem("used", link)
    if link.expires_at <= now:
        raise LinkProblem("expired", link)
    appointment = link.appointment
    if (
        appointment.status not in UPCOMING_STATUSES
        or appointment.starts_at != link.appointment_starts_at
    ):
        raise LinkProblem("closed", link)


def _use(token: str, *, now: datetime) -> ActionLink:
    """Lock the link's row and mark it used (inside the caller's transaction)."""
    found = action_link_resolve(token, now=now)
    link = (
        ActionLink.objects.select_for_update()
        .select_related("appointment__patient__user", "appointment__location")
        .get(pk=found.pk)
    )
    _check_usable(link, now=now)  # again, under the lock: a second click waits and fails
    link.used_at = now
    link.save(update_fields=["used_at"])
    return link


def _record_use(link: ActionLink, *, by) -> None:  # noqa: ANN001
    audit_record(
        actor=by,
        action=AuditAction.CHANGE,
        obj=link,
        patient=link.appointment.patient.user,
        detail={"action": link.action, "appointment": link.appointment_id},
    )


def action_link_confirm(*, token: str, now: datetime | None = None) -> Appointment:
    """Confirm attendance from a reminder, without signing in: the link stands in for
    the patient (it reached their own inbox or phone)."""
    now = now or timezone.now()
    with transaction.atomic():
        link = _use(token, now=now)
        if link.action != LinkAction.CONFIRM:
            raise LinkProblem("invalid")
        patient = link.appointment.patient.user
        appointment = link.appointment
        if appointment.status != "confirmed":
            appointment = scheduling_services.appointment_set_status(
                by=patient, appointment=appointment, status="confirmed"
            )
        _record_use(link, by=patient)
    return appointment


def action_link_cancel(*, token: str, now: datetime | None = None) -> Appointment:
    """Cancel under the clinic's policy (the page showed it and asked again). Using it
    also closes the other links of the same reminder."""
    now = now or timezone.now()
    with transaction.atomic():
        link = _use(token, now=now)
        if link.action != LinkAction.CANCEL:
            raise LinkProblem("invalid")
        patient = link.appointment.patient.user
        appointment = scheduling_services.appointment_cancel(
            by=patient, appointment=link.appointment, reason="cancelled from a reminder link"
        )
        ActionLink.objects.filter(group=link.group, used_at__isnull=True).update(used_at=now)
        _record_use(link, by=patient)
    return appointment


def action_link_reschedule(*, by, token: str, now: datetime | None = None) -> Appointment:  # noqa: ANN001
    """Open the move page for the signed-in patient the appointment belongs to. Anyone
    else signed in is told the link is not theirs, and the link stays unused."""
    now = now or timezone.now()
    with transaction.atomic():
        found = action_link_resolve(token, now=now)
        if found.action != LinkAction.RESCHEDULE:
            raise LinkProblem("invalid")
        if found.appointment.patient.user_id != by.pk:
            raise LinkProblem("not_yours")
        link = _use(token, now=now)
        _record_use(link, by=by)
    return link.appointment
