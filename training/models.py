"""Training domain: datasets, jobs and their history, and the model versions they produce."""

import uuid

from django.conf import settings
from django.db import models

from .config import TrainConfig


class Dataset(models.Model):
    """An uploaded UTF-8 text corpus, documents separated by `<|endoftext|>`.

    The owner declares the licence of the data and attests that they may use it; the licence
    inheritance check of offers reads both.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    file = models.FileField(upload_to="datasets/", max_length=300)
    sha256 = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the stored (normalised) text.")
    upload_sha256 = models.CharField(max_length=64, db_index=True, blank=True,
                                     help_text="SHA-256 of the file as uploaded (before line endings were normalised).")
    size_bytes = models.BigIntegerField()
    licence = models.CharField(max_length=64, help_text="SPDX id (or 'custom') of the data's licence.")
    licence_attested = models.BooleanField(default=False)
    # As the trainer declared them; they travel in the rights chain of every licence sold on a model
    # trained on this data (and so in every output's licence stamp and receipt).
    rights_holders = models.JSONField(default=list, blank=True,
                                      help_text="Who holds the rights in the data (names, as declared).")
    stats = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class DatasetUpload(models.Model):
    """One upload on its way to becoming a Dataset: received and staged in storage by the web
    request, then validated, counted and encoded by a task on the default queue.

    Only a `ready` upload has a Dataset. A refused one keeps this record (the reason, the message
    and the byte offset, for the trainer to read) and nothing else: the staged file is deleted
    and no Dataset row or stored text or encoding is left behind."""

    class State(models.TextChoices):
        PROCESSING = "processing"
        READY = "ready"
        REFUSED = "refused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dataset_uploads")
    name = models.CharField(max_length=200)
    licence = models.CharField(max_length=64)
    stats_base_model = models.CharField(max_length=64, default="tiny")
    rights_holders = models.JSONField(default=list, blank=True,
                                      help_text="Who holds the rights in the data, as declared; the dataset takes them.")
    staged_name = models.CharField(max_length=300, blank=True, help_text="The received file, until processed.")
    size_bytes = models.BigIntegerField()
    upload_sha256 = models.CharField(max_length=64, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROCESSING, db_index=True)
    phase = models.CharField(max_length=32, blank=True, help_text="What the task is doing now.")
    progress = models.FloatField(default=0.0, help_text="Percent done.")
    refusal_reason = models.CharField(max_length=32, blank=True)
    refusal_message = models.TextField(blank=True)
    refusal_offset = models.BigIntegerField(null=True, blank=True, help_text="Byte of the upload it is about.")
    dataset = models.OneToOneField(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="upload")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class EncodedDataset(models.Model):
    """Token ids of a dataset for one tokenizer, stored once and addressed by content."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="encodings")
    tokenizer_key = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the stored token ids.")
    file = models.FileField(upload_to="encoded/", max_length=300)
    dtype = models.CharField(max_length=8, default="<i4", help_text="numpy dtype of the stored ids.")
    tokens = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "tokenizer_key"], name="uniq_encoding_per_tokenizer")
        ]


class TrainingJob(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        CANCELLED = "cancelled"
        FAILED = "failed"
        SUCCEEDED = "succeeded"

    class Request(models.TextChoices):
        NONE = ""
        PAUSE = "pause"
        CANCEL = "cancel"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_jobs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200)
    base_model = models.CharField(max_length=300, help_text="'tiny', a gpt2 family name, or a local path.")
    hyperparameters = models.JSONField(default=dict)  # TrainConfig.to_dict(); read it as `config`
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    control_request = models.CharField(max_length=8, choices=Request.choices, default="", blank=True)
    # Lease: a worker owns a running job while its heartbeat is younger than the lease.
    worker_id = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField()
    # Every step any attempt computed, recomputed ones included (progress rows are rewound on a
    # resume, this never is): what the trainer's total step limit counts, whatever the job's state.
    steps_computed = models.PositiveIntegerField(default=0)
    resumed_from_step = models.PositiveIntegerField(null=True, blank=True)
    compute_seconds = models.FloatField(default=0.0)
    device = models.CharField(max_length=32, blank=True)
    estimate = models.JSONField(default=dict)
    # How the dataset was split for this job (textdata.HeldOutSplit.summary): documents, tokens and
    # windows on each side; recorded by the worker when it prepares the data.
    data_split = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True)
    error_trace = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def config(self) -> TrainConfig:
        """The stored hyperparameters as a TrainConfig (rows stored with fewer keys take the defaults).
        Raises HyperparameterError when the row is out of the limits."""
        return TrainConfig.from_dict(self.hyperparameters)

    @property
    def progress_percent(self) -> float:
        return round(100.0 * self.step / self.total_steps, 1) if self.total_steps else 0.0


class Checkpoint(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    storage_prefix = models.CharField(max_length=300)
    kept = models.BooleanField(default=False, help_text="Promoted to a version: never pruned.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="uniq_checkpoint_step")]


class JobMetric(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField(default=1, help_text="Which run of the job computed this step.")
    train_loss = models.FloatField(null=True)
    learning_rate = models.FloatField(null=True)
    tokens_per_second = models.FloatField(null=True)
    val_loss = models.FloatField(null=True)
    perplexity = models.FloatField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="uniq_metric_step")]


class Sample(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    index = models.PositiveSmallIntegerField(default=0)
    text = models.TextField()
    longest_copied_span = models.PositiveIntegerField(null=True)
    ngram_overlap = models.FloatField(null=True, help_text="Share of the sample's 8-grams found in the data.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "step", "index"], name="uniq_sample")]


class ModelVersion(models.Model):
    """A trained model: a Hugging Face folder in storage, identified by its SHA-256 digest.

    Each owner has their own version of a digest (two trainers' runs may produce the same
    weights); the stored folder, addressed by the digest, is shared, as its content is the same."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="model_versions")
    job = models.ForeignKey(TrainingJob, on_delete=models.PROTECT, related_name="versions")
    name = models.CharField(max_length=200)
    from_step = models.PositiveIntegerField()
    storage_prefix = models.CharField(max_length=300)
    digest = models.CharField(max_length=64, db_index=True)
    parameter_count = models.BigIntegerField()
    base_model = models.CharField(max_length=300)
    base_licence = models.CharField(max_length=64, default="mit")
    dataset_digest = models.CharField(max_length=64)
    dataset_licence = models.CharField(max_length=64)
    n_positions = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict)
    card = models.TextField()
    files = models.JSONField(default=list, help_text="[{name, size, sha256}] of the stored folder.")
    # "full": a whole Hugging Face folder. "lora": a peft adapter folder that needs its base, the folder
    # stored under bases/<base_digest>/ (the same files whatever version uses it).
    method = models.CharField(max_length=8, default="full")
    base_digest = models.CharField(max_length=64, blank=True, default="",
                                   help_text="SHA-256 digest of the base folder an adapter applies to.")
    # The trainer's choice among inference's serving precisions (validated there, where the names
    # and the quality checks live); blank: the deployment's INFERENCE_PRECISION.
    serving_precision = models.CharField(max_length=8, blank=True, default="",
                                         help_text="fp32, int8 or bf16; blank: the deployment's default.")
    # Warnings the version carries from its run ([{code, message, figures}], job_warnings): a
    # "memorisation" one must be acknowledged before the version is published.
    warnings = models.JSONField(default=list, blank=True)
    # Why these weights: {"rule", "step", "of_steps", "stopped_at", "val_loss", "text"}, e.g. the text
    # "step 250 of 400: lowest validation loss 3.21" for a run's version (the best evaluation).
    selection = models.JSONField(default=dict, blank=True)
    memorisation_acknowledged_at = models.DateTimeField(null=True, blank=True)
    memorisation_acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                                     on_delete=models.SET_NULL, related_name="+")
    # The watermark new grants on this version get, chosen by inference when it measured the
    # candidates on the version's own samples (validated there); blank: the deployment's setting.
    watermark_scheme = models.CharField(max_length=32, blank=True, default="")
    watermark_params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "digest"], name="uniq_version_digest_per_owner")]

    def __str__(self) -> str:
        return f"{self.name} ({self.digest[:12]})"

    @property
    def is_adapter(self) -> bool:
        return self.method == "lora"

    @property
    def lora_settings(self) -> dict:
        """{"r", "alpha"} an adapter was trained with (its job's settings); empty for a full fine-tune."""
        if not self.is_adapter:
            return {}
        hyperparameters = self.job.hyperparameters or {}
        return {"r": hyperparameters.get("lora_r"), "alpha": hyperparameters.get("lora_alpha")}

    @property
    def base_prefix(self) -> str:
        return f"bases/{self.base_digest}" if self.base_digest else ""

    @property
    def stored_bytes(self) -> int:
        """Size of the stored folder (for an adapter: the adapter and tokenizer, never the base)."""
        return sum(f.get("size", 0) for f in self.files or [])


class DatasetAccess(models.Model):
    """Someone else's dataset lent to a trainer for their training jobs (a commission: the customer's
    data, the chosen trainer). The trainer's jobs may read it and the trainer sees its statistics and
    their jobs' metrics and samples, never the file. While `exclusive`, no version trained on it may
    be downloaded by the trainer (the app above also keeps such versions off sale). `active` ends
    when the work does: no new jobs on it after that."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="accesses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dataset_accesses")
    purpose = models.CharField(max_length=100, help_text="Why it was lent, e.g. commission:<id>.")
    active = models.BooleanField(default=True)
    exclusive = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "user"], name="uniq_dataset_access")]

    def __str__(self) -> str:
        return f"{self.dataset_id} lent to {self.user_id} ({self.purpose})"


class BuiltinBase(models.Model):
    """The built-in pretrained base of this installation (training.builtin_base): whether it is
    prepared, and where. One row per name. Preparing it is claimed by a conditional update with a
    lease that the preparing worker renews as it reports progress, so it never runs twice at once
    and a preparation whose worker died is taken over once its lease has expired."""

    class State(models.TextChoices):
        MISSING = "missing"
        PREPARING = "preparing"
        READY = "ready"
        FAILED = "failed"

    name = models.CharField(max_length=64, unique=True)
    size = models.CharField(max_length=16, help_text="The size preset it was (or is being) prepared at.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.MISSING)
    progress = models.FloatField(default=0.0, help_text="Percent done while preparing.")
    phase = models.CharField(max_length=64, blank=True)
    digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the stored folder.")
    storage_prefix = models.CharField(max_length=300, blank=True)
    files = models.JSONField(default=list, help_text="[{name, size, sha256}] of the stored folder.")
    facts = models.JSONField(default=dict, help_text="Corpus, sizes, evaluation and timings.")
    error = models.TextField(blank=True)
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"
