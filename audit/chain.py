"""The hash chain: the canonical form of an audit row and its SHA-256 link.

Pure functions, no database: `audit.services` uses them to write, the
`verify_audit_chain` command and migration 0002 use them to check and backfill.
The format is a contract with every row already written — change it only with a
new chain version (see docs/adr/0006-audit-hash-chain.md).

    hash = sha256_hex(prev_hash + canonical(row))

`canonical(row)` is JSON with sorted keys, no whitespace, UTF-8, over exactly the
fields in `CHAINED_FIELDS`; `occurred_at` is UTC ISO 8601 with microseconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64

# Exactly these fields are covered by the hash (`actor_id`/`patient_id` are the raw ids).
CHAINED_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "request_id",
    "ip_address",
    "user_agent",
    "reason",
    "detail",
    "break_glass",
)


def format_occurred_at(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _normalise_json(value: Any) -> Any:
    """The JSON value as PostgreSQL's jsonb gives it back. jsonb stores numbers as
    `numeric`, so an integral float (2.0, 1e300) comes back as an integer; normalise
    both sides so a row read back hashes the same as the row written."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("audit detail cannot hold NaN or infinity")
        return int(Decimal(repr(value))) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _normalise_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise_json(v) for v in value]
    raise TypeError(f"audit detail value of type {type(value).__name__} is not JSON")


def canonical(row: Mapping[str, Any]) -> str:
    """The stable text form of one row (a mapping with the `CHAINED_FIELDS` keys)."""
    actor_id = row["actor_id"]
    patient_id = row["patient_id"]
    data = {
        "seq": int(row["seq"]),
        "occurred_at": format_occurred_at(row["occurred_at"]),
        "actor_id": None if actor_id is None else int(actor_id),
        "actor_role": row["actor_role"] or "",
        "action": str(row["action"]),
        "object_type": row["object_type"] or "",
        "object_id": row["object_id"] or "",
        "patient_id": None if patient_id is None else int(patient_id),
        "request_id": row["request_id"] or "",
        "ip_address": row["ip_address"] or None,
        "user_agent": row["user_agent"] or "",
        "reason": row["reason"] or "",
        "detail": _normalise_json(row["detail"] if row["detail"] is not None else {}),
        "break_glass": bool(row["break_glass"]),
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(row)).encode("utf-8")).hexdigest()


def row_of(event: Any) -> dict[str, Any]:
    """The chained fields of a model instance (current or historical) as a mapping."""
    return {name: getattr(event, name) for name in CHAINED_FIELDS}
