"""Every write to visits and lab results.

Each service takes the acting user first (`by=`; None for the system, e.g. the MIS
integration), checks `accounts.policies`, works in one transaction and records its
audit event last. Results reach the patient by the release rule of their test type:

- `immediate`: a final (or amended) report is released as soon as it arrives;
- `after_review`: it waits for a doctor's review with a comment, and is released when
  the doctor chooses "release to patient".

An amended report of an `after_review` test goes back to the review queue and is
withdrawn from the patient until a doctor has looked at the new values. Preliminary
reports are never released. A release fires `hooks.results_released` on commit, so the
notifications app can say "your results are ready" (never the values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import policies
from accounts.models import BreakGlassAccess, PatientProfile, Role, User
from audit.models import AuditAction
from audit.services import audit_record
from records import hooks
from records.models import (
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

NOTE_MAX_LENGTH = 10_000
COMMENT_MAX_LENGTH = 5_000
MAX_DIGITS, DECIMAL_PLACES = 14, 4


# --- Inputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservationInput:
    """One analyte as the laboratory sends it. Exactly one value: a quantity (with a
    unit), a text, or a code (with its display text)."""

    loinc_code: str
    name: str
    value_quantity: Decimal | str | int | float | None = None
    value_text: str = ""
    value_code: str = ""
    value_display: str = ""
    unit: str = ""
    reference_low: Decimal | str | int | float | None = None
    reference_high: Decimal | str | int | float | None = None
    reference_text: str = ""
    interpretation: str = ""
    status: str = ObservationStatus.FINAL
    note: str = ""

    @classmethod
    def of(cls, value: ObservationInput | Mapping[str, Any]) -> ObservationInput:
        if isinstance(value, ObservationInput):
            return value
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValidationError(
                _("Unknown observation fields: %(names)s") % {"names": ", ".join(sorted(unknown))}
            )
        return cls(**dict(value))


@dataclass(frozen=True)
class DiagnosisInput:
    code: str
    text: str
    kind: str = DiagnosisKind.PRIMARY


def _decimal(value: Any, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation as exc:
        raise ValidationError(_("%(what)s is not a number.") % {"what": what}) from exc
    if not number.is_finite():
        raise ValidationError(_("%(what)s is not a number.") % {"what": what})
    quantized = number.quantize(Decimal(1).scaleb(-DECIMAL_PLACES))
    if quantized != number or len(quantized.as_tuple().digits) > MAX_DIGITS:
        raise ValidationError(
            _("%(what)s has too many digits (at most 4 after the point).") % {"what": what}
        )
    return number


def derive_interpretation(value: Decimal | None, low: Decimal | None, high: Decimal | None) -> str:
    """The flag of a number against its range when the laboratory sent none."""
    if value is None or (low is None and high is None):
        return ""
    if low is not None and value < low:
        return Interpretation.LOW
    if high is not None and value > high:
        return Interpretation.HIGH
    return Interpretation.NORMAL


def _observation(report: LabReport, item: ObservationInput, order: int) -> Observation:
    code = (item.loinc_code or "").strip()
    label = item.name.strip() or code
    if not LOINC_PATTERN.match(code):
        raise ValidationError(
            _("%(code)s is not a LOINC code (such as 4548-4).") % {"code": code or "—"}
        )
    if not item.name.strip():
        raise ValidationError(_("Observation %(code)s has no name.") % {"code": code})
    quantity = _decimal(item.value_quantity, label)
    low = _decimal(item.reference_low, _("The lower limit of %(name)s") % {"name": label})
    high = _decimal(item.reference_high, _("The upper limit of %(name)s") % {"name": label})
    if low is not None and high is not None and low > high:
        raise ValidationError(
            _("The reference range of %(name)s ends below its start.") % {"name": label}
        )
    given = [
        quantity is not None,
        bool(item.value_text.strip()),
        bool(item.value_code.strip() or item.value_display.strip()),
    ]
    status = item.status or ObservationStatus.FINAL
    if status not in ObservationStatus.values:
        raise ValidationError(_("Unknown observation status: %(s)s") % {"s": status})
    if sum(given) > 1:
        raise ValidationError(_("%(name)s has more than one value.") % {"name": label})
    if sum(given) == 0 and status != ObservationStatus.CANCELLED:
        raise ValidationError(_("%(name)s has no value.") % {"name": label})
    value_type = ValueType.QUANTITY if given[0] else ValueType.TEXT if given[1] else ValueType.CODED
    interpretation = (item.interpretation or "").strip().upper()
    if interpretation and interpretation not in Interpretation.values:
        raise ValidationError(
            _("Unknown interpretation %(flag)s for %(name)s.")
            % {"flag": interpretation, "name": label}
        )
    if not interpretation:
        interpretation = derive_interpretation(quantity, low, high)
    return Observation(
        report=report,
        loinc_code=code,
        name=item.name.strip()[:200],
        value_type=value_type,
        value_quantity=quantity,
        value_text=item.value_text.strip(),
        value_code=item.value_code.strip()[:64],
        value_display=item.value_display.strip()[:300],
        unit=item.unit.strip()[:40],
        reference_low=low,
        reference_high=high,
        reference_text=item.reference_text.strip()[:200],
        interpretation=interpretation,
        status=status,
        note=item.note.strip(),
        sort_order=order,
    )


def _content_of(observations: Iterable[Observation]) -> list[tuple]:
    """What an observation says, for telling a repeated message from an amendment."""
    return [
        (
            o.loinc_code,
            o.name,
            o.value_type,
            None if o.value_quantity is None else Decimal(o.value_quantity).normalize(),
            o.value_text,
            o.value_code,
            o.value_display,
            o.unit,
            None if o.reference_low is None else Decimal(o.reference_low).normalize(),
            None if o.reference_high is None else Decimal(o.reference_high).normalize(),
            o.reference_text,
            o.interpretation,
            o.status,
            o.note,
        )
        for o in observations
    ]


# --- Lab results ---------------------------------------------------------------------------


def _release(report: LabReport, *, by: User | None, now: datetime) -> None:
    report.released_to_patient_at = now
    report.released_by = by


def _withdraw(report: LabReport) -> None:
    report.released_to_patient_at = None
    report.released_by = None


def _apply_release_rule(report: LabReport, *, changed: bool, now: datetime) -> bool:
    """Set the review state and release of a report that just arrived or changed.
    Returns True when the patient should be told their results are ready."""
    if report.status == ReportStatus.PRELIMINARY:
        # Nothing to review or show until the laboratory signs the report off.
        report.review_state = ReviewState.NOT_REQUIRED
        _withdraw(report)
        return False
    if report.status == ReportStatus.CANCELLED:
        # A cancelled test has nothing to review; a patient who saw it sees the status.
        report.review_state = ReviewState.NOT_REQUIRED
        return False
    if report.test_type.release_policy == ReleasePolicy.IMMEDIATE:
        if report.review_state == ReviewState.PENDING:
            report.review_state = ReviewState.NOT_REQUIRED
        if not report.released:
            _release(report, by=None, now=now)
            return True
        return changed  # amended values the patient can already see
    # After review: new or changed values wait for a doctor, hidden from the patient.
    if changed or report.review_state != ReviewState.REVIEWED:
        report.review_state = ReviewState.PENDING
        _withdraw(report)
    return False


def lab_report_receive(
    *,
    by: User | None,
    patient: PatientProfile,
    test_type: TestType,
    observations: Iterable[ObservationInput | Mapping[str, Any]],
    status: str = ReportStatus.FINAL,
    issued_at: datetime | None = None,
    collected_at: datetime | None = None,
    performer: str = "",
    conclusion: str = "",
    visit: Visit | None = None,
    ordered_by: User | None = None,
    source: str = "",
    external_id: str = "",
) -> LabReport:
    """A laboratory report arrives (from the MIS, a laboratory interface, seed data).

    With `external_id`, a report already received from the same `source` is updated in
    place: the same content again changes nothing; different content replaces the
    observations and goes through the release rule again (an amendment). The release
    rule of the test type decides whether the patient sees it now or after review.
    """
    if not policies.can_enter_lab_results(by, patient):
        raise PermissionDenied
    if status not in ReportStatus.values:
        raise ValidationError({"status": _("Unknown report status.")})
    if visit is not None and visit.patient_id != patient.pk:
        raise ValidationError({"visit": _("This visit belongs to another patient.")})
    if ordered_by is not None and ordered_by.role != Role.DOCTOR:
        raise ValidationError({"ordered_by": _("Tests are ordered by doctors.")})
    items = [ObservationInput.of(o) for o in observations]
    if not items and status in RELEASABLE_STATUSES:
        raise ValidationError(_("A final report needs at least one observation."))
    now = timezone.now()
    source, external_id = source.strip()[:40], external_id.strip()[:128]
    with transaction.atomic():
        report = None
        if external_id:
            report = (
                LabReport.objects.select_for_update()
                .select_related("test_type")
                .filter(source=source, external_id=external_id)
                .first()
            )
        created = report is None
        if report is None:
            report = LabReport(source=source, external_id=external_id)
        elif report.patient_id != patient.pk:
            raise ValidationError(_("This report identifier belongs to another patient."))
        previous = None if created else _content_of(report.observations.all())
        before = (
            None
            if created
            else (report.status, report.conclusion, report.performer, report.test_type_id)
        )
        report.patient = patient
        report.test_type = test_type
        report.status = status
        report.issued_at = issued_at or report.issued_at or now
        report.collected_at = collected_at
        report.performer = performer.strip()[:300]
        report.conclusion = conclusion.strip()
        report.visit = visit if visit is not None else report.visit
        report.ordered_by = ordered_by if ordered_by is not None else report.ordered_by
        new_rows = [_observation(report, item, n) for n, item in enumerate(items)]
        after = (report.status, report.conclusion, report.performer, report.test_type_id)
        changed = created or previous != _content_of(new_rows) or before != after
        if not changed:
            return report
        was_released = report.released
        notify = _apply_release_rule(report, changed=not created, now=now)
        report.save()
        if not created:
            report.observations.all().delete()
        for row in new_rows:
            row.report = report
        Observation.objects.bulk_create(new_rows)
        if notify:
            hooks.results_released.fire_on_commit(
                report_id=report.pk, patient_user_id=patient.user_id
            )
        audit_record(
            actor=by,
            action=AuditAction.CREATE if created else AuditAction.CHANGE,
            obj=report,
            patient=patient.user,
            detail={
                "what": "lab_report",
                "status": report.status,
                "observations": len(new_rows),
                "released": report.released,
                "was_released": was_released,
                "review": report.review_state,
                "source": source,
            },
        )
    return report


def _locked(report: LabReport) -> LabReport:
    return (
        LabReport.objects.select_for_update(of=("self",))
        .select_related("test_type", "patient__user")
        .get(pk=report.pk)
    )


def lab_report_review(*, by: User, report: LabReport, comment: str, release: bool) -> LabReport:
    """A doctor's review: a comment for the patient, and (if `release`) the report is
    released to them now. Reviewing again replaces the comment."""
    if not policies.can_review_lab_report(by, report):
        raise PermissionDenied
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError({"comment": _("Write a comment for the patient.")})
    if len(comment) > COMMENT_MAX_LENGTH:
        raise ValidationError({"comment": _("The comment is too long (at most 5000 characters).")})
    now = timezone.now()
    with transaction.atomic():
        report = _locked(report)
        if report.status not in RELEASABLE_STATUSES:
            raise ValidationError(
                _("Only final or amended reports can be reviewed; this one is %(status)s.")
                % {"status": report.get_status_display().lower()}
            )
        report.review_comment = comment
        report.reviewed_by = by
        report.reviewed_at = now
        report.review_state = ReviewState.REVIEWED
        released_now = release and not report.released
        if released_now:
            _release(report, by=by, now=now)
        report.save()
        if released_now:
            hooks.results_released.fire_on_commit(
                report_id=report.pk, patient_user_id=report.patient.user_id
            )
        audit_record(
            actor=by,
            action=AuditAction.REVIEW,
            obj=report,
            patient=report.patient.user,
            detail={"what": "lab_report", "released": released_now},
        )
    return report


def lab_report_release(*, by: User | None, report: LabReport) -> LabReport:
    """Release a report to its patient: one that needs no review, or one a doctor has
    reviewed. Releasing an already released report changes nothing."""
    if not policies.can_release_lab_report(by, report):
        raise PermissionDenied
    with transaction.atomic():
        report = _locked(report)
        if report.status not in RELEASABLE_STATUSES:
            raise ValidationError(_("Only final or amended reports can be released."))
        if report.review_state == ReviewState.PENDING:
            raise ValidationError(
                _("This result is released after a doctor's review: write a comment first.")
            )
        if report.released:
            return report
        _release(report, by=by, now=timezone.now())
        report.save(update_fields=["released_to_patient_at", "released_by", "updated_at"])
        hooks.results_released.fire_on_commit(
            report_id=report.pk, patient_user_id=report.patient.user_id
        )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=report,
            patient=report.patient.user,
            detail={"what": "lab_report", "released": True},
        )
    return report


# --- Visits ----------------------------------------------------------------------------------


def _diagnosis_rows(visit: Visit, diagnoses: Iterable[DiagnosisInput | Mapping[str, Any]]):
    rows = []
    for n, item in enumerate(diagnoses):
        if not isinstance(item, DiagnosisInput):
            item = DiagnosisInput(**dict(item))
        code = item.code.strip().upper()
        if not ICD10_PATTERN.match(code):
            raise ValidationError(
                {"diagnoses": _("%(code)s is not an ICD-10 code (such as E11.9).") % {"code": code}}
            )
        if not item.text.strip():
            raise ValidationError({"diagnoses": _("Each diagnosis needs its text.")})
        if item.kind not in DiagnosisKind.values:
            raise ValidationError({"diagnoses": _("Unknown kind of diagnosis.")})
        rows.append(
            VisitDiagnosis(
                visit=visit, code=code, text=item.text.strip()[:300], kind=item.kind, sort_order=n
            )
        )
    return rows


def visit_create(
    *,
    by: User | None,
    patient: PatientProfile,
    doctor: User | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    appointment: Any = None,
    location: Any = None,
    summary: str = "",
    diagnoses: Iterable[DiagnosisInput | Mapping[str, Any]] = (),
) -> Visit:
    """Record a visit: by its doctor, or by the system (MIS import) naming the doctor."""
    if not policies.can_record_visit(by, patient):
        raise PermissionDenied
    doctor = doctor or by
    if doctor is None or doctor.role != Role.DOCTOR:
        raise ValidationError({"doctor": _("A visit is with a doctor.")})
    if by is not None and doctor.pk != by.pk:
        raise PermissionDenied
    if appointment is not None and appointment.patient_id != patient.pk:
        raise ValidationError({"appointment": _("This appointment belongs to another patient.")})
    if appointment is not None and appointment.doctor_id != doctor.pk:
        raise ValidationError({"appointment": _("This appointment is with another doctor.")})
    started_at = started_at or (appointment.starts_at if appointment is not None else None)
    started_at = started_at or timezone.now()
    if ended_at is not None and ended_at < started_at:
        raise ValidationError({"ended_at": _("A visit cannot end before it starts.")})
    if location is None and appointment is not None:
        location = appointment.location
    with transaction.atomic():
        visit = Visit.objects.create(
            patient=patient,
            doctor=doctor,
            appointment=appointment,
            location=location,
            started_at=started_at,
            ended_at=ended_at,
            summary=summary.strip(),
        )
        VisitDiagnosis.objects.bulk_create(_diagnosis_rows(visit, diagnoses))
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=visit,
            patient=patient.user,
            detail={"what": "visit"},
        )
    return visit


def visit_update(
    *,
    by: User,
    visit: Visit,
    summary: str | None = None,
    ended_at: datetime | None = None,
    diagnoses: Iterable[DiagnosisInput | Mapping[str, Any]] | None = None,
) -> Visit:
    """The visit's doctor edits the summary, end time or diagnoses (also after release:
    the patient then sees the corrected version; the change is recorded)."""
    if not policies.can_edit_visit(by, visit):
        raise PermissionDenied
    with transaction.atomic():
        visit = Visit.objects.select_for_update().select_related("patient__user").get(pk=visit.pk)
        changed = []
        if summary is not None:
            visit.summary = summary.strip()
            changed.append("summary")
        if ended_at is not None:
            if ended_at < visit.started_at:
                raise ValidationError({"ended_at": _("A visit cannot end before it starts.")})
            visit.ended_at = ended_at
            changed.append("ended_at")
        if diagnoses is not None:
            rows = _diagnosis_rows(visit, diagnoses)
            visit.diagnoses.all().delete()
            VisitDiagnosis.objects.bulk_create(rows)
            changed.append("diagnoses")
        visit.save()
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=visit,
            patient=visit.patient.user,
            detail={"what": "visit", "fields": changed, "released": visit.released},
        )
    return visit


def visit_release(*, by: User, visit: Visit) -> Visit:
    """The doctor signs the visit and releases it: the patient sees its summary,
    diagnoses and patient-visible notes (never internal ones)."""
    if not policies.can_release_visit(by, visit):
        raise PermissionDenied
    with transaction.atomic():
        visit = Visit.objects.select_for_update().select_related("patient__user").get(pk=visit.pk)
        if visit.released:
            return visit
        visit.released_at = timezone.now()
        visit.released_by = by
        visit.save(update_fields=["released_at", "released_by", "updated_at"])
        hooks.visit_released.fire_on_commit(
            visit_id=visit.pk, patient_user_id=visit.patient.user_id
        )
        audit_record(
            actor=by,
            action=AuditAction.CHANGE,
            obj=visit,
            patient=visit.patient.user,
            detail={"what": "visit", "released": True},
        )
    return visit


def _break_glass_reason(user: User, profile: PatientProfile) -> str:
    """The reason of the doctor's open break-glass access, when that is their only way in."""
    if policies.has_care_relationship(user, profile):
        return ""
    access = (
        BreakGlassAccess.objects.filter(
            doctor_id=user.pk, patient=profile, expires_at__gt=timezone.now()
        )
        .order_by("-opened_at")
        .first()
    )
    return access.reason if access is not None else ""


def visit_note_add(*, by: User, visit: Visit, text: str, internal: bool) -> VisitNote:
    """A note on a visit: internal (clinic only) or for the patient (shown once the visit
    is released)."""
    if not policies.can_write_visit_note(by, visit.patient):
        raise PermissionDenied
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": _("Write the note.")})
    if len(text) > NOTE_MAX_LENGTH:
        raise ValidationError({"text": _("The note is too long (at most 10000 characters).")})
    reason = _break_glass_reason(by, visit.patient)
    with transaction.atomic():
        note = VisitNote.objects.create(visit=visit, author=by, text=text, internal=internal)
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=note,
            patient=visit.patient.user,
            detail={"what": "visit_note", "visit": visit.pk, "internal": internal},
            break_glass=bool(reason),
            reason=reason,
        )
    return note
