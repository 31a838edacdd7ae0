"""Thin tasks for video consultations (registered by TelemedicineConfig.ready()).

Closing a LiveKit room is a nudge after the commit: the consultation's state in
PostgreSQL already refuses new tokens, so a lost message leaves at most a room that
LiveKit closes by itself once it is empty.
"""

from __future__ import annotations

from celery import shared_task

from telemedicine import livekit


@shared_task(
    name="telemedicine.close_livekit_room",
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def close_livekit_room(room_name: str) -> bool:
    return livekit.room_delete(room_name)
