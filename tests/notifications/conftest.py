"""Fixtures of the notifications tests: a booked appointment and a fake SMS.ru server."""

from __future__ import annotations

import json
import threading
import urllib.parse
from datetime import datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Role
from tests import factories

MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture
def book():
    """Book an appointment two days ahead at 09:00 Moscow time (both reminders due in
    the future); returns the appointment."""

    def _book(*, patient=None, ctype_fields=None, hour: int = 9, doctor=None):
        from scheduling import services

        doctor = doctor or factories.make_staff(Role.DOCTOR)
        factories.make_working_week(doctor)
        ctype = factories.make_consultation_type(doctor, **(ctype_fields or {}))
        patient = patient or factories.make_patient()
        day = timezone.now().astimezone(MSK).date() + timedelta(days=2)
        return services.appointment_book_slot(
            by=None,
            patient=patient.patient_profile,
            doctor=doctor,
            consultation_type=ctype,
            starts_at=datetime.combine(day, time(hour), tzinfo=MSK),
        )

    return _book


class FakeSmsRu:
    """Speaks SMS.ru's /sms/send JSON protocol on loopback. `mode`: "ok", "error" (the
    number is refused) or "bad_key" (the whole request is refused)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, params: dict[str, str]) -> None:
                fake.paths.append(self.path)
                fake.requests.append(params)
                to = params.get("to", "")
                if params.get("api_id") != "test-api-id" or fake.mode == "bad_key":
                    body = {"status": "ERROR", "status_code": 200, "status_text": "Bad api_id"}
                elif fake.mode == "error":
                    body = {
                        "status": "OK",
                        "status_code": 100,
                        "sms": {
                            to: {
                                "status": "ERROR",
                                "status_code": 207,
                                "status_text": "No route to this number",
                            }
                        },
                        "balance": 100.0,
                    }
                else:
                    body = {
                        "status": "OK",
                        "status_code": 100,
                        "sms": {
                            to: {
                                "status": "OK",
                                "status_code": 100,
                                "sms_id": f"000000-{len(fake.requests)}",
                            }
                        },
                        "balance": 99.5,
                    }
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802
                query = urllib.parse.urlsplit(self.path).query
                self._answer(dict(urllib.parse.parse_qsl(query)))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                form = self.rfile.read(length).decode()
                self._answer(dict(urllib.parse.parse_qsl(form)))

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeSmsRu:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_sms_ru(settings):
    fake = FakeSmsRu().start()
    settings.SMS_RU_BASE_URL = fake.url
    settings.SMS_RU_API_ID = "test-api-id"
    yield fake
    fake.stop()
