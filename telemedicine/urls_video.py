"""Telemedicine URLs: video consultations (mounted at /telemedicine/, names
`telemedicine:*`). Appointments are named by their public UUIDs; the LiveKit room name
never appears in a URL."""

from django.urls import path

from telemedicine import views_video as views
from telemedicine import webhooks

urlpatterns = [
    path("video/<uuid:public_id>/", views.video_room, name="video_room"),
    path("video/<uuid:public_id>/status/", views.video_status, name="video_status"),
    path("video/<uuid:public_id>/token/", views.video_token, name="video_token"),
    path(
        "video/<uuid:public_id>/recording-consent/",
        views.video_recording_consent,
        name="video_recording_consent",
    ),
    path("video/<uuid:public_id>/end/", views.video_end, name="video_end"),
    path("video/waiting/", views.video_waiting_list, name="video_waiting_list"),
    path("video/waiting/rows/", views.video_waiting_list_rows, name="video_waiting_list_rows"),
    # LiveKit's server posts here; authenticated by its signature, not a session.
    path("livekit/webhook/", webhooks.livekit_webhook, name="livekit_webhook"),
]
