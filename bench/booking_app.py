"""Benchmark-only WSGI application, served by gunicorn on loopback by
bench/booking_contention.py. Never deploy it: its endpoints authenticate nothing.

It is the project's own Django application (every URL of clinic.urls, the full
middleware stack) with two more JSON views mounted in front:

    POST /bench/book     {"patient": id, "doctor": id, "consultation_type": id, "start": iso}
                         -> 201 {"appointment": id}
                         -> 409 {"error": "slot_taken", "alternatives": n}
                         -> 4xx/500 {"error": "<kind>"}
    GET  /bench/minimal  one `SELECT 1` -> 200 {"ok": true}  (the baseline)

/bench/book calls `scheduling.services.appointment_book_slot`, the real booking path
(per-doctor advisory lock, exclusion constraint, care-access grant, audit), as the
patient. Responses under /bench/ carry `Server-Timing: app;dur=<ms>`: the time Django
took inside the worker (middleware, view, database), without the wait in gunicorn's
queue.

It doubles as gunicorn's config module (`-c python:booking_app`): `when_ready` starts a
watchdog in the master that shuts the server down when the benchmark that started it
is gone (BENCH_PARENT_PID) or after BENCH_SERVER_MAX_SECONDS, so a killed benchmark
never leaves a server behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
if os.environ.get("DJANGO_ENV") != "test":
    raise RuntimeError("booking_app is for benchmarks only: run it with DJANGO_ENV=test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.exceptions import ObjectDoesNotExist  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from accounts.models import PatientProfile, Role, User  # noqa: E402
from scheduling.models import ConsultationType  # noqa: E402
from scheduling.services import SlotTaken, appointment_book_slot  # noqa: E402

log = logging.getLogger("bench.booking_app")

# Tasks the booking path enqueues (the confirmation email) go to a queue of this run's
# own, which the benchmark deletes afterwards: no worker anywhere ever picks them up.
if os.environ.get("BENCH_CELERY_QUEUE"):
    from clinic.celery import app as _celery_app

    _celery_app.conf.task_default_queue = os.environ["BENCH_CELERY_QUEUE"]


@csrf_exempt
def book(request: HttpRequest) -> JsonResponse:
    from datetime import datetime

    if request.method != "POST":
        return JsonResponse({"error": "method_not_allowed"}, status=405)
    try:
        data = json.loads(request.body)
        patient = PatientProfile.objects.select_related("user").get(pk=int(data["patient"]))
        doctor = User.objects.get(pk=int(data["doctor"]), role=Role.DOCTOR)
        ctype = ConsultationType.objects.get(pk=int(data["consultation_type"]))
        starts_at = datetime.fromisoformat(data["start"])
    except (KeyError, TypeError, ValueError, ObjectDoesNotExist):
        return JsonResponse({"error": "bad_request"}, status=400)
    try:
        appointment = appointment_book_slot(
            by=patient.user,
            patient=patient,
            doctor=doctor,
            consultation_type=ctype,
            starts_at=starts_at,
        )
    except SlotTaken as exc:
        return JsonResponse(
            {"error": "slot_taken", "alternatives": len(exc.alternatives)}, status=409
        )
    except Exception as exc:  # the benchmark reports every other kind by name
        log.exception("booking failed")
        return JsonResponse({"error": type(exc).__name__}, status=500)
    return JsonResponse({"appointment": appointment.pk}, status=201)


def minimal(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return JsonResponse({"ok": True})


_project_urls = settings.ROOT_URLCONF
urlpatterns = [
    path("bench/book", book),
    path("bench/minimal", minimal),
    path("", include(_project_urls)),
]
handler403 = "clinic.errors.permission_denied"
handler404 = "clinic.errors.page_not_found"
handler500 = "clinic.errors.server_error"
settings.ROOT_URLCONF = __name__

_django_application = get_wsgi_application()


def application(environ, start_response):  # noqa: ANN001, ANN201
    if not environ.get("PATH_INFO", "").startswith("/bench/"):
        return _django_application(environ, start_response)
    started = time.perf_counter()
    captured: dict = {}
    body: list[bytes] = []

    def capture(status, headers, exc_info=None):  # noqa: ANN001, ANN202
        captured["status"], captured["headers"] = status, headers
        return body.append

    result = _django_application(environ, capture)
    try:
        body.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()  # request_finished: connections are tidied inside the timing
    elapsed = (time.perf_counter() - started) * 1000
    start_response(
        captured["status"], [*captured["headers"], ("Server-Timing", f"app;dur={elapsed:.3f}")]
    )
    return body


# --- gunicorn config hooks (`-c python:booking_app`) -----------------------------------


def when_ready(server) -> None:  # noqa: ANN001
    parent = int(os.environ.get("BENCH_PARENT_PID", "0"))
    deadline = time.monotonic() + float(os.environ.get("BENCH_SERVER_MAX_SECONDS", "600"))

    def watchdog() -> None:
        while True:
            time.sleep(0.5)
            orphaned = parent and os.getppid() != parent
            if orphaned or time.monotonic() > deadline:
                server.log.warning("booking_app: benchmark gone or time is up; stopping")
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watchdog, name="bench-watchdog", daemon=True).start()
