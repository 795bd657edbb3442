"""Celery tasks of inference, "treated as an API": take ids or plain data, call a service.

- `inference.generate` runs on the `inference` queue (routed by name): workers share one engine per
  process (thread pool), the web tier waits on the result. The request carries the precision the
  web chose (inference.precision); the result carries the one the worker's engine used.
- `inference.watermark_power_measure` and `inference.precision_check_measure` run there too: they
  load the model on the engine that serves it.
- `inference.verification_entropies`: a verification's model-entropy pass (inference.entropy_pass),
  so that the web tier never loads weights to verify a text.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from celery import shared_task
from django.conf import settings

from core.outages import retry_through_outage

from . import engine as engine_module
from .entropy_pass import ENTROPY_TASK, entropy_pass_compute


@shared_task(name="inference.generate")
def generation_run(payload: dict) -> dict:
    """Generate on this worker's engine; returns the result as JSON. Engine errors come back as
    {"error": {...}} so the web maps them to the same API errors as in process. With `relay`, tokens
    are published as they come and a cancel flag set by the web stops the engine between steps."""
    from training.models import ModelVersion

    from .modelstore import engine_instance, engine_source
    from .relay import TokenPublisher, cancel_checker, is_cancelled
    from .watermark import WatermarkKey

    request_id, relay = payload["request_id"], payload.get("relay")
    if is_cancelled(request_id):  # the web gave up on it while it queued: nobody waits for it
        return {"error": {"kind": "EngineError", "message": "Cancelled before it started.", "param": None}}
    publisher = TokenPublisher(request_id, relay, tokens=payload.get("stream", True)) if relay else None
    try:
        # Any owner's version of these files; a database outage is waited out (the heartbeat runs).
        version = retry_through_outage(lambda: ModelVersion.objects.filter(digest=payload["model_digest"]).first(),
                                       what=f"loading {request_id}", budget_seconds=float(settings.CHARGE_RETRY_SECONDS))
        request = engine_module.GenerationRequest(
            **engine_source(version), prompt=payload["prompt"],
            sampling=engine_module.SamplingParams.from_dict(payload), precision=payload.get("precision", "fp32"),
            watermark=WatermarkKey(**payload["watermark"]),
            should_cancel=cancel_checker(request_id, lost=lambda: publisher is not None and publisher.lost),
            on_token=publisher.publish if publisher else None)
        return _result_to_json(engine_instance().generate(request))
    except engine_module.ContextTooLong as exc:
        return {"error": {"kind": "context", "prompt_tokens": exc.prompt_tokens,
                          "max_new_tokens": exc.max_new_tokens, "n_positions": exc.n_positions}}
    except engine_module.EngineError as exc:
        return {"error": {"kind": type(exc).__name__, "message": str(exc), "param": getattr(exc, "param", None)}}
    finally:
        if publisher is not None:
            publisher.close()


def _result_to_json(result: engine_module.GenerationResult) -> dict:
    return {"model_digest": result.model_digest, "prompt_tokens": result.prompt_tokens, "seed": result.seed,
            "device": result.device, "precision": result.precision, "prompt_token_ids": result.prompt_token_ids,
            "completions": [{"index": c.index, "token_ids": c.token_ids, "text": c.text,
                             "finish_reason": c.finish_reason} for c in result.completions]}


def _result_from_json(data: dict) -> engine_module.GenerationResult:
    error = data.get("error")
    if error and error["kind"] == "context":
        raise engine_module.ContextTooLong(prompt_tokens=error["prompt_tokens"],
                                           max_new_tokens=error["max_new_tokens"], n_positions=error["n_positions"])
    if error:
        if error["kind"] == "InvalidGenerationRequest":
            raise engine_module.InvalidGenerationRequest(error["message"], param=error["param"])
        raise engine_module.EngineError(error["message"])
    completions = [engine_module.Completion(**c) for c in data["completions"]]
    return engine_module.GenerationResult(
        model_digest=data["model_digest"], prompt_tokens=data["prompt_tokens"], completions=completions,
        seed=data["seed"], device=data["device"], prompt_token_ids=data["prompt_token_ids"],
        # A worker from before serving precisions existed served fp32 and did not say so.
        precision=data.get("precision", "fp32"))


def _payload(prepared, relay: str | None, *, stream: bool) -> dict:
    """The task's JSON: the request's ids, its prompt and sampling parameters (flat, as
    `SamplingParams.to_dict`), the precision asked for and the grant's watermark; whether tokens
    are relayed (`stream`) or only the heartbeat."""
    return {"request_id": prepared.request_id, "relay": relay, "stream": stream,
            "model_digest": prepared.version.digest,
            "prompt": prepared.params.prompt, **prepared.params.sampling.to_dict(),
            "precision": prepared.precision, "watermark": prepared.watermark.to_dict()}


def generation_submit_remote(prepared, *, on_token=None, should_cancel=None) -> Future:
    """Send a prepared request to an `inference` worker; the Future completes with its result.

    With a Redis relay (inference.relay) the worker's heartbeat bounds every wait: the Future fails
    with WorkerLost once no worker took the request within INFERENCE_QUEUE_SECONDS, or the worker
    that took it was silent for INFERENCE_NO_PROGRESS_SECONDS (and a worker that takes it later
    skips it). Streaming (`on_token`) also relays the tokens as the worker makes them and forwards
    a disconnect (`should_cancel`) as the shared cancel flag. Without Redis the web waits up to
    INFERENCE_TIMEOUT_SECONDS and the tokens are replayed when the result arrives."""
    from .relay import TokenSubscription, relay_url

    url = relay_url()
    subscription = TokenSubscription(prepared.request_id, url) if url else None  # before the task starts
    try:
        async_result = generation_run.apply_async(args=[_payload(prepared, url, stream=on_token is not None)])
    except BaseException:  # the broker is down: an outage, answered 503 by the caller
        if subscription is not None:
            subscription.close()
        raise
    future: Future = Future()

    def wait():
        try:
            if subscription is not None:
                _relay_until_end(prepared.request_id, subscription, async_result, on_token, should_cancel)
                # The end marker precedes the stored result by moments; a worker dying in between
                # is silent as any other.
                data = async_result.get(timeout=float(settings.INFERENCE_NO_PROGRESS_SECONDS))
            else:
                data = async_result.get(timeout=float(settings.INFERENCE_TIMEOUT_SECONDS))
            result = _result_from_json(data)
            if subscription is None and on_token is not None:
                _replay(result, on_token)
            future.set_result(result)
        except BaseException as exc:  # noqa: BLE001 - the Future carries every failure to the caller
            future.set_exception(_as_worker_lost(prepared.request_id, exc))
        finally:
            if subscription is not None:
                subscription.close()

    threading.Thread(target=wait, daemon=True).start()
    return future


class WorkerLost(Exception):
    """No inference worker took the request in time, or the one running it went silent (killed, its
    machine gone, or the relay to it lost). `started`: whether a worker had taken it."""

    def __init__(self, message: str, *, started: bool):
        super().__init__(message)
        self.started = started


def _as_worker_lost(request_id: str, exc: BaseException) -> BaseException:
    """A silent result backend or a lost relay (Redis down) as WorkerLost; anything else as it is
    (a database outage on the worker comes back as the worker's own error)."""
    import redis.exceptions
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    from .relay import cancel_request

    if isinstance(exc, CeleryTimeoutError):
        cancel_request(request_id)
        return WorkerLost(f"The inference worker running {request_id} went silent.", started=True)
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        cancel_request(request_id)
        return WorkerLost(f"The relay to the inference worker running {request_id} was lost ({exc}).",
                          started=True)
    return exc


def _relay_until_end(request_id, subscription, async_result, on_token, should_cancel) -> None:
    """Forward the relay's tokens to `on_token` until the end marker; raise WorkerLost on silence."""
    from .relay import cancel_request

    queued_at, cancelled = time.monotonic(), False
    queue_limit = float(settings.INFERENCE_QUEUE_SECONDS)
    silence_limit = float(settings.INFERENCE_NO_PROGRESS_SECONDS)
    for event in subscription.events():
        if event is not None:
            if on_token is not None:
                on_token(event)
            continue
        now = time.monotonic()
        if subscription.heard_at is None and now - queued_at > queue_limit:
            cancel_request(request_id)  # a worker that takes it later skips it
            raise WorkerLost(f"No inference worker took {request_id} within {queue_limit:g} s.", started=False)
        if subscription.heard_at is not None and now - subscription.heard_at > silence_limit:
            if async_result.ready():
                return  # finished, and its end marker was lost
            cancel_request(request_id)
            raise WorkerLost(f"The inference worker running {request_id} sent nothing for {silence_limit:g} s.",
                             started=True)
        if not cancelled and should_cancel is not None and should_cancel():
            cancel_request(request_id)
            cancelled = True


def _replay(result: engine_module.GenerationResult, on_token) -> None:
    for c in result.completions:
        for token_id in c.token_ids:
            on_token(engine_module.TokenEvent(sample_index=c.index, token_id=token_id, text=""))
        on_token(engine_module.TokenEvent(sample_index=c.index, token_id=-1, text=c.text))


@shared_task(name="inference.idempotency_keys_sweep")
def idempotency_keys_sweep_task() -> int:
    """Free the Idempotency-Keys of requests whose process died (pending past their TTL)."""
    from .idempotency import claim_ttl, idempotency_keys_sweep

    return idempotency_keys_sweep(stale_after=claim_ttl())


@shared_task(name="inference.watermark_power_measure", autoretry_for=(ConnectionError,), max_retries=3)
def watermark_power_measure_task(version_id: str, force: bool = False) -> dict:
    """Measure a model version's watermark detection power (inference queue: it generates). Safe to
    deliver twice: a measured or running version is left alone unless `force`."""
    from .power import watermark_power_measure

    power = watermark_power_measure(version_id=version_id, force=force)
    return {"version": version_id, "state": power.state, "recall": power.recall}


@shared_task(name="inference.precision_check_measure", autoretry_for=(ConnectionError,), max_retries=3)
def precision_check_measure_task(version_id: str, precision: str, force: bool = False) -> dict:
    """Check whether a model version may be served at a precision below fp32 (inference queue: it
    loads the model on the engine that serves it). Safe to deliver twice: a measured or running
    check is left alone unless `force`; a version deleted meanwhile is skipped."""
    from training.models import ModelVersion

    from .precision import precision_check_measure

    try:
        check = precision_check_measure(version_id=version_id, precision=precision, force=force)
    except ModelVersion.DoesNotExist:
        return {"version": version_id, "precision": precision, "state": "gone"}
    return {"version": version_id, "precision": check.precision, "state": check.state,
            "increase": check.increase, "accepted": check.accepted}


@shared_task(name=ENTROPY_TASK)
def verification_entropies_task(payload: dict) -> dict:
    """The entropies a verification's watermark scan needs ({"versions": {version id: token ids},
    "deadline": epoch seconds}), as JSON; no retries: the web waits a bounded time and reports what
    did not come back as not scanned."""
    return entropy_pass_compute(requests=payload["versions"], deadline=float(payload["deadline"]))
