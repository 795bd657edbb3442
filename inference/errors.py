"""Domain errors of inference, each mapped once to an HTTP status and an OpenAI-style type and code
(they are `ApiError`s, rendered by config.api_errors). The engine's own errors (a plain module
without Django) are translated here by `engine_error_to_api`."""

from rest_framework import status

from config.api_errors import ApiError

from . import engine


class InferenceError(ApiError):
    pass


class GenerationInvalid(InferenceError):
    code = "invalid_value"


class ContextLengthExceeded(InferenceError):
    code = "context_length_exceeded"


class ModelNotFound(InferenceError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "model_not_found"


class LicenceInactive(InferenceError):
    """The grant is pending, expired, revoked or not yet started."""

    status_code = status.HTTP_403_FORBIDDEN
    error_type = "permission_error"
    code = "licence_inactive"


class LicenceSuspended(LicenceInactive):
    code = "licence_suspended"


class PurposeNotPermitted(InferenceError):
    status_code = status.HTTP_403_FORBIDDEN
    error_type = "permission_error"
    code = "purpose_not_permitted"


class RateLimited(InferenceError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, headers: dict[str, str]):
        super().__init__(message)
        self.headers = headers


class EngineBusy(RateLimited):
    code = "engine_busy"


class QuotaExceeded(InferenceError):
    """402 with the tokens left, so a client can shorten its request."""

    status_code = status.HTTP_402_PAYMENT_REQUIRED
    error_type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, *, needed: int, remaining: int):
        super().__init__(
            f"This request needs up to {needed} tokens; the grant has {remaining} left.",
            extra={"remaining_tokens": remaining, "needed_tokens": needed},
        )
        self.remaining = remaining


class ModelUnavailable(InferenceError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    error_type = "api_error"
    code = "model_unavailable"


class InferenceTimeout(InferenceError):
    """No result from the inference worker in time (it died, or the queue is stuck)."""

    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    error_type = "api_error"
    code = "inference_timeout"


class ReservationLost(InferenceError):
    """A request outlived its reservation (swept) and the quota was spent meanwhile."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    error_type = "api_error"
    code = "reservation_expired"


class IdempotencyConflict(InferenceError):
    status_code = status.HTTP_409_CONFLICT
    error_type = "conflict_error"
    code = "idempotency_key_in_use"


def engine_error_to_api(exc: engine.EngineError) -> InferenceError:
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
