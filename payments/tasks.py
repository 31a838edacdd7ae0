"""Thin tasks: take ids, call a service. Refund rows are the record; the sweep resends
what a lost message left pending."""

from celery import shared_task

from payments import services, workflows

PROVIDER_CALL_OPTIONS = {
    "acks_late": True,
    "ignore_result": True,
    "soft_time_limit": 45,
    "time_limit": 60,
}


@shared_task(name="payments.send_refund", **PROVIDER_CALL_OPTIONS)
def send_refund(refund_id: int) -> str:
    return services.refund_send(refund_id=refund_id).status


@shared_task(name="payments.cancel_intent", **PROVIDER_CALL_OPTIONS)
def cancel_intent(intent_id: str) -> str:
    payment = workflows.intent_cancel(intent_id=intent_id)
    return payment.status if payment else "not ours"


@shared_task(name="payments.sync_intent", **PROVIDER_CALL_OPTIONS)
def sync_intent(intent_id: str) -> str:
    payment = workflows.payment_intent_sync(intent_id=intent_id)
    return payment.status if payment else "not ours"


@shared_task(name="payments.sweep")
def sweep() -> dict[str, int]:
    """Beat, every minute: refunds still pending after their task, and open payments
    whose webhook never came (each is re-read from the provider)."""
    stale = workflows.stale_intents()
    for intent_id in stale:
        sync_intent.delay(intent_id)
    return {"refunds": services.refunds_sweep(), "payments": len(stale)}


# Celery discovers `tasks` modules only: the fiscal receipts' tasks live beside their code.
from payments import tasks_fiscal  # noqa: E402, F401
