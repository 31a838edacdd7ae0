"""`make run`: migrate, load the demo data, run web + worker + beat until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from clinic.devrun.common import (
    BASE_DIR,
    DEFAULT_PORT,
    STOP_TIMEOUT,
    ServiceError,
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


def _banner(url: str, services: dict[str, str], accounts: str) -> str:
    lines = ["", "=" * 72, f"  Clinic portal: {url}", ""]
    for key in ("DATABASE_URL", "REDIS_URL"):
        origin = "embedded" if key in services else "from the environment"
        lines.append(f"  {key} ({origin}): {_redact(os.environ.get(key, services.get(key, '')))}")
    lines.append("")
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
            width = max(len(c.name) for c in children)
            for child in children:
                child.start(env, width)
                started.append(child)
            url = f"http://127.0.0.1:{port}/"
            if _wait_for_port(port, signals, children, timeout=90):
                print(_banner(url, services, accounts), flush=True)
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
