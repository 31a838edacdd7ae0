"""FHIR R4 resources for tests, the way an MIS holds them."""

from __future__ import annotations

from typing import Any

from mis.matching import SNILS_SYSTEMS

SNILS_SYSTEM = "urn:oid:1.2.643.100.3"
assert SNILS_SYSTEM in SNILS_SYSTEMS
MRN = "urn:oid:1.2.643.5.1.13.13.12.2.77.7801"
LOINC = "http://loinc.org"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

# Valid SNILS numbers (checksums computed by accounts.validators.snils_checksum).
SNILS_A = "112-233-445 95"
SNILS_B = "123-456-789 64"


def patient(
    pid: str,
    *,
    snils: str | None = None,
    family: str = "Иванова",
    given: str = "Анна",
    birth: str = "1950-03-14",
) -> dict:
    identifiers: list[dict[str, Any]] = [{"system": MRN, "value": f"MRN-{pid}"}]
    if snils:
        identifiers.append({"system": SNILS_SYSTEM, "value": snils})
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": identifiers,
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
    }


def anonymous_patient(
    pid: str, *, family: str = "Иванова", given: str = "Анна", birth: str = "1950-03-14"
) -> dict:
    """A Patient with a name and birth date and no identifiers at all."""
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
    }


def practitioner(pid: str, *, name: str = "Сидоров Пётр", email: str | None = None) -> dict:
    family, given = name.split(" ", 1)
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": pid,
        "active": True,
        "name": [{"family": family, "given": [given]}],
    }
    if email:
        resource["telecom"] = [{"system": "email", "value": email}]
    return resource


def observation(
    oid: str,
    patient_id: str,
    *,
    loinc: str,
    name: str,
    value: float,
    unit: str,
    low: float | None,
    high: float | None,
    flag: str | None,
) -> dict:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc, "display": name}], "text": name},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": value, "unit": unit},
    }
    if low is not None or high is not None:
        rng: dict[str, Any] = {}
        if low is not None:
            rng["low"] = {"value": low, "unit": unit}
        if high is not None:
            rng["high"] = {"value": high, "unit": unit}
        resource["referenceRange"] = [rng]
    if flag:
        resource["interpretation"] = [{"coding": [{"system": V3, "code": flag}]}]
    return resource


def cbc(
    report_id: str,
    patient_id: str,
    *,
    hb: float = 105,
    wbc: float = 6.0,
    plt: float = 400,
    status: str = "final",
) -> list[dict]:
    """A complete blood count (LOINC 58410-2): the report and its three Observations."""
    observations = [
        observation(
            f"{report_id}-hb",
            patient_id,
            loinc="718-7",
            name="Hemoglobin",
            value=hb,
            unit="g/L",
            low=120,
            high=160,
            flag="L" if hb < 120 else "N",
        ),
        observation(
            f"{report_id}-wbc",
            patient_id,
            loinc="6690-2",
            name="Leukocytes",
            value=wbc,
            unit="10*9/L",
            low=4.0,
            high=9.0,
            flag="N",
        ),
        observation(
            f"{report_id}-plt",
            patient_id,
            loinc="777-3",
            name="Platelets",
            value=plt,
            unit="10*9/L",
            low=180,
            high=320,
            flag="H" if plt > 320 else "N",
        ),
    ]
    report = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": "58410-2", "display": "CBC panel"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-11-01T08:30:00+03:00",
        "issued": "2026-11-01T12:00:00+03:00",
        "performer": [{"display": "Central laboratory"}],
        "result": [{"reference": f"Observation/{o['id']}"} for o in observations],
    }
    return [*observations, report]
