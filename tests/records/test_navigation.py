"""The records pages in the main menus: the patient's grouped menu (appointments, my
record, my account) on every patient page, the staff menu's review queues by role, the
current page marked with aria-current, no duplicate links on records pages, and the
staff patient record page linking to the chart."""

from __future__ import annotations

import re

import pytest
from django.urls import NoReverseMatch, reverse

from accounts.models import Department, Role
from tests import factories
from tests.records.helpers import grant

pytestmark = pytest.mark.django_db


def _menu(response) -> str:  # noqa: ANN001
    html = response.content.decode()
    start = html.index('aria-label="Main menu"')
    return html[start : html.index("</nav>", start)]


def _url(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _links(menu: str) -> list[str]:
    return re.findall(r'<a class="nav-link" href="([^"]+)"', menu)


PATIENT_RECORD_PAGES = [
    "records:results",
    "records:visits",
    "records:documents",
    "records:care_prescriptions",
    "records:data_rights",
    "accounts:access_log",
]


@pytest.mark.parametrize(
    "page", ["home", "records:results", "records:visits", "scheduling:my_appointments"]
)
def test_patient_menu_links_the_record_pages_once(client, patient, page):
    client.force_login(patient)
    response = client.get(reverse(page))
    assert response.status_code == 200
    menu = _menu(response)
    links = _links(menu)
    for name in PATIENT_RECORD_PAGES:
        url = _url(name)
        if url is not None:  # a part still being built may not have its URL yet
            assert links.count(url) == 1, name
    assert reverse("records:results") in links and reverse("records:visits") in links
    # Grouped, each group a list named by its visible label.
    for group in ("Appointments", "My record", "My account"):
        assert f">{group}</span>" in menu
    assert 'aria-labelledby="nav-group-record"' in menu
    # The current page is marked, and only it.
    current = re.findall(r'href="([^"]+)" aria-current="page"', menu)
    assert current == [reverse(page)]


def test_patient_menu_has_no_staff_queues(client, patient):
    client.force_login(patient)
    links = _links(_menu(client.get(reverse("records:results"))))
    for name in ("records:review_queue", "records:care_renewal_queue", "records:upload_queue"):
        assert reverse(name) not in links


def _nurse_in_department():  # noqa: ANN202
    return factories.make_staff(Role.NURSE, language="en")


@pytest.mark.parametrize(
    ("role", "expected", "absent"),
    [
        (
            Role.DOCTOR,
            ["records:review_queue", "records:care_renewal_queue", "records:upload_queue"],
            [],
        ),
        (
            Role.NURSE,
            ["records:upload_queue"],
            ["records:review_queue", "records:care_renewal_queue"],
        ),
        (
            Role.RECEPTION,
            [],
            ["records:review_queue", "records:care_renewal_queue", "records:upload_queue"],
        ),
        (
            Role.ADMIN,
            [],
            ["records:review_queue", "records:care_renewal_queue", "records:upload_queue"],
        ),
    ],
)
def test_staff_menu_shows_each_role_its_queues(client, role, expected, absent):
    user = factories.make_staff(role, language="en")
    client.force_login(user)
    links = _links(_menu(client.get(reverse("home"))))
    for name in expected:
        assert links.count(reverse(name)) == 1, name
    for name in absent:
        assert reverse(name) not in links, name


def test_staff_menu_marks_the_queue_page_and_does_not_repeat_it(client):
    doctor = factories.make_staff(Role.DOCTOR, language="en")
    client.force_login(doctor)
    menu = _menu(client.get(reverse("records:review_queue")))
    assert _links(menu).count(reverse("records:review_queue")) == 1
    current = re.findall(r'href="([^"]+)" aria-current="page"', menu)
    assert current == [reverse("records:review_queue")]


def test_staff_patient_record_links_to_the_chart(client, patient):
    from accounts.services import patient_department_assign

    doctor = factories.make_staff(Role.DOCTOR, language="en")
    grant(doctor, patient)
    nurse = _nurse_in_department()
    patient_department_assign(
        by=factories.make_staff(Role.RECEPTION),
        patient=patient.patient_profile,
        department=Department.objects.get(code="main-outpatient"),
    )
    chart = reverse("records:chart", args=[patient.patient_profile.pk])
    for user in (doctor, nurse):
        client.force_login(user)
        response = client.get(reverse("accounts:patient_record", args=[patient.patient_profile.pk]))
        html = response.content.decode()
        assert response.status_code == 200
        assert f'href="{chart}"' in html and "Coming soon" not in html
        assert client.get(chart).status_code == 200
