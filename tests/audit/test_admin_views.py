"""The audit trail in Django admin: filters, CSV export (link and action), reviews,
access control, and every look at the trail recorded in it."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Group

from accounts.models import Role
from audit.models import AuditAction, AuditEvent, BreakGlassReview
from audit.services import audit_record
from tests import factories
from tests.audit.conftest import frozen_audit_clock

pytestmark = pytest.mark.django_db

LIST = "/admin/audit/auditevent/"
EXPORT = "/admin/audit/auditevent/export/"


def _rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def _listed(response) -> set[int]:
    assert response.status_code == 200
    return {event.pk for event in response.context_data["cl"].queryset}


@pytest.fixture
def trail(doctor, reception, patient, other_patient):
    """A few events on known days, by known actors, about known patients."""
    day = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)
    made = {}
    with frozen_audit_clock(day):
        made["doc_p"] = audit_record(actor=doctor, action=AuditAction.VIEW, patient=patient)
    with frozen_audit_clock(day + dt.timedelta(days=1)):
        made["rec_p"] = audit_record(actor=reception, action=AuditAction.DOWNLOAD, patient=patient)
    with frozen_audit_clock(day + dt.timedelta(days=2)):
        made["doc_o_bg"] = audit_record(
            actor=doctor,
            action=AuditAction.VIEW,
            patient=other_patient,
            reason='=HYPERLINK("x")',  # a formula must not survive into the CSV
            break_glass=True,
        )
    return made


@pytest.fixture
def admin_client(client, login_staff, admin_user):
    # The assertions read English texts; staff accounts default to Russian.
    admin_user.language = "en"
    admin_user.save(update_fields=["language"])
    return login_staff(admin_user)


def test_changelist_lists_and_is_recorded(admin_client, admin_user, trail):
    response = admin_client.get(LIST)
    assert {e.pk for e in trail.values()} <= _listed(response)
    viewed = AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, object_type="audit.auditevent"
    ).get()
    assert viewed.detail == {"list": True}
    page = response.content.decode()
    assert 'href="/admin/audit/auditevent/export/"' in page
    assert "Not reviewed" in page  # the unreviewed break-glass row
    assert "Add audit event" not in page and "delete_selected" not in page


def test_filters_filter(admin_client, trail, doctor, patient):
    t = trail
    ours = {e.pk for e in t.values()}

    def listed(**params: object) -> set[int]:
        # Fixtures write events of their own (logins, MFA); look at the trail's rows.
        return _listed(admin_client.get(LIST, params)) & ours

    assert listed(actor=doctor.pk) == {t["doc_p"].pk, t["doc_o_bg"].pk}
    assert all(
        e.actor_id == doctor.pk
        for e in admin_client.get(LIST, {"actor": doctor.pk}).context_data["cl"].queryset
    )
    assert listed(patient=patient.pk) == {t["doc_p"].pk, t["rec_p"].pk}
    assert listed(action__exact="download") == {t["rec_p"].pk}
    assert listed(break_glass__exact="1") == {t["doc_o_bg"].pk}
    assert _listed(admin_client.get(LIST, {"break_glass__exact": "1"})) == {t["doc_o_bg"].pk}
    in_range = {"occurred_from": "2025-03-11", "occurred_to": "2025-03-12"}
    assert _listed(admin_client.get(LIST, in_range)) == {t["rec_p"].pk, t["doc_o_bg"].pk}
    assert _listed(admin_client.get(LIST, {"occurred_to": "2025-03-10"})) == {t["doc_p"].pk}
    assert listed(occurred_from="2025-03-12") == {t["doc_o_bg"].pk}
    assert (
        _listed(admin_client.get(LIST, {"occurred_at__year": "2025", "occurred_at__month": "3"}))
        == ours
    )
    assert listed(actor=doctor.pk, patient=patient.pk) == {t["doc_p"].pk}
    # The filter keeps the other filters when applied.
    page = admin_client.get(LIST, {"action__exact": "view"}).content.decode()
    assert '<input type="hidden" name="action__exact" value="view">' in page
    assert 'name="occurred_from"' in page and 'name="actor"' in page


def test_bad_filter_input_shows_a_message_and_lists_nothing(admin_client, trail):
    response = admin_client.get(LIST, {"actor": "doctor"})
    assert _listed(response) == set()
    assert "must be a user id" in response.content.decode()
    response = admin_client.get(LIST, {"occurred_from": "10.03.2025"})
    assert _listed(response) == set()
    assert "YYYY-MM-DD" in response.content.decode()
    response = admin_client.get(LIST, {"occurred_from": "2025-03-12", "occurred_to": "2025-03-10"})
    assert _listed(response) == set()


def test_export_link_keeps_the_filters_and_is_recorded(admin_client, admin_user, trail, doctor):
    page = admin_client.get(LIST, {"actor": doctor.pk, "p": "0"}).content.decode()
    assert f'href="/admin/audit/auditevent/export/?actor={doctor.pk}"' in page

    response = admin_client.get(EXPORT, {"actor": doctor.pk})
    rows = _rows(response)
    assert "attachment" in response["Content-Disposition"]
    assert list(rows[0]) == [
        "seq",
        "occurred_at",
        "actor_id",
        "actor_role",
        "action",
        "object_type",
        "object_id",
        "patient_id",
        "request_id",
        "ip_address",
        "reason",
        "break_glass",
        "hash",
    ]
    doc_p, doc_o_bg = trail["doc_p"], trail["doc_o_bg"]
    assert [int(r["seq"]) for r in rows] == [doc_p.seq, doc_o_bg.seq]
    assert rows[0]["occurred_at"] == "2025-03-10T12:00:00.000000Z"
    assert rows[0]["actor_id"] == str(doctor.pk) and rows[0]["actor_role"] == "doctor"
    assert rows[0]["hash"] == doc_p.hash and rows[0]["break_glass"] == "false"
    assert rows[1]["break_glass"] == "true"
    assert rows[1]["reason"] == '\'=HYPERLINK("x")'
    export = AuditEvent.objects.get(action=AuditAction.EXPORT)
    assert export.actor == admin_user and export.object_type == "audit.auditevent"
    assert export.detail == {"filters": {"actor": str(doctor.pk)}, "rows": 2}


def test_export_of_everything_is_exact_and_leaves_its_own_event_out(admin_client, trail):
    before = AuditEvent.objects.order_by("-seq").first()
    rows = _rows(admin_client.get(EXPORT))
    assert [int(r["seq"]) for r in rows] == list(range(1, before.seq + 1))
    export = AuditEvent.objects.get(action=AuditAction.EXPORT)
    assert export.detail == {"filters": {}, "rows": before.seq}


def test_export_action_on_selected_rows(admin_client, trail):
    chosen = [trail["doc_p"], trail["rec_p"]]
    response = admin_client.post(
        LIST,
        {"action": "export_csv", "_selected_action": [e.pk for e in chosen], "index": "0"},
    )
    assert [int(r["seq"]) for r in _rows(response)] == [e.seq for e in chosen]
    export = AuditEvent.objects.get(action=AuditAction.EXPORT)
    assert export.detail == {"filters": {"selected": True}, "rows": 2}


def test_opening_one_event_is_recorded(admin_client, admin_user, trail):
    event = trail["doc_o_bg"]
    response = admin_client.get(f"{LIST}{event.pk}/change/")
    assert response.status_code == 200
    assert event.hash in response.content.decode()
    assert AuditEvent.objects.filter(
        actor=admin_user, action=AuditAction.VIEW, object_id=str(event.pk)
    ).exists()
    # View-only: a POST changes nothing (the trigger would refuse it anyway).
    admin_client.post(f"{LIST}{event.pk}/change/", {"reason": "edited"})
    assert AuditEvent.objects.get(pk=event.pk).reason == event.reason


@pytest.mark.parametrize("url", [LIST, EXPORT, "/admin/audit/breakglassreview/add/"])
def test_clinical_staff_are_refused(client, login_staff, doctor, trail, url):
    login_staff(doctor)
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT).exists()


def test_admin_site_user_without_the_audit_permission_is_refused(client, login_staff, trail):
    user = factories.make_staff(Role.ADMIN)
    user.groups.clear()
    Group.objects.create(name="helpdesk")  # nothing granted
    login_staff(user)
    assert client.get(LIST).status_code == 403
    assert client.get(EXPORT).status_code == 403
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT).exists()


def test_admin_role_through_its_group_may_see_the_trail(client, login_staff, trail):
    user = factories.make_staff(Role.ADMIN)  # not a superuser
    login_staff(user)
    assert client.get(LIST).status_code == 200
    assert len(_rows(client.get(EXPORT))) >= 3


def test_review_a_break_glass_access_in_admin(admin_client, admin_user, trail, doctor):
    access = trail["doc_o_bg"]
    add = "/admin/audit/breakglassreview/add/"
    assert admin_client.get(add, {"event": access.pk}).status_code == 200
    response = admin_client.post(
        add, {"event": access.pk, "outcome": "justified", "note": "ER admission"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    review = BreakGlassReview.objects.get()
    assert (review.event, review.reviewed_by, review.outcome) == (access, admin_user, "justified")
    assert AuditEvent.objects.filter(action=AuditAction.REVIEW, actor=admin_user).exists()
    page = admin_client.get(LIST, {"break_glass__exact": "1"}).content.decode()
    assert "Justified" in page and "Not reviewed" not in page
    assert admin_client.get(f"/admin/audit/breakglassreview/{review.pk}/change/").status_code == 200


def test_review_form_shows_the_rules_as_errors(admin_client, trail):
    add = "/admin/audit/breakglassreview/add/"
    # An ordinary event is not even a valid choice (limit_choices_to on the field).
    not_bg = admin_client.post(add, {"event": trail["doc_p"].pk, "outcome": "justified"})
    assert not_bg.status_code == 200
    assert "event" in not_bg.context_data["adminform"].form.errors
    no_note = admin_client.post(add, {"event": trail["doc_o_bg"].pk, "outcome": "unjustified"})
    assert "Say why the access was not justified" in no_note.content.decode()
    assert not BreakGlassReview.objects.exists()


def test_nobody_reviews_their_own_break_glass(admin_client, admin_user, patient):
    own = audit_record(
        actor=admin_user, action=AuditAction.VIEW, patient=patient, reason="x", break_glass=True
    )
    response = admin_client.post(
        "/admin/audit/breakglassreview/add/", {"event": own.pk, "outcome": "justified"}
    )
    assert response.status_code == 200
    assert "Nobody reviews their own" in response.content.decode()
    assert not BreakGlassReview.objects.exists()


def test_event_picker_popup_lists_only_break_glass_events(admin_client, trail):
    response = admin_client.get(LIST, {"_popup": "1", "_to_field": "id", "break_glass": "1"})
    assert _listed(response) == {trail["doc_o_bg"].pk}
    assert "export/?break_glass=1" in response.content.decode()
