"""Secure messaging pages.

Patients: their inbox (threads with unread markers and states), a new thread (topic,
optionally one of their own records, subject, message, a file), a thread with its
messages (new ones arrive by htmx polling and are announced in a live region), a reply,
closing and reopening. Staff (reception, doctors, nurses): the queue of threads routed
to them, a thread with the same reply form, taking a thread, setting its state and
sending it to the other team. Files attached to messages are downloaded by whoever may
read the thread.

Thin views: parse with a form, call one selector (which checks access, answers 404 for
missing and forbidden alike and records the reading) or one service (which checks who
may act and refuses bad input with a message, changing nothing), then render. Forms
with a file are csrf_exempt on the outside so the size-limited upload handler is in
place before the body is read; the token is checked by `csrf_protect` inside.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from records.uploads import limit_uploads
from telemedicine import selectors_messaging as selectors
from telemedicine import services_messaging as services
from telemedicine.forms_messaging import (
    ReplyForm,
    RouteForm,
    StateForm,
    TakeForm,
    ThreadStartForm,
)
from telemedicine.models import TRANSITIONS, AboutKind, Team, ThreadState, Topic

logger = logging.getLogger(__name__)

POLL_SECONDS = 10
POLL_SECONDS_CLOSED = 30
EXTENSIONS = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}

# Each state in words and a badge (its glyph comes from CSS): never colour alone.
STATE_BADGES = {
    ThreadState.OPEN: "info",
    ThreadState.WAITING_CLINIC: "pending",
    ThreadState.WAITING_PATIENT: "warning",
    ThreadState.CLOSED: "neutral",
}


def _patient_state_label(state: str) -> str:
    return {
        ThreadState.OPEN: _("Sent: the clinic will answer"),
        ThreadState.WAITING_CLINIC: _("Waiting for the clinic"),
        ThreadState.WAITING_PATIENT: _("Waiting for your reply"),
        ThreadState.CLOSED: _("Closed"),
    }.get(state, "")


def _team_label(thread: Any, *, for_patient: bool) -> str:
    if thread.team == Team.CARE:
        return _("Your doctors and nurses") if for_patient else _("Doctors and nurses")
    if thread.doctor_id:
        return _("Reception and your doctor") if for_patient else _("Reception and the doctor")
    return _("Reception")


# --- Presentation helpers --------------------------------------------------------------------


def _local(moment: datetime | None, fmt: str = "j E Y, H:i") -> str:
    if moment is None:
        return ""
    return formats.date_format(moment.astimezone(ZoneInfo(settings.CLINIC_TIME_ZONE)), fmt)


def _decorate_thread(thread: Any, *, for_patient: bool) -> None:
    thread.badge_variant = STATE_BADGES.get(thread.state, "neutral")
    thread.state_text = (
        _patient_state_label(thread.state) if for_patient else thread.get_state_display()
    )
    thread.topic_text = thread.get_topic_display()
    thread.team_text = _team_label(thread, for_patient=for_patient)
    thread.last_text = _local(thread.last_message_at)
    thread.started_text = _local(thread.created_at)
    thread.closed_text = _local(thread.closed_at)
    thread.patient_name = thread.patient.short_name()
    thread.doctor_name = thread.doctor.display_name() if thread.doctor_id else ""
    thread.assignee_name = thread.assigned_to.display_name() if thread.assigned_to_id else ""
    thread.about_url = _about_url(thread, for_patient=for_patient)


def _about_url(thread: Any, *, for_patient: bool) -> str:
    """Where the record a thread is about is shown (that page checks access itself)."""
    if not thread.about_id:
        return ""
    if for_patient:
        names = {
            AboutKind.APPOINTMENT: ("scheduling:appointment_detail", [thread.about_id]),
            AboutKind.PRESCRIPTION: ("records:care_prescriptions", []),
            AboutKind.LAB_REPORT: ("records:result_detail", [thread.about_id]),
            AboutKind.INVOICE: ("payments:invoices", []),
        }
    else:
        names = {
            AboutKind.APPOINTMENT: ("scheduling:staff_appointment", [thread.about_id]),
            AboutKind.PRESCRIPTION: ("records:care_patient", [thread.patient_id]),
            AboutKind.LAB_REPORT: ("records:staff_result", [thread.about_id]),
        }
    name, args = names.get(thread.about_kind, ("", []))
    try:
        return reverse(name, args=args) if name else ""
    except Exception:  # noqa: BLE001 - a page another part of the portal may not have yet
        return ""


def _decorate_messages(page: selectors.ThreadPage, viewer: Any, *, for_patient: bool) -> None:
    for message in page.messages:
        message.sent_text = _local(message.created_at)
        message.mine = message.author_id == viewer.pk
        if message.mine:
            message.who = _("You")
        elif message.from_patient:
            message.who = page.thread.patient.short_name() if not for_patient else _("You")
        else:
            author = message.author
            role = author.get_role_display()
            message.who = f"{author.display_name()}, {role}"
        for attachment in message.attachments.all():
            attachment.kind_text = EXTENSIONS.get(attachment.content_type, "file").upper()
            attachment.size_text = formats.number_format(
                max(1, round(attachment.size / 1024)), force_grouping=True
            )


def _apply_errors(form: Any, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _too_large(form: Any) -> None:
    form.is_valid()
    form.errors.pop("file", None)
    form.add_error(
        "file",
        _("The file is too large: the limit is %(mb)d MB.")
        % {"mb": services.ATTACHMENT_MAX_BYTES // (1024 * 1024)},
    )


def _nav_template(user: Any) -> str:
    return (
        "accounts/_patient_nav.html" if selectors.is_patient(user) else "accounts/_staff_nav.html"
    )


# --- The patient's inbox and new threads -----------------------------------------------------


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    box = selectors.inbox(request.user)
    for thread in box.threads:
        _decorate_thread(thread, for_patient=True)
    return render(request, "telemedicine/messaging/inbox.html", {"inbox": box})


@csrf_exempt  # the token is checked below, after the size-limited upload handler is in
@login_required
@require_http_methods(["GET", "POST"])
def thread_new(request: HttpRequest) -> HttpResponse:
    handler = limit_uploads(request, services.ATTACHMENT_MAX_BYTES)
    return _thread_new(request, handler)


@csrf_protect
def _thread_new(request: HttpRequest, handler: Any) -> HttpResponse:
    user = request.user
    if not selectors.is_patient(user):
        raise selectors.deny(user, "message_thread_new")
    linkables = selectors.linkable_records(user)
    initial: dict[str, str] = {}
    topic = request.GET.get("topic", "")
    if topic in Topic.values:
        initial["topic"] = topic
    about = request.GET.get("about", "")
    for kind in AboutKind.values if about else ():
        found = linkables.find(kind, about)
        if found is not None:  # only one of the patient's own records is preselected
            initial["about"] = f"{kind}:{found.public_id}"
            break
    form = ThreadStartForm(
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
        linkables=linkables,
        initial=initial,
    )
    context = {"form": form}
    template = "telemedicine/messaging/thread_new.html"
    if request.method == "GET":
        return render(request, template, context)
    if handler.too_large:
        _too_large(form)
        return render(request, template, context, status=400)
    if not form.is_valid():
        return render(request, template, context, status=400)
    about_kind, about_id = form.cleaned_data["about"]
    try:
        thread = services.thread_start(
            by=user,
            patient=user.patient_profile,
            topic=form.cleaned_data["topic"],
            subject=form.cleaned_data["subject"],
            body=form.cleaned_data["body"],
            about_kind=about_kind,
            about_id=about_id or None,
            upload=form.cleaned_data.get("file"),
        )
    except ValidationError as exc:
        _apply_errors(form, exc)
        return render(request, template, context, status=400)
    messages.success(request, _("Your message is sent. The clinic will answer here."))
    return redirect("telemedicine:thread", public_id=thread.public_id)


# --- The staff queue -------------------------------------------------------------------------


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    result = selectors.staff_queue(request.user, request.GET.get("view", "waiting"))
    for thread in result.threads:
        _decorate_thread(thread, for_patient=False)
    views = [
        ("waiting", _("Waiting for an answer")),
        ("mine", _("Taken by me")),
        ("unassigned", _("Not taken")),
        ("patient", _("Waiting for the patient")),
        ("closed", _("Closed")),
    ]
    tabs = [
        {
            "key": key,
            "label": label,
            "count": result.counts.get(key, 0),
            "url": f"{reverse('telemedicine:queue')}?view={key}",
            "current": key == result.view,
        }
        for key, label in views
    ]
    current_label = dict(views)[result.view]
    return render(
        request,
        "telemedicine/messaging/queue.html",
        {"queue": result, "tabs": tabs, "current_label": current_label},
    )


# --- One thread ------------------------------------------------------------------------------


def _thread_context(
    request: HttpRequest,
    page: selectors.ThreadPage,
    *,
    reply_form: ReplyForm | None = None,
    state_form: StateForm | None = None,
    route_form: RouteForm | None = None,
) -> dict[str, Any]:
    user = request.user
    for_patient = selectors.is_patient(user)
    thread = page.thread
    _decorate_thread(thread, for_patient=for_patient)
    _decorate_messages(page, user, for_patient=for_patient)
    context: dict[str, Any] = {
        "page": page,
        "thread": thread,
        "for_patient": for_patient,
        "nav_template": _nav_template(user),
        "reply_form": reply_form or ReplyForm(),
        "poll_seconds": POLL_SECONDS_CLOSED if thread.closed else POLL_SECONDS,
        "max_mb": services.ATTACHMENT_MAX_BYTES // (1024 * 1024),
    }
    if not for_patient:
        allowed = TRANSITIONS.get(thread.state, frozenset())
        state_form = state_form or StateForm()
        state_form.fields["state"].choices = [
            (value, label) for value, label in ThreadState.choices if value in allowed
        ]
        route_form = route_form or RouteForm(
            initial={"team": Team.CARE if thread.team == Team.RECEPTION else Team.RECEPTION}
        )
        route_form.fields["team"].choices = [
            (value, label) for value, label in Team.choices if value != thread.team
        ]
        context.update(
            {
                "state_form": state_form,
                "route_form": route_form,
                "taken_by_me": thread.assigned_to_id == user.pk,
            }
        )
    return context


def _mark_read(request: HttpRequest, page: selectors.ThreadPage) -> None:
    if page.messages:
        services.thread_mark_read(
            by=request.user, thread=page.thread, up_to=page.messages[-1].created_at
        )


@login_required
@require_GET
def thread(request: HttpRequest, public_id: str) -> HttpResponse:
    page = selectors.thread_page(request.user, public_id)
    _mark_read(request, page)
    return render(request, "telemedicine/messaging/thread.html", _thread_context(request, page))


@login_required
@require_GET
def thread_poll(request: HttpRequest, public_id: str) -> HttpResponse:
    """The live part of a thread page: 204 while nothing changed (htmx then keeps what
    it shows), otherwise the messages and state again, and a line for screen readers."""
    page = selectors.thread_poll(request.user, public_id, request.GET.get("v", ""))
    if page is None:
        return HttpResponse(status=204)
    _mark_read(request, page)
    context = _thread_context(request, page)
    if page.new_count:
        context["announcement"] = ngettext(
            "%(count)d new message", "%(count)d new messages", page.new_count
        ) % {"count": page.new_count}
    else:
        context["announcement"] = _("The conversation was updated.")
    context["oob_announcement"] = True
    return render(request, "telemedicine/messaging/_thread_live.html", context)


@csrf_exempt  # the token is checked below, after the size-limited upload handler is in
@login_required
@require_http_methods(["GET", "POST"])
def thread_reply(request: HttpRequest, public_id: str) -> HttpResponse:
    handler = limit_uploads(request, services.ATTACHMENT_MAX_BYTES)
    return _thread_reply(request, public_id, handler)


@csrf_protect
def _thread_reply(request: HttpRequest, public_id: str, handler: Any) -> HttpResponse:
    user = request.user
    thread_obj = selectors.thread_get_for(user, public_id, purpose="act")
    if request.method == "GET":
        return redirect("telemedicine:thread", public_id=thread_obj.public_id)
    form = ReplyForm(request.POST, request.FILES)
    error = None
    if handler.too_large:
        _too_large(form)
        error = True
    elif form.is_valid():
        try:
            services.thread_reply(
                by=user,
                thread=thread_obj,
                body=form.cleaned_data["body"],
                upload=form.cleaned_data.get("file"),
            )
        except ValidationError as exc:
            if getattr(exc, "code", None) == "closed":  # closed meanwhile: no form to show
                messages.error(request, exc.messages[0])
                return redirect("telemedicine:thread", public_id=thread_obj.public_id)
            _apply_errors(form, exc)
            error = True
        except PermissionDenied:
            raise selectors.deny(
                user, "message_reply", obj=thread_obj, patient=thread_obj.patient.user
            ) from None
    else:
        error = True
    if error:
        page = selectors.thread_page(user, thread_obj.public_id)
        return render(
            request,
            "telemedicine/messaging/thread.html",
            _thread_context(request, page, reply_form=form),
            status=400,
        )
    messages.success(request, _("Your message is sent."))
    return redirect("telemedicine:thread", public_id=thread_obj.public_id)


def _thread_action(
    request: HttpRequest, public_id: str, *, staff_only: bool, act: Any
) -> HttpResponse:
    """A small POST on a thread (a GET leads back to its page). `act(thread)` calls the
    service and returns a success message; a refused move shows its reason."""
    user = request.user
    thread_obj = selectors.thread_get_for(user, public_id, purpose="act")
    if staff_only and selectors.is_patient(user):
        raise selectors.deny(
            user, "message_thread_action", obj=thread_obj, patient=thread_obj.patient.user
        )
    back = redirect("telemedicine:thread", public_id=thread_obj.public_id)
    if request.method == "GET":
        return back
    try:
        done = act(thread_obj)
    except PermissionDenied:
        raise selectors.deny(
            user, "message_thread_action", obj=thread_obj, patient=thread_obj.patient.user
        ) from None
    except ValidationError as exc:
        for text in exc.messages:
            messages.error(request, text)
        return back
    if done:
        messages.success(request, done)
    if not selectors.threads_visible_to(user).filter(pk=thread_obj.pk).exists():
        return redirect("telemedicine:queue")  # sent to a team this user is not in
    return back


@login_required
@require_http_methods(["GET", "POST"])
def thread_close(request: HttpRequest, public_id: str) -> HttpResponse:
    def act(t: Any) -> str:
        services.thread_close(by=request.user, thread=t)
        return _("The conversation is closed.")

    return _thread_action(request, public_id, staff_only=False, act=act)


@login_required
@require_http_methods(["GET", "POST"])
def thread_reopen(request: HttpRequest, public_id: str) -> HttpResponse:
    def act(t: Any) -> str:
        services.thread_reopen(by=request.user, thread=t)
        return _("The conversation is open again.")

    return _thread_action(request, public_id, staff_only=False, act=act)


@login_required
@require_http_methods(["GET", "POST"])
def thread_take(request: HttpRequest, public_id: str) -> HttpResponse:
    def act(t: Any) -> str:
        form = TakeForm(request.POST)
        if not form.is_valid():
            raise ValidationError(_("Something went wrong. Please try again."))
        take = form.cleaned_data["action"] == "take"
        services.thread_take(by=request.user, thread=t, take=take)
        return _("You have taken this conversation.") if take else _("You gave it back.")

    return _thread_action(request, public_id, staff_only=True, act=act)


@login_required
@require_http_methods(["GET", "POST"])
def thread_state(request: HttpRequest, public_id: str) -> HttpResponse:
    def act(t: Any) -> str:
        form = StateForm(request.POST)
        if not form.is_valid():
            raise ValidationError(_("Choose a state."))
        updated = services.thread_set_state(
            by=request.user, thread=t, state=form.cleaned_data["state"]
        )
        return _("The state is now: %(state)s.") % {"state": updated.get_state_display()}

    return _thread_action(request, public_id, staff_only=True, act=act)


@login_required
@require_http_methods(["GET", "POST"])
def thread_route(request: HttpRequest, public_id: str) -> HttpResponse:
    def act(t: Any) -> str:
        form = RouteForm(request.POST)
        if not form.is_valid():
            raise ValidationError(_("Choose where to send the conversation."))
        updated = services.thread_route(by=request.user, thread=t, team=form.cleaned_data["team"])
        return _("The conversation is sent to: %(team)s.") % {"team": updated.get_team_display()}

    return _thread_action(request, public_id, staff_only=True, act=act)


# --- Attachments -----------------------------------------------------------------------------


@login_required
@require_GET
def attachment(request: HttpRequest, public_id: str) -> HttpResponse:
    item = selectors.attachment_get_for(request.user, public_id)
    with item.file.open("rb") as handle:
        data = handle.read()
    content_type = item.content_type or "application/octet-stream"
    # No personal data in the name: a word and the date only.
    name = f"attachment-{item.created_at:%Y%m%d}.{EXTENSIONS.get(content_type, 'bin')}"
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Length"] = str(len(data))
    return response
