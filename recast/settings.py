"""The one settings module. Every value comes from the environment (see README).

With nothing set, the platform runs embedded: a SQLite file and all state under
``var/``, tasks executed in-process, steps on the local backend.
"""

from __future__ import annotations

import base64
import math
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from recast import env

BASE_DIR = Path(__file__).resolve().parent.parent

PRODUCTION = env.boolean("RECAST_PRODUCTION", False)
DEBUG = env.boolean("RECAST_DEBUG", False)
VAR_DIR = env.path("RECAST_VAR_DIR", BASE_DIR / "var")
WORKFLOWS_DIR = env.path("RECAST_WORKFLOWS_DIR", BASE_DIR / "workflows")


def _secret_key() -> str:
    """The production key must be given; elsewhere one is made once and kept."""
    if PRODUCTION:
        return env.required("RECAST_SECRET_KEY")
    given = env.raw("RECAST_SECRET_KEY")
    if given:
        return given
    keyfile = VAR_DIR / "secret_key"
    if not keyfile.exists():
        keyfile.parent.mkdir(parents=True, exist_ok=True)
        keyfile.write_text(secrets.token_urlsafe(50))
        keyfile.chmod(0o600)
    return keyfile.read_text().strip()


SECRET_KEY = _secret_key()


def _credentials_keys() -> list[str]:
    """Fernet keys for stored credentials and webhook secrets, newest first
    (the first encrypts; all decrypt, for rotation). Production must give
    them; elsewhere one is made once and kept beside the secret key, never
    derived from it."""
    given = env.strings("RECAST_CREDENTIALS_KEYS", "")
    if given or PRODUCTION:
        if not given:
            raise ImproperlyConfigured("RECAST_CREDENTIALS_KEYS must be set")
        return given
    keyfile = VAR_DIR / "credentials_key"
    if not keyfile.exists():
        keyfile.parent.mkdir(parents=True, exist_ok=True)
        keyfile.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        keyfile.chmod(0o600)
    return [keyfile.read_text().strip()]


RECAST_CREDENTIALS_KEYS = _credentials_keys()
# Where people reach this platform; exports link back to it.
RECAST_PUBLIC_URL = env.string("RECAST_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env.strings("RECAST_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "recast.accounts",
    "recast.storage",
    "recast.catalogue",
    "recast.reinterpretation",
    "recast.notifications",
    "recast.credentials",
    "recast.quotas",
    "recast.api",
    "recast.portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

# Security headers. No inline script or style anywhere (the API docs load their
# script from a URL of their own), so the policy needs no 'unsafe-inline'.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}
# In production TLS ends at the ingress, which says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PRODUCTION else None
SECURE_SSL_REDIRECT = env.boolean("RECAST_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env.integer(
    "RECAST_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
# The preload flag only consents to the browsers' HSTS list; an operator who
# serves other hosts over plain HTTP under the same domain turns it off.
SECURE_HSTS_PRELOAD = env.boolean("RECAST_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION

ROOT_URLCONF = "recast.urls"
WSGI_APPLICATION = "recast.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        env.string("DATABASE_URL", f"sqlite:///{VAR_DIR / 'recast.sqlite3'}"),
        conn_max_age=env.integer("RECAST_DB_CONN_MAX_AGE", 0),
        # A kept connection that the database dropped (a restart) is replaced
        # at the next request instead of failing it.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded server writes from request and runner threads at once:
    # WAL lets readers go on, and IMMEDIATE transactions wait for the write
    # lock up front instead of failing halfway.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
STATIC_URL = "static/"
# Static files (the API docs' assets) are served from the apps themselves, so
# the embedded server has nothing to collect; a deployment may collect them
# into RECAST_STATIC_ROOT (`manage.py collectstatic`). No CDN either way.
_STATIC_ROOT = env.raw("RECAST_STATIC_ROOT")
STATIC_ROOT = Path(_STATIC_ROOT) if _STATIC_ROOT else None
WHITENOISE_USE_FINDERS = True
# The portal's stylesheet and script (frontend/static), served by the platform.
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]

# Rate-limit counters live in the cache: share one (Redis) between several
# server processes, or each process counts on its own.
_CACHE_URL = env.string("RECAST_CACHE_URL", "")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _CACHE_URL,
    }
    if _CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"  # the portal's catalogue
UPLOAD_MAX_BYTES = env.integer("RECAST_UPLOAD_MAX_BYTES", 50 * 1024 * 1024, minimum=1)
# Django refuses bodies above this before any view sees them; leave room for
# the multipart envelope around the largest upload.
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
RECAST_MAX_POINTS = env.integer("RECAST_MAX_POINTS", 10_000, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "recast.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticatedOrReadOnly"
    ],
    "DEFAULT_PAGINATION_CLASS": "recast.api.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "recast.api.errors.handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "recast.api.throttling.AddressRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.string("RECAST_THROTTLE_ANON", "120/minute"),
        "user": env.string("RECAST_THROTTLE_USER", "600/minute"),
        "address": env.string("RECAST_THROTTLE_ADDRESS", "1200/minute"),
    },
    # How many proxies in front of the server append to X-Forwarded-For; with
    # none, the client address is the connection's and the header is ignored
    # (a client could write anything in it).
    "NUM_PROXIES": env.integer("RECAST_NUM_PROXIES", 0, minimum=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "recast API",
    "DESCRIPTION": "Preserved analyses, reinterpretation requests, results and "
    "archives.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our own static files: no CDN, no network at run time.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "recast.api.schema.add_error_responses",
    ],
}

# Celery. Without a broker, tasks run in the calling process (the embedded mode).
CELERY_BROKER_URL = env.string("CELERY_BROKER_URL", "")
# In-process background runs when no broker is set; `recast serve` turns them on.
RECAST_INPROCESS_WORKERS = env.integer("RECAST_INPROCESS_WORKERS", 0)
# `recast serve`: gunicorn worker processes (one Python process holds one core
# at most) and threads in each (answers that wait on the database). Threads
# outnumber the cores because gunicorn's thread worker gives a new connection
# a thread until its first request arrives (up to 5 s): clients that connect
# and send later held all 8 of a process's threads while others' requests
# waited (the paced benchmark's p99 was 0.7 s, 70 to 85 ms with 32). An idle
# thread costs a stack; each thread that has answered keeps a database
# connection, so the default holds about 64 threads in all (32 a process on
# two cores, 8 on eight), under PostgreSQL's default max_connections of 100.
RECAST_WEB_PROCESSES = env.integer(
    "RECAST_WEB_PROCESSES", os.cpu_count() or 1, minimum=1
)
WEB_THREADS_IN_ALL = 64
RECAST_WEB_THREADS = env.integer(
    "RECAST_WEB_THREADS",
    max(8, math.ceil(WEB_THREADS_IN_ALL / RECAST_WEB_PROCESSES)),
    minimum=1,
)
# How many batches of a scan run at once (Celery worker processes in all, or
# in-process threads): a scan is cut into twice as many batches.
RECAST_SCAN_SLOTS = env.integer(
    "RECAST_SCAN_SLOTS", RECAST_INPROCESS_WORKERS or os.cpu_count() or 1, minimum=1
)
# Most points in one batch (one workflow execution), and most while another
# user's points wait: a point submitted while the workers are busy waits for
# at most one such batch per worker (see README, "How dispatch is ordered").
RECAST_BATCH_MAX = env.integer("RECAST_BATCH_MAX", 8, minimum=1)
RECAST_BATCH_MAX_SHARED = env.integer("RECAST_BATCH_MAX_SHARED", 2, minimum=1)
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the task queued
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long tasks: take one at a time
CELERY_TASK_IGNORE_RESULT = True  # results live in the database, not the backend
CELERY_TASK_SERIALIZER = "json"  # task arguments are ids only
CELERY_ACCEPT_CONTENT = ["json"]
# Run by `celery -A recast beat` (or a worker started with -B).
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-runs": {"task": "recast.runs_requeue_stale", "schedule": 60.0},
    "release-waiting-runs": {"task": "recast.runs_release_all", "schedule": 60.0},
}

# The engine.
RECAST_BACKEND = env.choice(
    "RECAST_BACKEND", "local", ("local", "docker", "kubernetes")
)
RECAST_WORK_DIR = env.path("RECAST_WORK_DIR", VAR_DIR / "work")
RECAST_ARCHIVE_DIR = env.path("RECAST_ARCHIVE_DIR", VAR_DIR / "archive")
RECAST_UPLOAD_DIR = env.path("RECAST_UPLOAD_DIR", VAR_DIR / "uploads")
RECAST_ENVS_DIR = env.path("RECAST_ENVS_DIR", VAR_DIR / "envs")
RECAST_STEP_TIMEOUT = env.integer("RECAST_STEP_TIMEOUT", 3600, minimum=1)
# How a local step is kept from other runs' workspaces (engine.isolation):
# bwrap (refuse when bubblewrap cannot run), auto (wrap where it can, warn
# where not), none. Production refuses by default.
RECAST_LOCAL_ISOLATION = env.choice(
    "RECAST_LOCAL_ISOLATION",
    "bwrap" if PRODUCTION else "auto",
    ("auto", "bwrap", "none"),
)
# Where the Docker backend makes each step's credentials folder: empty for
# /dev/shm (memory); a worker in a container needs a folder the engine sees
# at the same path (deploy/compose.yaml shares the host's /dev/shm/recast).
RECAST_STEP_SECRETS_DIR = env.path("RECAST_STEP_SECRETS_DIR", Path("/dev/shm"))  # noqa: S108
# Container backends: what a step gets unless its spec asks for more.
RECAST_STEP_MEMORY_MB = env.integer("RECAST_STEP_MEMORY_MB", 4096, minimum=64)
RECAST_STEP_CPUS = env.integer("RECAST_STEP_CPUS", 1, minimum=1)
# The Kubernetes backend (RECAST_BACKEND=kubernetes): Jobs go to this namespace,
# and mount the workspace claim that holds RECAST_VAR_DIR on the worker.
RECAST_K8S_NAMESPACE = env.string("RECAST_K8S_NAMESPACE", "")
RECAST_K8S_WORKSPACE_CLAIM = env.string(
    "RECAST_K8S_WORKSPACE_CLAIM", "recast-workspace"
)
RECAST_K8S_WORKSPACE_ROOT = env.path("RECAST_K8S_WORKSPACE_ROOT", VAR_DIR)
RECAST_K8S_REGISTRY = env.string("RECAST_K8S_REGISTRY", "")
RECAST_K8S_JOB_TTL = env.integer("RECAST_K8S_JOB_TTL", 600)
# The step cache, shared by every worker that mounts this folder (its locks
# need one host, or a shared file system that honours flock).
RECAST_STEP_CACHE_DIR = env.path("RECAST_STEP_CACHE_DIR", VAR_DIR / "cache")
RECAST_CACHE_MAX_BYTES = env.integer(
    "RECAST_CACHE_MAX_BYTES", 10 * 1024**3, minimum=1024 * 1024
)
# A running run whose worker has not renewed its lease for this long is taken
# over by the next worker that receives its task (the first one died). Twice
# the heartbeat (5 s) at least, or a live worker would lose its runs.
RECAST_RUN_LEASE = env.integer("RECAST_RUN_LEASE", 300, minimum=10)
# A queued run still waiting after this long, while no worker has claimed
# anything for as long, is handed to the workers again, in case the broker lost
# its messages (duplicates are harmless: starts are conditional).
RECAST_REQUEUE_AFTER = env.integer("RECAST_REQUEUE_AFTER", 1800, minimum=10)

# Notifications. E-mail goes through SMTP when a host is given; otherwise to
# the console (the embedded default), so nothing leaves the machine.
_SMTP_HOST = env.string("RECAST_SMTP_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if _SMTP_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = _SMTP_HOST or "localhost"
EMAIL_PORT = env.integer("RECAST_SMTP_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.string("RECAST_SMTP_USER", "")
EMAIL_HOST_PASSWORD = env.string("RECAST_SMTP_PASSWORD", "")
EMAIL_USE_TLS = env.boolean("RECAST_SMTP_STARTTLS", False)
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = env.string("RECAST_EMAIL_FROM", "recast@localhost")
# A delivery is tried this many times, waiting RECAST_NOTIFY_BACKOFF seconds,
# then twice as long after each failure.
RECAST_NOTIFY_ATTEMPTS = env.integer("RECAST_NOTIFY_ATTEMPTS", 5, minimum=1)
RECAST_NOTIFY_BACKOFF = env.integer("RECAST_NOTIFY_BACKOFF", 30)
# Webhooks may not point into this machine or its private network (the
# database's port, a cloud metadata address) unless this is set.
RECAST_WEBHOOK_ALLOW_PRIVATE = env.boolean("RECAST_WEBHOOK_ALLOW_PRIVATE", False)

# Quotas: the defaults of every user's limits (staff set others per user or
# group); 0 means no limit.
RECAST_QUOTA_RUNNING = env.integer("RECAST_QUOTA_RUNNING", 0)
RECAST_QUOTA_QUEUED = env.integer("RECAST_QUOTA_QUEUED", 0)
RECAST_QUOTA_CPU_SECONDS = env.integer("RECAST_QUOTA_CPU_SECONDS", 0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["stderr"],
        "level": env.string("RECAST_LOG_LEVEL", "WARNING"),
    },
    "loggers": {
        "recast": {"level": env.string("RECAST_LOG_LEVEL", "INFO")},
        # yadage and adage log every poll at INFO; their story is in our own records.
        "yadage": {"level": "WARNING"},
        # adage logs a failed workflow as an unexpected exception; the engine
        # reports the failing step itself.
        "adage": {"level": "CRITICAL"},
        "packtivity": {"level": "WARNING"},
        "pack": {"level": "WARNING"},
    },
}
