"""Domain errors of licensing. Each maps once to an HTTP status (they are `ApiError`s)."""

from rest_framework import status

from config.api_errors import ApiError


class LicensingError(ApiError):
    pass


class TermsInvalid(LicensingError):
    """Terms failed validation. `errors` maps each bad field to its message."""

    code = "invalid_terms"

    def __init__(self, errors: dict[str, str]):
        first_field, first_message = next(iter(errors.items()))
        super().__init__(first_message, param=first_field, extra={"fields": errors})
        self.errors = errors


class TermsNotAllowedByInputs(LicensingError):
    """The model's base licence or its dataset's licence does not allow these terms."""

    code = "licence_inheritance"

    def __init__(self, reasons: dict[str, str]):
        first_field, first_message = next(iter(reasons.items()))
        super().__init__(first_message, param=first_field, extra={"fields": reasons})
        self.reasons = reasons


class TermsImmutable(LicensingError):
    status_code = status.HTTP_409_CONFLICT
    error_type = "conflict_error"
    code = "terms_immutable"


class ApiKeyInvalid(LicensingError):
    """Unknown, malformed or revoked API key."""

    status_code = status.HTTP_401_UNAUTHORIZED
    error_type = "authentication_error"
    code = "invalid_api_key"


class GrantNotOwned(LicensingError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "grant_not_found"


class GrantStateError(LicensingError):
    status_code = status.HTTP_409_CONFLICT
    error_type = "conflict_error"
    code = "grant_state"


class ApiKeyNotFound(LicensingError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "api_key_not_found"


class TermsNotFound(LicensingError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "terms_not_found"
