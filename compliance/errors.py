"""Domain errors of compliance (reports, flags, cases, decisions)."""

from core.errors import Conflict, InvalidRequest, NotFound, TooManyRequests


class ReportInvalid(InvalidRequest):
    code = "invalid_report"


class ReportRateLimited(TooManyRequests):
    code = "report_rate_limited"


class CaseNotFound(NotFound):
    code = "case_not_found"


class FlagNotFound(NotFound):
    code = "flag_not_found"


class DecisionInvalid(InvalidRequest):
    """Unknown action or an empty reason."""

    code = "invalid_decision"


class DisputeAlreadyDecided(Conflict):
    """A disputed commission's money moves once: a second release or refund is refused."""

    code = "dispute_already_decided"


class CaseAlreadyAnswered(Conflict):
    code = "case_already_answered"


class AnswerInvalid(InvalidRequest):
    code = "invalid_answer"


class ExportRangeInvalid(InvalidRequest):
    code = "invalid_date_range"


class VerificationInvalid(InvalidRequest):
    code = "invalid_verification"


class VerificationRateLimited(TooManyRequests):
    code = "verification_rate_limited"
