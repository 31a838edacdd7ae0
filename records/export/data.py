"""Everything the portal holds about a patient, as the patient may see it: the data of
their "My data" exports (issue 6, item 9).

`collect(profile)` reads it once, in a fixed number of queries, already filtered the
way the patient's own pages are (accounts.policies): released visits and results only,
never internal notes, documents released to the patient and the patient's own uploads,
and the access log of who else opened the record. Two renderings share it:

- `patient_export_bundle(by=, profile=)`: a FHIR R4 Bundle of type "collection" (plain
  JSON; the tests validate it with fhir.resources' R4B models, the R4-compatible release
  the library ships). Patient, Practitioner, Location, Organization, Consent,
  Appointment, Encounter + Condition + ClinicalImpression (the summary and the notes the
  patient reads), DiagnosticReport + Observation, DocumentReference (metadata and a link;
  the text of a clinic-written document inline), MedicationRequest, Task (renewal
  requests), Immunization, CarePlan, QuestionnaireResponse (intake forms) and AuditEvent
  (who opened the record).
- records.export_pdf: the same as a readable PDF (records/pdf.py's WeasyPrint setup and
  stylesheet; template records/pdf/export.html), made by a worker.

Reading here records nothing: the services that hand an export to the patient record it
(records.services_data_rights, AuditAction.EXPORT). A refusal is recorded here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q
from django.utils import timezone

from accounts import policies
from accounts.models import ConsentRecord, PatientProfile, User
from audit.models import AuditAction, AuditEvent
from audit.selectors import access_log_for_patient
from audit.services import audit_record
from records.models import (
    CarePlan,
    DataRequest,
    Document,
    DocumentKind,
    IntakeForm,
    LabReport,
    Observation,
    Prescription,
    RenewalRequest,
    UploadState,
    Vaccination,
    Visit,
    VisitDiagnosis,
    VisitNote,
)
from records.selectors_documents import PATIENT_VISIBLE

# --- Code systems and identifier systems -----------------------------------------------------

SNILS_SYSTEM = "urn:oid:1.2.643.100.3"  # СНИЛС in the Russian OID registry
PASSPORT_SYSTEM = "http://fhir.ru/core/systems/passport-RF"  # Ru Core IG's naming system
IDENTITY_DOCUMENT_TYPES = "urn:oid:1.2.643.5.1.13.13.99.2.48"  # НСИ: identity documents
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V3_PURPOSE_OF_USE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
BCP47 = "urn:ietf:bcp:47"
# DiagnosticReport.note exists from R5; in R4 it travels as the cross-version extension.
DIAGNOSTIC_REPORT_NOTE = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note"
)

# Ids of resources without a public UUID of their own: stable per row, not the row id.
EXPORT_NAMESPACE = uuid.UUID("5b0b7c8e-7a4e-4c8e-9d0f-6f1f3c2a9e41")

INTERPRETATION_DISPLAY = {
    "N": "Normal",
    "H": "High",
    "L": "Low",
    "HH": "Critical high",
    "LL": "Critical low",
    "A": "Abnormal",
}
APPOINTMENT_STATUS = {
    "held": "pending",
    "booked": "booked",
    "confirmed": "booked",
    "arrived": "arrived",
    "in_progress": "checked-in",
    "completed": "fulfilled",
    "cancelled": "cancelled",
    "no_show": "noshow",
    "expired": "cancelled",
}
RENEWAL_TASK_STATUS = {
    "submitted": "requested",
    "under_review": "in-progress",
    "approved": "accepted",
    "rejected": "rejected",
    "sent_to_pharmacy": "in-progress",
    "ready": "ready",
    "completed": "completed",
}
UPLOAD_DOC_STATUS = {
    UploadState.PENDING: "preliminary",
    UploadState.ACCEPTED: "final",
    UploadState.REJECTED: "entered-in-error",
}
DOCUMENT_LOINC = {
    DocumentKind.REFERRAL: ("57133-1", "Referral note"),
    DocumentKind.DISCHARGE_SUMMARY: ("18842-5", "Discharge summary"),
    DocumentKind.PRESCRIPTION: ("57833-6", "Prescription for medication"),
    DocumentKind.VISIT_SUMMARY: ("34133-9", "Summary of episode note"),
    DocumentKind.LAB_REPORT: ("11502-2", "Laboratory report"),
}
AUDIT_ACTION_CODE = {
    AuditAction.VIEW: "R",
    AuditAction.DOWNLOAD: "R",
    AuditAction.EXPORT: "R",
    AuditAction.BREAK_GLASS: "R",
    AuditAction.CREATE: "C",
    AuditAction.CHANGE: "U",
    AuditAction.ROLE_CHANGE: "U",
    AuditAction.REVIEW: "U",
    AuditAction.DELETE: "D",
}


# --- What is read ------------------------------------------------------------------------------


@dataclass
class ExportData:
    profile: PatientProfile
    generated_at: datetime
    consents: list[ConsentRecord]
    appointments: list[Any]
    visits: list[Visit]
    reports: list[LabReport]
    documents: list[Document]
    prescriptions: list[Prescription]
    renewals: list[RenewalRequest]
    vaccinations: list[Vaccination]
    care_plans: list[CarePlan]
    intake_forms: list[IntakeForm]
    access_log: list[AuditEvent]
    requests: list[DataRequest] = field(default_factory=list)

    @property
    def user(self) -> User:
        return self.profile.user


def _staff(prefix: str) -> str:
    return f"{prefix}__staff_profile__specialty"


def collect(profile: PatientProfile, *, now: datetime | None = None) -> ExportData:
    """Everything the patient may see of their record, in a fixed number of queries."""
    from scheduling.models import Appointment

    profile = PatientProfile.objects.select_related("user", "department").get(pk=profile.pk)
    user = profile.user
    consents = list(
        ConsentRecord.objects.filter(patient=profile)
        .select_related("text")
        .order_by("-decided_at", "-id")
    )
    appointments = list(
        Appointment.objects.filter(patient=profile)
        .select_related(_staff("doctor"), "location", "consultation_type")
        .order_by("-during")
    )
    visits = list(
        Visit.objects.filter(patient=profile, released_at__isnull=False)
        .select_related(_staff("doctor"), "location", "appointment")
        .prefetch_related(
            Prefetch("diagnoses", queryset=VisitDiagnosis.objects.order_by("sort_order", "id")),
            # The notes the patient reads; internal notes are never read here.
            Prefetch(
                "notes",
                queryset=VisitNote.objects.filter(internal=False)
                .select_related(_staff("author"))
                .order_by("created_at", "id"),
                to_attr="patient_notes",
            ),
        )
        .order_by("-started_at", "-id")
    )
    reports = list(
        LabReport.objects.filter(patient=profile, released_to_patient_at__isnull=False)
        .select_related("test_type", _staff("reviewed_by"), "visit")
        .prefetch_related(
            Prefetch("observations", queryset=Observation.objects.order_by("sort_order", "id"))
        )
        .order_by("-issued_at", "-id")
    )
    documents = list(
        Document.objects.filter(patient=profile)
        .filter(PATIENT_VISIBLE | Q(kind=DocumentKind.UPLOAD, uploaded_by=user))
        .exclude(kind=DocumentKind.DATA_EXPORT)
        .select_related(_staff("author"), "visit", "lab_report")
        .order_by("-created_at", "-id")
    )
    prescriptions = list(
        Prescription.objects.filter(patient=profile)
        .select_related(_staff("prescriber"), "visit")
        .order_by("-issued_at", "-id")
    )
    renewals = list(
        RenewalRequest.objects.filter(patient=profile)
        .select_related("prescription", _staff("reviewer"))
        .order_by("-submitted_at", "-id")
    )
    vaccinations = list(Vaccination.objects.filter(patient=profile).order_by("-given_on", "-id"))
    care_plans = list(
        CarePlan.objects.filter(patient=profile)
        .select_related(_staff("doctor"))
        .order_by("-start_date", "-id")
    )
    intake_forms = list(
        IntakeForm.objects.filter(patient=profile)
        .select_related("appointment")
        .order_by("-created_at", "-id")
    )
    access_log = list(access_log_for_patient(user).select_related(_staff("actor")))
    requests = list(DataRequest.objects.filter(patient=profile).order_by("-requested_at", "-id"))
    return ExportData(
        profile=profile,
        generated_at=now or timezone.now(),
        consents=consents,
        appointments=appointments,
        visits=visits,
        reports=reports,
        documents=documents,
        prescriptions=prescriptions,
        renewals=renewals,
        vaccinations=vaccinations,
        care_plans=care_plans,
        intake_forms=intake_forms,
        access_log=access_log,
        requests=requests,
    )


def check_may_export(by: Any, profile: PatientProfile) -> None:
    """Only the patient exports their data; a refusal is recorded with the patient."""
    if not policies.can_export_patient_data(by, profile):
        audit_record(
            actor=by,
            action=AuditAction.DENIED,
            obj=profile,
            patient=profile.user,
            detail={"what": "data_export"},
        )
        raise PermissionDenied


# --- Small helpers -----------------------------------------------------------------------------


def _uid(kind: str, key: Any) -> str:
    return str(uuid.uuid5(EXPORT_NAMESPACE, f"{kind}:{key}"))


def _ref(uid: str, display: str = "") -> dict[str, Any]:
    reference: dict[str, Any] = {"reference": f"urn:uuid:{uid}"}
    if display:
        reference["display"] = display
    return reference


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    normalised = Decimal(value).normalize()
    exponent = normalised.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(normalised)
    return float(normalised)


def _clean(value: Any) -> Any:
    """Drop empty elements: FHIR forbids empty strings, arrays and objects."""
    if isinstance(value, dict):
        cleaned = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        cleaned_list = [_clean(v) for v in value]
        return [v for v in cleaned_list if v not in (None, "", [], {})]
    return value


def _text(value: Any) -> str:
    return str(value or "").strip()


def _site_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path
