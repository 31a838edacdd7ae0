"""Thin tasks: take ids, call a service. The sweep finds work in PostgreSQL, so a lost
message is picked up by the next run."""

from celery import shared_task

from notifications import services


@shared_task(name="notifications.send_reminder", acks_late=True)
def send_reminder(reminder_id: int) -> str:
    return services.reminder_send(reminder_id=reminder_id)


@shared_task(name="notifications.sweep_reminders")
def sweep_reminders() -> int:
    return services.reminders_sweep()
