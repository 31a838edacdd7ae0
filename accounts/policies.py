"""Who may do what: the only place that decides access (DESIGN.md "Inside an app").

Pure functions of the acting user and the object; they read grants but never write.

- A patient sees only their own data, and only what is released to them; internal
  notes never.
- A doctor sees a patient who has or had an appointment with them (a per-patient
  django-guardian permission, granted by `care_access_grant` when appointments are made)
  or who belongs to their department; any other patient only through break-glass.
- A nurse sees the patients of their department.
- Reception sees demographics and scheduling, never results or notes.
- An administrator manages accounts and reviews the audit trail; no clinical data.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import (
    STAFF_ROLES,
    BreakGlassAccess,
    ConsentKind,
    PatientProfile,
    Role,
    User,
)

RECORD_PERMISSION = "accounts.view_patient_record"
RECORD_PERMISSION_CODENAME = "view_patient_record"


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_staff_member(user: Any) -> bool:
    return _active(user) and user.role in STAFF_ROLES


def staff_requires_mfa(user: Any) -> bool:
    """Every staff account must have TOTP before any staff page or the admin opens."""
    return is_staff_member(user) or (_active(user) and (user.is_staff or user.is_superuser))


def _is_own(user: Any, profile: PatientProfile) -> bool:
    return _active(user) and user.role == Role.PATIENT and profile.user_id == user.pk


def _department_id(user: Any) -> int | None:
    profile = getattr(user, "staff_profile", None)
    return profile.department_id if profile is not None else None


def has_care_relationship(user: Any, profile: PatientProfile) -> bool:
    """A clinician's standing reason to see this patient (not break-glass)."""
    if not _active(user) or user.role not in {Role.DOCTOR, Role.NURSE}:
        return False
    department = _department_id(user)
    if department is not None and profile.department_id == department:
        return True
    return user.role == Role.DOCTOR and user.has_perm(RECORD_PERMISSION, profile)


def has_active_break_glass(user: Any, profile: PatientProfile) -> bool:
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and BreakGlassAccess.objects.filter(
            doctor=user, patient=profile, expires_at__gt=timezone.now()
        ).exists()
    )


# --- Patient record (medical) --------------------------------------------------------


def can_view_patient_record(user: Any, profile: PatientProfile) -> bool:
    """Medical data: history, results, documents, notes visible to the viewer's role."""
    if _is_own(user, profile):
        return True
    return has_care_relationship(user, profile) or has_active_break_glass(user, profile)


def can_break_glass(user: Any, profile: PatientProfile) -> bool:
    """Only doctors, for a patient they have no other access to, never their own record."""
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and profile.user_id != user.pk
        and not has_care_relationship(user, profile)
    )


def can_open_record_as_staff(user: Any, profile: PatientProfile) -> bool:
    return _active(user) and user.role != Role.PATIENT and can_view_patient_record(user, profile)


def can_ask_break_glass(user: Any, profile: PatientProfile) -> bool:
    """The emergency form: for doctors; one already in charge is sent to the record."""
    return can_break_glass(user, profile) or (
        _active(user) and user.role == Role.DOCTOR and can_view_patient_record(user, profile)
    )


def can_view_clinical_item(
    user: Any, profile: PatientProfile, *, released_to_patient: bool, internal: bool
) -> bool:
    """One result, note or document of a patient's record.

    Patients see their own released, non-internal items; clinicians with access to the
    record see everything in it; reception and administrators see none of it.
    """
    if _is_own(user, profile):
        return released_to_patient and not internal
    return can_view_patient_record(user, profile) and user.role in {Role.DOCTOR, Role.NURSE}


# --- Demographics and identity ----------------------------------------------------------


def can_view_patient_demographics(user: Any, profile: PatientProfile) -> bool:
    if _is_own(user, profile):
        return True
    if not _active(user):
        return False
    if user.role in {Role.RECEPTION, Role.ADMIN}:
        return True
    return can_view_patient_record(user, profile)


def can_edit_own_profile(user: Any, profile: PatientProfile) -> bool:
    return _is_own(user, profile)


def can_edit_patient_profile(user: Any, profile: PatientProfile) -> bool:
    if user is None:
        return True  # the system: details the clinic's MIS sends (HL7 ADT, FHIR Patient)
    return _is_own(user, profile) or (_active(user) and user.role in {Role.RECEPTION, Role.ADMIN})


def can_search_patients(user: Any) -> bool:
    """Exact lookup by document or email. Doctors may look up a patient to open the
    record in an emergency; what they see of the result depends on their access."""
    return _active(user) and user.role in {Role.RECEPTION, Role.ADMIN, Role.DOCTOR}


def can_list_identity_checks(user: Any) -> bool:
    return _active(user) and user.role in {Role.RECEPTION, Role.ADMIN}


def can_verify_identity(user: Any, profile: PatientProfile) -> bool:
    """Reception or an administrator, never on their own record."""
    return (
        _active(user) and user.role in {Role.RECEPTION, Role.ADMIN} and profile.user_id != user.pk
    )


def can_assign_department(user: Any, profile: PatientProfile) -> bool:
    return _active(user) and user.role in {Role.RECEPTION, Role.ADMIN}


def can_manage_care_access(user: Any | None) -> bool:
    """Care grants follow appointments: scheduling services (by=None for the system)
    and administrators manage them."""
    return user is None or (_active(user) and user.role == Role.ADMIN)


def can_view_own_identity_scan(user: Any, profile: PatientProfile) -> bool:
    return _is_own(user, profile) or can_verify_identity(user, profile)


# --- Accounts and audit ------------------------------------------------------------------


def can_change_role(user: Any, target: User) -> bool:
    return _active(user) and user.role == Role.ADMIN and target.pk != user.pk


def can_manage_consents(user: Any, profile: PatientProfile) -> bool:
    """Consent is the patient's own act; nobody gives or withdraws it for them here."""
    return _is_own(user, profile)


def can_view_access_log(user: Any, profile: PatientProfile) -> bool:
    return _is_own(user, profile)


def can_review_break_glass(user: Any) -> bool:
    return _active(user) and (user.role == Role.ADMIN or user.is_superuser)


# --- Calendars and the live queue (scheduling asks these) -------------------------------

CLINIC_DESK_ROLES = frozenset({Role.RECEPTION, Role.ADMIN})


def can_view_calendar(user: Any, doctor: User) -> bool:
    """A doctor their own; a nurse their department's doctors; reception and admins all."""
    if not _active(user) or doctor.role != Role.DOCTOR:
        return False
    if user.role == Role.DOCTOR:
        return user.pk == doctor.pk
    if user.role == Role.NURSE:
        department = _department_id(user)
        return department is not None and department == _department_id(doctor)
    return user.role in CLINIC_DESK_ROLES


def can_manage_calendar(user: Any, doctor: User) -> bool:
    """A doctor manages their own calendar; reception and administrators anyone's."""
    if not _active(user) or doctor.role != Role.DOCTOR:
        return False
    if user.role == Role.DOCTOR:
        return user.pk == doctor.pk
    return user.role in CLINIC_DESK_ROLES


def can_act_for_patients(user: Any) -> bool:
    """Book, move and cancel for a patient; capacity overrides; review moderation."""
    return _active(user) and user.role in CLINIC_DESK_ROLES


def can_use_staff_schedule(user: Any) -> bool:
    return _active(user) and user.role in {Role.DOCTOR, Role.NURSE, *CLINIC_DESK_ROLES}


def can_run_queue(user: Any, *, location: Any = None) -> bool:
    """Reception and administrators run every location's queue (issue, check in, call)."""
    return _active(user) and user.role in CLINIC_DESK_ROLES


def can_act_on_ticket(user: Any, ticket: Any) -> bool:
    """Call, start, finish or mark a no-show: queue runners, or the ticket's doctor."""
    if can_run_queue(user, location=ticket.location):
        return True
    return _active(user) and user.role == Role.DOCTOR and ticket.doctor_id == user.pk


# --- Records: visits and lab results (records asks these) -------------------------------
# Reading one result or note is `can_view_clinical_item`; these decide who writes.


def can_enter_lab_results(user: Any | None, profile: PatientProfile) -> bool:
    """Results arrive from the laboratory through the MIS (the system: user None) or are
    entered by a clinician in charge of the patient."""
    if user is None:
        return True
    return has_care_relationship(user, profile)


def can_review_lab_report(user: Any, report: Any) -> bool:
    """Comment on a result and release it: a doctor with a care relationship to the
    patient (not through break-glass, which is for reading in an emergency)."""
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and report.patient.user_id != user.pk
        and has_care_relationship(user, report.patient)
    )


def can_release_lab_report(user: Any | None, report: Any) -> bool:
    """The system releases results whose test needs no review; otherwise a reviewer."""
    return user is None or can_review_lab_report(user, report)


def can_use_review_queue(user: Any) -> bool:
    return _active(user) and user.role == Role.DOCTOR


def can_record_visit(user: Any | None, profile: PatientProfile) -> bool:
    """Open or edit a visit: a doctor in charge of the patient (the system for imports)."""
    if user is None:
        return True
    return _active(user) and user.role == Role.DOCTOR and has_care_relationship(user, profile)


def can_edit_visit(user: Any, visit: Any) -> bool:
    """Change a visit's summary and diagnoses: its own doctor, still in charge of the
    patient (also after release: the patient then sees the corrected version)."""
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and visit.doctor_id == user.pk
        and has_care_relationship(user, visit.patient)
    )


def can_release_visit(user: Any, visit: Any) -> bool:
    """Sign a visit and release it to the patient: its own doctor, still in charge."""
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and visit.doctor_id == user.pk
        and has_care_relationship(user, visit.patient)
    )


def can_write_visit_note(user: Any, profile: PatientProfile) -> bool:
    """Doctors and nurses who may open the record (a doctor under break-glass too: the
    note is recorded and flagged like the access)."""
    return (
        _active(user)
        and user.role in {Role.DOCTOR, Role.NURSE}
        and profile.user_id != user.pk
        and can_view_patient_record(user, profile)
    )


# --- Records: prescriptions, renewals, intake forms, vaccinations, care plans -----------
# Reading them is `can_view_care_item` (a patient their own, everything of it; clinicians
# who may open the record); these decide who acts.


def can_view_care_item(user: Any, profile: PatientProfile) -> bool:
    """A prescription, renewal request, vaccination or care plan: the patient their own;
    doctors and nurses who may open the record (nurses: their department's patients);
    never reception or administrators."""
    return can_view_clinical_item(user, profile, released_to_patient=True, internal=False)


def can_request_renewal(user: Any, prescription: Any) -> bool:
    """Only the patient asks to renew their own prescription."""
    return _is_own(user, prescription.patient)


def can_use_renewal_queue(user: Any) -> bool:
    return _active(user) and user.role == Role.DOCTOR


def can_review_renewal(user: Any, renewal: Any) -> bool:
    """Review, approve, reject and dispatch a renewal: a doctor in charge of the patient
    (a care relationship, not break-glass), never for themselves."""
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and renewal.patient.user_id != user.pk
        and has_care_relationship(user, renewal.patient)
    )


def can_prescribe(user: Any | None, profile: PatientProfile) -> bool:
    """Write a prescription: a doctor in charge of the patient (the system for imports)."""
    if user is None:
        return True
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and profile.user_id != user.pk
        and has_care_relationship(user, profile)
    )


def can_fill_intake_form(user: Any, appointment: Any) -> bool:
    """The intake form of an appointment is filled by that appointment's patient."""
    return _is_own(user, appointment.patient)


def can_view_intake_form(user: Any, appointment: Any) -> bool:
    """The patient their own; the appointment's doctor; doctors and nurses who may open
    the patient's record. (Staff see the answers once the patient submits them.)"""
    if _is_own(user, appointment.patient):
        return True
    if not _active(user) or user.role not in {Role.DOCTOR, Role.NURSE}:
        return False
    if user.role == Role.DOCTOR and appointment.doctor_id == user.pk:
        return True
    return can_view_care_item(user, appointment.patient)


def can_record_vaccination(user: Any | None, profile: PatientProfile) -> bool:
    """Doctors and nurses in charge of the patient (the system for imports)."""
    if user is None:
        return True
    return (
        _active(user)
        and user.role in {Role.DOCTOR, Role.NURSE}
        and profile.user_id != user.pk
        and has_care_relationship(user, profile)
    )


def can_manage_care_plan(user: Any, profile: PatientProfile) -> bool:
    """Create or change a care plan: a doctor in charge of the patient."""
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and profile.user_id != user.pk
        and has_care_relationship(user, profile)
    )


# --- Records: documents, uploads and PDFs (records asks these) --------------------------


def can_view_document(user: Any, document: Any) -> bool:
    """A document of a record: the patient sees what was released to them and what they
    uploaded themselves; clinicians who may open the record see every document."""
    if _is_own(user, document.patient) and document.uploaded_by_id == user.pk:
        return True
    return can_view_clinical_item(
        user, document.patient, released_to_patient=document.visible_to_patient, internal=False
    )


def can_upload_document(user: Any, profile: PatientProfile) -> bool:
    """The patient to their own record; a doctor or nurse who may open it (to a visit),
    never to their own record."""
    if _is_own(user, profile):
        return True
    return (
        _active(user)
        and user.role in {Role.DOCTOR, Role.NURSE}
        and profile.user_id != user.pk
        and can_view_patient_record(user, profile)
    )


def can_use_upload_review_queue(user: Any) -> bool:
    return _active(user) and user.role in {Role.DOCTOR, Role.NURSE}


def can_review_document_upload(user: Any, document: Any) -> bool:
    """Accept or reject a patient's upload: a doctor or nurse in charge of the patient
    (a care relationship, not break-glass), never their own."""
    return (
        _active(user)
        and user.role in {Role.DOCTOR, Role.NURSE}
        and document.patient.user_id != user.pk
        and has_care_relationship(user, document.patient)
    )


def can_issue_document(user: Any | None, profile: PatientProfile) -> bool:
    """Write a referral, discharge summary, prescription or certificate: a doctor in
    charge of the patient (the system for imports and demo data)."""
    if user is None:
        return True
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and profile.user_id != user.pk
        and has_care_relationship(user, profile)
    )


def can_release_document(user: Any | None, document: Any) -> bool:
    """Show a document to its patient: a doctor in charge of the patient (the system
    for imports and demo data)."""
    return can_issue_document(user, document.patient)


def can_request_pdf(user: Any, profile: PatientProfile, *, released_to_patient: bool) -> bool:
    """A PDF of a lab report or a visit: the patient of what was released to them;
    clinicians who may open the record (a flagged access under break-glass)."""
    if _is_own(user, profile):
        return released_to_patient
    return can_view_clinical_item(
        user, profile, released_to_patient=released_to_patient, internal=False
    )


def can_revoke_document_verification(user: Any, document: Any) -> bool:
    """Withdraw a printed PDF's validity: a doctor in charge of the patient, or an
    administrator (who sees the code and its document's id, never its content)."""
    if _active(user) and (user.role == Role.ADMIN or user.is_superuser):
        return True
    return can_issue_document(user, document.patient) and user is not None


# --- Records: the patient's data rights (records asks these) -----------------------------
# Accounts has no guardians or representatives acting for a patient, so these rights are
# exercised online by the patient alone (a representative applies at the clinic). Staff
# neither export a patient's data nor delete an account here.


def can_export_patient_data(user: Any, profile: PatientProfile) -> bool:
    """Download everything held about the patient (FHIR JSON or PDF): the patient."""
    return _is_own(user, profile)


def can_request_data_deletion(user: Any, profile: PatientProfile) -> bool:
    """Ask for the account to be deleted (anonymised; the medical record is kept)."""
    return _is_own(user, profile)


def can_view_data_request(user: Any, data_request: Any) -> bool:
    """A request's page, state and prepared file: the patient who made it."""
    return _is_own(user, data_request.patient)


# --- Payments (payments asks these) ---------------------------------------------------------
# Money is not medical data, but what was paid for hints at it: a patient sees their own
# payments; reception handles invoices and insurance at the desk; refunds by hand are for
# administrators; a doctor sees their own earnings in total, never who paid.


def can_pay(user: Any, profile: PatientProfile) -> bool:
    """Pay for one's own appointment or invoice."""
    return _is_own(user, profile)


def can_view_payments_of(user: Any, profile: PatientProfile) -> bool:
    """A patient's payments, refunds and receipts: the patient, reception, admins."""
    if _is_own(user, profile):
        return True
    return _active(user) and user.role in (Role.RECEPTION, Role.ADMIN)


def can_issue_invoice(user: Any, profile: PatientProfile) -> bool:
    return _active(user) and user.role in (Role.RECEPTION, Role.ADMIN)


def can_capture_insurance(user: Any, appointment: Any) -> bool:
    """The patient for their own booking, or reception at the desk."""
    if _is_own(user, appointment.patient):
        return True
    return _active(user) and user.role in (Role.RECEPTION, Role.ADMIN)


def can_check_insurance(user: Any) -> bool:
    return _active(user) and user.role in (Role.RECEPTION, Role.ADMIN)


def can_refund_payment(user: Any, payment: Any) -> bool:
    """A refund by hand (outside the cancellation policy): administrators only."""
    return _active(user) and (user.role == Role.ADMIN or user.is_superuser)


def can_view_revenue_report(user: Any) -> bool:
    return _active(user) and (user.role == Role.ADMIN or user.is_superuser)


def can_view_own_earnings(user: Any) -> bool:
    return _active(user) and user.role == Role.DOCTOR


# --- Telemedicine: secure messaging (telemedicine asks these) ----------------------------
# A thread is routed to reception or to the patient's doctors and nurses ("care"), and
# may name a doctor (the appointment's, the prescriber): see telemedicine.models.messaging.
# Every message is seen by the patient; break-glass opens records, not threads.

MESSAGE_TEAM_ROLES = frozenset({Role.DOCTOR, Role.NURSE, Role.RECEPTION})


def can_start_thread(user: Any, profile: PatientProfile) -> bool:
    """A patient writes to the clinic about their own care."""
    return _is_own(user, profile)


def can_use_message_queue(user: Any) -> bool:
    return _active(user) and user.role in MESSAGE_TEAM_ROLES


def can_view_thread(user: Any, thread: Any) -> bool:
    """The patient their own; reception the threads routed to reception; the doctor a
    thread names; doctors and nurses in charge of the patient the threads routed to the
    care team. Nobody reads a thread about themselves as staff; admins read none."""
    if _is_own(user, thread.patient):
        return True
    if not can_use_message_queue(user) or thread.patient.user_id == user.pk:
        return False
    if user.role == Role.DOCTOR and thread.doctor_id == user.pk:
        return True
    if thread.team == "reception":
        return user.role == Role.RECEPTION
    return thread.team == "care" and has_care_relationship(user, thread.patient)


def can_write_in_thread(user: Any, thread: Any) -> bool:
    """Whoever may read a thread may answer in it (whether it is open is the service's)."""
    return can_view_thread(user, thread)


def can_manage_thread(user: Any, thread: Any) -> bool:
    """Take a thread, change its state, send it to the other team: staff who see it."""
    return can_view_thread(user, thread) and not _is_own(user, thread.patient)


def can_close_thread(user: Any, thread: Any) -> bool:
    """The patient closes and reopens their own threads; staff who see it too."""
    return can_view_thread(user, thread)


# --- Telemedicine: video consultations (telemedicine asks these) ------------------------
# A video consultation is an appointment whose consultation type's mode is "video". Its
# room is for the appointment's patient and doctor only, and only once the patient has
# given telemedicine consent and had their identity verified (order 965n). Joining (a
# room token) is further limited to a window around the appointment's time.

VIDEO_JOIN_EARLY = timedelta(minutes=15)
VIDEO_JOIN_LATE = timedelta(minutes=30)
# Appointment statuses whose consultation can still take place (joined).
VIDEO_JOINABLE_STATUSES = frozenset({"booked", "confirmed", "arrived", "in_progress"})
# …and those whose consultation page may still be opened (a finished one shows "ended").
VIDEO_VISIBLE_STATUSES = VIDEO_JOINABLE_STATUSES | {"completed"}


def is_video_appointment(appointment: Any) -> bool:
    return getattr(appointment.consultation_type, "mode", "") == "video"


def video_join_window(appointment: Any) -> tuple[Any, Any]:
    """From 15 minutes before the start until 30 minutes after the planned end."""
    return appointment.starts_at - VIDEO_JOIN_EARLY, appointment.ends_at + VIDEO_JOIN_LATE


def video_patient_ready(profile: PatientProfile) -> bool:
    """The patient's side of order 965n: telemedicine consent in force, identity verified."""
    from accounts.selectors import consent_given

    return consent_given(profile, ConsentKind.TELEMEDICINE) and profile.identity_verified


def _video_party(user: Any, appointment: Any) -> str:
    if not _active(user):
        return ""
    if user.role == Role.PATIENT and appointment.patient.user_id == user.pk:
        return "patient"
    if user.role == Role.DOCTOR and appointment.doctor_id == user.pk:
        return "doctor"
    return ""


def can_view_consultation(user: Any, appointment: Any) -> bool:
    """The waiting room and the video page: the appointment's patient or doctor, a video
    appointment that is booked (or done), the patient consented and verified. Nobody
    else — not reception, nurses, other doctors or administrators."""
    return (
        bool(_video_party(user, appointment))
        and is_video_appointment(appointment)
        and appointment.status in VIDEO_VISIBLE_STATUSES
        and video_patient_ready(appointment.patient)
    )


def can_join_consultation(user: Any, appointment: Any, *, now: Any = None) -> bool:
    """A room token: as `can_view_consultation`, for an appointment still to take place,
    inside its window (15 minutes before the start to 30 minutes after the end)."""
    if not can_view_consultation(user, appointment):
        return False
    if appointment.status not in VIDEO_JOINABLE_STATUSES:
        return False
    opens, closes = video_join_window(appointment)
    now = now or timezone.now()
    return opens <= now <= closes


def can_end_consultation(user: Any, appointment: Any) -> bool:
    """Only the appointment's doctor ends the consultation for both."""
    return _video_party(user, appointment) == "doctor" and can_view_consultation(user, appointment)


def can_consent_to_recording(user: Any, appointment: Any) -> bool:
    """Each party gives (or withdraws) their own consent to recording."""
    return can_view_consultation(user, appointment)


def can_view_video_waiting_list(user: Any) -> bool:
    """Doctors see who is waiting for their own video consultations."""
    return _active(user) and user.role == Role.DOCTOR


# --- Telemedicine: the doctor's consultation screen (telemedicine asks this) -------------
# Beside the video call, or on its own after it: the patient's context (read through
# records' selectors) and writing notes, prescriptions, referrals and the summary
# (through records' services, whose own policies still decide each write: prescribing
# and releasing need a care relationship; under break-glass the doctor reads only).


def can_use_consultation_screen(user: Any, appointment: Any) -> bool:
    """The video appointment's own doctor (booked, under way or done), who may open the
    patient's record: in charge of the patient, or through break-glass. Nobody else."""
    return (
        _active(user)
        and user.role == Role.DOCTOR
        and appointment.doctor_id == user.pk
        and appointment.patient.user_id != user.pk
        and is_video_appointment(appointment)
        and appointment.status in VIDEO_VISIBLE_STATUSES
        and can_view_patient_record(user, appointment.patient)
    )


# --- Payments: fiscal receipts (payments.services_fiscal asks this) -----------------------


def can_retry_fiscal_receipt(user: Any, receipt: Any) -> bool:
    """Send a receipt to the fiscal data operator again now (admin's "retry now")."""
    return _active(user) and (user.role == Role.ADMIN or user.is_superuser)


# --- MIS integration (mis asks these) ---------------------------------------------------


def can_link_mis_patient(user: Any) -> bool:
    """Decide which portal patient an unmatched MIS patient is (the review queue)."""
    return _active(user) and (user.role == Role.ADMIN or user.is_superuser)


def can_operate_mis_sync(user: Any) -> bool:
    """Retry a pull or a quarantined resource now (the MIS sync status in the admin)."""
    return _active(user) and (user.role == Role.ADMIN or user.is_superuser)


# --- MIS: HL7 v2 inbound (mis asks these) -----------------------------------------------
# The message log holds medical data (the raw messages): administrators open it in the
# admin, every view audited; they may send a rejected message through processing again.


def can_reprocess_hl7_message(user: Any) -> bool:
    """Process a rejected HL7 v2 message again (after its patient or doctor was linked)."""
    return _active(user) and (user.role == Role.ADMIN or user.is_superuser)
