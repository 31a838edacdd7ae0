"""Fiscal receipts' tasks: thin, they take ids and call payments.services_fiscal. The
receipts are rows found by the sweep, so a lost message is picked up by the next run.

Celery's autodiscovery reads `payments/tasks.py`: that module imports this one."""

from celery import shared_task

from payments import services_fiscal
from payments.models import FiscalReceipt

# The rows are the record: nobody reads these tasks' results.
SEND_OPTIONS = {
    "acks_late": True,
    "ignore_result": True,
    "soft_time_limit": services_fiscal.SEND_TIME_LIMIT - 15,
    "time_limit": services_fiscal.SEND_TIME_LIMIT,
}


@shared_task(name="payments.send_receipt", **SEND_OPTIONS)
def send_receipt(receipt_id: int) -> str:
    """One try at a fiscal receipt (register it, or ask the operator for its report)."""
    try:
        return services_fiscal.receipt_send(receipt_id=receipt_id).state
    except FiscalReceipt.DoesNotExist:
        return "missing"


@shared_task(name="payments.sweep_receipts", ignore_result=True)
def sweep_receipts() -> int:
    """Beat, every minute: receipts due for a try (new, retrying, waiting, or lost)."""
    return services_fiscal.receipts_sweep()
