"""Staff schedule pages, all under /staff/schedule/ (names `scheduling:staff_*`)."""

from django.urls import path

from scheduling.views import staff as views

DOCTOR = "staff/schedule/doctors/<int:doctor_id>/"
APPOINTMENT = "staff/schedule/appointments/<uuid:public_id>/"

urlpatterns = [
    path("staff/schedule/", views.schedule_home, name="staff_schedule"),
    path("staff/schedule/reviews/", views.reviews, name="staff_reviews"),
    path(f"{DOCTOR}day/", views.day, name="staff_day"),
    path(f"{DOCTOR}week/", views.week, name="staff_week"),
    path(f"{DOCTOR}hours/", views.hours, name="staff_hours"),
    path(f"{DOCTOR}hours/<int:hours_id>/", views.hours_edit, name="staff_hours_edit"),
    path(f"{DOCTOR}hours/<int:hours_id>/delete/", views.hours_delete, name="staff_hours_delete"),
    path(f"{DOCTOR}time-off/", views.exceptions, name="staff_exceptions"),
    path(
        f"{DOCTOR}time-off/<int:exception_id>/delete/",
        views.exception_delete,
        name="staff_exception_delete",
    ),
    path(f"{DOCTOR}capacity/", views.capacity, name="staff_capacity"),
    path(f"{DOCTOR}book/", views.book, name="staff_book"),
    path(f"{DOCTOR}book/<int:profile_id>/", views.book_patient, name="staff_book_patient"),
    path(APPOINTMENT, views.appointment, name="staff_appointment"),
    path(f"{APPOINTMENT}status/", views.appointment_status, name="staff_appointment_status"),
    path(f"{APPOINTMENT}cancel/", views.appointment_cancel, name="staff_appointment_cancel"),
    path(
        f"{APPOINTMENT}reschedule/",
        views.appointment_reschedule,
        name="staff_appointment_reschedule",
    ),
]
