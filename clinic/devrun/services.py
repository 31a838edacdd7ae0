"""`ensure_services`: start or reuse the embedded servers, shared between processes."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from clinic.devrun.common import (
    BASE_DIR,
    DB_NAME,
    STOP_TIMEOUT,
    Log,
    ServiceError,
    Services,
    _alive,
    _create_time,
    _file_lock,
    _print,
    _short_dir,
    _stop_process,
)
from clinic.devrun.postgres import (
    EmbeddedPostgres,
)
from clinic.devrun.valkey import (
    EmbeddedValkey,
)

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
