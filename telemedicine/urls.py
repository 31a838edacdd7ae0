"""Telemedicine URLs (names `telemedicine:*`), mounted at /telemedicine/: video
consultations and their waiting room, the doctor's consultation screen, and secure
messaging with the care team. Appointments and threads are named by public UUIDs."""

from django.urls import include, path

app_name = "telemedicine"

urlpatterns = [
    path("", include("telemedicine.urls_video")),
    path("consult/", include("telemedicine.urls_consult")),
    path("messages/", include("telemedicine.urls_messaging")),
]
