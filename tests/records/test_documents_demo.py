"""records.demo_documents.seed_documents_demo: the demo documents, rendered, and only once."""

from __future__ import annotations

import pytest

from accounts.models import Role
from records.demo_documents import seed_documents_demo
from records.models import Document, DocumentKind, UploadState
from tests import factories
from tests.records.helpers_documents import media  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def test_demo_documents_are_made_once_and_rendered():
    patients = {n: factories.make_patient(email=f"patient{n:02d}@clinic.test") for n in (1, 2, 3)}
    for n in (1, 3):
        factories.make_staff(Role.DOCTOR, email=f"doctor{n:02d}@clinic.test")

    assert seed_documents_demo() == {"documents": 3, "uploads": 1, "rendered": 3}
    assert seed_documents_demo() == {"documents": 0, "uploads": 0, "rendered": 0}

    referral = Document.objects.get(kind=DocumentKind.REFERRAL)
    assert referral.patient == patients[1].patient_profile and referral.released
    assert referral.file.open().read().startswith(b"%PDF-")
    assert referral.verifications.filter(revoked=False).count() == 1
    summary = Document.objects.get(kind=DocumentKind.DISCHARGE_SUMMARY)
    assert summary.patient == patients[2].patient_profile and summary.released
    certificate = Document.objects.get(kind=DocumentKind.CERTIFICATE)
    assert not certificate.released
    upload = Document.objects.get(kind=DocumentKind.UPLOAD)
    assert upload.review_state == UploadState.PENDING and upload.uploaded_by == patients[1]
