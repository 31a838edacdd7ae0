"""Access-matrix rows for the "My data" pages (loaded by tests/test_access_matrix.py).

Only the patient opens them, for their own requests: nobody acts for a patient here
(accounts has no representatives), and staff neither export a patient's data nor delete
an account. Every refusal is a recorded 404, naming the patient when the request is
someone's. The page shown after a deletion is for a signed-out visitor and holds no
personal data (the request it describes comes from that browser's session):
tests/records/test_data_rights_deletion.py.
"""

from __future__ import annotations

from tests.test_access_matrix import Rule, only

NOT_PERSONAL = {"records:data_deletion_done"}

PATIENT = only("patient")


def _request(world: dict, side: str, *, rendered: bool) -> object:
    """A PDF export request of one side's patient ("patient": the patient's own;
    "in_care": the patient the staff actors look after; "other": an unrelated one),
    made once per world and rendered when a download needs its file."""
    from records import services_data_rights as services

    made = world.setdefault("data_requests", {})
    if side not in made:
        patient = {
            "patient": world["own"]["patient"],
            "in_care": world["own"]["doctor"],
            "other": world["other"],
        }[side]
        made[side] = services.data_export_pdf_request(by=patient, profile=patient.patient_profile)
    if rendered and not made[side].file:
        made[side] = services.data_export_pdf_run(request_id=made[side].pk)
    return made[side]


def _pick(*, rendered: bool = False):  # noqa: ANN202
    def args(world: dict, role: str, target: str) -> list:
        side = "other" if target == "other" else ("patient" if role == "patient" else "in_care")
        return [_request(world, side, rendered=rendered).public_id]

    return args


MATRIX = {
    "records:data_rights": Rule(False, PATIENT),
    # GET only leads back to "My data"; the downloads and requests are POSTs.
    "records:data_export_json": Rule(False, PATIENT),
    "records:data_export_pdf": Rule(False, PATIENT),
    "records:data_deletion": Rule(False, PATIENT),
    "records:data_request": Rule(True, own=PATIENT, other=only(), args=_pick()),
    "records:data_request_status": Rule(True, own=PATIENT, other=only(), args=_pick()),
    "records:data_export_download": Rule(
        True, own=PATIENT, other=only(), args=_pick(rendered=True)
    ),
}
