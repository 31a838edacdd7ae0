"""Access-control matrix: every URL that shows or changes personal or medical data, every
role, against their own object and someone else's.

URL names are discovered from the URLconf. A new URL that is in neither MATRIX nor
NOT_PERSONAL fails `test_every_url_is_classified`, so nobody can add a page of patient
data without saying who may open it. Denials are 404 (no existence leak) and recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import services
from accounts.models import Department, Role
from audit.models import AuditAction, AuditEvent
from tests import factories

OK, NOT_FOUND = "ok", 404
ROLES = ("patient", "doctor", "nurse", "reception", "admin")

# URLs whose pages hold no personal data of anyone but the visitor's own session.
NOT_PERSONAL = {
    "healthz",
    "set_language",
    "account_signup",  # creates an account; covered by tests/accounts/test_auth_flows.py
    "account_email",  # a redirect to accounts:personal_data
    "accounts:verification_sent",
    "accounts:verify_email",  # signed single-use token; tests/accounts/test_auth_flows.py
}


@dataclass(frozen=True)
class Rule:
    """Expected answer per role. `per_patient` URLs take an object and are tried against
    the role's own ("own") and an unrelated one ("other"). By default the object is a
    patient profile id; `args(world, role, target)` builds other arguments (e.g. an
    appointment's public id from world["appointments"])."""

    per_patient: bool
    own: dict[str, object]
    other: dict[str, object] | None = None
    args: Callable[[dict, str, str], list] | None = None
    # Denials of URLs about a patient record that patient; a doctor's calendar has none.
    denial_names_patient: bool = True


def only(*roles: str) -> dict[str, object]:
    return {role: OK if role in roles else NOT_FOUND for role in ROLES}


MATRIX: dict[str, Rule] = {
    "home": Rule(False, only(*ROLES)),
    "accounts:personal_data": Rule(False, only("patient")),
    "accounts:identity": Rule(False, only("patient")),
    "accounts:consents": Rule(False, only("patient")),
    "accounts:access_log": Rule(False, only("patient")),
    "accounts:patient_search": Rule(False, only("doctor", "reception", "admin")),
    "accounts:my_patients": Rule(False, only("doctor", "nurse")),
    "accounts:patient_record": Rule(True, own=only("doctor", "nurse"), other=only()),
    # A doctor in charge is sent straight to the record; for anyone else's patient a
    # doctor gets the emergency form. Nobody else ever.
    "accounts:break_glass": Rule(True, own=only("doctor"), other=only("doctor")),
    "accounts:verify_identity": Rule(
        True, own=only("reception", "admin"), other=only("reception", "admin")
    ),
    "accounts:identity_scan": Rule(
        True, own=only("patient", "reception", "admin"), other=only("reception", "admin")
    ),
}


def _load_app_matrices() -> None:
    """Apps add their rows in tests/<app>/access_matrix*.py (MATRIX and NOT_PERSONAL)."""
    import importlib
    import pkgutil
    from pathlib import Path

    root = Path(__file__).parent
    for package in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        for info in pkgutil.iter_modules([str(package)]):
            if info.name.startswith("access_matrix"):
                module = importlib.import_module(f"tests.{package.name}.{info.name}")
                MATRIX.update(getattr(module, "MATRIX", {}))
                NOT_PERSONAL.update(getattr(module, "NOT_PERSONAL", set()))


_load_app_matrices()


def _project_url_names() -> set[str]:
    """Every named URL of ours: not Django admin's, not allauth's own views."""
    names: set[str] = set()

    def walk(patterns, namespace: str = "") -> None:  # noqa: ANN001
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if entry.namespace == "admin":
                    continue
                ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, ns)
            elif isinstance(entry, URLPattern) and entry.name:
                module = getattr(entry.callback, "__module__", "")
                if module.startswith(("allauth.", "django.contrib.")):
                    continue
                names.add(f"{namespace}{entry.name}")

    walk(get_resolver().url_patterns)
    return names


def test_every_url_is_classified():
    unclassified = _project_url_names() - set(MATRIX) - NOT_PERSONAL
    assert unclassified == set(), f"add these to MATRIX or NOT_PERSONAL: {sorted(unclassified)}"
    stale = (set(MATRIX) | NOT_PERSONAL) - _project_url_names()
    assert stale == set(), f"no longer in the URLconf: {sorted(stale)}"


@pytest.fixture
def world(db, settings, tmp_path):
    """One actor per role; for each, their "own" patient and an unrelated "other" one."""
    settings.MEDIA_ROOT = tmp_path
    department = Department.objects.get_or_create(
        code="main-outpatient",
        defaults={"name": "Outpatient", "location": factories.make_location()},
    )[0]
    actors = {
        "patient": factories.make_patient(),
        "doctor": factories.make_staff(Role.DOCTOR),
        "nurse": factories.make_staff(Role.NURSE),
        "reception": factories.make_staff(Role.RECEPTION),
        "admin": factories.make_staff(Role.ADMIN),
    }
    # The doctor's department is elsewhere, so their access comes from the care grant.
    other_department = Department.objects.create(
        code="other", name="Other", location=department.location
    )
    actors["doctor"].staff_profile.department = other_department
    actors["doctor"].staff_profile.save()

    in_care = factories.make_patient(snils=factories.valid_snils(), passport="4510 000001")
    services.patient_department_assign(
        by=actors["reception"], patient=in_care.patient_profile, department=department
    )
    services.care_access_grant(
        by=None, doctor=actors["doctor"], patient=in_care.patient_profile, reason="appointment"
    )
    unrelated = factories.make_patient(snils=factories.valid_snils(), passport="4510 000002")
    for user in (actors["patient"], in_care, unrelated):
        services.identity_scan_upload(
            by=user,
            profile=user.patient_profile,
            upload=SimpleUploadedFile("s.pdf", b"%PDF-1.4 scan", content_type="application/pdf"),
        )
    own = {role: in_care for role in ROLES}
    own["patient"] = actors["patient"]
    return {
        "actors": actors,
        "own": own,
        "other": unrelated,
        "appointments": _appointments(actors, in_care, unrelated),
    }


def _appointments(actors, in_care, unrelated) -> dict:
    """A booked appointment per side: the patient's own; the in-care patient's with the
    doctor (own for staff); an unrelated patient's with another doctor (other)."""
    from scheduling import services as scheduling

    doctor = actors["doctor"]
    other_doctor = factories.make_staff(Role.DOCTOR)
    other_doctor.staff_profile.department = None
    other_doctor.staff_profile.save()
    made = {}
    for key, patient, with_doctor in (
        ("patient", actors["patient"], doctor),
        ("in_care", in_care, doctor),
        ("other", unrelated, other_doctor),
    ):
        factories.make_working_week(with_doctor) if not with_doctor.working_hours.exists() else None
        ctype = factories.make_consultation_type(with_doctor)
        from datetime import timedelta

        from django.utils import timezone

        from scheduling.availability import free_slots

        day = timezone.now().date() + timedelta(days=2)
        slot = free_slots([with_doctor.pk], day, 1, consultation_type=ctype)[with_doctor.pk][0]
        made[key] = scheduling.appointment_book_slot(
            by=None,
            patient=patient.patient_profile,
            doctor=with_doctor,
            consultation_type=ctype,
            starts_at=slot.start,
        )
    own = {role: made["in_care"] for role in ROLES}
    own["patient"] = made["patient"]
    return {"own": own, "other": made["other"]}


def _cases():
    for name, rule in MATRIX.items():
        for role in ROLES:
            yield pytest.param(name, role, "own", id=f"{name}-{role}-own")
            if rule.per_patient:
                yield pytest.param(name, role, "other", id=f"{name}-{role}-other")


@pytest.mark.parametrize(("name", "role", "target"), list(_cases()))
def test_access_matrix(client, world, name, role, target):
    rule = MATRIX[name]
    expected = (rule.own if target == "own" else rule.other)[role]
    actor = world["actors"][role]
    # Signed in directly: the sign-in and TOTP steps have their own tests, and every
    # staff actor has TOTP, so the MFA gate lets them through as after a real sign-in.
    client.force_login(actor)
    patient = world[target][role] if target == "own" else world["other"]
    if rule.args is not None:
        args = rule.args(world, role, target)
    else:
        args = [patient.patient_profile.pk] if rule.per_patient else []
    url = reverse(name, args=args)
    denials_before = AuditEvent.objects.filter(actor=actor, action=AuditAction.DENIED).count()

    response = client.get(url)

    if expected == OK:
        assert response.status_code in (200, 302), (url, response.status_code)
        if response.status_code == 302:
            assert "/accounts/login/" not in response["Location"]
            assert "/2fa/" not in response["Location"]
    else:
        assert response.status_code == 404, (url, response.status_code)
        denials = AuditEvent.objects.filter(actor=actor, action=AuditAction.DENIED)
        assert denials.count() > denials_before, f"denial of {url} for {role} not recorded"
        if rule.per_patient and rule.denial_names_patient:
            assert denials.filter(patient=patient).exists()
            # Nothing of the patient leaks into the 404 page.
            assert patient.patient_profile.last_name not in response.content.decode()


@pytest.mark.parametrize("name", [n for n, r in MATRIX.items()])
def test_anonymous_visitors_are_sent_to_sign_in(client, world, name):
    rule = MATRIX[name]
    if rule.args is not None:
        args = rule.args(world, "patient", "other")
    else:
        args = [world["other"].patient_profile.pk] if rule.per_patient else []
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_missing_and_forbidden_ids_look_the_same(client, login_staff, world):
    login_staff(world["actors"]["reception"])
    forbidden = client.get(
        reverse("accounts:patient_record", args=[world["other"].patient_profile.pk])
    )
    missing = client.get(reverse("accounts:patient_record", args=[987654321]))
    assert forbidden.status_code == missing.status_code == 404
    import re

    def without_nonces(html: bytes) -> str:  # the CSP nonce and CSRF token differ per response
        text = html.decode()
        text = re.sub(r'nonce="[^"]+"', "", text)
        text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
        text = re.sub(r'name="next" value="[^"]+"', "", text)  # the language switcher's return
        return re.sub(r'"X-CSRFToken": "[^"]+"', "", text)

    assert without_nonces(forbidden.content) == without_nonces(missing.content)
