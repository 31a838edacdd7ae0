"""The clinic's time: consultation types, doctors' weekly templates and exceptions,
appointments (no overlaps, by the database), the live queue and the waitlist.

Locations, departments and specialties are in accounts (docs/adr/0004). All instants
are stored in UTC; wall-clock times of templates are in the location's time zone.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Location, PatientProfile, Specialty
from clinic.crypto import EncryptedTextField

HOLD_MINUTES = 10
WAITLIST_OFFER_MINUTES = 15


class ConsultationMode(models.TextChoices):
    IN_PERSON = "in_person", _("In person")
    VIDEO = "video", _("Video")


class LateCancellation(models.TextChoices):
    FEE = "fee", _("Allowed with a fee")
    NOT_ONLINE = "not_online", _("Not allowed online (call the clinic)")


class ConsultationType(models.Model):
    code = models.SlugField(_("code"), max_length=60, unique=True)
    name_ru = models.CharField(_("name (Russian)"), max_length=150)
    name_en = models.CharField(_("name (English)"), max_length=150)
    specialty = models.ForeignKey(
        Specialty,
        on_delete=models.PROTECT,
        related_name="consultation_types",
        verbose_name=_("specialty"),
    )
    mode = models.CharField(
        _("mode"),
        max_length=16,
        choices=ConsultationMode.choices,
        default=ConsultationMode.IN_PERSON,
    )
    duration_minutes = models.PositiveSmallIntegerField(
        _("duration (minutes)"),
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(480)],
    )
    price = models.DecimalField(_("price"), max_digits=10, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    prepayment_required = models.BooleanField(_("prepayment required"), default=False)
    free_cancellation_hours = models.PositiveSmallIntegerField(
        _("free cancellation until (hours before)"), default=24
    )
    late_cancellation = models.CharField(
        _("later cancellation"),
        max_length=16,
        choices=LateCancellation.choices,
        default=LateCancellation.FEE,
    )
    late_cancellation_fee = models.DecimalField(
        _("late cancellation fee"), max_digits=10, decimal_places=2, default=Decimal("0")
    )
    doctors = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="consultation_types",
        blank=True,
        limit_choices_to={"role": "doctor"},
        verbose_name=_("doctors"),
    )
    active = models.BooleanField(_("offered"), default=True)

    class Meta:
        ordering = ["specialty__code", "name_en"]
        verbose_name = _("consultation type")
        verbose_name_plural = _("consultation types")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        from django.utils.translation import get_language

        return self.name_ru if (get_language() or "ru").startswith("ru") else self.name_en

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class WorkingHours(models.Model):
    """A doctor's weekly template at one location: on `weekday`, from `start` to `end`
    (local wall-clock time of the location), cut into slots of `slot_minutes`."""

    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="working_hours",
        verbose_name=_("doctor"),
    )
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="working_hours", verbose_name=_("location")
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    start = models.TimeField(_("from"))
    end = models.TimeField(_("until"))
    slot_minutes = models.PositiveSmallIntegerField(
        _("slot length (minutes)"),
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(240)],
    )
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)

    class Meta:
        ordering = ["doctor", "weekday", "start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")), name="working_hours_end_after_start"
            ),
        ]
        verbose_name = _("working hours")
        verbose_name_plural = _("working hours")

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}–{self.end:%H:%M}"


class WorkingHoursBreak(models.Model):
    working_hours = models.ForeignKey(WorkingHours, on_delete=models.CASCADE, related_name="breaks")
    start = models.TimeField(_("from"))
    end = models.TimeField(_("until"))

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="break_end_after_start"),
        ]
        verbose_name = _("break")
        verbose_name_plural = _("breaks")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


class ExceptionKind(models.TextChoices):
    VACATION = "vacation", _("Vacation")
    SICK = "sick", _("Sick day")
    BLOCKED = "blocked", _("Blocked time")
    EXTRA = "extra", _("Extra hours")


class ScheduleException(models.Model):
    """A change to the template: time off (vacation, sick, blocked) or extra hours."""

    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="schedule_exceptions",
        verbose_name=_("doctor"),
    )
    location = models.ForeignKey(
        Location,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("location"),
        help_text=_("Required for extra hours."),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=ExceptionKind.choices)
    during = DateTimeRangeField(_("period"))
    slot_minutes = models.PositiveSmallIntegerField(_("slot length (minutes)"), default=30)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["doctor", "during"]
        verbose_name = _("schedule exception")
        verbose_name_plural = _("schedule exceptions")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.during.lower:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        if self.kind == ExceptionKind.EXTRA and self.location_id is None:
            raise ValidationError({"location": _("Extra hours need a location.")})


class CapacityOverride(models.Model):
    """More than one patient in a slot (e.g. vaccinations): staff only, with a reason."""

    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="capacity_overrides"
    )
    during = DateTimeRangeField(_("period"))
    capacity = models.PositiveSmallIntegerField(
        _("patients per slot"), validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    reason = models.CharField(_("reason"), max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["doctor", "during"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="capacity_override_has_reason"),
        ]
        verbose_name = _("capacity override")
        verbose_name_plural = _("capacity overrides")

    def __str__(self) -> str:
        return f"×{self.capacity} {self.during.lower:%Y-%m-%d %H:%M}"


class AppointmentStatus(models.TextChoices):
    HELD = "held", _("Held for checkout")
    BOOKED = "booked", _("Booked")
    CONFIRMED = "confirmed", _("Confirmed")
    ARRIVED = "arrived", _("Arrived")
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")
    NO_SHOW = "no_show", _("Did not come")
    EXPIRED = "expired", _("Hold expired")


# Statuses that occupy the doctor's time: the exclusion constraint applies to these.
ACTIVE_STATUSES = (
    AppointmentStatus.HELD,
    AppointmentStatus.BOOKED,
    AppointmentStatus.CONFIRMED,
    AppointmentStatus.ARRIVED,
    AppointmentStatus.IN_PROGRESS,
)
UPCOMING_STATUSES = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


class AppointmentSource(models.TextChoices):
    PORTAL = "portal", _("Patient portal")
    RECEPTION = "reception", _("Reception")
    WAITLIST = "waitlist", _("Waitlist offer")
    MIS = "mis", _("Medical information system")


class Appointment(models.Model):
    patient = models.ForeignKey(
        PatientProfile,
        on_delete=models.PROTECT,
        related_name="appointments",
        verbose_name=_("patient"),
    )
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="doctor_appointments",
        verbose_name=_("doctor"),
    )
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="appointments", verbose_name=_("location")
    )
    consultation_type = models.ForeignKey(
        ConsultationType,
        on_delete=models.PROTECT,
        related_name="appointments",
        verbose_name=_("consultation type"),
    )
    during = DateTimeRangeField(_("time"))
    # Seats let a slot with a capacity override take more than one patient while the
    # exclusion constraint still forbids two appointments in the same seat.
    seat = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=AppointmentStatus.choices,
        default=AppointmentStatus.HELD,
        db_index=True,
    )
    hold_expires_at = models.DateTimeField(_("hold expires"), null=True, blank=True)
    source = models.CharField(
        _("booked through"),
        max_length=16,
        choices=AppointmentSource.choices,
        default=AppointmentSource.PORTAL,
    )
    price = models.DecimalField(_("price"), max_digits=10, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(max_length=3, default="RUB")
    cancellation_fee = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    cancellation_reason = models.CharField(_("cancellation reason"), max_length=200, blank=True)
    patient_note = EncryptedTextField(_("note for the doctor"), blank=True)
    # Names the appointment in links and the video room: unguessable, not the row id.
    public_id = models.UUIDField(unique=True, editable=False, default=uuid.uuid4)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-during"]
        indexes = [
            models.Index(fields=["patient", "status"]),
            models.Index(fields=["doctor", "status"]),
            models.Index(fields=["status", "hold_expires_at"]),
        ]
        constraints = [
            ExclusionConstraint(
                name="appointment_no_overlap_per_doctor_seat",
                expressions=[
                    ("doctor", RangeOperators.EQUAL),
                    ("seat", RangeOperators.EQUAL),
                    ("during", RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=[s.value for s in ACTIVE_STATUSES]),
            ),
            models.CheckConstraint(
                condition=~Q(status=AppointmentStatus.HELD) | Q(hold_expires_at__isnull=False),
                name="appointment_hold_has_expiry",
            ),
        ]
        verbose_name = _("appointment")
        verbose_name_plural = _("appointments")

    def __str__(self) -> str:
        return f"{_('Appointment')} #{self.pk} {self.get_status_display()}"

    @property
    def starts_at(self):  # noqa: ANN201
        return self.during.lower

    @property
    def ends_at(self):  # noqa: ANN201
        return self.during.upper

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def local_start(self):  # noqa: ANN201
        return timezone.localtime(self.starts_at, self.location.tzinfo)


class AppointmentEventKind(models.TextChoices):
    CREATED = "created", _("Created")
    STATUS = "status", _("Status changed")
    MOVED = "moved", _("Rescheduled")


class AppointmentEvent(models.Model):
    """The appointment's history: every status change and move, who and when."""

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=AppointmentEventKind.choices)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    from_during = DateTimeRangeField(null=True, blank=True)
    to_during = DateTimeRangeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("appointment event")
        verbose_name_plural = _("appointment events")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at:%Y-%m-%d %H:%M}"


class DoctorReview(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for approval")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    appointment = models.OneToOneField(Appointment, on_delete=models.CASCADE, related_name="review")
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews_received"
    )
    rating = models.PositiveSmallIntegerField(
        _("rating"), validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    text = models.TextField(_("review text"), blank=True, max_length=2000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    moderated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    moderated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__gte=1, rating__lte=5), name="review_rating_1_5"
            ),
        ]
        verbose_name = _("doctor review")
        verbose_name_plural = _("doctor reviews")

    def __str__(self) -> str:
        return f"{self.rating}★ {self.get_status_display()}"


# --- Live queue ------------------------------------------------------------------------


class QueueTicketStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    CALLED = "called", _("Called")
    IN_SERVICE = "in_service", _("With the doctor")
    DONE = "done", _("Done")
    NO_SHOW = "no_show", _("Did not come")
    CANCELLED = "cancelled", _("Cancelled")


class QueueTicket(models.Model):
    """A place in the day's live queue at a location (optionally for one doctor): a
    walk-in, or a pre-booked patient who arrived. Displays show numbers only."""

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="queue_tickets")
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="queue_tickets",
    )
    service_date = models.DateField()
    number = models.PositiveIntegerField()
    patient = models.ForeignKey(
        PatientProfile,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="queue_tickets",
    )
    appointment = models.OneToOneField(
        Appointment, null=True, blank=True, on_delete=models.SET_NULL, related_name="queue_ticket"
    )
    status = models.CharField(
        max_length=16, choices=QueueTicketStatus.choices, default=QueueTicketStatus.WAITING
    )
    created_at = models.DateTimeField(default=timezone.now)
    called_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service_date", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["location", "service_date", "number"],
                name="queue_ticket_number_per_location_day",
            ),
        ]
        verbose_name = _("queue ticket")
        verbose_name_plural = _("queue tickets")

    def __str__(self) -> str:
        return f"№{self.number} {self.service_date}"


# --- Waitlist ------------------------------------------------------------------------------


class WaitlistStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    OFFERED = "offered", _("Offer open")
    ACCEPTED = "accepted", _("Accepted")
    CANCELLED = "cancelled", _("Cancelled")


class WaitlistEntry(models.Model):
    """A patient wants an earlier slot with a doctor, or with any doctor of a specialty."""

    patient = models.ForeignKey(PatientProfile, on_delete=models.CASCADE, related_name="waitlist")
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    specialty = models.ForeignKey(
        Specialty, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    consultation_type = models.ForeignKey(
        ConsultationType, on_delete=models.PROTECT, related_name="+"
    )
    wanted_before = models.DateTimeField(_("wanted before"))
    status = models.CharField(
        max_length=16, choices=WaitlistStatus.choices, default=WaitlistStatus.WAITING, db_index=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(doctor__isnull=False) | Q(specialty__isnull=False),
                name="waitlist_doctor_or_specialty",
            ),
        ]
        verbose_name = _("waitlist entry")
        verbose_name_plural = _("waitlist entries")

    def __str__(self) -> str:
        return f"{_('Waitlist')} #{self.pk} {self.get_status_display()}"


class WaitlistOfferStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    EXPIRED = "expired", _("Expired")


class WaitlistOffer(models.Model):
    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="offers")
    appointment = models.OneToOneField(Appointment, on_delete=models.CASCADE, related_name="offer")
    offered_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=16,
        choices=WaitlistOfferStatus.choices,
        default=WaitlistOfferStatus.OPEN,
        db_index=True,
    )

    class Meta:
        ordering = ["-offered_at"]
        verbose_name = _("waitlist offer")
        verbose_name_plural = _("waitlist offers")

    def __str__(self) -> str:
        return f"{_('Offer')} #{self.pk} {self.get_status_display()}"
