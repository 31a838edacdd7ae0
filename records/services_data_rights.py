"""Every write of the patient's data rights: exports of everything held about them and
the deletion of their account (issue 6, item 9).

Each service takes the acting user first (`by=`; None for the system: the render
worker), checks `accounts.policies`, works in one transaction and records its audit
events last.

- `data_export_json`: the FHIR R4 Bundle (records.export), handed over at once; the
  request is kept in the patient's history and recorded as an EXPORT.
- `data_export_pdf_request` / `data_export_pdf_run` / `data_export_sweep`: the readable
  PDF, made by a worker like the clinic's other PDFs (DESIGN.md rule 1: the
  `DataRequest` row is the job, the message a nudge, the sweep re-sends lost ones). The
  file is encrypted at rest, downloadable for `EXPORT_FILE_DAYS`, and each download is
  recorded as an EXPORT (records.selectors_data_rights).
- `data_deletion_request`: after the password and an explicit confirmation, the account
  and its contact data are anonymised, sign-in methods and sessions end, upcoming
  appointments are cancelled through scheduling's service (reminders revoked, slots
  freed), and the medical record is kept for the legal retention
  (`MEDICAL_RECORD_RETENTION_YEARS`), which the outcome tells the patient.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts import policies
from accounts.models import PatientProfile, User
from audit.models import AuditAction
from audit.services import audit_record
from records import export, export_pdf
from records.models import (
    EXPORT_FILE_DAYS,
    MEDICAL_RECORD_RETENTION_YEARS,
    DataRequest,
    DataRequestKind,
    DataRequestStatus,
)
from records.selectors_data_rights import deletion_blockers, upcoming_appointments

logger = logging.getLogger(__name__)

# PDF export jobs: as records.services_documents' render jobs.
REQUEUE_AFTER = timedelta(minutes=1)
RENDER_LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 3
# Re-authentication on the deletion page: this many wrong passwords per account in the
# window, then the page refuses for the rest of it (a stolen session must not become a
# way to guess the password).
REAUTH_LIMIT = 5
REAUTH_WINDOW_SECONDS = 15 * 60
# The address an anonymised account keeps: unique (the blind index stays unique) and
# undeliverable (RFC 2606 reserves .invalid).
ANONYMOUS_EMAIL_DOMAIN = "deleted.invalid"

RETENTION_REASON = gettext_lazy(
    "Your medical record is kept: visits and diagnoses, results, documents, "
    "prescriptions, vaccinations, care plans and the forms you filled in, with what "
    "identifies it (your name, date of birth, sex, SNILS, passport and insurance policy "
    "numbers). Russian law requires the clinic to keep medical documentation for "
    "%(years)d years (Federal Law 323-FZ “On the fundamentals of health protection”, "
    "art. 22, and the Ministry of Health's rules on medical records), and data protection "
    "law allows data to be kept when another law requires it (Federal Law 152-FZ; GDPR "
    "art. 17(3)(b) and (c)). The record of who opened your data is kept too. Your doctors "
    "can still read your record if you need care."
)


def retention_reason() -> str:
    return str(RETENTION_REASON) % {"years": MEDICAL_RECORD_RETENTION_YEARS}


# --- Helpers ---------------------------------------------------------------------------------


def _language(profile: PatientProfile) -> str:
    language = getattr(profile.user, "language", "") or settings.LANGUAGE_CODE
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def _denied(by: Any, profile: PatientProfile, what: str) -> PermissionDenied:
    audit_record(
        actor=by,
        action=AuditAction.DENIED,
        obj=profile,
        patient=profile.user,
        detail={"what": what},
    )
    return PermissionDenied()


def _send(task: Any, request_id: int) -> None:
    try:
        task.delay(request_id)
    except Exception:  # noqa: BLE001 - broker down: the sweep or the page sends it again
        logger.warning("Data export %s not queued; the sweep will retry", request_id)


def _enqueue(request_id: int) -> None:
    from records import tasks_data_rights

    transaction.on_commit(lambda: _send(tasks_data_rights.render_data_export, request_id))


# --- Exports -----------------------------------------------------------------------------------


def data_export_json(*, by: User, profile: PatientProfile) -> tuple[DataRequest, dict[str, Any]]:
    """Everything held about the patient as a FHIR R4 Bundle, for download now. The
    request stays in the patient's history; the hand-over is recorded as an EXPORT."""
    if not policies.can_export_patient_data(by, profile):
        raise _denied(by, profile, "data_export")
    now = timezone.now()
    with transaction.atomic():
        request = DataRequest.objects.create(
            patient=profile,
            requested_by=by,
            kind=DataRequestKind.EXPORT_JSON,
            status=DataRequestStatus.COMPLETED,
            requested_at=now,
            completed_at=now,
            language=_language(profile),
        )
        bundle = export.bundle_of(
            export.collect(profile, now=now), bundle_id=str(request.public_id)
        )
        counts = export.resource_counts(bundle)
        with translation.override(request.language):
            request.outcome = ngettext(
                "Your data was downloaded as a FHIR file (%(n)d entry).",
                "Your data was downloaded as a FHIR file (%(n)d entries).",
                len(bundle["entry"]),
            ) % {"n": len(bundle["entry"])}
        request.detail = {"format": "fhir-r4-json", "resources": counts}
        request.save(update_fields=["outcome", "detail"])
        audit_record(
            actor=by,
            action=AuditAction.EXPORT,
            obj=request,
            patient=profile.user,
            detail={"what": "data_export", "format": "fhir_json", "resources": counts},
        )
    return request, bundle


def data_export_pdf_request(*, by: User, profile: PatientProfile) -> DataRequest:
    """Ask for the readable PDF; a worker prepares it. Asking while one is being
    prepared returns that one."""
    if not policies.can_export_patient_data(by, profile):
        raise _denied(by, profile, "data_export")
    with transaction.atomic():
        PatientProfile.objects.select_for_update().filter(pk=profile.pk).first()
        request = DataRequest.objects.filter(
            patient=profile,
            kind=DataRequestKind.EXPORT_PDF,
            status__in=[DataRequestStatus.QUEUED, DataRequestStatus.PROCESSING],
        ).first()
        created = request is None
        if created:
            now = timezone.now()
            request = DataRequest.objects.create(
                patient=profile,
                requested_by=by,
                kind=DataRequestKind.EXPORT_PDF,
                status=DataRequestStatus.QUEUED,
                requested_at=now,
                queued_at=now,
                language=_language(profile),
            )
            _enqueue(request.pk)
        audit_record(
            actor=by,
            action=AuditAction.CREATE,
            obj=request,
            patient=profile.user,
            detail={"what": "data_export_pdf", "state": request.status, "new": created},
        )
    return request


def _claim(request_id: int, now: datetime) -> DataRequest | None:
    with transaction.atomic():
        request = (
            DataRequest.objects.select_for_update()
            .filter(pk=request_id, kind=DataRequestKind.EXPORT_PDF)
            .first()
        )
        if request is None or not request.active:
            return None
        if (
            request.status == DataRequestStatus.PROCESSING
            and request.started_at > now - RENDER_LEASE
        ):
            return None
        if request.attempts >= MAX_ATTEMPTS:
            _fail(request, "gave_up", now)
            return None
        request.status = DataRequestStatus.PROCESSING
        request.started_at = now
        request.attempts += 1
        request.save(update_fields=["status", "started_at", "attempts"])
    return request


def _fail(request: DataRequest, code: str, now: datetime) -> None:
    with translation.override(request.language):
        request.outcome = _(
            "The PDF could not be prepared. Please try again; if it keeps failing, ask the clinic."
        )
    request.status = DataRequestStatus.FAILED
    request.completed_at = now
    request.detail = {**(request.detail or {}), "error": code}
    request.save(update_fields=["status", "completed_at", "outcome", "detail"])


def data_export_pdf_run(*, request_id: int) -> DataRequest | None:
    """Render one PDF export, store it encrypted and mark the request done. Idempotent:
    a finished request, or one another worker holds, is left alone; a render whose claim
    was taken over meanwhile is discarded."""
    claimed = _claim(request_id, timezone.now())
    if claimed is None:
        return DataRequest.objects.filter(pk=request_id).first()
    profile = PatientProfile.objects.select_related("user").get(pk=claimed.patient_id)
    try:
        data = export_pdf.render(profile, language=claimed.language)
    except Exception:  # noqa: BLE001 - WeasyPrint and its libraries raise many types
        logger.exception("Data export %s failed to render", claimed.pk)
        with transaction.atomic():
            request = DataRequest.objects.select_for_update().get(pk=claimed.pk)
            if (
                request.status == DataRequestStatus.PROCESSING
                and request.started_at == claimed.started_at
            ):
                _fail(request, "render_failed", timezone.now())
        return DataRequest.objects.get(pk=claimed.pk)

    storage_name = ""
    try:
        stored = DataRequest(pk=claimed.pk)
        stored.file.save("export", ContentFile(data), save=False)
        storage_name = stored.file.name
        with transaction.atomic():
            request = DataRequest.objects.select_for_update().get(pk=claimed.pk)
            if (
                request.status != DataRequestStatus.PROCESSING
                or request.started_at != claimed.started_at
            ):
                raise _Superseded
            now = timezone.now()
            request.file.name = storage_name
            request.size = len(data)
            request.sha256 = hashlib.sha256(data).hexdigest()
            request.status = DataRequestStatus.COMPLETED
            request.completed_at = now
            with translation.override(request.language):
                request.outcome = ngettext(
                    "Your data is ready as a PDF. You can download it for %(days)d day.",
                    "Your data is ready as a PDF. You can download it for %(days)d days.",
                    EXPORT_FILE_DAYS,
                ) % {"days": EXPORT_FILE_DAYS}
            request.detail = {**(request.detail or {}), "format": "pdf", "size": len(data)}
            request.save(
                update_fields=[
                    "file",
                    "size",
                    "sha256",
                    "status",
                    "completed_at",
                    "outcome",
                    "detail",
                ]
            )
            audit_record(
                actor=None,
                action=AuditAction.CREATE,
                obj=request,
                patient=profile.user,
                detail={"what": "data_export_pdf", "size": len(data), "attempt": request.attempts},
            )
    except (_Superseded, IntegrityError):
        if storage_name:
            DataRequest._meta.get_field("file").storage.delete(storage_name)
        return DataRequest.objects.get(pk=claimed.pk)
    except Exception:
        if storage_name:
            DataRequest._meta.get_field("file").storage.delete(storage_name)
        raise
    return request


class _Superseded(Exception):
    pass


def data_export_sweep(*, now: datetime | None = None) -> list[int]:
    """Send again the PDF exports whose message was lost (queued over a minute) or whose
    worker died (processing past the lease), giving up after MAX_ATTEMPTS; delete the
    files of exports older than EXPORT_FILE_DAYS. Returns the ids queued again."""
    now = now or timezone.now()
    requeued: list[int] = []
    with transaction.atomic():
        stale = list(
            DataRequest.objects.select_for_update(skip_locked=True).filter(
                kind=DataRequestKind.EXPORT_PDF,
                status=DataRequestStatus.QUEUED,
                queued_at__lt=now - REQUEUE_AFTER,
            )[:500]
        ) + list(
            DataRequest.objects.select_for_update(skip_locked=True).filter(
                kind=DataRequestKind.EXPORT_PDF,
                status=DataRequestStatus.PROCESSING,
                started_at__lt=now - RENDER_LEASE,
            )[:500]
        )
        for request in stale:
            if request.attempts >= MAX_ATTEMPTS:
                _fail(request, "gave_up", now)
                continue
            request.status = DataRequestStatus.QUEUED
            request.queued_at = now
            request.save(update_fields=["status", "queued_at"])
            requeued.append(request.pk)
            _enqueue(request.pk)
        expired = list(
            DataRequest.objects.select_for_update(skip_locked=True)
            .filter(
                kind=DataRequestKind.EXPORT_PDF,
                completed_at__lt=now - timedelta(days=EXPORT_FILE_DAYS),
            )
            .exclude(file="")[:500]
        )
        for request in expired:
            _drop_file(request)
            request.save(update_fields=["file"])
    return requeued


def data_export_nudge(*, data_request: DataRequest, now: datetime | None = None) -> bool:
    """The page watching an export found it still queued after REQUEUE_AFTER: send it
    again (the sweep would, a little later). True if sent."""
    now = now or timezone.now()
    if data_request.status != DataRequestStatus.QUEUED or (
        data_request.queued_at and data_request.queued_at >= now - REQUEUE_AFTER
    ):
        return False
    with transaction.atomic():
        updated = DataRequest.objects.filter(
            pk=data_request.pk, status=DataRequestStatus.QUEUED, queued_at__lt=now - REQUEUE_AFTER
        ).update(queued_at=now)
        if updated:
            _enqueue(data_request.pk)
    return bool(updated)


def _drop_file(request: DataRequest) -> None:
    """Forget the stored file now; delete it from disk once the change commits."""
    name = request.file.name
    storage = request.file.storage
    request.file = ""
    if name:
        transaction.on_commit(lambda: storage.delete(name))


# --- Deletion ------------------------------------------------------------------------------------


@dataclass
class DeletionOutcome:
    appointments_cancelled: int = 0
    waitlist_left: int = 0
    sessions_ended: int = 0
    sign_in_methods_removed: int = 0
    notification_settings_removed: int = 0
    export_files_removed: int = 0
    identity_scan_removed: bool = False
    removed: list[str] = field(default_factory=list)


REMOVED = (
    "email",
    "phone",
    "address",
    "identity_scan",
    "password",
    "mfa",
    "notification_settings",
    "sessions",
    "export_files",
    "sign_in_logs",
)
KEPT = (
    "medical_record",
    "names",
    "birth_date",
    "sex",
    "identity_documents",
    "insurance_policy",
    "consents",
    "access_log",
    "appointments_history",
)


def _reauth_key(user: User) -> str:
    return f"data_deletion_reauth:{user.pk}"


def _check_password(by: User, password: str, profile: PatientProfile) -> str | None:
    """The error to show for the password, or None if it is right."""
    key = _reauth_key(by)
    if (cache.get(key) or 0) >= REAUTH_LIMIT:
        return _("Too many wrong passwords. Try again in 15 minutes.")
    if password and by.check_password(password):
        cache.delete(key)
        return None
    if not cache.add(key, 1, REAUTH_WINDOW_SECONDS):
        cache.incr(key)
    audit_record(
        actor=by,
        action=AuditAction.DENIED,
        obj=profile,
        patient=profile.user,
        detail={"what": "data_deletion", "reason": "password"},
    )
    if not password:
        return _("Enter your password.")
    return _("The password is not correct.")


def _anonymous_email() -> str:
    return f"deleted-{uuid.uuid4().hex}@{ANONYMOUS_EMAIL_DOMAIN}"


def _end_sessions(user_id: int) -> int:
    """End every session signed in as this user (the database rows and the cache).

    Django keeps no index of sessions by user, so the unexpired ones are read and
    decoded: a rare operation, bounded by the 12-hour session lifetime. Making the
    password unusable also ends any session missed here at its next request (the session
    hash no longer matches), and the account is inactive."""
    from django.contrib.sessions.models import Session

    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        try:
            data = session.get_decoded()
        except Exception:  # noqa: BLE001 - a corrupt session is nobody's
            logger.debug("Session %s does not decode", session.pk)
            continue
        if str(data.get("_auth_user_id", "")) == str(user_id):
            store_class(session_key=session.session_key).delete()
            ended += 1
    return ended


def _remove_sign_in_data(user: User, old_email: str) -> tuple[int, int]:
    """Sign-in methods (MFA authenticators, allauth's email rows) and the lockout
    records axes keeps under the old address. Returns (methods removed, log rows)."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    methods, _detail = Authenticator.objects.filter(user=user).delete()
    EmailAddress.objects.filter(user=user).delete()
    usernames = {old_email, old_email.strip().lower()}
    logs = 0
    for model in (AccessAttempt, AccessLog, AccessFailureLog):
        count, _detail = model.objects.filter(username__in=usernames).delete()
        logs += count
    return methods, logs


def _remove_notification_settings(user: User) -> int:
    """The user's message settings. Notifications sits above records, so it is named by
    label here, not imported; a higher app's hook would be the place for more."""
    if not apps.is_installed("notifications"):
        return 0
    preference = apps.get_model("notifications", "NotificationPreference")
    count, _detail = preference.objects.filter(user=user).delete()
    return count


def _outcome_text(outcome: DeletionOutcome) -> str:
    parts = [
        _(
            "Your account is closed: you can no longer sign in, and the portal will not "
            "contact you."
        ),
        _(
            "Removed: your email address, phone number and home address, the scan of your "
            "identity document, your password and two-step sign-in methods, your message "
            "settings, every signed-in session and any prepared data exports."
        ),
    ]
    if outcome.appointments_cancelled:
        parts.append(
            ngettext(
                "%(n)d upcoming appointment was cancelled.",
                "%(n)d upcoming appointments were cancelled.",
                outcome.appointments_cancelled,
            )
            % {"n": outcome.appointments_cancelled}
        )
    parts.append(retention_reason())
    return " ".join(parts)


def data_deletion_request(
    *, by: User, profile: PatientProfile, password: str, confirm: bool
) -> DataRequest:
    """The patient deletes their account. Refused with field errors, changing nothing,
    unless the password is right and the confirmation given, and while an upcoming
    appointment cannot be cancelled free of charge online. Otherwise, in one transaction:
    upcoming appointments and waitlist places are cancelled through scheduling; the email
    becomes an undeliverable placeholder; phone, address and the identity scan are
    cleared; MFA, message settings and every session go; the account is deactivated with
    an unusable password. The medical record and what identifies it stay for
    MEDICAL_RECORD_RETENTION_YEARS. Recorded: the request, then the outcome."""
    if not policies.can_request_data_deletion(by, profile):
        raise _denied(by, profile, "data_deletion")
    errors: dict[str, str] = {}
    if not confirm:
        errors["confirm"] = _("Tick the box to confirm that you want to delete your account.")
    password_error = _check_password(by, password or "", profile)
    if password_error:
        errors["password"] = password_error
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    blocked = deletion_blockers(profile, by=by, now=now)
    if blocked:
        from records.presentation import visit_time

        when = visit_time(blocked[0].starts_at, blocked[0].location)
        raise ValidationError(
            _(
                "Your appointment on %(when)s can no longer be cancelled online free of "
                "charge. Cancel it on its page or call the clinic, then ask again."
            )
            % {"when": when}
        )

    from scheduling.models import Appointment, WaitlistEntry, WaitlistStatus
    from scheduling.services import appointment_cancel
    from scheduling.waitlist import waitlist_cancel

    outcome = DeletionOutcome(removed=list(REMOVED))
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=by.pk)
        profile = (
            PatientProfile.objects.select_for_update().select_related("user").get(pk=profile.pk)
        )
        if not user.is_active:
            raise PermissionDenied
        # Take the rows this changes before the first audit record takes the audit
        # chain's lock (held to the commit): nobody waits on us while we wait on them.
        appointments = upcoming_appointments(profile, now=now)
        Appointment.objects.select_for_update().filter(pk__in=[a.pk for a in appointments]).count()
        entries = list(
            WaitlistEntry.objects.select_for_update().filter(
                patient=profile, status__in=[WaitlistStatus.WAITING, WaitlistStatus.OFFERED]
            )
        )
        exports = list(
            DataRequest.objects.select_for_update().filter(patient=profile).exclude(file="")
        )
        # Appointments first, while the patient may still act on them: the service
        # revokes their reminders and frees the slots (scheduling's hooks).
        for appointment in appointments:
            appointment_cancel(
                by=user, appointment=appointment, reason="account deleted by the patient", now=now
            )
            outcome.appointments_cancelled += 1
        for entry in entries:
            waitlist_cancel(by=user, entry=entry)
            outcome.waitlist_left += 1

        old_email = user.email
        user.email = _anonymous_email()
        user.email_verified_at = None
        user.is_active = False
        user.set_unusable_password()
        user.save(
            update_fields=["email", "email_index", "email_verified_at", "is_active", "password"]
        )

        outcome.identity_scan_removed = bool(profile.identity_scan)
        if profile.identity_scan:
            scan_name, scan_storage = profile.identity_scan.name, profile.identity_scan.storage
            transaction.on_commit(lambda: scan_storage.delete(scan_name))
        profile.phone = ""
        profile.address = ""
        profile.identity_scan = ""
        profile.save(update_fields=["phone", "address", "identity_scan", "updated_at"])

        outcome.sign_in_methods_removed, sign_in_logs = _remove_sign_in_data(user, old_email)
        outcome.notification_settings_removed = _remove_notification_settings(user)
        for request in exports:
            _drop_file(request)
            request.save(update_fields=["file"])
            outcome.export_files_removed += 1
        outcome.sessions_ended = _end_sessions(user.pk)

        language = _language(profile)
        with translation.override(language):
            text = _outcome_text(outcome)
        facts = {
            "appointments_cancelled": outcome.appointments_cancelled,
            "waitlist_left": outcome.waitlist_left,
            "sessions_ended": outcome.sessions_ended,
            "sign_in_methods_removed": outcome.sign_in_methods_removed,
            "sign_in_log_rows_removed": sign_in_logs,
            "notification_settings_removed": outcome.notification_settings_removed,
            "export_files_removed": outcome.export_files_removed,
            "identity_scan_removed": outcome.identity_scan_removed,
            "removed": list(REMOVED),
            "kept": list(KEPT),
            "retention_years": MEDICAL_RECORD_RETENTION_YEARS,
        }
        request = DataRequest.objects.create(
            patient=profile,
            requested_by=user,
            kind=DataRequestKind.DELETION,
            status=DataRequestStatus.COMPLETED,
            requested_at=now,
            completed_at=timezone.now(),
            language=language,
            outcome=text,
            detail=facts,
        )
        audit_record(
            actor=user,
            action=AuditAction.CREATE,
            obj=request,
            patient=user,
            detail={"what": "data_deletion_request", "confirmed": True, "reauthenticated": True},
        )
        audit_record(
            actor=user,
            action=AuditAction.DELETE,
            obj=profile,
            patient=user,
            detail={"what": "data_deletion", "request": request.pk, **facts},
        )
    return request


__all__ = [
    "KEPT",
    "REMOVED",
    "RETENTION_REASON",
    "data_deletion_request",
    "data_export_json",
    "data_export_nudge",
    "data_export_pdf_request",
    "data_export_pdf_run",
    "data_export_sweep",
    "deletion_blockers",
    "retention_reason",
    "upcoming_appointments",
]
