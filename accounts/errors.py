"""Domain errors of accounts: throttled account actions and an unverified e-mail address."""

from core.errors import Forbidden, InvalidRequest, NotFound, TooManyRequests, Unauthenticated


class TooManyAttempts(TooManyRequests):
    """An account action (log in, sign up, an account e-mail) past its hourly limit; the
    retry-after header says when the window ends."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, headers={"retry-after": str(retry_after)})
        self.retry_after = retry_after


class EmailNotVerified(Forbidden):
    """Buying a licence or creating an API key needs a confirmed e-mail address."""

    code = "email_not_verified"


class TokenInvalid(Unauthenticated):
    """401: a missing, unknown or revoked personal access token."""

    code = "invalid_token"


class TokenOwnerInactive(Unauthenticated):
    """401: the token's account was deactivated."""

    code = "account_inactive"


class TokenScopeMissing(Forbidden):
    """403: the token lacks the scope the endpoint needs; `required_scope` names it."""

    code = "insufficient_scope"


class TokenNotAccepted(Forbidden):
    """403: this endpoint takes a browser session or an API key, not a personal access token."""

    code = "token_not_accepted"


class TokenScopesInvalid(InvalidRequest):
    code = "invalid_scopes"


class TokenNotFound(NotFound):
    code = "token_not_found"
