"""The embedded PostgreSQL + Valkey of the dev launcher (clinic.devrun.ensure_services),
and its fake Stripe (clinic.devrun.launcher.start_fake_stripe).

Starts real servers in a scratch directory (not the project's .local/), once for the
module; the whole module takes a few seconds (a fresh initdb is the slow part).
No Django database fixtures: the tests talk to the servers directly.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from psycopg import sql

from clinic.devrun import ensure_services
from clinic.devrun.common import _port_in_use
from clinic.devrun.launcher import (
    FAKE_STRIPE_KEYS,
    FAKE_STRIPE_PORT,
    _fake_stripe_installed,
    _fake_stripe_port,
    _payments,
    _Signals,
)
from payments.gateway import StripeGateway, stripe_value
from tests.payments import localstripe as partner

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


# --- the fake Stripe -------------------------------------------------------------------


class _WebhookSink(ThreadingHTTPServer):
    """Stands in for the web child: keeps what localstripe POSTs to it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.deliveries: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.deliveries.put((self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def test_fake_stripe_serves_payment_intents_and_signs_the_portals_webhooks():
    partner.ensure_installed()  # what `make partners` does; instant once installed
    assert _fake_stripe_installed()  # the launcher reads the same stamp: no install step
    sink = _WebhookSink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    web_port = sink.server_address[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    started = time.monotonic()
    stripe, banner = _payments(web_port, env, _Signals(), width=6)
    try:
        assert stripe is not None, "the fake Stripe did not start (see the captured log)"
        assert time.monotonic() - started < 10
        base = env["STRIPE_API_BASE"]
        port = int(base.rsplit(":", 1)[1])
        assert base == f"http://127.0.0.1:{port}"
        assert port >= FAKE_STRIPE_PORT and port != web_port
        assert env["STRIPE_JS_URL"] == f"{base}/js.stripe.com/v3/"
        # The keys the payment tests use, so both talk to localstripe the same way.
        assert FAKE_STRIPE_KEYS == {
            "STRIPE_SECRET_KEY": partner.SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": partner.PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": partner.WEBHOOK_SECRET,
        }
        assert {k: env[k] for k in FAKE_STRIPE_KEYS} == FAKE_STRIPE_KEYS
        assert "4242 4242 4242 4242 pays" in "\n".join(banner)
        assert "4000 0000 0000 0341 is declined" in "\n".join(banner)

        # The web child's gateway, built from the env it gets.
        gateway = StripeGateway(
            env["STRIPE_SECRET_KEY"],
            api_base=env["STRIPE_API_BASE"],
            webhook_secret=env["STRIPE_WEBHOOK_SECRET"],
        )
        intent = gateway.create_payment_intent(
            amount_minor=150000,
            currency="RUB",
            metadata={"payment": "devrun-test"},
            idempotency_key=f"devrun-test-{time.time_ns()}",
            description="devrun test",
        )
        assert intent.id.startswith("pi_")
        assert (intent.status, intent.amount_minor, intent.currency) == (
            "requires_payment_method",
            150000,
            "RUB",
        )
        assert intent.client_secret

        # localstripe delivers payment_intent.created about a second later, to the
        # registered endpoint, signed with the secret the portal verifies with.
        path, headers, body = sink.deliveries.get(timeout=10)
        assert path == "/payments/stripe/webhook/"
        event = gateway.verify_webhook(body, headers["Stripe-Signature"])
        assert stripe_value(event, "type") == "payment_intent.created"
        data = stripe_value(event, "data")
        assert stripe_value(stripe_value(data, "object"), "id") == intent.id
    finally:
        if stripe is not None:
            stripe.stop(threading.Event())
        sink.shutdown()
        sink.server_close()
    assert stripe.proc.poll() is not None
    assert not _port_in_use("127.0.0.1", port)


def test_no_fake_stripe_when_a_stripe_key_is_set():
    env = {"STRIPE_SECRET_KEY": "sk_test_from_dotenv", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    stripe, banner = _payments(8000, env, _Signals(), width=6)
    if stripe is not None:  # the bug under test: do not leave it running
        stripe.stop(threading.Event())
    assert stripe is None
    assert env == {"STRIPE_SECRET_KEY": "sk_test_from_dotenv", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    assert banner == ["Stripe (STRIPE_SECRET_KEY from the environment)"]


def test_fake_stripe_port_skips_taken_ports_and_the_web_port():
    first = _fake_stripe_port(avoid=0)
    assert first >= FAKE_STRIPE_PORT
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        # As the probe and localstripe bind: a port left in TIME_WAIT is free.
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", first))
        taken.listen()
        second = _fake_stripe_port(avoid=first + 1)
    assert second not in (first, first + 1)


def test_no_registry_means_a_warning_and_no_payments(monkeypatch, capsys):
    from clinic.devrun import launcher

    steps = []
    monkeypatch.setattr(launcher, "_fake_stripe_installed", lambda: False)
    monkeypatch.setattr(launcher, "_run_step", lambda argv, *a, **k: steps.append(argv) or (1, ""))
    env: dict[str, str] = {}
    stripe, banner = _payments(8000, env, _Signals(), width=6)
    assert stripe is None
    assert env == {}
    assert steps[0][1:] == ["-m", "tests.payments.localstripe", "install"]
    assert banner[0].startswith("off")
    warnings = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert warnings == [
        "devrun: warning: could not install localstripe (exit 1); running without payments"
    ]


def test_a_fake_stripe_that_dies_means_a_warning_and_no_payments(monkeypatch, capsys, tmp_path):
    from clinic.devrun import launcher

    partner.ensure_installed()
    broken = tmp_path / "broken_app.py"
    broken.write_text("import sys\nprint('cannot bind')\nsys.exit(3)\n")
    monkeypatch.setattr(launcher, "FAKE_STRIPE_APP", broken)
    env: dict[str, str] = {}
    stripe, banner = _payments(8000, env, _Signals(), width=6)
    assert stripe is None
    assert env == {}
    out = capsys.readouterr().out
    assert "stripe | cannot bind" in out  # its output is logged like the other children's
    assert "devrun: warning: localstripe did not start (it exited with code 3)" in out
