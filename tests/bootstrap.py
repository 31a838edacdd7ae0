"""pytest plugin loaded first (`-p tests.bootstrap` in pyproject): it decides which
PostgreSQL and Redis the suite talks to before Django reads its settings.

`DATABASE_URL` / `REDIS_URL` from the environment win; otherwise the embedded servers
from `clinic.devrun` start under `.local/` (the same default as `make run`) and stop
when the run ends.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

os.environ["DJANGO_ENV"] = "test"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
# Playwright's sync API runs an event loop in the test thread; live_server tests need this.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

_stack = contextlib.ExitStack()


def _bootstrap() -> None:
    # Runs at import, before pytest-django reads the settings in load_initial_conftests.
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):  # workers inherit the controller's URLs
        return
    from clinic.devrun import ensure_services

    urls = _stack.enter_context(
        ensure_services(
            Path(__file__).resolve().parent.parent,
            database=not os.environ.get("DATABASE_URL"),
            redis=not os.environ.get("REDIS_URL"),
        )
    )
    for key, value in urls.items():
        os.environ.setdefault(key, value)


_bootstrap()


def pytest_unconfigure(config) -> None:  # noqa: ANN001
    _stack.close()
