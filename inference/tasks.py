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

from . import engine as engine_module
from .entropy_pass import ENTROPY_TASK, entropy_pass_compute


@shared_task(name="inference.generate")
def generation_run(payload: dict) -> dict:
    """Generate on this worker's engine; returns the result as JSON. Engine errors come back as
    {"error": {...}} so the web maps them to the same API errors as in process. With `relay`, tokens
    are published as they come and a cancel flag set by the web stops the engine between steps."""
    from training.models import ModelVersion

    from .modelstore import engine_instance, engine_source
    from .relay import TokenPublisher, cancel_checker
    from .watermark import WatermarkKey

    request_id, relay = payload["request_id"], payload.get("relay")
    version = ModelVersion.objects.filter(digest=payload["model_digest"]).first()  # any owner's: same files
    publisher = TokenPublisher(request_id, relay) if relay else None
    try:
        request = engine_module.GenerationRequest(
            **engine_source(version), prompt=payload["prompt"],
            sampling=engine_module.SamplingParams.from_dict(payload), precision=payload.get("precision", "fp32"),
            watermark=WatermarkKey(**payload["watermark"]), should_cancel=cancel_checker(request_id),
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


def _payload(prepared, relay: str | None) -> dict:
    """The task's JSON: the request's ids, its prompt and sampling parameters (flat, as
    `SamplingParams.to_dict`), the precision asked for and the grant's watermark."""
    return {"request_id": prepared.request_id, "relay": relay, "model_digest": prepared.version.digest,
            "prompt": prepared.params.prompt, **prepared.params.sampling.to_dict(),
            "precision": prepared.precision, "watermark": prepared.watermark.to_dict()}


def generation_submit_remote(prepared, *, on_token=None, should_cancel=None) -> Future:
    """Send a prepared request to an `inference` worker; the Future completes with its result.

    Streaming (`on_token`) relays tokens over Redis as the worker makes them, and forwards a
    disconnect (`should_cancel`) as the shared cancel flag. Without Redis the tokens are replayed
    when the result arrives."""
    from .relay import TokenSubscription, cancel_request, relay_url

    url = relay_url() if on_token is not None else None
    subscription = TokenSubscription(prepared.request_id, url) if url else None  # before the task starts
    async_result = generation_run.apply_async(args=[_payload(prepared, url)])
    future: Future = Future()
    timeout = float(settings.INFERENCE_TIMEOUT_SECONDS)

    def relay_tokens():
        cancelled, finished, deadline = False, False, time.monotonic() + timeout
        for event in subscription.events():
            if event is not None:
                on_token(event)
                continue
            # A quiet interval. The worker publishes its end marker before it stores the result, so
            # a quiet interval after the result is ready means the marker was lost: stop waiting.
            if finished:
                return
            finished = async_result.ready()
            if time.monotonic() > deadline:
                raise TimeoutError(f"No tokens from the inference worker for {prepared.request_id}.")
            if not cancelled and should_cancel is not None and should_cancel():
                cancel_request(prepared.request_id)
                cancelled = True

    def wait():
        try:
            if subscription is not None:
                relay_tokens()
            result = _result_from_json(async_result.get(timeout=timeout))
            if subscription is None and on_token is not None:
                _replay(result, on_token)
            future.set_result(result)
        except BaseException as exc:  # noqa: BLE001 - the Future carries every failure to the caller
            future.set_exception(exc)
        finally:
            if subscription is not None:
                subscription.close()

    threading.Thread(target=wait, daemon=True).start()
    return future


def _replay(result: engine_module.GenerationResult, on_token) -> None:
    for c in result.completions:
        for token_id in c.token_ids:
            on_token(engine_module.TokenEvent(sample_index=c.index, token_id=token_id, text=""))
        on_token(engine_module.TokenEvent(sample_index=c.index, token_id=-1, text=c.text))


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
