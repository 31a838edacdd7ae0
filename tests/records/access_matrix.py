"""Access-matrix rows for the records pages (loaded by tests/test_access_matrix.py).

Patient pages show the patient's own released results and visits only: staff get a
recorded 404 there. Clinicians' pages open for the doctors and nurses in charge of the
patient (the doctor through the appointment's care grant, the nurse through the
department); reception, administrators and patients get a recorded 404 naming the
patient, and nobody opens an unrelated patient's record here (break-glass is tested in
tests/records/test_staff_views.py).
"""

from __future__ import annotations

from tests.test_access_matrix import Rule, only

GLUCOSE = "14771-0"
CLINICIANS = only("doctor", "nurse")


def _records(world: dict) -> dict:
    """Made once per world: for each side a report and a visit.
    own[patient]: the patient's own released report; own[staff]: the in-care patient's
    report, waiting for review (unreleased); other: an unrelated patient's released one."""
    if "records" in world:
        return world["records"]
    from records import services
    from tests.records.helpers import receive

    actors = world["actors"]
    in_care = world["own"]["doctor"]
    mine = world["own"]["patient"]
    other = world["other"]
    other_doctor = world["appointments"]["other"].doctor

    def visit(patient, doctor):  # noqa: ANN001, ANN202
        return services.visit_create(
            by=None, patient=patient.patient_profile, doctor=doctor, summary="Осмотр"
        )

    made = {
        "report": {
            "patient": receive(mine, "glucose", ["5.0"]),
            "in_care": receive(in_care, "hba1c", ["6.9"]),
            "other": receive(other, "glucose", ["5.0"]),
        },
        "visit": {
            "patient": visit(mine, actors["doctor"]),
            "in_care": visit(in_care, actors["doctor"]),
            "other": visit(other, other_doctor),
        },
    }
    world["records"] = made
    return made


def _pick(world: dict, kind: str, role: str, target: str):  # noqa: ANN202
    made = _records(world)[kind]
    if target == "other":
        return made["other"]
    return made["patient"] if role == "patient" else made["in_care"]


def _report(world: dict, role: str, target: str) -> list:
    return [_pick(world, "report", role, target).public_id]


def _visit(world: dict, role: str, target: str) -> list:
    return [_pick(world, "visit", role, target).public_id]


def _trend(world: dict, role: str, target: str) -> list:
    return [GLUCOSE]


def _staff_trend(world: dict, role: str, target: str) -> list:
    patient = world["own"][role] if target == "own" else world["other"]
    return [patient.patient_profile.pk, GLUCOSE]


MATRIX = {
    # The patient's own pages.
    "records:visits": Rule(False, only("patient")),
    "records:results": Rule(False, only("patient")),
    "records:trend": Rule(False, only("patient"), args=_trend),
    "records:result_detail": Rule(True, own=only("patient"), other=only(), args=_report),
    # Clinicians in charge of the patient.
    "records:review_queue": Rule(False, only("doctor")),
    "records:staff_result": Rule(True, own=CLINICIANS, other=only(), args=_report),
    # A GET changes nothing: those who may see the result are sent to it.
    "records:staff_result_release": Rule(True, own=CLINICIANS, other=only(), args=_report),
    "records:chart": Rule(True, own=CLINICIANS, other=only()),
    "records:staff_trend": Rule(True, own=CLINICIANS, other=only(), args=_staff_trend),
    "records:staff_visit": Rule(True, own=CLINICIANS, other=only(), args=_visit),
    "records:staff_visit_release": Rule(True, own=CLINICIANS, other=only(), args=_visit),
}
