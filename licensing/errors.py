"""Domain errors of licensing: terms, grants and the checks a generation must pass, API keys."""

from core.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)


class TermsInvalid(InvalidRequest):
    """Terms failed validation. `errors` maps each bad field to its message."""

    code = "invalid_terms"

    def __init__(self, errors: dict[str, str]):
        first_field, first_message = next(iter(errors.items()))
        super().__init__(first_message, param=first_field, extra={"fields": errors})
        self.errors = errors


class TermsNotAllowedByInputs(InvalidRequest):
    """The model's base licence or its dataset's licence does not allow these terms."""

    code = "licence_inheritance"

    def __init__(self, reasons: dict[str, str]):
        first_field, first_message = next(iter(reasons.items()))
        super().__init__(first_message, param=first_field, extra={"fields": reasons})
        self.reasons = reasons


class TermsImmutable(Conflict):
    code = "terms_immutable"


class TermsNotFound(NotFound):
    code = "terms_not_found"


class ApiKeyInvalid(Unauthenticated):
    """Unknown, malformed or revoked API key."""

    code = "invalid_api_key"


class ApiKeyOwnerInactive(ApiKeyInvalid):
    """The key's owner has been deactivated: every key of theirs stops working with them."""

    code = "account_inactive"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


class ApiKeyLimitReached(Conflict):
    """The owner already has API_KEYS_PER_ACCOUNT_MAX active keys."""

    code = "api_key_limit_reached"


class GrantNotOwned(NotFound):
    code = "grant_not_found"


class GrantStateError(Conflict):
    code = "grant_state"


# --- The checks a generation must pass -------------------------------------------------------

class LicenceInactive(Forbidden):
    """The grant is pending, expired, revoked or not yet started."""

    code = "licence_inactive"


class LicenceSuspended(LicenceInactive):
    code = "licence_suspended"


class PurposeNotPermitted(Forbidden):
    code = "purpose_not_permitted"


class RateLimited(TooManyRequests):
    """The terms' requests per minute are used up. `window` is the counted window (for rate-limit
    headers); the retry-after header says when it ends."""

    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, window):
        super().__init__(message, headers={"retry-after": str(window.reset_seconds)})
        self.window = window


class QuotaExceeded(PaymentRequired):
    """402 with the tokens left, so a client can shorten its request."""

    error_type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, *, needed: int, remaining: int):
        super().__init__(f"This request needs up to {needed} tokens; the grant has {remaining} left.",
                         extra={"remaining_tokens": remaining, "needed_tokens": needed})
        self.remaining = remaining


class ReservationLost(Unavailable):
    """A request outlived its reservation (swept) and the quota was spent meanwhile."""

    code = "reservation_expired"
