"""The waitlist: a freed slot goes to the first in line as an offer holding it for 15
minutes; expiry or a decline passes it to the next; accepting books it; the sweep is
idempotent and makes good a lost message; patients see only their own offers."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditAction, AuditEvent
from scheduling import availability, hooks, services, tasks_waitlist, waitlist
from scheduling.models import (
    WAITLIST_OFFER_MINUTES,
    Appointment,
    AppointmentSource,
    AppointmentStatus,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistOfferStatus,
    WaitlistStatus,
)
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _connected():
    # The lead wires this into SchedulingConfig.ready(); registering twice is harmless.
    waitlist.connect()


@pytest.fixture
def clinic(db):
    doctor = factories.make_staff(Role.DOCTOR)
    location = factories.make_location(time_zone="Europe/Moscow")
    factories.make_working_week(doctor, location)
    ctype = factories.make_consultation_type(doctor, free_cancellation_hours=2)
    return doctor, location, ctype


@pytest.fixture
def offers_made():
    made: list[int] = []

    def handler(*, offer_id: int) -> None:
        made.append(offer_id)

    hooks.waitlist_offer_made.register(handler)
    yield made
    hooks.waitlist_offer_made.unregister(handler)


def _slots(doctor, ctype, days_ahead: int = 1):
    day = timezone.now().astimezone(ZoneInfo("Europe/Moscow")).date() + timedelta(days=days_ahead)
    return availability.free_slots([doctor.pk], day, 1, consultation_type=ctype)[doctor.pk]


def _book(patient, doctor, ctype, start) -> Appointment:
    return services.appointment_book_slot(
        by=patient,
        patient=patient.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=start,
    )


def _join(patient, ctype, *, doctor=None, days: int = 10) -> WaitlistEntry:
    return waitlist.waitlist_join(
        by=patient,
        patient=patient.patient_profile,
        consultation_type=ctype,
        doctor=doctor,
        wanted_before=timezone.now() + timedelta(days=days),
    )


@pytest.fixture
def line(clinic):
    """A booked slot tomorrow (its owner will cancel) and two patients waiting, in order."""
    doctor, _location, ctype = clinic
    slot = _slots(doctor, ctype)[0]
    owner = factories.make_patient()
    booked = _book(owner, doctor, ctype, slot.start)
    first, second = factories.make_patient(), factories.make_patient()
    first_entry = _join(first, ctype, doctor=doctor)
    second_entry = _join(second, ctype)  # any doctor of the specialty
    return {
        "slot": slot,
        "owner": owner,
        "booked": booked,
        "first": first,
        "second": second,
        "first_entry": first_entry,
        "second_entry": second_entry,
    }


def _cancel_and_run(owner, appointment, capture) -> None:  # noqa: ANN001
    with capture(execute=True):
        services.appointment_cancel(by=owner, appointment=appointment)


def _offer_of(entry: WaitlistEntry) -> WaitlistOffer | None:
    return WaitlistOffer.objects.filter(entry=entry).order_by("-offered_at").first()


def _expire(offer: WaitlistOffer) -> None:
    past = timezone.now() - timedelta(seconds=1)
    WaitlistOffer.objects.filter(pk=offer.pk).update(expires_at=past)
    Appointment.objects.filter(pk=offer.appointment_id).update(hold_expires_at=past)


def test_a_cancellation_offers_the_slot_to_the_first_in_line(
    clinic, line, celery_eager, django_capture_on_commit_callbacks, offers_made
):
    doctor, _location, ctype = clinic
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)

    offer = _offer_of(line["first_entry"])
    assert offer is not None and offer.status == WaitlistOfferStatus.OPEN
    held = offer.appointment
    assert held.status == AppointmentStatus.HELD and held.source == AppointmentSource.WAITLIST
    assert held.patient == line["first"].patient_profile and held.doctor == doctor
    assert held.starts_at == line["slot"].start
    assert offer.expires_at == held.hold_expires_at
    expected = timezone.now() + timedelta(minutes=WAITLIST_OFFER_MINUTES)
    assert abs(offer.expires_at - expected) < timedelta(seconds=30)
    line["first_entry"].refresh_from_db()
    line["second_entry"].refresh_from_db()
    assert line["first_entry"].status == WaitlistStatus.OFFERED
    assert line["second_entry"].status == WaitlistStatus.WAITING
    assert offers_made == [offer.pk]  # the notifications hook, after the commit
    # Nobody else can take the held slot meanwhile.
    assert line["slot"].start not in {s.start for s in _slots(doctor, ctype)}


def test_an_expired_offer_goes_to_the_next_and_the_sweep_is_idempotent(
    clinic, line, celery_eager, django_capture_on_commit_callbacks
):
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)
    first_offer = _offer_of(line["first_entry"])
    _expire(first_offer)

    with django_capture_on_commit_callbacks(execute=True):
        result = tasks_waitlist.expire_waitlist_offers()
    assert result["expired"] == 1

    first_offer.refresh_from_db()
    assert first_offer.status == WaitlistOfferStatus.EXPIRED
    assert first_offer.appointment.status == AppointmentStatus.EXPIRED
    line["first_entry"].refresh_from_db()
    assert line["first_entry"].status == WaitlistStatus.WAITING  # keeps its place for later
    second_offer = _offer_of(line["second_entry"])
    assert second_offer is not None and second_offer.status == WaitlistOfferStatus.OPEN
    assert second_offer.appointment.starts_at == line["slot"].start
    assert second_offer.appointment.patient == line["second"].patient_profile

    def snapshot():
        return (
            sorted(WaitlistOffer.objects.values_list("pk", "status")),
            sorted(WaitlistEntry.objects.values_list("pk", "status")),
            sorted(Appointment.objects.values_list("pk", "status")),
        )

    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        again = tasks_waitlist.expire_waitlist_offers()
        waitlist.expire_waitlist_offers()
    assert again == {"expired": 0, "offered": 0}
    assert snapshot() == before


def test_the_beat_hold_release_alone_also_moves_the_slot_on(
    clinic, line, celery_eager, django_capture_on_commit_callbacks
):
    """If the hold sweep expires the offer's hold before the offer sweep runs, the slot
    still goes to the next entry, never back to the same one."""
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)
    first_offer = _offer_of(line["first_entry"])
    _expire(first_offer)
    with django_capture_on_commit_callbacks(execute=True):
        services.release_expired_holds()
    assert _offer_of(line["second_entry"]) is not None
    with django_capture_on_commit_callbacks(execute=True):
        waitlist.expire_waitlist_offers()
    first_offer.refresh_from_db()
    assert first_offer.status == WaitlistOfferStatus.EXPIRED
    assert WaitlistOffer.objects.filter(entry=line["first_entry"]).count() == 1


def test_accepting_books_the_slot(clinic, line, celery_eager, django_capture_on_commit_callbacks):
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)
    offer = _offer_of(line["first_entry"])
    with django_capture_on_commit_callbacks(execute=True):
        accepted = waitlist.waitlist_offer_accept(by=line["first"], offer=offer)
    assert accepted.status == WaitlistOfferStatus.ACCEPTED
    offer.appointment.refresh_from_db()
    assert offer.appointment.status == AppointmentStatus.BOOKED
    assert offer.appointment.hold_expires_at is None
    line["first_entry"].refresh_from_db()
    assert line["first_entry"].status == WaitlistStatus.ACCEPTED
    assert waitlist.waitlist_offer_accept(by=line["first"], offer=offer).status == "accepted"
    with pytest.raises(waitlist.OfferClosed):
        waitlist.waitlist_offer_decline(by=line["first"], offer=offer)
    assert _offer_of(line["second_entry"]) is None


def test_an_expired_offer_cannot_be_accepted(
    clinic, line, celery_eager, django_capture_on_commit_callbacks
):
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)
    offer = _offer_of(line["first_entry"])
    _expire(offer)
    with pytest.raises(waitlist.OfferClosed):
        waitlist.waitlist_offer_accept(by=line["first"], offer=offer)
    offer.appointment.refresh_from_db()
    assert offer.appointment.status == AppointmentStatus.HELD  # the sweep will release it


def test_declining_offers_the_slot_to_the_next(
    clinic, line, celery_eager, django_capture_on_commit_callbacks
):
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)
    offer = _offer_of(line["first_entry"])
    with django_capture_on_commit_callbacks(execute=True):
        declined = waitlist.waitlist_offer_decline(by=line["first"], offer=offer)
    assert declined.status == WaitlistOfferStatus.DECLINED
    offer.appointment.refresh_from_db()
    assert offer.appointment.status == AppointmentStatus.CANCELLED
    line["first_entry"].refresh_from_db()
    assert line["first_entry"].status == WaitlistStatus.WAITING
    second_offer = _offer_of(line["second_entry"])
    assert second_offer is not None
    assert second_offer.appointment.starts_at == line["slot"].start
    # The second declines too: nobody else wants it, and the first is not asked again.
    with django_capture_on_commit_callbacks(execute=True):
        waitlist.waitlist_offer_decline(by=line["second"], offer=second_offer)
        waitlist.offer_recently_freed_slots()
    assert WaitlistOffer.objects.count() == 2
    assert line["slot"].start in {s.start for s in _slots(*clinic[::2])}


def test_leaving_the_waitlist_with_an_open_offer_passes_it_on(
    clinic, line, celery_eager, django_capture_on_commit_callbacks
):
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)
    offer = _offer_of(line["first_entry"])
    with django_capture_on_commit_callbacks(execute=True):
        waitlist.waitlist_cancel(by=line["first"], entry=line["first_entry"])
    offer.refresh_from_db()
    line["first_entry"].refresh_from_db()
    assert offer.status == WaitlistOfferStatus.DECLINED
    assert line["first_entry"].status == WaitlistStatus.CANCELLED
    assert _offer_of(line["second_entry"]) is not None


def test_a_lost_message_is_made_good_by_the_sweep(clinic, line, celery_eager):
    # No on-commit callbacks run here, as if the broker lost the task.
    services.appointment_cancel(by=line["owner"], appointment=line["booked"])
    assert not WaitlistOffer.objects.exists()
    assert tasks_waitlist.expire_waitlist_offers() == {"expired": 0, "offered": 1}
    assert _offer_of(line["first_entry"]) is not None
    assert tasks_waitlist.expire_waitlist_offers() == {"expired": 0, "offered": 0}


def test_an_expiring_checkout_hold_is_offered_too(
    clinic, celery_eager, django_capture_on_commit_callbacks
):
    doctor, _location, ctype = clinic
    slot = _slots(doctor, ctype)[1]
    shopper = factories.make_patient()
    held = services.appointment_hold(
        by=shopper,
        patient=shopper.patient_profile,
        doctor=doctor,
        consultation_type=ctype,
        starts_at=slot.start,
    )
    waiting = factories.make_patient()
    entry = _join(waiting, ctype, doctor=doctor)
    Appointment.objects.filter(pk=held.pk).update(
        hold_expires_at=timezone.now() - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.release_expired_holds()
    offer = _offer_of(entry)
    assert offer is not None and offer.appointment.starts_at == slot.start


def test_who_is_skipped(clinic, celery_eager, django_capture_on_commit_callbacks):
    """Entries wanting a slot before this one, patients busy at that time, other doctors'
    and other specialties' entries are passed over; the first who fits gets it."""
    doctor, location, ctype = clinic
    slot = _slots(doctor, ctype, days_ahead=3)[0]
    owner = factories.make_patient()
    booked = _book(owner, doctor, ctype, slot.start)

    too_soon = factories.make_patient()
    _join(too_soon, ctype, doctor=doctor, days=1)  # wants a visit before the slot
    busy = factories.make_patient()
    _join(busy, ctype, doctor=doctor)
    other_doctor = factories.make_staff(Role.DOCTOR)
    factories.make_working_week(other_doctor, location)
    ctype.doctors.add(other_doctor)
    _book(busy, other_doctor, ctype, slot.start)  # already somewhere else at that time
    elsewhere = factories.make_patient()
    _join(elsewhere, ctype, doctor=other_doctor)
    from accounts.models import Specialty

    dermatology = Specialty.objects.create(code="derm", name_ru="Дерматолог", name_en="Derm")
    derm_type = factories.make_consultation_type(other_doctor, specialty=dermatology)
    other_specialty = factories.make_patient()
    _join(other_specialty, derm_type)
    fits = factories.make_patient()
    fits_entry = _join(fits, ctype)

    _cancel_and_run(owner, booked, django_capture_on_commit_callbacks)
    offers = list(WaitlistOffer.objects.select_related("entry"))
    assert [o.entry_id for o in offers] == [fits_entry.pk]


def test_joining_checks_its_input(clinic, patient):
    doctor, _location, ctype = clinic
    with pytest.raises(ValidationError):
        _join(patient, ctype, doctor=doctor, days=0)
    entry = _join(patient, ctype, doctor=doctor)
    assert entry.specialty is None and entry.doctor == doctor
    with pytest.raises(ValidationError, match="already"):
        _join(patient, ctype, doctor=doctor)
    by_specialty = _join(patient, ctype)
    assert by_specialty.specialty == ctype.specialty and by_specialty.doctor is None
    stranger = factories.make_staff(Role.DOCTOR)
    with pytest.raises(ValidationError):
        _join(patient, ctype, doctor=stranger)  # does not offer this consultation
    other = factories.make_patient()
    with pytest.raises(PermissionDenied):
        waitlist.waitlist_join(
            by=other,
            patient=patient.patient_profile,
            consultation_type=ctype,
            wanted_before=timezone.now() + timedelta(days=5),
        )
    with pytest.raises(PermissionDenied):
        waitlist.waitlist_cancel(by=other, entry=entry)


# --- Pages -------------------------------------------------------------------------------


def test_waitlist_page_joins_and_shows_offers(
    client, clinic, line, celery_eager, django_capture_on_commit_callbacks
):
    doctor, _location, ctype = clinic
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)
    offer = _offer_of(line["first_entry"])
    client.force_login(line["first"])
    page = client.get(reverse("scheduling:waitlist"))
    html = page.content.decode()
    assert page.status_code == 200
    assert reverse("scheduling:waitlist_offer_accept", args=[offer.pk]) in html
    assert reverse("scheduling:waitlist_offer_decline", args=[offer.pk]) in html
    expires = timezone.localtime(offer.expires_at, ZoneInfo("Europe/Moscow"))
    assert f"Held for you until {expires:%H:%M}" in html

    past = client.post(
        reverse("scheduling:waitlist"),
        {"consultation_type": ctype.pk, "doctor": "", "wanted_before": "2001-01-01"},
    )
    assert past.status_code == 200 and 'aria-invalid="true"' in past.content.decode()
    day = (timezone.now() + timedelta(days=20)).date().isoformat()
    other_type = factories.make_consultation_type(doctor)
    joined = client.post(
        reverse("scheduling:waitlist"),
        {"consultation_type": other_type.pk, "doctor": doctor.pk, "wanted_before": day},
    )
    assert joined.status_code == 302
    assert WaitlistEntry.objects.filter(
        patient=line["first"].patient_profile, consultation_type=other_type
    ).exists()

    accept = client.post(reverse("scheduling:waitlist_offer_accept", args=[offer.pk]))
    assert accept.status_code == 302
    offer.refresh_from_db()
    assert offer.status == WaitlistOfferStatus.ACCEPTED


def test_another_patients_offer_and_entry_are_not_found(
    client, clinic, line, celery_eager, django_capture_on_commit_callbacks
):
    _cancel_and_run(line["owner"], line["booked"], django_capture_on_commit_callbacks)
    offer = _offer_of(line["first_entry"])
    intruder = line["second"]
    client.force_login(intruder)
    for name in ("scheduling:waitlist_offer_accept", "scheduling:waitlist_offer_decline"):
        assert client.post(reverse(name, args=[offer.pk])).status_code == 404
        assert client.get(reverse(name, args=[offer.pk])).status_code == 404
    assert (
        client.post(reverse("scheduling:waitlist_offer_accept", args=[987654])).status_code == 404
    )
    cancel = reverse("scheduling:waitlist_cancel", args=[line["first_entry"].pk])
    assert client.post(cancel).status_code == 404
    offer.refresh_from_db()
    line["first_entry"].refresh_from_db()
    assert offer.status == WaitlistOfferStatus.OPEN
    assert line["first_entry"].status == WaitlistStatus.OFFERED
    denials = AuditEvent.objects.filter(actor=intruder, action=AuditAction.DENIED)
    assert denials.filter(patient=line["first"]).count() == 5
    page = client.get(reverse("scheduling:waitlist")).content.decode()
    assert reverse("scheduling:waitlist_offer_accept", args=[offer.pk]) not in page
