"""Deployment files: the Compose file, the nginx config, the CI entry point, the docs.

Plain file checks; no database.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"
README = ROOT / "README.md"

APP_SERVICES = ("migrate", "web", "worker", "beat")


def _compose() -> dict:
    from ruamel.yaml import YAML  # installed with check-jsonschema

    return YAML(typ="safe").load(COMPOSE.read_text())


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def _documented(name: str) -> bool:
    return f"`{name}`" in README.read_text()


def test_compose_file_is_valid_against_the_compose_spec():
    checker = Path(sys.executable).with_name("check-jsonschema")
    executable = str(checker) if checker.exists() else shutil.which("check-jsonschema")
    assert executable, "check-jsonschema is not installed"
    result = subprocess.run(
        [executable, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_defines_the_services():
    services = _compose()["services"]
    for name in ("db", "redis", "migrate", "web", "worker", "beat", "proxy"):
        assert name in services, name
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "healthcheck" in services["db"]
    assert any(v.startswith("pgdata:") for v in services["db"]["volumes"])
    assert services["proxy"]["image"].startswith("nginx")


def test_web_runs_gunicorn_in_production():
    services = _compose()["services"]
    web = services["web"]
    assert re.search(r"\bgunicorn\b.*\bclinic\.wsgi\b", _command(web))
    assert web["environment"]["DJANGO_ENV"] == "production"
    for name in APP_SERVICES:
        assert services[name]["environment"]["DJANGO_ENV"] == "production", name
        assert services[name]["env_file"] == ".env", name


def test_worker_beat_and_migrate_commands():
    services = _compose()["services"]
    assert re.search(r"celery .*worker", _command(services["worker"]))
    assert re.search(r"celery .*beat", _command(services["beat"]))
    assert "migrate" in _command(services["migrate"])
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
    # Beat must never run twice: no replicas setting on it.
    assert "replicas" not in (services["beat"].get("deploy") or {})


def test_only_the_proxy_publishes_ports():
    services = _compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}
    ports = {str(p) for p in services["proxy"]["ports"]}
    assert {"80:80", "443:443"} <= ports
    mounts = " ".join(services["proxy"]["volumes"])
    assert "./deploy/nginx.conf:" in mounts
    assert "./deploy/certs:" in mounts


def test_nginx_offers_only_tls_1_2_and_1_3():
    conf = NGINX.read_text()
    directives = re.findall(r"^\s*ssl_protocols\s+([^;]*);", conf, re.MULTILINE)
    assert directives == ["TLSv1.2 TLSv1.3"]
    code = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    for old in ("SSLv2", "SSLv3", "TLSv1 ", "TLSv1;", "TLSv1.1"):
        assert old not in code, old


def test_nginx_redirects_http_and_forwards_the_scheme():
    conf = NGINX.read_text()
    assert re.search(r"listen\s+80\b", conf)
    assert "return 301 https://$host$request_uri;" in conf
    assert re.search(r"listen\s+443\s+ssl", conf)
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    assert "/etc/nginx/certs/" in conf
    assert "web:8000" in conf


def _compose_variables() -> set[str]:
    """Variables the Compose file passes to containers or interpolates."""
    services = _compose()["services"]
    names: set[str] = set()
    for service in services.values():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            names.update(item.split("=", 1)[0] for item in environment)
        else:
            names.update(environment)
    names.update(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    # The official postgres image's own variables are documented with POSTGRES_PASSWORD.
    return names - {"POSTGRES_DB", "POSTGRES_USER"}


def test_every_compose_variable_is_documented_in_readme():
    missing = sorted(name for name in _compose_variables() if not _documented(name))
    assert not missing, f"document these in README.md: {missing}"


def test_every_settings_variable_is_documented_in_readme():
    settings = (ROOT / "clinic" / "settings.py").read_text()
    names = set(re.findall(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", settings))
    assert {"DJANGO_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= names
    missing = sorted(name for name in names if not _documented(name))
    assert not missing, f"document these in README.md: {missing}"


def test_env_example_lists_only_documented_variables():
    example = (ROOT / ".env.example").read_text()
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE)
    assert "SECRET_KEY" in names and "POSTGRES_PASSWORD" in names
    missing = sorted(name for name in set(names) if not _documented(name))
    assert not missing, f"document these in README.md: {missing}"


def test_dockerfile_installs_from_the_hashed_lock():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    for package in (
        "libpango-1.0-0",
        "libpangoft2-1.0-0",
        "libharfbuzz-subset0",
        "fonts-dejavu-core",
    ):
        assert package in dockerfile
    assert re.search(r"^USER\s+(?!root)\w+", dockerfile, re.MULTILINE), "must not run as root"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".local/" in ignored and ".venv/" in ignored


def test_ci_entry_point_runs_make_test():
    script = ROOT / ".ci" / "run"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/bash")
    assert "set -euo pipefail" in text
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert any(re.search(r"\bmake test\b", line) for line in code)
    assert script.stat().st_mode & 0o111, ".ci/run must be executable"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_entry_point_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_makefile_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("venv", "sysdeps", "run", "test", "lint", "fmt", "lock", "messages",
                   "compilemessages", "clean"):  # fmt: skip
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    assert "--require-hashes -r requirements-dev.lock" in makefile
    assert "$(PYTEST_ARGS)" in makefile
