"""sekmet-fhir as the MIS in tests: a real FHIR R4 server on loopback (DESIGN.md).

It lives in its own virtualenv (`.local/sekmet-venv`) so its dependencies never mix with
the portal's. `ensure_installed()` creates it once (idempotent, a stamp file makes the
next call instant); `make partners` runs it ahead of the suite with
`python -m tests.mis.sekmet install`.

`SekmetServer` runs `sekmet serve -c settings.yaml` on 127.0.0.1 and a free port with
its data in a temporary directory, the simulator off and static bearer/basic auth on
(so the portal's client is tested with real credentials). The object *is* the base URL
(a `str`), with helpers for tests:

- `reset()` empties the store the way `sekmet reset` does (same SQLite tables), fast;
- `put(resource)` / `create(resource)` / `transaction(entries)` write over HTTP, so
  sekmet validates them as any MIS would;
- `inject_raw(resources)` stores resources *without* validation, through sekmet's own
  Store in its virtualenv: how a test gets a malformed resource into the MIS;
- `stop()` / `start()` take the MIS down and bring it back on the same port and data;
- `fixture(name)` reads a file of `../shared/fixtures/fhir-r4/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
SEKMET_VERSION = "0.1.1"
VENV = ROOT / ".local" / "sekmet-venv"
STAMP = VENV / f".installed-sekmet-fhir-{SEKMET_VERSION}"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "fhir-r4"
FHIR_JSON = "application/fhir+json"


def _python311() -> str:
    for name in ("python3.11",):
        found = shutil.which(name)
        if found:
            return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise RuntimeError("sekmet-fhir needs Python 3.11 (python3.11 not found)")


def ensure_installed() -> Path:
    """Install sekmet-fhir into its own virtualenv if missing; return its `sekmet`."""
    exe = VENV / "bin" / "sekmet"
    if STAMP.exists() and exe.exists():
        return exe
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / "sekmet-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers install once
        if STAMP.exists() and exe.exists():
            return exe
        if not (VENV / "bin" / "python").exists():
            subprocess.run([_python311(), "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                f"sekmet-fhir=={SEKMET_VERSION}",
            ],
            check=True,
        )
        STAMP.touch()
    return exe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """A base URL where nothing listens (the MIS is down)."""
    return f"http://127.0.0.1:{free_port()}/fhir"


# Run in sekmet's own virtualenv: store resources as they are, without validation.
_INJECT = """
import json, sys
from sekmet.fhir.store import Store
store = Store(sys.argv[1])
for resource in json.load(sys.stdin):
    store.update(resource, origin="internal")
"""

# The tables `sekmet reset` empties (sekmet.fhir.store.Store.reset).
_RESET_TABLES = ("resources", "versions", "idx", "notifications", "traffic", "runs")


class SekmetServer(str):
    """A running sekmet; the string value is its FHIR base URL."""

    token: str
    username: str
    password: str

    def __new__(cls, workdir: Path, port: int | None = None) -> SekmetServer:
        port = port or free_port()
        base_url = f"http://127.0.0.1:{port}/fhir"
        self = super().__new__(cls, base_url)
        self.base_url = base_url
        self.port = port
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.db_path = self.data_dir / "sekmet.db"
        self.settings_path = self.workdir / "settings.yaml"
        self.token = secrets.token_urlsafe(24)
        self.username = "portal"
        self.password = secrets.token_urlsafe(16)
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "sekmet.log"
        self._write_settings()
        return self

    # --- lifecycle -------------------------------------------------------------------

    def _write_settings(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "base_url": self.base_url,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(self.data_dir),
            "simulator": {"enabled": False},
            "log_inbound": False,
            "server_auth": {
                "types": ["bearer", "basic"],
                "tokens": [self.token],
                "users": {self.username: self.password},
            },
            "own_private_key_path": str(self.workdir / "keys" / "sekmet_private.pem"),
        }
        # JSON is YAML: no YAML library needed on the portal's side.
        self.settings_path.write_text(json.dumps(settings, indent=2))

    def start(self, timeout: float = 60.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        exe = ensure_installed()
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process
        self.process = subprocess.Popen(
            [str(exe), "serve", "-c", str(self.settings_path)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "SEKMET_CONFIG": str(self.settings_path)},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sekmet exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base_url}/metadata", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sekmet did not answer /metadata: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- configuration for the portal -----------------------------------------------------

    def django_settings(self, auth: str = "bearer") -> dict[str, Any]:
        """Settings that point the portal's client at this server."""
        return {
            "MIS_FHIR_BASE_URL": self.base_url,
            "MIS_FHIR_AUTH": auth,
            "MIS_FHIR_TOKEN": self.token,
            "MIS_FHIR_USERNAME": self.username,
            "MIS_FHIR_PASSWORD": self.password,
            "MIS_FHIR_TIMEOUT_SECONDS": 5.0,
        }

    # --- data ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty the store, as `sekmet reset --yes` does (its tables, same file)."""
        import sqlite3

        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in _RESET_TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            conn.execute("COMMIT")
        finally:
            conn.close()

    def session(self) -> requests.Session:
        s = requests.Session()
        s.headers.update(
            {
                "Authorization": f"Bearer {self.token}",
                "Accept": FHIR_JSON,
                "Content-Type": FHIR_JSON,
                "X-Sekmet-Simulate": "off",
            }
        )
        return s

    def _check(self, response: requests.Response) -> dict:
        if response.status_code >= 400:
            raise AssertionError(
                f"sekmet {response.request.method} {response.url}: "
                f"{response.status_code} {response.text[:1000]}"
            )
        return response.json() if response.content else {}

    def put(self, resource: dict) -> dict:
        """Create or update with the resource's own id (validated by sekmet)."""
        url = f"{self.base_url}/{resource['resourceType']}/{resource['id']}"
        with self.session() as s:
            return self._check(s.put(url, json=resource, timeout=30))

    def create(self, resource: dict) -> dict:
        with self.session() as s:
            return self._check(
                s.post(f"{self.base_url}/{resource['resourceType']}", json=resource, timeout=30)
            )

    def delete(self, resource_type: str, resource_id: str) -> None:
        with self.session() as s:
            self._check(s.delete(f"{self.base_url}/{resource_type}/{resource_id}", timeout=30))

    def read(self, resource_type: str, resource_id: str) -> dict:
        with self.session() as s:
            return self._check(s.get(f"{self.base_url}/{resource_type}/{resource_id}", timeout=30))

    def search(self, resource_type: str, **params: str) -> dict:
        with self.session() as s:
            return self._check(s.get(f"{self.base_url}/{resource_type}", params=params, timeout=30))

    def transaction(self, resources: list[dict]) -> dict:
        """PUT every resource (with its id) in one transaction Bundle."""
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"{self.base_url}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in resources
            ],
        }
        with self.session() as s:
            return self._check(s.post(self.base_url, json=bundle, timeout=120))

    def inject_raw(self, resources: list[dict]) -> None:
        """Store resources without any validation (sekmet's Store, in its own venv)."""
        subprocess.run(
            [str(VENV / "bin" / "python"), "-c", _INJECT, str(self.db_path)],
            input=json.dumps(resources).encode(),
            check=True,
            timeout=60,
        )

    @staticmethod
    def fixture(name: str) -> dict:
        """A file of ../shared/fixtures/fhir-r4 (e.g. "hl7-r4-examples/patient-example.json")."""
        return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@contextlib.contextmanager
def running_sekmet():
    """Start a sekmet in a temporary directory; stop it and remove the directory after."""
    workdir = Path(tempfile.mkdtemp(prefix="sekmet-"))
    server = SekmetServer(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":  # `python -m tests.mis.sekmet install` (make partners)
    if sys.argv[1:] == ["install"]:
        print(ensure_installed())  # noqa: T201
    elif sys.argv[1:] == ["serve"]:
        with running_sekmet() as srv:
            print(f"sekmet at {srv} (token {srv.token}); Ctrl-C to stop")  # noqa: T201
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    else:
        sys.exit("usage: python -m tests.mis.sekmet install|serve")
