"""Browser journeys through the accounts app: sign-in (patient, staff with TOTP, staff
enrolling TOTP), signup with email confirmation, identity verification by reception,
consents, and the Russian interface.

Each journey checks axe-core on every screen it opens; the `page` / `new_page` fixtures
fail the test on any console error or CSP violation.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse
from playwright.sync_api import Page, expect

from accounts import services
from accounts.models import Role, User
from accounts.tokens import make_email_verification_token
from tests import factories
from tests.conftest import fresh_code
from tests.e2e.harness import assert_accessible

LOGIN = "/accounts/login/"


def fresh_totp(secret: str) -> str:
    """The current code, never one about to expire (allauth accepts no clock drift)."""
    return fresh_code(secret)


# What a person reads on the sign-in screens, by the browser's language. Signed in, a user
# sees the portal in their own language (staff accounts default to Russian).
SIGN_IN_TEXT = {
    "en": {
        "email": "Email",
        "password": "Password",
        "button": "Sign in",
        "code": "Code",
        "code_button": "Sign In",
    },
    "ru": {
        "email": "Электронная почта",
        "password": "Пароль",
        "button": "Войти",
        "code": "Код",
        "code_button": "Войти",
    },
}


def sign_in(
    page: Page, email: str, password: str = factories.PASSWORD, *, lang: str = "en"
) -> None:
    text = SIGN_IN_TEXT[lang]
    page.goto(LOGIN)
    page.get_by_label(text["email"], exact=True).fill(email)
    page.get_by_label(text["password"], exact=True).fill(password)
    page.get_by_role("button", name=text["button"], exact=True).click()
    page.wait_for_load_state()


def sign_in_staff(page: Page, user: User, *, lang: str = "en") -> None:
    text = SIGN_IN_TEXT[lang]
    sign_in(page, user.email, lang=lang)
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/$"))
    assert_accessible(page)
    page.get_by_label(text["code"], exact=True).fill(fresh_totp(user.totp_secret))
    page.locator("main form").first.get_by_role(
        "button", name=text["code_button"], exact=True
    ).click()
    page.wait_for_load_state()


def test_patient_signs_in_and_out(live_server, page, console):
    patient = factories.make_patient(first_name="Мария")

    page.goto(LOGIN)
    assert_accessible(page)
    sign_in(page, patient.email)

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Мария")
    assert_accessible(page)

    page.get_by_role("banner").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the patient portal")
    # Signed out for real: the home page sends us back to the login form.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    assert_accessible(page)
    console.assert_clean()


def test_doctor_signs_in_with_an_authenticator_code(live_server, page, console):
    doctor = factories.make_staff(Role.DOCTOR, full_name="Пётр Сергеевич Орлов")

    sign_in(page, doctor.email)  # the browser asks for English until the doctor is known
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-Factor Authentication")
    code = page.get_by_label("Code", exact=True)
    sign_in_button = page.locator("main form").first.get_by_role(
        "button", name="Sign In", exact=True
    )
    code.fill("000000")  # a wrong code first: an error tied to the field, still signed out
    sign_in_button.click()
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(page.locator("main")).to_contain_text("Incorrect code.")
    assert_accessible(page)
    code.fill(fresh_totp(doctor.totp_secret))
    sign_in_button.click()

    expect(page).to_have_url(f"{live_server.url}/")
    # Staff accounts use Russian unless they choose otherwise.
    assert page.evaluate("() => document.documentElement.lang") == "ru"
    expect(page.get_by_role("heading", level=1)).to_have_text("Рабочее место")
    expect(page.locator("main .lead")).to_contain_text("Пётр Сергеевич Орлов — Врач")
    expect(page.get_by_role("heading", name="Пациенты на сегодня")).to_be_visible()
    # A doctor has their own patient list, and no administration site.
    expect(page.get_by_role("link", name="Мои пациенты", exact=True)).to_have_count(1)
    expect(page.get_by_role("link", name="Администрирование", exact=True)).to_have_count(0)
    assert_accessible(page)
    console.assert_clean()


def test_staff_without_totp_must_enrol_an_authenticator(live_server, page, console):
    nurse = factories.make_staff(Role.NURSE, with_totp=False)

    sign_in(page, nurse.email)

    # Any staff page leads to enrolment, and allauth first asks for the password again.
    expect(page).to_have_url(
        re.compile(r"/accounts/reauthenticate/\?next=%2Faccounts%2F2fa%2Ftotp%2Factivate%2F$")
    )
    expect(page.get_by_role("alert")).to_contain_text(
        "Чтобы продолжить работу, подключите приложение-аутентификатор"
    )
    assert_accessible(page)
    page.get_by_label("Пароль").fill(factories.PASSWORD)
    page.get_by_role("button", name="Подтвердить", exact=True).click()

    expect(page).to_have_url(re.compile(r"/accounts/2fa/totp/activate/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Подключение приложения-аутентификатора"
    )
    secret_field = page.locator("#authenticator_secret")
    expect(secret_field).to_be_disabled()
    secret = secret_field.input_value()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    expect(page.get_by_role("img", name="QR-код для приложения-аутентификатора")).to_be_visible()
    assert_accessible(page)

    page.get_by_label("Код аутентификатора", exact=True).fill(fresh_totp(secret))
    page.get_by_role("button", name="Включить", exact=True).click()

    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    expect(page.get_by_role("status").first).to_contain_text(
        "Активировано приложение Аутентификатор."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Коды восстановления")
    codes = page.get_by_label("Неиспользуемые коды").input_value().split()
    assert len(codes) == 10 and all(c.isdigit() for c in codes)
    assert_accessible(page)

    page.goto("/")
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Рабочее место")
    expect(page.locator("main .lead")).to_contain_text("Медсестра")
    assert_accessible(page)
    console.assert_clean()


def test_patient_signs_up_confirms_email_and_signs_in(
    live_server, page, console, settings, celery_eager
):
    settings.SITE_URL = live_server.url  # the link in the email points at this server
    mail.outbox.clear()

    page.goto(LOGIN)
    page.get_by_role("link", name="New patient? Create an account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create a patient account")
    assert_accessible(page)

    page.get_by_label("Email").fill("vera.sidorova@example.org")
    page.get_by_label("Last name").fill("Сидорова")
    page.get_by_label("First name").fill("Вера")
    page.get_by_label("Date of birth").fill("1948-05-09")
    page.get_by_label("Mobile phone").fill("+7 912 111-22-33")
    page.get_by_label("Language of messages").select_option("en")
    page.get_by_label("Password", exact=True).fill(factories.PASSWORD)
    page.get_by_label("Password again").fill(factories.PASSWORD)
    page.get_by_label("I consent to the processing of my personal and health data").check()
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    assert_accessible(page)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["vera.sidorova@example.org"]
    assert "Сидорова" not in message.body  # nothing personal beyond the address
    link = re.search(r"http://\S+/portal/verify/\S+/", message.body).group(0)
    assert link.startswith(live_server.url)

    # Signing in before confirming only sends a new link.
    sign_in(page, "vera.sidorova@example.org")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    assert len(mail.outbox) == 2

    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email")
    assert_accessible(page)
    page.get_by_role("button", name="Confirm my email").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("status")).to_contain_text("Your email is confirmed.")
    assert_accessible(page)

    sign_in(page, "vera.sidorova@example.org")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Вера")
    expect(page.get_by_text("Given: Processing of personal and health data")).to_be_visible()
    console.assert_clean()


def test_a_used_verification_link_says_so_in_the_readers_language(live_server, page, console):
    patient = factories.make_patient(verified_email=False)
    token = make_email_verification_token(patient)
    services.email_verify(token=token)  # the link was already used once

    page.goto(reverse("accounts:verify_email", args=[token]))
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Confirm my email").click()
    assert answer.value.status == 400
    page.wait_for_load_state()
    # The reader's language (English here), not the one active when the view module loaded.
    assert "This link has already been used." in page.get_by_role("alert").inner_text()
    expect(page.get_by_role("link", name="Go to sign in")).to_be_visible()
    assert_accessible(page)
    console.assert_clean()


def test_reception_verifies_the_identity_a_patient_entered(live_server, page, console, new_page):
    patient = factories.make_patient(first_name="Ольга", last_name="Кузнецова")
    reception = factories.make_staff(Role.RECEPTION)
    snils = factories.valid_snils()

    # The patient enters the documents.
    sign_in(page, patient.email)
    page.get_by_role("navigation").get_by_role("link", name="Identity documents").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Identity documents")
    expect(page.get_by_text("Not verified yet.")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("SNILS").fill(snils)
    page.get_by_label("Passport series and number").fill("4510 123456")
    page.get_by_role("button", name="Save documents").click()
    expect(page.get_by_role("status")).to_contain_text("Your documents are saved.")
    expect(page.get_by_text("Waiting for reception to verify your documents.")).to_be_visible()
    assert_accessible(page)

    # Reception, in another browser (Russian, like the reception account), finds the
    # patient by SNILS and verifies the documents.
    desk = new_page(locale="ru-RU")
    sign_in_staff(desk, reception, lang="ru")
    expect(desk.get_by_role("heading", level=1)).to_have_text("Рабочее место")
    expect(desk.locator("main .lead")).to_contain_text("Регистратура")
    waiting = desk.get_by_role("region", name="Ожидают проверки личности")
    expect(waiting.get_by_role("link", name=re.compile("Кузнецова"))).to_have_count(1)
    assert_accessible(desk)

    find = desk.get_by_role("region", name="Найти пациента")
    find.get_by_label("СНИЛС, паспорт или электронная почта").fill(snils)
    find.get_by_role("button", name="Найти").click()
    expect(desk.get_by_role("heading", level=1)).to_have_text("Пациенты")
    result = desk.get_by_role("region", name="Результат")
    expect(result).to_contain_text("Кузнецова")
    expect(result).to_contain_text("личность не подтверждена")
    assert_accessible(desk)
    result.get_by_role("link", name="Проверка личности").click()

    expect(desk.get_by_role("heading", level=1)).to_have_text("Проверка личности")
    expect(desk.locator("main dl")).to_contain_text(snils)
    expect(desk.locator("main dl")).to_contain_text("4510 123456")
    assert_accessible(desk)
    method = desk.get_by_role("group", name="Как проверены документы?")
    verify = desk.get_by_role("button", name="Отметить личность как подтверждённую")
    verify.click()  # no method chosen: a clear error, nothing verified
    expect(desk.get_by_role("alert").filter(has_text="Проверьте введённые данные")).to_be_visible()
    expect(method.get_by_role("radio").first).to_have_attribute("aria-invalid", "true")
    assert_accessible(desk)
    method.get_by_label("Оригиналы документов проверены при личном визите").check()
    verify.click()
    expect(desk.get_by_role("status")).to_contain_text("Личность подтверждена.")
    expect(desk.get_by_text("Нет пациентов, ожидающих проверки личности.")).to_be_visible()
    assert_accessible(desk)

    # The patient sees it.
    page.reload()
    expect(page.locator("main .portal-status")).to_contain_text("Verified on")
    expect(page.locator("main .portal-status")).to_contain_text(
        "Original documents checked in person"
    )
    page.get_by_role("navigation").get_by_role("link", name="Home").click()
    expect(page.get_by_role("region", name="Identity")).to_contain_text("Verified")
    assert_accessible(page)
    console.assert_clean()


def test_patient_gives_and_withdraws_telemedicine_consent(live_server, page, console):
    patient = factories.make_patient()

    sign_in(page, patient.email)
    page.get_by_role("link", name="Review consents").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Consents")
    section = page.get_by_role("region", name="Telemedicine consultations")
    expect(section).to_contain_text("Not given")
    assert_accessible(page)

    section.get_by_role(
        "button", name=re.compile(r"^I have read it and agree\s*: Telemedicine consultations$")
    ).click()
    expect(page.get_by_role("status")).to_contain_text("Your decision is recorded.")
    section = page.get_by_role("region", name="Telemedicine consultations")
    expect(section).to_contain_text("Given on")
    assert_accessible(page)

    section.get_by_role(
        "button", name=re.compile(r"^Withdraw consent\s*: Telemedicine consultations$")
    ).click()
    expect(page.get_by_role("status")).to_contain_text("Your decision is recorded.")
    section = page.get_by_role("region", name="Telemedicine consultations")
    expect(section).to_contain_text("Withdrawn")
    expect(
        section.get_by_role("button", name=re.compile("^I have read it and agree"))
    ).to_be_visible()

    history = page.get_by_role("table", name="Your consent decisions, newest first")
    rows = history.get_by_role("row")
    # Header, then newest first: withdrawn, given (telemedicine), given at signup (health data).
    expect(rows).to_have_count(4)
    expect(rows.nth(1)).to_contain_text("Telemedicine consultations")
    expect(rows.nth(1)).to_contain_text("Withdrawn")
    expect(rows.nth(2)).to_contain_text("Telemedicine consultations")
    expect(rows.nth(2)).to_contain_text("Given")
    expect(rows.nth(3)).to_contain_text("Processing of personal and health data")
    assert_accessible(page)
    console.assert_clean()


@pytest.mark.parametrize("locale", ["ru-RU"])
def test_russian_patient_gets_the_portal_in_russian(live_server, page, console):
    patient = factories.make_patient(first_name="Анна", language="ru")

    page.goto(LOGIN)
    assert page.evaluate("() => document.documentElement.lang") == "ru"
    expect(page.get_by_role("heading", level=1)).to_have_text("Вход в портал пациента")
    assert_accessible(page)
    sign_in(page, patient.email, lang="ru")

    assert page.evaluate("() => document.documentElement.lang") == "ru"
    expect(page.get_by_role("heading", level=1)).to_have_text("Здравствуйте, Анна")
    expect(page.get_by_role("heading", name="Защитите свою учётную запись")).to_be_visible()
    expect(
        page.get_by_text("Дано: Обработка персональных данных и данных о здоровье")
    ).to_be_visible()
    expect(page.get_by_role("banner").get_by_role("button", name="Выйти")).to_be_visible()
    assert_accessible(page)
    console.assert_clean()
