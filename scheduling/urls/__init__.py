"""Scheduling's URLs, one module per audience (patient, staff, queue and waitlist)."""

from scheduling.urls import patient, queue, staff

app_name = "scheduling"

urlpatterns = [*patient.urlpatterns, *staff.urlpatterns, *queue.urlpatterns]
