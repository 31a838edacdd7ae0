"""How results look on a page: flags as colour, words and an icon (never colour alone),
numbers in the reader's locale, and trend charts drawn as inline SVG on the server.

No database access here: views pass in what the selectors loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from records.models import Interpretation, LabReport, Observation, ReviewState, ValueType

# --- Flags --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    code: str
    label: str  # the words ("High", "Critically low")
    variant: str  # CSS modifier: normal, high, low, critical, abnormal
    icon: str  # a glyph, hidden from screen readers (the label says it)

    @property
    def abnormal(self) -> bool:
        return self.code not in ("", Interpretation.NORMAL)


FLAGS = {
    Interpretation.NORMAL: ("normal", "\u2713"),  # ✓
    Interpretation.HIGH: ("high", "\u25b2"),  # ▲
    Interpretation.LOW: ("low", "\u25bc"),  # ▼
    Interpretation.CRITICAL_HIGH: ("critical", "\u23eb"),  # ⏫
    Interpretation.CRITICAL_LOW: ("critical", "\u23ec"),  # ⏬
    Interpretation.ABNORMAL: ("abnormal", "!"),
}


def flag_of(code: str) -> Flag | None:
    if not code or code not in FLAGS:
        return None
    variant, icon = FLAGS[code]
    return Flag(code=code, label=str(Interpretation(code).label), variant=variant, icon=icon)


# --- Numbers and ranges --------------------------------------------------------------------


def plain_decimal(value: Decimal | None) -> str:
    """6.1000 → "6.1", 120 → "120" (no exponent), before localisation."""
    if value is None:
        return ""
    text = format(Decimal(value).normalize(), "f")
    return text


def number(value: Decimal | None) -> str:
    """A decimal in the reader's locale ("5,6" in Russian), without trailing zeros."""
    if value is None:
        return ""
    text = plain_decimal(value)
    places = len(text.split(".")[1]) if "." in text else 0
    return formats.number_format(Decimal(text), decimal_pos=places, use_l10n=True)


def reference_range(obs: Observation) -> str:
    low, high = obs.reference_low, obs.reference_high
    if low is not None and high is not None:
        text = f"{number(low)}\u2013{number(high)}"
    elif low is not None:
        text = f"\u2265 {number(low)}"
    elif high is not None:
        text = f"\u2264 {number(high)}"
    else:
        return obs.reference_text
    return text


def value_text(obs: Observation) -> str:
    if obs.value_type == ValueType.QUANTITY and obs.value_quantity is not None:
        return number(obs.value_quantity)
    if obs.value_type == ValueType.CODED:
        return obs.value_display or obs.value_code
    return obs.value_text


@dataclass
class ObservationRow:
    obs: Observation
    value: str
    unit: str
    range: str
    flag: Flag | None
    trend: bool  # a numeric analyte: has a trend chart


def observation_rows(report: LabReport) -> list[ObservationRow]:
    return [
        ObservationRow(
            obs=obs,
            value=value_text(obs),
            unit=obs.unit,
            range=reference_range(obs),
            flag=flag_of(obs.interpretation),
            trend=obs.value_type == ValueType.QUANTITY,
        )
        for obs in report.observations.all()
    ]


def abnormal_count(report: LabReport) -> int:
    return sum(
        1 for obs in report.observations.all() if (flag_of(obs.interpretation) or _N).abnormal
    )


_N = Flag(code="", label="", variant="", icon="")


def review_badge(report: LabReport) -> tuple[str, str]:
    """(variant, words) of a report's review/release state, for staff pages."""
    if report.review_state == ReviewState.PENDING:
        return "pending", _("Awaiting review")
    if report.released:
        return "success", _("Released to the patient")
    if report.status in ("preliminary",):
        return "neutral", _("Preliminary: not released")
    return "warning", _("Not released")


def local_time(moment: datetime | None, fmt: str = "j E Y, H:i", zone: str = "") -> str:
    """A moment in the clinic's time zone (or the given one, e.g. a visit's location)."""
    if moment is None:
        return ""
    local = moment.astimezone(ZoneInfo(zone or settings.CLINIC_TIME_ZONE))
    return formats.date_format(local, fmt)


def visit_time(moment: datetime | None, location: object = None) -> str:
    """A visit's time in its location's zone, the zone named: "12 May 2026, 10:30
    (Asia/Yekaterinburg)"."""
    if moment is None:
        return ""
    zone = getattr(location, "time_zone", "") or settings.CLINIC_TIME_ZONE
    return f"{local_time(moment, zone=zone)} ({zone})"


# --- Trend chart ----------------------------------------------------------------------------

WIDTH, HEIGHT = 720, 300
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 48, 20, 56


@dataclass
class ChartPoint:
    x: float
    y: float
    value: str
    when: str
    flag: Flag | None
    report_public_id: str
    out_of_range: bool
    # A triangle for values outside the range (shape as well as colour).
    marker: str = ""


@dataclass
class ChartTick:
    pos: float
    label: str


@dataclass
class TrendChart:
    name: str
    loinc_code: str
    unit: str
    points: list[ChartPoint]
    y_ticks: list[ChartTick] = field(default_factory=list)
    x_ticks: list[ChartTick] = field(default_factory=list)
    band: tuple[float, float] | None = None  # (y top, height) of the reference range
    band_text: str = ""
    path: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = PAD_LEFT
    plot_right: int = WIDTH - PAD_RIGHT
    plot_top: int = PAD_TOP
    plot_bottom: int = HEIGHT - PAD_BOTTOM
    summary: str = ""

    @property
    def empty(self) -> bool:
        return not self.points

    @property
    def plot_width(self) -> int:
        return self.plot_right - self.plot_left


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    magnitude = 10 ** int(f"{raw:e}".split("e")[1])
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * magnitude
        if step >= raw:
            return step
    return 10 * magnitude


def _triangle(x: float, y: float, size: float = 7.0) -> str:
    base = y + size * 0.8
    return f"{x:.1f},{y - size:.1f} {x - size:.1f},{base:.1f} {x + size:.1f},{base:.1f}"


def trend_chart(series: list[Observation], *, loinc_code: str) -> TrendChart:
    """Geometry of a line chart of one analyte over time with its reference band. The
    band is the most recent report's range (ranges can differ between laboratories;
    the table below the chart gives each value's own range)."""
    numeric = [o for o in series if o.value_quantity is not None]
    latest = series[-1] if series else None
    chart = TrendChart(
        name=latest.name if latest else loinc_code,
        loinc_code=loinc_code,
        unit=latest.unit if latest else "",
        points=[],
    )
    if not numeric:
        return chart
    low = latest.reference_low if latest else None
    high = latest.reference_high if latest else None
    values = [float(o.value_quantity) for o in numeric]
    bounds = values + [float(b) for b in (low, high) if b is not None]
    lo, hi = min(bounds), max(bounds)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    step = _nice_step(hi - lo)
    axis_lo = (lo // step) * step
    axis_hi = -((-hi) // step) * step
    if axis_hi == axis_lo:
        axis_hi = axis_lo + step

    top, bottom = chart.plot_top, chart.plot_bottom
    left, right = chart.plot_left + 12, chart.plot_right - 12

    def y_of(value: float) -> float:
        return bottom - (value - axis_lo) / (axis_hi - axis_lo) * (bottom - top)

    times = [o.report.effective_at.timestamp() for o in numeric]
    t0, t1 = min(times), max(times)

    def x_of(t: float, index: int) -> float:
        if len(numeric) == 1:
            return (left + right) / 2
        if t1 == t0:  # all on one instant: spread them evenly
            return left + index * (right - left) / (len(numeric) - 1)
        return left + (t - t0) / (t1 - t0) * (right - left)

    tick = axis_lo
    while tick <= axis_hi + step / 1000:
        chart.y_ticks.append(ChartTick(pos=y_of(tick), label=number(Decimal(str(round(tick, 6))))))
        tick += step

    for index, obs in enumerate(numeric):
        flag = flag_of(obs.interpretation)
        x, y = x_of(times[index], index), y_of(float(obs.value_quantity))
        out = bool(flag and flag.abnormal)
        chart.points.append(
            ChartPoint(
                x=x,
                y=y,
                value=number(obs.value_quantity),
                when=local_time(obs.report.effective_at, "j E Y"),
                flag=flag,
                report_public_id=str(obs.report.public_id),
                out_of_range=out,
                marker=_triangle(x, y) if out else "",
            )
        )
    chart.path = " ".join(
        f"{'M' if i == 0 else 'L'}{p.x:.1f},{p.y:.1f}" for i, p in enumerate(chart.points)
    )
    # Dates along the bottom: the first, the last and up to three between, apart enough
    # not to overlap (the last one wins a clash).
    count = len(chart.points)
    picks = sorted({0, count - 1, *(round(i * (count - 1) / 4) for i in range(1, 4))})
    for i in picks:
        tick = ChartTick(
            pos=chart.points[i].x, label=local_time(numeric[i].report.effective_at, "d.m.Y")
        )
        if chart.x_ticks and tick.pos - chart.x_ticks[-1].pos < 110:
            if i == count - 1:
                chart.x_ticks[-1] = tick
            continue
        chart.x_ticks.append(tick)
    if low is not None or high is not None:
        band_low = float(low) if low is not None else axis_lo
        band_high = float(high) if high is not None else axis_hi
        y_top, y_bottom = y_of(band_high), y_of(band_low)
        chart.band = (y_top, max(y_bottom - y_top, 1.0))
        chart.band_text = reference_range(latest)
    first, last = chart.points[0], chart.points[-1]
    chart.summary = _("%(count)d values from %(first)s to %(last)s; latest %(value)s %(unit)s.") % {
        "count": count,
        "first": first.when,
        "last": last.when,
        "value": last.value,
        "unit": chart.unit,
    }
    return chart


TREND_HELP = gettext_lazy(
    "The shaded band is the reference range of the most recent result. Values outside "
    "their range are drawn as triangles."
)


@dataclass
class TrendRow:
    when: str
    value: str
    unit: str
    range: str
    flag: Flag | None
    report_public_id: str
    released: bool


def trend_rows(series: list[Observation]) -> list[TrendRow]:
    """The chart's data as a table (newest first): every value with its own range."""
    return [
        TrendRow(
            when=local_time(obs.report.effective_at),
            value=value_text(obs),
            unit=obs.unit,
            range=reference_range(obs),
            flag=flag_of(obs.interpretation),
            report_public_id=str(obs.report.public_id),
            released=obs.report.released,
        )
        for obs in reversed(series)
    ]
