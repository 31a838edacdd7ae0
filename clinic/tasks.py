"""Tasks of the project package itself: the worker's heartbeat for /healthz."""

from celery import shared_task


@shared_task(name="clinic.ping")
def ping() -> str:
    """Answered by any live worker; /healthz and the worker test use it."""
    return "pong"
