"""The embedded PostgreSQL + Valkey of the dev launcher (clinic.devrun.ensure_services).

Starts real servers in a scratch directory (not the project's .local/), once for the
module; the whole module takes a few seconds (a fresh initdb is the slow part).
No Django database fixtures: the tests talk to the servers directly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from psycopg import sql

from clinic.devrun import ensure_services

BUDGET_SECONDS = 30


@pytest.fixture(scope="module")
def scratch_dir():
    # Not pytest's tmp_path: as root the server runs as another user, which must be able
    # to traverse the directory, and pytest's base temp directory is private (0700).
    path = Path(tempfile.mkdtemp(prefix="clinic-devrun-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def services(scratch_dir):
    started = time.monotonic()
    with ensure_services(scratch_dir, log=None) as urls:
        elapsed = time.monotonic() - started
        assert elapsed < BUDGET_SECONDS, f"embedded services took {elapsed:.1f}s to start"
        yield urls


def test_urls_point_into_the_scratch_directory(services, scratch_dir):
    assert set(services) == {"DATABASE_URL", "REDIS_URL"}
    assert services["DATABASE_URL"].startswith("postgres://postgres@/clinic?host=/")
    socket_dir = services["DATABASE_URL"].split("?host=", 1)[1]
    assert "%2F" not in socket_dir  # django-environ does not decode it
    assert services["REDIS_URL"].startswith("redis://")
    assert (scratch_dir / ".local" / "pgdata" / "PG_VERSION").exists()
    assert services.owned


def test_settings_parse_the_database_url(services):
    import environ

    config = environ.Env.db_url_config(services["DATABASE_URL"])
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "clinic"
    assert os.path.isdir(config["OPTIONS"]["host"])


def test_postgres_answers_and_has_btree_gist(services):
    with psycopg.connect(services["DATABASE_URL"], autocommit=True, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.server_version >= 150000
        conn.execute("DROP DATABASE IF EXISTS scratch")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("scratch")))
    scratch_url = services["DATABASE_URL"].replace("/clinic?", "/scratch?")
    with psycopg.connect(scratch_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        installed = conn.execute(
            "SELECT 1 FROM pg_extension WHERE extname = 'btree_gist'"
        ).fetchone()
        assert installed == (1,)


def test_valkey_answers_ping(services):
    client = redis.Redis.from_url(services["REDIS_URL"], socket_timeout=5)
    try:
        assert client.ping() is True
        client.set("devrun-test", "1")
        assert client.get("devrun-test") == b"1"
    finally:
        client.close()


def test_a_second_caller_reuses_the_running_servers(services, scratch_dir):
    with ensure_services(scratch_dir, log=None) as again:
        assert dict(again) == dict(services)
        assert again.pids == services.pids
        assert not again.owned
    # Leaving the inner block must not stop the servers the outer one owns.
    assert psutil.pid_exists(services.pids["postgres"])
    assert psutil.pid_exists(services.pids["valkey"])


def test_servers_stop_on_exit_and_keep_their_data(scratch_dir, services):
    # A separate directory, so the module-scoped servers are untouched.
    path = Path(tempfile.mkdtemp(prefix="clinic-devrun-stop-", dir=scratch_dir))
    path.chmod(0o755)
    with ensure_services(path, log=None) as first:
        pids = dict(first.pids)
        with psycopg.connect(first["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
        client = redis.Redis.from_url(first["REDIS_URL"])
        client.set("kept", "still here")
        client.close()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(pid) for pid in pids.values()):
        time.sleep(0.1)
    assert not any(_running(pid) for pid in pids.values()), pids

    with ensure_services(path, log=None) as second:
        with psycopg.connect(second["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT value FROM kept").fetchone() == ("still here",)
        client = redis.Redis.from_url(second["REDIS_URL"])
        assert client.get("kept") == b"still here"
        client.close()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
