"""Thin tasks: take ids, call a service. The sweeps find work in PostgreSQL, so a lost
message is picked up by the next run."""

from celery import shared_task

from scheduling import services


@shared_task(name="scheduling.release_expired_holds")
def release_expired_holds() -> int:
    return len(services.release_expired_holds())


# The waitlist's tasks live in their own module; importing it here lets Celery's
# autodiscovery (which reads tasks.py) register them.
from scheduling import tasks_waitlist  # noqa: E402, F401
