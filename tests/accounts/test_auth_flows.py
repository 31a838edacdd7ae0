"""Registration, email verification, login, lockout, sessions and the staff MFA gate."""

from __future__ import annotations

import re
import time

import pytest
from django.core import mail
from django.test import Client, override_settings

from accounts.middleware import SESSION_LAST_SEEN, SESSION_STARTED
from accounts.models import ConsentKind, ConsentRecord, User
from audit.models import AuditAction, AuditEvent
from tests import factories
from tests.conftest import fresh_code, totp_now

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

SIGNUP = {
    "email": "new.patient@example.org",
    "last_name": "Сидорова",
    "first_name": "Вера",
    "middle_name": "",
    "birth_date": "1948-05-09",
    "phone": "+7 912 111-22-33",
    "language": "en",
    "password1": "Correct-Horse-Battery-9",
    "password2": "Correct-Horse-Battery-9",
    "accept_health_data_consent": "on",
}


def _link_from_mail() -> str:
    assert len(mail.outbox) == 1
    match = re.search(r"http://\S+/portal/verify/(\S+)/", mail.outbox[0].body)
    assert match
    return f"/portal/verify/{match.group(1)}/"


def _signup(client: Client, **overrides: str):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("django.db.transaction.on_commit", lambda fn, **kw: fn())
        return client.post("/accounts/signup/", {**SIGNUP, **overrides})


def test_signup_creates_patient_with_consent_and_sends_a_verification_link(client):
    response = _signup(client)
    assert response.status_code == 302 and response["Location"] == "/portal/verification-sent/"
    user = User.objects.get(email=SIGNUP["email"])
    assert user.role == "patient" and not user.email_verified
    assert user.patient_profile.last_name == "Сидорова"
    assert (
        ConsentRecord.objects.filter(
            patient=user.patient_profile, kind=ConsentKind.HEALTH_DATA
        ).count()
        == 1
    )
    # The message carries a link and nothing personal beyond the address it goes to.
    assert "Сидорова" not in mail.outbox[0].body
    assert mail.outbox[0].to == [SIGNUP["email"]]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password1": "short", "password2": "short"}, "password1"),
        ({"password2": "Different-Horse-Battery-9"}, "password2"),
        ({"accept_health_data_consent": ""}, "accept_health_data_consent"),
        ({"email": "not-an-email"}, "email"),
        ({"phone": "call me"}, "phone"),
    ],
)
def test_bad_signup_shows_field_errors_and_creates_nothing(client, overrides, field):
    response = _signup(client, **overrides)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert f'id="id_{field}_error"' in response.content.decode()
    assert not User.objects.exists()
    assert mail.outbox == []


def test_duplicate_email_is_refused(client, patient):
    response = _signup(client, email=patient.email.upper())
    assert "email" in response.context["form"].errors
    assert User.objects.count() == 1


def test_verification_link_works_once_and_get_changes_nothing(client):
    _signup(client)
    link = _link_from_mail()
    user = User.objects.get(email=SIGNUP["email"])
    assert client.get(link).status_code == 200  # a mail scanner following the link
    user.refresh_from_db()
    assert not user.email_verified
    response = client.post(link)
    assert response.status_code == 302
    user.refresh_from_db()
    verified_at = user.email_verified_at
    assert verified_at is not None
    reused = client.post(link, HTTP_ACCEPT_LANGUAGE="en")
    assert reused.status_code == 400
    assert "already been used" in reused.content.decode()
    user.refresh_from_db()
    assert user.email_verified_at == verified_at


def test_tampered_verification_link_is_refused(client):
    _signup(client)
    link = _link_from_mail()
    tampered = link[:-3] + ("A" if link[-3] != "A" else "B") + link[-2:]
    response = client.post(tampered)
    assert response.status_code == 400
    assert not User.objects.get(email=SIGNUP["email"]).email_verified


def test_expired_verification_link_is_refused(client):
    _signup(client)
    link = _link_from_mail()
    with override_settings(EMAIL_VERIFICATION_MAX_AGE=-1):
        response = client.post(link, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400 and "expired" in response.content.decode()


def test_unverified_patient_cannot_sign_in_and_gets_a_new_link(
    client, django_capture_on_commit_callbacks
):
    _signup(client)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/login/", {"login": SIGNUP["email"], "password": SIGNUP["password1"]}
        )
    assert response.status_code == 302 and response["Location"] == "/portal/verification-sent/"
    assert "_auth_user_id" not in client.session
    assert len(mail.outbox) == 1


def test_patient_login_cycles_session_key_and_records_it(client, patient):
    client.get("/accounts/login/")
    before = client.session.session_key
    response = client.post(
        "/accounts/login/", {"login": patient.email, "password": factories.PASSWORD}
    )
    assert response.status_code == 302
    assert client.session.session_key != before
    assert int(client.session["_auth_user_id"]) == patient.pk
    assert AuditEvent.objects.filter(actor=patient, action=AuditAction.LOGIN).exists()


def test_lockout_after_ten_failures_per_account_and_ip_then_cooloff_expires(
    client, patient, other_patient
):
    for _ in range(10):
        client.post("/accounts/login/", {"login": patient.email, "password": "wrong-password-123"})
    locked = client.post(
        "/accounts/login/", {"login": patient.email, "password": factories.PASSWORD}
    )
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED).count() >= 10
    # Another account from the same address is not locked out with it.
    other = Client()
    ok = other.post(
        "/accounts/login/", {"login": other_patient.email, "password": factories.PASSWORD}
    )
    assert ok.status_code == 302
    # The case of the address does not give a fresh set of attempts.
    locked_again = Client().post(
        "/accounts/login/", {"login": patient.email.upper(), "password": factories.PASSWORD}
    )
    assert locked_again.status_code == 429
    # The cool-off ends: attempts older than the window no longer count.
    from axes.models import AccessAttempt
    from django.utils import timezone

    AccessAttempt.objects.update(attempt_time=timezone.now() - timezone.timedelta(minutes=16))
    from tests.conftest import _clear_test_cache

    _clear_test_cache()
    after = Client().post(
        "/accounts/login/", {"login": patient.email, "password": factories.PASSWORD}
    )
    assert after.status_code == 302


def _logged_in(client: Client, user: User) -> Client:
    response = client.post(
        "/accounts/login/", {"login": user.email, "password": factories.PASSWORD}
    )
    assert response.status_code == 302
    return client


def _age_session(
    client: Client, *, started: float | None = None, last_seen: float | None = None
) -> None:
    session = client.session
    if started is not None:
        session[SESSION_STARTED] = started
    if last_seen is not None:
        session[SESSION_LAST_SEEN] = last_seen
    session.save()


def test_idle_session_ends_after_fifteen_minutes(client, patient):
    _logged_in(client, patient)
    assert client.get("/").status_code == 200
    _age_session(client, last_seen=time.time() - 15 * 60 - 5)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session


def test_active_session_ends_after_twelve_hours(client, patient):
    _logged_in(client, patient)
    _age_session(client, started=time.time() - 12 * 3600 - 5, last_seen=time.time() - 10)
    response = client.get("/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_recent_activity_keeps_the_session(client, patient):
    _logged_in(client, patient)
    _age_session(client, last_seen=time.time() - 14 * 60)
    assert client.get("/").status_code == 200


def test_password_change_ends_every_session(client, patient):
    other_device = _logged_in(Client(), patient)
    _logged_in(client, patient)
    response = client.post(
        "/accounts/password/change/",
        {
            "oldpassword": factories.PASSWORD,
            "password1": "Another-Long-Phrase-42",
            "password2": "Another-Long-Phrase-42",
        },
    )
    assert response.status_code == 302
    assert other_device.get("/").status_code == 302
    assert client.get("/").status_code == 302


def test_staff_without_totp_is_sent_to_enrol_before_any_staff_page_or_admin(
    client, django_capture_on_commit_callbacks
):
    doctor = factories.make_staff("doctor", with_totp=False)
    _logged_in(client, doctor)
    for path in ("/", "/portal/staff/patients/", "/admin/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == "/accounts/2fa/totp/activate/"
    # Enrolling asks for the password again (allauth's reauthentication), then shows the QR code.
    response = client.get("/accounts/2fa/totp/activate/")
    assert response["Location"].startswith("/accounts/reauthenticate/")
    response = client.post(response["Location"], {"password": factories.PASSWORD}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/accounts/2fa/totp/activate/"
    secret = response.context["form"].secret

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/activate/", {"code": fresh_code(secret)})
    assert response.status_code == 302
    # Enrolled: the staff pages open now.
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(actor=doctor, action=AuditAction.MFA).exists()


def test_staff_login_requires_totp_code(client, doctor):
    response = client.post(
        "/accounts/login/", {"login": doctor.email, "password": factories.PASSWORD}
    )
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in client.session
    wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert wrong.status_code == 200 and "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(
        actor=doctor, action=AuditAction.MFA, detail__event="authentication_failed"
    ).exists()
    ok = client.post("/accounts/2fa/authenticate/", {"code": totp_now(doctor)})
    assert ok.status_code == 302
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(actor=doctor, action=AuditAction.LOGIN).exists()
    assert AuditEvent.objects.filter(
        actor=doctor, action=AuditAction.MFA, detail__event="authenticator_used"
    ).exists()


def test_admin_site_opens_for_admin_after_mfa(client, login_staff, admin_user):
    login_staff(admin_user)
    response = client.get("/admin/")
    assert response.status_code == 200


def test_totp_secret_is_encrypted_at_rest(doctor):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT data::text FROM mfa_authenticator WHERE user_id = %s", [doctor.pk])
        (data,) = cursor.fetchone()
    assert doctor.totp_secret not in data
    assert "gAAAAA" in data
