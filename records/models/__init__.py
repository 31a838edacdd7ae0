"""Records models, one module per part: results.py (visits, lab results). Other parts
(documents, prescriptions) add their module and one import line here."""

from records.models.results import (
    ICD10_PATTERN,
    LOINC_PATTERN,
    RELEASABLE_STATUSES,
    DiagnosisKind,
    Interpretation,
    LabReport,
    Observation,
    ObservationStatus,
    ReleasePolicy,
    ReportStatus,
    ReviewState,
    TestType,
    ValueType,
    Visit,
    VisitDiagnosis,
    VisitNote,
)

__all__ = [
    "ICD10_PATTERN",
    "LOINC_PATTERN",
    "RELEASABLE_STATUSES",
    "DiagnosisKind",
    "Interpretation",
    "LabReport",
    "Observation",
    "ObservationStatus",
    "ReleasePolicy",
    "ReportStatus",
    "ReviewState",
    "TestType",
    "ValueType",
    "Visit",
    "VisitDiagnosis",
    "VisitNote",
]
from records.models.care import *  # noqa: E402, F403 - prescriptions, intake, care plans
from records.models.data_rights import *  # noqa: E402, F403 - data requests: exports, deletion
from records.models.documents import *  # noqa: E402, F403 - documents, PDF jobs, verification codes
