"""Patient pages: booking (specialty → doctor → day → time → confirm) and "My
appointments" (details, history, cancel, move, review).

Thin views: parse with a form, call one selector or service, render. Browsing
specialties and doctors is public (doctors are staff); everything about an appointment
goes through `selectors.appointment_get_for`, which answers 404 for someone else's and
records the attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from scheduling import hooks, ics, services
from scheduling.availability import Slot
from scheduling.forms import (
    CancelForm,
    RescheduleForm,
    ReviewForm,
    SlotForm,
    SlotQueryForm,
    format_utc_start,
)
from scheduling.models import (
    Appointment,
    AppointmentEventKind,
    AppointmentStatus,
    ConsultationType,
    LateCancellation,
)
from scheduling.selectors import patient as selectors

POLL_SECONDS = 12


# --- Helpers ------------------------------------------------------------------------------


def _denied(request: HttpRequest) -> Http404:
    """A page the user's role may not open: recorded, and answered like a missing page
    (the same pattern as accounts.views)."""
    match = request.resolver_match
    audit_record(
        actor=request.user,
        action=AuditAction.DENIED,
        object_type="page",
        detail={"url_name": match.view_name if match else ""},
    )
    return Http404()


def _patient(request: HttpRequest) -> PatientProfile:
    user = request.user
    if user.role != Role.PATIENT or not hasattr(user, "patient_profile"):
        raise _denied(request)
    return user.patient_profile


def money(amount: Decimal, currency: str) -> str:
    return f"{formats.number_format(amount, 2, use_l10n=True)} {currency}"


def when(moment: datetime, zone: str, fmt: str = "l, j E Y, H:i") -> str:
    """A moment in a location's zone, localized, with the zone named."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{formats.date_format(local, fmt)} ({zone})"


def policy_lines(ctype: ConsultationType, starts_at: datetime | None, zone: str) -> list[str]:
    """The cancellation policy in words, shown before the patient confirms."""
    hours = ctype.free_cancellation_hours
    if starts_at is not None:
        free_until = when(starts_at - timedelta(hours=hours), zone, "j E, H:i")
        first = ngettext(
            "You can cancel or move this appointment free of charge until %(hours)d hour "
            "before it starts (until %(when)s).",
            "You can cancel or move this appointment free of charge until %(hours)d hours "
            "before it starts (until %(when)s).",
            hours,
        ) % {"hours": hours, "when": free_until}
    else:
        first = ngettext(
            "You can cancel or move an appointment free of charge until %(hours)d hour "
            "before it starts.",
            "You can cancel or move an appointment free of charge until %(hours)d hours "
            "before it starts.",
            hours,
        ) % {"hours": hours}
    if ctype.late_cancellation == LateCancellation.NOT_ONLINE:
        later = _("After that it cannot be cancelled or moved online: please call the clinic.")
    elif ctype.late_cancellation_fee > 0:
        later = _(
            "After that, cancelling costs %(fee)s, and the appointment can no longer be "
            "moved online."
        ) % {"fee": money(ctype.late_cancellation_fee, ctype.currency)}
    else:
        later = _(
            "After that you can still cancel online free of charge, but not move the appointment."
        )
    return [first, later]


@dataclass(frozen=True)
class SlotChoice:
    slot: Slot
    iso: str
    url: str

    @property
    def label(self) -> str:
        return when(self.slot.start, self.slot.time_zone, "D j E, H:i")


def _choices(slots: list[Slot], url_for) -> list[SlotChoice]:  # noqa: ANN001
    out = []
    for slot in slots:
        iso = format_utc_start(slot.start)
        out.append(SlotChoice(slot, iso, url_for(iso)))
    return out


def _booking_url(doctor: User, ctype: ConsultationType):  # noqa: ANN202
    base = reverse("scheduling:book_confirm")
    return lambda iso: f"{base}?{urlencode({'doctor': doctor.pk, 'type': ctype.pk, 'start': iso})}"


def _picker_context(
    availability: selectors.Availability,
    requested_day: date | None,
    *,
    pick_url,  # noqa: ANN001
    day_url: str,
    poll_url: str,
) -> dict:
    days = [d.day for d in availability.days]
    selected = requested_day if requested_day in days else availability.first_free_day
    selected = selected or (days[0] if days else None)
    today = availability.day(selected)
    slots = today.slots if today else []
    zones = sorted({s.time_zone for s in slots}) or [str(availability.time_zone)]
    return {
        "days": availability.days,
        "selected_day": selected,
        "choices": _choices(slots, pick_url),
        "zones": zones,
        "zone": zones[0],
        "multi_zone": len(zones) > 1,
        "any_free": availability.first_free_day is not None,
        "day_url": day_url,
        "poll_url": poll_url,
        "poll_seconds": POLL_SECONDS,
        "checked_at": timezone.now(),
    }


def _badge(appointment: Appointment, now: datetime) -> tuple[str, str]:
    """Status as words and a badge variant (the glyph comes from CSS)."""
    status = appointment.status
    if status == AppointmentStatus.HELD and appointment.hold_expires_at <= now:
        return "neutral", str(AppointmentStatus.EXPIRED.label)
    variant = {
        AppointmentStatus.HELD: "pending",
        AppointmentStatus.BOOKED: "info",
        AppointmentStatus.CONFIRMED: "success",
        AppointmentStatus.ARRIVED: "info",
        AppointmentStatus.IN_PROGRESS: "info",
        AppointmentStatus.COMPLETED: "success",
        AppointmentStatus.CANCELLED: "danger",
        AppointmentStatus.NO_SHOW: "warning",
        AppointmentStatus.EXPIRED: "neutral",
    }.get(status, "neutral")
    if status == AppointmentStatus.HELD:
        return variant, _("Waiting for payment")
    return variant, str(AppointmentStatus(status).label)


def _decorate(appointments: list[Appointment], now: datetime) -> list[Appointment]:
    for appointment in appointments:
        appointment.badge_variant, appointment.badge_label = _badge(appointment, now)
        appointment.when_text = when(appointment.starts_at, appointment.location.time_zone)
    return appointments


def _status_label(value: str) -> str:
    try:
        return str(AppointmentStatus(value).label)
    except ValueError:
        return value


def _history(appointment: Appointment, user: User) -> list[dict]:
    zone = appointment.location.time_zone
    rows = []
    for event in selectors.appointment_history(appointment):
        if event.kind == AppointmentEventKind.MOVED and event.from_during and event.to_during:
            text = _("Moved from %(old)s to %(new)s") % {
                "old": when(event.from_during.lower, zone, "j E Y, H:i"),
                "new": when(event.to_during.lower, zone, "j E Y, H:i"),
            }
        elif event.kind == AppointmentEventKind.CREATED:
            text = _("Created: %(status)s") % {"status": _status_label(event.to_status)}
        else:
            text = _("%(old)s → %(new)s") % {
                "old": _status_label(event.from_status),
                "new": _status_label(event.to_status),
            }
        if event.by_id is None:
            who = _("automatically")
        elif event.by_id == user.pk:
            who = _("by you")
        else:
            who = _("by the clinic")
        rows.append({"at": when(event.at, zone, "j E Y, H:i"), "text": text, "who": who})
    return rows


def _render_taken(
    request: HttpRequest,
    form: SlotForm,
    doctor: User,
    ctype: ConsultationType,
    alternatives: list[Slot],
    *,
    status: int,
) -> HttpResponse:
    context = {
        "form": form,
        "doctor": doctor,
        "ctype": ctype,
        "taken": True,
        "alternatives": _choices(alternatives, lambda iso: ""),
        "policy": policy_lines(ctype, None, ""),
        "price": money(ctype.price, ctype.currency),
    }
    return render(request, "scheduling/patient/confirm.html", context, status=status)


def _already_yours(request: HttpRequest, appointment: Appointment) -> HttpResponse:
    messages.info(request, _("You have already booked this time."))
    if appointment.status == AppointmentStatus.HELD:
        return redirect("scheduling:appointment_payment", public_id=appointment.public_id)
    return redirect("scheduling:appointment_detail", public_id=appointment.public_id)


# --- Browsing: specialties and doctors (public) -----------------------------------------


@require_GET
def book(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "scheduling/patient/specialties.html",
        {"specialties": list(selectors.specialties_bookable())},
    )


@require_GET
def book_specialty(request: HttpRequest, code: str) -> HttpResponse:
    specialty = selectors.specialty_get(code)
    doctors = selectors.doctors_for_specialty(specialty)
    next_free = selectors.next_free_slot_by_doctor(doctors, specialty)
    rows = []
    for doctor in doctors:
        found = next_free.get(doctor.pk)
        rows.append(
            {
                "doctor": doctor,
                "next": (
                    _choices([found[0]], _booking_url(doctor, found[1]))[0] if found else None
                ),
            }
        )
    return render(
        request, "scheduling/patient/doctors.html", {"specialty": specialty, "rows": rows}
    )


def _doctor_picker(request: HttpRequest, doctor: User) -> tuple[dict, ConsultationType]:
    query = SlotQueryForm(request.GET)
    types = selectors.consultation_types_of(doctor)
    if not types:
        raise Http404
    wanted = query.value("type")
    ctype = next((t for t in types if t.pk == wanted), types[0])
    availability = selectors.availability_for(doctor, ctype)
    profile_url = reverse("scheduling:doctor", args=[doctor.pk])
    slots_url = reverse("scheduling:doctor_slots", args=[doctor.pk])
    picker = _picker_context(
        availability,
        query.value("day"),
        pick_url=_booking_url(doctor, ctype),
        day_url=f"{profile_url}?{urlencode({'type': ctype.pk})}&day=",
        poll_url="",
    )
    picker["poll_url"] = (
        f"{slots_url}?{urlencode({'type': ctype.pk, 'day': picker['selected_day'] or ''})}"
    )
    picker.update(
        {
            "types": types,
            "ctype": ctype,
            "next_choices": _choices(availability.next_slots(4), _booking_url(doctor, ctype)),
        }
    )
    return picker, ctype


def _photo_url(doctor: User) -> str:
    """The doctor's photo, once the project serves media (MEDIA_URL set); until then no
    image rather than a broken one."""
    photo = doctor.staff_profile.photo
    if not photo or not settings.MEDIA_URL:
        return ""
    return photo.url


@require_GET
def doctor(request: HttpRequest, doctor_id: int) -> HttpResponse:
    doctor = selectors.doctor_get(doctor_id)
    context, ctype = _doctor_picker(request, doctor)
    context.update(
        {
            "doctor": doctor,
            "profile": doctor.staff_profile,
            "photo_url": _photo_url(doctor),
            "reviews": selectors.doctor_reviews_approved(doctor),
            "locations": selectors.doctor_locations(doctor),
            "price": money(ctype.price, ctype.currency),
            "policy": policy_lines(ctype, None, ""),
        }
    )
    return render(request, "scheduling/patient/doctor.html", context)


@require_GET
def doctor_slots(request: HttpRequest, doctor_id: int) -> HttpResponse:
    """The day strip and free times (htmx polls this every few seconds)."""
    doctor = selectors.doctor_get(doctor_id)
    context, _ctype = _doctor_picker(request, doctor)
    return render(request, "scheduling/patient/_slot_picker.html", context)


# --- Booking --------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def book_confirm(request: HttpRequest) -> HttpResponse:
    profile = _patient(request)
    if request.method == "GET" and not {"doctor", "type", "start"} & set(request.GET):
        return redirect("scheduling:book")
    form = SlotForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        return render(
            request, "scheduling/patient/confirm.html", {"form": form, "invalid": True}, status=400
        )
    doctor, ctype = form.doctor_obj, form.ctype_obj
    start = form.cleaned_data["start"]
    if request.method == "POST":
        try:
            if ctype.prepayment_required:
                appointment = services.appointment_hold(
                    by=request.user,
                    patient=profile,
                    doctor=doctor,
                    consultation_type=ctype,
                    starts_at=start,
                    patient_note=form.cleaned_data["note"],
                )
                return redirect("scheduling:appointment_payment", public_id=appointment.public_id)
            appointment = services.appointment_book_slot(
                by=request.user,
                patient=profile,
                doctor=doctor,
                consultation_type=ctype,
                starts_at=start,
                patient_note=form.cleaned_data["note"],
            )
        except services.SlotTaken as exc:
            mine = selectors.own_appointment_at(request.user, doctor, start)
            if mine is not None:
                return _already_yours(request, mine)
            return _render_taken(request, form, doctor, ctype, exc.alternatives, status=409)
        except (ValidationError, PermissionDenied) as exc:
            form.add_error(
                None,
                " ".join(getattr(exc, "messages", []))
                or _("This booking could not be made. Nothing was changed."),
            )
            return render(
                request,
                "scheduling/patient/confirm.html",
                {"form": form, "invalid": True},
                status=400,
            )
        return redirect("scheduling:appointment_booked", public_id=appointment.public_id)

    slot = selectors.slot_get(doctor, start, ctype)
    if slot is None:
        mine = selectors.own_appointment_at(request.user, doctor, start)
        if mine is not None:
            return _already_yours(request, mine)
        alternatives = selectors.alternatives_for(doctor, start, ctype)
        return _render_taken(request, form, doctor, ctype, alternatives, status=200)
    location = selectors.location_get(slot.location_id)
    context = {
        "form": form,
        "doctor": doctor,
        "ctype": ctype,
        "slot": slot,
        "when": when(slot.start, slot.time_zone),
        "duration": ctype.duration_minutes,
        "location": location,
        "price": money(ctype.price, ctype.currency),
        "policy": policy_lines(ctype, slot.start, slot.time_zone),
    }
    return render(request, "scheduling/patient/confirm.html", context)


# --- My appointments ------------------------------------------------------------------------


@login_required
@require_GET
def my_appointments(request: HttpRequest) -> HttpResponse:
    _patient(request)
    now = timezone.now()
    lists = selectors.my_appointments(request.user, now=now)
    context = {
        "upcoming": _decorate(lists.upcoming, now),
        "past": _decorate(lists.past, now),
        "past_limit": selectors.PAST_LIMIT,
    }
    return render(request, "scheduling/patient/my_appointments.html", context)


def _actions(appointment: Appointment, quote: services.CancellationQuote, now: datetime) -> dict:
    upcoming = appointment.starts_at > now
    live_hold = appointment.status == AppointmentStatus.HELD and appointment.hold_expires_at > now
    changeable = upcoming and (
        live_hold or appointment.status in (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
    )
    return {
        "can_cancel": changeable,
        "can_move": changeable and not live_hold and quote.allowed and quote.free,
        "move_closed": changeable and not live_hold and not (quote.allowed and quote.free),
        "awaiting_payment": live_hold,
        "can_review": appointment.status == AppointmentStatus.COMPLETED,
    }


@login_required
@require_GET
def appointment_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors.appointment_get_for(request.user, public_id)
    now = timezone.now()
    _decorate([appointment], now)
    quote = services.cancellation_quote(appointment, by=request.user, now=now)
    zone = appointment.location.time_zone
    context = {
        "appointment": appointment,
        "history": _history(appointment, request.user),
        "review": selectors.appointment_review(appointment),
        "price": money(appointment.price, appointment.currency),
        "fee": money(appointment.cancellation_fee, appointment.currency),
        "policy": policy_lines(appointment.consultation_type, appointment.starts_at, zone),
        "quote": quote,
        "free_until": when(quote.free_until, zone, "j E, H:i"),
        **_actions(appointment, quote, now),
        "sections": hooks.appointment_page_sections.collect(
            user=request.user, appointment=appointment, audience="patient"
        ),
    }
    return render(request, "scheduling/patient/appointment_detail.html", context)


@login_required
@require_GET
def appointment_booked(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors.appointment_get_for(request.user, public_id)
    if appointment.status not in (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED):
        return redirect("scheduling:appointment_detail", public_id=appointment.public_id)
    zone = appointment.location.time_zone
    context = {
        "appointment": appointment,
        "when": when(appointment.starts_at, zone),
        "price": money(appointment.price, appointment.currency),
        "policy": policy_lines(appointment.consultation_type, appointment.starts_at, zone),
    }
    return render(request, "scheduling/patient/booked.html", context)


@login_required
@require_GET
def appointment_payment(request: HttpRequest, public_id: str) -> HttpResponse:
    """Prepayment of a held slot: the checkout belongs to the payments app, which answers
    `appointment_checkout_url`; without it the page only says the time is held."""
    appointment = selectors.appointment_get_for(request.user, public_id)
    now = timezone.now()
    if appointment.status != AppointmentStatus.HELD or appointment.hold_expires_at <= now:
        if appointment.status in (AppointmentStatus.HELD, AppointmentStatus.EXPIRED):
            messages.warning(
                request, _("The time was held for you, but the hold has ended. Please book again.")
            )
        return redirect("scheduling:appointment_detail", public_id=appointment.public_id)
    checkout = next(
        filter(None, hooks.appointment_checkout_url.collect(appointment=appointment)), ""
    )
    if checkout:
        return redirect(checkout)
    zone = appointment.location.time_zone
    context = {
        "appointment": appointment,
        "when": when(appointment.starts_at, zone),
        "hold_until": when(appointment.hold_expires_at, zone, "H:i"),
        "price": money(appointment.price, appointment.currency),
        "policy": policy_lines(appointment.consultation_type, appointment.starts_at, zone),
    }
    return render(request, "scheduling/patient/payment.html", context)


@login_required
@require_GET
def appointment_calendar(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors.appointment_get_for(request.user, public_id)
    body = ics.appointment_ics(
        appointment,
        language=request.user.language,
        sequence=selectors.appointment_move_count(appointment),
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{ics.ics_filename(appointment)}"'
    return response


def _quote_text(quote: services.CancellationQuote) -> str:
    if not quote.allowed:
        return quote.message
    if quote.fee > 0:
        return _(
            "It is now less than the free cancellation period before the appointment, so "
            "cancelling costs %(fee)s."
        ) % {"fee": money(quote.fee, quote.currency)}
    return _("Cancelling now is free of charge.")


@login_required
@require_http_methods(["GET", "POST"])
def appointment_cancel(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors.appointment_get_for(request.user, public_id)
    detail = redirect("scheduling:appointment_detail", public_id=appointment.public_id)
    now = timezone.now()
    quote = services.cancellation_quote(appointment, by=request.user, now=now)
    if not _actions(appointment, quote, now)["can_cancel"]:
        messages.info(request, _("This appointment can no longer be cancelled online."))
        return detail
    form = CancelForm(request.POST or None, initial={"quoted_fee": quote.fee})
    status = 200
    if request.method == "POST" and form.is_valid():
        if quote.allowed and form.cleaned_data["quoted_fee"] != quote.fee:
            # The fee changed since the patient read it: show the new terms, ask again.
            messages.warning(
                request,
                _("The cancellation conditions have changed. Please read them again."),
            )
            form = CancelForm(
                initial={"quoted_fee": quote.fee, "reason": form.cleaned_data["reason"]}
            )
            status = 409
        elif quote.allowed:
            try:
                services.appointment_cancel(
                    by=request.user, appointment=appointment, reason=form.cleaned_data["reason"]
                )
            except (ValidationError, PermissionDenied) as exc:
                messages.error(request, " ".join(getattr(exc, "messages", [])) or str(exc))
                return detail
            if quote.fee > 0:
                messages.success(
                    request,
                    _("Your appointment is cancelled. A late cancellation fee of %(fee)s applies.")
                    % {"fee": money(quote.fee, quote.currency)},
                )
            else:
                messages.success(request, _("Your appointment is cancelled."))
            return detail
    elif request.method == "POST":
        status = 400
    zone = appointment.location.time_zone
    _decorate([appointment], now)
    context = {
        "appointment": appointment,
        "form": form,
        "quote": quote,
        "quote_text": _quote_text(quote),
        "price": money(appointment.price, appointment.currency),
        "phone": appointment.location.phone,
        "policy": policy_lines(appointment.consultation_type, appointment.starts_at, zone),
    }
    return render(request, "scheduling/patient/cancel.html", context, status=status)


def _reschedule_picker(request: HttpRequest, appointment: Appointment) -> dict:
    query = SlotQueryForm(request.GET)
    availability = selectors.availability_for(appointment.doctor, appointment.consultation_type)
    page_url = reverse("scheduling:appointment_reschedule", args=[appointment.public_id])
    slots_url = reverse("scheduling:appointment_reschedule_slots", args=[appointment.public_id])
    picker = _picker_context(
        availability,
        query.value("day"),
        pick_url=lambda iso: f"{page_url}?{urlencode({'start': iso})}",
        day_url=f"{page_url}?day=",
        poll_url="",
    )
    picker["poll_url"] = f"{slots_url}?{urlencode({'day': picker['selected_day'] or ''})}"
    return picker


def _can_move(request: HttpRequest, appointment: Appointment) -> bool:
    now = timezone.now()
    quote = services.cancellation_quote(appointment, by=request.user, now=now)
    return _actions(appointment, quote, now)["can_move"]


@login_required
@require_http_methods(["GET", "POST"])
def appointment_reschedule(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors.appointment_get_for(request.user, public_id)
    detail = redirect("scheduling:appointment_detail", public_id=appointment.public_id)
    if not _can_move(request, appointment):
        messages.info(
            request,
            _("This appointment can no longer be moved online. Please call the clinic."),
        )
        return detail
    now = timezone.now()
    _decorate([appointment], now)
    zone = appointment.location.time_zone
    context: dict = {"appointment": appointment}
    status = 200
    if request.method == "POST":
        form = RescheduleForm(request.POST)
        if form.is_valid():
            try:
                services.appointment_reschedule(
                    by=request.user, appointment=appointment, new_start=form.cleaned_data["start"]
                )
            except services.SlotTaken as exc:
                context.update(taken=True, alternatives=_choices(exc.alternatives, lambda iso: ""))
                return render(request, "scheduling/patient/reschedule.html", context, status=409)
            except (ValidationError, PermissionDenied) as exc:
                messages.error(request, " ".join(getattr(exc, "messages", [])) or str(exc))
                return detail
            messages.success(request, _("Your appointment has been moved."))
            return detail
        context.update(form=form)
        status = 400
    elif "start" in request.GET:
        form = RescheduleForm(request.GET)
        context.update(form=form)
        if not form.is_valid():
            status = 400
        else:
            start = form.cleaned_data["start"]
            ctype = appointment.consultation_type
            slot = selectors.slot_get(appointment.doctor, start, ctype)
            if slot is None:
                alternatives = selectors.alternatives_for(appointment.doctor, start, ctype)
                context.update(taken=True, alternatives=_choices(alternatives, lambda iso: ""))
            else:
                context.update(
                    new_slot=slot,
                    new_iso=format_utc_start(slot.start),
                    new_when=when(slot.start, slot.time_zone),
                    new_location=selectors.location_get(slot.location_id),
                )
    if "form" not in context or status == 400:
        context.update(_reschedule_picker(request, appointment))
    context["policy"] = policy_lines(appointment.consultation_type, appointment.starts_at, zone)
    return render(request, "scheduling/patient/reschedule.html", context, status=status)


@login_required
@require_GET
def appointment_reschedule_slots(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors.appointment_get_for(request.user, public_id)
    if not _can_move(request, appointment):
        return render(request, "scheduling/patient/_move_closed.html")
    return render(
        request,
        "scheduling/patient/_slot_picker.html",
        _reschedule_picker(request, appointment),
    )


@login_required
@require_http_methods(["GET", "POST"])
def appointment_review(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = selectors.appointment_get_for(request.user, public_id)
    detail = redirect("scheduling:appointment_detail", public_id=appointment.public_id)
    if appointment.status != AppointmentStatus.COMPLETED:
        messages.info(request, _("You can review a visit once it has taken place."))
        return detail
    if selectors.appointment_review(appointment) is not None:
        messages.info(request, _("You have already reviewed this visit."))
        return detail
    form = ReviewForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.review_submit(
                    by=request.user,
                    appointment=appointment,
                    rating=form.cleaned_data["rating"],
                    text=form.cleaned_data["text"],
                )
            except ValidationError as exc:
                if hasattr(exc, "error_dict"):
                    for field, errors in exc.error_dict.items():
                        form.add_error(field if field in form.fields else None, errors)
                else:
                    form.add_error(None, exc)
            except PermissionDenied as exc:
                raise Http404 from exc
            else:
                messages.success(
                    request,
                    _(
                        "Thank you. Your review will appear on the doctor's page once the "
                        "clinic has checked it."
                    ),
                )
                return detail
        status = 400
    _decorate([appointment], timezone.now())
    return render(
        request,
        "scheduling/patient/review.html",
        {"appointment": appointment, "form": form},
        status=status,
    )
