"""`make run`: migrate, load the demo data, run web + worker + beat until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from clinic.devrun.common import (
    BASE_DIR,
    DEFAULT_PORT,
    STOP_TIMEOUT,
    ServiceError,
    _free_port,
    _port_in_use,
    _print,
)
from clinic.devrun.services import (
    ensure_services,
)

# --- signals and child processes ------------------------------------------------------


class _Signals:
    """SIGINT/SIGTERM set a flag; the main loop polls it and shuts down in order."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.force = threading.Event()
        self.signum: int | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        if self.stop.is_set():
            self.force.set()
            return
        self.signum = signum
        self.stop.set()

    def sleep(self, seconds: float) -> bool:
        """Sleep; True when a stop was requested."""
        return self.stop.wait(seconds)


class Stopped(Exception):
    """A stop was requested (Ctrl-C / SIGTERM)."""


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    pump: threading.Thread | None = None

    def start(self, env: dict[str, str], width: int) -> None:
        self.proc = subprocess.Popen(  # noqa: S603
            self.argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the launcher, which stops us in order
        )
        prefix = f"{self.name:<{width}} | "
        self.pump = threading.Thread(target=self._pump, args=(prefix,), daemon=True)
        self.pump.start()

    def _pump(self, prefix: str) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            sys.stdout.write(prefix + line + "\n")
            sys.stdout.flush()

    def stop(self, force: threading.Event) -> None:
        """SIGTERM (Celery: warm shutdown), then SIGKILL what is left of its process tree."""
        proc = self.proc
        if proc is None:
            return
        try:
            tree = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline and not force.is_set():
            time.sleep(0.1)
        if proc.poll() is None:
            _print(f"{self.name} did not stop in time; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its group: leader not yet reaped
            proc.wait(timeout=5)
        for leftover in tree:
            with contextlib.suppress(psutil.Error):
                if leftover.is_running():
                    leftover.kill()
        if self.pump is not None:
            self.pump.join(timeout=2)


def _run_step(
    argv: list[str], env: dict[str, str], signals: _Signals, *, capture: bool = False
) -> tuple[int, str]:
    """Run a one-shot command (migrate, seed) in its own session; stop it on Ctrl-C."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(  # noqa: S603
            argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out if capture else None,
            stderr=None,
            start_new_session=True,
            text=True,
        )
        while proc.poll() is None:
            if signals.sleep(0.1):
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise Stopped
        out.seek(0)
        return proc.returncode, out.read() if capture else ""


def _load_dotenv() -> None:
    """Read `.env` like clinic/settings.py does (the environment wins)."""
    path = BASE_DIR / ".env"
    if path.is_file():
        import environ

        environ.Env.read_env(str(path), overwrite=False)


def _wait_for_port(port: int, signals: _Signals, children: list[Child], timeout: float) -> bool:
    """Wait until the web server accepts connections (not /healthz: it waits for the worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if signals.stop.is_set() or any(c.proc and c.proc.poll() is not None for c in children):
            return False
        if _port_in_use("127.0.0.1", port):
            return True
        time.sleep(0.2)
    return False


# --- the fake Stripe (localstripe) ----------------------------------------------------
# Without STRIPE_SECRET_KEY the demo's prepaid consultation type is paid through
# localstripe, the fake Stripe the payment tests use (tests/payments/localstripe.py,
# installed into its own virtualenv under .local/), with the keys those tests use.

FAKE_STRIPE_KEYS = {
    "STRIPE_SECRET_KEY": "sk_test_localstripe",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_localstripe",
    "STRIPE_WEBHOOK_SECRET": "whsec_localstripe_portal_tests",
}
FAKE_STRIPE_PORT = 8420
FAKE_STRIPE_VENV = BASE_DIR / ".local" / "localstripe-venv"
FAKE_STRIPE_APP = BASE_DIR / "tests" / "payments" / "_localstripe_app.py"
FAKE_STRIPE_CARDS = "4242 4242 4242 4242 pays, 4000 0000 0000 0341 is declined"
WEBHOOK_PATH = "/payments/stripe/webhook/"


def _fake_stripe_installed() -> bool:
    """The stamp tests/payments/localstripe.py leaves after installing partners.txt."""
    try:
        pinned = (BASE_DIR / "tests" / "payments" / "partners.txt").read_bytes()
    except OSError:
        return False
    digest = hashlib.sha256(pinned).hexdigest()
    stamp = FAKE_STRIPE_VENV / f".partners-{digest[:16]}.stamp"
    return stamp.exists() and (FAKE_STRIPE_VENV / "bin" / "python").exists()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as localstripe binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _fake_stripe_port(avoid: int) -> int:
    """8420, or the next free port after it (never the web port)."""
    for port in range(FAKE_STRIPE_PORT, FAKE_STRIPE_PORT + 100):
        if port != avoid and _bindable(port):
            return port
    return _free_port()


def _http(url: str, data: dict[str, str] | None = None) -> int:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body)  # noqa: S310 - loopback http
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return response.status


def start_fake_stripe(
    web_port: int, env: dict[str, str], signals: _Signals, width: int
) -> tuple[Child, dict[str, str]] | None:
    """Install localstripe when missing, start it as the `stripe` child on 127.0.0.1,
    wait until it answers and register the portal's webhook endpoint with it. Returns
    the child and the STRIPE_* variables for web/worker/beat, or None after a one-line
    warning (no registry to install from, the server died): the portal then runs
    without payments."""
    if not _fake_stripe_installed():
        _print(
            "installing localstripe (a local fake Stripe for the demo payments) into "
            ".local/localstripe-venv: python -m tests.payments.localstripe install"
        )
        install = [sys.executable, "-m", "tests.payments.localstripe", "install"]
        code, _ = _run_step(install, env, signals)
        if code != 0 or not _fake_stripe_installed():
            _print(
                f"warning: could not install localstripe (exit {code}); running without payments"
            )
            return None
    port = _fake_stripe_port(avoid=web_port)
    base = f"http://127.0.0.1:{port}"
    python = str(FAKE_STRIPE_VENV / "bin" / "python")
    # -I: its own site-packages only, and tests/payments/ off sys.path (see the app's
    # docstring); -u because -I ignores PYTHONUNBUFFERED: its lines reach the log now.
    child = Child("stripe", [python, "-u", "-I", str(FAKE_STRIPE_APP), "--port", str(port)])
    child.start(env, width)
    try:
        deadline = time.monotonic() + 30
        while True:
            if signals.stop.is_set():
                raise Stopped
            if child.proc is not None and child.proc.poll() is not None:
                raise ServiceError(f"it exited with code {child.proc.returncode}")
            with contextlib.suppress(OSError):
                if _http(f"{base}/js.stripe.com/v3/") == 200:
                    break
            if time.monotonic() > deadline:
                raise ServiceError(f"{base} did not answer within 30 s")
            time.sleep(0.2)
        webhook = f"http://127.0.0.1:{web_port}{WEBHOOK_PATH}"
        secret = FAKE_STRIPE_KEYS["STRIPE_WEBHOOK_SECRET"]
        try:
            _http(f"{base}/_config/webhooks/portal", {"url": webhook, "secret": secret})
        except OSError as exc:
            raise ServiceError(f"registering the webhook failed: {exc}") from exc
    except ServiceError as exc:
        child.stop(signals.force)
        _print(f"warning: localstripe did not start ({exc}); running without payments")
        return None
    except BaseException:
        child.stop(signals.force)
        raise
    stripe_env = {
        "STRIPE_API_BASE": base,
        "STRIPE_JS_URL": f"{base}/js.stripe.com/v3/",
        **FAKE_STRIPE_KEYS,
    }
    return child, stripe_env


def _payments(
    web_port: int, env: dict[str, str], signals: _Signals, width: int
) -> tuple[Child | None, list[str]]:
    """With STRIPE_SECRET_KEY: nothing to start. Without: the fake Stripe, its STRIPE_*
    added to `env`. Also the banner's lines about payments."""
    if env.get("STRIPE_SECRET_KEY"):
        return None, ["Stripe (STRIPE_SECRET_KEY from the environment)"]
    fake = start_fake_stripe(web_port, env, signals, width)
    if fake is None:
        return None, ["off (no STRIPE_SECRET_KEY, and localstripe did not start)"]
    child, stripe_env = fake
    env.update(stripe_env)
    return child, [
        f"a local fake Stripe (localstripe, {stripe_env['STRIPE_API_BASE']})",
        f"  test cards: {FAKE_STRIPE_CARDS}",
        "  (any future expiry date, any CVC; no real money moves)",
    ]


def _banner(url: str, services: dict[str, str], accounts: str, payments: list[str]) -> str:
    lines = ["", "=" * 72, f"  Clinic portal: {url}", ""]
    for key in ("DATABASE_URL", "REDIS_URL"):
        origin = "embedded" if key in services else "from the environment"
        lines.append(f"  {key} ({origin}): {_redact(os.environ.get(key, services.get(key, '')))}")
    lines.append(f"  Payments: {payments[0]}")
    lines += [f"  {line}" for line in payments[1:]] + [""]
    if accounts.strip():
        lines.extend("  " + line for line in accounts.rstrip().splitlines())
    else:
        lines.append("  (no demo accounts printed: `manage.py seed_demo --print-accounts` failed)")
    lines += ["", "  Ctrl-C stops everything.", "=" * 72, ""]
    return "\n".join(lines)


def _redact(url: str) -> str:
    """Hide a password in a URL (`redis://:secret@host` -> `redis://:***@host`)."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def run_portal(port: int, signals: _Signals) -> int:
    _load_dotenv()
    want_db = not os.environ.get("DATABASE_URL")
    want_redis = not os.environ.get("REDIS_URL")
    if _port_in_use("127.0.0.1", port):
        _print(f"port {port} is already in use; choose another one: make run PORT={port + 1}")
        return 2

    python = sys.executable
    manage = [python, str(BASE_DIR / "manage.py")]
    children = [
        Child("web", [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"]),
        Child("worker", [python, "-m", "celery", "-A", "clinic", "worker", "-l", "info",
                         "--concurrency", "2"]),
        Child("beat", [python, "-m", "celery", "-A", "clinic", "beat", "-l", "info"]),
    ]  # fmt: skip
    exit_code = 0
    started: list[Child] = []
    with ensure_services(BASE_DIR, database=want_db, redis=want_redis) as services:
        env = {**os.environ, **services, "PYTHONUNBUFFERED": "1"}
        # Links in emails point at the port this run serves, unless SITE_URL says otherwise.
        env.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
        env.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
        os.environ.update(services)  # so the banner shows them
        try:
            if signals.stop.is_set():
                raise Stopped
            _print("migrating the database")
            code, _ = _run_step([*manage, "migrate", "--noinput"], env, signals)
            if code != 0:
                _print(f"migrate failed (exit {code}); stopping")
                return 1
            _print("loading demo data (seed_demo)")
            code, _ = _run_step([*manage, "seed_demo"], env, signals)
            if code != 0:
                _print(f"seed_demo failed (exit {code}); continuing without demo data")
            code, accounts = _run_step(
                [*manage, "seed_demo", "--print-accounts"], env, signals, capture=True
            )
            if code != 0:
                accounts = ""
            width = max(len(name) for name in ["stripe", *(c.name for c in children)])
            stripe, payments = _payments(port, env, signals, width)
            if stripe is not None:
                started.append(stripe)  # first in, last out: it outlives web and worker
            for child in children:
                child.start(env, width)
                started.append(child)
            children = started  # the stripe child (if any) is watched like the others
            url = f"http://127.0.0.1:{port}/"
            if _wait_for_port(port, signals, children, timeout=90):
                print(_banner(url, services, accounts, payments), flush=True)
            elif not signals.stop.is_set():
                _print(f"{url} did not answer within 90 s; see the web log above")
            while not signals.sleep(0.3):
                dead = [c for c in children if c.proc and c.proc.poll() is not None]
                if dead:
                    for c in dead:
                        _print(f"{c.name} exited with code {c.proc.returncode}; stopping")
                    exit_code = 1
                    break
        except Stopped:
            pass
        finally:
            if signals.stop.is_set():
                _print("stopping (signal received)")
            for child in reversed(started):
                child.stop(signals.force)
    _print("stopped")
    return exit_code


def run_services_only(base_dir: Path, signals: _Signals) -> int:
    with ensure_services(base_dir) as services:
        for key, value in services.items():
            print(f"{key}={value}", flush=True)
        _print("services are running; Ctrl-C stops them")
        while not signals.sleep(1.0):
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clinic.devrun", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--services-only",
        action="store_true",
        help="start only the embedded PostgreSQL and Valkey, print their URLs and wait",
    )
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=BASE_DIR,
        help="with --services-only: keep the data in BASE_DIR/.local (default: the project)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or DEFAULT_PORT),
        help="web port on 127.0.0.1 (default: $PORT or 8000)",
    )
    args = parser.parse_args(argv)
    signals = _Signals()
    signals.install()
    try:
        if args.services_only:
            return run_services_only(args.base_dir, signals)
        return run_portal(args.port, signals)
    except ServiceError as exc:
        _print(f"error: {exc}")
        return 1
    except Stopped:
        return 0
