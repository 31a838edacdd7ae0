"""Patient pages: visit history, results (newest first), one report, an analyte's trend.

Thin views: one selector each (which checks access, answers 404 for missing and
forbidden alike and records the view), then presentation. Reports are named by their
public UUID; a trend by its LOINC code (an analyte, nothing personal).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from records import presentation, selectors


def _decorate_reports(reports) -> None:  # noqa: ANN001
    for report in reports:
        report.abnormal_count = presentation.abnormal_count(report)
        report.issued_text = presentation.local_time(report.issued_at)


@login_required
@require_GET
def visits(request: HttpRequest) -> HttpResponse:
    page = selectors.visits_page(request.user, request.GET.get("page"))
    for visit in page.object_list:
        visit.started_text = presentation.visit_time(visit.started_at, visit.location)
        for report in visit.released_reports:
            report.issued_text = presentation.local_time(report.issued_at)
    return render(request, "records/patient/visits.html", {"page": page})


@login_required
@require_GET
def results(request: HttpRequest) -> HttpResponse:
    page = selectors.results_page(request.user, request.GET.get("page"))
    _decorate_reports(page.object_list)
    return render(request, "records/patient/results.html", {"page": page})


@login_required
@require_GET
def result_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    report = selectors.lab_report_get_for(request.user, public_id, audience="patient")
    context = {
        "report": report,
        "rows": presentation.observation_rows(report),
        "issued": presentation.local_time(report.issued_at),
        "collected": presentation.local_time(report.collected_at),
        "reviewed": presentation.local_time(report.reviewed_at),
    }
    return render(request, "records/patient/result_detail.html", context)


@login_required
@require_GET
def trend(request: HttpRequest, loinc_code: str) -> HttpResponse:
    series = selectors.patient_trend(request.user, loinc_code)
    context = {
        "chart": presentation.trend_chart(series, loinc_code=loinc_code),
        "table": presentation.trend_rows(series),
        "help": presentation.TREND_HELP,
    }
    return render(request, "records/patient/trend.html", context)
