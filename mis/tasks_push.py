"""Thin tasks of the appointment push: take ids, call a service. The `PushJob` rows are
the record (DESIGN.md rule 1); the sweep finds what is due or was lost."""

from __future__ import annotations

from celery import shared_task

from mis import services_push

# The rows are the record: nobody reads these tasks' results.
SEND_OPTIONS = {
    "acks_late": True,
    "ignore_result": True,
    "soft_time_limit": services_push.SEND_TIME_LIMIT - 15,
    "time_limit": services_push.SEND_TIME_LIMIT,
}


@shared_task(name="mis.push_send", **SEND_OPTIONS)
def push_send_task(job_id: int) -> str:
    """Send one appointment change to the MIS (idempotent; see services_push)."""
    return services_push.push_send(job_id=job_id)


@shared_task(name="mis.sweep_pushes", ignore_result=True)
def sweep_pushes() -> int:
    """Beat, every minute: pushes that are due again (backoff over) or were lost."""
    return services_push.push_sweep()
