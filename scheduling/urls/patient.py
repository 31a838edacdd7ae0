"""Patient pages: booking under /book/, the patient's own appointments under
/appointments/<public_id>/ (a UUID, never the row id)."""

from django.urls import path

from scheduling.views import patient as views

urlpatterns = [
    path("book/", views.book, name="book"),
    path("book/confirm/", views.book_confirm, name="book_confirm"),
    path("book/doctor/<int:doctor_id>/", views.doctor, name="doctor"),
    path("book/doctor/<int:doctor_id>/slots/", views.doctor_slots, name="doctor_slots"),
    path("book/<slug:code>/", views.book_specialty, name="book_specialty"),
    path("appointments/", views.my_appointments, name="my_appointments"),
    path("appointments/<uuid:public_id>/", views.appointment_detail, name="appointment_detail"),
    path(
        "appointments/<uuid:public_id>/booked/",
        views.appointment_booked,
        name="appointment_booked",
    ),
    path(
        "appointments/<uuid:public_id>/payment/",
        views.appointment_payment,
        name="appointment_payment",
    ),
    path(
        "appointments/<uuid:public_id>/calendar.ics",
        views.appointment_calendar,
        name="appointment_calendar",
    ),
    path(
        "appointments/<uuid:public_id>/cancel/",
        views.appointment_cancel,
        name="appointment_cancel",
    ),
    path(
        "appointments/<uuid:public_id>/move/",
        views.appointment_reschedule,
        name="appointment_reschedule",
    ),
    path(
        "appointments/<uuid:public_id>/move/slots/",
        views.appointment_reschedule_slots,
        name="appointment_reschedule_slots",
    ),
    path(
        "appointments/<uuid:public_id>/review/",
        views.appointment_review,
        name="appointment_review",
    ),
]
