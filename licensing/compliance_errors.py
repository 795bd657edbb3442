"""Domain errors of compliance (reports, cases, decisions), each mapped once to an HTTP status."""

from rest_framework import status

from .errors import LicensingError


class ReportInvalid(LicensingError):
    code = "invalid_report"


class ReportRateLimited(LicensingError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    error_type = "rate_limit_error"
    code = "report_rate_limited"


class CaseNotFound(LicensingError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "case_not_found"


class FlagNotFound(LicensingError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "flag_not_found"


class DecisionInvalid(LicensingError):
    """Unknown action or an empty reason."""

    code = "invalid_decision"


class CaseAlreadyAnswered(LicensingError):
    status_code = status.HTTP_409_CONFLICT
    error_type = "conflict_error"
    code = "case_already_answered"


class AnswerInvalid(LicensingError):
    code = "invalid_answer"


class ExportRangeInvalid(LicensingError):
    code = "invalid_date_range"
