"""Video consultation pages: the waiting room and video page (one page for the patient,
one layout for the doctor with the consultation panel beside the video), its live
status, the room token, recording consent, ending, and the doctor's waiting list.

Thin views: one selector (which checks `accounts.policies`, answers 404 for missing and
forbidden alike and records the refusal) or one service. Live parts are htmx partials
polled every few seconds; a poll carries the version it shows (`v`) and gets 204 when
nothing changed, so screen readers hear only real changes. The token is answered as
JSON to a POST (with the CSRF token), never put in a URL or the page, and never cached.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from telemedicine import livekit
from telemedicine import selectors_video as selectors
from telemedicine import services_video as services
from telemedicine.forms_video import RecordingConsentForm
from telemedicine.models import ConsultationParty

POLL_SECONDS = 5
WAITING_LIST_POLL_SECONDS = 10


def _optional_url(name: str, *args: Any, query: str = "") -> str:
    """A page another part of telemedicine provides (chat, the consultation panel), or
    "" while it does not exist."""
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return ""
    return f"{url}?{query}" if query else url


def _status_context(request: HttpRequest, appointment: Any) -> dict[str, Any]:
    party = selectors.party_of(request.user, appointment)
    consultation = selectors.consultation_for(appointment)
    return {
        "appointment": appointment,
        "status": selectors.video_status(consultation, appointment, viewer_party=party),
        "poll_seconds": POLL_SECONDS,
        "party": party,
    }


def _js_texts() -> dict[str, str]:
    """Words video-room.js shows (it has no translations of its own)."""
    return {
        "startsIn": _("Starts in %(time)s"),
        "timeLeft": _("Time left: %(time)s"),
        "overtime": _("Planned end passed. The room closes in %(time)s"),
        "closed": _("The room is closed."),
        "connecting": _("Connecting…"),
        "connected": _("Connected"),
        "reconnecting": _("Connection lost, reconnecting…"),
        "disconnected": _("Not connected"),
        "waitingRoom": _("In the waiting room (no video connection)"),
        "mediaOff": _(
            "Video is not available at the moment: the video server is not set up. You "
            "stay in the waiting room and the doctor can see you are here. You can also "
            "write to the clinic."
        ),
        "unreachable": _(
            "We could not reach the video server. Check your internet connection and try "
            "again, switch to audio only, or write to the clinic."
        ),
        "tokenFailed": _("We could not let you into the room. Reload the page to try again."),
        "ended": _("This video consultation has ended."),
        "qualityExcellent": _("Excellent"),
        "qualityGood": _("Good"),
        "qualityPoor": _("Poor"),
        "qualityLost": _("Lost"),
        "qualityUnknown": _("Unknown"),
        "cameraOn": _("Turn camera off"),
        "cameraOff": _("Turn camera on"),
        "micOn": _("Mute microphone"),
        "micOff": _("Unmute microphone"),
        "shareStart": _("Share screen"),
        "shareStop": _("Stop sharing"),
        "audioOnlyOn": _("Back to video"),
        "audioOnlyOff": _("Audio only"),
        "permissionDenied": _(
            "The browser did not allow the camera or microphone. See “Problems with the "
            "camera, microphone or connection” below."
        ),
        "remoteJoined": _("The other participant is connected."),
        "remoteLeft": _("The other participant left the call."),
    }


def _unchanged(request: HttpRequest, version: str) -> bool:
    return bool(request.htmx) and request.GET.get("v") == version


@login_required
@require_GET
def video_room(request: HttpRequest, public_id: Any) -> HttpResponse:
    appointment = selectors.video_appointment_get_for(request.user, public_id)
    consultation = services.consultation_ensure(appointment=appointment)
    context = _status_context(request, appointment)
    party = context["party"]
    status = context["status"]
    consents = selectors.recording_consents(consultation)
    mine = consents.get(party)
    context.update(
        {
            "consultation": consultation,
            "when": selectors.when_text(appointment),
            "doctor_name": appointment.doctor.display_name(),
            "patient_name": appointment.patient.short_name(),
            "is_doctor": party == ConsultationParty.DOCTOR,
            "media_enabled": livekit.media_enabled(),
            "recording_consents": consents,
            "my_recording_consent": mine if mine is not None and mine.in_force else None,
            "recording_allowed": selectors.recording_allowed(consultation),
            "recording_form": RecordingConsentForm(),
            "chat_url": _optional_url(
                "telemedicine:thread_new",
                query=f"topic=appointment&about={appointment.public_id}",
            ),
            "consult_panel_url": _optional_url("telemedicine:consult_panel", appointment.public_id)
            if party == ConsultationParty.DOCTOR
            else "",
            "video_config": {
                "tokenUrl": reverse("telemedicine:video_token", args=[appointment.public_id]),
                "livekitUrl": settings.LIVEKIT_URL if livekit.media_enabled() else "",
                "role": party,
                "opensAt": status.opens_at.isoformat(),
                "startsAt": status.starts_at.isoformat(),
                "endsAt": status.ends_at.isoformat(),
                "closesAt": status.closes_at.isoformat(),
                "texts": _js_texts(),
            },
        }
    )
    template = (
        "telemedicine/video/room_doctor.html"
        if party == ConsultationParty.DOCTOR
        else "telemedicine/video/room_patient.html"
    )
    return render(request, template, context)


@login_required
@require_GET
def video_status(request: HttpRequest, public_id: Any) -> HttpResponse:
    """The live part of the page (polled; not audited: the page load is)."""
    appointment = selectors.video_appointment_get_for(
        request.user, public_id, what="video_status", record=False
    )
    context = _status_context(request, appointment)
    if _unchanged(request, context["status"].version):
        return HttpResponse(status=204)
    return render(request, "telemedicine/video/_status.html", context)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def video_token(request: HttpRequest, public_id: Any) -> HttpResponse:
    """POST: a fresh room token for the appointment's patient or doctor, in the window.
    A GET (a typed address) only leads back to the page; nothing is minted."""
    if request.method != "POST":
        selectors.video_appointment_get_for(request.user, public_id, record=False)
        return redirect("telemedicine:video_room", public_id=public_id)
    appointment = selectors.video_appointment_get_for(
        request.user, public_id, what="video_token", join=True, record=False
    )
    try:
        joined = services.consultation_join(by=request.user, appointment=appointment)
    except PermissionDenied as exc:  # the window closed between the two checks
        raise selectors.deny(
            request.user, "video_token", obj=appointment, patient=appointment.patient.user
        ) from exc
    except ValidationError as exc:
        response = JsonResponse({"token": None, "ended": True, "message": " ".join(exc.messages)})
        response.status_code = 409
    else:
        token = joined.token
        payload: dict[str, Any] = {
            "token": token.jwt if token else None,
            "url": settings.LIVEKIT_URL if livekit.media_enabled() else "",
            "media": livekit.media_enabled() and token is not None,
            "state": joined.consultation.state,
        }
        if token is not None:
            payload["expiresAt"] = token.expires_at.isoformat()
            payload["refreshIn"] = max(30, int(token.ttl.total_seconds()) - 120)
        if not payload["media"] and joined.party == ConsultationParty.DOCTOR:
            payload["message"] = _(
                "Video is not available at the moment: the video server is not set up. The "
                "patient can see that you have joined."
            )
        elif not payload["media"]:
            payload["message"] = _(
                "Video is not available at the moment. You are in the waiting room and your "
                "doctor can see you are here; you can also write to the clinic."
            )
        response = JsonResponse(payload)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def video_recording_consent(request: HttpRequest, public_id: Any) -> HttpResponse:
    appointment = selectors.video_appointment_get_for(
        request.user, public_id, what="recording_consent", record=False
    )
    if request.method == "POST":
        form = RecordingConsentForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Choose whether you agree to recording."))
        else:
            try:
                services.recording_consent_set(
                    by=request.user, appointment=appointment, give=form.give
                )
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            except PermissionDenied as exc:
                raise selectors.deny(
                    request.user,
                    "recording_consent",
                    obj=appointment,
                    patient=appointment.patient.user,
                ) from exc
            else:
                messages.success(
                    request,
                    _("Your consent to recording is recorded.")
                    if form.give
                    else _("Your consent to recording is withdrawn."),
                )
    return redirect("telemedicine:video_room", public_id=appointment.public_id)


@login_required
@require_http_methods(["GET", "POST"])
def video_end(request: HttpRequest, public_id: Any) -> HttpResponse:
    appointment = selectors.video_appointment_get_for(
        request.user, public_id, what="video_end", record=False
    )
    if request.method == "POST":
        try:
            services.consultation_end(by=request.user, appointment=appointment)
        except PermissionDenied as exc:
            raise selectors.deny(
                request.user, "video_end", obj=appointment, patient=appointment.patient.user
            ) from exc
        messages.success(request, _("The video consultation has ended for both of you."))
    return redirect("telemedicine:video_room", public_id=appointment.public_id)


def _waiting_context(request: HttpRequest, *, record: bool) -> dict[str, Any]:
    rows = selectors.video_waiting_list_for(request.user, record=record)
    version = "|".join(f"{r.appointment.pk}:{r.status.version}" for r in rows)
    return {
        "rows": rows,
        "version": hashlib.sha256(version.encode()).hexdigest()[:16],
        "poll_seconds": WAITING_LIST_POLL_SECONDS,
    }


@login_required
@require_GET
def video_waiting_list(request: HttpRequest) -> HttpResponse:
    """A doctor's video consultations of the next hours: who is waiting, who is in."""
    return render(
        request, "telemedicine/video/waiting_list.html", _waiting_context(request, record=True)
    )


@login_required
@require_GET
def video_waiting_list_rows(request: HttpRequest) -> HttpResponse:
    context = _waiting_context(request, record=False)
    if _unchanged(request, context["version"]):
        return HttpResponse(status=204)
    return render(request, "telemedicine/video/_waiting_rows.html", context)
