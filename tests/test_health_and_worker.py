"""/healthz and a real Celery worker process on the real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery

import clinic.health
from clinic.celery import app as celery_app
from clinic.tasks import ping

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def private_queue(settings):
    """A queue of this test's own, so another worker on the same broker cannot answer."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    return name


@pytest.fixture
def worker(private_queue):
    env = {**os.environ, "DJANGO_ENV": "test"}
    hostname = f"{private_queue}@%h"
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "clinic",
            "worker",
            "--pool",
            "solo",
            "--queues",
            private_queue,
            "--hostname",
            hostname,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.worker
def test_real_worker_runs_a_task_from_the_broker(worker, private_queue):
    result = ping.apply_async(queue=private_queue)
    assert result.get(timeout=60) == "pong"
    assert result.successful()
    assert worker.poll() is None  # the worker is still alive after the task


@pytest.mark.worker
@pytest.mark.django_db
def test_healthz_reports_up_when_database_broker_and_worker_answer(client, worker, private_queue):
    # Wait until the worker has joined (it answers the first task), then ask /healthz.
    ping.apply_async(queue=private_queue).get(timeout=60)
    response = client.get("/healthz")
    body = json.loads(response.content)
    assert response.status_code == 200, body
    assert body == {"status": "ok", "checks": {"database": "up", "broker": "up", "worker": "up"}}


@pytest.mark.django_db
def test_healthz_is_503_without_a_worker(client, monkeypatch):
    monkeypatch.setattr(celery_app.control, "ping", lambda timeout: [])
    response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content)["checks"] == {
        "database": "up",
        "broker": "up",
        "worker": "down",
    }


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_down(client, monkeypatch):
    dead = Celery("dead", broker="redis://127.0.0.1:1/0", set_as_current=False)
    dead.conf.broker_connection_retry_on_startup = False
    monkeypatch.setattr(clinic.health, "celery_app", dead)
    started = time.monotonic()
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = json.loads(response.content)["checks"]
    assert checks["broker"] == "down" and checks["worker"] == "down" and checks["database"] == "up"
    assert time.monotonic() - started < 10


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_is_down(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise RuntimeError("connection refused")

    monkeypatch.setattr(clinic.health.connection, "cursor", broken_cursor)
    monkeypatch.setattr(celery_app.control, "ping", lambda timeout: [{"w": {"ok": "pong"}}])
    response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content)["checks"]["database"] == "down"


def test_healthz_carries_no_personal_data(client, monkeypatch, db, patient):
    monkeypatch.setattr(celery_app.control, "ping", lambda timeout: [])
    body = client.get("/healthz").content.decode()
    assert patient.email not in body and "patient" not in body
