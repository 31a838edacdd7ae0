"""The FHIR R4 Bundle of a patient's export, built from `records.export.data.collect`."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse

from accounts.models import ConsentDecision, ConsentRecord, PatientProfile
from accounts.templatetags.access_log import audit_subject, role_label
from accounts.validators import format_passport, format_snils
from audit.models import AuditAction, AuditEvent
from records import presentation

# --- Code systems and identifier systems -----------------------------------------------------
from records.export.data import (
    APPOINTMENT_STATUS,
    AUDIT_ACTION_CODE,
    AUDIT_ENTITY_TYPE,
    BCP47,
    CONDITION_CATEGORY,
    CONDITION_VERIFICATION,
    CONSENT_SCOPE,
    DIAGNOSTIC_REPORT_NOTE,
    DICOM,
    DOCUMENT_LOINC,
    ICD10,
    IDENTITY_DOCUMENT_TYPES,
    INTERPRETATION_DISPLAY,
    LOINC,
    OBSERVATION_CATEGORY,
    PASSPORT_SYSTEM,
    RENEWAL_TASK_STATUS,
    SNILS_SYSTEM,
    UPLOAD_DOC_STATUS,
    V2_0074,
    V2_0203,
    V3_ACT_CODE,
    V3_INTERPRETATION,
    V3_PURPOSE_OF_USE,
    ExportData,
    _clean,
    _date,
    _dt,
    _number,
    _ref,
    _site_url,
    _text,
    _uid,
    check_may_export,
    collect,
)
from records.models import (
    INTAKE_FIELDS,
    CarePlan,
    Document,
    DocumentKind,
    IntakeForm,
    IntakeStatus,
    LabReport,
    Observation,
    Prescription,
    RenewalRequest,
    UploadState,
    Vaccination,
    ValueType,
    Visit,
)

# --- The FHIR Bundle ---------------------------------------------------------------------------


class _BundleBuilder:
    def __init__(self, data: ExportData) -> None:
        self.data = data
        self.entries: list[dict[str, Any]] = []
        self.practitioners: dict[int, str] = {}
        self.locations: dict[int, str] = {}
        self.patient_id = _uid("patient", data.profile.pk)
        self.organization_id = _uid("organization", "clinic")
        self.visit_ids = {visit.pk for visit in data.visits}

    def add(self, resource: dict[str, Any]) -> None:
        resource = _clean(resource)
        self.entries.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})

    @property
    def patient(self) -> dict[str, Any]:
        return _ref(self.patient_id, self.data.profile.full_name())

    def practitioner(self, user: Any) -> dict[str, Any] | None:
        """A reference to a staff member (their Practitioner resource, added once)."""
        if user is None:
            return None
        staff = getattr(user, "staff_profile", None)
        if staff is None:
            return {"display": str(role_label(getattr(user, "role", "")))}
        uid = self.practitioners.get(user.pk)
        if uid is None:
            uid = self.practitioners[user.pk] = _uid("practitioner", user.pk)
            specialty = staff.specialty.name if staff.specialty_id else staff.title
            self.add(
                {
                    "resourceType": "Practitioner",
                    "id": uid,
                    "active": user.is_active,
                    "name": [{"text": staff.full_name}],
                    "qualification": [{"code": {"text": specialty}}] if specialty else [],
                }
            )
        return _ref(uid, staff.full_name)

    def location(self, location: Any) -> dict[str, Any] | None:
        if location is None:
            return None
        uid = self.locations.get(location.pk)
        if uid is None:
            uid = self.locations[location.pk] = _uid("location", location.pk)
            self.add(
                {
                    "resourceType": "Location",
                    "id": uid,
                    "name": location.name,
                    "address": {"text": location.address},
                    "telecom": [{"system": "phone", "value": location.phone}]
                    if location.phone
                    else [],
                    "managingOrganization": _ref(self.organization_id),
                }
            )
        return _ref(uid, location.name)

    def encounter(self, visit_id: int | None, public_id: Any = None) -> dict[str, Any] | None:
        """A reference to a visit only when it is in the export (released)."""
        if visit_id is None or visit_id not in self.visit_ids:
            return None
        return _ref(str(public_id))

    # --- resources ---

    def build(self) -> list[dict[str, Any]]:
        self.add_organization()
        self.add_patient()
        for record in self.data.consents:
            self.add_consent(record)
        for appointment in self.data.appointments:
            self.add_appointment(appointment)
        for visit in self.data.visits:
            self.add_visit(visit)
        for report in self.data.reports:
            self.add_report(report)
        for document in self.data.documents:
            self.add_document(document)
        for prescription in self.data.prescriptions:
            self.add_prescription(prescription)
        for renewal in self.data.renewals:
            self.add_renewal(renewal)
        for vaccination in self.data.vaccinations:
            self.add_vaccination(vaccination)
        for plan in self.data.care_plans:
            self.add_care_plan(plan)
        for form in self.data.intake_forms:
            self.add_intake_form(form)
        for event in self.data.access_log:
            self.add_audit_event(event)
        return self.entries

    def add_organization(self) -> None:
        self.add(
            {
                "resourceType": "Organization",
                "id": self.organization_id,
                "active": True,
                "name": settings.CLINIC_NAME,
                "telecom": [{"system": "url", "value": settings.SITE_URL}],
            }
        )

    def add_patient(self) -> None:
        profile, user = self.data.profile, self.data.user
        identifiers = []
        if profile.snils:
            identifiers.append(
                {
                    "use": "official",
                    "type": {
                        "coding": [
                            {
                                "system": V2_0203,
                                "code": "SB",
                                "display": "Social Beneficiary Identifier",
                            }
                        ],
                        "text": "СНИЛС",
                    },
                    "system": SNILS_SYSTEM,
                    "value": format_snils(profile.snils),
                }
            )
        if profile.passport:
            identifiers.append(
                {
                    "use": "official",
                    "type": {
                        "coding": [
                            {
                                "system": IDENTITY_DOCUMENT_TYPES,
                                "code": "1",
                                "display": "Паспорт гражданина Российской Федерации",
                            },
                            {"system": V2_0203, "code": "PPN", "display": "Passport number"},
                        ],
                        "text": "Паспорт РФ",
                    },
                    "system": PASSPORT_SYSTEM,
                    "value": format_passport(profile.passport),
                }
            )
        if profile.insurance_policy:
            identifiers.append(
                {
                    "type": {
                        "coding": [
                            {"system": V2_0203, "code": "SN", "display": "Subscriber Number"}
                        ],
                        "text": "Полис ОМС",
                    },
                    "value": profile.insurance_policy,
                }
            )
        telecom = []
        if user.email:
            telecom.append({"system": "email", "value": user.email, "use": "home"})
        if profile.phone:
            telecom.append({"system": "phone", "value": profile.phone, "use": "mobile"})
        self.add(
            {
                "resourceType": "Patient",
                "id": self.patient_id,
                "identifier": identifiers,
                "active": user.is_active,
                "name": [
                    {
                        "use": "official",
                        "text": profile.full_name(),
                        "family": profile.last_name,
                        "given": [p for p in (profile.first_name, profile.middle_name) if p],
                    }
                ],
                "telecom": telecom,
                "gender": profile.sex or None,
                "birthDate": _date(profile.birth_date),
                "address": [{"use": "home", "text": profile.address}] if profile.address else [],
                "communication": [
                    {
                        "language": {"coding": [{"system": BCP47, "code": user.language}]},
                        "preferred": True,
                    }
                ],
                "managingOrganization": _ref(self.organization_id, settings.CLINIC_NAME),
            }
        )

    def add_consent(self, record: ConsentRecord) -> None:
        newest = next(c for c in self.data.consents if c.kind == record.kind)
        self.add(
            {
                "resourceType": "Consent",
                "id": _uid("consent", record.pk),
                "status": "active" if newest.pk == record.pk else "inactive",
                "scope": {
                    "coding": [
                        {
                            "system": CONSENT_SCOPE,
                            "code": "patient-privacy",
                            "display": "Privacy Consent",
                        }
                    ]
                },
                "category": [
                    {
                        "coding": [
                            {"system": LOINC, "code": "59284-0", "display": "Patient Consent"}
                        ],
                        "text": str(record.get_kind_display()),
                    }
                ],
                "patient": self.patient,
                "dateTime": _dt(record.decided_at),
                "organization": [_ref(self.organization_id, settings.CLINIC_NAME)],
                "policyRule": {"text": f"{record.text.title} (v{record.text.version})"},
                "provision": {
                    "type": "permit" if record.decision == ConsentDecision.GIVEN else "deny"
                },
            }
        )

    def add_appointment(self, appointment: Any) -> None:
        ctype = appointment.consultation_type
        participants = [{"actor": self.patient, "status": "accepted"}]
        doctor = self.practitioner(appointment.doctor)
        if doctor:
            participants.append({"actor": doctor, "status": "accepted"})
        location = self.location(appointment.location)
        if location:
            participants.append({"actor": location, "status": "accepted"})
        cancelled = appointment.status == "cancelled"
        self.add(
            {
                "resourceType": "Appointment",
                "id": str(appointment.public_id),
                "status": APPOINTMENT_STATUS.get(appointment.status, "booked"),
                "cancelationReason": {"text": appointment.cancellation_reason}
                if cancelled and appointment.cancellation_reason
                else None,
                "serviceType": [{"text": ctype.name}],
                "description": ctype.name,
                "start": _dt(appointment.starts_at),
                "end": _dt(appointment.ends_at),
                "created": _dt(appointment.created_at),
                "comment": appointment.patient_note,
                "participant": participants,
            }
        )

    def add_visit(self, visit: Visit) -> None:
        diagnoses = list(visit.diagnoses.all())
        primary_first = sorted(diagnoses, key=lambda d: (d.kind != "primary", d.sort_order, d.pk))
        visit_ref = _ref(str(visit.public_id))
        doctor = self.practitioner(visit.doctor)
        location = self.location(visit.location)
        encounter_diagnoses = []
        for rank, diagnosis in enumerate(primary_first, start=1):
            uid = _uid("diagnosis", diagnosis.pk)
            encounter_diagnoses.append({"condition": _ref(uid, diagnosis.text), "rank": rank})
        self.add(
            {
                "resourceType": "Encounter",
                "id": str(visit.public_id),
                "status": "finished",
                "class": {"system": V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "subject": self.patient,
                "participant": [{"individual": doctor}] if doctor else [],
                "appointment": [_ref(str(visit.appointment.public_id))]
                if visit.appointment_id and visit.appointment
                else [],
                "period": {"start": _dt(visit.started_at), "end": _dt(visit.ended_at)},
                "diagnosis": encounter_diagnoses,
                "location": [{"location": location}] if location else [],
                "serviceProvider": _ref(self.organization_id, settings.CLINIC_NAME),
            }
        )
        for diagnosis in primary_first:
            self.add(
                {
                    "resourceType": "Condition",
                    "id": _uid("diagnosis", diagnosis.pk),
                    "verificationStatus": {
                        "coding": [{"system": CONDITION_VERIFICATION, "code": "confirmed"}]
                    },
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": CONDITION_CATEGORY,
                                    "code": "encounter-diagnosis",
                                    "display": "Encounter Diagnosis",
                                }
                            ],
                            "text": str(diagnosis.get_kind_display()),
                        }
                    ],
                    "code": {
                        "coding": [{"system": ICD10, "code": diagnosis.code.strip().upper()}],
                        "text": diagnosis.text,
                    },
                    "subject": self.patient,
                    "encounter": visit_ref,
                    "recordedDate": _dt(visit.started_at),
                    "recorder": doctor,
                }
            )
        notes = getattr(visit, "patient_notes", [])
        if visit.summary or notes:
            self.add(
                {
                    "resourceType": "ClinicalImpression",
                    "id": _uid("visit-summary", visit.pk),
                    "status": "completed",
                    "subject": self.patient,
                    "encounter": visit_ref,
                    "effectiveDateTime": _dt(visit.started_at),
                    "date": _dt(visit.released_at),
                    "assessor": doctor,
                    "summary": visit.summary,
                    "note": [
                        {
                            "text": note.text,
                            "time": _dt(note.created_at),
                            "authorReference": self.practitioner(note.author),
                        }
                        for note in notes
                    ],
                }
            )

    def add_report(self, report: LabReport) -> None:
        encounter = self.encounter(report.visit_id, getattr(report.visit, "public_id", None))
        results = []
        for obs in report.observations.all():
            uid = _uid("observation", obs.pk)
            results.append(_ref(uid, obs.name))
            self.add(self.observation(obs, report, uid, encounter))
        reviewer = self.practitioner(report.reviewed_by)
        extensions = []
        if report.review_comment:
            extensions.append(
                {
                    "url": DIAGNOSTIC_REPORT_NOTE,
                    "valueAnnotation": _clean(
                        {
                            "text": report.review_comment,
                            "time": _dt(report.reviewed_at),
                            "authorReference": reviewer,
                        }
                    ),
                }
            )
        code = {"text": report.test_type.name}
        if report.test_type.loinc_code:
            code["coding"] = [{"system": LOINC, "code": report.test_type.loinc_code}]
        self.add(
            {
                "resourceType": "DiagnosticReport",
                "id": str(report.public_id),
                "extension": extensions,
                "status": report.status,
                "category": [
                    {"coding": [{"system": V2_0074, "code": "LAB", "display": "Laboratory"}]}
                ],
                "code": code,
                "subject": self.patient,
                "encounter": encounter,
                "effectiveDateTime": _dt(report.effective_at),
                "issued": _dt(report.issued_at),
                "performer": [{"display": report.performer}] if report.performer else [],
                "resultsInterpreter": [reviewer] if reviewer else [],
                "result": results,
                "conclusion": report.conclusion,
            }
        )

    def observation(
        self, obs: Observation, report: LabReport, uid: str, encounter: dict | None
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": uid,
            "status": obs.status,
            "category": [
                {
                    "coding": [
                        {
                            "system": OBSERVATION_CATEGORY,
                            "code": "laboratory",
                            "display": "Laboratory",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [{"system": LOINC, "code": obs.loinc_code, "display": obs.name}],
                "text": obs.name,
            },
            "subject": self.patient,
            "encounter": encounter,
            "effectiveDateTime": _dt(report.effective_at),
            "issued": _dt(report.issued_at),
        }
        if obs.value_type == ValueType.QUANTITY and obs.value_quantity is not None:
            resource["valueQuantity"] = {"value": _number(obs.value_quantity), "unit": obs.unit}
        elif obs.value_type == ValueType.CODED and (obs.value_code or obs.value_display):
            coding = {"code": obs.value_code, "display": obs.value_display}
            resource["valueCodeableConcept"] = {
                "coding": [coding] if obs.value_code else [],
                "text": obs.value_display or obs.value_code,
            }
        elif obs.value_text:
            resource["valueString"] = obs.value_text
        if obs.interpretation:
            display = INTERPRETATION_DISPLAY.get(obs.interpretation, obs.interpretation)
            flag = presentation.flag_of(obs.interpretation)
            resource["interpretation"] = [
                {
                    "coding": [
                        {
                            "system": V3_INTERPRETATION,
                            "code": obs.interpretation,
                            "display": display,
                        }
                    ],
                    "text": flag.label if flag else display,
                }
            ]
        low, high = obs.reference_low, obs.reference_high
        if low is not None or high is not None or obs.reference_text:
            resource["referenceRange"] = [
                {
                    "low": {"value": _number(low), "unit": obs.unit} if low is not None else None,
                    "high": {"value": _number(high), "unit": obs.unit}
                    if high is not None
                    else None,
                    "text": obs.reference_text,
                }
            ]
        if obs.note:
            resource["note"] = [{"text": obs.note}]
        return resource

    def add_document(self, document: Document) -> None:
        loinc = DOCUMENT_LOINC.get(document.kind)
        doc_type: dict[str, Any] = {"text": str(document.get_kind_display())}
        if loinc:
            doc_type["coding"] = [{"system": LOINC, "code": loinc[0], "display": loinc[1]}]
        is_upload = document.kind == DocumentKind.UPLOAD
        if is_upload and document.uploaded_by_id == self.data.user.pk:
            authors = [self.patient]
        else:
            authors = [self.practitioner(document.author)] if document.author_id else []
        description = document.title
        if is_upload and document.review_state == UploadState.REJECTED and document.review_reason:
            state = document.get_review_state_display()
            description = f"{document.title} ({state}: {document.review_reason})"
        content = [
            {
                "attachment": {
                    "contentType": document.content_type,
                    "size": document.size,
                    "title": document.title,
                    "creation": _dt(document.rendered_at or document.created_at),
                    "url": _site_url(
                        reverse("records:document_download", args=[document.public_id])
                    )
                    if document.has_file
                    else None,
                }
            }
        ]
        if document.body:
            content.append(
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "language": self.data.user.language,
                        "data": base64.b64encode(document.body.encode("utf-8")).decode("ascii"),
                        "title": document.title,
                    }
                }
            )
        visit_ref = self.encounter(document.visit_id, getattr(document.visit, "public_id", None))
        self.add(
            {
                "resourceType": "DocumentReference",
                "id": str(document.public_id),
                "status": "current",
                "docStatus": UPLOAD_DOC_STATUS.get(document.review_state) if is_upload else "final",
                "type": doc_type,
                "subject": self.patient,
                "date": _dt(document.created_at),
                "author": [a for a in authors if a],
                "custodian": _ref(self.organization_id, settings.CLINIC_NAME),
                "description": description,
                "content": content,
                "context": {"encounter": [visit_ref]} if visit_ref else None,
            }
        )

    def add_prescription(self, rx: Prescription) -> None:
        self.add(
            {
                "resourceType": "MedicationRequest",
                "id": str(rx.public_id),
                "status": rx.status,
                "intent": "order",
                "medicationCodeableConcept": {"text": rx.medication},
                "subject": self.patient,
                "encounter": self.encounter(rx.visit_id, getattr(rx.visit, "public_id", None)),
                "authoredOn": _dt(rx.issued_at),
                "requester": self.practitioner(rx.prescriber),
                "dosageInstruction": [{"text": rx.dosage, "patientInstruction": rx.instructions}],
                "dispenseRequest": {
                    "numberOfRepeatsAllowed": rx.repeats_allowed if rx.is_repeat else None,
                    "validityPeriod": {"end": _date(rx.valid_until)} if rx.valid_until else None,
                },
            }
        )

    def add_renewal(self, renewal: RenewalRequest) -> None:
        self.add(
            {
                "resourceType": "Task",
                "id": str(renewal.public_id),
                "status": RENEWAL_TASK_STATUS.get(renewal.status, "requested"),
                "statusReason": {"text": renewal.rejection_reason}
                if renewal.rejection_reason
                else None,
                "intent": "order",
                "code": {"text": "Prescription renewal request"},
                "businessStatus": {"text": str(renewal.get_status_display())},
                "focus": _ref(str(renewal.prescription.public_id), renewal.prescription.medication),
                "for": self.patient,
                "authoredOn": _dt(renewal.submitted_at),
                "lastModified": _dt(renewal.updated_at),
                "requester": self.patient,
                "owner": self.practitioner(renewal.reviewer),
                "note": [{"text": renewal.notes}] if renewal.notes else [],
                "input": [
                    {
                        "type": {"text": "Dosage the patient takes"},
                        "valueString": renewal.confirmed_dosage,
                    },
                    {"type": {"text": "Pharmacy"}, "valueString": renewal.pharmacy},
                ],
            }
        )

    def add_vaccination(self, vaccination: Vaccination) -> None:
        self.add(
            {
                "resourceType": "Immunization",
                "id": str(vaccination.public_id),
                "status": "completed",
                "vaccineCode": {"text": vaccination.vaccine},
                "patient": self.patient,
                "occurrenceDateTime": _date(vaccination.given_on),
                "recorded": _dt(vaccination.created_at),
                "lotNumber": vaccination.lot,
                "note": [{"text": vaccination.notes}] if vaccination.notes else [],
                "protocolApplied": [{"doseNumberPositiveInt": vaccination.dose_number}],
            }
        )

    def add_care_plan(self, plan: CarePlan) -> None:
        notes = []
        if plan.review_date:
            notes.append({"text": f"Next review: {plan.review_date.isoformat()}"})
        self.add(
            {
                "resourceType": "CarePlan",
                "id": str(plan.public_id),
                "status": "active" if plan.active else "completed",
                "intent": "plan",
                "title": plan.condition,
                "description": plan.instructions,
                "subject": self.patient,
                "period": {"start": _date(plan.start_date)},
                "created": _dt(plan.created_at),
                "author": self.practitioner(plan.doctor),
                "note": notes,
            }
        )

    def add_intake_form(self, form: IntakeForm) -> None:
        items = []
        for name in INTAKE_FIELDS:
            answer = _text(getattr(form, name))
            if answer:
                label = str(IntakeForm._meta.get_field(name).verbose_name)
                items.append({"linkId": name, "text": label, "answer": [{"valueString": answer}]})
        submitted = form.status == IntakeStatus.SUBMITTED
        self.add(
            {
                "resourceType": "QuestionnaireResponse",
                "id": str(form.public_id),
                "status": "completed" if submitted else "in-progress",
                "subject": self.patient,
                "authored": _dt(form.submitted_at if submitted else form.updated_at),
                "author": self.patient,
                "source": self.patient,
                "item": items,
            }
        )

    def add_audit_event(self, event: AuditEvent) -> None:
        who = self.practitioner(event.actor) or {"display": str(role_label(event.actor_role))}
        denied = event.action == AuditAction.DENIED
        self.add(
            {
                "resourceType": "AuditEvent",
                "id": _uid("audit", event.seq),
                "type": {"system": DICOM, "code": "110110", "display": "Patient Record"},
                "action": AUDIT_ACTION_CODE.get(event.action, "E"),
                "recorded": _dt(event.occurred_at),
                "outcome": "4" if denied else "0",
                "outcomeDesc": str(event.get_action_display()),
                "purposeOfEvent": [
                    {
                        "coding": [
                            {
                                "system": V3_PURPOSE_OF_USE,
                                "code": "ETREAT",
                                "display": "Emergency Treatment",
                            }
                        ],
                        "text": event.reason,
                    }
                ]
                if event.break_glass
                else [],
                "agent": [
                    {
                        "type": {"text": str(role_label(event.actor_role))},
                        "who": who,
                        "requestor": True,
                    }
                ],
                "source": {
                    "site": settings.CLINIC_NAME,
                    "observer": _ref(self.organization_id, settings.CLINIC_NAME),
                },
                "entity": [
                    {
                        "what": self.patient,
                        "type": {"system": AUDIT_ENTITY_TYPE, "code": "1", "display": "Person"},
                        "description": str(audit_subject(event)),
                    }
                ],
            }
        )


def bundle_of(data: ExportData, *, bundle_id: str | None = None) -> dict[str, Any]:
    """The FHIR R4 Bundle (type "collection") of what `collect` read."""
    bundle_id = bundle_id or str(uuid.uuid4())
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"lastUpdated": _dt(data.generated_at)},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "collection",
        "timestamp": _dt(data.generated_at),
        "entry": _BundleBuilder(data).build(),
    }


def patient_export_bundle(
    *, by: Any, profile: PatientProfile, bundle_id: str | None = None
) -> dict[str, Any]:
    """Everything held about the patient that they may see, as a FHIR R4 Bundle (a dict,
    ready for json.dumps). Only the patient may ask (PermissionDenied otherwise, the
    refusal recorded). Handing it over is recorded by the caller
    (records.services_data_rights.data_export_json)."""
    check_may_export(by, profile)
    return bundle_of(collect(profile), bundle_id=bundle_id)


def resource_counts(bundle: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in bundle.get("entry", []):
        kind = entry["resource"]["resourceType"]
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


__all__ = [
    "ExportData",
    "bundle_of",
    "check_may_export",
    "collect",
    "patient_export_bundle",
    "resource_counts",
]
