"""Free slots, computed from weekly templates, exceptions, capacity overrides and the
appointments that occupy time. A fixed handful of queries for any number of doctors and
days; the rest is arithmetic in Python.

Wall-clock times are the location's: a template "09:00–13:00" means 09:00 local on every
matching day, whatever the UTC offset that day. On the night the clocks go forward, local
times that do not exist are skipped; when they go back, a repeated local time is offered
once (its first occurrence).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils import timezone

from scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    CapacityOverride,
    ConsultationType,
    ExceptionKind,
    ScheduleException,
    WorkingHours,
)

TIME_OFF = (ExceptionKind.VACATION, ExceptionKind.SICK, ExceptionKind.BLOCKED)
UTC = ZoneInfo("UTC")


@dataclass(frozen=True, order=True)
class Slot:
    start: datetime  # UTC
    end: datetime  # UTC (start + the consultation's duration)
    doctor_id: int
    location_id: int
    time_zone: str
    seats_free: int = 1

    def local_start(self) -> datetime:
        return self.start.astimezone(ZoneInfo(self.time_zone))

    @property
    def key(self) -> str:
        """Stable identifier for forms: doctor, location and UTC start."""
        return f"{self.doctor_id}:{self.location_id}:{self.start.strftime('%Y%m%dT%H%M%SZ')}"


def local_to_utc(day: date, wall: time, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall-clock time, or None if that time does not exist."""
    local = datetime.combine(day, wall, tzinfo=tz)
    utc = local.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None  # in the gap when the clocks go forward
    return utc


@dataclass
class _Block:
    """A stretch of working time at a location, cut into slots."""

    location_id: int
    time_zone: str
    start: datetime
    end: datetime
    slot_minutes: int


def _template_blocks(hours: WorkingHours, day: date, breaks: list) -> list[_Block]:
    tz = ZoneInfo(hours.location.time_zone)
    pieces = [(hours.start, hours.end)]
    for brk in sorted(breaks, key=lambda b: b.start):
        cut = []
        for start, end in pieces:
            if brk.end <= start or brk.start >= end:
                cut.append((start, end))
                continue
            if brk.start > start:
                cut.append((start, brk.start))
            if brk.end < end:
                cut.append((brk.end, end))
        pieces = cut
    blocks = []
    for start, end in pieces:
        # Each slot start is placed by its own wall-clock time (see module docstring).
        blocks.append(
            _Block(
                hours.location_id,
                hours.location.time_zone,
                datetime.combine(day, start, tzinfo=tz),
                datetime.combine(day, end, tzinfo=tz),
                hours.slot_minutes,
            )
        )
    return blocks


def _slot_starts(block: _Block) -> Iterable[datetime]:
    tz = ZoneInfo(block.time_zone)
    day = block.start.date()
    minute = block.start.hour * 60 + block.start.minute
    end_minute = block.end.hour * 60 + block.end.minute
    seen: set[datetime] = set()
    while minute + block.slot_minutes <= end_minute:
        utc = local_to_utc(day, time(minute // 60, minute % 60), tz)
        if utc is not None and utc not in seen:
            seen.add(utc)
            yield utc
        minute += block.slot_minutes


def _block_end_utc(block: _Block) -> datetime:
    tz = ZoneInfo(block.time_zone)
    end = local_to_utc(block.end.date(), block.end.timetz().replace(tzinfo=None), tz)
    return end or block.end.astimezone(UTC)


def free_slots(
    doctor_ids: Iterable[int],
    start_day: date,
    days: int,
    *,
    consultation_type: ConsultationType | None = None,
    now: datetime | None = None,
    include_full: bool = False,
) -> dict[int, list[Slot]]:
    """Free slots per doctor from `start_day` for `days` days (days in each location's
    own calendar). `include_full` also returns slots with no seat left (seats_free=0)."""
    doctor_ids = list(doctor_ids)
    now = now or timezone.now()
    end_day = start_day + timedelta(days=days)
    # Everything that can touch the period, with a day's margin for time zones.
    window_start = datetime.combine(start_day - timedelta(days=1), time.min, tzinfo=UTC)
    window_end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=UTC)

    templates = list(
        WorkingHours.objects.filter(doctor_id__in=doctor_ids)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lt=end_day))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=start_day))
        .select_related("location")
        .prefetch_related("breaks")
    )
    exceptions = list(
        ScheduleException.objects.filter(
            doctor_id__in=doctor_ids, during__overlap=(window_start, window_end)
        ).select_related("location")
    )
    overrides = list(
        CapacityOverride.objects.filter(
            doctor_id__in=doctor_ids, during__overlap=(window_start, window_end)
        )
    )
    busy = list(
        Appointment.objects.filter(
            doctor_id__in=doctor_ids,
            status__in=ACTIVE_STATUSES,
            during__overlap=(window_start, window_end),
        )
        .exclude(status=AppointmentStatus.HELD, hold_expires_at__lte=now)
        # No ordering (the model's default sorts by range, costly at scale); the bounds as
        # plain timestamps, which are much cheaper to load than range objects.
        .order_by()
        .values_list("doctor_id", "during__startswith", "during__endswith")
    )

    duration = consultation_type.duration if consultation_type else None
    blocks: dict[int, list[_Block]] = defaultdict(list)
    for hours in templates:
        tz = ZoneInfo(hours.location.time_zone)
        breaks = list(hours.breaks.all())
        day = start_day
        while day < end_day:
            valid = (hours.valid_from is None or hours.valid_from <= day) and (
                hours.valid_until is None or hours.valid_until >= day
            )
            if valid and day.weekday() == hours.weekday:
                blocks[hours.doctor_id].extend(_template_blocks(hours, day, breaks))
            day += timedelta(days=1)
        del tz
    time_off: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for exc in exceptions:
        if exc.kind == ExceptionKind.EXTRA and exc.location is not None:
            tz = ZoneInfo(exc.location.time_zone)
            local_start = exc.during.lower.astimezone(tz)
            local_end = exc.during.upper.astimezone(tz)
            if start_day <= local_start.date() < end_day:
                blocks[exc.doctor_id].append(
                    _Block(
                        exc.location_id,
                        exc.location.time_zone,
                        local_start,
                        local_end,
                        exc.slot_minutes,
                    )
                )
        elif exc.kind in TIME_OFF:
            time_off[exc.doctor_id].append((exc.during.lower, exc.during.upper))
    busy_by_doctor: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for doctor_id, lower, upper in busy:
        busy_by_doctor[doctor_id].append((lower, upper))
    # Sorted starts per doctor, to find the intervals overlapping a slot by bisection
    # instead of scanning every appointment for every slot.
    busy_index: dict[int, tuple[list[datetime], list[tuple[datetime, datetime]], timedelta]] = {}
    for doctor_id, intervals in busy_by_doctor.items():
        intervals.sort()
        longest = max((e - s for s, e in intervals), default=timedelta(0))
        busy_index[doctor_id] = ([s for s, _e in intervals], intervals, longest)
    capacity_by_doctor: dict[int, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for override in overrides:
        capacity_by_doctor[override.doctor_id].append(
            (override.during.lower, override.during.upper, override.capacity)
        )

    result: dict[int, list[Slot]] = {}
    for doctor_id in doctor_ids:
        slots: dict[datetime, Slot] = {}
        for block in blocks.get(doctor_id, ()):
            block_end = _block_end_utc(block)
            length = duration or timedelta(minutes=block.slot_minutes)
            for start in _slot_starts(block):
                end = start + length
                if start <= now or end > block_end or start in slots:
                    continue
                if any(s < end and start < e for s, e in time_off.get(doctor_id, ())):
                    continue
                capacity = 1
                for s, e, cap in capacity_by_doctor.get(doctor_id, ()):
                    if s <= start < e:
                        capacity = cap
                taken = _overlapping(busy_index.get(doctor_id), start, end)
                seats = capacity - taken
                if seats > 0 or include_full:
                    slots[start] = Slot(
                        start, end, doctor_id, block.location_id, block.time_zone, max(seats, 0)
                    )
        result[doctor_id] = [slots[s] for s in sorted(slots)]
    return result


def _overlapping(
    index: tuple[list[datetime], list[tuple[datetime, datetime]], timedelta] | None,
    start: datetime,
    end: datetime,
) -> int:
    """How many busy intervals overlap [start, end): only those starting within
    `longest` before `start` and before `end` can."""
    if index is None:
        return 0
    starts, intervals, longest = index
    lo = bisect_left(starts, start - longest)
    hi = bisect_left(starts, end)
    return sum(1 for s, e in intervals[lo:hi] if s < end and start < e)


def slot_for(
    doctor_id: int,
    start: datetime,
    consultation_type: ConsultationType,
    *,
    now: datetime | None = None,
) -> Slot | None:
    """The slot starting at `start` if the doctor offers it and it has a seat free."""
    tz_days = {
        start.astimezone(ZoneInfo(h.location.time_zone)).date()
        for h in WorkingHours.objects.filter(doctor_id=doctor_id).select_related("location")
    }
    tz_days.add(start.astimezone(UTC).date())
    for day in sorted(tz_days):
        for slot in free_slots([doctor_id], day, 1, consultation_type=consultation_type, now=now)[
            doctor_id
        ]:
            if slot.start == start:
                return slot
    return None


def nearest_free_slots(
    doctor_ids: Iterable[int],
    around: datetime,
    consultation_type: ConsultationType,
    *,
    limit: int = 5,
    days: int = 14,
) -> list[Slot]:
    """Free slots closest in time to `around` (the alternatives when a slot is taken)."""
    doctor_ids = list(doctor_ids)
    first_day = (around - timedelta(days=1)).date()
    today = timezone.now().date()
    first_day = max(first_day, today - timedelta(days=1))
    found = free_slots(doctor_ids, first_day, days, consultation_type=consultation_type)
    candidates = [slot for slots in found.values() for slot in slots]
    candidates.sort(key=lambda slot: (abs((slot.start - around).total_seconds()), slot.start))
    return sorted(candidates[:limit])
