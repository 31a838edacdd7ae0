"""Browser-test harness: Chromium via Playwright, axe-core checks, console/CSP watching.

Used by the fixtures in ``tests/e2e/conftest.py``; the helpers can be imported directly:

    from tests.e2e.harness import assert_accessible, watch_console

See docs/frontend.md ("Writing an e2e journey").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
AXE_PATH = Path(__file__).resolve().parent.parent / "vendor" / "axe.min.js"
# Impacts that fail a test. "moderate" and "minor" findings are printed by
# axe_violations() but do not fail assert_accessible().
FAILING_IMPACTS = ("serious", "critical")
DEFAULT_TIMEOUT_MS = 15_000

CSP_MARKERS = ("Content Security Policy", "Refused to")


def launch_browser(playwright: Playwright, *, headless: bool = True) -> Browser:
    """Start Debian's Chromium (Playwright's own browser builds cannot be downloaded here)."""
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package "
            "or set E2E_CHROMIUM to its path"
        )
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=headless, args=CHROMIUM_ARGS
    )


# --- Accessibility: axe-core ------------------------------------------------------------


@cache
def _axe_source() -> str:
    return AXE_PATH.read_text(encoding="utf-8")


def _inject_axe(page: Page) -> None:
    # page.evaluate() runs through the DevTools protocol, which the page's CSP does not
    # govern; add_script_tag() would insert a <script> that the strict CSP blocks (and
    # that would show up as a CSP violation). The browser context keeps its CSP.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())


_AXE_RUN = """
async ([context, options]) => {
  const results = await window.axe.run(context || document, options);
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({
      target: n.target.map(String).join(" "),
      html: n.html,
      summary: n.failureSummary,
    })),
  }));
}
"""


def axe_violations(
    page: Page,
    context: str | dict[str, Any] | None = None,
    *,
    options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run axe-core on the page (or on ``context``: a CSS selector or an axe context
    object such as ``{"exclude": [["#map"]]}``) and return every violation."""
    _inject_axe(page)
    run_options = {"resultTypes": ["violations"]}
    run_options.update(options or {})
    return page.evaluate(_AXE_RUN, [context, run_options])


def format_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"]:
            lines.append(f"    at {node['target']}")
            lines.append(f"       {node['html'][:200]}")
            if node.get("summary"):
                for summary_line in node["summary"].splitlines():
                    lines.append(f"       {summary_line}")
    return "\n".join(lines)


def assert_accessible(
    page: Page,
    context: str | dict[str, Any] | None = None,
    *,
    options: dict[str, Any] | None = None,
    impacts: tuple[str, ...] = FAILING_IMPACTS,
) -> list[dict[str, Any]]:
    """Fail if axe-core finds a violation with a serious or critical impact.

    ``context`` limits the check to part of the page (CSS selector or axe context);
    ``options`` go to ``axe.run`` (for example ``{"rules": {"color-contrast":
    {"enabled": False}}}`` — say why in the test if you ever do that).
    Returns all violations (including minor ones) for further assertions.
    """
    violations = axe_violations(page, context, options=options)
    failing = [v for v in violations if v["impact"] in impacts]
    if failing:
        raise AssertionError(
            f"axe-core found {len(failing)} accessibility violation(s) on {page.url}:\n"
            + format_violations(failing)
        )
    return violations


# --- Console errors and CSP violations --------------------------------------------------

# Installed before any page script: records securitypolicyviolation events, which also
# catch violations that Chromium reports without a console line.
_CSP_LISTENER = """
(() => {
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    const where = `${e.sourceFile || e.documentURI}:${e.lineNumber}`;
    window.__cspViolations.push(
      `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`
    );
  });
})();
"""


@dataclass
class ConsoleWatcher:
    """Collects console errors, uncaught page errors and CSP violations of one page."""

    page: Page
    errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def _on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        where = message.location.get("url", "") if message.location else ""
        entry = f"{text} ({where})" if where else text
        if text.startswith("Failed to load resource") and where == self.page.url:
            # The document itself answered with an error status (a 404 page under
            # test): the test checks the status; only failing sub-resources count.
            return
        if any(marker in text for marker in CSP_MARKERS):
            self.csp_violations.append(entry)
        elif message.type == "error":
            self.errors.append(entry)
        elif message.type == "warning":
            self.warnings.append(entry)

    def _on_page_error(self, error: Exception) -> None:
        self.page_errors.append(str(error))

    def _dom_csp_violations(self) -> list[str]:
        if self.page.is_closed():
            return []
        try:
            return self.page.evaluate("() => window.__cspViolations || []")
        except Exception:  # noqa: BLE001 - page navigating or gone: nothing to read
            return []

    def problems(self) -> list[str]:
        """Every problem seen so far, one line each."""
        csp = list(self.csp_violations)
        for violation in self._dom_csp_violations():
            if not any(violation in seen for seen in csp):
                csp.append(violation)
        return (
            [f"CSP violation: {c}" for c in csp]
            + [f"console error: {e}" for e in self.errors]
            + [f"page error: {e}" for e in self.page_errors]
        )

    def assert_clean(self, *, allow: tuple[str, ...] = ()) -> None:
        """Fail on any CSP violation, console error or uncaught exception, except lines
        containing one of the ``allow`` substrings (for an error the test provokes)."""
        problems = [p for p in self.problems() if not any(a in p for a in allow)]
        if problems:
            raise AssertionError(
                f"The browser reported {len(problems)} problem(s) on {self.page.url}:\n  "
                + "\n  ".join(problems)
            )

    def clear(self) -> None:
        self.errors.clear()
        self.csp_violations.clear()
        self.page_errors.clear()
        self.warnings.clear()
        if not self.page.is_closed():
            self.page.evaluate("() => { window.__cspViolations = []; }")


def watch_console(page: Page) -> ConsoleWatcher:
    """Start collecting the page's console errors and CSP violations.

    Call before the first ``page.goto``: the DOM listener is an init script, installed
    for every later navigation.
    """
    watcher = ConsoleWatcher(page)
    page.on("console", watcher._on_console)
    page.on("pageerror", watcher._on_page_error)
    page.add_init_script(_CSP_LISTENER)
    return watcher


def tab_to_first_focusable(page: Page) -> dict[str, str]:
    """Press Tab once and describe the focused element (tag, text, href).

    Call it right after ``page.goto``, before anything else moves focus: the result is
    then the first focusable element of the page.
    """
    page.keyboard.press("Tab")
    return page.evaluate(
        """() => {
          const el = document.activeElement;
          return {
            tag: el ? el.tagName.toLowerCase() : "",
            text: el ? (el.innerText || el.value || "").trim() : "",
            href: el && el.getAttribute("href") ? el.getAttribute("href") : "",
          };
        }"""
    )
