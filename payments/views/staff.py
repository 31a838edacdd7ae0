"""The clinic's side: invoices and insurance at the desk, a doctor's own earnings."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts import policies
from payments import selectors, services
from payments.forms import InvoiceForm, PeriodForm
from payments.models import InsuranceCoverage
from scheduling.selectors import staff as scheduling_staff


@login_required
@require_http_methods(["GET", "POST"])
def invoice_new(request: HttpRequest, public_id: str) -> HttpResponse:
    """Reception bills a visit after it happened; the patient pays it in the portal."""
    appointment = scheduling_staff.appointment_get_for(request.user, public_id, purpose="manage")
    if not policies.can_issue_invoice(request.user, appointment.patient):
        raise scheduling_staff.deny(
            request.user, "invoice", obj=appointment, patient=appointment.patient.user
        )
    form = InvoiceForm(request.POST or None, initial={"amount": appointment.price})
    if request.method == "POST" and form.is_valid():
        try:
            invoice = services.invoice_issue(
                by=request.user,
                patient=appointment.patient,
                appointment=appointment,
                currency=appointment.currency,
                **form.cleaned_data,
            )
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            messages.success(
                request, _("Invoice %(number)s sent to the patient.") % {"number": invoice.number}
            )
            return redirect("scheduling:staff_appointment", public_id=appointment.public_id)
    return render(
        request,
        "payments/staff/invoice_new.html",
        {"appointment": appointment, "form": form},
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def insurance_checked(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = scheduling_staff.appointment_get_for(request.user, public_id, purpose="manage")
    if request.method == "GET":
        return redirect("scheduling:staff_appointment", public_id=appointment.public_id)
    coverage = InsuranceCoverage.objects.filter(appointment=appointment).first()
    if coverage is None:
        raise Http404
    try:
        services.insurance_mark_checked(by=request.user, coverage=coverage)
    except PermissionDenied:
        raise scheduling_staff.deny(
            request.user, "insurance", obj=appointment, patient=appointment.patient.user
        ) from None
    messages.success(request, _("The policy is marked as checked."))
    return redirect("scheduling:staff_appointment", public_id=appointment.public_id)


@login_required
@require_GET
def earnings(request: HttpRequest) -> HttpResponse:
    """A doctor's own revenue (payments less refunds) by consultation type or month. Who
    paid is not shown: totals only."""
    if not policies.can_view_own_earnings(request.user):
        raise scheduling_staff.deny(request.user, "earnings")
    today = timezone.localdate()
    initial = {"date_from": today.replace(day=1), "date_to": today, "group_by": "consultation_type"}
    form = PeriodForm(request.GET or None, initial=initial)
    report = None
    if not request.GET:
        form = PeriodForm(initial)
    if form.is_valid():
        data = form.cleaned_data
        group_by = data.get("group_by") or "consultation_type"
        if group_by == "doctor":
            group_by = "consultation_type"
        report = selectors.revenue_report(
            date_from=data["date_from"],
            date_to=data["date_to"],
            group_by=group_by,
            doctor=request.user,
        )
    return render(
        request,
        "payments/staff/earnings.html",
        {
            "form": form,
            "report": report,
            "last_year": today - timedelta(days=365),
            "today": date.today(),
        },
        status=200 if form.is_valid() else 400,
    )
