"""Reads of secure-messaging threads, already filtered to what the asking user may see.

The single access path to threads (policies in accounts.policies: `can_view_thread`):

- A patient sees only their own threads.
- Reception sees the threads routed to reception; doctors and nurses those routed to the
  care team of patients in their care; a doctor also every thread that names them (the
  appointment's doctor, the prescriber). Administrators see none.

A missing thread and someone else's look the same: 404, and the attempt is recorded
(DENIED, with the patient concerned). Every read of messages is recorded (VIEW: a thread
with its patient, a list with the ids shown); a download of an attachment is recorded
as DOWNLOAD. A poll that finds nothing new is checked but not recorded (it shows
nothing); one that brings new messages is recorded like the page.

The records a patient may link a thread to are read through scheduling's, records' and
payments' selectors: only the patient's own appointments, prescriptions, released
results and invoices.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.http import Http404
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts import selectors as account_selectors
from accounts.models import PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from telemedicine.models import (
    AboutKind,
    MessageAttachment,
    Team,
    Thread,
    ThreadMessage,
    ThreadRead,
    ThreadState,
)

INBOX_LIMIT = 200
QUEUE_LIMIT = 200
MESSAGES_LIMIT = 500
CHOICES_LIMIT = 20

# The staff queue's views: (key, label, filter).
QUEUE_VIEWS = ("waiting", "mine", "unassigned", "patient", "closed")
CLINIC_TURN = (ThreadState.OPEN, ThreadState.WAITING_CLINIC)


# --- Recording ---------------------------------------------------------------------------------


def deny(user: Any, what: str, *, obj: Any = None, patient: Any = None, **detail: Any) -> Http404:
    """A refusal: recorded (with the patient concerned, if any) and answered like a page
    that does not exist, so ids cannot be probed."""
    audit_record(
        actor=user,
        action=AuditAction.DENIED,
        obj=obj,
        object_type="" if obj is not None else "page",
        patient=patient,
        detail={"what": what, **detail},
    )
    return Http404()


def _record_thread(user: Any, thread: Thread, what: str, **detail: Any) -> None:
    audit_record(
        actor=user,
        action=AuditAction.VIEW,
        obj=thread,
        patient=thread.patient.user,
        detail={"what": what, **detail},
    )


def _record_list(user: Any, what: str, threads: list[Thread], **detail: Any) -> None:
    patients = {t.patient.user_id for t in threads}
    audit_record(
        actor=user,
        action=AuditAction.VIEW,
        object_type=Thread._meta.label_lower,
        # A patient's own inbox names them; a staff queue spans patients (ids say whose).
        patient=threads[0].patient.user if len(patients) == 1 else None,
        detail={"what": what, "list": True, "ids": [str(t.pk) for t in threads][:200], **detail},
    )


def _key(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _own_profile(user: Any) -> PatientProfile | None:
    if getattr(user, "role", None) != Role.PATIENT or not user.is_active:
        return None
    return getattr(user, "patient_profile", None)


def is_patient(user: Any) -> bool:
    return _own_profile(user) is not None


# --- Querysets ----------------------------------------------------------------------------------


def _threads() -> QuerySet[Thread]:
    return Thread.objects.select_related(
        "patient__user",
        "doctor__staff_profile",
        "assigned_to__staff_profile",
    )


def threads_visible_to(user: Any) -> QuerySet[Thread]:
    """The threads this user may read (see the module's docstring); none for others."""
    profile = _own_profile(user)
    if profile is not None:
        return _threads().filter(patient=profile)
    if not policies.can_use_message_queue(user):
        return Thread.objects.none()
    if user.role == Role.RECEPTION:
        visible = Q(team=Team.RECEPTION)
    else:
        in_care = account_selectors.patients_in_care_of(user).values("pk")
        visible = Q(team=Team.CARE, patient__in=in_care)
        if user.role == Role.DOCTOR:
            visible |= Q(doctor=user)
    return _threads().filter(visible).exclude(patient__user=user)


def _with_unread(queryset: QuerySet[Thread], user: Any, *, patient_side: bool) -> QuerySet[Thread]:
    """Annotate `read_at` (this user's marker) and `unread` (the other side wrote after
    it). One subquery: the page's query count does not grow with the rows."""
    marker = ThreadRead.objects.filter(thread=OuterRef("pk"), user=user).values("read_at")[:1]
    other = "last_clinic_message_at" if patient_side else "last_patient_message_at"
    queryset = queryset.annotate(read_at=Subquery(marker))
    unread = Q(**{f"{other}__isnull": False}) & (
        Q(read_at__isnull=True) | Q(**{f"{other}__gt": F("read_at")})
    )
    return queryset.annotate(unread=ExpressionWrapper(unread, output_field=BooleanField()))


# --- The patient's inbox -----------------------------------------------------------------------


@dataclass
class Inbox:
    threads: list[Thread]
    unread: int  # threads with messages from the clinic the patient has not read


def inbox(user: Any) -> Inbox:
    """The patient's threads, newest activity first, each marked `unread`."""
    profile = _own_profile(user)
    if profile is None:
        raise deny(user, "message_inbox")
    rows = list(
        _with_unread(threads_visible_to(user), user, patient_side=True).order_by(
            "-last_message_at", "-id"
        )[:INBOX_LIMIT]
    )
    if rows:
        _record_list(user, "message_threads", rows)
    return Inbox(threads=rows, unread=sum(1 for t in rows if t.unread))


def unread_count(user: Any) -> int:
    """How many of the user's threads have something new for them (not recorded: a
    number, no content)."""
    patient_side = is_patient(user)
    if not patient_side and not policies.can_use_message_queue(user):
        return 0
    queryset = _with_unread(threads_visible_to(user), user, patient_side=patient_side)
    if not patient_side:
        queryset = queryset.exclude(state=ThreadState.CLOSED)
    return queryset.filter(unread=True).count()


# --- The staff queue ---------------------------------------------------------------------------


@dataclass
class Queue:
    view: str
    threads: list[Thread]
    counts: dict[str, int]  # per view
    unread: int


def _view_filter(view: str, user: Any) -> Q:
    return {
        "waiting": Q(state__in=CLINIC_TURN),
        "mine": Q(assigned_to=user) & ~Q(state=ThreadState.CLOSED),
        "unassigned": Q(assigned_to__isnull=True) & ~Q(state=ThreadState.CLOSED),
        "patient": Q(state=ThreadState.WAITING_PATIENT),
        "closed": Q(state=ThreadState.CLOSED),
    }[view]


def staff_queue(user: Any, view: str = "waiting") -> Queue:
    """The threads routed to this member of staff's team, in one of QUEUE_VIEWS, with a
    count per view and an unread marker per thread. Four queries and the audit record."""
    if not policies.can_use_message_queue(user):
        raise deny(user, "message_queue")
    if view not in QUEUE_VIEWS:
        view = "waiting"
    visible = threads_visible_to(user)
    counts = visible.aggregate(
        **{key: Count("pk", filter=_view_filter(key, user)) for key in QUEUE_VIEWS}
    )
    ordering = ("-last_message_at", "-id") if view == "closed" else ("last_message_at", "id")
    rows = list(
        _with_unread(visible.filter(_view_filter(view, user)), user, patient_side=False).order_by(
            *ordering
        )[:QUEUE_LIMIT]
    )
    if rows:
        _record_list(user, "message_queue", rows, view=view)
    return Queue(view=view, threads=rows, counts=counts, unread=sum(1 for t in rows if t.unread))


# --- One thread --------------------------------------------------------------------------------


def thread_get_for(user: Any, public_id: Any, *, purpose: str = "view") -> Thread:
    """The thread if the user may read it; 404 for missing and forbidden alike (a
    forbidden attempt recorded with its patient). `purpose="view"` records the reading;
    "act" (a form posting to it, a poll) does not: what is then shown is recorded."""
    key = _key(public_id)
    thread = _threads().filter(public_id=key).first() if key is not None else None
    if thread is None:
        raise deny(user, "message_thread", found=False)
    if not policies.can_view_thread(user, thread):
        raise deny(user, "message_thread", obj=thread, patient=thread.patient.user)
    if purpose == "view":
        _record_thread(user, thread, "message_thread")
    return thread


def thread_version(thread: Thread) -> str:
    """Changes whenever anything shown on the thread's page changes (a message, its
    state, who took it): polls compare it."""
    return str(int(thread.updated_at.timestamp() * 1_000_000))


@dataclass
class ThreadPage:
    thread: Thread
    messages: list[ThreadMessage]
    read_at: datetime | None  # the reader's marker before this page: newer ones are new
    version: str
    new_count: int = 0  # messages from the other side after read_at
    truncated: bool = False


def _messages(thread: Thread) -> tuple[list[ThreadMessage], bool]:
    queryset = (
        ThreadMessage.objects.filter(thread=thread)
        .select_related("author__staff_profile")
        .prefetch_related(
            Prefetch("attachments", queryset=MessageAttachment.objects.order_by("id"))
        )
        .order_by("-created_at", "-id")
    )
    newest = list(queryset[: MESSAGES_LIMIT + 1])
    truncated = len(newest) > MESSAGES_LIMIT
    return list(reversed(newest[:MESSAGES_LIMIT])), truncated


def _page(user: Any, thread: Thread) -> ThreadPage:
    marker = ThreadRead.objects.filter(thread=thread, user=user).values_list("read_at", flat=True)
    read_at = marker.first()
    messages, truncated = _messages(thread)
    own_side = is_patient(user)
    new_count = 0
    for message in messages:
        message.is_new = message.from_patient != own_side and (
            read_at is None or message.created_at > read_at
        )
        new_count += message.is_new
    return ThreadPage(
        thread=thread,
        messages=messages,
        read_at=read_at,
        version=thread_version(thread),
        new_count=new_count,
        truncated=truncated,
    )


def thread_page(user: Any, public_id: Any) -> ThreadPage:
    """A thread with its messages (the newest MESSAGES_LIMIT) and attachments, each
    message marked `is_new` for this reader. Recorded as a view."""
    thread = thread_get_for(user, public_id)
    return _page(user, thread)


def thread_poll(user: Any, public_id: Any, version: str) -> ThreadPage | None:
    """None if nothing changed since `version` (checked, not recorded); otherwise the
    page as `thread_page` gives it, recorded."""
    thread = thread_get_for(user, public_id, purpose="act")
    if version and version == thread_version(thread):
        return None
    _record_thread(user, thread, "message_thread", poll=True)
    return _page(user, thread)


def attachment_get_for(user: Any, public_id: Any) -> MessageAttachment:
    """An attached file, for whoever may read its thread; recorded as a download."""
    key = _key(public_id)
    attachment = (
        MessageAttachment.objects.select_related("message__thread__patient__user")
        .filter(public_id=key)
        .first()
        if key is not None
        else None
    )
    if attachment is None:
        raise deny(user, "message_attachment", found=False)
    thread = attachment.message.thread
    if not policies.can_view_thread(user, thread):
        raise deny(user, "message_attachment", obj=attachment, patient=thread.patient.user)
    audit_record(
        actor=user,
        action=AuditAction.DOWNLOAD,
        obj=attachment,
        patient=thread.patient.user,
        detail={"what": "message_attachment", "thread": thread.pk},
    )
    return attachment


# --- What a thread may be about ---------------------------------------------------------------


@dataclass(frozen=True)
class Linkable:
    kind: str
    public_id: uuid.UUID
    label: str
    doctor: User | None = None  # the clinician the record names (routing)


@dataclass
class Linkables:
    appointments: list[Linkable] = field(default_factory=list)
    prescriptions: list[Linkable] = field(default_factory=list)
    lab_reports: list[Linkable] = field(default_factory=list)
    invoices: list[Linkable] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Linkable]:
        return {
            AboutKind.APPOINTMENT: self.appointments,
            AboutKind.PRESCRIPTION: self.prescriptions,
            AboutKind.LAB_REPORT: self.lab_reports,
            AboutKind.INVOICE: self.invoices,
        }.get(kind, [])

    def find(self, kind: str, public_id: Any) -> Linkable | None:
        key = _key(public_id)
        return next((item for item in self.of_kind(kind) if item.public_id == key), None)


def _local(moment: datetime | None, zone: str = "", fmt: str = "j E Y, H:i") -> str:
    if moment is None:
        return ""
    return formats.date_format(timezone.localtime(moment, _zone(zone)), fmt)


def _zone(name: str):  # noqa: ANN202
    from zoneinfo import ZoneInfo

    return ZoneInfo(name or settings.CLINIC_TIME_ZONE)


def _doctor(user: Any) -> User | None:
    return user if user is not None and getattr(user, "role", None) == Role.DOCTOR else None


def linkable_records(user: Any) -> Linkables:
    """The patient's own records a thread may be about, newest first (CHOICES_LIMIT of
    each kind): appointments (not expired holds), prescriptions, released results,
    invoices (open ones first)."""
    from payments import selectors as payments_selectors
    from records import selectors as records_selectors
    from records import selectors_care as care_selectors
    from scheduling.models import AppointmentStatus
    from scheduling.selectors import patient as scheduling_selectors

    if _own_profile(user) is None:
        return Linkables()
    appointments = (
        scheduling_selectors.appointments_visible_to(user)
        .exclude(status__in=[AppointmentStatus.HELD, AppointmentStatus.EXPIRED])
        .order_by("-during")[:CHOICES_LIMIT]
    )
    reports = records_selectors.lab_reports_visible_to(user).order_by("-issued_at", "-id")[
        :CHOICES_LIMIT
    ]
    prescriptions = care_selectors.my_prescriptions(user)[:CHOICES_LIMIT]
    invoices = payments_selectors.invoices_of(user.patient_profile)[:CHOICES_LIMIT]
    return Linkables(
        appointments=[
            Linkable(
                AboutKind.APPOINTMENT,
                a.public_id,
                _("%(when)s — %(doctor)s, %(type)s (%(status)s)")
                % {
                    "when": _local(a.starts_at, a.location.time_zone),
                    "doctor": a.doctor.display_name(),
                    "type": a.consultation_type.name,
                    "status": a.get_status_display(),
                },
                _doctor(a.doctor),
            )
            for a in appointments
        ],
        prescriptions=[
            Linkable(
                AboutKind.PRESCRIPTION,
                p.public_id,
                _("%(medication)s, prescribed %(when)s")
                % {"medication": p.medication, "when": _local(p.issued_at, fmt="j E Y")},
                _doctor(p.prescriber),
            )
            for p in prescriptions
        ],
        lab_reports=[
            Linkable(
                AboutKind.LAB_REPORT,
                r.public_id,
                _("%(test)s, %(when)s")
                % {"test": r.test_type.name, "when": _local(r.issued_at, fmt="j E Y")},
                _doctor(r.ordered_by) or _doctor(r.reviewed_by),
            )
            for r in reports
        ],
        invoices=[
            Linkable(
                AboutKind.INVOICE,
                i.public_id,
                _("Invoice %(number)s of %(when)s: %(amount)s %(currency)s (%(status)s)")
                % {
                    "number": i.number,
                    "when": _local(i.created_at, fmt="j E Y"),
                    "amount": formats.number_format(i.amount, 2, force_grouping=True),
                    "currency": i.currency,
                    "status": i.get_status_display(),
                },
            )
            for i in invoices
        ],
    )


def care_team_exists(profile: PatientProfile, doctor: User | None = None) -> bool:
    """Whether any clinician would see a thread routed to the patient's care team: a
    department, a doctor the record names, or a doctor granted the patient's record."""
    if profile.department_id is not None or doctor is not None:
        return True
    from guardian.shortcuts import get_users_with_perms

    granted = get_users_with_perms(
        profile,
        only_with_perms_in=[policies.RECORD_PERMISSION_CODENAME],
        with_superusers=False,
        with_group_users=False,
    )
    return granted.filter(role=Role.DOCTOR, is_active=True).exists()
