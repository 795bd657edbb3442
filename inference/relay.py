"""Token relay between an `inference` worker and the web process streaming that request.

Tokens travel on a Redis pub/sub channel per request (the worker publishes, the web subscribes before
it sends the task, so no token is missed); a client that disconnects sets a cancel flag in the shared
cache (Redis in production), which the worker's engine checks between steps. Without Redis (the
embedded default runs the engine in process anyway) the web gets the tokens with the result.

The relay also says the worker is alive: from the moment a worker takes a request it publishes a
heartbeat every INFERENCE_HEARTBEAT_SECONDS until the end marker, so the web knows within
INFERENCE_NO_PROGRESS_SECONDS that a worker died (killed, its machine gone) instead of waiting for
the overall INFERENCE_TIMEOUT_SECONDS. A lost relay (Redis down) ends the request the same way, and
stops the worker's engine too (its tokens can no longer reach anyone).

Settings read here: INFERENCE_RELAY_URL (optional; default: the Celery broker when it is Redis),
INFERENCE_HEARTBEAT_SECONDS.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache

from core.outages import is_outage

from .engine import TokenEvent

logger = logging.getLogger(__name__)
HEARTBEAT = "hb"

CANCEL_CHECK_SECONDS = 0.05  # bounds the cache reads per request to ~20/s, whatever the step time


def relay_url() -> str | None:
    url = settings.INFERENCE_RELAY_URL or settings.CELERY_BROKER_URL
    return url if url.startswith(("redis://", "rediss://")) else None


def _channel(request_id: str) -> str:
    return f"imprint:tokens:{request_id}"


def _cancel_key(request_id: str) -> str:
    return f"imprint:cancel:{request_id}"


def cancel_request(request_id: str) -> None:
    """Ask the worker running `request_id` to stop at its next step (or to skip it, if no worker
    has taken it yet). Best effort: with the cache down the worker learns it from the lost relay."""
    try:
        cache.set(_cancel_key(request_id), True, timeout=3600)
    except Exception as exc:
        if not is_outage(exc):
            raise
        logger.warning("could not flag %s as cancelled: %s", request_id, exc)


def is_cancelled(request_id: str) -> bool:
    try:
        return bool(cache.get(_cancel_key(request_id)))
    except Exception as exc:
        if not is_outage(exc):
            raise
        return False  # unknown: the relay's own failure stops a request nobody reads any more


def cancel_checker(request_id: str, *, lost=lambda: False):
    """A `should_cancel` for the engine that reads the shared flag at most every CANCEL_CHECK_SECONDS
    (or says yes at once when `lost()`: the web can no longer be reached)."""
    state = {"next": 0.0, "cancelled": False}

    def should_cancel() -> bool:
        now = time.monotonic()
        if lost():
            state["cancelled"] = True
        if not state["cancelled"] and now >= state["next"]:
            state["next"] = now + CANCEL_CHECK_SECONDS
            state["cancelled"] = is_cancelled(request_id)
        return state["cancelled"]

    return should_cancel


class TokenPublisher:
    """Worker side: a heartbeat from creation to `close()`, each TokenEvent of a streamed request,
    then an end marker. A publish that fails marks the relay `lost` (checked by the engine's
    `should_cancel`) instead of raising into the engine."""

    def __init__(self, request_id: str, url: str, *, tokens: bool = True):
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        self.channel = _channel(request_id)
        self.tokens = tokens
        self.lost = False
        self.done = threading.Event()
        self._send(HEARTBEAT)  # "taken": before the model loads, which may take a while
        threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{request_id}").start()

    def _send(self, message: str) -> None:
        if self.lost:
            return
        try:
            self.client.publish(self.channel, message)
        except Exception as exc:  # noqa: BLE001 - any relay failure means nobody can read us
            self.lost = True
            logger.warning("relay %s lost: %s", self.channel, exc)

    def _beat(self) -> None:
        interval = float(settings.INFERENCE_HEARTBEAT_SECONDS)
        while not self.done.wait(interval):
            self._send(HEARTBEAT)

    def publish(self, event: TokenEvent) -> None:
        if self.tokens:
            self._send(json.dumps([event.sample_index, event.token_id, event.text]))

    def close(self) -> None:
        self.done.set()
        self._send("end")
        self.client.close()


class TokenSubscription:
    """Web side: subscribe before sending the task; `events(timeout)` yields TokenEvents (None on a
    quiet interval or a heartbeat, so the caller can check for a disconnect) until the end marker.
    `heard_at` is the monotonic time of the worker's last message (None: no worker took it yet).
    A lost relay raises redis' ConnectionError (an outage, core.outages)."""

    def __init__(self, request_id: str, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(_channel(request_id))
        self.heard_at: float | None = None

    def events(self, poll_seconds: float = 0.1):
        while True:
            message = self.pubsub.get_message(timeout=poll_seconds)
            if message is None:
                yield None
                continue
            self.heard_at = time.monotonic()
            if message["data"] == b"end":
                return
            if message["data"] == HEARTBEAT.encode():
                yield None
                continue
            index, token_id, text = json.loads(message["data"])
            yield TokenEvent(sample_index=index, token_id=token_id, text=text)

    def close(self) -> None:
        try:
            self.pubsub.close()
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a relay that is already gone
            pass
