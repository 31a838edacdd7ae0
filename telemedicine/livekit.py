"""The adapter to LiveKit: room tokens minted by this server, webhooks verified.

Nothing else in the portal imports livekit-api. A token names exactly one room, the
participant's identity is our user id (never a name or an email), it may publish and
subscribe but never administer or create rooms, and it lives at most
`LIVEKIT_TOKEN_TTL_MINUTES` (≤ 15; livekit-api's default of 6 hours is never used).
Tokens are not stored anywhere: the page asks for a new one before it runs out.

Webhooks carry a JWT signed with our API secret in the Authorization header, whose
`sha256` claim is the hash of the body (`WebhookReceiver`); see telemedicine/webhooks.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from google.protobuf.json_format import ParseError
from livekit import api

MAX_TOKEN_TTL = timedelta(minutes=15)


class LiveKitNotConfigured(Exception):
    """LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not set: no token can be minted."""


class WebhookRejected(Exception):
    """A webhook that is not LiveKit's (no or bad signature, body changed): 401."""


class WebhookMalformed(Exception):
    """Signed correctly but not a webhook event we can read: 400."""


@dataclass(frozen=True)
class RoomToken:
    jwt: str
    expires_at: datetime
    ttl: timedelta


def configured() -> bool:
    return bool(settings.LIVEKIT_API_KEY and settings.LIVEKIT_API_SECRET)


def media_enabled() -> bool:
    """Whether browsers can be sent to a media server at all (URL and keys set)."""
    return bool(settings.LIVEKIT_URL) and configured()


def token_ttl() -> timedelta:
    minutes = int(getattr(settings, "LIVEKIT_TOKEN_TTL_MINUTES", 10) or 10)
    return min(MAX_TOKEN_TTL, timedelta(minutes=max(1, minutes)))


def grants_for(room_name: str) -> api.VideoGrants:
    """Join this one room, publish (camera, microphone, screen) and subscribe, send data
    (chat in the call); no room administration, no creating or listing rooms, no
    recording."""
    return api.VideoGrants(
        room_join=True,
        room=room_name,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        room_admin=False,
        room_create=False,
        room_list=False,
        room_record=False,
    )


def room_token_mint(*, room_name: str, identity: str, name: str) -> RoomToken:
    if not configured():
        raise LiveKitNotConfigured
    if not room_name or not identity:
        raise ValueError("A room token needs a room and an identity.")
    ttl = token_ttl()
    issued = timezone.now()
    jwt = (
        api.AccessToken(settings.LIVEKIT_API_KEY, settings.LIVEKIT_API_SECRET)
        .with_identity(identity)
        .with_name(name)
        .with_grants(grants_for(room_name))
        .with_ttl(ttl)
        .to_jwt()
    )
    return RoomToken(jwt=jwt, expires_at=issued + ttl, ttl=ttl)


def _receiver() -> api.WebhookReceiver:
    return api.WebhookReceiver(
        api.TokenVerifier(settings.LIVEKIT_API_KEY, settings.LIVEKIT_API_SECRET)
    )


def webhook_receive(body: bytes, authorization: str):  # noqa: ANN201 - a protobuf WebhookEvent
    """The verified event, or WebhookRejected / WebhookMalformed. Never trusts the body
    before the signature and its hash have been checked."""
    if not configured():
        raise LiveKitNotConfigured
    token = (authorization or "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        raise WebhookRejected("no Authorization header")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookMalformed("body is not UTF-8") from exc
    try:
        return _receiver().receive(text, token)
    except ParseError as exc:
        # Only reached after the signature and the body's hash were verified.
        raise WebhookMalformed(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - jwt errors, "hash mismatch", bad base64
        raise WebhookRejected(type(exc).__name__) from exc


# --- Server API: closing a room ------------------------------------------------------------

ROOM_API_TIMEOUT_SECONDS = 10


def http_base_url() -> str:
    """LIVEKIT_URL as the server API's base: wss://host -> https://host."""
    url = settings.LIVEKIT_URL.rstrip("/")
    if url.startswith("wss://"):
        return "https://" + url[len("wss://") :]
    if url.startswith("ws://"):
        return "http://" + url[len("ws://") :]
    return url


def room_delete(room_name: str) -> bool:
    """Close a room on the LiveKit server, disconnecting everyone in it (RoomService
    DeleteRoom over Twirp, authorised by a one-minute token for that room only).
    True when the server confirmed or the room did not exist."""
    import requests

    if not media_enabled():
        return False
    token = (
        api.AccessToken(settings.LIVEKIT_API_KEY, settings.LIVEKIT_API_SECRET)
        .with_grants(api.VideoGrants(room_create=True, room=room_name))
        .with_ttl(timedelta(minutes=1))
        .to_jwt()
    )
    response = requests.post(
        f"{http_base_url()}/twirp/livekit.RoomService/DeleteRoom",
        json={"room": room_name},
        headers={"Authorization": f"Bearer {token}"},
        timeout=ROOM_API_TIMEOUT_SECONDS,
    )
    if response.status_code == 404:
        return True
    response.raise_for_status()
    return True
