# Production image for the clinic portal: web (gunicorn), Celery worker and beat.
# Built and run by docker-compose.yml; see README.md, "Deployment".
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# WeasyPrint needs pango and harfbuzz; DejaVu has the Cyrillic glyphs; gettext compiles
# the translations.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core gettext \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY . .

# Static files are collected with the production storage (hashed, compressed names).
# Production settings refuse the public development keys, so this step gets random
# throwaway keys that exist only for the duration of the command.
RUN set -eu; \
    key() { python -c 'import secrets; print(secrets.token_urlsafe(64))'; }; \
    DJANGO_ENV=production DEBUG=false \
    SECRET_KEY="$(key)" SALT_KEY="$(key)" BLIND_INDEX_KEY="$(key)" \
    python manage.py collectstatic --noinput; \
    if [ -d locale ]; then DJANGO_ENV=development python manage.py compilemessages -i .venv; fi; \
    mkdir -p /data/media; \
    chown app:app /data/media

USER app
ENV DJANGO_ENV=production \
    MEDIA_ROOT=/data/media
EXPOSE 8000
# Workers: $WEB_CONCURRENCY (read by gunicorn).
CMD ["gunicorn", "clinic.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
