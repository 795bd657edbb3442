"""Inference writes: the metered generation flow.

    key → grant → checks (state, expiry, purpose, rate, quota) → reserve → engine → settle

`generation_prepare` runs licensing's checks (grant state and purpose, the terms' rate) and
reserves `n × (prompt + max_new_tokens)` tokens (licensing.quota). `generation_execute` runs the
engine and releases the reservation if it fails. `generation_settle` charges the actual tokens and
writes the ledger row, the receipts and the meter event row in ONE transaction. A refused request
is recorded in the audit log (compliance reads it from there) and charges nothing.

Where the engine runs (the trade-off): in this process in the embedded default — no broker hop, no
Redis, tokens streamed directly; but every web process holds a copy of the models, so it suits one
machine. On `inference` queue workers when settings.INFERENCE_IN_PROCESS is false (the production
default): the web tier never loads weights (only the tokenizer, to count prompt tokens before
reserving), workers scale on their own machines (GPUs) and share one engine per process, at the
cost of a broker round trip per request (~3 ms on Redis) and a Redis relay for streamed tokens.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_refusal_record
from core.errors import DomainError
from core.links import site_root
from core.outages import is_outage, retry_through_outage
from core.ratelimit import WindowCount
from licensing.models import ApiKey, Grant
from licensing.quota import (
    quota_release,
    quota_reservation_extend,
    quota_reserve,
    quota_settle,
)
from licensing.selectors import grant_licence_stamp, grant_receipt_licence
from licensing.services import grant_check, grant_rate_consume
from training.model_names import model_name

from . import engine as engine_module
from .engine import SamplingParams
from .errors import InferenceTimeout, InferenceWorkerLost, ModelUnavailable, engine_error_to_api
from .idempotency import (
    claim_ttl,
    idempotency_fingerprint,
    idempotency_key_claim,
    idempotency_key_complete,
    idempotency_key_keepalive,
    idempotency_key_release,
)
from .models import MeterOutbox, Receipt, UsageEntry
from .modelstore import (
    ModelIntegrityError,
    engine_instance,
    engine_source,
    tokenizer_for,
)
from .precision import precision_effective
from .ratelimit_headers import ratelimit_headers
from .receipts import customer_pseudonym, receipt_sign, sha256_text
from .selectors import grant_for_request, grant_watermark_key, usage_by_idempotency_key
from .signals import meter_event_recorded
from .watermark import WatermarkKey, WatermarkSchemeError

logger = logging.getLogger(__name__)


@contextmanager
def _as_api_errors() -> Iterator[None]:
    """The engine's domain errors raised inside, as the API's (inference.errors.engine_error_to_api)."""
    try:
        yield
    except engine_module.EngineError as exc:
        raise engine_error_to_api(exc) from exc


@dataclass(init=False)
class GenerationInput:
    """What a caller asks to generate: a model (id or digest), a prompt, how to sample it, and the
    purpose (None: the key's default). Sampling is given as `sampling=SamplingParams(...)` or flat
    (`max_new_tokens=10`); flat values outside its limits raise GenerationInvalid (400)."""

    model: str
    prompt: str
    sampling: SamplingParams
    purpose: str | None = None

    def __init__(self, *, model: str, prompt: str, sampling: SamplingParams | None = None,
                 purpose: str | None = None, **sampling_fields):
        self.model, self.prompt, self.purpose = model, prompt, purpose
        with _as_api_errors():
            self.sampling = SamplingParams.given(sampling, sampling_fields)


def _public_sampling(sampling: SamplingParams) -> dict:
    """The sampling parameters as both APIs and the receipts name them: `ignore_eos` (vLLM's name:
    generate exactly max_new_tokens) for the engine's `stop_at_eos`."""
    public = sampling.to_dict()
    public["ignore_eos"] = not public.pop("stop_at_eos")
    return public


@dataclass
class Prepared:
    """A request that passed every check and holds its reservation."""

    request_id: str
    api_key: ApiKey | None
    grant: Grant
    params: GenerationInput
    purpose: str
    prompt_tokens: int
    reserved: int
    idempotency_key: str
    ratelimit: WindowCount
    watermark: WatermarkKey
    # What the engine is asked to serve at (inference.precision); the result says what it used.
    precision: str = "fp32"
    created: int = field(default_factory=lambda: int(timezone.now().timestamp()))

    @property
    def version(self):
        return self.grant.model_version

    def headers(self) -> dict[str, str]:
        self.grant.refresh_from_db(fields=["used_tokens", "reserved_tokens", "quota_tokens"])
        return ratelimit_headers(self.grant, self.ratelimit)


# --- Checks ------------------------------------------------------------------------------------

def generation_refusal_record(*, grant: Grant, api_key: ApiKey | None, error: DomainError,
                              params: GenerationInput, purpose: str) -> None:
    """Record a refused request in the audit log (compliance flags hear of it at once), off the
    chain head so that a burst of refusals never queues behind it; it is sealed into the chain in
    batches. Charges nothing."""
    audit_refusal_record(event="generation.refused", actor=grant.customer, subject=grant,
                         data={"status": error.status_code, "code": error.code, "model": params.model,
                               "purpose": purpose, "key": api_key.prefix if api_key else "playground"})


def _validate(params: GenerationInput, version) -> None:
    request = engine_module.GenerationRequest(model_digest=version.digest, model_dir=None, prompt=params.prompt,
                                              sampling=params.sampling)
    with _as_api_errors():
        engine_module.validate_request(request)


def _count_prompt_tokens(version, prompt: str) -> int:
    try:
        tokenizer = tokenizer_for(version)
    except (OSError, ModelIntegrityError) as exc:
        raise ModelUnavailable(f"Model {version.digest[:12]} cannot be loaded: {exc}") from exc
    count = len(tokenizer(prompt)["input_ids"])
    if count == 0:
        raise engine_error_to_api(engine_module.InvalidGenerationRequest("The prompt encodes to no tokens.",
                                                                         param="prompt"))
    return count


def _context_check(params: GenerationInput, version, prompt_tokens: int) -> None:
    with _as_api_errors():
        engine_module.context_check(prompt_tokens=prompt_tokens, max_new_tokens=params.sampling.max_new_tokens,
                                    n_positions=version.n_positions)


def reservation_ttl() -> timedelta:
    # Short, and renewed by the request's keep-alive (a third of it) while it runs: the sweep never
    # takes a live request's tokens, and those of a request whose process died come back in a minute.
    return claim_ttl()


def keepalive_seconds() -> float:
    """How often a running request renews its reservation and its Idempotency-Key claim."""
    return int(settings.INFERENCE_RESERVATION_TTL_SECONDS) / 3


def _watermark_for(grant: Grant) -> WatermarkKey:
    """The grant's own watermark (its stored scheme and parameters, never today's settings)."""
    try:
        return grant_watermark_key(grant)
    except WatermarkSchemeError as exc:
        raise ModelUnavailable(f"Grant {grant.pk}'s watermark cannot be generated by this server: {exc}") from exc


def _new_request_id() -> str:
    return f"gen_{uuid.uuid4().hex}"


def generation_fingerprint(params: GenerationInput) -> str:
    """What an Idempotency-Key's first request asked for (its canonical parameters)."""
    return idempotency_fingerprint({"model": params.model, "prompt": params.prompt, "purpose": params.purpose,
                                    **_public_sampling(params.sampling)})


def generation_begin(*, api_key: ApiKey, params: GenerationInput, idempotency_key: str = "") -> Prepared | UsageEntry:
    """Claim the Idempotency-Key (if any), then run every check and reserve (`generation_prepare`).
    Returns the prepared request, or the finished ledger row of the key's first request (replay it:
    nothing is charged). A refusal frees the key. Raises IdempotencyKeyReused (409),
    IdempotencyInProgress (409) and every error of `generation_prepare`."""
    request_id = _new_request_id()
    replay = idempotency_key_claim(api_key=api_key, key=idempotency_key, fingerprint=generation_fingerprint(params),
                                   request_id=request_id, stale_after=reservation_ttl())
    if replay is not None:
        return replay
    try:
        return generation_prepare(api_key=api_key, params=params, idempotency_key=idempotency_key,
                                  request_id=request_id)
    except BaseException:
        idempotency_key_release(api_key=api_key, key=idempotency_key, request_id=request_id)
        raise


def generation_prepare(*, api_key: ApiKey | None, params: GenerationInput, idempotency_key: str = "",
                       customer=None, request_id: str | None = None) -> Prepared:
    """Run every check and reserve the tokens, for an API key (or, in the playground, for the
    signed-in `customer`), under `request_id` (a new one by default). Raises ModelNotFound (404),
    GenerationInvalid / ContextLengthExceeded (400), LicenceInactive / LicenceSuspended /
    PurposeNotPermitted (403), RateLimited (429), QuotaExceeded (402); each refusal with a grant is
    audited."""
    grant = grant_for_request(api_key=api_key, model=params.model, customer=customer)
    purpose = params.purpose or (api_key.default_purpose if api_key else "personal")
    try:
        grant_check(grant=grant, purpose=purpose)
        _validate(params, grant.model_version)
        prompt_tokens = _count_prompt_tokens(grant.model_version, params.prompt)
        _context_check(params, grant.model_version, prompt_tokens)
        precision = precision_effective(grant.model_version)  # read before anything is consumed
        rate = grant_rate_consume(grant=grant)
        need = params.sampling.n * (prompt_tokens + params.sampling.max_new_tokens)
        request_id = request_id or _new_request_id()
        quota_reserve(grant_id=grant.pk, tokens=need, request_id=request_id, ttl=reservation_ttl())
    except DomainError as error:
        generation_refusal_record(grant=grant, api_key=api_key, error=error, params=params, purpose=purpose)
        grant.refresh_from_db(fields=["used_tokens", "reserved_tokens"])
        error.headers = ratelimit_headers(grant, getattr(error, "window", None)) | error.headers
        raise
    return Prepared(request_id=request_id, api_key=api_key, grant=grant, params=params,
                    purpose=purpose, prompt_tokens=prompt_tokens, reserved=need,
                    idempotency_key=idempotency_key, ratelimit=rate, watermark=_watermark_for(grant),
                    precision=precision)


# --- Running the engine ------------------------------------------------------------------------

def _engine_request(prepared: Prepared, *, on_token=None, should_cancel=None) -> engine_module.GenerationRequest:
    version = prepared.version
    return engine_module.GenerationRequest(
        **engine_source(version), prompt=prepared.params.prompt,
        sampling=prepared.params.sampling, watermark=prepared.watermark, on_token=on_token,
        should_cancel=should_cancel, precision=prepared.precision)


def generation_submit(prepared: Prepared, *, on_token=None, should_cancel=None) -> Future:
    """Start the engine on a prepared request; the Future yields an engine GenerationResult.

    In process (embedded default) the engine streams tokens through `on_token` as they come; on
    `inference` workers (settings.INFERENCE_IN_PROCESS false) they come through the Redis relay
    (inference.relay) and a disconnect stops the worker's engine the same way."""
    if settings.INFERENCE_IN_PROCESS:
        with _as_api_errors():
            return engine_instance().submit(_engine_request(prepared, on_token=on_token,
                                                            should_cancel=should_cancel))
    from .tasks import generation_submit_remote

    return generation_submit_remote(prepared, on_token=on_token, should_cancel=should_cancel)


def through_outage(work, *, what: str):
    """Run a charge or a release, retried with backoff through a database outage of up to
    CHARGE_RETRY_SECONDS (core.outages.retry_through_outage): the one mechanism for streamed and
    plain requests alike."""
    return retry_through_outage(work, what=what, budget_seconds=float(settings.CHARGE_RETRY_SECONDS))


def generation_abandon(prepared: Prepared) -> None:
    """Give back the reservation and free the Idempotency-Key of a request that delivers nothing,
    retried through a database outage. Should even that fail, the reservation and the claim expire
    (INFERENCE_RESERVATION_TTL_SECONDS) and the sweeps free them within a minute."""

    def abandon():
        quota_release(request_id=prepared.request_id)
        idempotency_key_release(api_key=prepared.api_key, key=prepared.idempotency_key,
                                request_id=prepared.request_id)

    try:
        through_outage(abandon, what=f"releasing {prepared.request_id}")
    except Exception:
        logger.exception("could not release %s (%d tokens); the sweep will", prepared.request_id, prepared.reserved)


def generation_keepalive(prepared: Prepared) -> None:
    """A request still running (or a stream still being read): push back its reservation's expiry
    and keep its Idempotency-Key claimed, so it is neither swept nor duplicated. A database outage
    meanwhile is only logged: the TTL leaves room for several missed renewals."""
    try:
        quota_reservation_extend(request_id=prepared.request_id, ttl=reservation_ttl())
        idempotency_key_keepalive(api_key=prepared.api_key, key=prepared.idempotency_key,
                                  request_id=prepared.request_id)
    except Exception as exc:
        if not is_outage(exc):
            raise
        logger.warning("could not keep %s alive: %s", prepared.request_id, exc)


def _wait(prepared: Prepared, future: Future):
    """The engine's result, renewing the request's reservation while it runs."""
    deadline = time.monotonic() + float(settings.INFERENCE_TIMEOUT_SECONDS)
    while True:
        try:
            return future.result(timeout=max(0.01, min(keepalive_seconds(), deadline - time.monotonic())))
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise
            generation_keepalive(prepared)


def generation_execute(prepared: Prepared, *, on_token=None, should_cancel=None) -> engine_module.GenerationResult:
    """Run the engine and wait. On failure releases the reservation and the Idempotency-Key (a
    retry with the same key runs at once) and raises the mapped API error: InferenceWorkerLost (503)
    within seconds of a worker dying (inference.relay), InferenceTimeout (504) past
    INFERENCE_TIMEOUT_SECONDS. The message says what failed; the caller adds what was charged
    (`error_with_charge`)."""
    from .tasks import WorkerLost

    timeout = float(settings.INFERENCE_TIMEOUT_SECONDS)
    try:
        future = generation_submit(prepared, on_token=on_token, should_cancel=should_cancel)
        return _wait(prepared, future)
    except BaseException as exc:
        generation_abandon(prepared)
        if isinstance(exc, engine_module.EngineError):
            raise engine_error_to_api(exc) from exc
        if isinstance(exc, WorkerLost):
            raise InferenceWorkerLost(f"{exc} The request was stopped.",
                                      headers={"retry-after": "1"}) from exc
        if isinstance(exc, (TimeoutError, CeleryTimeoutError)):
            raise InferenceTimeout(f"No result from the inference worker within {timeout:g} s.") from exc
        raise


def error_with_charge(error: DomainError, entry: UsageEntry | None) -> DomainError:
    """`error` saying exactly what its request was charged: the ledger row (tokens, its request id)
    of what a client received before the failure, or nothing. Sets `extra["charged"]`."""
    if getattr(error, "charge_stated", False):
        return error
    if entry is None:
        charged = {"total_tokens": 0, "prompt_tokens": 0, "completion_tokens": 0, "ledger_row": None}
        sentence = "Nothing was charged (no ledger row was written)."
    else:
        charged = {"total_tokens": entry.total_tokens, "prompt_tokens": entry.prompt_tokens,
                   "completion_tokens": entry.completion_tokens, "ledger_row": entry.request_id,
                   "interrupted": entry.interrupted}
        sentence = (f"Charged {entry.total_tokens} tokens ({entry.prompt_tokens} prompt + {entry.completion_tokens} "
                    f"completion tokens you received) as ledger row {entry.request_id}"
                    f"{' (interrupted)' if entry.interrupted else ''}.")
    error.message = f"{error.message} {sentence}".strip()
    error.args = (error.message,)
    error.extra = {**error.extra, "charged": charged}
    error.charge_stated = True
    return error


# --- Settling ----------------------------------------------------------------------------------

def _receipt_claims(prepared: Prepared, result, completion, receipt_id, now) -> dict:
    p, grant, version = prepared.params, prepared.grant, prepared.version
    listing = getattr(version, "listing", None)
    name = model_name(version)
    return {
        "iss": site_root(), "jti": str(receipt_id), "iat": int(now.timestamp()),
        "request_id": prepared.request_id,
        "model": {"version_id": str(version.pk), "digest": version.digest, "name": version.name,
                  "title": name.title, "trainer": name.trainer, "readable_id": name.api_id},
        "listing": str(listing.pk) if listing else None,
        "licence": grant_receipt_licence(grant),
        "grant": str(grant.pk), "sub": customer_pseudonym(grant.customer_id), "purpose": prepared.purpose,
        "params": {**_public_sampling(p.sampling), "seed": result.seed, "index": completion.index},
        "prompt_sha256": sha256_text(p.prompt), "output_sha256": sha256_text(completion.text),
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": len(completion.token_ids)},
        "watermark": _watermark_claim(prepared.watermark, grant),
        "precision": result.precision,
    }


def model_fields(version) -> dict:
    """The model's one name beside its ids in a response: `model_name` is the readable id
    (`trainer/slug@digest12`, the UUID while unlisted), `model_title` the listing's title."""
    name = model_name(version)
    return {"model_name": name.api_id, "model_title": name.title}


def _watermark_claim(watermark: WatermarkKey, grant: Grant) -> dict:
    return {**watermark.scheme.claims(), "secret_version": grant.watermark_secret_version}


def _meter_event_for(entry: UsageEntry, grant: Grant) -> MeterOutbox | None:
    """A meter event row for a metered grant's usage (billing delivers it and finds the payer)."""
    if not grant.metered:
        return None
    identifier = f"imprint-usage-{entry.request_id}"
    payload = {"tokens": entry.total_tokens, "identifier": identifier, "timestamp": int(entry.created_at.timestamp())}
    return MeterOutbox.objects.create(identifier=identifier, usage_entry=entry, payload=payload)


def _outputs(prepared: Prepared, result, now, *, sign: bool) -> tuple[list[Receipt], list[dict]]:
    receipts, outputs = [], []
    for completion in result.completions:
        receipt = None
        if sign:
            receipt_id = uuid.uuid4()
            claims = _receipt_claims(prepared, result, completion, receipt_id, now)
            kid, jws = receipt_sign(claims=claims)
            receipts.append(Receipt(id=receipt_id, index=completion.index, kid=kid, jws=jws, grant=prepared.grant,
                                    model_digest=result.model_digest, terms_sha256=prepared.grant.terms_id,
                                    prompt_sha256=claims["prompt_sha256"], output_sha256=claims["output_sha256"],
                                    issued_at=now))
            receipt = {"id": str(receipt_id), "jws": jws}
        outputs.append({"index": completion.index, "text": completion.text, "finish_reason": completion.finish_reason,
                        "tokens": len(completion.token_ids), "receipt": receipt})
    return receipts, outputs


def _body(prepared: Prepared, result, outputs: list[dict], *, interrupted: bool, charged: int) -> dict:
    return {
        "id": prepared.request_id, "object": "generation", "created": prepared.created,
        "model": str(prepared.version.pk), "model_digest": result.model_digest, "precision": result.precision,
        **model_fields(prepared.version),
        "seed": result.seed,
        "purpose": prepared.purpose, "outputs": outputs, "interrupted": interrupted,
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                  "total_tokens": charged},
        "licence": grant_licence_stamp(prepared.grant),
    }


@transaction.atomic
def _settle(prepared: Prepared, result, *, interrupted: bool, delivered: bool = False, sign: bool = True) -> UsageEntry:
    charged = result.prompt_tokens + result.completion_tokens  # the prompt counts once, as OpenAI's
    over_quota = quota_settle(grant_id=prepared.grant.pk, request_id=prepared.request_id,
                              reserved=prepared.reserved, charged=charged, delivered=delivered)
    now = timezone.now()
    receipts, outputs = _outputs(prepared, result, now, sign=sign)
    entry = UsageEntry.objects.create(
        request_id=prepared.request_id, grant=prepared.grant, api_key=prepared.api_key,
        model_digest=result.model_digest, purpose=prepared.purpose, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, total_tokens=charged, samples=len(result.completions),
        interrupted=interrupted, over_quota_tokens=over_quota, idempotency_key=prepared.idempotency_key,
        response=_body(prepared, result, outputs, interrupted=interrupted, charged=charged))
    for receipt in receipts:
        receipt.usage_entry = entry
    Receipt.objects.bulk_create(receipts)
    idempotency_key_complete(api_key=prepared.api_key, key=prepared.idempotency_key,
                             request_id=prepared.request_id, entry=entry)
    outbox = _meter_event_for(entry, prepared.grant)
    if outbox is not None:
        transaction.on_commit(lambda: meter_event_recorded.send(sender=MeterOutbox, outbox_id=outbox.pk))
    return entry


def generation_settle(prepared: Prepared, result, *, interrupted: bool = False) -> UsageEntry:
    """Charge the actual tokens and write ledger row, receipts and outbox row in one transaction,
    retried through a database outage (`through_outage`).

    A concurrent retry with the same Idempotency-Key loses the race on the unique constraint: its
    reservation is released and the first request's entry is returned (charged once)."""
    try:
        return through_outage(lambda: _settle(prepared, result, interrupted=interrupted),
                              what=f"charging {prepared.request_id}")
    except IntegrityError:
        quota_release(request_id=prepared.request_id)
        existing = usage_by_idempotency_key(api_key=prepared.api_key, idempotency_key=prepared.idempotency_key)
        if existing is None:
            raise
        return existing


SIGNED_ATTEMPTS = 2  # a failing signer (or anything else) gets one more try; then no receipts


def _settle_delivered_once(prepared: Prepared, result, *, interrupted: bool, sign: bool) -> UsageEntry:
    try:
        return _settle(prepared, result, interrupted=interrupted, delivered=True, sign=sign)
    except IntegrityError:
        # Another request's row holds this Idempotency-Key, but these tokens were sent too: they get
        # a row of their own rather than going free.
        return _settle(replace(prepared, idempotency_key=""), result, interrupted=interrupted, delivered=True,
                       sign=sign)


def generation_settle_delivered(prepared: Prepared, result, *, interrupted: bool = False) -> UsageEntry:
    """Settle a result the client has already received (a stream): its tokens are always charged.

    A swept reservation is charged anyway, up to what remains of the quota, and the rest is kept on
    the ledger row as `over_quota_tokens` (licensing.quota.quota_settle). A database outage is
    waited out (`through_outage`, as for every charge); any other failure is tried once more, then
    the charge is recorded without receipts (interrupted, every receipt null). Raises only when even
    that cannot be written (the database stayed away); the failure is logged with the token count."""
    what = f"charging {prepared.request_id}"
    for attempt in range(SIGNED_ATTEMPTS):
        try:
            return through_outage(lambda: _settle_delivered_once(prepared, result, interrupted=interrupted,
                                                                 sign=True), what=what)
        except Exception as exc:  # whatever failed (the signer, a bug), the tokens were sent
            logger.warning("settling %s failed (attempt %d)", prepared.request_id, attempt + 1, exc_info=True)
            if is_outage(exc):
                break  # the retry budget is spent already
            time.sleep(0.05)
    try:
        return through_outage(lambda: _settle_delivered_once(prepared, result, interrupted=True, sign=False),
                              what=what)
    except Exception:
        logger.exception("UNCHARGED: %s delivered %d tokens that could not be recorded", prepared.request_id,
                         result.prompt_tokens + result.completion_tokens)
        raise


def result_from_sent(prepared: Prepared, *, sent_ids: dict[int, list[int]], sent_text: dict[int, str]):
    """What a client received of a stream whose engine failed midway, as a result to charge."""
    completions = [engine_module.Completion(index=i, token_ids=list(ids), text=sent_text.get(i, ""),
                                            finish_reason="cancelled") for i, ids in sorted(sent_ids.items())]
    return engine_module.GenerationResult(model_digest=prepared.version.digest, prompt_tokens=prepared.prompt_tokens,
                                          completions=completions, seed=prepared.params.sampling.seed or 0, device="",
                                          precision=_precision_used(prepared))


def _precision_used(prepared: Prepared) -> str:
    """The precision an engine that failed midway was serving at: what it was asked for, as the
    engine uses it on this process's device. A remote worker's device is unknown here; what it was
    asked for is then the best answer (a bf16 check is only ever accepted on CUDA, where it runs)."""
    if settings.INFERENCE_IN_PROCESS:
        return engine_module.serving_precision(prepared.precision, engine_instance().device)
    return prepared.precision


def truncate_to_sent(result, *, sent_tokens: dict[int, int], sent_text: dict[int, str]):
    """The result cut to what a client actually received: an interrupted stream is charged for the
    tokens sent only, and its receipt covers exactly the text sent."""
    completions = []
    for completion in result.completions:
        count = sent_tokens.get(completion.index, 0)
        if count < len(completion.token_ids):
            completion = replace(completion, token_ids=completion.token_ids[:count], finish_reason="cancelled",
                                 text=sent_text.get(completion.index, ""))
        completions.append(completion)
    return replace(result, completions=completions)


def generation_create(*, api_key: ApiKey, params: GenerationInput,
                      idempotency_key: str = "") -> tuple[UsageEntry, dict[str, str], bool]:
    """The whole non-streaming flow. Returns (usage entry, rate-limit headers, replayed): a retry
    with a known Idempotency-Key returns the first entry without charging again. A failure to
    settle delivers nothing, so it charges nothing and frees the key.

    Raises every error of `generation_begin` and `generation_execute`."""
    prepared = generation_begin(api_key=api_key, params=params, idempotency_key=idempotency_key)
    if isinstance(prepared, UsageEntry):
        return prepared, {}, True
    try:
        result = generation_execute(prepared)
    except DomainError as error:
        raise error_with_charge(error, None) from error  # nothing was delivered, so nothing charged
    try:
        entry = generation_settle(prepared, result)
    except BaseException:
        generation_abandon(prepared)
        raise
    return entry, prepared.headers(), entry.request_id != prepared.request_id
