"""Settings for the clinic portal, read from the environment (django-environ).

`DJANGO_ENV` is one of `development` (default), `test` or `production`.
Production refuses to start with the development keys or with DEBUG on; the
list of every variable is in README.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(
        f"DJANGO_ENV must be development, test or production, not {DJANGO_ENV!r}"
    )
PRODUCTION = DJANGO_ENV == "production"

# Well-known development keys. They are public (they are in this file), so production
# refuses to run with them; see check_production_settings() below.
DEV_SECRET_KEY = "dev-only-secret-key-not-for-production-7f3a1c9e5b2d4f6a8c0e"  # noqa: S105
DEV_SALT_KEY = "dev-only-salt-key-not-for-production"  # noqa: S105
DEV_BLIND_INDEX_KEY = "dev-only-blind-index-key-not-for-production"  # noqa: S105

DEBUG = env.bool("DEBUG", default=DJANGO_ENV == "development")
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
# Old secrets stay here after a rotation so sessions and encrypted columns still
# open; `manage.py reencrypt` moves every column to the current key.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
# encrypted_fields derives one Fernet key per (secret, salt) pair; the first pair encrypts.
SALT_KEY = env.list("SALT_KEY", default=[DEV_SALT_KEY])
# Key for the HMAC blind indexes (exact lookup of SNILS, passport, email). Separate from
# the encryption keys so a leaked index key reveals nothing by itself.
BLIND_INDEX_KEY = env.str("BLIND_INDEX_KEY", default=DEV_BLIND_INDEX_KEY)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
CLINIC_NAME = env.str("CLINIC_NAME", default="Clinic Network")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "axes",
    "guardian",
    "django_htmx",
    "django_celery_beat",
    "pgtrigger",
    "audit",
    "accounts",
    "scheduling",
    "records",
    "telemedicine",
    "payments",
    "notifications",
    "mis",
    "clinic",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "audit.context.AuditContextMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SessionLifetimeMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "accounts.middleware.UserTimezoneMiddleware",
    "accounts.middleware.StaffMFARequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "clinic.middleware.NoStoreForPersonalPagesMiddleware",
    # Axes last: it inspects the response of failed logins.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "clinic.urls"
WSGI_APPLICATION = "clinic.wsgi.application"
ASGI_APPLICATION = "clinic.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "clinic.context_processors.portal",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/clinic"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str(
    "TEST_DATABASE_NAME", default="test_clinic"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and Celery broker ----------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str(
            "CACHE_KEY_PREFIX", default="clinic-test" if DJANGO_ENV == "test" else "clinic"
        ),
        "TIMEOUT": 300,
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_RESULT_EXPIRES = 3600
# DESIGN.md: the Redis visibility timeout is 1 h, so no ETA task may be further out.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = False
if DJANGO_ENV == "test":
    # Tasks a test enqueues must never reach a development worker sharing the broker.
    CELERY_TASK_DEFAULT_QUEUE = "test-suite"
# Periodic sweeps (installed into django-celery-beat's tables by the DB scheduler).
CELERY_BEAT_SCHEDULE = {
    "release-expired-holds": {"task": "scheduling.release_expired_holds", "schedule": 60.0},
    "expire-waitlist-offers": {"task": "scheduling.expire_waitlist_offers", "schedule": 60.0},
    "sweep-reminders": {"task": "notifications.sweep_reminders", "schedule": 60.0},
    "sweep-pdf-renders": {"task": "records.sweep_pdf_renders", "schedule": 60.0},
    "sweep-data-exports": {"task": "records.sweep_data_exports", "schedule": 60.0},
    "intake-form-reminders": {"task": "records.intake_forms_due_reminders", "schedule": 900.0},
    "sweep-payments": {"task": "payments.sweep", "schedule": 60.0},
    "mis-sync-sweep": {"task": "mis.sync_sweep", "schedule": 60.0},
    "mis-push-sweep": {"task": "mis.sweep_pushes", "schedule": 60.0},
    "sweep-fiscal-receipts": {"task": "payments.sweep_receipts", "schedule": 60.0},
}

# --- Auth --------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# The email column is ciphertext; its uniqueness is enforced on the blind index email_index.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.validators.WeakPatternPasswordValidator"},
]

if DJANGO_ENV == "test":
    # Hashing cost is not under test; PBKDF2 would dominate the suite's run time.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# allauth: email login; verification is ours (accounts.services), see docs/adr/0003.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_USER_MODEL_EMAIL_FIELD = "email"
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_PREVENT_ENUMERATION = True
# Per account and address, axes locks out after 10 failures; this wider limit stops one
# address from trying many accounts.
ACCOUNT_RATE_LIMITS = {"login_failed": "50/15m/ip"}
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = not PRODUCTION
MFA_TOTP_ISSUER = CLINIC_NAME
MFA_ADAPTER = "accounts.adapters.MFAAdapter"

# django-axes: 10 failures per (account, IP) in 15 minutes, then a cool-off that ends.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "login"
AXES_USERNAME_CALLABLE = "accounts.axes.username_from_request"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("PROXY_COUNT", default=0)
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
AXES_VERBOSE = False

GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None

# --- Sessions ----------------------------------------------------------------
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT_SECONDS", default=15 * 60)
SESSION_ABSOLUTE_TIMEOUT = env.int("SESSION_ABSOLUTE_TIMEOUT_SECONDS", default=12 * 3600)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

# --- I18N --------------------------------------------------------------------
LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", _("Russian")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
# Times are stored in UTC and shown in the clinic's zone (a staff member's location).
CLINIC_TIME_ZONE = env.str("CLINIC_TIME_ZONE", default="Europe/Moscow")
USE_I18N = True
USE_TZ = True

# --- Static and media ----------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / ".local" / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Email ---------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@clinic.example")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = 10

# --- Security headers ------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_NAME = "sessionid"
CSRF_COOKIE_NAME = "csrftoken"
LANGUAGE_COOKIE_NAME = "portal_language"
LANGUAGE_COOKIE_SAMESITE = "Lax"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Behind the TLS-terminating proxy from docker-compose.yml.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=63072000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    # __Host- cookies: Secure, Path=/, no Domain, so no sibling host can set them.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# --- Video consultations (LiveKit) ---------------------------------------------------
# Tokens are minted by this server only (telemedicine.livekit). An empty URL turns the
# video off: the pages say so and offer chat. The browser connects to LIVEKIT_URL
# (wss://...), so its origin is added to the CSP's connect-src below.
LIVEKIT_URL = env.str("LIVEKIT_URL", default="")
LIVEKIT_API_KEY = env.str("LIVEKIT_API_KEY", default="")
LIVEKIT_API_SECRET = env.str("LIVEKIT_API_SECRET", default="")
# Lifetime of a room token; the page asks for a new one before it runs out. At most 15.
LIVEKIT_TOKEN_TTL_MINUTES = min(15, max(1, env.int("LIVEKIT_TOKEN_TTL_MINUTES", default=10)))


def _origin(url: str) -> list[str]:
    """wss://host and https://host (livekit-client checks a failed connection over HTTP)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not (parts.scheme and parts.netloc):
        return []
    http = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    return list(dict.fromkeys([f"{parts.scheme}://{parts.netloc}", f"{http}://{parts.netloc}"]))


from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF, *_origin(LIVEKIT_URL)],
        "media-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Logging: no personal data; request ids only -------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # The default request logger prints full URLs; ours carry no personal data,
        # but 4xx noise is not useful in production logs.
        "django.request": {"level": "ERROR"},
        "axes": {"level": "WARNING"},
        # The Stripe library logs every request at INFO; its errors reach us as ours.
        "stripe": {"level": "WARNING"},
    },
}

# --- Notifications -----------------------------------------------------------------
# SMS through SMS.ru's HTTP API; empty API id = SMS off (email only).
SMS_RU_API_ID = env.str("SMS_RU_API_ID", default="")
SMS_RU_BASE_URL = env.str("SMS_RU_BASE_URL", default="https://sms.ru")
SMS_RU_FROM = env.str("SMS_RU_FROM", default="")
# Hours before an appointment at which reminders go out (the clinic's choice).
REMINDER_OFFSETS_HOURS = tuple(
    float(hours) for hours in env.list("REMINDER_OFFSETS_HOURS", default=["24", "2"])
)

# --- MIS integration (FHIR R4) ---------------------------------------------------------
# Empty base URL = no MIS: the sync tasks do nothing. Auth: "bearer" (MIS_FHIR_TOKEN),
# "basic" (MIS_FHIR_USERNAME / MIS_FHIR_PASSWORD) or "" (none).
MIS_FHIR_BASE_URL = env.str("MIS_FHIR_BASE_URL", default="")
MIS_FHIR_AUTH = env.str("MIS_FHIR_AUTH", default="")
MIS_FHIR_TOKEN = env.str("MIS_FHIR_TOKEN", default="")
MIS_FHIR_USERNAME = env.str("MIS_FHIR_USERNAME", default="")
MIS_FHIR_PASSWORD = env.str("MIS_FHIR_PASSWORD", default="")
MIS_FHIR_TIMEOUT_SECONDS = env.float("MIS_FHIR_TIMEOUT_SECONDS", default=10.0)
# True: the MIS owns doctors' schedules (its Slots become the portal's availability).
MIS_SCHEDULE_MASTER = env.bool("MIS_SCHEDULE_MASTER", default=False)

# --- Fiscal receipts (FZ-54) ----------------------------------------------------
# The fiscal data operator every payment's and refund's receipt goes to: "atol" (ATOL
# Online, protocol v4) or "" (off: receipts are created and wait). On by default in
# production only, so development and tests never call the real operator.
FISCAL_PROVIDER = env.str("FISCAL_PROVIDER", default="atol" if PRODUCTION else "")
if FISCAL_PROVIDER not in ("", "atol"):
    raise ImproperlyConfigured(f'FISCAL_PROVIDER must be "atol" or empty, not {FISCAL_PROVIDER!r}')
ATOL_BASE_URL = env.str("ATOL_BASE_URL", default="https://online.atol.ru")
ATOL_LOGIN = env.str("ATOL_LOGIN", default="")
ATOL_PASSWORD = env.str("ATOL_PASSWORD", default="")
ATOL_GROUP_CODE = env.str("ATOL_GROUP_CODE", default="")
ATOL_COMPANY_INN = env.str("ATOL_COMPANY_INN", default="")
ATOL_COMPANY_EMAIL = env.str("ATOL_COMPANY_EMAIL", default="")
ATOL_PAYMENT_ADDRESS = env.str("ATOL_PAYMENT_ADDRESS", default=SITE_URL)
ATOL_SNO = env.str("ATOL_SNO", default="usn_income")
ATOL_TIMEOUT_SECONDS = env.float("ATOL_TIMEOUT_SECONDS", default=10.0)

# --- Payments (Stripe) ----------------------------------------------------------
# Keys from the Stripe dashboard (Developers > API keys); the webhook secret (whsec_...)
# from the webhook endpoint that points at /payments/stripe/webhook/. STRIPE_API_BASE
# empty = Stripe itself; tests point it (and STRIPE_JS_URL) at localstripe. The checkout
# page adds these origins to its own CSP (payments.gateway.allow_stripe_csp).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_JS_URL = env.str("STRIPE_JS_URL", default="https://js.stripe.com/v3/")

# --- Portal --------------------------------------------------------------------
EMAIL_VERIFICATION_MAX_AGE = timedelta(days=3)
DEMO_PASSWORD = "ClinicDemo-2026!"  # noqa: S105  (demo data only; seed_demo refuses production)


def check_production_settings() -> None:
    """Refuse to start a production process with public keys or DEBUG."""
    problems = []
    if DEBUG:
        problems.append("DEBUG must be off")
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50:
        problems.append("SECRET_KEY must be set to a random value of 50+ characters")
    if DEV_SALT_KEY in SALT_KEY or any(len(s) < 16 for s in SALT_KEY):
        problems.append("SALT_KEY must be set to random values of 16+ characters")
    if BLIND_INDEX_KEY == DEV_BLIND_INDEX_KEY or len(BLIND_INDEX_KEY) < 32:
        problems.append("BLIND_INDEX_KEY must be set to a random value of 32+ characters")
    if STRIPE_SECRET_KEY and not STRIPE_WEBHOOK_SECRET:
        problems.append("STRIPE_WEBHOOK_SECRET must be set when STRIPE_SECRET_KEY is")
    if STRIPE_API_BASE:
        problems.append("STRIPE_API_BASE must be empty (it points at test servers)")
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))


if PRODUCTION:
    check_production_settings()
