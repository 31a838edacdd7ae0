"""Admin of the MIS integration.

- Sync status (`SyncCursor`): per MIS and resource type, the cursor, the last run's
  counts, the last error, failures in a row and the next retry; "Retry now".
- Quarantined resources: what could not be applied and why (the JSON is decrypted for
  the admin, and the view is audited); "Retry now" and "Mark resolved".
- Patient match reviews: MIS patients no portal patient matched by identifier; "Link to
  a portal patient" (found by SNILS, passport or email through accounts' audited exact
  lookup) or "Not a portal patient".
- Links and resource states, read-only.

The push (mis.admin_push) and HL7 (mis.admin_hl7) parts register theirs at the end.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import policies
from accounts.selectors import patient_find
from clinic.admin_audit import AuditedAdminMixin
from mis import services_sync
from mis.fhir.client import MisError, MisNotConfigured
from mis.models import (
    ExternalLink,
    MatchState,
    PatientMatchReview,
    QuarantinedResource,
    ResourceMark,
    SyncCursor,
)


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _require_operator(request: HttpRequest) -> None:
    if not policies.can_operate_mis_sync(request.user):
        raise PermissionDenied


@admin.register(SyncCursor)
class SyncCursorAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "resource_type",
        "system",
        "cursor",
        "last_run_at",
        "last_success_at",
        "created_count",
        "updated_count",
        "unchanged_count",
        "skipped_count",
        "quarantined_count",
        "failures",
        "next_retry_at",
        "error_short",
    )
    list_filter = ("system", "resource_type")
    readonly_fields = [f.name for f in SyncCursor._meta.fields]
    actions = ["retry_now"]

    @admin.display(description=_("last error"))
    def error_short(self, obj: SyncCursor) -> str:
        return obj.last_error[:120]

    @admin.action(description=_("Retry now (end the backoff and pull)"))
    def retry_now(self, request: HttpRequest, queryset: QuerySet[SyncCursor]) -> None:
        _require_operator(request)
        for cursor in queryset:
            services_sync.sync_cursor_retry_now(by=request.user, cursor=cursor)
        messages.success(
            request,
            ngettext(
                "%(n)d resource type will be pulled now.",
                "%(n)d resource types will be pulled now.",
                queryset.count(),
            )
            % {"n": queryset.count()},
        )


@admin.register(QuarantinedResource)
class QuarantinedResourceAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "resource_type",
        "resource_id",
        "reason",
        "times_seen",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
    )
    list_filter = ("reason", "resource_type", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("resource_id",)
    exclude = ("raw",)
    readonly_fields = (
        "system",
        "resource_type",
        "resource_id",
        "version",
        "reason",
        "error",
        "pretty_raw",
        "first_seen_at",
        "last_seen_at",
        "times_seen",
        "resolved_at",
        "resolution",
    )
    actions = ["retry_now", "mark_resolved"]

    @admin.display(description=_("resource (JSON)"))
    def pretty_raw(self, obj: QuarantinedResource) -> str:
        try:
            text = json.dumps(json.loads(obj.raw), indent=2, ensure_ascii=False)
        except ValueError:
            text = obj.raw
        return format_html("<pre>{}</pre>", text)

    @admin.action(description=_("Retry now (read the resource again from the MIS)"))
    def retry_now(self, request: HttpRequest, queryset: QuerySet[QuarantinedResource]) -> None:
        _require_operator(request)
        outcomes: dict[str, int] = {}
        try:
            for row in queryset:
                outcome = services_sync.quarantine_retry(by=request.user, row=row)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        except (MisNotConfigured, MisError) as exc:
            messages.error(request, _("The MIS could not be reached: %(e)s") % {"e": exc})
            return
        messages.info(
            request,
            ", ".join(f"{name}: {count}" for name, count in sorted(outcomes.items())),
        )

    @admin.action(description=_("Mark resolved (handled outside the portal)"))
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[QuarantinedResource]) -> None:
        _require_operator(request)
        count = services_sync.quarantine_resolve(by=request.user, rows=list(queryset))
        messages.success(request, _("%(n)d marked resolved.") % {"n": count})


class LinkPatientForm(forms.Form):
    query = forms.CharField(
        label=_("SNILS, passport number or email of the portal patient"), max_length=254
    )


@admin.register(PatientMatchReview)
class PatientMatchReviewAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("resource_id", "reason", "state", "updated_at", "patient", "link_button")
    list_filter = ("state", "reason", "system")
    search_fields = ("resource_id",)
    exclude = ("raw",)
    readonly_fields = (
        "system",
        "resource_id",
        "version",
        "reason",
        "state",
        "summary",
        "patient",
        "decided_by",
        "decided_at",
        "backfilled_at",
        "created_at",
        "updated_at",
    )
    actions = ["dismiss"]

    def patient_of(self, obj: PatientMatchReview) -> Any:
        return obj.patient.user if obj.patient_id else None

    @admin.display(description=_("decide"))
    def link_button(self, obj: PatientMatchReview) -> str:
        if obj.state != MatchState.PENDING:
            return ""
        url = reverse("admin:mis_patientmatchreview_link", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Link to a portal patient"))

    def get_urls(self) -> list:
        own = [
            path(
                "<int:object_id>/link/",
                self.admin_site.admin_view(self.link_view),
                name="mis_patientmatchreview_link",
            ),
        ]
        return own + super().get_urls()

    def link_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Find the portal patient by an exact document or email (audited lookup), show
        who it is, and link on confirmation. Never offered by name."""
        if not policies.can_link_mis_patient(request.user):
            raise PermissionDenied
        review = get_object_or_404(PatientMatchReview, pk=object_id)
        form = LinkPatientForm(request.POST or None)
        found = None
        if request.method == "POST" and form.is_valid():
            found = patient_find(request.user, form.cleaned_data["query"])
            if found is None:
                form.add_error("query", _("No portal patient has exactly this document or email."))
            elif request.POST.get("confirm") == str(found.pk):
                try:
                    services_sync.patient_match_link(by=request.user, review=review, patient=found)
                except ValidationError as exc:
                    form.add_error(None, exc)
                else:
                    messages.success(
                        request,
                        _("Linked. The patient's results and documents are being fetched."),
                    )
                    return redirect(reverse("admin:mis_patientmatchreview_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Link an MIS patient to a portal patient"),
            "review": review,
            "form": form,
            "found": found,
            "opts": self.model._meta,
        }
        return render(request, "admin/mis/patientmatchreview/link.html", context)

    @admin.action(description=_("Not a portal patient (dismiss)"))
    def dismiss(self, request: HttpRequest, queryset: QuerySet[PatientMatchReview]) -> None:
        if not policies.can_link_mis_patient(request.user):
            raise PermissionDenied
        for review in queryset.filter(state=MatchState.PENDING):
            services_sync.patient_match_dismiss(by=request.user, review=review)


@admin.register(ExternalLink)
class ExternalLinkAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("kind", "object_id", "system", "value", "version", "updated_at")
    list_filter = ("kind", "system")
    search_fields = ("value",)


@admin.register(ResourceMark)
class ResourceMarkAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("resource_type", "resource_id", "version", "object_kind", "object_id")
    list_filter = ("resource_type", "system")


# The push (M2) and HL7 v2 (M3) parts of the app register their own admin pages.
for _module in ("mis.admin_push", "mis.admin_hl7"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise
