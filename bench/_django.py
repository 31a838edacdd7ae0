"""Shared setup for benchmarks: Django on the configured (or embedded) database, in a
scratch database of its own so benchmark rows never mix with demo or test data."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def django_with_scratch_db(name: str) -> Iterator[None]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
    os.environ.setdefault("DJANGO_ENV", "test")
    with contextlib.ExitStack() as stack:
        if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
            from clinic.devrun import ensure_services

            urls = stack.enter_context(ensure_services(ROOT, log=None))
            for key, value in urls.items():
                os.environ.setdefault(key, value)
        import django

        django.setup()
        from django.db import connection
        from django.test.utils import setup_databases, teardown_databases

        os.environ["TEST_DATABASE_NAME"] = f"bench_{name}"
        from django.conf import settings

        settings.DATABASES["default"]["TEST"]["NAME"] = f"bench_{name}"
        old = setup_databases(verbosity=0, interactive=False)
        try:
            yield
        finally:
            connection.close()
            teardown_databases(old, verbosity=0)
