"""Health of the components the site depends on: database, broker, storage.

Each check returns {"ok": bool, "detail": str} and never raises: a dead component is reported as
down (HTTP 503 for the whole endpoint), never as a 500. Anyone may ask, so strangers get only up or
down per component; the reasons (exception text, hostnames, engines) are for staff.
"""

import contextlib
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse
from kombu import Connection


def _timed(check):
    started = time.monotonic()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # noqa: BLE001 - any failure means "down", reported with its reason
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "detail": detail, "ms": round((time.monotonic() - started) * 1000, 1)}


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    with Connection(url, transport_options=options, connect_timeout=2) as conn:
        # One attempt, no retry loop: a health probe must answer quickly.
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else conn.transport.driver_name


def check_storage() -> str:
    name = default_storage.save(f"health/probe-{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name) as fh:
            if fh.read() != b"ok":
                raise OSError("read back different bytes")
    finally:
        default_storage.delete(name)
    return type(default_storage._wrapped).__name__


def check_storage_reachable() -> str:
    """A read-only probe (a HEAD on S3): for when the write probe is not ours to run."""
    default_storage.exists("health/probe.txt")
    return type(default_storage._wrapped).__name__


def storage_status() -> dict:
    """The write probe's result, running it at most once per HEALTH_STORAGE_PROBE_SECONDS across
    all processes: the endpoint is public, and an object written per hit would let anyone make us
    pay for storage requests. The first request of a window claims the probe in the shared cache;
    the others meanwhile get the last window's answer (or the read-only probe before any)."""
    seconds = max(1, settings.HEALTH_STORAGE_PROBE_SECONDS)
    window = int(time.time() // seconds)
    try:
        last = cache.get("imprint:health:storage")
        if last is not None and last["window"] == window:
            return last["result"]
        if not cache.add(f"imprint:health:storage-claim:{window}", 1, timeout=seconds * 2):
            return last["result"] if last is not None else _timed(check_storage_reachable)
    except Exception:  # noqa: BLE001 - the cache is down (the database cache): probe without writing
        return _timed(check_storage_reachable)
    result = _timed(check_storage)
    with contextlib.suppress(Exception):  # a cache that fails now only means the next window probes again
        cache.set("imprint:health:storage", {"window": window, "result": result}, timeout=seconds * 2)
    return result


def health_report() -> dict:
    components = {
        "database": _timed(check_database),
        "broker": _timed(check_broker),
        "storage": storage_status(),
    }
    return {"ok": all(c["ok"] for c in components.values()), "components": components}


def public_report(report: dict) -> dict:
    """Only up or down per component: the details name hosts and internals."""
    return {"ok": report["ok"], "components": {name: {"ok": c["ok"]} for name, c in report["components"].items()}}


def health_view(request):
    report = health_report()
    if not request.user.is_staff:
        report = public_report(report)
    return JsonResponse(report, status=200 if report["ok"] else 503)
