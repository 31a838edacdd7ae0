"""Access-matrix rows for prescriptions, renewals, intake forms, vaccinations and care
plans (loaded by tests/test_access_matrix.py).

Patients open their own pages only; a renewal request or an appointment's intake form
opens for its patient on the patient pages, and for the doctors and nurses of that
patient on the staff pages (the world's doctor through the care grant, the nurse through
the department). Writing pages open for who may write: prescriptions and care plans for
the doctor in charge, vaccinations for the doctor or nurse in charge. Reception and
administrators never see any of it. Objects are made on first use for the patient of
each side ("own": the role's own patient, "other": an unrelated one).
"""

from __future__ import annotations

from tests.test_access_matrix import Rule, only


def _patient(world: dict, role: str, target: str):  # noqa: ANN202
    return world["own"][role] if target == "own" else world["other"]


def _care(world: dict, patient) -> dict:  # noqa: ANN001
    """A repeat prescription with a renewal request and a care plan of `patient`, made
    once per world."""
    from accounts import services as account_services
    from accounts.models import Role
    from records import services_care
    from tests import factories

    made = world.setdefault("care", {})
    if patient.pk not in made:
        author = world.get("care_author")
        if author is None:
            author = world["care_author"] = factories.make_staff(Role.DOCTOR)
        account_services.care_access_grant(
            by=None, doctor=author, patient=patient.patient_profile, reason="matrix"
        )
        rx = services_care.prescription_create(
            by=author,
            patient=patient.patient_profile,
            medication="Лизиноприл",
            dosage="10 мг",
            is_repeat=True,
            repeats_allowed=2,
        )
        renewal = services_care.renewal_request_submit(
            by=patient, prescription=rx, confirmed_dosage="10 мг", pharmacy="Аптека"
        )
        plan = services_care.care_plan_create(
            by=author,
            patient=patient.patient_profile,
            condition="Гипертензия",
            instructions="Меньше соли.",
        )
        made[patient.pk] = {"renewal": renewal, "plan": plan}
    return made[patient.pk]


def _renewal(world: dict, role: str, target: str) -> list:
    return [_care(world, _patient(world, role, target))["renewal"].public_id]


def _plan(world: dict, role: str, target: str) -> list:
    return [_care(world, _patient(world, role, target))["plan"].public_id]


def _appointment(world: dict, role: str, target: str) -> list:
    appointments = world["appointments"]
    chosen = appointments["own"][role] if target == "own" else appointments["other"]
    return [chosen.public_id]


def _clinicians(*roles: str) -> Rule:
    """A page about one patient (profile id) for these clinicians in charge."""
    return Rule(True, own=only(*roles), other=only())


MATRIX = {
    # The patient's own pages.
    "records:care_prescriptions": Rule(False, only("patient")),
    "records:care_renewals": Rule(False, only("patient")),
    "records:care_renewal_new": Rule(False, only("patient")),
    "records:care_renewal": Rule(True, own=only("patient"), other=only(), args=_renewal),
    "records:care_intake_list": Rule(False, only("patient")),
    "records:care_intake": Rule(True, own=only("patient"), other=only(), args=_appointment),
    "records:care_vaccinations": Rule(False, only("patient")),
    "records:care_plans": Rule(False, only("patient")),
    # Clinicians.
    "records:care_renewal_queue": Rule(False, only("doctor")),
    "records:care_staff_renewal": Rule(
        True, own=only("doctor", "nurse"), other=only(), args=_renewal
    ),
    "records:care_patient": _clinicians("doctor", "nurse"),
    "records:care_prescription_new": _clinicians("doctor"),
    "records:care_vaccination_new": _clinicians("doctor", "nurse"),
    "records:care_plan_new": _clinicians("doctor"),
    "records:care_plan_edit": Rule(True, own=only("doctor"), other=only(), args=_plan),
    "records:care_staff_intake": Rule(
        True, own=only("doctor", "nurse"), other=only(), args=_appointment
    ),
}
