"""Refusals of the training app, on core's one base (status, code, param), mapped to the API error
shape once in config.api_errors. Pages show `message`; `param` names the form field it is about."""

from core.errors import Conflict, Forbidden, InvalidRequest, TooManyRequests


class TrainingError(InvalidRequest):
    """400: a training request the trainer can correct (unknown base model, context too long)."""

    code = "training_error"


class DatasetRefused(TrainingError):
    """400: an upload that cannot be a dataset; param "file", extra {"reason": a stable reason such
    as "not_utf8" or "too_large"}."""


class DatasetTooLarge(DatasetRefused):
    """413: a request body over DATASET_MAX_BYTES, refused before it was read."""

    status_code = 413


class TrainingLimitExceeded(InvalidRequest):
    """400 (code "invalid_request"): over the trainer's concurrent-job or total-step limit."""


class UploadsInFlight(TooManyRequests):
    """429: the trainer already has DATASET_UPLOADS_IN_FLIGHT_MAX uploads processing; retry-after
    says when to try again."""

    code = "uploads_in_flight"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class LeaseLost(Conflict):
    """Another worker took the job over (our heartbeat came too late): stop without writing more."""

    code = "lease_lost"


class VersionHeld(Forbidden):
    """403: the version's files stay on the platform (trained on data lent to its trainer exclusively)."""

    code = "version_held"


class BatchTooLarge(TrainingError):
    """400: one training pass of the job's micro-batch would not fit a training device's memory
    (TRAINING_DEVICE_MEMORY_GIB); extra says the estimate and the largest micro-batch that fits."""

    code = "batch_exceeds_device_memory"
