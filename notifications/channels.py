"""Delivery channels: email through Django's email backend (any django-anymail backend
plugs in through EMAIL_BACKEND) and SMS through an adapter with an SMS.ru client.

Errors carry a short code only, never the recipient or the text (DESIGN.md rule 6).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage

SMS_RU_DEFAULT_BASE_URL = "https://sms.ru"


class ChannelError(Exception):
    """A failed delivery. `permanent`: retrying the same channel will not help."""

    def __init__(self, code: str, *, permanent: bool) -> None:
        super().__init__(code)
        self.code = code[:100]
        self.permanent = permanent


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str


@dataclass(frozen=True)
class Outgoing:
    subject: str
    body: str
    sms_text: str
    attachments: tuple[Attachment, ...] = ()
    # A stable Message-ID per row: if a worker dies between the server's "250 OK" and
    # recording it, the resent copy carries the same id and mail clients show one.
    message_id: str = ""


class EmailChannel:
    name = "email"

    def send(self, *, to: str, message: Outgoing) -> str:
        if not to:
            raise ChannelError("no-address", permanent=True)
        headers = {"Message-ID": message.message_id} if message.message_id else {}
        email = EmailMessage(subject=message.subject, body=message.body, to=[to], headers=headers)
        for attachment in message.attachments:
            email.attach(attachment.filename, attachment.content, attachment.mimetype)
        try:
            email.send()
        except OSError as exc:  # smtplib errors are OSErrors
            raise ChannelError(f"email:{type(exc).__name__}", permanent=False) from exc
        return email.extra_headers.get("Message-ID", "")


def normalise_phone(phone: str) -> str:
    """Digits in the international form SMS.ru expects (7XXXXXXXXXX for Russia)."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]
    return digits


class SmsRuClient:
    """SMS.ru's HTTP API: `/sms/send` with api_id, to, msg, json=1. Sent as a POST form,
    so the recipient's number and the text never appear in a URL (or a proxy's log)."""

    def __init__(
        self, *, api_id: str, base_url: str = SMS_RU_DEFAULT_BASE_URL, timeout: float = 10
    ) -> None:
        self.api_id = api_id
        if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError("SMS_RU_BASE_URL must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def send(self, *, to: str, text: str, sender: str = "") -> str:
        params = {"api_id": self.api_id, "to": to, "msg": text, "json": "1"}
        if sender:
            params["from"] = sender
        data = urllib.parse.urlencode(params).encode()
        # The scheme is checked in __init__ (http or https only).
        request = urllib.request.Request(  # noqa: S310
            f"{self.base_url}/sms/send", data=data, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise ChannelError(f"sms.ru:http-{exc.code}", permanent=exc.code < 500) from exc
        except (OSError, ValueError) as exc:
            raise ChannelError(f"sms.ru:{type(exc).__name__}", permanent=False) from exc
        if answer.get("status") != "OK":
            raise ChannelError(f"sms.ru:{answer.get('status_code', 'error')}", permanent=True)
        per_number = (answer.get("sms") or {}).get(to) or {}
        if per_number.get("status") != "OK":
            raise ChannelError(
                f"sms.ru:{per_number.get('status_code', 'no-status')}", permanent=True
            )
        return str(per_number.get("sms_id", ""))


class SmsChannel:
    name = "sms"

    def __init__(self, client: SmsRuClient | None = None) -> None:
        self.client = client or SmsRuClient(
            api_id=getattr(settings, "SMS_RU_API_ID", ""),
            base_url=getattr(settings, "SMS_RU_BASE_URL", SMS_RU_DEFAULT_BASE_URL),
        )

    def send(self, *, to: str, message: Outgoing) -> str:
        number = normalise_phone(to)
        if not number:
            raise ChannelError("no-number", permanent=True)
        return self.client.send(
            to=number, text=message.sms_text, sender=getattr(settings, "SMS_RU_FROM", "")
        )


def channel_for(name: str) -> EmailChannel | SmsChannel:
    return SmsChannel() if name == "sms" else EmailChannel()
