"""Shared fixtures. Databases and Redis are prepared by tests/bootstrap.py (loaded with -p)."""

from __future__ import annotations

import pyotp
import pytest
from django.core.cache import cache

from accounts.models import Role
from tests import factories
from tests.smtp import smtp_server  # noqa: F401 - the fixture, for every test


def _clear_test_cache() -> None:
    # Only our keys: REDIS_URL may be a shared server (cache.clear() would FLUSHDB it).
    client = cache._cache.get_client(write=True)  # noqa: SLF001
    prefix = cache.key_prefix or ""
    for key in client.scan_iter(match=f"{prefix}:*", count=500):
        client.delete(key)


@pytest.fixture(autouse=True)
def _clean_cache():
    # Rate limits and session caches live in Redis; one test must not lock out the next.
    _clear_test_cache()
    yield
    _clear_test_cache()


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Data migrations' rows are wiped by transactional tests (live_server flushes the
    database after each test); put them back for every test that uses the database."""
    uses_db = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
        "live_server",
    } & set(request.fixturenames)
    if uses_db:
        transactional = (
            "transactional_db" in request.fixturenames or "live_server" in request.fixturenames
        )
        request.getfixturevalue("transactional_db" if transactional else "db")
        from accounts.services import consent_texts_ensure_published, roles_sync_groups

        consent_texts_ensure_published()
        roles_sync_groups()


@pytest.fixture
def patient(db):
    return factories.make_patient()


@pytest.fixture
def other_patient(db):
    return factories.make_patient()


@pytest.fixture
def doctor(db):
    return factories.make_staff(Role.DOCTOR, language="en")


@pytest.fixture
def reception(db):
    return factories.make_staff(Role.RECEPTION, language="en")


@pytest.fixture
def admin_user(db):
    user = factories.make_staff(Role.ADMIN, language="en")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


@pytest.fixture
def celery_eager():
    """Run tasks in the test's own process, for tests about what a task produces (not
    about delivery through the broker; those start a real worker)."""
    from clinic.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def fresh_code(secret: str, margin: float = 3.0) -> str:
    """The current code, never one about to expire: allauth allows no clock drift, so a
    code read at the end of its 30-second window may be stale by the time it is checked."""
    import time

    totp = pyotp.TOTP(secret)
    left = totp.interval - time.time() % totp.interval
    if left < margin:
        time.sleep(left + 0.05)
    return totp.now()


def totp_now(user) -> str:
    return fresh_code(user.totp_secret)


def wait_for_fresh_totp_window(margin: float = 3.0) -> None:
    import time

    left = 30 - time.time() % 30
    if left < margin:
        time.sleep(left + 0.05)


@pytest.fixture
def login_staff(client):
    """Sign a staff member in through the real login and TOTP steps."""

    def _login(user):
        response = client.post(
            "/accounts/login/", {"login": user.email, "password": factories.PASSWORD}
        )
        assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
        response = client.post("/accounts/2fa/authenticate/", {"code": totp_now(user)})
        assert response.status_code == 302, response.content[:500]
        return client

    return _login
