"""The ATOL Online v4 client against the fake ATOL server on loopback: every kind of
answer it may get (a token, a registration, a duplicate, "wait", "done", "fail", the
operator's errors, 5xx, timeouts, a refused connection) becomes a Registration, a
Report, a TemporaryError or a PermanentError."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from payments.fiscal import (
    DocumentKind,
    PermanentError,
    ReceiptDocument,
    ReceiptLine,
    ReportState,
    TemporaryError,
    get_operator,
)
from payments.fiscal.atol import AtolOnline


def document(external_id: str = "pay-test-1", amount: str = "2500.00", **fields) -> ReceiptDocument:
    value = Decimal(amount)
    values = {
        "external_id": external_id,
        "kind": DocumentKind.SELL,
        "created_at": datetime(2026, 3, 29, 0, 30, 5, tzinfo=UTC),
        "lines": (ReceiptLine("Медицинские услуги", value, Decimal("1"), value, "усл."),),
        "total": value,
        "client_email": "patient@example.org",
    }
    values.update(fields)
    return ReceiptDocument(**values)


@pytest.fixture
def client(fake_atol) -> AtolOnline:
    operator = get_operator()
    assert isinstance(operator, AtolOnline)
    return operator


# --- The request -----------------------------------------------------------------------------


def test_sell_body_is_v4_with_moscow_timestamp_and_consistent_sums(client, fake_atol):
    registration = client.register(document(amount="1234.50"))
    (request,) = fake_atol.requests("/clinic-group/sell", method="POST")
    body = request.body
    assert request.token and request.token == client.token()
    # 00:30:05 UTC is 03:30:05 in Moscow, where ATOL keeps its clock.
    assert body["timestamp"] == "29.03.2026 03:30:05"
    assert body["external_id"] == "pay-test-1"
    receipt = body["receipt"]
    assert receipt["client"] == {"email": "patient@example.org"}
    assert receipt["company"] == {
        "email": fake_atol.company_email,
        "sno": "usn_income",
        "inn": fake_atol.inn,
        "payment_address": "https://portal.clinic.example",
    }
    assert receipt["items"] == [
        {
            "name": "Медицинские услуги",
            "price": 1234.5,
            "quantity": 1.0,
            "sum": 1234.5,
            "measurement_unit": "усл.",
            "payment_method": "full_payment",
            "payment_object": "service",
            "vat": {"type": "none"},
        }
    ]
    assert receipt["payments"] == [{"type": 1, "sum": 1234.5}]
    assert receipt["total"] == 1234.5
    assert registration.state == ReportState.WAIT and not registration.duplicate
    assert [d.uuid for d in fake_atol.documents] == [registration.uuid]


def test_refund_goes_to_sell_refund_and_phone_when_there_is_no_email(client, fake_atol):
    client.register(
        document(
            "ref-1", kind=DocumentKind.SELL_REFUND, client_email="", client_phone="+79123456789"
        )
    )
    (request,) = fake_atol.requests("/sell_refund")
    assert request.body["receipt"]["client"] == {"phone": "+79123456789"}
    assert fake_atol.documents[0].operation == "sell_refund"


# --- Tokens ------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_kept_in_the_cache(client, fake_atol):
    client.register(document("a"))
    client.register(document("b"))
    # A new client (another worker) uses the cached token too.
    get_operator().register(document("c"))
    assert fake_atol.tokens_issued == 1
    assert len(fake_atol.requests("/getToken")) == 1


def test_an_expired_token_is_renewed_and_the_call_made_again(client, fake_atol):
    client.register(document("a"))
    fake_atol.expire_tokens()
    registration = client.register(document("b"))
    assert fake_atol.tokens_issued == 2
    sells = fake_atol.requests("/sell", method="POST")
    assert len(sells) == 3  # a; b refused (token expired); b again with the new token
    assert sells[1].token != sells[2].token
    assert {d.external_id for d in fake_atol.documents} == {"a", "b"}
    assert registration.uuid == fake_atol.documents_for("b")[0].uuid


def test_an_expired_token_on_report_is_renewed_too(client, fake_atol):
    uuid = client.register(document()).uuid
    fake_atol.expire_tokens()
    assert client.report(uuid).state == ReportState.WAIT
    assert fake_atol.tokens_issued == 2


def test_wrong_login_is_temporary_not_the_receipts_fault(fake_atol, settings):
    settings.ATOL_PASSWORD = "wrong"  # noqa: S105
    with pytest.raises(TemporaryError) as caught:
        get_operator().register(document())
    assert caught.value.code == "atol-12"
    assert fake_atol.documents == []


def test_missing_credentials_are_temporary_and_nothing_is_sent(fake_atol, settings):
    settings.ATOL_LOGIN = ""
    with pytest.raises(TemporaryError) as caught:
        get_operator().register(document())
    assert caught.value.code == "atol-not-configured"
    assert fake_atol.requests() == []


def test_wrong_group_code_is_temporary(fake_atol, settings):
    settings.ATOL_GROUP_CODE = "another-group"
    with pytest.raises(TemporaryError) as caught:
        get_operator().register(document())
    assert caught.value.code == "atol-20"


# --- Registration answers ---------------------------------------------------------------------


def test_duplicate_external_id_answers_with_the_first_uuid(client, fake_atol):
    first = client.register(document("pay-dup"))
    again = client.register(document("pay-dup"))
    assert again.uuid == first.uuid and again.duplicate
    assert len(fake_atol.documents_for("pay-dup")) == 1


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"total": Decimal("2400.00")}, "total не равен"),
        (
            {
                "lines": (
                    ReceiptLine("Медицинские услуги", Decimal("10"), Decimal("2"), Decimal("25")),
                )
            },
            "sum не равна",
        ),
        ({"client_email": "not-an-email"}, "client.email"),
        ({"client_email": ""}, "email или phone"),
    ],
)
def test_an_invalid_document_is_refused_for_good(client, fake_atol, change, words):
    with pytest.raises(PermanentError) as caught:
        client.register(document(**change))
    assert caught.value.code == "atol-32"
    assert words in caught.value.text
    assert fake_atol.documents == []


def test_operator_refusing_our_documents_is_permanent(client, fake_atol):
    fake_atol.reject_documents("Передан некорректный ИНН")
    with pytest.raises(PermanentError, match="ИНН"):
        client.register(document())


def test_server_error_is_temporary(client, fake_atol):
    client.token()
    fake_atol.fail_next(kind="http500", path="/sell")
    with pytest.raises(TemporaryError) as caught:
        client.register(document())
    assert caught.value.code == "http-500"
    assert fake_atol.documents == []
    client.register(document())  # the next try goes through
    assert len(fake_atol.documents) == 1


def test_an_answer_that_is_not_json_is_temporary(client, fake_atol):
    client.token()
    fake_atol.fail_next(kind="bad_json", path="/sell")
    with pytest.raises(TemporaryError, match="not JSON"):
        client.register(document())


def test_a_hanging_operator_times_out_as_temporary(client, fake_atol):
    client.token()
    fake_atol.fail_next(kind="hang", path="/sell", seconds=10)
    started = time.monotonic()
    with pytest.raises(TemporaryError) as caught:
        client.register(document())
    assert caught.value.code == "timeout"
    assert time.monotonic() - started < 5  # the client's timeout (1.5 s), not the hang
    assert fake_atol.documents == []


def test_timeout_after_the_operator_stored_it_then_duplicate_gives_the_uuid(client, fake_atol):
    client.token()
    fake_atol.fail_next(kind="hang_after", path="/sell", seconds=10)
    with pytest.raises(TemporaryError):
        client.register(document("pay-slow"))
    (stored,) = fake_atol.documents_for("pay-slow")
    again = client.register(document("pay-slow"))
    assert again.uuid == stored.uuid and again.duplicate
    assert len(fake_atol.documents) == 1


def test_connection_refused_is_temporary(client, fake_atol):
    client.token()
    fake_atol.stop()
    with pytest.raises(TemporaryError) as caught:
        client.register(document())
    assert caught.value.code == "network"
    fake_atol.start()  # the same port
    assert client.register(document()).uuid


# --- Reports ----------------------------------------------------------------------------------


def test_report_waits_then_gives_the_requisites(fake_atol, client):
    fake_atol.wait_polls = 2
    uuid = client.register(document(amount="2500.00")).uuid
    assert client.report(uuid).state == ReportState.WAIT
    assert client.report(uuid).state == ReportState.WAIT
    report = client.report(uuid)
    assert report.state == ReportState.DONE
    requisites = report.requisites
    stored = fake_atol.documents[0].payload
    assert requisites.fiscal_document_number == str(stored["fiscal_document_number"])
    assert requisites.fiscal_document_attribute == str(stored["fiscal_document_attribute"])
    assert requisites.fiscal_receipt_number == str(stored["fiscal_receipt_number"])
    assert requisites.fn_number == stored["fn_number"]
    assert requisites.receipt_url == stored["ofd_receipt_url"]
    assert requisites.total == Decimal("2500")
    assert requisites.registered_at is not None and requisites.registered_at.tzinfo is not None
    reports = fake_atol.requests("/report/")
    assert all(r.method == "GET" and r.token for r in reports)


def test_report_of_a_failed_document(fake_atol, client):
    fake_atol.wait_polls = 0
    fake_atol.fail_fiscalisation(code=-3804, text="Ошибка ФН")
    uuid = client.register(document()).uuid
    report = client.report(uuid)
    assert report.state == ReportState.FAIL
    assert report.error.startswith("atol--3804/driver") and "Ошибка ФН" in report.error


def test_report_on_an_unknown_uuid_is_no_information_yet(fake_atol, client):
    assert client.report("5d9fa7a8-0000-4000-8000-000000000000").state == ReportState.WAIT


def test_report_server_error_is_temporary(fake_atol, client):
    uuid = client.register(document()).uuid
    fake_atol.fail_next(kind="http500", path="/report/")
    with pytest.raises(TemporaryError):
        client.report(uuid)


def test_a_link_that_is_not_http_never_reaches_the_patient(fake_atol, client, monkeypatch):
    fake_atol.wait_polls = 0
    uuid = client.register(document()).uuid
    original = fake_atol._fiscalise

    def with_script_link(doc):
        original(doc)
        doc.payload["ofd_receipt_url"] = "javascript:alert(1)"

    monkeypatch.setattr(fake_atol, "_fiscalise", with_script_link)
    report = client.report(uuid)
    assert report.state == ReportState.DONE and report.requisites.receipt_url == ""


def test_the_operators_message_is_kept_without_the_clients_contacts(client, fake_atol):
    fake_atol.reject_documents("Клиент patient@example.org, телефон +7 912 345-67-89 не принят")
    with pytest.raises(PermanentError) as caught:
        client.register(document())
    text = str(caught.value)
    assert "patient@example.org" not in text and "345-67-89" not in text
    assert "<email>" in text and "<phone>" in text and text.startswith("atol-32")
