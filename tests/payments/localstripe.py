"""localstripe, the stateful fake Stripe, as a test partner on loopback.

    from tests.payments.localstripe import localstripe, localstripe_server  # noqa: F401

    def test_pay(localstripe):          # settings point at it; its data is empty
        token = localstripe.create_token("4242424242424242")
        ...

Fixtures:
  localstripe_server  session   one server per test process (per xdist worker), started
                                from .local/localstripe-venv, installed there first if
                                missing (pinned in tests/payments/partners.txt)
  localstripe         function  the same server, emptied before and after the test
                                (objects, idempotency keys, webhook endpoints, deliveries
                                not yet sent), with STRIPE_* settings pointing at it

`make partners` (or `python -m tests.payments.localstripe install`) installs it ahead of
the tests. What our launcher adds to localstripe is listed in _localstripe_app.py.
This module imports nothing from Django at import time, so `make partners` runs without
settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = ROOT / ".local" / "localstripe-venv"
REQUIREMENTS = HERE / "partners.txt"
LAUNCHER = HERE / "_localstripe_app.py"

# localstripe accepts any key of the right shape; these are ours for the tests.
SECRET_KEY = "sk_test_localstripe"
PUBLISHABLE_KEY = "pk_test_localstripe"
WEBHOOK_SECRET = "whsec_localstripe_portal_tests"  # noqa: S105

START_TIMEOUT = 30.0


class LocalStripeError(RuntimeError):
    pass


# --- installation -------------------------------------------------------------------------


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _stamp() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    return VENV / f".partners-{digest}.stamp"


def _base_python() -> str:
    # The portal runs on 3.11; the partner's virtualenv uses the same interpreter.
    return shutil.which("python3.11") or getattr(sys, "_base_executable", "") or sys.executable


def ensure_installed() -> Path:
    """Create .local/localstripe-venv and install the pinned localstripe, once: a stamp
    named after partners.txt's hash skips the work on later runs, a file lock keeps
    parallel test processes from installing at the same time."""
    python = _venv_python()
    if _stamp().exists() and python.exists():
        return python
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / "localstripe-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp().exists() and python.exists():
            return python
        if (
            not python.exists()
            or subprocess.run(  # a broken venv: start over
                [str(python), "-c", "import sys"], capture_output=True, check=False
            ).returncode
        ):
            subprocess.run([_base_python(), "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-input",
                "--disable-pip-version-check",
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
        )
        for old in VENV.glob(".partners-*.stamp"):
            old.unlink()
        _stamp().touch()
    return python


# --- the server ------------------------------------------------------------------------------


class LocalStripeServer:
    """A running localstripe and the few calls tests make to it directly."""

    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    # What the portal's settings need.
    @property
    def api_base(self) -> str:
        return self.url

    @property
    def js_url(self) -> str:
        return f"{self.url}/js.stripe.com/v3/"

    def settings(self) -> dict[str, str]:
        return {
            "STRIPE_API_BASE": self.api_base,
            "STRIPE_JS_URL": self.js_url,
            "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }

    # HTTP
    def request(
        self, method: str, path: str, data: dict[str, Any] | None = None, *, auth: bool = True
    ) -> tuple[int, Any]:
        body = None
        headers = {"Accept": "application/json"}
        if data is not None:
            body = urllib.parse.urlencode(_flatten(data)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth:
            headers["Authorization"] = f"Bearer {SECRET_KEY}"
        request = urllib.request.Request(  # noqa: S310 - loopback http
            self.url + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def _ok(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        status, body = self.request(method, path, data)
        if not 200 <= status < 300:
            raise LocalStripeError(f"{method} {path}: {status} {body}")
        return body

    # Test controls
    def reset(self) -> None:
        """Forget every object, idempotency key, webhook endpoint and unsent delivery."""
        self._ok("DELETE", "/_config/webhooks")
        self._ok("DELETE", "/_config/data")

    def register_webhook(
        self,
        url: str,
        *,
        secret: str = WEBHOOK_SECRET,
        events: list[str] | None = None,
        name: str = "portal",
    ) -> None:
        data: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            data["events"] = events
        self._ok("POST", f"/_config/webhooks/{name}", data)

    def events(self, *, types: tuple[str, ...] | None = None) -> list[dict]:
        """Every event localstripe produced since the last reset, oldest first."""
        listed = self._ok("GET", "/v1/events?limit=1000")["data"]
        chosen = [e for e in listed if types is None or e["type"] in types]
        return sorted(chosen, key=lambda e: e["created"])

    def create_token(
        self, number: str, *, exp_month: str = "12", exp_year: str = "2034", cvc: str = "123"
    ) -> dict:
        """What localstripe's Stripe.js createToken() does: card details with the
        publishable key, no secret key."""
        data = {
            "card": {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc},
            "key": PUBLISHABLE_KEY,
        }
        status, body = self.request("POST", "/v1/tokens", data, auth=False)
        if status != 200:
            raise LocalStripeError(f"create token: {status} {body}")
        return body

    def authenticate(self, intent_id: str, client_secret: str, *, success: bool) -> dict:
        """What localstripe's Stripe.js confirmCardPayment() does after its 3-D Secure
        dialog."""
        data = {"key": PUBLISHABLE_KEY, "client_secret": client_secret}
        status, body = self.request(
            "POST",
            f"/v1/payment_intents/{intent_id}/_authenticate?success={str(success).lower()}",
            data,
            auth=False,
        )
        if status != 200:
            raise LocalStripeError(f"authenticate: {status} {body}")
        return body

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        with contextlib.suppress(OSError):
            self.log.unlink()


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: card[number]=..., events[0]=..."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs.extend(_flatten(value, name))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    pairs.extend(_flatten(item, f"{name}[{index}]"))
                else:
                    pairs.append((f"{name}[{index}]", str(item)))
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif value is not None:
            pairs.append((name, str(value)))
    return pairs


def start_localstripe() -> LocalStripeServer:
    python = ensure_installed()
    log_fd, log_name = tempfile.mkstemp(prefix="localstripe-", suffix=".log")
    log = Path(log_name)
    process = subprocess.Popen(
        [str(python), "-I", str(LAUNCHER)],
        stdout=subprocess.PIPE,
        stderr=log_fd,
        stdin=subprocess.DEVNULL,
        cwd=str(VENV),
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
    )
    os.close(log_fd)
    deadline = time.monotonic() + START_TIMEOUT
    line = b""
    assert process.stdout is not None
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
        elif process.poll() is not None:
            break
    text = line.decode(errors="replace").strip()
    if not text.startswith("LOCALSTRIPE_PORT="):
        process.kill()
        process.wait(timeout=10)
        raise LocalStripeError(f"localstripe did not start: {log.read_text()[-2000:]}")
    server = LocalStripeServer(process, int(text.split("=", 1)[1]), log)
    # Listening already (the port is printed after bind); make sure it answers.
    while True:
        try:
            server.request("GET", "/js.stripe.com/v3/", auth=False)
            break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.1)
    return server


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[LocalStripeServer]:
    server = start_localstripe()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def localstripe(localstripe_server: LocalStripeServer, settings) -> Iterator[LocalStripeServer]:  # noqa: ANN001
    """The server, empty, with the portal's STRIPE_* settings pointing at it."""
    localstripe_server.reset()
    for name, value in localstripe_server.settings().items():
        setattr(settings, name, value)
    try:
        yield localstripe_server
    finally:
        localstripe_server.reset()


if __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        print(f"localstripe: {ensure_installed()}")  # noqa: T201
    else:
        sys.exit("usage: python -m tests.payments.localstripe install")
