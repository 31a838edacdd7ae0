"""Shared pieces of the dev launcher: settings, small process and file helpers."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DB_NAME = "clinic"
PG_SUPERUSER = "postgres"
# The server listens on a unix socket only; the port number just names the socket file.
PG_SOCKET_PORT = 5432
PG_SYSTEM_USER = "embedded_postgres"
DEFAULT_PORT = 8000
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# AF_UNIX paths are limited to 108 bytes on Linux (104 on BSD); stay below both.
_SUN_PATH_LIMIT = 100

Log = Callable[[str], None]


def _print(message: str) -> None:
    print(f"devrun: {message}", flush=True)


class ServiceError(RuntimeError):
    """An embedded server could not be started or reached."""


class Services(dict[str, str]):
    """`{"DATABASE_URL": ..., "REDIS_URL": ...}` plus the server pids (`.pids`)."""

    def __init__(self) -> None:
        super().__init__()
        self.pids: dict[str, int] = {}
        self.owned = False


# --- small helpers ------------------------------------------------------------------


def _alive(pid: int | None, create_time: float | None = None) -> bool:
    """True if `pid` runs (and, when given, was started at `create_time`)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.01
    except psutil.Error:
        return False


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _short_dir(preferred: Path, key: str) -> Path:
    """`preferred`, or a short directory under /tmp when a socket path would be too long."""
    if len(os.fsencode(str(preferred / f".s.PGSQL.{PG_SOCKET_PORT}"))) < _SUN_PATH_LIMIT:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"clinic-{key}-{digest}"


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float = 180.0) -> Iterator[None]:
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceError(f"timed out waiting for the lock {path}") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stop_process(pid: int, proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM `pid`, wait up to `timeout`, then SIGKILL. Reaps it when it is our child."""
    try:
        target = psutil.Process(pid)
        target.terminate()
    except psutil.Error:
        target = None
    try:
        if proc is not None:
            proc.wait(timeout=timeout)
        elif target is not None:
            target.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
        if proc is not None:
            proc.wait(timeout=5)
        elif target is not None:
            with contextlib.suppress(psutil.Error):
                target.wait(timeout=5)
