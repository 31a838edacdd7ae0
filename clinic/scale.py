"""What the data-scale commands of the apps share (DESIGN.md "Performance budgets": a
data scale built by a command).

`manage.py seed_scale` (clinic/management/commands/seed_scale.py) runs each app's part:
`seed_scale_scheduling` (patients, doctors, appointments) and then `seed_scale_records`
(lab reports and observations of those patients). The apps may not import each other,
so what they must agree on lives here: the marker of scale accounts and the refusal to
run in production.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError

# Every account the scale commands create has this password: unusable (Django treats a
# value starting with "!" as "no password"), so scale accounts can never sign in with
# one, and it tells scale rows from real ones.
SCALE_PASSWORD = "!seed_scale"  # noqa: S105 - a marker, not a secret


def refuse_production(command: str = "seed_scale") -> None:
    if settings.PRODUCTION:
        raise CommandError(f"{command} refuses to run with DJANGO_ENV=production.")
