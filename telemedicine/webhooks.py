"""LiveKit's webhook endpoint: room_started, participant_joined, participant_left and
room_finished drive the consultation's state and the audit trail.

LiveKit signs each delivery: the Authorization header is a JWT made with our API key and
secret whose `sha256` claim is the base64 SHA-256 of the body (`WebhookReceiver`). No or
a bad signature, or a body that does not match its hash: 401, nothing changes. A signed
body that is not an event: 400. Each event is applied once, by its id (a redelivery is
answered 200 and changes nothing). No sign-in and no CSRF token: the signature is the
authentication.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from telemedicine import livekit
from telemedicine.services_video import livekit_event_apply

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024


@csrf_exempt
@require_POST
def livekit_webhook(request: HttpRequest) -> HttpResponse:
    if not livekit.configured():
        return HttpResponse("LiveKit is not configured.", status=503, content_type="text/plain")
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return HttpResponse(status=413)
    try:
        event = livekit.webhook_receive(body, request.headers.get("Authorization", ""))
    except livekit.WebhookRejected as exc:
        logger.warning("LiveKit webhook rejected: %s", exc)
        return HttpResponse("Invalid signature.", status=401, content_type="text/plain")
    except livekit.WebhookMalformed as exc:
        logger.warning("LiveKit webhook malformed: %s", exc)
        return HttpResponse("Malformed event.", status=400, content_type="text/plain")
    try:
        livekit_event_apply(event=event)
    except ValidationError:
        return HttpResponse("Malformed event.", status=400, content_type="text/plain")
    return HttpResponse(status=200)
