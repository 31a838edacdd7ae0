"""Access-matrix rows for the doctor's visit pages (loaded by tests/test_access_matrix.py).

Recording a visit and editing its summary and diagnoses are for doctors in charge of the
patient (the world's doctor through the care grant), and editing for the visit's own
doctor only: nurses, who may read the visit, reception, administrators and patients get
a recorded 404 naming the patient; nobody opens them for an unrelated patient.
"""

from __future__ import annotations

from tests.records.access_matrix import _visit
from tests.test_access_matrix import Rule, only

MATRIX = {
    "records:staff_visit_new": Rule(True, own=only("doctor"), other=only()),
    "records:staff_visit_edit": Rule(True, own=only("doctor"), other=only(), args=_visit),
}
