"""Celery tasks of the patient's data exports. Thin: take ids, call a service; the
`DataRequest` row is the record of work to do (DESIGN.md rule 1).

Celery's autodiscovery reads records/tasks.py: that module must import this one for a
worker to register these tasks (`from records import tasks_data_rights  # noqa: F401`),
and the beat schedule needs `records.sweep_data_exports` every minute (the lead adds
both; until then the export page re-sends a job that waited over a minute).
"""

from celery import shared_task

from records import services_data_rights


@shared_task(name="records.render_data_export")
def render_data_export(request_id: int) -> str:
    """Render one PDF export (idempotent: a finished request is left as it is)."""
    request = services_data_rights.data_export_pdf_run(request_id=request_id)
    return request.status if request is not None else "missing"


@shared_task(name="records.sweep_data_exports")
def sweep_data_exports() -> int:
    """Every minute (beat): queue again exports whose message or worker was lost, and
    delete prepared files past their download period."""
    return len(services_data_rights.data_export_sweep())
