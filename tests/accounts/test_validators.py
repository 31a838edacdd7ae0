import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from accounts.validators import (
    format_snils,
    snils_checksum,
    validate_passport,
    validate_phone,
    validate_snils,
)


@pytest.mark.parametrize(
    "snils", ["112-233-445 95", "11223344595", "001-001-998 00", "001-001-999 65"]
)
def test_valid_snils_is_accepted(snils):
    validate_snils(snils)


@pytest.mark.parametrize("snils", ["112-233-445 96", "11223344594", "1122334459", "112-233-44a 95"])
def test_invalid_snils_is_refused(snils):
    with pytest.raises(ValidationError):
        validate_snils(snils)


def test_snils_checksum_edge_cases():
    # Sums of exactly 100 and 101 give 00; above 101 the remainder mod 101 is used.
    assert snils_checksum("112233445") == 95
    digits_summing_100 = "000000" + "9" + "7" + "9"  # 9*3 + 7*2 + 9*1 = 50 -> itself
    assert snils_checksum(digits_summing_100) == 50
    assert snils_checksum("999999999") == (sum(9 * w for w in range(1, 10)) % 101)
    assert format_snils("11223344595") == "112-233-445 95"


@pytest.mark.parametrize("passport", ["4510 123456", "4510123456", "45 10 123456"])
def test_passport_accepted(passport):
    validate_passport(passport)


@pytest.mark.parametrize("passport", ["4510 12345", "ABCD 123456", "4510 1234567"])
def test_passport_refused(passport):
    with pytest.raises(ValidationError):
        validate_passport(passport)


def test_phone():
    validate_phone("+7 912 345-67-89")
    with pytest.raises(ValidationError):
        validate_phone("call me")


@pytest.mark.parametrize(
    "password",
    [
        "short-Pass1",  # 11 characters
        "password123456",  # common word with digits
        "Qwertyuiop!!2026",  # keyboard walk
        "aaaaaaaaaaaaaaaa",  # repetition
        "abcdefghij2026X!",  # run of consecutive characters
        "P@ssw0rd2024!!!",  # common word with symbols
        "123456789012",  # numeric
    ],
)
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


@pytest.mark.parametrize("password", ["Correct-Horse-Battery-9", "утро в саду у реки 7"])
def test_strong_passwords_are_accepted(password):
    validate_password(password)
