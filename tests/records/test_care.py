"""Vaccinations, care plans and the clinician's care page: who records and writes them,
who reads them (the patient their own; doctors and nurses of the patient; never
reception or administrators), bad input changes nothing, the chart links to the care
page, the admin shows no clinical content, and the demo data builds and repeats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone, translation

from accounts import services as account_services
from accounts.models import Department, Role
from audit.models import AuditAction, AuditEvent
from records import services_care
from records.models import CarePlan, Prescription, PrescriptionStatus, Vaccination
from tests import factories
from tests.records.care_helpers import grant, prescription, renewal

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


@pytest.fixture
def nurse(db):
    return factories.make_staff(Role.NURSE, language="en")


@pytest.fixture
def in_department(patient, reception):
    """The patient belongs to the nurses' (and make_staff doctors') department."""
    account_services.patient_department_assign(
        by=reception,
        patient=patient.patient_profile,
        department=Department.objects.get(code="main-outpatient"),
    )
    patient.patient_profile.refresh_from_db()
    return patient


# --- Vaccinations -----------------------------------------------------------------------------


def test_nurse_of_the_department_records_a_vaccination(in_department, nurse):
    today = timezone.localdate()
    v = services_care.vaccination_record(
        by=nurse,
        patient=in_department.patient_profile,
        vaccine="Грипп (Совигрипп)",
        given_on=today,
        dose_number=1,
        lot="SG-1",
    )
    assert v.recorded_by == nurse
    assert AuditEvent.objects.filter(
        actor=nurse,
        action=AuditAction.CREATE,
        object_type="records.vaccination",
        patient=in_department,
    ).exists()


def test_vaccination_rules(patient, nurse, reception, doctor):
    today = timezone.localdate()
    kwargs = {"patient": patient.patient_profile, "vaccine": "Грипп", "given_on": today}
    for actor in (nurse, reception, doctor, patient):  # nobody in charge yet
        with pytest.raises(PermissionDenied):
            services_care.vaccination_record(by=actor, **kwargs)
    grant(doctor, patient)
    with pytest.raises(ValidationError) as caught:
        services_care.vaccination_record(
            by=doctor, **{**kwargs, "given_on": today + timedelta(days=1)}
        )
    assert "given_on" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services_care.vaccination_record(by=doctor, **{**kwargs, "dose_number": 0})
    assert "dose_number" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services_care.vaccination_record(by=doctor, **{**kwargs, "vaccine": " "})
    assert "vaccine" in caught.value.message_dict
    assert not Vaccination.objects.exists()


# --- Care plans ---------------------------------------------------------------------------------


def test_doctor_writes_and_changes_a_care_plan(patient, doctor, nurse):
    grant(doctor, patient)
    today = timezone.localdate()
    plan = services_care.care_plan_create(
        by=doctor,
        patient=patient.patient_profile,
        condition="Артериальная гипертензия",
        instructions="Измеряйте давление дважды в день.",
        review_date=today + timedelta(days=90),
    )
    assert plan.active and plan.doctor == doctor and plan.start_date == today
    with pytest.raises(ValidationError) as caught:
        services_care.care_plan_update(by=doctor, plan=plan, review_date=today - timedelta(days=1))
    assert "review_date" in caught.value.message_dict
    with pytest.raises(ValidationError):
        services_care.care_plan_update(by=doctor, plan=plan, instructions="")
    plan.refresh_from_db()
    assert plan.instructions == "Измеряйте давление дважды в день."

    plan = services_care.care_plan_update(by=doctor, plan=plan, active=False, review_date=None)
    assert not plan.active and plan.review_date is None
    with pytest.raises(PermissionDenied):
        services_care.care_plan_update(by=nurse, plan=plan, active=True)
    with pytest.raises(PermissionDenied):
        services_care.care_plan_create(
            by=factories.make_staff(Role.DOCTOR),
            patient=patient.patient_profile,
            condition="x",
            instructions="y",
        )
    assert CarePlan.objects.count() == 1


# --- Patient pages ----------------------------------------------------------------------------


def test_patient_reads_vaccinations_and_care_plans(client, patient, doctor):
    grant(doctor, patient)
    today = timezone.localdate()
    services_care.vaccination_record(
        by=doctor,
        patient=patient.patient_profile,
        vaccine="АДС-М",
        given_on=today - timedelta(days=400),
        lot="ADSM-1",
    )
    services_care.care_plan_create(
        by=doctor,
        patient=patient.patient_profile,
        condition="Сахарный диабет 2 типа",
        instructions="Глюкоза натощак — 2 раза в неделю.",
    )
    old = services_care.care_plan_create(
        by=doctor, patient=patient.patient_profile, condition="Анемия", instructions="Железо."
    )
    services_care.care_plan_update(by=doctor, plan=old, active=False)
    other = factories.make_patient()
    grant(doctor, other)
    services_care.vaccination_record(
        by=doctor, patient=other.patient_profile, vaccine="Бешенство", given_on=today
    )

    client.force_login(patient)
    html = _html(client.get(reverse("records:care_vaccinations")))
    assert "АДС-М" in html and "ADSM-1" in html and "Бешенство" not in html
    html = _html(client.get(reverse("records:care_plans")))
    assert "Сахарный диабет 2 типа" in html and "Глюкоза натощак" in html
    assert "status-badge--success" in html and "Active" in html
    assert "Ended" in html  # the old plan, in words, not only in grey
    assert AuditEvent.objects.filter(
        actor=patient, action=AuditAction.VIEW, object_type="records.careplan"
    ).exists()


@pytest.mark.parametrize(
    "name",
    [
        "records:care_prescriptions",
        "records:care_renewals",
        "records:care_renewal_new",
        "records:care_intake_list",
        "records:care_vaccinations",
        "records:care_plans",
    ],
)
def test_patient_pages_are_for_patients(client, doctor, name):
    client.force_login(doctor)
    assert client.get(reverse(name)).status_code == 404
    assert AuditEvent.objects.filter(actor=doctor, action=AuditAction.DENIED).exists()


# --- Staff pages ----------------------------------------------------------------------------------


def test_nurse_sees_care_plans_and_vaccinations_of_the_department(client, in_department, nurse):
    doctor = factories.make_staff(Role.DOCTOR, language="en")  # same department
    services_care.care_plan_create(
        by=doctor,
        patient=in_department.patient_profile,
        condition="ХОБЛ",
        instructions="Ингалятор утром и вечером.",
    )
    services_care.vaccination_record(
        by=nurse,
        patient=in_department.patient_profile,
        vaccine="Пневмококковая",
        given_on=timezone.localdate(),
    )
    client.force_login(nurse)
    url = reverse("records:care_patient", args=[in_department.patient_profile.pk])
    html = _html(client.get(url))
    assert "ХОБЛ" in html and "Ингалятор" in html and "Пневмококковая" in html
    assert "Record a vaccination" in html
    assert "New care plan" not in html and "Write a prescription" not in html
    # A nurse of another department sees nothing.
    elsewhere = Department.objects.create(
        code="cardio", name="Cardiology", location=factories.make_location()
    )
    other_nurse = factories.make_staff(Role.NURSE)
    other_nurse.staff_profile.department = elsewhere
    other_nurse.staff_profile.save()
    client.force_login(other_nurse)
    response = client.get(url)
    assert response.status_code == 404 and "ХОБЛ" not in _html(response)
    assert AuditEvent.objects.filter(
        actor=other_nurse, action=AuditAction.DENIED, patient=in_department
    ).exists()


def test_doctor_writes_from_the_care_pages(client, patient, doctor):
    grant(doctor, patient)
    profile_id = patient.patient_profile.pk
    client.force_login(doctor)

    url = reverse("records:care_prescription_new", args=[profile_id])
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"medication": "", "dosage": "", "is_repeat": "on", "repeats_allowed": "0"}
    )
    assert response.status_code == 400
    assert "Enter the medication." in _html(response)
    assert not Prescription.objects.exists()
    response = client.post(
        url,
        {
            "medication": "Бисопролол 5 мг",
            "dosage": "5 мг утром",
            "is_repeat": "on",
            "repeats_allowed": "0",
        },
    )
    assert response.status_code == 400
    assert "from 1 to 12 renewals" in _html(response)
    response = client.post(
        url,
        {
            "medication": "Бисопролол 5 мг",
            "dosage": "5 мг утром",
            "is_repeat": "on",
            "repeats_allowed": "3",
        },
    )
    assert response.status_code == 302
    assert Prescription.objects.get().repeats_allowed == 3

    url = reverse("records:care_vaccination_new", args=[profile_id])
    response = client.post(
        url, {"vaccine": "Грипп", "given_on": timezone.localdate().isoformat(), "dose_number": "1"}
    )
    assert response.status_code == 302 and Vaccination.objects.count() == 1

    url = reverse("records:care_plan_new", args=[profile_id])
    assert "Active" not in _html(client.get(url))  # a new plan is active
    response = client.post(
        url, {"condition": "Гипертензия", "instructions": "Меньше соли.", "review_date": ""}
    )
    assert response.status_code == 302
    plan = CarePlan.objects.get()
    edit = reverse("records:care_plan_edit", args=[plan.public_id])
    page = _html(client.get(edit))
    assert "Меньше соли." in page
    response = client.post(
        edit,
        {
            "condition": "Гипертензия",
            "instructions": "Меньше соли, больше ходьбы.",
            "start_date": plan.start_date.isoformat(),
            "review_date": "",
        },
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.instructions == "Меньше соли, больше ходьбы." and not plan.active

    html = _html(client.get(reverse("records:care_patient", args=[profile_id])))
    assert "Бисопролол 5 мг" in html and "Грипп" in html and "Гипертензия" in html


def test_write_pages_refuse_who_may_not_write(client, in_department, nurse, reception):
    profile_id = in_department.patient_profile.pk
    stranger = factories.make_staff(Role.DOCTOR)
    stranger.staff_profile.department = None
    stranger.staff_profile.save()
    plan = services_care.care_plan_create(
        by=factories.make_staff(Role.DOCTOR),
        patient=in_department.patient_profile,
        condition="Астма",
        instructions="Ингалятор.",
    )
    cases = [
        (nurse, reverse("records:care_prescription_new", args=[profile_id])),
        (nurse, reverse("records:care_plan_new", args=[profile_id])),
        (nurse, reverse("records:care_plan_edit", args=[plan.public_id])),
        (reception, reverse("records:care_vaccination_new", args=[profile_id])),
        (stranger, reverse("records:care_prescription_new", args=[profile_id])),
        (stranger, reverse("records:care_plan_edit", args=[plan.public_id])),
        (in_department, reverse("records:care_vaccination_new", args=[profile_id])),
    ]
    for actor, url in cases:
        client.force_login(actor)
        response = client.get(url)
        assert response.status_code == 404, (actor.role, url)
        assert "Астма" not in _html(response)
        assert client.post(url, {"condition": "x", "instructions": "y"}).status_code == 404
    plan.refresh_from_db()
    assert plan.condition == "Астма"


def test_chart_links_to_the_care_page(client, patient, doctor):
    grant(doctor, patient)
    client.force_login(doctor)
    response = client.get(reverse("records:chart", args=[patient.patient_profile.pk]))
    assert response.status_code == 200
    assert reverse("records:care_patient", args=[patient.patient_profile.pk]) in _html(response)


def test_staff_care_page_under_break_glass_is_flagged(client, patient, doctor):
    prescription(patient, doctor, medication="Варфарин")
    stranger = factories.make_staff(Role.DOCTOR, language="en")
    stranger.staff_profile.department = None
    stranger.staff_profile.save()
    account_services.break_glass_open(
        by=stranger, patient=patient.patient_profile, reason="Кровотечение, пациент без сознания"
    )
    client.force_login(stranger)
    response = client.get(reverse("records:care_patient", args=[patient.patient_profile.pk]))
    assert response.status_code == 200
    assert "Emergency access" in _html(response) and "Варфарин" in _html(response)
    assert "Write a prescription" not in _html(response)
    assert AuditEvent.objects.filter(
        actor=stranger, action=AuditAction.VIEW, patient=patient, break_glass=True
    ).exists()


def test_prescription_end(patient, doctor):
    rx = prescription(patient, doctor)
    with pytest.raises(ValidationError):
        services_care.prescription_end(by=doctor, prescription=rx, status="active")
    rx = services_care.prescription_end(
        by=doctor, prescription=rx, status=PrescriptionStatus.CANCELLED
    )
    assert rx.status == PrescriptionStatus.CANCELLED and not rx.renewable
    with pytest.raises(ValidationError, match="already"):
        services_care.prescription_end(
            by=doctor, prescription=rx, status=PrescriptionStatus.COMPLETED
        )
    with pytest.raises(PermissionDenied):
        services_care.prescription_end(
            by=factories.make_staff(Role.DOCTOR), prescription=rx, status="completed"
        )


# --- Admin and demo ------------------------------------------------------------------------


def test_admin_lists_are_audited_and_show_no_clinical_content(client, patient, doctor, admin_user):
    rx = prescription(patient, doctor, medication="Сертралин")
    r = renewal(patient, rx, pharmacy="Аптека на Арбате")
    client.force_login(admin_user)
    for name, obj in (("prescription", rx), ("renewalrequest", r)):
        listing = client.get(reverse(f"admin:records_{name}_changelist"))
        assert listing.status_code == 200
        change = client.get(reverse(f"admin:records_{name}_change", args=[obj.pk]))
        assert change.status_code == 200
        for response in (listing, change):
            html = _html(response)
            assert "Сертралин" not in html and "Арбат" not in html
        assert AuditEvent.objects.filter(
            actor=admin_user,
            action=AuditAction.VIEW,
            object_type=f"records.{name}",
            object_id=str(obj.pk),
            patient=patient,
        ).exists()


def test_demo_care_data_builds_once():
    import io

    from django.core.management import call_command

    from records.demo_care import seed_care_demo
    from records.models import RenewalRequest

    call_command("seed_demo", stdout=io.StringIO())
    seed_care_demo()  # seed_demo may already call it; either way a run adds nothing new
    before = (
        Prescription.objects.count(),
        RenewalRequest.objects.count(),
        CarePlan.objects.count(),
        Vaccination.objects.count(),
    )
    assert before[0] >= 5 and before[1] >= 3 and before[2] >= 2 and before[3] >= 5
    assert seed_care_demo() == {
        "prescriptions": 0,
        "renewal requests": 0,
        "care plans": 0,
        "vaccinations": 0,
    }
    assert RenewalRequest.objects.filter(status="submitted").exists()
