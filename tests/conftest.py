"""Fixtures shared by the whole suite: real processes (Celery workers, moto_server, localstripe),
service requirements, and users."""

from __future__ import annotations

import os
import shutil
import time
from urllib.parse import quote

import pytest
from django.conf import settings

from tests.support.processes import free_port, port_open, python_cmd, start_process

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip when a service is missing; in CI (CI=true) a missing service is a failure instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} is not available (set it up, or run in CI where it is required)")


# --- Services --------------------------------------------------------------------------------

def _redis_url() -> str:
    broker = os.environ.get("CELERY_BROKER_URL", "")
    return os.environ.get("REDIS_URL") or (broker if broker.startswith("redis") else "")


@pytest.fixture
def redis_url() -> str:
    url = _redis_url()
    require(bool(url), "Redis (REDIS_URL)")
    host_port = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = host_port.partition(":")
    require(port_open(int(port or 6379), host or "127.0.0.1"), f"Redis at {url}")
    return url


@pytest.fixture
def postgres():
    from django.db import connection

    require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    return connection


# --- Worker processes ----------------------------------------------------------------------

def test_database_url() -> str:
    """DATABASE_URL of the test database (created by pytest-django) for worker processes."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db.get("USER") or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class WorkerFactory:
    """Starts real `celery worker` processes; every worker it started is stopped at teardown."""

    def __init__(self):
        self.started = []

    def start(self, *, queues: str = "default,training,inference", broker_url: str | None = None,
              pool: str = "threads", concurrency: int = 2, beat: bool = False, env: dict | None = None):
        worker_env = {
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "DATABASE_URL": test_database_url(),
            **({"CELERY_BROKER_URL": broker_url} if broker_url else {}),
            **(env or {}),
        }
        if broker_url and not broker_url.startswith("filesystem"):
            worker_env.setdefault("CELERY_RESULT_BACKEND", broker_url)
        name = f"w{len(self.started)}-{os.getpid()}-{int(time.time())}@test"
        cmd = python_cmd("-m", "celery", "-A", "config", "worker", "-Q", queues, "-P", pool,
                         "-c", str(concurrency), "-n", name, "--without-gossip", "--without-mingle",
                         "-l", "INFO")
        if beat:
            cmd += ["-B", "-s", str(settings.VAR_DIR / f"beat-{name}")]
        worker = start_process("celery-worker", cmd, env=worker_env)
        self.started.append(worker)
        return worker

    def stop_all(self):
        for worker in self.started:
            worker.stop()


@pytest.fixture
def celery_workers(transactional_db):
    """Start workers with `celery_workers.start(...)`. Needs committed data: transactional tests."""
    factory = WorkerFactory()
    yield factory
    factory.stop_all()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters and other shared state live in the cache; with Redis (CI) it outlives a
    test's transaction, so each test starts from an empty cache as it does with the database cache."""
    from django.core.cache import cache

    try:
        cache.clear()
    except Exception:  # noqa: BLE001 - the database cache table may not exist before the DB fixture
        pass
    yield


@pytest.fixture(scope="session", autouse=True)
def _empty_embedded_broker():
    """Messages left in the test broker folder by an earlier, interrupted run are not ours."""
    shutil.rmtree(settings.BROKER_DIR, ignore_errors=True)
    for sub in ("queue", "processed", "control"):
        (settings.BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)


# --- S3 (moto_server) and Stripe (localstripe) ----------------------------------------------

@pytest.fixture(scope="session")
def moto_server():
    port = free_port()
    server = start_process("moto", python_cmd("-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)), port=port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_storage(moto_server, monkeypatch, settings):
    """Point the project's default storage at a fresh bucket on moto_server."""
    import boto3

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    bucket = f"imprint-test-{time.time_ns()}"
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    from config.settings import s3_storage as s3_entry

    settings.STORAGES = {**settings.STORAGES,
                         "default": s3_entry(bucket=bucket, region="us-east-1", endpoint_url=moto_server)}
    return {"client": client, "bucket": bucket, "endpoint_url": moto_server}


@pytest.fixture(scope="session")
def localstripe():
    """A stateful Stripe-compatible server on loopback; yields its base URL."""
    port = free_port()
    server = start_process("localstripe", python_cmd("tests/support/localstripe_server.py", str(port)), port=port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def stripe_client(localstripe, settings):
    """The official SDK pointed at localstripe, as the project configures it."""
    import stripe

    settings.STRIPE_SECRET_KEY = "sk_test_imprint"
    settings.STRIPE_API_BASE = localstripe
    settings.PAYMENTS_TEST_MODE = False
    return stripe.StripeClient("sk_test_imprint", base_addresses={"api": localstripe})


# --- Users ------------------------------------------------------------------------------------

@pytest.fixture
def make_user(db):
    from django.utils import timezone

    from accounts.models import User

    def make(username: str = "alice", *, trainer=False, customer=True, staff=False, password="pw-Imprint-123",
             verified=True):
        # Confirmed e-mail by default: buying a licence and creating a key need it.
        user = User(username=username, email=f"{username}@example.com", is_trainer=trainer,
                    is_customer=customer, is_staff=staff, email_verified_at=timezone.now() if verified else None)
        user.set_password(password)
        user.save()
        return user

    return make


@pytest.fixture
def trainer(make_user):
    return make_user("tess", trainer=True, customer=False)


@pytest.fixture
def customer(make_user):
    return make_user("carl", trainer=False, customer=True)


@pytest.fixture
def staff_user(make_user):
    return make_user("sam", staff=True, customer=False)


# --- The built-in pretrained base, at its micro size --------------------------------------------

@pytest.fixture(scope="session")
def micro_base_folder(tmp_path_factory):
    """The built-in base at its micro size, pretrained once per session by the very code that
    prepares the full one (seconds): a model folder with its tokenizer and card."""
    from training.builtin_base import SIZES, base_pretrain

    root = tmp_path_factory.mktemp("micro-base")
    base_pretrain(folder=root / "imprint-base", size=SIZES["micro"], work=root / "work")
    return root / "imprint-base"


@pytest.fixture
def builtin_base(micro_base_folder, settings, tmp_path, db):
    """This test's installation with the built-in base ready (the session's micro folder, stored in
    this test's media like a prepared one)."""
    from training.services import bases

    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}}}
    settings.TRAINING_WORK_DIR = tmp_path / "work"
    settings.BUILTIN_BASE_SIZE = "micro"
    return bases.builtin_base_install(folder=micro_base_folder)


@pytest.fixture
def hub_reachable():
    """The hub probe's cached answer says the model hub answers, so GPT-2 family bases count as
    available (jobs on them are accepted; nothing in a test downloads them)."""
    from django.core.cache import cache

    from training.availability import HUB_PROBE_CACHE_KEY

    cache.set(HUB_PROBE_CACHE_KEY, {"reachable": True, "checked_at": "2026-12-07T00:00:00+00:00", "detail": ""},
              None)
