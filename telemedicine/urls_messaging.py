"""Telemedicine URLs: secure messaging (names `telemedicine:*`), under
/telemedicine/messages/. Threads and attachments are named by public UUIDs.

The patient's inbox and new-thread form; the staff queue; one thread (the same pages for
the patient and for staff, each seeing what they may) with its live part, reply, close
and reopen, and the staff's take, state and route actions; an attached file."""

from django.urls import path

from telemedicine import views_messaging as views

urlpatterns = [
    path("", views.inbox, name="inbox"),
    # ?topic=appointment&about=<appointment public id> preselects both.
    path("new/", views.thread_new, name="thread_new"),
    path("queue/", views.queue, name="queue"),
    path("<uuid:public_id>/", views.thread, name="thread"),
    path("<uuid:public_id>/poll/", views.thread_poll, name="thread_poll"),
    path("<uuid:public_id>/reply/", views.thread_reply, name="thread_reply"),
    path("<uuid:public_id>/close/", views.thread_close, name="thread_close"),
    path("<uuid:public_id>/reopen/", views.thread_reopen, name="thread_reopen"),
    path("<uuid:public_id>/take/", views.thread_take, name="thread_take"),
    path("<uuid:public_id>/state/", views.thread_state, name="thread_state"),
    path("<uuid:public_id>/route/", views.thread_route, name="thread_route"),
    path("files/<uuid:public_id>/", views.attachment, name="attachment"),
]
