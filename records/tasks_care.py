"""Celery task for reminders of unfinished intake forms (a beat sweep; the lead adds
its schedule). Thin: the service finds the due forms in PostgreSQL, marks them reminded
and fires `records.hooks.intake_form_reminder_due` on commit, so a lost run is picked up
by the next and nobody is reminded twice.

Celery's autodiscovery reads records/tasks.py: that module (or the app config) must
import this one for the worker to register the task."""

from celery import shared_task

from records import services_care


@shared_task(name="records.intake_forms_due_reminders")
def intake_forms_due_reminders() -> int:
    return len(services_care.intake_forms_due_reminders())
