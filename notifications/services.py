"""Reminder writes: schedule, revoke, send exactly once, sweep.

Reminders are rows (DESIGN.md rule 1). `reminders_sweep` (beat, every minute) moves due
rows to "queued" and enqueues `notifications.send_reminder(reminder_id)` on commit;
`reminder_send` claims the row under `SELECT ... FOR UPDATE SKIP LOCKED` and commits the
claim before it talks to a provider, so two workers (or a redelivered message) never send
the same row twice. A claim older than `CLAIM_LEASE` (a worker that died mid-send) is
picked up again by the sweep.

Late reminders: a reminder whose appointment is closer than its cut-off is recorded as
"skipped_late" and not sent. The cut-off of an offset is the next smaller offset (the
24 h reminder is late when the appointment is less than 2 h away); for the smallest
offset it is a quarter of it (the 2 h reminder is late when less than 30 min are left).

Messages carry no medical content (DESIGN.md rule 6): date, time, zone, the location's
address and a link to "My appointments" only.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation

from notifications.channels import ChannelError, EmailChannel, Outgoing, channel_for
from notifications.models import (
    OPEN_STATES,
    Channel,
    NotificationPreference,
    Reminder,
    ReminderState,
)
from scheduling.models import UPCOMING_STATUSES, Appointment

logger = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=10)  # longer than CELERY_TASK_TIME_LIMIT
# A row queued this long ago and not claimed lost its message (broker down, or the
# message dropped): the sweep queues it again. A duplicate message is harmless, the
# claim lets only one worker send.
QUEUE_LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 3
SWEEP_BATCH = 1000
LANGUAGES = ("ru", "en")


# --- Helpers -----------------------------------------------------------------------------


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
    return language if language in LANGUAGES else "ru"


def enabled_channels(appointment: Appointment) -> list[str]:
    user = appointment.patient.user
    preference = preference_for(user)
    channels = []
    if preference.email_enabled and user.email:
        channels.append(Channel.EMAIL)
    if preference.sms_enabled and appointment.patient.phone:
        channels.append(Channel.SMS)
    return channels


def reminder_message(appointment: Appointment, *, language: str) -> Outgoing:
    location = appointment.location
    local = appointment.starts_at.astimezone(location.tzinfo)
    with translation.override(language):
        context = {
            "clinic": settings.CLINIC_NAME,
            "date": formats.date_format(local, "j E Y"),
            "time": local.strftime("%H:%M"),
            "zone": location.time_zone,
            "address": location.address,
            "link": settings.SITE_URL.rstrip("/") + reverse("scheduling:my_appointments"),
        }
        folder = "notifications/reminder"
        return Outgoing(
            subject=render_to_string(f"{folder}/subject_{language}.txt", context).strip(),
            body=render_to_string(f"{folder}/body_{language}.txt", context),
            sms_text=render_to_string(f"{folder}/sms_{language}.txt", context).strip(),
        )


# --- Services ----------------------------------------------------------------------------


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
    """Pending, queued and retrying reminders of the appointment are revoked."""
    with transaction.atomic():
        return Reminder.objects.filter(appointment_id=appointment_id, state__in=OPEN_STATES).update(
            state=ReminderState.REVOKED, updated_at=timezone.now()
        )


def reminders_sweep(*, now: datetime | None = None) -> int:
    """Queue due reminders (and ones whose message or worker was lost); each is sent by
    `notifications.send_reminder` after this transaction commits."""
    from notifications.tasks import send_reminder

    now = now or timezone.now()
    due = Q(state__in=(ReminderState.PENDING, ReminderState.RETRIED), due_at__lte=now)
    lost = Q(state=ReminderState.QUEUED) & (
        Q(claimed_at__isnull=True, queued_at__lt=now - QUEUE_LEASE)
        | Q(claimed_at__lt=now - CLAIM_LEASE)
    )
    with transaction.atomic():
        ids = list(
            Reminder.objects.select_for_update(skip_locked=True)
            .filter(due | lost)
            .order_by("due_at")
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        Reminder.objects.filter(pk__in=ids).update(
            state=ReminderState.QUEUED, queued_at=now, updated_at=now
        )
        transaction.on_commit(lambda: _enqueue(send_reminder, ids))
    return len(ids)


def _enqueue(task, ids: list[int]) -> None:  # noqa: ANN001
    """Publish one message per row; stop at the first failure (the broker is down, and
    each further attempt would wait out kombu's retries). The rows stay "queued" and the
    sweep queues them again after QUEUE_LEASE."""
    for row_id in ids:
        try:
            task.delay(row_id)
        except Exception:  # kombu raises OperationalError and others when the broker is gone
            logger.warning("broker unavailable: %s rows left for the next sweep", len(ids))
            return


def reminder_send(*, reminder_id: int, now: datetime | None = None) -> str:
    """Send one reminder at most once. Returns the outcome (a state, or "busy" when
    another worker holds or has claimed it, or "done" when nothing is left to do)."""
    now = now or timezone.now()
    with transaction.atomic():
        reminder = (
            Reminder.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("appointment__patient__user", "appointment__location")
            .filter(pk=reminder_id, state__in=OPEN_STATES)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_LEASE))
            .first()
        )
        if reminder is None:
            return "busy"
        if reminder.due_at > now:
            return "not_due"
        appointment = reminder.appointment
        if (
            appointment.status not in UPCOMING_STATUSES
            or appointment.starts_at != reminder.appointment_starts_at
            or reminder.channel not in enabled_channels(appointment)
        ):
            return _finish(reminder, state=ReminderState.REVOKED)
        if appointment.starts_at - now < late_cutoff(reminder.kind):
            return _finish(reminder, state=ReminderState.SKIPPED_LATE, error="late")
        reminder.claimed_at = now
        reminder.attempts += 1
        reminder.save(update_fields=["claimed_at", "attempts", "updated_at"])
        user = appointment.patient.user
        language = message_language(user, preference_for(user))
        message = reminder_message(appointment, language=language)
        address = user.email if reminder.channel == Channel.EMAIL else appointment.patient.phone
    # The claim is committed: from here on no other worker sends this row.
    try:
        provider_id = channel_for(reminder.channel).send(to=address, message=message)
    except ChannelError as exc:
        return _failed(reminder, exc, email=user.email, message=message)
    return _finish(
        reminder,
        state=ReminderState.SENT,
        sent_channel=reminder.channel,
        provider_message_id=provider_id,
    )


def _failed(reminder: Reminder, exc: ChannelError, *, email: str, message: Outgoing) -> str:
    if not exc.permanent and reminder.attempts < MAX_ATTEMPTS:
        return _finish(
            reminder,
            state=ReminderState.RETRIED,
            error=exc.code,
            due_at=timezone.now() + timedelta(minutes=2**reminder.attempts),
            claimed_at=None,
        )
    if reminder.channel != Channel.SMS:
        return _finish(reminder, state=ReminderState.FAILED, error=exc.code)
    # SMS failed for good: fall back to email. If an email row of the same kind is on its
    # way, it carries the reminder; otherwise send the email from this row.
    sibling_covers = (
        Reminder.objects.filter(
            appointment_id=reminder.appointment_id,
            kind=reminder.kind,
            channel=Channel.EMAIL,
        )
        .exclude(
            state__in=(ReminderState.REVOKED, ReminderState.SKIPPED_LATE, ReminderState.FAILED)
        )
        .exists()
    )
    if sibling_covers:
        return _finish(reminder, state=ReminderState.FELL_BACK, error=exc.code)
    try:
        provider_id = EmailChannel().send(to=email, message=message)
    except ChannelError as email_exc:
        return _finish(reminder, state=ReminderState.FAILED, error=f"{exc.code};{email_exc.code}")
    return _finish(
        reminder,
        state=ReminderState.FELL_BACK,
        error=exc.code,
        sent_channel=Channel.EMAIL,
        provider_message_id=provider_id,
    )


def _finish(reminder: Reminder, *, state: str, error: str = "", **fields: object) -> str:
    now = timezone.now()
    if fields.get("sent_channel"):
        fields["sent_at"] = now
    Reminder.objects.filter(pk=reminder.pk).update(
        state=state, last_error=error[:120], updated_at=now, **fields
    )
    return state
