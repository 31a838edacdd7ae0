"""Records' Celery tasks. Thin: take ids, call a service. Rows in PostgreSQL are the
record of work to do (DESIGN.md rule 1); a message is a nudge, and the sweeps find work
whose message was lost."""

from celery import shared_task

from records import services_documents


@shared_task(name="records.render_pdf")
def render_pdf(job_id: int) -> str:
    """Render one PdfRender job's PDF (idempotent: a ready job is left as it is)."""
    job = services_documents.pdf_render_run(job_id=job_id)
    return job.state if job is not None else "missing"


@shared_task(name="records.sweep_pdf_renders")
def sweep_pdf_renders() -> int:
    """Every minute (beat): queue again the render jobs whose message or worker was lost."""
    return len(services_documents.pdf_render_sweep())


# Other parts of records keep their tasks in their own modules; importing them here lets
# Celery's autodiscovery (which reads tasks.py) register them.
from records import tasks_care, tasks_data_rights  # noqa: E402, F401
