"""Imprint settings.

One env-driven file. With no environment at all the site runs on one machine: SQLite under var/,
media under var/media, Celery on kombu's filesystem transport (no broker server), a console e-mail
backend and a clearly labelled local payment test mode. Environment variables switch each concern to
its production engine (PostgreSQL, Redis/RabbitMQ, S3, Stripe). `IMPRINT_ENV=production` is the switch
that turns DEBUG off and makes secrets mandatory; setting a database or broker URL alone is not
production (CI does exactly that).
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
# Workers log to files and terminals: no progress bars from Hugging Face libraries in them.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

IMPRINT_ENV = env.str("IMPRINT_ENV", default="embedded")
PRODUCTION = IMPRINT_ENV == "production"
VAR_DIR = Path(env.str("IMPRINT_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

_INSECURE_DEFAULT_KEY = "django-insecure-imprint-embedded-default-key"
SECRET_KEY = env.str("SECRET_KEY", default=_INSECURE_DEFAULT_KEY)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public address for absolute links; empty: each request's own host (core.links).
SITE_URL = env.str("SITE_URL", default="")

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("IMPRINT_ENV=production refuses to start with DEBUG on.")
    if SECRET_KEY == _INSECURE_DEFAULT_KEY or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("IMPRINT_ENV=production needs a SECRET_KEY of 50+ characters.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Imprint's apps, lowest layer first (see .importlinter and docs/architecture.md).
    "core",
    "accounts",
    "audit",
    "training",
    "licensing",
    "inference",
    "billing",
    "marketplace",
    "compliance",
]

MIDDLEWARE = [
    # First, so that an outage met by any view (database, cache, broker) answers 503 + Retry-After.
    "core.outages.OutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.links.CurrentRequestMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

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
                "config.context_processors.imprint",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite is shared by the web process and a worker in the embedded default: WAL mode, a busy
# timeout and IMMEDIATE transactions make writers queue instead of failing with "database is locked".
_SQLITE_PATH = VAR_DIR / "imprint.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{_SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so that worker processes started by the tests share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-imprint.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits and other shared counters live where every process sees them) --------
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache("CACHE_URL")}
    if CACHES["default"]["BACKEND"].endswith("RedisCache"):
        # A Redis that is down or cut off must fail a cache call in well under a second (the rate
        # limiter then falls back to local counters, core.ratelimit), not hang a request thread.
        CACHES["default"].setdefault("OPTIONS", {}).update({"socket_connect_timeout": 0.5, "socket_timeout": 1.0})
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "imprint_cache",
        }
    }

# --- Storage --------------------------------------------------------------------------------
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request otherwise
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "config.staticfinders.PackageFileFinder",  # vendor/plotly.min.js from plotly's wheel
]
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")


def s3_storage(*, bucket: str, region: str | None, endpoint_url: str | None) -> dict:
    """The STORAGES entry for S3 (or an S3-compatible store such as MinIO or moto_server)."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "region_name": region,
            "endpoint_url": endpoint_url,
            "signature_version": "s3v4",
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
        },
    }


STORAGES = {
    "default": (
        s3_storage(
            bucket=AWS_STORAGE_BUCKET_NAME,
            region=env.str("AWS_S3_REGION_NAME", default=None),
            endpoint_url=env.str("AWS_S3_ENDPOINT_URL", default=None),
        )
        if AWS_STORAGE_BUCKET_NAME
        else {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
        }
    ),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Celery ---------------------------------------------------------------------------------
# Embedded default: kombu's filesystem transport, which needs no server; polled every 50 ms instead
# of kombu's 1 s so that a task sent from the web reaches the worker promptly.
BROKER_DIR = Path(env.str("IMPRINT_BROKER_DIR", default=str(VAR_DIR / "broker")))
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem"):
    # kombu's transport with messages renamed into place once written (see core.broker).
    CELERY_BROKER_TRANSPORT = "core.broker:Transport"
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),  # kombu's default is ./control in the cwd
        "store_processed": False,
        "polling_interval": 0.05,
    }
else:
    # Redis redelivers an unacknowledged message after the visibility timeout; the lease sweep
    # (training) re-enqueues sooner, so this only bounds the worst case.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    if CELERY_BROKER_URL.startswith("redis://"):
        # kombu's, surviving a broker restart while a worker holds unacknowledged messages (core.broker).
        CELERY_BROKER_TRANSPORT = "core.broker:RedisTransport"
# A worker keeps trying to reach a broker that went away, however long it is gone (Celery's
# default gives up after 100 tries and the worker exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None


def _default_result_backend(broker_url: str) -> str:
    if broker_url.startswith(("redis://", "rediss://")):
        return broker_url
    if broker_url.startswith(("amqp://", "pyamqp://")):
        return "rpc://"
    results = VAR_DIR / "celery-results"
    results.mkdir(parents=True, exist_ok=True)
    return f"file://{results}"


CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default=_default_result_backend(CELERY_BROKER_URL)
)
TRAINING_SWEEP_SECONDS = env.int("TRAINING_SWEEP_SECONDS", default=30)
# How often the audit chain's pending refusals are sealed and its head signed (an anchor): the
# longest time an unsealed refusal is only append-only, and the most history a cut tail can lose
# before an outside copy of the anchors notices.
AUDIT_ANCHOR_SECONDS = env.int("AUDIT_ANCHOR_SECONDS", default=60)
CELERY_BEAT_SCHEDULE = {
    "audit-anchor-head": {"task": "audit.anchor_head", "schedule": float(AUDIT_ANCHOR_SECONDS)},
    "training-sweep-leases": {
        "task": "training.sweep_leases",
        "schedule": float(TRAINING_SWEEP_SECONDS),
    },
    "training-uploads-sweep": {"task": "training.uploads_sweep", "schedule": 60.0},
    "training-hub-probe": {"task": "training.hub_probe", "schedule": float(env.int("TRAINING_HUB_PROBE_SECONDS", default=600))},
    "licensing-expire-grants": {"task": "licensing.expire_grants", "schedule": 60.0},
    "licensing-reset-quota-periods": {"task": "licensing.reset_quota_periods", "schedule": 300.0},
    "billing-meter-outbox-sweep": {"task": "billing.meter_outbox_sweep", "schedule": 60.0},
    # Every 15 s: with INFERENCE_RESERVATION_TTL_SECONDS (45) an abandoned request's tokens and its
    # Idempotency-Key come back within a minute.
    "licensing-reservations-sweep": {"task": "licensing.reservations_sweep", "schedule": 15.0},
    "inference-idempotency-sweep": {"task": "inference.idempotency_keys_sweep", "schedule": 15.0},
    "marketplace-expire-orders": {"task": "marketplace.orders_expire", "schedule": 60.0},
    "marketplace-commissions-sweep": {"task": "marketplace.commissions_sweep", "schedule": 60.0},
    "billing-subscriptions-sweep": {"task": "billing.subscriptions_sweep", "schedule": 60.0},
    "billing-suspend-overdue": {"task": "billing.suspend_overdue", "schedule": 300.0},
    # Local test mode only (the task does nothing with Stripe): each month closes by itself.
    "billing-local-close-periods": {"task": "billing.local_close_periods", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- REST framework / OpenAPI ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "accounts.authentication.PersonalAccessTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "config.api_parsers.JSONObjectParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Imprint API",
    "DESCRIPTION": "Train, license and generate text with signed provenance.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- E-mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default=(
        "django.core.mail.backends.smtp.EmailBackend"
        if PRODUCTION
        else "django.core.mail.backends.console.EmailBackend"
    ),
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Imprint <noreply@imprint.local>")

# --- Account throttles and the health probe -------------------------------------------------------
# Per hour. Log-in attempts per account (username) stop password guessing; per client address they
# stop spraying many accounts. E-mails (verification, password reset) per address stop mail bombing.
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]  # every password check counts
ACCOUNT_LOGINS_PER_ACCOUNT_PER_HOUR = env.int("ACCOUNT_LOGINS_PER_ACCOUNT_PER_HOUR", default=10)
ACCOUNT_LOGINS_PER_IP_PER_HOUR = env.int("ACCOUNT_LOGINS_PER_IP_PER_HOUR", default=60)
ACCOUNT_SIGNUPS_PER_IP_PER_HOUR = env.int("ACCOUNT_SIGNUPS_PER_IP_PER_HOUR", default=10)
ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR = env.int("ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR", default=5)
ACCOUNT_EMAIL_REQUESTS_PER_IP_PER_HOUR = env.int("ACCOUNT_EMAIL_REQUESTS_PER_IP_PER_HOUR", default=20)
# /health/ writes a probe object to storage at most once per this many seconds (all processes).
HEALTH_STORAGE_PROBE_SECONDS = env.int("HEALTH_STORAGE_PROBE_SECONDS", default=60)

# --- Payments -------------------------------------------------------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# An override so tests and local development can point the real SDK at localstripe.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
PAYMENTS_TEST_MODE = not STRIPE_SECRET_KEY
if PRODUCTION and not (STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY and STRIPE_WEBHOOK_SECRET):
    raise ImproperlyConfigured(
        "IMPRINT_ENV=production needs STRIPE_SECRET_KEY, STRIPE_PUBLISHABLE_KEY and STRIPE_WEBHOOK_SECRET.")
# What billing bills: the order model of the app above it (billing keeps its id, never its fields).
BILLING_ORDER_MODEL = "marketplace.Order"
PLATFORM_FEE_BPS = env.int("PLATFORM_FEE_BPS", default=2000)  # 20.00 %, in basis points
# A metered grant whose invoice payment failed is suspended once this many hours pass unpaid
# (Stripe retries the card meanwhile); paying the invoice reinstates it.
BILLING_GRACE_HOURS = env.float("BILLING_GRACE_HOURS", default=72.0)
TRY_IT_TOKENS_PER_VISITOR_PER_DAY = env.int("TRY_IT_TOKENS_PER_VISITOR_PER_DAY", default=300)

# --- Inference -------------------------------------------------------------------------------
# Embedded default: generation runs in the web process (no broker hop; tokens stream directly).
# Production: on `inference` queue workers; the web tier loads tokenizers only, never weights.
INFERENCE_IN_PROCESS = env.bool("INFERENCE_IN_PROCESS", default=not PRODUCTION)
INFERENCE_CACHE_BYTES = env.int("INFERENCE_CACHE_BYTES", default=2 * 1024**3)  # model LRU cache bound
INFERENCE_MAX_QUEUE = env.int("INFERENCE_MAX_QUEUE", default=64)  # queued requests per engine, then 429
INFERENCE_MAX_BATCH = env.int("INFERENCE_MAX_BATCH", default=8)  # rows one decode step serves at most
INFERENCE_TIMEOUT_SECONDS = env.int("INFERENCE_TIMEOUT_SECONDS", default=300)
INFERENCE_RELAY_URL = env.str("INFERENCE_RELAY_URL", default="")  # Redis for streamed tokens (else broker)
# Knowing within seconds that an inference worker died (inference.relay): a worker running a
# request publishes a heartbeat every INFERENCE_HEARTBEAT_SECONDS; the web gives the request up
# once nothing (token or heartbeat) came for INFERENCE_NO_PROGRESS_SECONDS, or no worker took it
# within INFERENCE_QUEUE_SECONDS. INFERENCE_TIMEOUT_SECONDS stays the bound without a Redis relay.
INFERENCE_HEARTBEAT_SECONDS = env.float("INFERENCE_HEARTBEAT_SECONDS", default=1.0)
INFERENCE_NO_PROGRESS_SECONDS = env.float("INFERENCE_NO_PROGRESS_SECONDS", default=5.0)
INFERENCE_QUEUE_SECONDS = env.float("INFERENCE_QUEUE_SECONDS", default=30.0)
# A request's quota reservation and Idempotency-Key claim expire this long after their last
# keep-alive (the web renews both every third of it while the request runs), so those of a request
# whose web process died come back within a minute (with the 15 s sweep).
INFERENCE_RESERVATION_TTL_SECONDS = env.int("INFERENCE_RESERVATION_TTL_SECONDS", default=45)
# A stream sends an SSE comment after this many quiet seconds, so proxies and clients see it alive.
INFERENCE_SSE_KEEPALIVE_SECONDS = env.float("INFERENCE_SSE_KEEPALIVE_SECONDS", default=10.0)
# How long a charge or a release of tokens is retried through a database outage (core.outages).
CHARGE_RETRY_SECONDS = env.float("CHARGE_RETRY_SECONDS", default=20.0)
# The Retry-After of the 503 a request gets while the database, the cache or the broker is down.
OUTAGE_RETRY_AFTER_SECONDS = env.int("OUTAGE_RETRY_AFTER_SECONDS", default=5)
# A verification's model-entropy pass (for watermark schemes that score by the model's entropy)
# runs where generation runs, so the web tier never loads weights to verify a text. Bounds per
# verification: the first tokens of the text it scores (detection needs ~60-200; 2,048 keep a long
# text's cost at a few context windows), the model versions it runs for, and the seconds the web
# waits for it. A version beyond a bound is reported as not scanned, never guessed.
VERIFICATION_ENTROPY_MAX_TOKENS = env.int("VERIFICATION_ENTROPY_MAX_TOKENS", default=2048)
VERIFICATION_ENTROPY_MAX_VERSIONS = env.int("VERIFICATION_ENTROPY_MAX_VERSIONS", default=8)
VERIFICATION_ENTROPY_SECONDS = env.float("VERIFICATION_ENTROPY_SECONDS", default=10.0)
# Serving precision: the engine's names (inference.engine.PRECISIONS; a test keeps the two equal,
# as importing the engine here would load torch into every settings import). Below fp32 a version is
# served at that precision only once its check on the version's own validation windows shows
# perplexity rising by at most INFERENCE_PRECISION_MAX_INCREASE (relative: 0.02 = 2 %); until then,
# and when it rises more, at fp32. A trainer may choose another precision for their version.
SERVING_PRECISIONS = ("fp32", "int8", "bf16")
INFERENCE_PRECISION = env.str("INFERENCE_PRECISION", default="fp32").strip().lower()
if INFERENCE_PRECISION not in SERVING_PRECISIONS:
    raise ImproperlyConfigured(f"INFERENCE_PRECISION={INFERENCE_PRECISION!r} is not a serving precision: "
                               f"choose one of {', '.join(SERVING_PRECISIONS)}.")
INFERENCE_PRECISION_MAX_INCREASE = env.float("INFERENCE_PRECISION_MAX_INCREASE", default=0.02)
if not 0 <= INFERENCE_PRECISION_MAX_INCREASE < float("inf"):  # also refuses NaN
    raise ImproperlyConfigured("INFERENCE_PRECISION_MAX_INCREASE is a relative perplexity increase, "
                               f"0 or more (0.02 = 2 %), not {INFERENCE_PRECISION_MAX_INCREASE!r}.")
# 64 = the windows the training loop evaluates on (its eval_max_windows), so the check's fp32 figure
# is the validation perplexity the run reported.
INFERENCE_PRECISION_WINDOWS = env.int("INFERENCE_PRECISION_WINDOWS", default=64)
if INFERENCE_PRECISION_WINDOWS < 1:
    raise ImproperlyConfigured(f"INFERENCE_PRECISION_WINDOWS must be at least 1, not {INFERENCE_PRECISION_WINDOWS}.")
# The watermark new grants get (each grant keeps its own: see licensing.services). "sweet" biases
# and scores only where the model's entropy exceeds the threshold (nats); "lefthash" is the first
# scheme (every step, delta 2). Values measured on trained tiny models: bench/watermark_recall.py.
# The scheme of new grants on a version whose watermark was not chosen yet (measured when it is
# published); with WATERMARK_SCHEME_PINNED, of every new grant whatever was chosen.
WATERMARK_SCHEME = env.str("WATERMARK_SCHEME", default="gumbel")
WATERMARK_SCHEME_PINNED = env.bool("WATERMARK_SCHEME_PINNED", default=False)
# The parameters each scheme stores on a new grant; each takes the value of the setting
# WATERMARK_<NAME> below (or the setting an entry's mapping names) when the grant is made. A new
# scheme is its class (a module in inference/watermark/) and its entry here, with a setting for any
# parameter not yet below.
WATERMARK_SCHEMES = {
    "lefthash": ("gamma", "delta"),
    "sweet": ("gamma", "delta", "entropy_threshold", "context_width"),
    "gumbel": {"context_width": "WATERMARK_GUMBEL_CONTEXT_WIDTH",
               "entropy_threshold": "WATERMARK_GUMBEL_ENTROPY_THRESHOLD",
               "free_share": "WATERMARK_GUMBEL_FREE_SHARE"},
}
WATERMARK_DELTA = env.float("WATERMARK_DELTA", default=3.0)
WATERMARK_GAMMA = env.float("WATERMARK_GAMMA", default=0.25)
WATERMARK_ENTROPY_THRESHOLD = env.float("WATERMARK_ENTROPY_THRESHOLD", default=1.0)
WATERMARK_CONTEXT_WIDTH = env.int("WATERMARK_CONTEXT_WIDTH", default=1)
WATERMARK_GUMBEL_CONTEXT_WIDTH = env.int("WATERMARK_GUMBEL_CONTEXT_WIDTH", default=3)
WATERMARK_GUMBEL_ENTROPY_THRESHOLD = env.float("WATERMARK_GUMBEL_ENTROPY_THRESHOLD", default=0.5)
# Share of decode steps sampled plainly, so that identical requests do not repeat each other.
WATERMARK_GUMBEL_FREE_SHARE = env.float("WATERMARK_GUMBEL_FREE_SHARE", default=0.1)
# The schemes measured on a version when it is published; new grants on it get the one that meets
# the recall goal (95 % at 200 tokens among 1,000 grants) at the least perplexity cost
# (inference.watermark.choice). Each: a scheme name and its parameters.
WATERMARK_CANDIDATES = [
    {"scheme": "gumbel", "context_width": 3, "entropy_threshold": 0.5, "free_share": 0.1},
    {"scheme": "gumbel", "context_width": 2, "entropy_threshold": 0.5, "free_share": 0.1},
    {"scheme": "sweet", "gamma": 0.25, "delta": 3.0, "entropy_threshold": 1.0, "context_width": 1},
]
# Measure a version's detection power when it is published (inference queue).
WATERMARK_POWER_ON_PUBLISH = env.bool("WATERMARK_POWER_ON_PUBLISH", default=True)
WATERMARK_POWER_SAMPLES = env.int("WATERMARK_POWER_SAMPLES", default=32)

# --- Compliance -------------------------------------------------------------------------------
COMPLIANCE_REPORTS_PER_IP_PER_HOUR = env.int("COMPLIANCE_REPORTS_PER_IP_PER_HOUR", default=10)
COMPLIANCE_QUOTA_REFUSALS_THRESHOLD = env.int("COMPLIANCE_QUOTA_REFUSALS_THRESHOLD", default=5)
COMPLIANCE_QUOTA_REFUSALS_WINDOW = env.int("COMPLIANCE_QUOTA_REFUSALS_WINDOW", default=3600)
COMPLIANCE_RATE_REFUSALS_THRESHOLD = env.int("COMPLIANCE_RATE_REFUSALS_THRESHOLD", default=20)
COMPLIANCE_RATE_REFUSALS_WINDOW = env.int("COMPLIANCE_RATE_REFUSALS_WINDOW", default=600)

# --- Abuse limits and stale orders -------------------------------------------------------------
# Reverse proxies in front of the site (their number, and/or their networks, comma-separated CIDR):
# only then is X-Forwarded-For read, from the right (core.http.client_ip). None by default.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
TRUSTED_PROXY_NETWORKS = env.list("TRUSTED_PROXY_NETWORKS", default=[])
# Public verifications per hour: per address always, and per API key when one is presented.
COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR = env.int("COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR", default=60)
COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR = env.int("COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR", default=600)
# Shared by all of an account's API keys (and its signed-in page use): more keys never mean more
# verifications. Every verification also counts against its address's limit above.
COMPLIANCE_VERIFICATIONS_PER_ACCOUNT_PER_HOUR = env.int("COMPLIANCE_VERIFICATIONS_PER_ACCOUNT_PER_HOUR",
                                                        default=600)
# Active API keys one account may hold (keys are free; revoking one frees its slot).
API_KEYS_PER_ACCOUNT_MAX = env.int("API_KEYS_PER_ACCOUNT_MAX", default=20)
# A failing receipt raises one flag per receipt and reason within this many seconds.
COMPLIANCE_RECEIPT_FLAG_WINDOW = env.int("COMPLIANCE_RECEIPT_FLAG_WINDOW", default=86_400)
# "Try it" generations running at once, all visitors together, so paying customers keep the engine.
TRY_IT_MAX_CONCURRENT = env.int("TRY_IT_MAX_CONCURRENT", default=2)
# A pending order not paid within this many minutes expires (the beat sweep marks it).
ORDER_EXPIRY_MINUTES = env.int("ORDER_EXPIRY_MINUTES", default=60)
# Commissions: how long the customer has to review a delivery (no answer accepts it), and the token
# quota of the grant a commission yields (per month).
COMMISSION_REVIEW_HOURS = env.float("COMMISSION_REVIEW_HOURS", default=14 * 24.0)
COMMISSION_QUOTA_TOKENS = env.int("COMMISSION_QUOTA_TOKENS", default=1_000_000)

# --- Training -------------------------------------------------------------------------------
DATASET_MAX_BYTES = env.int("DATASET_MAX_BYTES", default=50 * 1024 * 1024)
# Uploads of one trainer being processed at once; one more is answered 429 with retry-after.
DATASET_UPLOADS_IN_FLIGHT_MAX = env.int("DATASET_UPLOADS_IN_FLIGHT_MAX", default=3)
# An upload still processing this long after it was received is refused by the beat sweep (its
# worker died or hangs); an upload of DATASET_MAX_BYTES takes about a minute.
DATASET_UPLOAD_TIMEOUT_SECONDS = env.int("DATASET_UPLOAD_TIMEOUT_SECONDS", default=1800)
# Uploads are capped at DATASET_MAX_BYTES while the body is read (training.uploads), then spooled
# to a temporary file past 2.5 MB, never held whole in memory.
FILE_UPLOAD_HANDLERS = [
    "training.uploads.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
TRAINING_LEASE_SECONDS = env.int("TRAINING_LEASE_SECONDS", default=60)
TRAINING_MAX_CONCURRENT_JOBS = env.int("TRAINING_MAX_CONCURRENT_JOBS", default=2)
TRAINING_MAX_TOTAL_STEPS = env.int("TRAINING_MAX_TOTAL_STEPS", default=200_000)
COMPUTE_RATE_CENTS_PER_HOUR = env.int("COMPUTE_RATE_CENTS_PER_HOUR", default=250)
# "cuda" or "cpu": what the training workers have, for estimates (empty: ask torch on this machine).
TRAINING_DEVICE = env.str("TRAINING_DEVICE", default="")
# name=path pairs: local copies of base models (no hub download needed), e.g. gpt2=/models/gpt2
TRAINING_BASE_MODEL_PATHS = [
    tuple(pair.split("=", 1)) for pair in env.list("TRAINING_BASE_MODEL_PATHS", default=[]) if "=" in pair
]
# The built-in pretrained base's size preset (training.builtin_base.SIZES): "full" for installations,
# "micro" (seconds) for tests.
BUILTIN_BASE_SIZE = env.str("BUILTIN_BASE_SIZE", default="full")
# Where the hub probe task asks whether the model hub answers (the base-model list reads its answer).
TRAINING_HUB_URL = env.str("TRAINING_HUB_URL", default=env.str("HF_ENDPOINT", default="https://huggingface.co"))
TRAINING_HUB_PROBE_SECONDS = env.int("TRAINING_HUB_PROBE_SECONDS", default=600)
TRAINING_WORK_DIR = Path(env.str("TRAINING_WORK_DIR", default=str(VAR_DIR / "training-work")))
# Memory of a training worker's device, in GiB: a job whose micro-batch would not fit (its estimate:
# weights, optimizer state, activations and fp32 logits) is refused before it is queued. 16 GiB is a
# modest GPU or a small server's RAM; set it to what the workers have.
TRAINING_DEVICE_MEMORY_GIB = env.float("TRAINING_DEVICE_MEMORY_GIB", default=16.0)
# Warnings on the job page, the job API and the CLI. Validation loss: warn once this many
# evaluations have followed the lowest one and the latest is above it (overfitting).
TRAINING_WARN_RISING_EVALUATIONS = env.int("TRAINING_WARN_RISING_EVALUATIONS", default=2)
# Memorisation: warn when a sample copies this many consecutive tokens of the data, or when this
# share of its 8-grams is found in the data. A version whose samples cross either needs the
# trainer's acknowledgement to be published.
TRAINING_WARN_COPIED_SPAN_TOKENS = env.int("TRAINING_WARN_COPIED_SPAN_TOKENS", default=32)
TRAINING_WARN_NGRAM_OVERLAP = env.float("TRAINING_WARN_NGRAM_OVERLAP", default=0.5)
# Recent finished jobs on the same base and device whose measured throughput estimates a new job.
TRAINING_ESTIMATE_RECENT_JOBS = env.int("TRAINING_ESTIMATE_RECENT_JOBS", default=5)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
