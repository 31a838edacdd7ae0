"""The patient's side: checkout of a held booking or an invoice, the page a payment
returns to, and the list of payments, refunds and receipts."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import Role
from audit.models import AuditAction
from audit.services import audit_record
from payments import selectors, services, workflows
from payments.forms import CardTokenForm, InsuranceForm
from payments.gateway import GatewayError, allow_stripe_csp
from payments.models import Payment, PaymentStatus
from scheduling.models import AppointmentStatus
from scheduling.selectors import patient as scheduling_selectors

DECLINED = gettext_lazy(
    "The payment could not be made. Nothing was charged. Please try again or use another card."
)


def _patient(request: HttpRequest):  # noqa: ANN202
    """Patients' pages: anyone else gets a recorded 404."""
    if request.user.role != Role.PATIENT or not hasattr(request.user, "patient_profile"):
        audit_record(
            actor=request.user,
            action=AuditAction.DENIED,
            object_type="page",
            detail={"what": "payments", "path": request.path},
        )
        raise Http404
    return request.user.patient_profile


def money(amount, currency: str) -> str:  # noqa: ANN001
    return f"{formats.number_format(amount, 2, use_l10n=True)} {currency}"


def _checkout_context(request: HttpRequest, payment: Payment, **extra) -> dict:  # noqa: ANN003
    return {
        "payment": payment,
        "amount": money(payment.amount, payment.currency),
        "stripe_js_url": settings.STRIPE_JS_URL,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "client_secret": workflows.client_secret_for(payment),
        "confirm_url": reverse("payments:confirm_card", args=[payment.public_id]),
        "return_url": request.build_absolute_uri(
            reverse("payments:payment_detail", args=[payment.public_id])
        ),
        **extra,
    }


@login_required
@never_cache
@require_GET
@allow_stripe_csp
def checkout(request: HttpRequest, public_id: str) -> HttpResponse:
    """Pay for a held appointment (or say the visit is covered by insurance)."""
    appointment = scheduling_selectors.appointment_get_for(request.user, public_id)
    if appointment.status != AppointmentStatus.HELD:
        return redirect("scheduling:appointment_detail", public_id=appointment.public_id)
    try:
        payment = workflows.checkout_start(by=request.user, appointment=appointment)
        if payment.status != PaymentStatus.PENDING:
            return redirect("payments:payment_detail", public_id=payment.public_id)
        context = _checkout_context(
            request,
            payment,
            appointment=appointment,
            hold_until=formats.time_format(
                timezone.localtime(appointment.hold_expires_at, appointment.location.tzinfo),
                "H:i",
            ),
            hold_expires_iso=appointment.hold_expires_at.isoformat(),
            insurance_form=InsuranceForm(),
        )
    except services.PaymentProblem as exc:
        messages.warning(request, str(exc))
        return redirect("scheduling:appointment_detail", public_id=appointment.public_id)
    except GatewayError:
        return render(
            request,
            "payments/patient/unavailable.html",
            {"appointment": appointment},
            status=503,
        )
    return render(request, "payments/patient/checkout.html", context)


@login_required
@never_cache
@require_GET
@allow_stripe_csp
def invoice_pay(request: HttpRequest, public_id: str) -> HttpResponse:
    invoice = selectors.invoice_get_for_payer(request.user, public_id)
    try:
        payment = workflows.invoice_checkout_start(by=request.user, invoice=invoice)
        if payment.status != PaymentStatus.PENDING:
            return redirect("payments:payment_detail", public_id=payment.public_id)
        context = _checkout_context(request, payment, invoice=invoice)
    except services.PaymentProblem as exc:
        messages.warning(request, str(exc))
        return redirect("payments:invoices")
    except GatewayError:
        return render(request, "payments/patient/unavailable.html", {}, status=503)
    return render(request, "payments/patient/checkout.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def confirm_card(request: HttpRequest, public_id: str) -> HttpResponse:
    """The browser's card token: confirm the payment on the server (JSON for the page's
    script). Errors are answered in words the patient can act on; nothing is charged.
    A GET (a reloaded or bookmarked address) leads to the payment's page."""
    payment = selectors.payment_get_for_payer(request.user, public_id)
    if request.method == "GET":
        return redirect("payments:payment_detail", public_id=payment.public_id)
    form = CardTokenForm(request.POST)
    if not form.is_valid():
        return JsonResponse(
            {"error": _("The card details could not be read. Please try again.")}, status=400
        )
    try:
        payment, status = workflows.confirm_with_card_token(
            by=request.user, payment=payment, token_id=form.cleaned_data["token"]
        )
    except services.PaymentProblem as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    except GatewayError as exc:
        message = getattr(exc, "user_message", "") or DECLINED
        return JsonResponse({"error": str(message)}, status=402)
    if payment.status == PaymentStatus.FAILED:
        # Declined without an error from the provider (the intent says why).
        return JsonResponse(
            {
                "error": DECLINED,
                "redirect": reverse("payments:payment_detail", args=[payment.public_id]),
            },
            status=402,
        )
    body = {
        "status": status,
        "redirect": reverse("payments:payment_detail", args=[payment.public_id]),
    }
    if status == "requires_action":
        body["client_secret"] = workflows.client_secret_for(payment)
    return JsonResponse(body)


@login_required
@never_cache
@require_GET
def payment_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """Where the checkout returns: the state as Stripe says it now (re-read, so the page
    is right even before the webhook arrives). Polls while the bank is still working."""
    payment = selectors.payment_get_for(request.user, public_id)
    if (
        payment.status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
        and payment.provider_payment_id
    ):
        # If the provider is away the page shows it as pending; the sweep catches up.
        with contextlib.suppress(GatewayError):
            workflows.payment_intent_sync(intent_id=payment.provider_payment_id)
        payment = selectors.payment_get_for(request.user, public_id)
    context = {
        "payment": payment,
        "amount": money(payment.amount, payment.currency),
        "appointment": payment.appointment if not payment.invoice_id else None,
        "polling": payment.status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING),
    }
    template = (
        "payments/patient/_payment_state.html"
        if request.headers.get("HX-Request")
        else "payments/patient/payment_detail.html"
    )
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def insurance(request: HttpRequest, public_id: str) -> HttpResponse:
    appointment = scheduling_selectors.appointment_get_for(request.user, public_id)
    if request.method == "GET":
        return redirect("payments:checkout", public_id=appointment.public_id)
    form = InsuranceForm(request.POST)
    if form.is_valid():
        try:
            workflows.insurance_checkout(
                by=request.user, appointment=appointment, **form.cleaned_data
            )
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        except (services.PaymentProblem, PermissionDenied) as exc:
            messages.warning(request, str(exc) or _("This booking could not be made."))
            return redirect("scheduling:appointment_detail", public_id=appointment.public_id)
        else:
            messages.success(request, _("Your appointment is booked. Please bring your policy."))
            return redirect("scheduling:appointment_booked", public_id=appointment.public_id)
    return render(
        request,
        "payments/patient/insurance_invalid.html",
        {"appointment": appointment, "insurance_form": form},
        status=400,
    )


@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    profile = _patient(request)
    return render(
        request,
        "payments/patient/history.html",
        {
            "payments": selectors.payments_of(profile),
            "open_invoices": selectors.open_invoice_count(profile),
        },
    )


@login_required
@require_GET
def invoices(request: HttpRequest) -> HttpResponse:
    profile = _patient(request)
    return render(
        request,
        "payments/patient/invoices.html",
        {"invoices": selectors.invoices_of(profile)},
    )
