"""A patient's data export (issue 6, data rights): what is read (`data`) and the FHIR R4
Bundle built from it (`bundle`). The readable PDF is in records/export_pdf.py."""

from records.export.bundle import bundle_of, patient_export_bundle, resource_counts
from records.export.data import (
    ICD10,
    PASSPORT_SYSTEM,
    SNILS_SYSTEM,
    V3_INTERPRETATION,
    ExportData,
    check_may_export,
    collect,
)

__all__ = [
    "ICD10",
    "PASSPORT_SYSTEM",
    "SNILS_SYSTEM",
    "V3_INTERPRETATION",
    "ExportData",
    "bundle_of",
    "check_may_export",
    "collect",
    "patient_export_bundle",
    "resource_counts",
]
