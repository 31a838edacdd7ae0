"""The audit trail in Django admin: read-only, filtered, exportable as CSV; reading it is
itself recorded. Break-glass reviews are added here (through the service), never edited.

Only superusers and holders of `audit.view_auditevent` (the admin group) see any of it.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from audit.chain import format_occurred_at
from audit.models import AuditAction, AuditEvent, BreakGlassReview, ReviewOutcome
from audit.selectors import with_review_outcome
from audit.services import audit_record, break_glass_review, break_glass_review_validate

EXPORT_COLUMNS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "request_id",
    "ip_address",
    "reason",
    "break_glass",
    "hash",
)
# Query parameters that shape the page rather than the rows.
_NOT_FILTERS = {"p", "o", "e", "_changelist_filters", "_popup", "_to_field", "_facets"}


def _filters_of(request: HttpRequest) -> dict[str, str]:
    return {k: v for k, v in request.GET.items() if k not in _NOT_FILTERS}


# --- Filters ----------------------------------------------------------------------------


class InputFilter(admin.ListFilter):
    """A sidebar filter with typed-in values (ids, dates) instead of a list of links."""

    template = "admin/audit/input_filter.html"
    # (GET parameter, label, input type)
    inputs: tuple[tuple[str, Any, str], ...] = ()

    def __init__(self, request: HttpRequest, params: dict, model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        self.error = ""
        for name, _label, _type in self.inputs:
            if name in params:
                value = params.pop(name)
                value = (value[-1] if isinstance(value, list) else value).strip()
                if value:
                    self.used_parameters[name] = value
        self.cleaned: dict[str, Any] = {}
        try:
            self.cleaned = self.clean(dict(self.used_parameters))
        except ValidationError as error:
            self.error = " ".join(error.messages)

    def clean(self, values: dict[str, str]) -> dict[str, Any]:
        return values

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return [name for name, _label, _type in self.inputs]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.error:
            return queryset.none()
        return self.filter(queryset, self.cleaned) if self.cleaned else queryset

    def filter(self, queryset: QuerySet, values: dict[str, Any]) -> QuerySet:
        raise NotImplementedError

    def choices(self, changelist: Any) -> Iterable[dict[str, Any]]:
        mine = set(self.expected_parameters()) | {"p", "e"}
        yield {
            "fields": [
                {
                    "name": name,
                    "id": f"filter-{name}",
                    "label": label,
                    "type": kind,
                    "value": self.used_parameters.get(name, ""),
                }
                for name, label, kind in self.inputs
            ],
            "hidden": [
                (key, value)
                for key, values in self.request.GET.lists()
                if key not in mine
                for value in values
            ],
            "active": bool(self.used_parameters),
            "clear_url": changelist.get_query_string(remove=self.expected_parameters()),
            "error": self.error,
        }


def _user_id(value: str, label: str) -> int:
    if not value.isdigit():
        raise ValidationError(_("%(label)s must be a user id (a number).") % {"label": label})
    return int(value)


class ActorFilter(InputFilter):
    title = _("actor (user id)")
    inputs = (("actor", _("Actor user id"), "text"),)

    def clean(self, values: dict[str, str]) -> dict[str, Any]:
        return {k: _user_id(v, str(_("Actor"))) for k, v in values.items()}

    def filter(self, queryset: QuerySet, values: dict[str, Any]) -> QuerySet:
        return queryset.filter(actor_id=values["actor"])


class PatientFilter(InputFilter):
    title = _("patient (user id)")
    inputs = (("patient", _("Patient user id"), "text"),)

    def clean(self, values: dict[str, str]) -> dict[str, Any]:
        return {k: _user_id(v, str(_("Patient"))) for k, v in values.items()}

    def filter(self, queryset: QuerySet, values: dict[str, Any]) -> QuerySet:
        return queryset.filter(patient_id=values["patient"])


class OccurredBetweenFilter(InputFilter):
    """From/to dates, both inclusive, in the viewer's time zone."""

    title = _("date range")
    inputs = (
        ("occurred_from", _("From"), "date"),
        ("occurred_to", _("To"), "date"),
    )

    def clean(self, values: dict[str, str]) -> dict[str, Any]:
        cleaned: dict[str, dt.date] = {}
        for name, value in values.items():
            try:
                day = parse_date(value)
            except ValueError:
                day = None
            if day is None:
                raise ValidationError(_("Dates are written YYYY-MM-DD."))
            cleaned[name] = day
        start, end = cleaned.get("occurred_from"), cleaned.get("occurred_to")
        if start and end and start > end:
            raise ValidationError(_("The range ends before it starts."))
        return cleaned

    def filter(self, queryset: QuerySet, values: dict[str, Any]) -> QuerySet:
        def start_of(day: dt.date) -> dt.datetime:
            return timezone.make_aware(dt.datetime.combine(day, dt.time.min))

        if "occurred_from" in values:
            queryset = queryset.filter(occurred_at__gte=start_of(values["occurred_from"]))
        if "occurred_to" in values:
            next_day = values["occurred_to"] + dt.timedelta(days=1)
            queryset = queryset.filter(occurred_at__lt=start_of(next_day))
        return queryset


# --- CSV export -----------------------------------------------------------------------------


class _Echo:
    """csv.writer writes into this and gets the line back, for streaming."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return format_occurred_at(value)
    # Text that a spreadsheet would run as a formula gets a leading quote (CSV injection).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_lines(rows: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for row in rows.values_list(*EXPORT_COLUMNS).iterator(chunk_size=2000):
        yield writer.writerow([_cell(value) for value in row])


# --- Audit events -----------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "actor_id",
        "actor_role",
        "action",
        "object_type",
        "object_id",
        "patient_id",
        "break_glass",
        "review_state",
    )
    list_display_links = ("seq",)
    list_filter = (
        ActorFilter,
        PatientFilter,
        "action",
        "break_glass",
        "actor_role",
        OccurredBetweenFilter,
    )
    date_hierarchy = "occurred_at"
    search_fields = ("=request_id", "=object_id")
    search_help_text = _("Exact request id or object id.")
    ordering = ("-seq",)
    actions = ("export_csv",)
    # A full count of a large log on every page is slow and says little.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "seq",
        "occurred_at",
        "actor_id",
        "actor_role",
        "action",
        "object_type",
        "object_id",
        "patient_id",
        "break_glass",
        "reason",
        "request_id",
        "ip_address",
        "user_agent",
        "detail",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return with_review_outcome(super().get_queryset(request))

    @admin.display(description=_("review"), ordering="review_outcome")
    def review_state(self, obj: AuditEvent) -> str:
        if not obj.break_glass:
            return "—"
        outcome = getattr(obj, "review_outcome", None)
        if outcome:
            return ReviewOutcome(outcome).label
        url = reverse("admin:audit_breakglassreview_add") + f"?event={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("Not reviewed — review"))

    # --- Views, each recorded in the trail ---

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_view),
            name="{}_{}_export".format(*info),
        )
        return [export, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        query = request.GET.copy()
        for key in ("p", "e", "_popup", "_to_field"):
            query.pop(key, None)
        export_url = reverse("admin:audit_auditevent_export")
        if query:
            export_url += "?" + query.urlencode()
        extra_context = {**(extra_context or {}), "export_url": export_url}
        response = super().changelist_view(request, extra_context)
        if (
            request.method == "GET"
            and isinstance(response, TemplateResponse)
            and response.status_code == 200
        ):
            detail: dict[str, Any] = {"list": True}
            if filters := _filters_of(request):
                detail["filters"] = filters
            audit_record(
                actor=request.user,
                action=AuditAction.VIEW,
                object_type="audit.auditevent",
                detail=detail,
            )
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> Any:
        response = super().change_view(request, object_id, form_url, extra_context)
        if isinstance(response, TemplateResponse) and response.status_code == 200:
            audit_record(
                actor=request.user,
                action=AuditAction.VIEW,
                object_type="audit.auditevent",
                object_id=object_id,
                detail={"via": "admin"},
            )
        return response

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The changelist's current filters, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:audit_auditevent_changelist") + "?e=1")
        return self._export(request, changelist.get_queryset(request), _filters_of(request))

    @admin.action(description=_("Export selected events as CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        return self._export(request, queryset, {**_filters_of(request), "selected": True})

    def _export(self, request: HttpRequest, queryset: QuerySet, filters: dict) -> HttpResponse:
        # Fix the rows before recording the export, so the count is exact and the export's
        # own event (and anything written meanwhile) is not in the file.
        head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        rows = queryset.filter(seq__lte=head).order_by("seq")
        count = rows.count()
        audit_record(
            actor=request.user,
            action=AuditAction.EXPORT,
            object_type="audit.auditevent",
            detail={"filters": filters, "rows": count},
        )
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.csv"'
        return response


# --- Break-glass reviews ---------------------------------------------------------------------


class BreakGlassReviewForm(forms.ModelForm):
    class Meta:
        model = BreakGlassReview
        fields = ("event", "outcome", "note")

    def __init__(self, *args: Any, reviewer: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reviewer = reviewer

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("event") is not None and data.get("outcome"):
            try:
                break_glass_review_validate(
                    by=self.reviewer,
                    event=data["event"],
                    outcome=data["outcome"],
                    note=data.get("note", ""),
                )
            except PermissionDenied as denied:
                raise ValidationError(str(denied) or _("You may not review this access.")) from None
        return data


@admin.register(BreakGlassReview)
class BreakGlassReviewAdmin(admin.ModelAdmin):
    form = BreakGlassReviewForm
    list_display = ("id", "event_seq", "outcome", "reviewed_by_id", "reviewed_at")
    list_filter = ("outcome",)
    raw_id_fields = ("event",)
    ordering = ("-reviewed_at", "-id")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[BreakGlassReview]:
        return super().get_queryset(request).select_related("event")

    @admin.display(description=_("event seq"), ordering="event__seq")
    def event_seq(self, obj: BreakGlassReview) -> int:
        return obj.event.seq

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):  # noqa: ANN201
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class ReviewerForm(form_class):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, reviewer=request.user, **kw)

        return ReviewerForm

    def save_model(
        self, request: HttpRequest, obj: BreakGlassReview, form: Any, change: bool
    ) -> None:
        review = break_glass_review(
            by=request.user, event=obj.event, outcome=obj.outcome, note=obj.note
        )
        obj.pk, obj.reviewed_by, obj.reviewed_at = review.pk, review.reviewed_by, review.reviewed_at
        obj._state.adding = False
