"""Live queue (patient status, reception desk, waiting-room display) and waitlist URLs."""

from django.urls import path

from scheduling.views import queue as views

urlpatterns = [
    # The patient's live status ("Booked 14:30" / "Live queue: now seeing 4 of 7 …").
    path("queue/me/", views.queue_me, name="queue_me"),
    path("queue/me/status/", views.queue_me_status, name="queue_me_status"),
    # Reception's desk (doctors see their own tickets there).
    path("staff/queue/", views.queue_staff_home, name="queue_staff_home"),
    path("staff/queue/<slug:code>/", views.queue_staff, name="queue_staff"),
    path("staff/queue/<slug:code>/list/", views.queue_staff_list, name="queue_staff_list"),
    path(
        "staff/queue/<slug:code>/check-in/<uuid:public_id>/",
        views.queue_check_in,
        name="queue_check_in",
    ),
    path(
        "staff/queue/tickets/<int:ticket_id>/<slug:action>/",
        views.queue_ticket_action,
        name="queue_ticket_action",
    ),
    # The waiting-room screen: ticket numbers only, no sign-in.
    path("display/<slug:code>/", views.queue_display, name="queue_display"),
    path("display/<slug:code>/board/", views.queue_display_board, name="queue_display_board"),
    # The patient's waitlist and offers.
    path("waitlist/", views.waitlist, name="waitlist"),
    path("waitlist/<int:entry_id>/cancel/", views.waitlist_cancel, name="waitlist_cancel"),
    path(
        "waitlist/offers/<int:offer_id>/accept/",
        views.waitlist_offer_accept,
        name="waitlist_offer_accept",
    ),
    path(
        "waitlist/offers/<int:offer_id>/decline/",
        views.waitlist_offer_decline,
        name="waitlist_offer_decline",
    ),
]
