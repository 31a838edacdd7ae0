"""The harness itself, and the shared layout: skip link, axe, CSP, language switch."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from django import forms
from django.template import engines
from django.template.loader import get_template
from django.test import RequestFactory
from django.utils import translation

from tests.e2e.harness import (
    ConsoleWatcher,
    assert_accessible,
    axe_violations,
    tab_to_first_focusable,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO / "templates"
LOGIN = "/accounts/login/"


def html_lang(page) -> str:
    return page.evaluate("() => document.documentElement.lang")


def test_login_page_layout_is_accessible_and_csp_clean(live_server, page, console):
    page.goto(LOGIN)

    assert html_lang(page) == "en"
    first = tab_to_first_focusable(page)
    assert first == {"tag": "a", "text": "Skip to main content", "href": "#main"}
    # The skip link is visible while focused, and following it lands in <main>.
    assert page.get_by_role("link", name="Skip to main content").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"

    for landmark in ("banner", "navigation", "main", "contentinfo"):
        assert page.get_by_role(landmark).count() >= 1, landmark
    assert_accessible(page)
    console.assert_clean()


def test_login_errors_are_announced_and_tied_to_fields(live_server, page, console):
    page.goto(LOGIN)
    page.locator("main form").first.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()

    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    assert summary.is_visible()
    # portal.js moves focus to the error summary.
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.matches('.portal-error-summary')"
    )
    invalid = page.locator("main [aria-invalid='true']")
    assert invalid.count() >= 1
    for i in range(invalid.count()):
        described = invalid.nth(i).get_attribute("aria-describedby") or ""
        error_ids = [d for d in described.split() if d.endswith("_error")]
        assert error_ids, f"field {i} has no error in aria-describedby"
        for error_id in error_ids:
            assert "Error:" in page.locator(f"[id='{error_id}']").inner_text()
    assert_accessible(page)
    console.assert_clean()


def test_language_switcher_changes_to_russian(live_server, page, console):
    page.goto(LOGIN)
    assert html_lang(page) == "en"

    page.get_by_label("Language").select_option("ru")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()

    assert page.url.endswith(LOGIN)
    assert html_lang(page) == "ru"
    assert page.get_by_role("link", name="Перейти к основному содержанию").count() == 1
    assert page.get_by_label("Язык").input_value() == "ru"
    # The choice sticks on the next page load.
    page.reload()
    assert html_lang(page) == "ru"
    assert_accessible(page)
    console.assert_clean()


@pytest.mark.parametrize("locale", ["ru-RU"])
def test_locale_fixture_sets_accept_language(live_server, page):
    page.goto(LOGIN)
    assert html_lang(page) == "ru"


def test_not_found_page_uses_the_layout(live_server, page, console):
    response = page.goto("/no-such-page/")
    assert response is not None and response.status == 404
    assert page.get_by_role("heading", level=1, name="Page not found").is_visible()
    assert tab_to_first_focusable(page)["text"] == "Skip to main content"
    assert_accessible(page)
    console.assert_clean()


def test_htmx_is_configured_for_csp_and_reports_failures(live_server, page, console):
    page.goto(LOGIN)
    config = page.evaluate(
        """() => ({
          history: htmx.config.historyCacheSize,
          styles: htmx.config.includeIndicatorStyles,
          eval: htmx.config.allowEval,
        })"""
    )
    # No page snapshots with health data in localStorage; nothing the CSP would block.
    assert config == {"history": 0, "styles": False, "eval": False}

    seen = {}

    def fail(route):
        seen["csrf"] = route.request.headers.get("x-csrftoken")
        route.fulfill(status=500, body="failure")

    page.route("**/htmx-probe/", fail)
    page.evaluate(
        """() => {
          const button = document.createElement("button");
          button.id = "probe";
          button.type = "button";
          button.textContent = "Probe";
          button.setAttribute("hx-post", "/htmx-probe/");
          document.querySelector("main").appendChild(button);
          htmx.process(button);
        }"""
    )
    page.click("#probe")
    alert = page.locator("#messages [role='alert']")
    alert.wait_for()
    assert alert.inner_text().startswith("Error:")
    assert alert.locator("svg[aria-hidden='true']").count() == 1
    assert seen["csrf"]  # hx-headers on <body> sends the CSRF token
    console.assert_clean(allow=("htmx-probe", "htmx:responseError"))
    console.clear()


# --- The checks can fail -------------------------------------------------------------------


def test_axe_check_fails_on_a_known_violation(page):
    page.set_content(
        '<!DOCTYPE html><html lang="en"><head><title>Broken</title></head>'
        '<body><main><h1>Broken</h1><img src="x.png"><input type="text"></main></body></html>'
    )
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page)
    message = str(failure.value)
    assert "image-alt" in message and "label" in message
    assert "img" in message and "input" in message  # the offending nodes are named
    # Restricting the check to a clean region passes.
    page.set_content(
        '<!DOCTYPE html><html lang="en"><head><title>Mixed</title></head><body><main>'
        '<h1>Mixed</h1><div id="ok"><p>Fine</p></div><img src="x.png"></main></body></html>'
    )
    assert_accessible(page, "#ok")
    assert {v["id"] for v in axe_violations(page)} >= {"image-alt"}


def test_console_watcher_catches_csp_violations_and_errors(page, console: ConsoleWatcher):
    policy = "default-src 'self'; script-src 'self'; style-src 'self'"
    body = (
        '<!DOCTYPE html><html lang="en"><head><title>CSP</title></head><body>'
        '<p style="color: red">inline style</p>'
        "<script>document.title = 'inline ran';</script>"
        "</body></html>"
    )
    page.route(
        "http://csp.invalid/",
        lambda route: route.fulfill(
            status=200,
            body=body,
            headers={"Content-Type": "text/html", "Content-Security-Policy": policy},
        ),
    )
    page.goto("http://csp.invalid/")
    assert page.title() == "CSP"  # the inline script was blocked
    page.evaluate("() => setTimeout(() => { throw new Error('boom from the page'); }, 0)")
    page.wait_for_timeout(200)

    with pytest.raises(AssertionError) as failure:
        console.assert_clean()
    message = str(failure.value)
    assert "CSP violation" in message
    assert "boom from the page" in message
    console.clear()  # so the page fixture's own check passes


# --- Templates: CSP rules and partials, checked without a server ---------------------------


def test_templates_have_no_inline_script_or_style():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>")
    problems = []
    for template in TEMPLATES_DIR.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        rel = template.relative_to(TEMPLATES_DIR)
        if re.search(r"\sstyle\s*=", text):
            problems.append(f"{rel}: style attribute")
        if re.search(r"<style[\s>]", text):
            problems.append(f"{rel}: <style> element")
        if inline_script.search(text):
            problems.append(f"{rel}: inline <script>")
        if re.search(r"\son[a-z]+\s*=\s*[\"']", text):
            problems.append(f"{rel}: inline event handler")
        for tag in re.findall(r"<script\b[^>]*\bsrc=[^>]*>", text):
            if "nonce=" not in tag and not str(rel).startswith("500"):
                problems.append(f"{rel}: <script src> without nonce: {tag}")
    assert not problems, "\n".join(problems)


def test_vendored_files_match_versions_txt():
    lines = (REPO / "static/vendor/VERSIONS.txt").read_text().splitlines()
    entries = [line.split() for line in lines if line and not line.startswith("#")]
    assert {e[0] for e in entries} == {"bootstrap", "htmx.org", "axe-core", "livekit-client"}
    for _name, _version, digest, path in entries:
        assert hashlib.sha256((REPO / path).read_bytes()).hexdigest() == digest, path
    # Every vendored asset base.html links to exists.
    base = (TEMPLATES_DIR / "base.html").read_text()
    for ref in re.findall(r"{% static '(vendor/[^']+)' %}", base):
        assert (REPO / "static" / ref).is_file(), ref


def test_500_page_renders_without_a_request():
    html = get_template("500.html").render()
    assert "Something went wrong" in html or "Что-то пошло не так" in html
    assert "/static/css/portal.css" in html


class _SampleForm(forms.Form):
    email = forms.EmailField(label="Email", help_text="We never share it.")
    phone = forms.CharField(label="Phone", required=False)
    agree = forms.BooleanField(label="I agree")
    visit = forms.ChoiceField(
        label="Visit type",
        choices=[("clinic", "At the clinic"), ("video", "Video")],
        widget=forms.RadioSelect,
        help_text="Choose one.",
    )

    def clean(self):
        raise forms.ValidationError("Please check the form.")


def _render_sample_form(data) -> str:
    with translation.override("en"):
        form = _SampleForm(data=data)
        form.is_valid()
    template = engines["django"].from_string(
        '{% load i18n %}<!DOCTYPE html><html lang="en"><head><title>Form</title></head>'
        "<body><main><h1>Form</h1><form method=\"post\">{% include '_form_errors.html' %}"
        "{% for field in form %}{% include '_field.html' %}{% endfor %}"
        '<button type="submit">Send</button></form></main></body></html>'
    )
    with translation.override("en"):
        return template.render({"form": form}, RequestFactory().get("/"))


def test_field_partial_ties_help_and_errors_to_controls(page):
    html = _render_sample_form({"email": "not-an-email", "phone": ""})
    page.set_content(html)

    email = page.get_by_label("Email")
    assert email.get_attribute("aria-invalid") == "true"
    assert email.get_attribute("aria-describedby") == "id_email_helptext id_email_error"
    assert page.locator("#id_email_helptext").inner_text() == "We never share it."
    assert page.locator("#id_email_error").inner_text().startswith("Error:")
    assert page.get_by_label("Phone (optional)").count() == 1
    assert page.get_by_label("I agree").get_attribute("aria-invalid") == "true"
    group = page.get_by_role("group", name="Visit type")
    assert group.get_attribute("aria-describedby") == "id_visit_helptext id_visit_error"
    summary = page.get_by_role("alert")
    assert "Please check the form." in summary.inner_text()
    assert summary.get_by_role("link", name=re.compile("^Email:")).get_attribute("href") == (
        "#id_email"
    )
    assert_accessible(page)
