"""Write-side services of the training app, by subject: `datasets`, `jobs` (every write to a job's
state), `versions` (checkpoints and model versions). Inside the training app, import from those
modules; the names below are for callers in other apps, commands and tests.

The training loop itself is `training.loop` (plain torch, no Django); `training.job_runner` runs a
job on a worker and records its progress through these services.
"""

from .datasets import dataset_create
from .jobs import job_claim, job_control, job_create
from .versions import TRAINING_STATE_FILES, version_from_checkpoint

__all__ = (
    "TRAINING_STATE_FILES",
    "dataset_create",
    "job_claim",
    "job_control",
    "job_create",
    "version_from_checkpoint",
)
