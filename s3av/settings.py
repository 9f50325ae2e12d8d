"""s3av settings: one file, every value from the environment.

See README.md ("Configuration") for the variables. Defaults give a working
single-machine install (SQLite, a local clamd socket); with S3AV_DEBUG off the
secure defaults apply and the secret key must be given.

A malformed value raises ImproperlyConfigured here, for every process. A value that only the service
needs (the secret key, the service principal) and that is missing is listed in SERVICE_SETTINGS_MISSING
instead: the service's processes refuse to start without it (s3av.startup), while the one-shot
``manage.py scan``, which uses neither, runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from s3av.env import (
    env_bool,
    env_cidrs,
    env_duration,
    env_float,
    env_int,
    env_list,
    env_optional,
    env_rate,
    env_size,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("S3AV_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("S3AV_DEBUG", False)
SERVICE_SETTINGS_MISSING: list[str] = []

if DEBUG:
    SECRET_KEY = env_str("S3AV_SECRET_KEY", "insecure-development-key-do-not-use-in-production")
else:
    # Empty when missing: Django itself refuses an empty SECRET_KEY the moment anything uses it.
    SECRET_KEY = env_optional("S3AV_SECRET_KEY") or ""
    _KEY_RULE = (
        "S3AV_SECRET_KEY (or S3AV_SECRET_KEY_FILE) must be set to at least 32 random characters "
        "when S3AV_DEBUG is off."
    )
    if not SECRET_KEY:
        SERVICE_SETTINGS_MISSING.append(_KEY_RULE)
    elif len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(_KEY_RULE)

ALLOWED_HOSTS = env_list("S3AV_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("S3AV_CSRF_TRUSTED_ORIGINS")
# Number of reverse proxies in front of the web process whose X-Forwarded-For
# entries are trusted when deciding the client's address (CIDR allow-lists).
TRUSTED_PROXY_COUNT = env_int("S3AV_TRUSTED_PROXY_COUNT", 0, minimum=0)
# Public base URL, used in SAML metadata, emails and command output.
PUBLIC_URL = env_str("S3AV_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "csp",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_dramatiq",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "accounts",
    "linked_accounts",
    "scanning",
    "sso",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer probes by IP (any Host header, plain HTTP); s3av/health.py.
    "s3av.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The reader's time zone for portal pages (the browser reports it in a cookie).
    "s3av.timezones.TimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.TenantMiddleware",
    # Inside the tenant's scope: the SAML ACS and the SSO session's limits (sso/middleware.py).
    "sso.middleware.SsoMiddleware",
    "s3av.middleware.ApiQueryMiddleware",
]

ROOT_URLCONF = "s3av.urls"
WSGI_APPLICATION = "s3av.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.tenant",
                "s3av.nav.portal_nav",
            ],
        },
    },
]

_DEFAULT_DB = f"sqlite:///{VAR_DIR / 's3av.sqlite3'}"
_database_url = env_url("DATABASE_URL", _DEFAULT_DB, {"sqlite", "postgres", "postgresql", "pgsql", "postgis"})
DATABASES = {"default": dj_database_url.parse(_database_url or _DEFAULT_DB, conn_max_age=60)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# django-allauth: email login, no self sign-up (tenants are created by staff
# or by `create_tenant`; people join a tenant when an admin adds them).
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
# The sign-in rules: accounts.adapter.AccountAdapter, extended by SSO (a password refused where SSO is
# required, a session bound to the IdP's tenant).
ACCOUNT_ADAPTER = "sso.adapter.SsoAccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
# SAML single sign-on: one allauth SocialApp per tenant, built by the adapter from sso.SamlConnection;
# the provider "saml" is sso.provider's (allauth's SAML views on top). Security settings: sso.adapter.
SOCIALACCOUNT_ADAPTER = "sso.adapter.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_STORE_TOKENS = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The portal's stylesheet, script and vendored htmx; WhiteNoise serves them (no CDN: the product runs in
# networks without internet). Collected into STATIC_ROOT by `manage.py collectstatic` for production;
# with WHITENOISE_USE_FINDERS the web process also serves them straight from here (tests, the demo).
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# No inline script or style anywhere, no third-party origin: every page loads static/ only. The Swagger
# UI is the split view (its set-up script is a file too).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        # No form-action: browsers apply it to the redirect after a POST too, and "Continue with SSO"
        # posts here and is redirected to the tenant's own identity provider.
        "frame-ancestors": ["'none'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("S3AV_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = env_int("S3AV_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_SSL_REDIRECT = env_bool("S3AV_SSL_REDIRECT", False)
    # Probes talk plain HTTP to the process (HealthCheckMiddleware answers them before the redirect too).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    if TRUSTED_PROXY_COUNT:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

EMAIL_BACKEND = env_str("S3AV_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("S3AV_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("S3AV_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("S3AV_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_str("S3AV_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("S3AV_EMAIL_TLS", False)
DEFAULT_FROM_EMAIL = env_str("S3AV_EMAIL_FROM", "s3av@localhost")

# --- REST API -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.auth.ApiKeyAuthentication",
        "accounts.api.auth.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.TenantRolePermission"],
    "DEFAULT_PAGINATION_CLASS": "s3av.api.pagination.CursorPagination",
    # A list's ?filters: its viewset's filterset_class (django-filter), documented in the schema.
    "DEFAULT_FILTER_BACKENDS": ["s3av.api.filters.ListFilterBackend"],
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["s3av.api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["s3av.api.throttling.TenantRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"tenant": env_rate("S3AV_API_RATE", "6000/min")},
    "EXCEPTION_HANDLER": "s3av.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "s3av API",
    "DESCRIPTION": "Malware scanning for Amazon S3. Authenticate with `Authorization: Bearer <api key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "s3av.api.schema.document_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ProblemActionEnum": "scanning.models.ProblemAction",
        "InfectedActionEnum": "scanning.models.InfectedAction",
        "RoleEnum": "accounts.models.Role",
    },
}

# --- Scanning engine, AWS and broker --------------------------------------
# scripts/clamav.sh keeps clamd's configuration, socket and signature database here (the same variable and
# default as the script). A digest of the database directory is part of the signature version results are
# pinned to, so a changed database (custom signatures included) changes it.
CLAMAV_DIR = Path(env_str("S3AV_CLAMAV_DIR", str(VAR_DIR / "clamav"))).absolute()
CLAMAV_DB_DIR = CLAMAV_DIR / "db"
_clamd_address = env_url("S3AV_CLAMD", f"unix://{CLAMAV_DIR / 'clamd.sock'}", {"unix", "tcp"})
# Checked further (an absolute socket path, a port) when the scanning app starts (scanning/apps.py).
CLAMD_ADDRESS: str = _clamd_address or ""
CLAMD_TIMEOUT = env_float("S3AV_CLAMD_TIMEOUT", 300.0, minimum=1.0)
# Must equal clamd's StreamMaxLength (scripts/clamav.sh renders both from the
# same variable): larger objects are Unscannable without being downloaded.
MAX_OBJECT_SIZE = env_size("S3AV_MAX_OBJECT_SIZE", "1024M")
if not 0 < MAX_OBJECT_SIZE < 2 * 1024**3:
    # ClamAV scans nothing of 2 GiB or more, whatever its limits say.
    raise ImproperlyConfigured("S3AV_MAX_OBJECT_SIZE must be more than 0 and less than 2G (e.g. 2047M).")
AWS_ENDPOINT_URL = env_url("S3AV_AWS_ENDPOINT_URL", None, {"http", "https"})
AWS_REGION = env_str("S3AV_AWS_REGION", "us-east-1")
# The AWS principal tenants' roles trust (put in their CloudFormation template).
# Required outside debug mode: a placeholder principal would go into every tenant's trust policy.
AWS_SERVICE_PRINCIPAL = env_optional("S3AV_AWS_SERVICE_PRINCIPAL") or (
    "arn:aws:iam::000000000000:root" if DEBUG else ""
)
if not AWS_SERVICE_PRINCIPAL:
    SERVICE_SETTINGS_MISSING.append(
        "S3AV_AWS_SERVICE_PRINCIPAL must be set when S3AV_DEBUG is off "
        "(the IAM principal tenants' roles trust, e.g. arn:aws:iam::123456789012:role/s3av)."
    )
elif not AWS_SERVICE_PRINCIPAL.startswith("arn:"):
    raise ImproperlyConfigured(
        f"S3AV_AWS_SERVICE_PRINCIPAL={AWS_SERVICE_PRINCIPAL!r} must be an IAM ARN, "
        "e.g. arn:aws:iam::123456789012:role/s3av."
    )
# Refuse a tenant role that can be assumed without the external id. Endpoints
# that do not enforce IAM (moto, most S3-compatible stores) cannot prove it.
AWS_REFUSE_ROLE_WITHOUT_EXTERNAL_ID = env_bool("S3AV_AWS_CONFUSED_DEPUTY_CHECK", True)
SCAN_API_MAX_BYTES = env_size("S3AV_SCAN_API_MAX_BYTES", "256M")
# Webhook channels must be https to public addresses; this allows http to loopback (tests, the demo).
ALLOW_HTTP_WEBHOOKS = env_bool("S3AV_ALLOW_HTTP_WEBHOOKS", False)
# A worker's claim on a scan lasts this long and is renewed while the object streams; a claim left by
# a killed worker is taken over once it runs out.
SCAN_LEASE_SECONDS = env_int("S3AV_SCAN_LEASE_SECONDS", 300, minimum=5)

# --- Signature updates (scanning/engine/signatures.py, docs/operations.md) ----------
# Where `manage.py update_signatures` gets new databases: empty (no updates), "freshclam" (ClamAV's
# mirror, or the private mirror named in freshclam's own configuration), or s3://bucket/prefix (a
# private mirror read with the service's own AWS credentials and S3AV_AWS_ENDPOINT_URL).
SIGNATURES_SOURCE = env_str("S3AV_SIGNATURES_SOURCE", "").strip()
if SIGNATURES_SOURCE not in {"", "freshclam"} and not re.fullmatch(
    r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", SIGNATURES_SOURCE
):
    raise ImproperlyConfigured(
        f"S3AV_SIGNATURES_SOURCE={SIGNATURES_SOURCE!r} must be empty, 'freshclam' or s3://bucket/prefix."
    )
SIGNATURES_INTERVAL = env_duration("S3AV_SIGNATURES_INTERVAL", "2h", minimum=60)
FRESHCLAM_CONFIG = env_str("S3AV_FRESHCLAM_CONFIG", "/etc/clamav/freshclam.conf")
# More clamd that load the same database directory (a shared volume) and are told to RELOAD after an
# update, besides S3AV_CLAMD.
# Checked as S3AV_CLAMD is, when the scanning app starts.
SIGNATURES_CLAMDS = env_list("S3AV_SIGNATURES_CLAMDS")
# How long a reloading clamd may take to answer with the new database (the official databases take
# tens of seconds to load).
SIGNATURES_RELOAD_TIMEOUT = env_duration("S3AV_SIGNATURES_RELOAD_TIMEOUT", "300s")
# Signatures older than this raise an operational notification (scanning/fleet/agents.py).
SIGNATURES_MAX_AGE = env_duration("S3AV_SIGNATURES_MAX_AGE", "1d", minimum=60)

# --- The fleet, metrics ---------------------------------------------------------------------------
AGENT_HEARTBEAT_SECONDS = env_duration("S3AV_AGENT_HEARTBEAT", "30s")
AGENT_LOST_SECONDS = env_duration("S3AV_AGENT_LOST_AFTER", "120s")
# Touched by each worker heartbeat (and each ingest poll, scheduler tick): for a container's liveness
# command, e.g. `test $(( $(date +%s) - $(stat -c %Y FILE) )) -lt 120`.
HEARTBEAT_FILE = env_str("S3AV_HEARTBEAT_FILE", "")
# Bearer token of /metrics; unset: /metrics answers 404.
METRICS_TOKEN = env_optional("S3AV_METRICS_TOKEN") or ""

BROKER_URL = env_url(
    "S3AV_BROKER_URL", "redis://127.0.0.1:6379/0", {"redis", "rediss", "amqp", "amqps", "stub"}
)
_broker_scheme = (BROKER_URL or "").split(":", 1)[0]
_BROKERS = {
    "redis": "dramatiq.brokers.redis.RedisBroker",
    "rediss": "dramatiq.brokers.redis.RedisBroker",
    "amqp": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
    "amqps": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
    "stub": "dramatiq.brokers.stub.StubBroker",
}
DRAMATIQ_BROKER = {
    "BROKER": _BROKERS[_broker_scheme],
    "OPTIONS": {} if _broker_scheme == "stub" else {"url": BROKER_URL},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.CurrentMessage",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        "scanning.fleet.middleware.FleetMiddleware",
        # dramatiq's own per-worker metrics on dramatiq_prom_port (9191), when asked for.
        *(["dramatiq.middleware.prometheus.Prometheus"] if env_bool("S3AV_WORKER_PROMETHEUS", False) else []),
    ],
}
# Each actor lives next to the function it runs; the worker imports these modules of every app.
DRAMATIQ_AUTODISCOVER_MODULES = [
    "actors",
    "pipeline.services",
    "jobs.services",
    "notifications.actors",
    "notifications.events",
    "buckets.discovery",
]

# --- Logging: one JSON object per line -------------------------------------
LOG_LEVEL = env_str("S3AV_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"S3AV_LOG_LEVEL={LOG_LEVEL!r} is not a log level.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "s3av.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"botocore": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

# Tenants' default CIDR allow-list for new tenants (empty: any address).
DEFAULT_ALLOWED_CIDRS = env_cidrs("S3AV_DEFAULT_ALLOWED_CIDRS")
