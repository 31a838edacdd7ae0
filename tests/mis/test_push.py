"""The appointment push (mis.services_push) against sekmet-fhir on loopback.

A portal booking reaches the MIS exactly once however often it is sent (a retry, a lost
answer, the task run twice); moves and cancellations follow; a refusal by the MIS
cancels the portal booking and tells the patient and reception; with the MIS down the
jobs wait with backoff and go out once when it returns; nothing is written without an
MIS.

sekmet has no rule that one practitioner cannot have two appointments at once (its
simulator, off here, books whatever is proposed). `SlotGuard` adds that rule in front of
it, the way an MIS that owns its calendar answers: a loopback HTTP proxy that forwards
every request to sekmet and answers a POST/PUT of an Appointment that overlaps another
active Appointment of the same practitioner with 409 and an OperationOutcome.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from mis import admin_push as _admin_push  # noqa: F401 (registers the admin; so does mis/admin.py)
from mis import services_push
from mis.models import ExternalLink, LinkedKind, PushChange, PushJob, PushState, RejectedPush
from mis.tasks_push import push_send_task, sweep_pushes
from notifications.models import Event, Message
from scheduling import availability
from scheduling import services as scheduling
from scheduling.models import AppointmentEvent, AppointmentStatus
from tests import factories

pytestmark = pytest.mark.django_db
MOSCOW = ZoneInfo("Europe/Moscow")


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def clinic(db):
    doctor = factories.make_staff(Role.DOCTOR, language="en")
    location = factories.make_location(time_zone="Europe/Moscow")
    factories.make_working_week(doctor, location)
    ctype = factories.make_consultation_type(
        doctor, free_cancellation_hours=48, late_cancellation_fee="900.00"
    )
    return doctor, location, ctype


@pytest.fixture
def patient(db):
    """A patient with a SNILS (the identifier the MIS matches patients by)."""
    return factories.make_patient(snils=factories.valid_snils())


def _slots(doctor, ctype, days_ahead: int = 3):
    day = timezone.now().astimezone(MOSCOW).date() + timedelta(days=days_ahead)
    return availability.free_slots([doctor.pk], day, 1, consultation_type=ctype)[doctor.pk]


def _book(clinic, patient, index: int = 0, days_ahead: int = 3):
    doctor, _location, ctype = clinic
    slot = _slots(doctor, ctype, days_ahead)[index]
    return scheduling.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )


def _ours(mis, appointment) -> list[dict]:
    """The MIS's Appointments carrying this portal appointment's identifier."""
    bundle = mis.search(
        "Appointment",
        identifier=f"{services_push.APPOINTMENT_SYSTEM}|{appointment.public_id}",
    )
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _all_appointments(mis) -> list[dict]:
    bundle = mis.search("Appointment", _count="100")
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _job(appointment, change: str) -> PushJob:
    return PushJob.objects.get(appointment=appointment, change=change)


# --- exactly once -----------------------------------------------------------------------------


def test_a_booking_reaches_the_mis_once_even_when_sent_again(mis, clinic, patient):
    appointment = _book(clinic, patient)
    job = _job(appointment, PushChange.BOOK)
    assert job.state == PushState.QUEUED and job.mis_system == f"fhir:{mis.base_url}"

    assert push_send_task(job.pk) == "delivered"
    assert push_send_task(job.pk) == "busy"  # the task run twice: done already, no call

    job.refresh_from_db()
    stored = _ours(mis, appointment)
    assert len(stored) == 1
    resource = stored[0]
    assert job.state == PushState.DELIVERED and job.attempts == 1 and job.last_status == 201
    assert job.mis_id == resource["id"] and job.mis_version == "1"
    assert resource["status"] == "booked"
    assert _instant(resource["start"]) == appointment.starts_at
    assert _instant(resource["end"]) == appointment.ends_at
    # Nobody in the MIS is known by id yet: logical references by identifier.
    actors = {p["actor"]["type"]: p["actor"] for p in resource["participant"]}
    assert actors["Patient"]["identifier"] == {
        "system": services_push.SNILS_SYSTEM,
        "value": "".join(ch for ch in patient.patient_profile.snils if ch.isdigit()),
    }
    assert actors["Practitioner"]["identifier"] == {
        "system": services_push.PRACTITIONER_SYSTEM,
        "value": str(clinic[0].pk),
    }
    link = ExternalLink.objects.get(kind=LinkedKind.APPOINTMENT, object_id=appointment.pk)
    assert (link.system, link.value, link.version) == (job.mis_system, resource["id"], "1")
    assert AuditEvent.objects.filter(
        action=AuditAction.EXPORT,
        object_type="scheduling.appointment",
        object_id=str(appointment.pk),
        patient=patient,
    ).exists()


def test_a_lost_answer_is_retried_and_still_creates_one(mis, clinic, patient, monkeypatch):
    """The MIS stored the Appointment but the worker died before recording it (the answer
    was lost): after the claim's lease the sweep sends again, and the conditional create
    finds the first one."""
    appointment = _book(clinic, patient)
    job = _job(appointment, PushChange.BOOK)
    real_deliver = services_push._deliver

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost after the MIS answered")

    monkeypatch.setattr(services_push, "_deliver", crash)
    with pytest.raises(RuntimeError):
        services_push.push_send(job_id=job.pk)
    monkeypatch.setattr(services_push, "_deliver", real_deliver)
    assert len(_ours(mis, appointment)) == 1
    job.refresh_from_db()
    assert job.state == PushState.QUEUED and job.claimed_at is not None
    assert not ExternalLink.objects.filter(object_id=appointment.pk).exists()

    # Within the lease nobody touches it (the worker might still be alive).
    assert services_push.push_sweep() == 0
    assert services_push.push_send(job_id=job.pk) == "busy"

    later = timezone.now() + services_push.CLAIM_LEASE + timedelta(seconds=1)
    assert services_push.push_sweep(now=later) == 1
    assert services_push.push_send(job_id=job.pk, now=later) == "delivered"

    stored = _ours(mis, appointment)
    assert len(stored) == 1
    assert stored[0]["meta"]["versionId"] == "1"  # found, not written again
    job.refresh_from_db()
    assert job.state == PushState.DELIVERED and job.attempts == 2
    assert job.mis_id == stored[0]["id"]
    assert ExternalLink.objects.get(object_id=appointment.pk).value == stored[0]["id"]


def test_linked_patient_and_doctor_are_literal_references(mis, clinic, patient):
    doctor = clinic[0]
    system = services_push.mis_system()
    mis_patient = mis.create({"resourceType": "Patient", "name": [{"family": "Test"}]})
    mis_doctor = mis.create({"resourceType": "Practitioner", "name": [{"family": "Doc"}]})
    ExternalLink.objects.create(
        kind=LinkedKind.PATIENT,
        object_id=patient.patient_profile.pk,
        system=system,
        value=mis_patient["id"],
    )
    ExternalLink.objects.create(
        kind=LinkedKind.PRACTITIONER, object_id=doctor.pk, system=system, value=mis_doctor["id"]
    )
    appointment = _book(clinic, patient)
    assert services_push.push_send(job_id=_job(appointment, PushChange.BOOK).pk) == "delivered"
    refs = {p["actor"].get("reference") for p in _ours(mis, appointment)[0]["participant"]}
    assert {f"Patient/{mis_patient['id']}", f"Practitioner/{mis_doctor['id']}"} <= refs


# --- moves, cancellations, status -------------------------------------------------------------


def test_move_and_cancel_reach_the_mis(mis, clinic, patient):
    appointment = _book(clinic, patient)
    assert services_push.push_send(job_id=_job(appointment, PushChange.BOOK).pk) == "delivered"
    mis_id = _ours(mis, appointment)[0]["id"]

    new_slot = _slots(clinic[0], clinic[2])[3]
    appointment = scheduling.appointment_reschedule(
        by=patient, appointment=appointment, new_start=new_slot.start
    )
    move = _job(appointment, PushChange.MOVE)
    assert services_push.push_send(job_id=move.pk) == "delivered"
    moved = mis.read("Appointment", mis_id)
    assert _instant(moved["start"]) == new_slot.start
    assert moved["status"] == "booked" and moved["meta"]["versionId"] == "2"

    scheduling.appointment_cancel(by=patient, appointment=appointment, reason="feeling better")
    cancel = _job(appointment, PushChange.CANCEL)
    assert services_push.push_send(job_id=cancel.pk) == "delivered"
    cancelled = mis.read("Appointment", mis_id)
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"] == {"text": "feeling better"}
    assert _instant(cancelled["start"]) == new_slot.start  # the time stays as it was
    assert len(_all_appointments(mis)) == 1
    move.refresh_from_db()
    cancel.refresh_from_db()
    assert (move.state, move.mis_version) == (PushState.DELIVERED, "2")
    assert (cancel.state, cancel.mis_version) == (PushState.DELIVERED, "3")
    assert ExternalLink.objects.get(object_id=appointment.pk).version == "3"

    # Sent once more: the MIS already says so; nothing is written.
    cancel.state = PushState.QUEUED
    cancel.save(update_fields=["state"])
    assert services_push.push_send(job_id=cancel.pk) == "delivered"
    assert mis.read("Appointment", mis_id)["meta"]["versionId"] == "3"


def test_changes_waiting_together_go_out_as_one_exchange_in_order(mis, clinic, patient):
    appointment = _book(clinic, patient)
    new_slot = _slots(clinic[0], clinic[2])[2]
    scheduling.appointment_reschedule(by=patient, appointment=appointment, new_start=new_slot.start)
    book, move = _job(appointment, PushChange.BOOK), _job(appointment, PushChange.MOVE)
    # The move's message arrives first: it sends the appointment as it is now, book included.
    assert services_push.push_send(job_id=move.pk) == "delivered"
    assert services_push.push_send(job_id=book.pk) == "busy"
    stored = _ours(mis, appointment)
    assert len(stored) == 1 and _instant(stored[0]["start"]) == new_slot.start
    assert set(PushJob.objects.values_list("state", flat=True)) == {PushState.DELIVERED}


def test_cancelled_before_the_mis_had_it_creates_nothing(mis, clinic, patient):
    appointment = _book(clinic, patient)
    scheduling.appointment_cancel(by=patient, appointment=appointment)
    assert services_push.push_send(job_id=_job(appointment, PushChange.BOOK).pk) == "skipped"
    assert _all_appointments(mis) == []
    assert set(PushJob.objects.values_list("state", flat=True)) == {PushState.SKIPPED}


def test_a_cancelled_hold_is_never_pushed(mis, clinic, patient):
    doctor, _location, ctype = clinic
    held = scheduling.appointment_hold(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=_slots(doctor, ctype)[0].start,
    )
    scheduling.appointment_cancel(by=patient, appointment=held)
    assert not PushJob.objects.exists()


def test_status_changes_reach_the_mis(mis, clinic, patient, reception):
    appointment = _book(clinic, patient)
    scheduling.appointment_set_status(
        by=patient, appointment=appointment, status=AppointmentStatus.CONFIRMED
    )
    assert not PushJob.objects.filter(change=PushChange.STATUS).exists()  # "booked" either way
    services_push.push_send(job_id=_job(appointment, PushChange.BOOK).pk)
    scheduling.appointment_set_status(
        by=reception, appointment=appointment, status=AppointmentStatus.ARRIVED
    )
    assert services_push.push_send(job_id=_job(appointment, PushChange.STATUS).pk) == "delivered"
    assert _ours(mis, appointment)[0]["status"] == "arrived"


# --- refusal ----------------------------------------------------------------------------------


class SlotGuard:
    """A loopback proxy in front of sekmet with the MIS's calendar rule (see the module
    docstring). `url` is its FHIR base URL."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.refused = 0
        guard = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _forward(self, body: bytes | None = None) -> None:
                skip = {"host", "content-length", "connection", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                upstream = guard.session.request(
                    self.command,
                    guard.upstream + self.path.removeprefix("/fhir"),
                    data=body,
                    headers=headers,
                    timeout=30,
                )
                self._answer(upstream.status_code, upstream.content, dict(upstream.headers))

            def _answer(self, status: int, content: bytes, headers: dict) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self):  # noqa: N802
                self._forward()

            def _write(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                resource = json.loads(body or b"{}")
                if resource.get("resourceType") == "Appointment" and guard.conflicts(resource):
                    guard.refused += 1
                    outcome = {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {
                                "severity": "error",
                                "code": "conflict",
                                "diagnostics": "The practitioner is already booked at this time",
                            }
                        ],
                    }
                    self._answer(
                        409,
                        json.dumps(outcome).encode(),
                        {"Content-Type": "application/fhir+json"},
                    )
                    return
                self._forward(body)

            do_POST = _write  # noqa: N815
            do_PUT = _write  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def conflicts(self, resource: dict) -> bool:
        if resource.get("status") in ("cancelled", "entered-in-error", "noshow"):
            return False
        practitioners = [
            p["actor"] for p in resource.get("participant", []) if "Practitioner" in str(p)
        ]
        start, end = _instant(resource["start"]), _instant(resource["end"])
        mine = {json.dumps(i, sort_keys=True) for i in resource.get("identifier", [])}
        bundle = self.session.get(f"{self.upstream}/Appointment", params={"_count": "1000"}).json()
        for entry in bundle.get("entry", []):
            other = entry["resource"]
            if other.get("status") in ("cancelled", "entered-in-error", "noshow"):
                continue
            if mine & {json.dumps(i, sort_keys=True) for i in other.get("identifier", [])}:
                continue  # the same appointment (a retry or an update)
            same_doctor = any(
                p["actor"] in practitioners
                for p in other.get("participant", [])
                if "Practitioner" in str(p)
            )
            if same_doctor and _instant(other["start"]) < end and start < _instant(other["end"]):
                return True
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.session.close()


@pytest.fixture
def guarded_mis(mis, settings):
    guard = SlotGuard(mis.base_url, mis.token)
    settings.MIS_FHIR_BASE_URL = guard.url
    yield mis, guard
    guard.close()


def test_a_refusal_cancels_the_booking_and_tells_patient_and_reception(
    guarded_mis, clinic, patient, client, login_staff, admin_user, reception
):
    mis, guard = guarded_mis
    doctor, _location, ctype = clinic
    slot = _slots(doctor, ctype, days_ahead=1)[1]
    # Booked at the MIS's own desk a moment ago, for the same doctor and time.
    mis.create(
        {
            "resourceType": "Appointment",
            "status": "booked",
            "start": slot.start.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": slot.end.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "participant": [
                {
                    "actor": {
                        "type": "Practitioner",
                        "identifier": {
                            "system": services_push.PRACTITIONER_SYSTEM,
                            "value": str(doctor.pk),
                        },
                    },
                    "status": "accepted",
                }
            ],
        }
    )
    # Inside the 48 h free period's end: a patient's own cancellation would cost 900.
    appointment = _book(clinic, patient, index=1, days_ahead=1)

    assert services_push.push_send(job_id=_job(appointment, PushChange.BOOK).pk) == "rejected"
    assert guard.refused == 1

    job = _job(appointment, PushChange.BOOK)
    assert job.state == PushState.REJECTED and job.last_status == 409
    assert "already booked" in job.last_error
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert appointment.cancellation_reason == services_push.REFUSED_REASON
    assert appointment.cancellation_fee == 0
    history = AppointmentEvent.objects.filter(appointment=appointment).order_by("pk").last()
    assert history.to_status == AppointmentStatus.CANCELLED
    assert history.note == services_push.REFUSED_REASON and history.by is None
    # The patient is told (once), by the "cancelled by the clinic" message.
    told = Message.objects.filter(user=patient, event=Event.APPOINTMENT_CANCELLED)
    assert told.count() == 1 and told.get().object_id == appointment.pk
    # The cancellation is pushed too, and finds nothing to change in the MIS.
    cancel = _job(appointment, PushChange.CANCEL)
    assert services_push.push_send(job_id=cancel.pk) == "skipped"
    assert len(_all_appointments(mis)) == 1 and _ours(mis, appointment) == []

    # Reception: the list of refused bookings in admin, and the appointment's page.
    assert list(RejectedPush.objects.values_list("pk", flat=True)) == [job.pk]
    login_staff(admin_user)
    listing = client.get("/admin/mis/rejectedpush/", HTTP_ACCEPT_LANGUAGE="en")
    html = listing.content.decode()
    assert listing.status_code == 200
    assert patient.patient_profile.full_name() in html and "already booked" in html
    response = client.post(
        "/admin/mis/rejectedpush/",
        {"action": "mark_handled", "_selected_action": [job.pk]},
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.handled_by == admin_user and job.handled_at is not None
    client.logout()

    login_staff(reception)
    page = client.get(
        f"/staff/schedule/appointments/{appointment.public_id}/", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert page.status_code == 200
    assert "The clinic&#x27;s MIS refused this appointment" in page.content.decode()
    client.logout()
    # The patient's own page shows the cancellation, not the staff's MIS section.
    client.force_login(patient)
    own = client.get(
        reverse("scheduling:appointment_detail", args=[appointment.public_id]),
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert own.status_code == 200 and "mis-push-title" not in own.content.decode()


def test_a_refused_move_cancels_the_booking_and_the_mis_copy(guarded_mis, clinic, patient):
    mis, guard = guarded_mis
    doctor, _location, ctype = clinic
    appointment = _book(clinic, patient, index=0)
    assert services_push.push_send(job_id=_job(appointment, PushChange.BOOK).pk) == "delivered"
    mis_id = _ours(mis, appointment)[0]["id"]
    target = _slots(doctor, ctype)[4]
    mis.create(
        {
            "resourceType": "Appointment",
            "status": "booked",
            "start": target.start.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": target.end.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "participant": _ours(mis, appointment)[0]["participant"][1:2],
        }
    )
    scheduling.appointment_reschedule(by=patient, appointment=appointment, new_start=target.start)
    assert services_push.push_send(job_id=_job(appointment, PushChange.MOVE).pk) == "rejected"
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    # The MIS still held the old time for the patient: the cancellation frees it there.
    assert services_push.push_send(job_id=_job(appointment, PushChange.CANCEL).pk) == "delivered"
    assert mis.read("Appointment", mis_id)["status"] == "cancelled"
    assert guard.refused == 1


# --- the MIS down, the broker down -------------------------------------------------------------


def test_mis_down_waits_with_backoff_then_delivers_once(mis, clinic, patient):
    mis.stop()
    try:
        appointment = _book(clinic, patient)  # the portal keeps working
        job = _job(appointment, PushChange.BOOK)
        started = timezone.now()
        assert services_push.push_send(job_id=job.pk, now=started) == "retry"
        job.refresh_from_db()
        assert job.state == PushState.PENDING and job.attempts == 1
        assert "cannot reach the MIS" in job.last_error
        first_wait = job.next_attempt_at - timezone.now()
        assert timedelta(seconds=25) < first_wait <= services_push.RETRY_BASE

        # Not due yet: neither the sweep nor a stray message sends it.
        assert services_push.push_sweep() == 0
        assert services_push.push_send(job_id=job.pk) == "not_due"

        second = job.next_attempt_at + timedelta(seconds=1)
        assert services_push.push_sweep(now=second) == 1
        assert services_push.push_send(job_id=job.pk, now=second) == "retry"
        job.refresh_from_db()
        assert job.attempts == 2
        assert job.next_attempt_at - timezone.now() > timedelta(seconds=55)  # doubled
        assert services_push.retry_delay(40) == services_push.RETRY_MAX
    finally:
        mis.start()

    back = job.next_attempt_at + timedelta(seconds=1)
    assert services_push.push_sweep(now=back) == 1
    assert push_send_task(job.pk) == "delivered"
    assert push_send_task(job.pk) == "busy"
    assert len(_ours(mis, appointment)) == 1
    job.refresh_from_db()
    assert job.state == PushState.DELIVERED and job.attempts == 3


def test_a_lost_message_is_sent_by_the_sweep(mis, clinic, patient):
    appointment = _book(clinic, patient)
    job = _job(appointment, PushChange.BOOK)
    assert services_push.push_sweep() == 0  # just queued: its message is on its way
    later = timezone.now() + services_push.QUEUE_LEASE + timedelta(seconds=1)
    assert services_push.push_sweep(now=later) == 1
    assert sweep_pushes() == 0
    assert services_push.push_send(job_id=job.pk, now=later) == "delivered"


def test_broker_down_leaves_the_job_for_the_sweep(
    mis, clinic, patient, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(push_send_task, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        appointment = _book(clinic, patient)
    job = _job(appointment, PushChange.BOOK)
    assert appointment.status == AppointmentStatus.BOOKED
    assert job.state == PushState.PENDING and job.queued_at is None
    sent = []
    monkeypatch.setattr(push_send_task, "delay", lambda job_id: sent.append(job_id))
    with django_capture_on_commit_callbacks(execute=True):
        assert services_push.push_sweep() == 1
    assert sent == [job.pk]


def test_a_request_the_mis_never_takes_fails_and_can_be_sent_again(
    mis, clinic, patient, settings, client, login_staff, admin_user
):
    appointment = _book(clinic, patient)
    job = _job(appointment, PushChange.BOOK)
    right_url = settings.MIS_FHIR_BASE_URL
    settings.MIS_FHIR_BASE_URL = right_url.replace("/fhir", "/not-fhir")  # sekmet: 404
    job.mis_system = services_push.mis_system()
    job.save(update_fields=["mis_system"])
    assert services_push.push_send(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.state == PushState.FAILED and job.last_status == 404
    assert services_push.push_sweep(now=timezone.now() + timedelta(hours=2)) == 0  # not retried

    settings.MIS_FHIR_BASE_URL = right_url  # the operator fixes the address
    login_staff(admin_user)
    response = client.post(
        "/admin/mis/pushjob/", {"action": "send_again", "_selected_action": [job.pk]}
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == PushState.QUEUED and job.mis_system == f"fhir:{right_url}"
    assert services_push.push_send(job_id=job.pk) == "delivered"
    assert len(_ours(mis, appointment)) == 1
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.CHANGE, object_type="mis.pushjob"
    ).exists()


def test_wrong_credentials_are_retried_not_dropped(mis, clinic, patient, settings):
    settings.MIS_FHIR_TOKEN = "not-the-token"  # noqa: S105
    appointment = _book(clinic, patient)
    job = _job(appointment, PushChange.BOOK)
    assert services_push.push_send(job_id=job.pk) == "retry"
    job.refresh_from_db()
    assert job.state == PushState.PENDING and job.last_status == 401
    assert _all_appointments(mis) == []

    settings.MIS_FHIR_TOKEN = mis.token  # the operator fixes the secret
    assert services_push.push_send(job_id=job.pk, now=job.next_attempt_at) == "delivered"
    assert len(_ours(mis, appointment)) == 1


def test_an_unreadable_answer_is_retried(mis, clinic, patient, monkeypatch):
    from mis.fhir.client import FhirClient

    def garbled(self, *args, **kwargs):
        raise ValueError("not an Appointment")

    appointment = _book(clinic, patient)
    job = _job(appointment, PushChange.BOOK)
    monkeypatch.setattr(FhirClient, "create", garbled)
    assert services_push.push_send(job_id=job.pk) == "retry"
    job.refresh_from_db()
    assert job.state == PushState.PENDING and job.last_error == "unexpected ValueError"


def test_staff_actions_need_staff(patient, clinic, settings):
    from django.core.exceptions import PermissionDenied

    settings.MIS_FHIR_BASE_URL = "http://127.0.0.1:9/fhir"
    appointment = _book(clinic, patient)
    job = _job(appointment, PushChange.BOOK)
    PushJob.objects.filter(pk=job.pk).update(state=PushState.FAILED)
    with pytest.raises(PermissionDenied):
        services_push.push_retry(by=patient, job=job)
    with pytest.raises(PermissionDenied):
        services_push.push_mark_handled(by=patient, job=job)
    job.refresh_from_db()
    assert job.state == PushState.FAILED


# --- no MIS, or changes that come from the MIS --------------------------------------------------


def test_no_mis_configured_writes_no_push(settings, clinic, patient):
    settings.MIS_FHIR_BASE_URL = ""
    appointment = _book(clinic, patient)
    new_slot = _slots(clinic[0], clinic[2])[3]
    scheduling.appointment_reschedule(by=patient, appointment=appointment, new_start=new_slot.start)
    scheduling.appointment_cancel(by=patient, appointment=appointment)
    assert not PushJob.objects.exists()
    assert services_push.push_sweep() == 0


def test_changes_applied_from_the_mis_are_not_pushed_back(settings, clinic, patient):
    settings.MIS_FHIR_BASE_URL = "http://127.0.0.1:9/fhir"
    with services_push.pushes_suppressed():
        appointment = _book(clinic, patient)
    assert not PushJob.objects.exists()
    appointment = _book(clinic, patient, index=2)
    assert PushJob.objects.filter(appointment=appointment).count() == 1


def test_the_pull_recognises_pushed_appointments(settings, clinic, patient):
    settings.MIS_FHIR_BASE_URL = "http://127.0.0.1:9/fhir"
    appointment = _book(clinic, patient)
    resource = services_push.appointment_resource(appointment, system=services_push.mis_system())
    assert services_push.portal_appointment_id(resource["identifier"]) == appointment.pk
    assert services_push.portal_appointment_id([{"system": "other", "value": "1"}]) is None


def test_a_patient_without_snils_is_named_by_the_portal_id(settings, clinic):
    settings.MIS_FHIR_BASE_URL = "http://127.0.0.1:9/fhir"
    plain = factories.make_patient()
    appointment = _book(clinic, plain)
    resource = services_push.appointment_resource(appointment, system=services_push.mis_system())
    assert resource["participant"][0]["actor"] == {
        "type": "Patient",
        "identifier": {
            "system": services_push.PATIENT_SYSTEM,
            "value": str(plain.patient_profile.pk),
        },
    }
