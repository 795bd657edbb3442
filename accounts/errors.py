"""Domain errors of accounts: throttled account actions and an unverified e-mail address."""

from core.errors import Forbidden, TooManyRequests


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
