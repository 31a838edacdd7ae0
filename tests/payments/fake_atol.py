"""A fake ATOL Online (protocol v4) on loopback, stateful, for the fiscal receipt tests.

It speaks the three calls the portal makes, with ATOL's answers and error codes:

- `POST /possystem/v4/getToken` {"login", "pass"}: a token (24 h unless `token_ttl`
  says otherwise), or error 12 (wrong login or password) / 13 (bad request).
- `POST /possystem/v4/<group>/<sell|sell_refund>` with the token in the `Token` header
  (or `?token=`): checks the document (required fields, each line's sum = price x
  quantity, total = the lines' sum = the payments' sum, known sno / vat / payment
  types) and answers {"uuid", "status": "wait"}; error 32 for an invalid document,
  33 with the first document's uuid for an external_id it already has, 10/11 for a
  missing or expired token, 20 for another group, 31 for an unknown operation.
- `GET /possystem/v4/<group>/report/<uuid>?token=...`: "wait" `wait_polls` times, then
  "done" with the FZ-54 requisites and the OFD's link (or "fail" when the cash register
  is told to fail documents), error 34 for an unknown uuid.

Faults a test can program: `fail_next(...)` (HTTP 500, a hang longer than the client's
timeout before or after the document is stored, a body that is not JSON),
`expire_tokens()`, `reject_documents(...)` (every document refused, code 32),
`fail_fiscalisation(...)` (reports end in "fail"), and `stop()` / `start()` on the same
port (connection refused in between).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

MSK = ZoneInfo("Europe/Moscow")
TIMESTAMP_FORMAT = "%d.%m.%Y %H:%M:%S"
SNO = {"osn", "usn_income", "usn_income_outcome", "envd", "esn", "patent"}
VAT = {"none", "vat0", "vat10", "vat18", "vat110", "vat118", "vat20", "vat120"}
PAYMENT_METHODS = {
    "full_prepayment",
    "prepayment",
    "advance",
    "full_payment",
    "partial_payment",
    "credit",
    "credit_payment",
}
OPERATIONS = {"sell", "sell_refund", "buy", "buy_refund"}
SUPPORTED_OPERATIONS = {"sell", "sell_refund"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class FakeDocument:
    uuid: str
    external_id: str
    group_code: str
    operation: str
    body: dict[str, Any]
    polls: int = 0
    status: str = "wait"
    fiscal_number: int = 0
    error: dict[str, Any] | None = None
    payload: dict[str, Any] | None = None


@dataclass
class Fault:
    kind: str  # "http500" | "hang" | "hang_after" | "bad_json"
    path_contains: str
    remaining: int
    seconds: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    token: str


@dataclass
class _State:
    lock: threading.RLock = field(default_factory=threading.RLock)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expires (monotonic)
    documents: dict[str, FakeDocument] = field(default_factory=dict)
    by_external_id: dict[tuple[str, str], str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)


def _now_text() -> str:
    return datetime.now(MSK).strftime(TIMESTAMP_FORMAT)


def _error(code: int, text: str, *, kind: str = "system") -> dict[str, Any]:
    return {"error_id": str(uuidlib.uuid4()), "code": code, "text": text, "type": kind}


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


class FakeAtol:
    login = "clinic-login"
    password = "clinic-pass"  # noqa: S105
    group_code = "clinic-group"
    inn = "7701234567"
    company_email = "receipts@clinic.example"

    def __init__(self, *, wait_polls: int = 1, token_ttl: float = 86400.0) -> None:
        self.wait_polls = wait_polls
        self.token_ttl = token_ttl
        self.tokens_issued = 0
        self.reject_text = ""  # set: every document is refused with code 32
        self.fail_error: dict[str, Any] | None = None  # set: fiscalisation ends in "fail"
        self.port = 0
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- life cycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeAtol:
        """Listen (again, on the same port after a stop)."""
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: connections are refused until `start()`."""
        self._stopping.set()  # hung handlers return
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- programming faults -------------------------------------------------------------------

    def fail_next(
        self, count: int = 1, *, kind: str = "http500", path: str = "", seconds: float = 0.0
    ) -> None:
        """The next `count` requests whose path contains `path` get the fault: "http500",
        "hang" (no answer for `seconds`, the document not stored), "hang_after" (the
        document is stored, then no answer for `seconds`), "bad_json"."""
        assert kind in {"http500", "hang", "hang_after", "bad_json"}, kind
        with self._state.lock:
            self._state.faults.append(Fault(kind, path, count, seconds))

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as after 24 hours)."""
        with self._state.lock:
            for token in self._state.tokens:
                self._state.tokens[token] = 0.0

    def reject_documents(self, text: str = "") -> None:
        self.reject_text = text or "Передан некорректный ИНН организации"

    def fail_fiscalisation(self, code: int = -3804, text: str = "", kind: str = "driver") -> None:
        self.fail_error = {"code": code, "text": text or "Ошибка ККТ", "type": kind}

    # --- what happened ------------------------------------------------------------------------

    @property
    def documents(self) -> list[FakeDocument]:
        with self._state.lock:
            return list(self._state.documents.values())

    def documents_for(self, external_id: str) -> list[FakeDocument]:
        return [d for d in self.documents if d.external_id == external_id]

    def requests(self, path_contains: str = "", method: str = "") -> list[Recorded]:
        with self._state.lock:
            return [
                r
                for r in self._state.requests
                if path_contains in r.path and (not method or r.method == method)
            ]

    def register_directly(self, body: dict[str, Any], operation: str = "sell") -> str:
        """Store a document as if a client had sent it (and never heard the answer)."""
        with self._state.lock:
            return self._store(self.group_code, operation, body).uuid

    # --- the protocol -------------------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        with self._state.lock:
            for fault in self._state.faults:
                if fault.remaining > 0 and fault.path_contains in path:
                    fault.remaining -= 1
                    return fault
        return None

    def _token_status(self, token: str) -> int | None:
        """None when valid, else the error code (10 missing, 11 expired or unknown)."""
        if not token:
            return 10
        with self._state.lock:
            expires = self._state.tokens.get(token)
        if expires is None or expires <= time.monotonic():
            return 11
        return None

    def _issue_token(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not body.get("login") or not body.get("pass"):
            return 400, {
                "error": _error(13, "Ошибка валидации входящего запроса"),
                "token": "",
                "timestamp": _now_text(),
            }
        if body["login"] != self.login or body["pass"] != self.password:
            return 401, {
                "error": _error(12, "Неверный логин или пароль"),
                "token": "",
                "timestamp": _now_text(),
            }
        token = secrets.token_hex(16)
        with self._state.lock:
            self._state.tokens[token] = time.monotonic() + self.token_ttl
            self.tokens_issued += 1
        return 200, {"error": None, "token": token, "timestamp": _now_text()}

    def _validate(self, body: Any) -> str:
        """The first problem with a document, in ATOL's words, or ""."""
        if not isinstance(body, dict):
            return "Ошибка парсинга JSON"
        if not str(body.get("external_id") or "").strip():
            return "Не передан external_id"
        if len(str(body["external_id"])) > 128:
            return "external_id длиннее 128 символов"
        try:
            datetime.strptime(str(body.get("timestamp")), TIMESTAMP_FORMAT)
        except ValueError:
            return "Неверный формат timestamp: ожидается dd.mm.yyyy HH:MM:SS"
        receipt = body.get("receipt")
        if not isinstance(receipt, dict):
            return "Не передан receipt"
        client = receipt.get("client") or {}
        email, phone = str(client.get("email") or ""), str(client.get("phone") or "")
        if not email and not phone:
            return "В client должен быть передан email или phone"
        if email and not EMAIL.match(email):
            return "Неверный формат client.email"
        company = receipt.get("company") or {}
        for name in ("email", "sno", "inn", "payment_address"):
            if not company.get(name):
                return f"Не передан company.{name}"
        if company["sno"] not in SNO:
            return "Неизвестная система налогообложения company.sno"
        if not re.fullmatch(r"\d{10}|\d{12}", str(company["inn"])):
            return "company.inn должен содержать 10 или 12 цифр"
        items = receipt.get("items")
        if not isinstance(items, list) or not items:
            return "Не переданы items"
        items_sum = Decimal("0")
        for number, item in enumerate(items, 1):
            if not isinstance(item, dict):
                return f"items[{number}] не объект"
            name = str(item.get("name") or "")
            if not name or len(name) > 128:
                return f"items[{number}].name: от 1 до 128 символов"
            price, amount = _money(item.get("price")), _money(item.get("sum"))
            quantity = item.get("quantity")
            if price is None or amount is None or not isinstance(quantity, (int, float)):
                return f"items[{number}]: price, quantity и sum обязательны"
            if (price * Decimal(str(quantity))).quantize(Decimal("0.01")) != amount:
                return f"items[{number}].sum не равна price * quantity"
            if item.get("payment_method") not in PAYMENT_METHODS:
                return f"items[{number}].payment_method неизвестен"
            if not item.get("payment_object"):
                return f"items[{number}].payment_object обязателен"
            if (item.get("vat") or {}).get("type") not in VAT:
                return f"items[{number}].vat.type неизвестен"
            items_sum += amount
        payments = receipt.get("payments")
        if not isinstance(payments, list) or not payments:
            return "Не переданы payments"
        payments_sum = Decimal("0")
        for payment in payments:
            amount = _money((payment or {}).get("sum"))
            if amount is None or (payment or {}).get("type") not in range(10):
                return "payments: type от 0 до 9 и sum обязательны"
            payments_sum += amount
        total = _money(receipt.get("total"))
        if total is None:
            return "Не передан total"
        if total != items_sum:
            return "total не равен сумме позиций"
        if total != payments_sum:
            return "total не равен сумме оплат"
        return ""

    def _store(self, group: str, operation: str, body: dict[str, Any]) -> FakeDocument:
        key = (group, str(body["external_id"]))
        existing = self._state.by_external_id.get(key)
        if existing:
            return self._state.documents[existing]
        document = FakeDocument(
            uuid=str(uuidlib.uuid4()),
            external_id=key[1],
            group_code=group,
            operation=operation,
            body=body,
            fiscal_number=len(self._state.documents) + 1,
        )
        self._state.documents[document.uuid] = document
        self._state.by_external_id[key] = document.uuid
        return document

    def _register(self, group: str, operation: str, body: Any) -> tuple[int, dict[str, Any]]:
        if operation not in OPERATIONS or operation not in SUPPORTED_OPERATIONS:
            return 400, {"error": _error(31, "Операция не поддерживается"), "status": "fail"}
        if group != self.group_code:
            return 400, {
                "error": _error(20, "Передан некорректный код группы"),
                "status": "fail",
                "timestamp": _now_text(),
            }
        problem = self._validate(body) or self.reject_text
        if problem:
            return 400, {
                "uuid": None,
                "error": _error(32, f"Ошибка валидации входящего чека: {problem}"),
                "status": "fail",
                "timestamp": _now_text(),
            }
        with self._state.lock:
            key = (group, str(body["external_id"]))
            existing = self._state.by_external_id.get(key)
            if existing:
                return 400, {
                    "uuid": existing,
                    "error": _error(
                        33,
                        f"В системе существует чек с external_id : {key[1]} и group_code: {group}",
                    ),
                    "status": "fail",
                    "timestamp": _now_text(),
                }
            document = self._store(group, operation, body)
        return 200, {
            "uuid": document.uuid,
            "status": "wait",
            "error": None,
            "timestamp": _now_text(),
        }

    def _report(self, group: str, uuid: str) -> tuple[int, dict[str, Any]]:
        with self._state.lock:
            document = self._state.documents.get(uuid)
            if document is None or document.group_code != group:
                return 400, {
                    "uuid": uuid,
                    "error": _error(34, "Нет информации, попробуйте позднее"),
                    "status": "fail",
                    "timestamp": _now_text(),
                }
            if document.status == "wait":
                if document.polls >= self.wait_polls:
                    self._fiscalise(document)
                document.polls += 1
            answer = {
                "uuid": document.uuid,
                "status": document.status,
                "error": document.error,
                "payload": document.payload,
                "timestamp": _now_text(),
                "group_code": group,
                "daemon_code": "prod-agent-1",
                "device_code": "KKT012345",
                "callback_url": "",
            }
        return 200, answer

    def _fiscalise(self, document: FakeDocument) -> None:
        if self.fail_error is not None:
            document.status = "fail"
            document.error = {"error_id": str(uuidlib.uuid4()), **self.fail_error}
            return
        receipt = document.body["receipt"]
        fn, fd = "9999078900012345", 1000 + document.fiscal_number
        fp = 100_000_000 + document.fiscal_number * 7919
        document.status = "done"
        document.payload = {
            "fiscal_receipt_number": document.fiscal_number,
            "shift_number": 17,
            "receipt_datetime": _now_text(),
            "total": receipt["total"],
            "fn_number": fn,
            "ecr_registration_number": "0000000001002292",
            "fiscal_document_number": fd,
            "fiscal_document_attribute": fp,
            "fns_site": "www.nalog.gov.ru",
            "ofd_inn": "7704211201",
            "ofd_receipt_url": f"https://receipts.ofd.example/rec/{fn}/{fd}/{fp}",
        }

    # --- HTTP ---------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection: a stopped server refuses at once.
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, payload: Any, *, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (it timed out)

            def _hang(self, seconds: float) -> None:
                fake._stopping.wait(seconds)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw.decode()) if raw else None
                except ValueError:
                    body = ValueError
                token = self.headers.get("Token") or (query.get("token") or [""])[0]
                with fake._state.lock:
                    fake._state.requests.append(Recorded(method, parts.path, body, token))
                fault = fake._take_fault(parts.path)
                if fault is not None and fault.kind == "http500":
                    self._send(500, None, raw=b"<html><body>502 Bad Gateway</body></html>")
                    return
                if fault is not None and fault.kind == "bad_json":
                    self._send(200, None, raw=b"<html>maintenance</html>")
                    return
                if fault is not None and fault.kind == "hang":
                    self._hang(fault.seconds)
                    self._send(504, None, raw=b"")
                    return
                status, answer = self._route(method, parts.path, body, token)
                if fault is not None and fault.kind == "hang_after":
                    self._hang(fault.seconds)
                self._send(status, answer)

            def _route(
                self, method: str, path: str, body: Any, token: str
            ) -> tuple[int, dict[str, Any]]:
                if body is ValueError:
                    return 400, {"error": _error(0, "Ошибка парсинга JSON"), "status": "fail"}
                match = re.fullmatch(
                    r"/possystem/v4/(?:(getToken)|([^/]+)/(report/)?([^/]+))", path
                )
                if match is None:
                    return 404, {"error": _error(40, "Некорректный запрос")}
                if match.group(1):
                    if method != "POST":
                        return 400, {"error": _error(40, "Некорректный запрос")}
                    return fake._issue_token(body)
                problem = fake._token_status(token)
                if problem is not None:
                    text = "Не передан токен" if problem == 10 else "Срок действия токена истек"
                    return 401, {
                        "error": _error(problem, text),
                        "status": "fail",
                        "timestamp": _now_text(),
                    }
                group, is_report, last = match.group(2), match.group(3), match.group(4)
                if is_report:
                    if method != "GET":
                        return 400, {"error": _error(40, "Некорректный запрос")}
                    return fake._report(group, last)
                if method != "POST":
                    return 400, {"error": _error(40, "Некорректный запрос")}
                return fake._register(group, last, body)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

        return Handler
