"""Production settings refuse public keys; check --deploy is clean; headers and cookies."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _production_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"DEBUG", "SECRET_KEY", "SALT_KEY", "BLIND_INDEX_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        SALT_KEY=secrets.token_urlsafe(24),
        BLIND_INDEX_KEY=secrets.token_urlsafe(40),
        ALLOWED_HOSTS="portal.clinic.example",
    )
    env.update(overrides)
    return env


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SALT_KEY": ""}, "SALT_KEY"),
        ({"BLIND_INDEX_KEY": ""}, "BLIND_INDEX_KEY"),
        ({"DEBUG": "true"}, "DEBUG"),
    ],
)
def test_production_refuses_default_keys_and_debug(override, complaint):
    env = _production_env()
    for key, value in override.items():
        if value == "":
            env.pop(key)  # unset: the public development default would apply
        else:
            env[key] = value
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr
    assert complaint in result.stderr


def test_seed_demo_refuses_production():
    result = _manage("seed_demo", env=_production_env())
    assert result.returncode != 0
    assert "refuses to run with DJANGO_ENV=production" in result.stderr


def test_production_cookies_and_headers_settings():
    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SESSION_COOKIE_SECURE,"
        " s.CSRF_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.X_FRAME_OPTIONS)"
    )
    result = _manage("shell", "-c", code, env=_production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "__Host-sessionid",
        "__Host-csrftoken",
        "True",
        "True",
        "63072000",
        "True",
        "DENY",
    ]


@pytest.mark.django_db
def test_pages_send_strict_csp_and_security_headers(client):
    response = client.get("/accounts/login/")
    csp = response["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self' 'nonce-" in csp
    assert "object-src 'none'" in csp
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    # No inline code: every script either loads a same-origin file or is inert JSON data.
    import re

    for tag, _body in re.findall(r"(<script[^>]*>)(.*?)</script>", response.content.decode(), re.S):
        if 'src="' in tag:
            assert 'src="/static/' in tag, tag
        else:
            assert 'type="application/json"' in tag, tag


@pytest.mark.django_db
def test_pages_with_personal_data_are_not_stored(client, patient):
    client.force_login(patient)
    response = client.get("/portal/me/details/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert patient.patient_profile.last_name in response.content.decode()


@pytest.mark.django_db
def test_unknown_pages_and_errors_do_not_leak(client):
    response = client.get("/portal/staff/patients/999999/verify/")
    assert response.status_code == 302  # anonymous: to the login page, nothing about the id
    assert response["Location"].startswith("/accounts/login/")
    missing = client.get("/definitely-not-here/")
    assert missing.status_code == 404
    assert "Traceback" not in missing.content.decode()


@pytest.mark.django_db
def test_open_redirect_through_language_switch_is_refused(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert not response["Location"].startswith("https://evil.example")


@pytest.mark.django_db
def test_language_choice_is_remembered_on_the_user(client, patient):
    client.force_login(patient)
    client.post("/i18n/setlang/", {"language": "ru", "next": "/"})
    patient.refresh_from_db()
    assert patient.language == "ru"
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="ru"' in page.content.decode()


PATIENT_PAGES = [
    "/",
    "/portal/me/details/",
    "/portal/me/identity/",
    "/portal/me/consents/",
    "/accounts/2fa/",
    "/accounts/password/change/",
    "/accounts/2fa/webauthn/add/?passwordless",
    "/accounts/2fa/totp/activate/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PATIENT_PAGES)
def test_patient_pages_have_no_inline_code_or_styles(client, patient, path):
    import re

    client.post("/accounts/login/", {"login": patient.email, "password": "Correct-Horse-Battery-9"})
    response = client.get(path, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="/static/' in tag or 'type="application/json"' in tag, (path, tag)
    assert not re.search(r"\sstyle=\"", html), path
    assert not re.search(r"\son[a-z]+=\"", html), path
    assert "<style" not in html, path


@pytest.mark.django_db
def test_times_are_shown_in_the_clinic_time_zone(client, patient):
    from datetime import datetime

    from accounts.models import ConsentRecord

    ConsentRecord.objects.filter(patient=patient.patient_profile).update(
        decided_at=datetime(2026, 3, 1, 5, 53, tzinfo=UTC)
    )
    client.force_login(patient)
    html = client.get("/portal/me/consents/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "8:53" in html  # 05:53 UTC is 08:53 in Moscow
    assert "5:53" not in html
