"""Django admin for documents, PDF render jobs and verification codes. Every model is
registered, read-only and audited (clinic.admin_audit). Administrators see no clinical
data (accounts.policies): a document's title, text, file and a rejection's reason are
not shown; states, kinds, times and ids are. The one action is revoking a printed PDF's
verification code (records.services_documents.document_verification_revoke)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from clinic.admin_audit import AuditedAdminMixin
from records.admin import ReadOnlyMixin
from records.models import Document, DocumentVerification, PdfRender


@admin.register(Document)
class DocumentAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "created_at",
        "review_state",
        "released_to_patient_at",
        "content_type",
        "size",
        "patient",
    )
    list_filter = ("kind", "review_state", "content_type")
    list_select_related = ("patient",)
    date_hierarchy = "created_at"
    exclude = ("title", "body", "file", "review_reason")
    readonly_fields = ("public_id",)

    def patient_of(self, obj: Document) -> Any:
        return obj.patient.user


@admin.register(PdfRender)
class PdfRenderAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "document",
        "state",
        "error_code",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = ("state", "error_code")
    list_select_related = ("document",)
    date_hierarchy = "created_at"

    def patient_of(self, obj: PdfRender) -> Any:
        return obj.document.patient.user


@admin.register(DocumentVerification)
class DocumentVerificationAdmin(AuditedAdminMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("code", "document", "issued_at", "issuer", "revoked", "revoked_reason")
    list_filter = ("revoked", "revoked_reason")
    list_select_related = ("document",)
    search_fields = ("code",)
    date_hierarchy = "issued_at"
    actions = ("revoke",)

    def patient_of(self, obj: DocumentVerification) -> Any:
        return obj.document.patient.user

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> Any:
        # Codes are stored upper case without dashes; accept them as printed.
        from records.verification import normalize_code

        term = normalize_code(search_term) or search_term
        return super().get_search_results(request, queryset, term)

    @admin.action(description=_("Revoke the selected codes (the PDFs stop being valid)"))
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        from records.services_documents import document_verification_revoke

        done = 0
        for row in queryset.select_related("document__patient__user"):
            try:
                document_verification_revoke(by=request.user, verification_row=row)
            except PermissionDenied:
                continue
            done += 1
        self.message_user(request, _("%(n)d code(s) revoked.") % {"n": done}, messages.SUCCESS)
