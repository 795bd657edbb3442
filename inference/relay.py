"""Token relay between an `inference` worker and the web process streaming that request.

Tokens travel on a Redis pub/sub channel per request (the worker publishes, the web subscribes before
it sends the task, so no token is missed); a client that disconnects sets a cancel flag in the shared
cache (Redis in production), which the worker's engine checks between steps. Without Redis (the
embedded default runs the engine in process anyway) the web gets the tokens with the result.

Settings read here: INFERENCE_RELAY_URL (optional; default: the Celery broker when it is Redis).
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.core.cache import cache

from .engine import TokenEvent

CANCEL_CHECK_SECONDS = 0.05  # bounds the cache reads per request to ~20/s, whatever the step time


def relay_url() -> str | None:
    url = settings.INFERENCE_RELAY_URL or settings.CELERY_BROKER_URL
    return url if url.startswith(("redis://", "rediss://")) else None


def _channel(request_id: str) -> str:
    return f"imprint:tokens:{request_id}"


def _cancel_key(request_id: str) -> str:
    return f"imprint:cancel:{request_id}"


def cancel_request(request_id: str) -> None:
    """Ask the worker running `request_id` to stop at its next step."""
    cache.set(_cancel_key(request_id), True, timeout=3600)


def cancel_checker(request_id: str):
    """A `should_cancel` for the engine that reads the shared flag at most every CANCEL_CHECK_SECONDS."""
    state = {"next": 0.0, "cancelled": False}

    def should_cancel() -> bool:
        now = time.monotonic()
        if not state["cancelled"] and now >= state["next"]:
            state["next"] = now + CANCEL_CHECK_SECONDS
            state["cancelled"] = bool(cache.get(_cancel_key(request_id)))
        return state["cancelled"]

    return should_cancel


class TokenPublisher:
    """Worker side: publishes each TokenEvent of a request, then an end marker."""

    def __init__(self, request_id: str, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.channel = _channel(request_id)

    def publish(self, event: TokenEvent) -> None:
        self.client.publish(self.channel, json.dumps([event.sample_index, event.token_id, event.text]))

    def close(self) -> None:
        self.client.publish(self.channel, "end")
        self.client.close()


class TokenSubscription:
    """Web side: subscribe before sending the task; `events(timeout)` yields TokenEvents (None on a
    quiet interval, so the caller can check for a disconnect) until the end marker."""

    def __init__(self, request_id: str, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(_channel(request_id))

    def events(self, poll_seconds: float = 0.1):
        while True:
            message = self.pubsub.get_message(timeout=poll_seconds)
            if message is None:
                yield None
                continue
            if message["data"] == b"end":
                return
            index, token_id, text = json.loads(message["data"])
            yield TokenEvent(sample_index=index, token_id=token_id, text=text)

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()
