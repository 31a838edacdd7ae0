"""Print the current TOTP code of a demo staff account (development only)."""

from allauth.mfa.totp.internal.auth import (
    format_hotp_value,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from clinic.management.commands.seed_demo import DOMAIN, demo_totp_secret


class Command(BaseCommand):
    help = "Print the current authenticator code of a demo staff account."

    def add_arguments(self, parser):  # noqa: ANN001, ANN201
        parser.add_argument("email")

    def handle(self, *args, email: str, **options):  # noqa: ANN001, ANN201
        if settings.PRODUCTION:
            raise CommandError("demo_totp is for demo data only.")
        if not email.endswith(f"@{DOMAIN}"):
            raise CommandError(f"Only demo accounts (@{DOMAIN}) have a known secret.")
        counter = next(iter(yield_hotp_counters_from_time()))
        secret = demo_totp_secret(email)
        self.stdout.write(format_hotp_value(hotp_value(secret, counter)))
        self.stdout.write(f"secret (add to an authenticator app): {secret}")
