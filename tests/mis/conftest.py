"""Fixtures for the MIS integration: sekmet-fhir as the MIS, on loopback.

- `sekmet_server` (session): one sekmet for the whole run (installed into
  `.local/sekmet-venv` on first use). It is a `str`, the FHIR base URL, with helpers
  (see tests/mis/sekmet.py): `reset()`, `put()`, `transaction()`, `inject_raw()`,
  `stop()`/`start()`, `django_settings()`.
- `mis` (function): an empty, running sekmet, and Django settings pointing the portal's
  client at it (bearer auth). Use it in every test that talks to the MIS.
- `mis_down` (function): settings pointing at a port where nothing listens.
"""

from __future__ import annotations

import pytest

from tests.mis.sekmet import SekmetServer, closed_port_url


@pytest.fixture(scope="session")
def sekmet_server(tmp_path_factory):
    server = SekmetServer(tmp_path_factory.mktemp("sekmet"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mis(sekmet_server, settings):
    """An empty MIS for this test, and the portal configured to use it."""
    if not sekmet_server.running:  # a previous test took it down and failed midway
        sekmet_server.start()
    sekmet_server.reset()
    for name, value in sekmet_server.django_settings().items():
        setattr(settings, name, value)
    settings.MIS_SCHEDULE_MASTER = False
    yield sekmet_server
    if not sekmet_server.running:
        sekmet_server.start()


@pytest.fixture
def mis_down(settings):
    """The portal configured for an MIS that does not answer (nothing on that port)."""
    settings.MIS_FHIR_BASE_URL = closed_port_url()
    settings.MIS_FHIR_AUTH = ""
    settings.MIS_FHIR_TIMEOUT_SECONDS = 2.0
    return settings.MIS_FHIR_BASE_URL
