"""Thin tasks: take ids, load, call a service."""

from celery import shared_task

from accounts.models import User


@shared_task(
    name="accounts.send_email_verification",
    acks_late=True,
    max_retries=5,
    autoretry_for=(OSError,),
    retry_backoff=True,
)
def send_email_verification(user_id: int) -> None:
    from accounts.services import email_verification_send

    user = User.objects.filter(pk=user_id, is_active=True, email_verified_at__isnull=True).first()
    if user is None:  # verified or gone meanwhile: nothing to send
        return
    email_verification_send(user=user)
