"""Health of the components the site depends on: database, broker, storage.

Each check returns {"ok": bool, "detail": str} and never raises: a dead component is reported as
down (HTTP 503 for the whole endpoint), never as a 500.
"""

import time
import uuid

from django.conf import settings
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
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
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


def health_report() -> dict:
    components = {
        "database": _timed(check_database),
        "broker": _timed(check_broker),
        "storage": _timed(check_storage),
    }
    return {"ok": all(c["ok"] for c in components.values()), "components": components}


def health_view(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)
