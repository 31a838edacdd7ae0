"""Encryption at rest: ciphertext in the columns, loud failures, rotation, blind indexes."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from accounts import services
from accounts.models import IdentityVerification, PatientProfile, User
from clinic.crypto import UndecryptableValue, blind_index, is_current
from clinic.management.commands.reencrypt import encrypted_models
from tests import factories

pytestmark = pytest.mark.django_db

OLD_KEY = "old-secret-key-" + "x" * 40
NEW_KEY = "new-secret-key-" + "y" * 40

PLAINTEXTS = {
    "last_name": "Прохорова",
    "first_name": "Зинаида",
    "middle_name": "Аркадьевна",
    "phone": "+7 912 000-11-22",
    "address": "г. Москва, ул. Садовая, д. 7",
    "insurance_policy": "7700123456789012",
    "passport": "4510 123456",
}


def _raw_rows(table: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table names from the test
        return cursor.fetchall()


def _make_full_patient() -> User:
    snils = factories.valid_snils()
    user = factories.make_patient(
        email="Zinaida.Prokhorova@example.org",
        first_name=PLAINTEXTS["first_name"],
        last_name=PLAINTEXTS["last_name"],
        phone=PLAINTEXTS["phone"],
    )
    services.patient_profile_update(
        by=user,
        profile=user.patient_profile,
        middle_name=PLAINTEXTS["middle_name"],
        address=PLAINTEXTS["address"],
        insurance_policy=PLAINTEXTS["insurance_policy"],
        passport=PLAINTEXTS["passport"],
        snils=snils,
        sex="female",
    )
    user.snils_plain = snils
    return user


def test_raw_sql_shows_only_ciphertext_in_personal_columns():
    user = _make_full_patient()
    dumped = repr(_raw_rows("accounts_patientprofile")) + repr(_raw_rows("accounts_user"))
    for value in [
        *PLAINTEXTS.values(),
        user.snils_plain,
        "zinaida",
        "Zinaida",
        "1950-03-14",
        "female",
    ]:
        assert value not in dumped, f"plaintext {value!r} found in a raw column"
    # Every encrypted column of every model holds Fernet tokens or nothing.
    for model, fields, _indexes in encrypted_models():
        for field in fields:
            with connection.cursor() as cursor:
                cursor.execute(
                    f'SELECT "{field.column}" FROM "{model._meta.db_table}" '  # noqa: S608
                    f'WHERE "{field.column}" IS NOT NULL AND "{field.column}" <> \'\''
                )
                for (value,) in cursor.fetchall():
                    assert value.startswith("gAAAAA"), (
                        f"{model.__name__}.{field.name} not encrypted"
                    )


def test_values_round_trip_through_the_orm():
    user = _make_full_patient()
    profile = PatientProfile.objects.get(pk=user.patient_profile.pk)
    assert profile.first_name == PLAINTEXTS["first_name"]
    assert profile.birth_date.isoformat() == "1950-03-14"
    assert User.objects.get(pk=user.pk).email == "zinaida.prokhorova@example.org"


def test_same_value_encrypts_differently_each_time():
    factories.make_patient(first_name="Одинаковое")
    factories.make_patient(first_name="Одинаковое")
    with connection.cursor() as cursor:
        cursor.execute("SELECT first_name FROM accounts_patientprofile")
        tokens = [row[0] for row in cursor.fetchall()]
    assert len(set(tokens)) == len(tokens)


def test_wrong_key_raises_instead_of_showing_ciphertext():
    user = _make_full_patient()
    with (
        override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]),
        pytest.raises(UndecryptableValue),
    ):
        PatientProfile.objects.get(pk=user.patient_profile.pk)


def test_missing_key_fails_loudly():
    user = _make_full_patient()
    with override_settings(SALT_KEY=[""]), pytest.raises(ImproperlyConfigured):
        PatientProfile.objects.get(pk=user.patient_profile.pk)


def test_tampered_ciphertext_raises():
    user = _make_full_patient()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_patientprofile SET first_name = 'gAAAAABtampered' WHERE id = %s",
            [user.patient_profile.pk],
        )
    with pytest.raises(UndecryptableValue):
        PatientProfile.objects.get(pk=user.patient_profile.pk)


def test_key_rotation_with_fallback_and_reencrypt():
    with override_settings(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[]):
        user = _make_full_patient()
        profile_id = user.patient_profile.pk
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        # The old key still opens old rows while they wait to be rewritten.
        assert PatientProfile.objects.get(pk=profile_id).first_name == PLAINTEXTS["first_name"]
        out = io.StringIO()
        call_command("reencrypt", "--batch-size", "1", stdout=out)
        assert "accounts.PatientProfile:" in out.getvalue()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT first_name, snils FROM accounts_patientprofile WHERE id = %s", [profile_id]
            )
            assert all(is_current(token) for token in cursor.fetchone())
        # Resumable and idempotent: a second run finds nothing left to do.
        again = io.StringIO()
        call_command("reencrypt", stdout=again)
        assert "Done: 0 values" in again.getvalue()
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        profile = PatientProfile.objects.get(pk=profile_id)
        assert profile.first_name == PLAINTEXTS["first_name"]
        assert profile.passport == PLAINTEXTS["passport"]
        assert User.objects.get(email="zinaida.prokhorova@example.org").pk == user.pk


def test_reencrypt_stops_with_a_clear_error_when_a_row_has_no_key():
    with override_settings(SECRET_KEY=OLD_KEY):
        factories.make_patient()
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        from django.core.management.base import CommandError

        with pytest.raises(CommandError, match="SECRET_KEY_FALLBACKS"):
            call_command("reencrypt", stdout=io.StringIO())


def test_blind_index_finds_documents_whatever_the_formatting():
    user = _make_full_patient()
    digits = "".join(ch for ch in user.snils_plain if ch.isdigit())
    assert PatientProfile.objects.get(snils=digits).pk == user.patient_profile.pk
    assert PatientProfile.objects.get(passport="4510123456").pk == user.patient_profile.pk
    assert User.objects.get(email="ZINAIDA.prokhorova@EXAMPLE.org").pk == user.pk
    assert not PatientProfile.objects.filter(passport="4510 123457").exists()


def test_blind_index_is_keyed_and_per_column():
    a = blind_index("4510123456", purpose="accounts.patientprofile.passport", normaliser="digits")
    b = blind_index("4510123456", purpose="accounts.patientprofile.snils", normaliser="digits")
    assert a != b
    with override_settings(BLIND_INDEX_KEY="another-key-" * 4):
        c = blind_index(
            "4510123456", purpose="accounts.patientprofile.passport", normaliser="digits"
        )
    assert a != c


def test_lookups_other_than_exact_are_refused_on_encrypted_columns():
    with pytest.raises(TypeError, match="encrypted"):
        list(PatientProfile.objects.filter(last_name__startswith="Про"))


def test_blind_index_enforces_uniqueness_of_documents():
    first = _make_full_patient()
    second = factories.make_patient()
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as excinfo:
        services.patient_profile_update(
            by=second, profile=second.patient_profile, snils=first.snils_plain
        )
    assert "snils" in excinfo.value.error_dict
    second.patient_profile.refresh_from_db()
    assert second.patient_profile.snils == ""


def test_encrypted_note_on_verification_is_ciphertext(reception):
    user = _make_full_patient()
    services.identity_verify(
        by=reception,
        profile=user.patient_profile,
        method="in_person",
        note="checked original passport",
    )
    assert "checked original" not in repr(_raw_rows("accounts_identityverification"))
    assert IdentityVerification.objects.get().note == "checked original passport"


def test_uploaded_scan_is_encrypted_on_disk(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    user = factories.make_patient()
    pdf = b"%PDF-1.4\n% passport scan of Zinaida\n%%EOF\n"
    services.identity_scan_upload(
        by=user,
        profile=user.patient_profile,
        upload=SimpleUploadedFile("my-passport.pdf", pdf, content_type="application/pdf"),
    )
    profile = PatientProfile.objects.get(pk=user.patient_profile.pk)
    stored = list(tmp_path.rglob("*"))
    files = [p for p in stored if p.is_file()]
    assert len(files) == 1 and "passport" not in files[0].name
    assert b"Zinaida" not in files[0].read_bytes()
    assert profile.identity_scan.open().read() == pdf
