"""Telemedicine URLs: the doctor's consultation screen of a video appointment (mounted
at /telemedicine/consult/, names `telemedicine:consult*`), named by the appointment's
public UUID. The page, its htmx panel (which the doctor's video page loads), and one
small form each for a note, a prescription, a referral and the post-call summary."""

from django.urls import path

from telemedicine import views_consult as views

urlpatterns = [
    path("<uuid:public_id>/", views.consult, name="consult"),
    path("<uuid:public_id>/panel/", views.consult_panel, name="consult_panel"),
    path("<uuid:public_id>/notes/", views.consult_note, name="consult_note"),
    path(
        "<uuid:public_id>/prescriptions/",
        views.consult_prescription,
        name="consult_prescription",
    ),
    path("<uuid:public_id>/referrals/", views.consult_referral, name="consult_referral"),
    path("<uuid:public_id>/summary/", views.consult_summary, name="consult_summary"),
]
