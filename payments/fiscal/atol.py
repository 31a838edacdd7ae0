"""ATOL Online, protocol v4 (FFD 1.05), over HTTPS with `requests`.

- `POST {base}/possystem/v4/getToken` `{"login", "pass"}` -> `{"token", "error", "timestamp"}`.
  A token lives 24 hours; it is kept in the Django cache (Redis) a little less than that
  and fetched again when the operator says it is missing or expired (codes 10 and 11).
- `POST {base}/possystem/v4/{group_code}/{sell|sell_refund}` with the token in the
  `Token` header -> `{"uuid", "status": "wait", "error": null, "timestamp"}`. The
  operator keeps one document per `external_id` and group: sending one again answers
  with error 33 and the uuid of the document it already has, which is a success here.
- `GET {base}/possystem/v4/{group_code}/report/{uuid}?token=...` -> `{"status":
  "wait"|"done"|"fail", "payload": {...requisites}, "error": {"code", "text", "type"}}`.

Error codes of the v4 service (the protocol's table of service errors): 0 bad JSON,
1 processing failed, 10 token missing, 11 token expired or unknown, 12 wrong login or
password, 13 bad token request, 14 user blocked, 20 group code does not match the token,
21 group not supported, 30 uuid missing, 31 operation not supported, 32 the document
failed validation, 33 external_id already registered, 34 no information yet (report),
40 bad request, 41 wrong Content-Type, 50 the operator's configuration. Any 5xx answer,
a timeout or a refused connection is temporary.

Every call has a timeout (`ATOL_TIMEOUT_SECONDS`). No personal data is logged: the
client's email goes only into the document's body.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.core.cache import cache

from payments.fiscal.base import (
    FiscalError,
    PermanentError,
    ReceiptDocument,
    Registration,
    Report,
    ReportState,
    Requisites,
    TemporaryError,
)

logger = logging.getLogger(__name__)

API = "possystem/v4"
# ATOL's servers and the cash registers behind them keep Moscow time: the document's
# timestamp and the receipt's date come in it.
ATOL_TIME_ZONE = ZoneInfo("Europe/Moscow")
TIMESTAMP_FORMAT = "%d.%m.%Y %H:%M:%S"
# The operator's tokens live 24 hours; keep ours a little less so one never expires in use.
TOKEN_CACHE_SECONDS = 23 * 3600

TOKEN_MISSING, TOKEN_EXPIRED = 10, 11
TOKEN_ERRORS = {TOKEN_MISSING, TOKEN_EXPIRED}
# Our account or configuration at the operator: nothing wrong with the receipt, and a
# person fixes the settings; the receipts wait (temporary) rather than fail.
ACCOUNT_ERRORS = {12, 13, 14, 20, 21, 50}
DUPLICATE_EXTERNAL_ID = 33
NO_INFORMATION_YET = 34


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any]

    @property
    def error(self) -> dict[str, Any] | None:
        error = self.body.get("error")
        return error if isinstance(error, dict) and error else None

    @property
    def error_code(self) -> int | None:
        error = self.error
        if error is None:
            return None
        try:
            return int(error.get("code"))
        except (TypeError, ValueError):
            return None

    @property
    def error_text(self) -> str:
        error = self.error or {}
        return scrub(str(error.get("text") or ""))[:300]


_EMAIL = re.compile(r"[^\s@:;,]+@[^\s@:;,]+")
_PHONE = re.compile(r"\+?\d[\d\s()-]{9,}\d")


def scrub(text: str) -> str:
    """The operator's message without the client's contacts (it may quote the document),
    so it can be stored and logged."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


def _money(value: Decimal) -> float:
    # JSON numbers; two decimals survive the float round trip exactly as text.
    return float(value.quantize(Decimal("0.01")))


def _quantity(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.001")))


def _text(value: object) -> str:
    return "" if value is None else str(value)[:64]


def _parse_datetime(value: object) -> datetime | None:
    try:
        return datetime.strptime(str(value), TIMESTAMP_FORMAT).replace(tzinfo=ATOL_TIME_ZONE)
    except (TypeError, ValueError):
        return None


def _parse_decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def _safe_url(value: object) -> str:
    """Only an http(s) link goes into the patient's email."""
    url = str(value or "").strip()
    return url[:500] if url.startswith(("https://", "http://")) else ""


class AtolOnline:
    """The operator ATOL Online (implements `payments.fiscal.base.FiscalOperator`)."""

    name = "atol"

    def __init__(
        self,
        *,
        base_url: str,
        login: str,
        password: str,
        group_code: str,
        company_inn: str,
        company_email: str,
        payment_address: str,
        sno: str = "usn_income",
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.login = login
        self.password = password
        self.group_code = group_code
        self.company_inn = company_inn
        self.company_email = company_email
        self.payment_address = payment_address
        self.sno = sno
        self.timeout = timeout
        # None: one connection per call (nothing left open between a worker's tasks).
        self.session = session

    @classmethod
    def from_settings(cls) -> AtolOnline:
        return cls(
            base_url=settings.ATOL_BASE_URL,
            login=settings.ATOL_LOGIN,
            password=settings.ATOL_PASSWORD,
            group_code=settings.ATOL_GROUP_CODE,
            company_inn=settings.ATOL_COMPANY_INN,
            company_email=settings.ATOL_COMPANY_EMAIL,
            payment_address=settings.ATOL_PAYMENT_ADDRESS,
            sno=settings.ATOL_SNO,
            timeout=settings.ATOL_TIMEOUT_SECONDS,
        )

    # --- The adapter's two questions ---------------------------------------------------

    def register(self, document: ReceiptDocument) -> Registration:
        body = self.document_body(document)
        url = f"{self.base_url}/{API}/{self.group_code}/{document.kind.value}"
        answer = self._with_token(lambda token: self._call("POST", url, json=body, token=token))
        code = answer.error_code
        uuid = str(answer.body.get("uuid") or "")
        if code == DUPLICATE_EXTERNAL_ID:
            if not uuid:
                raise PermanentError("atol-33", "duplicate external_id without the first uuid")
            return Registration(uuid=uuid, state=ReportState.WAIT, duplicate=True)
        if code is not None or answer.status >= 400:
            raise self._refusal(answer)
        if not uuid:
            raise TemporaryError("atol-bad-answer", "no uuid in the answer")
        status = str(answer.body.get("status") or "wait")
        state = ReportState.DONE if status == "done" else ReportState.WAIT
        return Registration(uuid=uuid, state=state)

    def report(self, uuid: str) -> Report:
        if not uuid:
            raise PermanentError("atol-30", "no uuid to report on")
        url = f"{self.base_url}/{API}/{self.group_code}/report/{uuid}"
        answer = self._with_token(
            lambda token: self._call("GET", url, params={"token": token}, token=token)
        )
        status = str(answer.body.get("status") or "")
        if status == "done" and answer.status < 400:
            return Report(ReportState.DONE, requisites=self._requisites(answer.body))
        if answer.error_code == NO_INFORMATION_YET or (status == "wait" and answer.status < 400):
            return Report(ReportState.WAIT)
        if status == "fail" and answer.status < 400:
            # The document itself failed at the cash register (driver, timeout, agent...).
            error = answer.error or {}
            kind = str(error.get("type") or "")
            where = f"/{kind}" if kind else ""
            return Report(
                ReportState.FAIL,
                error=f"atol-{answer.error_code}{where}: {answer.error_text}"[:500],
            )
        if answer.status < 400 and answer.error is None:
            raise TemporaryError("atol-bad-answer", f"unknown status {status[:20]!r}")
        raise self._refusal(answer)

    # --- The document ---------------------------------------------------------------------

    def document_body(self, document: ReceiptDocument) -> dict[str, Any]:
        """The v4 request body of a sell or sell_refund."""
        client: dict[str, str] = {}
        if document.client_email:
            client["email"] = document.client_email
        elif document.client_phone:
            client["phone"] = document.client_phone
        items = []
        for line in document.lines:
            item: dict[str, Any] = {
                "name": line.name[:128],
                "price": _money(line.price),
                "quantity": _quantity(line.quantity),
                "sum": _money(line.amount),
                "payment_method": "full_payment",
                "payment_object": "service",
                "vat": {"type": "none"},
            }
            if line.unit:
                item["measurement_unit"] = line.unit[:16]
            items.append(item)
        return {
            "external_id": document.external_id,
            "timestamp": document.created_at.astimezone(ATOL_TIME_ZONE).strftime(TIMESTAMP_FORMAT),
            "receipt": {
                "client": client,
                "company": {
                    "email": self.company_email,
                    "sno": self.sno,
                    "inn": self.company_inn,
                    "payment_address": self.payment_address,
                },
                "items": items,
                # 1: electronic payment (card through the payment provider).
                "payments": [{"type": 1, "sum": _money(document.total)}],
                "total": _money(document.total),
            },
        }

    # --- Tokens -----------------------------------------------------------------------------

    def _token_key(self) -> str:
        ident = f"{self.base_url}|{self.login}".encode()
        return f"fiscal:atol:token:{hashlib.sha256(ident).hexdigest()[:24]}"

    def token(self, *, renew: bool = False) -> str:
        """A valid token: the cached one, or a new one from getToken."""
        key = self._token_key()
        if not renew:
            cached = cache.get(key)
            if cached:
                return str(cached)
        if not (self.login and self.password and self.group_code):
            raise TemporaryError(
                "atol-not-configured", "ATOL_LOGIN, ATOL_PASSWORD, ATOL_GROUP_CODE"
            )
        answer = self._call(
            "POST",
            f"{self.base_url}/{API}/getToken",
            json={"login": self.login, "pass": self.password},
        )
        token = str(answer.body.get("token") or "")
        if answer.error_code is not None or answer.status >= 400 or not token:
            error = self._refusal(answer)
            # Wrong login, blocked user...: the account's trouble, not the receipt's.
            raise TemporaryError(error.code, error.text)
        cache.set(key, token, timeout=TOKEN_CACHE_SECONDS)
        return token

    def forget_token(self) -> None:
        cache.delete(self._token_key())

    def _with_token(self, call: Any) -> _Answer:
        """Make the call with the cached token; when the operator says the token is
        missing or expired, get a new one and make it once more."""
        answer = call(self.token())
        if answer.error_code in TOKEN_ERRORS or (answer.status == 401 and answer.error is None):
            self.forget_token()
            answer = call(self.token(renew=True))
            if answer.error_code in TOKEN_ERRORS or answer.status == 401:
                raise TemporaryError(f"atol-{answer.error_code}", "token refused after renewal")
        return answer

    # --- HTTP ---------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        token: str = "",
    ) -> _Answer:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token:
            headers["Token"] = token
        try:
            response = (self.session or requests).request(
                method, url, json=json, params=params, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise TemporaryError("timeout", type(exc).__name__) from exc
        except requests.RequestException as exc:
            raise TemporaryError("network", type(exc).__name__) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TemporaryError(f"http-{response.status_code}", "operator unavailable")
        try:
            body = response.json()
        except ValueError as exc:
            raise TemporaryError(f"http-{response.status_code}", "the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise TemporaryError(f"http-{response.status_code}", "unexpected answer")
        return _Answer(status=response.status_code, body=body)

    @staticmethod
    def _refusal(answer: _Answer) -> FiscalError:
        code = answer.error_code
        text = answer.error_text or f"HTTP {answer.status}"
        if code in TOKEN_ERRORS or code in ACCOUNT_ERRORS:
            logger.error("ATOL Online refused our account or settings: code %s", code)
            return TemporaryError(f"atol-{code}", text)
        if code is None:
            return TemporaryError(f"http-{answer.status}", text)
        return PermanentError(f"atol-{code}", text)

    @staticmethod
    def _requisites(body: dict[str, Any]) -> Requisites:
        payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
        return Requisites(
            fiscal_receipt_number=_text(payload.get("fiscal_receipt_number")),
            shift_number=_text(payload.get("shift_number")),
            fiscal_document_number=_text(payload.get("fiscal_document_number")),
            fiscal_document_attribute=_text(payload.get("fiscal_document_attribute")),
            fn_number=_text(payload.get("fn_number")),
            ecr_registration_number=_text(payload.get("ecr_registration_number")),
            registered_at=_parse_datetime(payload.get("receipt_datetime")),
            total=_parse_decimal(payload.get("total")),
            fns_site=_text(payload.get("fns_site")),
            receipt_url=_safe_url(payload.get("ofd_receipt_url")),
        )
