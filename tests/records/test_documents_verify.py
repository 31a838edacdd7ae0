"""The public check of a printed verification code: anyone, without signing in, learns
only "valid, issued on <date> by <clinic>" or "not valid" — never a name, a title, a
kind or a value; codes are read case-insensitively with or without dashes; lookups are
rate-limited per address; a revoked or superseded code says "not valid"."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from records import services_documents as services
from records.models import DocumentVerification
from tests.records.helpers import grant, receive
from tests.records.helpers_documents import issue_rendered, media, render  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


@pytest.fixture
def issued(patient, doctor):
    """A released referral, rendered, with its code; and what must never leak."""
    grant(doctor, patient)
    document = issue_rendered(
        doctor,
        patient,
        title="Направление к онкологу",
        body="Подозрение на новообразование левой молочной железы.",
    )
    secrets = [
        patient.patient_profile.last_name,
        patient.patient_profile.first_name,
        patient.email,
        "Направление",
        "онколог",
        "новообразование",
        doctor.staff_profile.full_name,
        "Referral",
        "Направление к",
        str(document.public_id),
    ]
    return document, document.verifications.get(), secrets


def _check(client, code: str):  # noqa: ANN001, ANN202
    return client.get(reverse("verify:check", args=[code]), HTTP_ACCEPT_LANGUAGE="en")


def _assert_leaks_nothing(html: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in html, secret


def test_valid_code_shows_validity_date_and_clinic_only(client, issued):
    document, code, secrets = issued
    response = _check(client, code.display_code)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-verification="valid"' in html
    assert f"by {settings.CLINIC_NAME}" in html and "Valid, issued on" in html
    _assert_leaks_nothing(html, secrets)
    assert response["Cache-Control"] == "no-store"
    assert response["X-Robots-Tag"] == "noindex"


@pytest.mark.parametrize(
    "variant",
    [
        lambda c: c.lower(),
        lambda c: c.replace("-", ""),
        lambda c: c.replace("0", "o").replace("1", "l"),
        lambda c: " ".join(c.split("-")),
    ],
    ids=["lower-case", "no-dashes", "letters-for-digits", "spaces"],
)
def test_codes_are_read_case_insensitively(client, issued, variant):
    _, code, _ = issued
    response = client.get(reverse("verify:form"), {"code": variant(code.display_code)})
    assert response.status_code == 302
    checked = client.get(response["Location"])
    assert checked.status_code == 200 and 'data-verification="valid"' in checked.content.decode()


def test_unknown_code_is_not_valid(client, issued):
    _, _, secrets = issued
    for code in ("AAAA-BBBB-CCCC", "not-a-code", "x" * 200):
        response = _check(client, code)
        assert response.status_code == 404
        html = response.content.decode()
        assert 'data-verification="unknown"' in html
        _assert_leaks_nothing(html, secrets)


def test_revoked_code_is_not_valid(client, issued, admin_user):
    document, code, secrets = issued
    services.document_verification_revoke(by=admin_user, verification_row=code)
    response = _check(client, code.display_code)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-verification="revoked"' in html and "Not valid" in html
    _assert_leaks_nothing(html, secrets)


def test_superseded_pdf_code_is_not_valid(client, patient):
    report = receive(patient, "glucose", ["5.0"])
    first = render(services.pdf_render_request(by=patient, lab_report=report))
    old = DocumentVerification.objects.get(document=first.document)
    # Rendering the same document again (its file replaced) supersedes its code.
    from records.models import PdfRender

    again = PdfRender.objects.create(document=first.document, language="en")
    render(again)
    assert 'data-verification="revoked"' in _check(client, old.display_code).content.decode()
    new = DocumentVerification.objects.get(document=first.document, revoked=False)
    assert 'data-verification="valid"' in _check(client, new.display_code).content.decode()


def test_the_check_is_rate_limited_per_address(client, issued, settings):
    # A cache of this test's own: another suite sharing the Redis database clears its
    # keys between tests (tests/conftest.py), which would reset the counter mid-test.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "verify-rate-limit-test",
        }
    }
    _, code, _ = issued
    from records.views.documents import VERIFY_LIMIT

    for _ in range(VERIFY_LIMIT):
        assert _check(client, "AAAA-BBBB-CCCC").status_code == 404
    limited = _check(client, code.display_code)
    assert limited.status_code == 429
    assert 'data-verification="valid"' not in limited.content.decode()
    other_address = client.get(
        reverse("verify:check", args=[code.display_code]), REMOTE_ADDR="10.1.2.3"
    )
    assert other_address.status_code == 200


def test_the_form_needs_no_sign_in_and_a_check_is_recorded_without_an_actor(client, issued):
    from audit.models import AuditAction, AuditEvent

    document, code, _ = issued
    form = client.get(reverse("verify:form"), HTTP_ACCEPT_LANGUAGE="en")
    assert form.status_code == 200 and "Verification code" in form.content.decode()
    _check(client, code.display_code)
    event = AuditEvent.objects.filter(object_type="records.documentverification").latest("seq")
    assert event.action == AuditAction.VIEW and event.actor is None
    assert event.patient == document.patient.user
    assert event.detail == {"what": "public_verification", "valid": True}


def test_a_garbled_code_in_the_form_is_not_valid_never_an_error(client, issued):
    for code in ("ab/cd", "../../etc", "<script>", "ЖЖЖЖ-ЖЖЖЖ-ЖЖЖЖ"):
        response = client.get(reverse("verify:form"), {"code": code}, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 404, code
        assert 'data-verification="unknown"' in response.content.decode()
