"""Every write to secure-messaging threads.

Each service takes the acting user first (`by=`), checks `accounts.policies`, refuses
bad input with a ValidationError that changes nothing, works in one transaction and
records its audit event in it.

- A patient starts a thread (`thread_start`) about a topic, optionally about one of
  their own records, with a first message and perhaps a file. It is routed then:
  billing and anything else to reception; an appointment to reception and that
  appointment's doctor; a prescription or results to the patient's doctors and nurses
  (and the doctor the record names) — or to reception when the patient has no care team
  yet, so no message goes unread.
- Either side answers (`thread_reply`); the state follows who wrote last. A reply from
  the clinic notifies the patient by their channels with no content ("You have a new
  message — open the portal"): once while earlier replies are still unread, and at most
  once an hour per thread, so a burst of replies sends one email.
- Staff take a thread, change its state, or send it to the other team; the patient
  closes and reopens their own.
- Patients are limited to PATIENT_MESSAGE_LIMIT messages per PATIENT_MESSAGE_WINDOW and
  PATIENT_THREAD_LIMIT new threads a day, counted in the database under a lock on the
  patient's row (exact under concurrency; no cache to lose).
- Files are checked by content with the records upload rules
  (clinic.files.validate_upload, strict, records' size limit) before anything is
  written, and stored encrypted; a failed write leaves no file behind.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import PatientProfile, User
from audit.models import AuditAction
from audit.services import audit_record
from clinic.files import validate_upload
from records.services_documents import UPLOAD_MAX_BYTES
from telemedicine import selectors_messaging as selectors
from telemedicine.models import (
    AboutKind,
    MessageAttachment,
    Team,
    Thread,
    ThreadMessage,
    ThreadRead,
    ThreadState,
    Topic,
)

SUBJECT_MAX_LENGTH = 150
BODY_MAX_LENGTH = 5_000
ATTACHMENT_MAX_BYTES = UPLOAD_MAX_BYTES
PATIENT_MESSAGE_LIMIT = 10
PATIENT_MESSAGE_WINDOW = timedelta(minutes=10)
PATIENT_THREAD_LIMIT = 10
PATIENT_THREAD_WINDOW = timedelta(days=1)

# Which records each topic may be about.
ABOUT_FOR_TOPIC: dict[str, frozenset[str]] = {
    Topic.APPOINTMENT: frozenset({AboutKind.APPOINTMENT}),
    Topic.PRESCRIPTION: frozenset({AboutKind.PRESCRIPTION}),
    Topic.RESULTS: frozenset({AboutKind.LAB_REPORT}),
    Topic.BILLING: frozenset({AboutKind.INVOICE, AboutKind.APPOINTMENT}),
    Topic.OTHER: frozenset(AboutKind.values),
}
CARE_TOPICS = frozenset({Topic.PRESCRIPTION, Topic.RESULTS})


# --- Checks ------------------------------------------------------------------------------------


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": _("Write your message.")})
    if len(body) > BODY_MAX_LENGTH:
        raise ValidationError(
            {
                "body": _("The message is too long (at most %(max)d characters).")
                % {"max": BODY_MAX_LENGTH}
            }
        )
    return body


def _checked_file(upload: Any) -> tuple[bytes, str] | None:
    """The file's bytes and content type, checked like a record's upload; None if no file."""
    if upload is None:
        return None
    try:
        content_type = validate_upload(upload, max_bytes=ATTACHMENT_MAX_BYTES, strict=True)
    except ValidationError as exc:
        raise ValidationError({"file": exc}) from exc
    upload.seek(0)
    return upload.read(), content_type


def _store_file(checked: tuple[bytes, str] | None) -> MessageAttachment | None:
    """The attachment's row (unsaved) with its file written, encrypted, to storage."""
    if checked is None:
        return None
    data, content_type = checked
    attachment = MessageAttachment(
        content_type=content_type, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    attachment.file.save("attachment", ContentFile(data), save=False)
    return attachment


def _discard(attachment: MessageAttachment | None) -> None:
    if attachment is not None and attachment.file.name:
        attachment.file.storage.delete(attachment.file.name)


def _check_patient_rate(by: User, profile: PatientProfile, *, new_thread: bool) -> None:
    """Inside the transaction: lock the patient's row so concurrent posts count in turn."""
    PatientProfile.objects.select_for_update().filter(pk=profile.pk).first()
    now = timezone.now()
    recent = ThreadMessage.objects.filter(
        author=by, created_at__gte=now - PATIENT_MESSAGE_WINDOW
    ).count()
    if recent >= PATIENT_MESSAGE_LIMIT:
        raise ValidationError(
            _(
                "You have sent many messages in a short time. Please wait a few minutes "
                "and try again."
            ),
            code="rate_limited",
        )
    if new_thread:
        started = Thread.objects.filter(
            created_by=by, created_at__gte=now - PATIENT_THREAD_WINDOW
        ).count()
        if started >= PATIENT_THREAD_LIMIT:
            raise ValidationError(
                _(
                    "You have started many conversations today. Please write in one of "
                    "them, or try again tomorrow."
                ),
                code="rate_limited",
            )


def _mark_read(thread: Thread, user: User, up_to: datetime) -> None:
    marker, created = ThreadRead.objects.get_or_create(
        thread=thread, user=user, defaults={"read_at": up_to}
    )
    if not created and marker.read_at < up_to:
        ThreadRead.objects.filter(pk=marker.pk, read_at__lt=up_to).update(read_at=up_to)


def _route(
    topic: str, linked: selectors.Linkable | None, profile: PatientProfile
) -> tuple[str, User | None, bool]:
    """(team, doctor, fell back to reception)."""
    doctor = linked.doctor if linked is not None else None
    if topic in CARE_TOPICS:
        if selectors.care_team_exists(profile, doctor):
            return Team.CARE, doctor, False
        return Team.RECEPTION, None, True
    if topic == Topic.APPOINTMENT:
        return Team.RECEPTION, doctor, False
    return Team.RECEPTION, None, False


# --- Starting and answering ---------------------------------------------------------------------


def thread_start(
    *,
    by: User,
    patient: PatientProfile,
    topic: str,
    subject: str,
    body: str,
    about_kind: str = "",
    about_id: Any = None,
    upload: Any = None,
) -> Thread:
    """A patient writes to the clinic: a new thread with its first message (and file)."""
    if not policies.can_start_thread(by, patient):
        raise PermissionDenied
    errors: dict[str, Any] = {}
    if topic not in Topic.values:
        errors["topic"] = _("Choose what your message is about.")
    subject = (subject or "").strip()
    if not subject:
        errors["subject"] = _("Give your message a subject.")
    elif len(subject) > SUBJECT_MAX_LENGTH:
        errors["subject"] = _("The subject is too long (at most %(max)d characters).") % {
            "max": SUBJECT_MAX_LENGTH
        }
    try:
        body = _clean_body(body)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    linked = None
    about_kind = about_kind or ""
    if about_kind or about_id:
        if topic in Topic.values and about_kind not in ABOUT_FOR_TOPIC[topic]:
            errors["about"] = _("Choose a record that matches the topic, or none.")
        elif not errors.get("topic"):
            linked = selectors.linkable_records(by).find(about_kind, about_id)
            if linked is None:
                # Not one of the patient's own (or no longer listed): a probe or a stale page.
                audit_record(
                    actor=by,
                    action=AuditAction.DENIED,
                    object_type="page",
                    patient=by,
                    detail={"what": "message_thread_about", "kind": about_kind},
                )
                errors["about"] = _("Choose one of your own records from the list.")
    if errors:
        raise ValidationError(errors)
    checked = _checked_file(upload)
    team, doctor, fallback = _route(topic, linked, patient)
    attachment = _store_file(checked)
    try:
        with transaction.atomic():
            _check_patient_rate(by, patient, new_thread=True)
            now = timezone.now()
            thread = Thread.objects.create(
                patient=patient,
                topic=topic,
                subject=subject,
                about_kind=linked.kind if linked else "",
                about_id=linked.public_id if linked else None,
                about_label=linked.label[:300] if linked else "",
                team=team,
                doctor=doctor,
                state=ThreadState.OPEN,
                created_by=by,
                created_at=now,
                last_message_at=now,
                last_patient_message_at=now,
            )
            message = ThreadMessage.objects.create(
                thread=thread, author=by, from_patient=True, body=body, created_at=now
            )
            if attachment is not None:
                attachment.message = message
                attachment.save()
            _mark_read(thread, by, now)
            audit_record(
                actor=by,
                action=AuditAction.CREATE,
                obj=thread,
                patient=patient.user,
                detail={
                    "what": "message_thread",
                    "topic": topic,
                    "team": team,
                    "doctor": doctor.pk if doctor else None,
                    "about": linked.kind if linked else "",
                    "routed_to_reception_for_lack_of_care_team": fallback,
                    "message": message.pk,
                    "attachment": attachment.pk if attachment else None,
                },
            )
    except Exception:
        _discard(attachment)
        raise
    return thread


def _notify_patient(
    thread: Thread, previous_clinic_message_at: datetime | None, now: datetime
) -> None:
    """ "A new message" to the patient, without content — once while earlier replies are
    unread, and at most once an hour per thread (the dedupe key)."""
    from notifications.models import Event
    from notifications.services import notification_send

    patient_user_id = thread.patient.user_id
    if previous_clinic_message_at is not None:
        read_at = (
            ThreadRead.objects.filter(thread=thread, user_id=patient_user_id)
            .values_list("read_at", flat=True)
            .first()
        )
        if read_at is None or read_at < previous_clinic_message_at:
            return  # an earlier email about this thread is still unanswered by a visit
    notification_send(
        user_id=patient_user_id,
        event=Event.NEW_MESSAGE,
        object_type="thread",
        object_id=thread.pk,
        key=f"new_message:thread:{thread.pk}:{now:%Y%m%d%H}",
    )


def thread_reply(*, by: User, thread: Thread, body: str, upload: Any = None) -> ThreadMessage:
    """A message in an existing thread, from the patient or from a member of staff who
    sees it. The state follows: the patient wrote → waiting for the clinic (a new thread
    stays open); the clinic wrote → waiting for the patient, and a member of staff who
    answers an untaken thread takes it. A closed thread takes no messages."""
    if not policies.can_write_in_thread(by, thread):
        raise PermissionDenied
    body = _clean_body(body)
    checked = _checked_file(upload)
    from_patient = by.pk == thread.patient.user_id
    attachment = _store_file(checked)
    try:
        with transaction.atomic():
            if from_patient:
                _check_patient_rate(by, thread.patient, new_thread=False)
            locked = (
                Thread.objects.select_for_update(of=("self",))
                .select_related("patient__user")
                .get(pk=thread.pk)
            )
            if locked.closed:
                raise ValidationError(
                    _("This conversation is closed. Reopen it to write again."), code="closed"
                )
            now = timezone.now()
            previous_clinic = locked.last_clinic_message_at
            message = ThreadMessage.objects.create(
                thread=locked, author=by, from_patient=from_patient, body=body, created_at=now
            )
            if attachment is not None:
                attachment.message = message
                attachment.save()
            locked.last_message_at = now
            fields = ["last_message_at", "state", "updated_at"]
            if from_patient:
                locked.last_patient_message_at = now
                fields.append("last_patient_message_at")
                if locked.state == ThreadState.WAITING_PATIENT:
                    locked.state = ThreadState.WAITING_CLINIC
            else:
                locked.last_clinic_message_at = now
                locked.state = ThreadState.WAITING_PATIENT
                fields.append("last_clinic_message_at")
                if locked.assigned_to_id is None:
                    locked.assigned_to = by
                    fields.append("assigned_to")
            locked.save(update_fields=fields)
            _mark_read(locked, by, now)
            if not from_patient:
                _notify_patient(locked, previous_clinic, now)
            audit_record(
                actor=by,
                action=AuditAction.CREATE,
                obj=message,
                patient=locked.patient.user,
                detail={
                    "what": "message",
                    "thread": locked.pk,
                    "state": locked.state,
                    "attachment": attachment.pk if attachment else None,
                },
            )
    except Exception:
        _discard(attachment)
        raise
    thread.state, thread.updated_at = locked.state, locked.updated_at
    return message


def thread_mark_read(*, by: User, thread: Thread, up_to: datetime) -> None:
    """Move the reader's marker to the newest message they were shown (never back). Part
    of a read the selector has recorded; no audit event of its own."""
    if not policies.can_view_thread(by, thread):
        raise PermissionDenied
    try:
        with transaction.atomic():
            _mark_read(thread, by, up_to)
    except IntegrityError:  # two tabs created the marker at once: the other one won
        with transaction.atomic():
            _mark_read(thread, by, up_to)


# --- Handling by staff and the patient ------------------------------------------------------------


def _locked(thread: Thread) -> Thread:
    return (
        Thread.objects.select_for_update(of=("self",))
        .select_related("patient__user")
        .get(pk=thread.pk)
    )


def _set_state(by: User, thread: Thread, state: str, *, what: str) -> Thread:
    with transaction.atomic():
        locked = _locked(thread)
        if locked.state == state:
            return locked
        if not locked.can_move_to(state):
            raise ValidationError(
                _("A conversation that is %(current)s cannot be made %(target)s.")
                % {
                    "current": ThreadState(locked.state).label.lower(),
                    "target": ThreadState(state).label.lower(),
                },
                code="transition",
            )
        previous = locked.state
        locked.state = state
        if state == ThreadState.CLOSED:
            locked.closed_at, locked.closed_by = timezone.now(), by
        else:
            locked.closed_at, locked.closed_by = None, None
        locked.save(update_fields=["state", "closed_at", "closed_by", "updated_at"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=locked,
            patient=locked.patient.user,
            detail={"what": what, "from": previous, "to": state},
        )
    return locked


def thread_set_state(*, by: User, thread: Thread, state: str) -> Thread:
    """Staff move a thread along TRANSITIONS (e.g. waiting for the patient, closed)."""
    if not policies.can_manage_thread(by, thread):
        raise PermissionDenied
    if state not in ThreadState.values:
        raise ValidationError({"state": _("Choose a state.")})
    return _set_state(by, thread, state, what="message_thread_state")


def thread_close(*, by: User, thread: Thread) -> Thread:
    """The patient (or staff) closes a thread: nothing more is written until reopened."""
    if not policies.can_close_thread(by, thread):
        raise PermissionDenied
    return _set_state(by, thread, ThreadState.CLOSED, what="message_thread_close")


def thread_reopen(*, by: User, thread: Thread) -> Thread:
    """A closed thread becomes open again (the clinic owes the next answer)."""
    if not policies.can_close_thread(by, thread):
        raise PermissionDenied
    return _set_state(by, thread, ThreadState.OPEN, what="message_thread_reopen")


def thread_take(*, by: User, thread: Thread, take: bool = True) -> Thread:
    """A member of staff takes a thread (from whoever had it) or gives it back."""
    if not policies.can_manage_thread(by, thread):
        raise PermissionDenied
    with transaction.atomic():
        locked = _locked(thread)
        previous = locked.assigned_to_id
        if take:
            locked.assigned_to = by
        elif previous == by.pk:
            locked.assigned_to = None
        else:
            raise ValidationError(_("Only the person who took a conversation can give it back."))
        if locked.assigned_to_id == previous:
            return locked
        locked.save(update_fields=["assigned_to", "updated_at"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=locked,
            patient=locked.patient.user,
            detail={
                "what": "message_thread_assign",
                "from": previous,
                "to": locked.assigned_to_id,
            },
        )
    return locked


def thread_route(*, by: User, thread: Thread, team: str) -> Thread:
    """Send a thread to the other team (reception ↔ doctors and nurses). It becomes
    untaken; the sender may no longer see it. The care team must exist."""
    if not policies.can_manage_thread(by, thread):
        raise PermissionDenied
    if team not in Team.values:
        raise ValidationError({"team": _("Choose where to send the conversation.")})
    with transaction.atomic():
        locked = _locked(thread)
        if locked.team == team:
            return locked
        if team == Team.CARE and not selectors.care_team_exists(locked.patient, locked.doctor):
            raise ValidationError(
                {
                    "team": _(
                        "This patient has no doctors or nurses yet. Assign the patient's "
                        "department first."
                    )
                }
            )
        previous = locked.team
        locked.team = team
        locked.assigned_to = None
        locked.save(update_fields=["team", "assigned_to", "updated_at"])
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=locked,
            patient=locked.patient.user,
            detail={"what": "message_thread_route", "from": previous, "to": team},
        )
    return locked
