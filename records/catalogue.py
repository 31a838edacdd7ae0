"""A starter catalogue of laboratory tests with real LOINC codes and adult reference
ranges in the units Russian laboratories report. Used by the demo data and tests; the
clinic maintains its own test types in the admin (and the MIS integration adds more)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from records.models import ReleasePolicy, TestType


@dataclass(frozen=True)
class Analyte:
    loinc_code: str
    name: str
    unit: str
    low: Decimal | None
    high: Decimal | None


A = Analyte
D = Decimal

HBA1C = A("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", D("4.0"), D("5.6"))
GLUCOSE = A(
    "14771-0", "Fasting glucose [Moles/volume] in Serum or Plasma", "mmol/L", D("3.9"), D("6.1")
)
CHOLESTEROL = A(
    "14647-2", "Cholesterol [Moles/volume] in Serum or Plasma", "mmol/L", None, D("5.2")
)
HDL = A("14646-4", "Cholesterol in HDL [Moles/volume] in Serum or Plasma", "mmol/L", D("1.0"), None)
LDL = A("22748-8", "Cholesterol in LDL [Moles/volume] in Serum or Plasma", "mmol/L", None, D("3.0"))
TRIGLYCERIDES = A(
    "14927-8", "Triglyceride [Moles/volume] in Serum or Plasma", "mmol/L", None, D("1.7")
)
HEMOGLOBIN = A("718-7", "Hemoglobin [Mass/volume] in Blood", "g/L", D("120"), D("160"))
LEUKOCYTES = A(
    "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*9/L", D("4.0"), D("9.0")
)
PLATELETS = A(
    "777-3", "Platelets [#/volume] in Blood by Automated count", "10*9/L", D("180"), D("320")
)
CREATININE = A(
    "14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", D("62"), D("115")
)
TSH = A("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "mIU/L", D("0.4"), D("4.0"))


@dataclass(frozen=True)
class TestTypeSpec:
    __test__ = False

    code: str
    name_ru: str
    name_en: str
    loinc_code: str
    release_policy: str
    analytes: tuple[Analyte, ...]


TEST_TYPES = (
    TestTypeSpec(
        "cbc",
        "Общий анализ крови",
        "Complete blood count",
        "58410-2",
        ReleasePolicy.IMMEDIATE,
        (HEMOGLOBIN, LEUKOCYTES, PLATELETS),
    ),
    TestTypeSpec(
        "glucose",
        "Глюкоза натощак",
        "Fasting glucose",
        "14771-0",
        ReleasePolicy.IMMEDIATE,
        (GLUCOSE,),
    ),
    TestTypeSpec(
        "creatinine",
        "Креатинин",
        "Creatinine",
        "14682-9",
        ReleasePolicy.IMMEDIATE,
        (CREATININE,),
    ),
    TestTypeSpec(
        "hba1c",
        "Гликированный гемоглобин (HbA1c)",
        "Glycated haemoglobin (HbA1c)",
        "4548-4",
        ReleasePolicy.AFTER_REVIEW,
        (HBA1C,),
    ),
    TestTypeSpec(
        "lipid-panel",
        "Липидный профиль",
        "Lipid panel",
        "24331-1",
        ReleasePolicy.AFTER_REVIEW,
        (CHOLESTEROL, HDL, LDL, TRIGLYCERIDES),
    ),
    TestTypeSpec(
        "tsh",
        "Тиреотропный гормон (ТТГ)",
        "Thyroid-stimulating hormone (TSH)",
        "3016-3",
        ReleasePolicy.AFTER_REVIEW,
        (TSH,),
    ),
)


def test_types_ensure() -> dict[str, TestType]:
    """Create the catalogue's test types that are missing (existing ones are left as the
    clinic configured them). Reference data, no personal data: no audit event."""
    found = {}
    for spec in TEST_TYPES:
        test_type, _created = TestType.objects.get_or_create(
            code=spec.code,
            defaults={
                "name_ru": spec.name_ru,
                "name_en": spec.name_en,
                "loinc_code": spec.loinc_code,
                "release_policy": spec.release_policy,
            },
        )
        found[spec.code] = test_type
    return found


def spec_of(code: str) -> TestTypeSpec:
    return next(spec for spec in TEST_TYPES if spec.code == code)


def observations(code: str, values: dict[str, object] | list[object]) -> list[dict]:
    """Observation inputs for a catalogue test: values by LOINC code (or in order)."""
    spec = spec_of(code)
    if not isinstance(values, dict):
        values = {a.loinc_code: v for a, v in zip(spec.analytes, values, strict=False)}
    return [
        {
            "loinc_code": a.loinc_code,
            "name": a.name,
            "value_quantity": values[a.loinc_code],
            "unit": a.unit,
            "reference_low": a.low,
            "reference_high": a.high,
        }
        for a in spec.analytes
        if a.loinc_code in values
    ]
