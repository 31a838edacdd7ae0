"""Waitlist tasks: the offer expiry sweep (beat, every minute) and offering a freed slot.

Thin: ids in, one service call. PostgreSQL holds the state, so a lost message is made
good by the next sweep (see scheduling/waitlist.py)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from scheduling import waitlist
from scheduling.models import ConsultationType


@shared_task(name="scheduling.expire_waitlist_offers")
def expire_waitlist_offers() -> dict[str, int]:
    expired = waitlist.expire_waitlist_offers()
    offered = waitlist.offer_recently_freed_slots()
    return {"expired": expired, "offered": offered}


@shared_task(name="scheduling.offer_freed_slot")
def offer_freed_slot(doctor_id: int, starts_at_iso: str, consultation_type_id: int) -> int | None:
    consultation_type = ConsultationType.objects.filter(pk=consultation_type_id).first()
    if consultation_type is None:
        return None
    offer = waitlist.waitlist_offer_next(
        doctor_id=doctor_id,
        starts_at=datetime.fromisoformat(starts_at_iso),
        consultation_type=consultation_type,
    )
    return offer.pk if offer is not None else None
