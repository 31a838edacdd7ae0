"""Launcher for the localstripe test partner. Runs INSIDE .local/localstripe-venv (its own
Python, aiohttp and localstripe), never in the portal's virtualenv:

    .local/localstripe-venv/bin/python -I tests/payments/_localstripe_app.py [--port N]

(`-I` keeps this directory off sys.path: tests/payments/localstripe.py would otherwise
shadow the real `localstripe` package.) Prints `LOCALSTRIPE_PORT=<n>` once listening.

What it changes in localstripe 1.15.10, each to behave more like Stripe for our tests:
- listens on 127.0.0.1 only (localstripe's own `start()` binds every interface);
- starts empty and never reads or writes /tmp/localstripe.pickle (shared by every
  process on the machine);
- honours `Idempotency-Key` on POST /v1/...: the same key with the same request replays
  the first answer (header `Idempotent-Replayed: true`), with other parameters it answers
  400 `idempotency_error`, while the first is still running 409 — as Stripe documents;
- sends the events Stripe sends and localstripe does not: `payment_intent.created`,
  `payment_intent.canceled`, and for each refund `refund.created` and `charge.refunded`;
- serves its test Stripe.js wrapped in a function: as published, its top-level
  `class Element` shadows the DOM's `Element` for every later script on the page
  (Bootstrap's `Element.prototype.querySelectorAll.call` then throws);
- `DELETE /_config/webhooks` forgets the registered webhook endpoints and drops deliveries
  not yet sent; `DELETE /_config/data` (localstripe's flush) also forgets idempotency keys.
Webhook deliveries stay localstripe's own: signed `t=<event.created>,v1=<hmac>`, about a
second after the event, one attempt each.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import socket
import sys
from pathlib import Path

import localstripe
from aiohttp import web
from localstripe import resources, webhooks
from localstripe.resources import Charge, Event, PaymentIntent, Refund, Store, store

# --- no pickle file -------------------------------------------------------------------
Store.dump_to_disk = lambda self: None
Store.try_load_from_disk = lambda self: None

_idempotent: dict[tuple[str, str], tuple[str, int, bytes] | None] = {}


def _clear(self) -> None:
    dict.clear(self)
    _idempotent.clear()


Store.clear = _clear

# --- webhook deliveries we can cancel ------------------------------------------------------
_pending: set[asyncio.Future] = set()


def schedule_webhook(event) -> None:  # noqa: ANN001
    task = asyncio.ensure_future(webhooks._send_webhook(event))  # noqa: SLF001
    _pending.add(task)
    task.add_done_callback(_pending.discard)


resources.schedule_webhook = schedule_webhook
webhooks.schedule_webhook = schedule_webhook

from localstripe.server import app  # noqa: E402  (after the patches above)


def _error(status: int, kind: str, message: str) -> web.Response:
    body = {"error": {"type": kind, "message": message}}
    return web.json_response(body, status=status)


@web.middleware
async def idempotency(request: web.Request, handler):  # noqa: ANN001
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not request.path.startswith("/v1/"):
        return await handler(request)
    body = await request.read()
    fingerprint = hashlib.sha256(request.path_qs.encode() + b"\n" + body).hexdigest()
    slot = (request.headers.get("Authorization", ""), key)
    if slot in _idempotent:
        seen = _idempotent[slot]
        if seen is None:
            return _error(409, "idempotency_error", "A request with this key is in progress.")
        if seen[0] != fingerprint:
            return _error(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with.",
            )
        return web.Response(
            body=seen[2],
            status=seen[1],
            content_type="application/json",
            headers={"Idempotent-Replayed": "true", "Idempotency-Key": key},
        )
    _idempotent[slot] = None
    try:
        response = await handler(request)
    except BaseException:
        _idempotent.pop(slot, None)
        raise
    if isinstance(response, web.Response) and 200 <= response.status < 300:
        _idempotent[slot] = (fingerprint, response.status, bytes(response.body or b""))
    else:
        _idempotent.pop(slot, None)
    return response


_PI_CREATE = re.compile(r"^/v1/payment_intents$")
_PI_CANCEL = re.compile(r"^/v1/payment_intents/(pi_\w+)/cancel$")
_REFUND_CREATE = re.compile(r"^/v1/refunds$")


@web.middleware
async def stripe_events(request: web.Request, handler):  # noqa: ANN001
    response = await handler(request)
    if request.method != "POST" or response.status != 200:
        return response
    if response.headers.get("Idempotent-Replayed"):
        return response
    path = request.path
    if _PI_CREATE.match(path):
        intent = PaymentIntent._api_retrieve(json.loads(response.body)["id"])  # noqa: SLF001
        schedule_webhook(Event("payment_intent.created", intent))
    elif match := _PI_CANCEL.match(path):
        intent = PaymentIntent._api_retrieve(match.group(1))  # noqa: SLF001
        schedule_webhook(Event("payment_intent.canceled", intent))
    elif _REFUND_CREATE.match(path):
        refund = Refund._api_retrieve(json.loads(response.body)["id"])  # noqa: SLF001
        schedule_webhook(Event("refund.created", refund))
        schedule_webhook(Event("charge.refunded", Charge._api_retrieve(refund.charge)))  # noqa: SLF001
    return response


_JS_PATH = "/js.stripe.com/v3/"
_JS_SOURCE = (Path(localstripe.__file__).parent / "localstripe-v3.js").read_text()
# A function scope, not a module or block: `document.currentScript` still works and the
# script's `Stripe = ...` (sloppy mode) still makes the global it is meant to.
_JS_WRAPPED = "(function () {\n" + _JS_SOURCE + "\n})();\n"


@web.middleware
async def scoped_stripe_js(request: web.Request, handler):  # noqa: ANN001
    if request.method == "GET" and request.path == _JS_PATH:
        return web.Response(text=_JS_WRAPPED, content_type="application/javascript")
    return await handler(request)


async def forget_webhooks(request: web.Request) -> web.Response:
    webhooks._webhooks.clear()  # noqa: SLF001
    for task in list(_pending):
        task.cancel()
    return web.Response()


# Outermost first: localstripe's (errors, auth, save) wrap ours; events see the final answer.
app.middlewares.append(scoped_stripe_js)
app.middlewares.append(stripe_events)
app.middlewares.append(idempotency)
app.router.add_delete("/_config/webhooks", forget_webhooks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    store.clear()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sys.stdout.write(f"LOCALSTRIPE_PORT={sock.getsockname()[1]}\n")
    sys.stdout.flush()
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
