"""MLLP end to end: real sockets to `hl7_listen` (in a thread, and as the operator runs it
in a process): ACK for good messages, AR/AE NAKs for bad ones, several messages on one
connection, a message split across TCP packets, oversized messages, idle connections."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from mis.hl7 import handlers as hl7_handlers
from mis.hl7.mllp import END, VT, MllpFramer
from mis.models import Hl7Message, Hl7Reason, Hl7Source, Hl7State
from records.models import LabReport
from tests import factories
from tests.mis.hl7_support import fixture_text, link_patient_of, read_ack

ROOT = Path(__file__).resolve().parents[2]
UNSUPPORTED = (
    "MSH|^~\\&|LAB|FAC|PORTAL|CLINIC|20261120101500+0300||ADT^A01^ADT_A01|{cid}|P|2.5\r"
    "PID|1||1^^^FAC^MR||Doe^John\r"
)


def frame(text: str) -> bytes:
    return VT + text.encode("utf-8") + END


def read_replies(sock: socket.socket, count: int) -> list[str]:
    buffer, replies = b"", []
    while len(replies) < count:
        data = sock.recv(65536)
        if not data:
            break
        buffer += data
        while END in buffer:
            body, buffer = buffer.split(END, 1)
            assert body.startswith(VT)
            replies.append(body[1:].decode("utf-8"))
    return replies


def exchange(port: int, *chunks: bytes, replies: int = 1, pause: float = 0.0) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in chunks:
            sock.sendall(chunk)
            if pause:
                time.sleep(pause)
        return read_replies(sock, replies)


# --- Framing, without a network -------------------------------------------------------------


def test_framer_joins_partial_reads_and_splits_several_messages():
    framer = MllpFramer(max_bytes=1000)
    assert framer.feed(b"junk" + VT + b"MSH|one") == []
    assert framer.feed(b"\r" + b"\x1c") == []  # FS without its CR yet
    frames = framer.feed(b"\x0d" + VT + b"MSH|two\r" + END + VT + b"MSH|thr")
    assert [f.payload for f in frames] == [b"MSH|one\r", b"MSH|two\r"]
    assert [f.payload for f in framer.feed(b"ee\r" + END)] == [b"MSH|three\r"]
    assert framer.dropped == 4


def test_framer_refuses_an_oversized_message_and_resynchronises():
    framer = MllpFramer(max_bytes=100)
    big = b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|BIG1|P|2.5\r" + b"OBX|" + b"x" * 500
    frames = framer.feed(VT + big[:300])
    frames += framer.feed(big[300:] + b"\x1c")
    frames += framer.feed(b"\x0d" + VT + b"MSH|next\r" + END)
    assert [f.oversized for f in frames] == [True, False]
    assert frames[0].size == len(big)
    assert frames[0].payload.startswith(b"MSH|^~\\&|A|B")  # the head, for the NAK
    assert frames[1].payload == b"MSH|next\r"


# --- A listener in a thread ------------------------------------------------------------------


@pytest.fixture
def listener(transactional_db):
    from mis.management.commands.hl7_listen import Command

    command = Command(stdout=io.StringIO(), stderr=io.StringIO())
    thread = threading.Thread(
        target=command.handle,
        kwargs={
            "host": "127.0.0.1",
            "port": 0,
            "max_bytes": 20_000,
            "idle_timeout": 3.0,
            "max_connections": 4,
        },
        daemon=True,
    )
    thread.start()
    assert command.ready.wait(20)
    yield command.server
    command.server.stop()
    thread.join(20)


@pytest.fixture
def cbc(transactional_db):
    text = fixture_text("LRI_2.0-NG_CBC_Typ_Message.hl7")
    link_patient_of(text, factories.make_patient().patient_profile)
    return text


def test_a_good_message_is_applied_and_answered_aa(listener, cbc):
    [reply] = exchange(listener.port, frame(cbc))

    ack = read_ack(reply)
    assert (ack["code"], ack["control_id"]) == ("AA", "NIST-LRI-NG-002.00")
    assert ack["sending_application"] == "CLINIC_PORTAL"  # MSH-5 of the message was empty
    assert ack["receiving_application"] == "NIST Test Lab APP"  # its sender, swapped
    row = Hl7Message.objects.get()
    assert (row.state, row.source) == (Hl7State.APPLIED, Hl7Source.MLLP)
    assert row.peer.startswith("127.0.0.1:")
    assert LabReport.objects.count() == 1


def test_bad_messages_get_ar_and_errors_get_ae(listener, cbc, monkeypatch):
    garbage, unsupported = exchange(
        listener.port,
        frame("HELLO, is this the laboratory?"),
        frame(UNSUPPORTED.format(cid="U-1")),
        replies=2,
    )
    assert read_ack(garbage)["code"] == "AR"
    ack = read_ack(unsupported)
    assert (ack["code"], ack["control_id"]) == ("AR", "U-1")
    assert r"ADT\S\A01 is not applied" in ack["text"]  # "^" escaped in MSA-3

    def broken(parsed):  # noqa: ANN001, ANN202
        raise RuntimeError("boom")

    monkeypatch.setattr(hl7_handlers, "handle", broken)
    [error] = exchange(listener.port, frame(cbc))
    assert (read_ack(error)["code"], read_ack(error)["control_id"]) == ("AE", "NIST-LRI-NG-002.00")
    assert not LabReport.objects.exists()
    states = dict(Hl7Message.objects.values_list("control_id", "reason_code"))
    assert states == {
        "": Hl7Reason.PARSE_ERROR,
        "U-1": Hl7Reason.UNSUPPORTED,
        "NIST-LRI-NG-002.00": Hl7Reason.PROCESSING_ERROR,
    }


def test_two_messages_on_one_connection_are_answered_in_order(listener):
    replies = exchange(
        listener.port,
        frame(UNSUPPORTED.format(cid="A-1")) + frame(UNSUPPORTED.format(cid="A-2")),
        replies=2,
    )
    assert [read_ack(r)["control_id"] for r in replies] == ["A-1", "A-2"]
    assert Hl7Message.objects.count() == 2


def test_a_message_split_across_tcp_packets(listener, cbc):
    data = frame(cbc)
    chunks = (data[:1], data[1:700], data[700:-1], data[-1:])  # the CR after FS alone

    [reply] = exchange(listener.port, *chunks, pause=0.15)

    assert read_ack(reply)["code"] == "AA"
    assert LabReport.objects.count() == 1


def test_an_oversized_message_is_refused_and_the_connection_goes_on(listener):
    big = UNSUPPORTED.format(cid="BIG-1") + "NTE|1||" + "x" * 30_000 + "\r"
    too_big, after = exchange(
        listener.port, frame(big), frame(UNSUPPORTED.format(cid="A-3")), replies=2
    )

    ack = read_ack(too_big)
    assert (ack["code"], ack["control_id"]) == ("AR", "BIG-1")
    assert read_ack(after)["control_id"] == "A-3"
    row = Hl7Message.objects.get(control_id="BIG-1")
    assert (row.reason_code, row.raw) == (Hl7Reason.TOO_LARGE, "")
    assert row.size_bytes == len(big)


def test_a_replay_over_mllp_gets_the_same_ack(listener, cbc):
    [first] = exchange(listener.port, frame(cbc))
    [second] = exchange(listener.port, frame(cbc))
    assert first == second
    assert LabReport.objects.count() == 1
    assert Hl7Message.objects.filter(state=Hl7State.DUPLICATE).count() == 1


def test_an_idle_connection_is_closed(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=20) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""  # the server hangs up
        assert 2.0 < time.monotonic() - started < 15


# --- The command as an operator runs it ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_manage_py_hl7_listen_answers_and_stops_on_sigterm():
    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "hl7_listen", "--port", str(port), "--host", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "Listening for HL7 v2 (MLLP) on 127.0.0.1:" in process.stdout.readline()
        [reply] = exchange(port, frame(UNSUPPORTED.format(cid="CLI-1")))
        assert (read_ack(reply)["code"], read_ack(reply)["control_id"]) == ("AR", "CLI-1")
        assert Hl7Message.objects.get(control_id="CLI-1").reason_code == Hl7Reason.UNSUPPORTED
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "HL7 listener stopped" in out
