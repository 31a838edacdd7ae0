from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    # Short, opaque and personal-data free: the token is random and signed.
    path("r/<str:token>/", views.action_link, name="action_link"),
    path("portal/me/messages/", views.preferences, name="preferences"),
    path("staff/appointments/<uuid:public_id>/follow-up/", views.follow_up, name="follow_up"),
]
