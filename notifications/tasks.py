"""Thin tasks: take ids, call a service. The sweeps find work in PostgreSQL, so a lost
message is picked up by the next run."""

from celery import shared_task

from notifications import services

# The rows are the record: nobody reads these tasks' results.
SEND_OPTIONS = {
    "acks_late": True,
    "ignore_result": True,
    "soft_time_limit": services.SEND_TIME_LIMIT - 15,
    "time_limit": services.SEND_TIME_LIMIT,
}


@shared_task(name="notifications.send_reminder", **SEND_OPTIONS)
def send_reminder(reminder_id: int) -> str:
    return services.reminder_send(reminder_id=reminder_id)


@shared_task(name="notifications.send_message", **SEND_OPTIONS)
def send_message(message_id: int) -> str:
    return services.message_send(message_id=message_id)


@shared_task(name="notifications.sweep_reminders")
def sweep_reminders() -> dict[str, int]:
    """Beat, every minute: reminders and event messages that are due or were lost."""
    return {
        "reminders": services.reminders_sweep(),
        "messages": services.messages_sweep(),
    }
