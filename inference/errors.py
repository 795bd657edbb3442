"""Domain errors of inference. The engine's own errors (plain Python without Django, inference.engine) are
translated here by `engine_error_to_api`; the licence checks' errors are licensing's."""

from core.errors import Conflict, DomainError, InvalidRequest, NotFound, TooManyRequests, Unavailable

from . import engine


class GenerationInvalid(InvalidRequest):
    code = "invalid_value"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ModelNotFound(NotFound):
    code = "model_not_found"


class SigningKeyNotFound(NotFound):
    code = "signing_key_not_found"


class SigningKeyRevokeInvalid(InvalidRequest):
    code = "invalid_value"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class PrecisionInvalid(InvalidRequest):
    """400: not one of the engine's serving precisions (param "precision")."""

    code = "invalid_precision"


class PrecisionRefused(InvalidRequest):
    """400: the precision's check measured a perplexity increase above the bound; extra carries
    `increase` and `bound` (relative), so a client can show both."""

    code = "precision_refused"


class ModelVersionNotFound(NotFound):
    """404: no such model version of yours (another trainer's id is not confirmed)."""

    code = "model_version_not_found"


class EngineBusy(TooManyRequests):
    code = "engine_busy"


class ModelUnavailable(Unavailable):
    code = "model_unavailable"


class InferenceWorkerLost(Unavailable):
    """503: no inference worker took the request in time, or the one running it stopped (noticed
    by its missing heartbeat within seconds). The Idempotency-Key is free again: retry."""

    code = "inference_worker_lost"


class GenerationFailed(DomainError):
    """500: a stream failed for a reason that is not the client's nor a known outage."""

    status_code = 500
    error_type = "api_error"
    code = "server_error"


class InferenceTimeout(Unavailable):
    """No result from the inference worker in time (it died, or the queue is stuck)."""

    status_code = 504
    code = "inference_timeout"


def engine_error_to_api(exc: engine.EngineError) -> InvalidRequest | EngineBusy | ModelUnavailable:
    """The API error for an engine error (one place for the mapping)."""
    if isinstance(exc, engine.ContextTooLong):
        return ContextLengthExceeded(
            str(exc), param="max_new_tokens",
            extra={"prompt_tokens": exc.prompt_tokens, "max_new_tokens": exc.max_new_tokens,
                   "n_positions": exc.n_positions})
    if isinstance(exc, engine.InvalidGenerationRequest):
        return GenerationInvalid(str(exc), param=exc.param)
    if isinstance(exc, engine.EngineBusy):
        return EngineBusy(str(exc), headers={"retry-after": "1"})
    return ModelUnavailable(str(exc))
