"""Training API (trainers, by browser session or personal access token with the "training" scope). Validation goes through the same forms as the
pages; the services' domain errors reach the client in the project's one error shape through
config.api_errors, so nothing here translates them."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidRequest

from . import selectors
from .config import METHODS, Limits, hyperparameters
from .base_models import TINY, base_model_get
from .forms import BASE_MODEL_CHOICES, DatasetForm, JobForm, job_defaults
from .models import Checkpoint, Dataset, DatasetUpload, ModelVersion
from .services import datasets, jobs, versions
from .views import step_after, version_zip_response


class IsTrainer(permissions.BasePermission):
    message = "This API is for trainers: turn the trainer role on in your account."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_trainer)


def _form_error(form) -> InvalidRequest:
    """The form's first error as the refusal, with every field's errors beside it."""
    field, errors = next(iter(form.errors.items()))
    return InvalidRequest(f"{field}: {errors[0]}" if field != "__all__" else errors[0],
                          param=None if field == "__all__" else field, extra={"fields": form.errors})


class DatasetOutput(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ("id", "name", "sha256", "upload_sha256", "size_bytes", "licence", "rights_holders", "stats", "created_at")


class UploadOutput(serializers.ModelSerializer):
    """An upload being processed: state processing → ready (with its dataset) or refused (with
    the reason, the message and the byte offset it is about)."""

    refusal = serializers.SerializerMethodField()
    dataset = DatasetOutput(allow_null=True)

    class Meta:
        model = DatasetUpload
        fields = ("id", "name", "state", "phase", "progress", "size_bytes", "upload_sha256", "licence",
                  "rights_holders", "stats_base_model", "refusal", "dataset", "created_at", "finished_at")

    def get_refusal(self, upload) -> dict | None:
        if upload.state != DatasetUpload.State.REFUSED:
            return None
        return {"reason": upload.refusal_reason, "message": upload.refusal_message, "offset": upload.refusal_offset}


class VersionOutput(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ("id", "name", "job", "from_step", "digest", "parameter_count", "base_model", "base_licence",
                  "dataset_digest", "dataset_licence", "n_positions", "metrics", "card", "files",
                  "serving_precision", "created_at", "method", "base_digest", "stored_bytes")
        # Set (with its quality check) at /api/v1/training/versions/<id>/serving-precision/.
        read_only_fields = ("serving_precision",)


class HoldsData(permissions.BasePermission):
    """Trainers, and customers with their own data to hand a trainer (a commission's dataset, as the
    commission page takes it): uploads and datasets are only ever their owner's."""

    message = "Uploading data needs the trainer or the customer role on your account."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (user.is_trainer or user.is_customer))


class TrainerApi(APIView):
    permission_classes = [IsTrainer]


class DataApi(APIView):
    permission_classes = [HoldsData]


DatasetUploadInput = inline_serializer("DatasetUpload", fields={
    "name": serializers.CharField(required=False),
    "file": serializers.FileField(help_text="UTF-8 text; documents separated by <|endoftext|>."),
    "licence": serializers.CharField(help_text="SPDX id of the data's licence, or 'custom'."),
    "licence_attested": serializers.BooleanField(),
    "rights_holders": serializers.CharField(required=False, help_text="Who holds the rights in the data: one "
                                            "per line or separated by semicolons."),
    "stats_base_model": serializers.CharField(required=False),
})


def _hyperparameter_serializer_field(kind: type, default, limits: Limits) -> serializers.Field:
    """The schema of one TrainConfig field (the request is validated by JobForm, through TrainConfig)."""
    common = {"required": False, "default": default, "help_text": limits.help, "label": limits.label,
              "allow_null": True}
    if limits.choices:
        return serializers.ChoiceField(choices=limits.choices, **common)
    if kind is str:
        return serializers.CharField(max_length=limits.max_length, allow_blank=True, **common)
    bounds = {"min_value": limits.min, "max_value": limits.max}
    return (serializers.IntegerField if kind is int else serializers.FloatField)(**bounds, **common)


JobCreateInput = inline_serializer("TrainingJobCreate", fields={
    "dataset": serializers.UUIDField(help_text="One of your datasets."),
    "name": serializers.CharField(required=False),
    "base_model": serializers.ChoiceField(choices=[name for name, _ in BASE_MODEL_CHOICES], required=False),
    "reuse": serializers.BooleanField(required=False, default=False),
    **{name: _hyperparameter_serializer_field(kind, default, limits)
       for name, kind, default, limits in hyperparameters()},
})
# Anything else in the body is refused, not ignored: a misspelt hyperparameter would otherwise
# train with its default while the trainer thinks it was set.
JOB_CREATE_KEYS = frozenset(JobCreateInput.fields)


class DatasetListCreateApi(DataApi):
    @extend_schema(operation_id="training_datasets_list", responses=DatasetOutput(many=True),
                   parameters=[OpenApiParameter("sha256", str, description="Only the dataset of this content "
                               "digest (of the file as uploaded, or as stored).")])
    def get(self, request):
        found = selectors.datasets_for(owner=request.user, sha256=request.query_params.get("sha256", ""))
        return Response(DatasetOutput(found, many=True).data)

    @extend_schema(operation_id="training_datasets_create", request={"multipart/form-data": DatasetUploadInput},
                   responses={202: UploadOutput},
                   description="Stages the file and answers at once (202, state processing); a worker validates, "
                               "counts and encodes it. Poll the upload's URL for ready (with the dataset) or refused.")
    def post(self, request):
        form = DatasetForm(request.data, request.FILES)  # reading the body runs the upload cap
        if getattr(request, "upload_too_large", False):
            raise datasets.upload_too_large()
        if not form.is_valid():
            raise _form_error(form)
        data = form.cleaned_data
        upload = datasets.dataset_upload_receive(
            owner=request.user, name=data["name"], upload=data["file"], licence=data["licence"],
            licence_attested=data["licence_attested"], rights_holders=data["rights_holders"],
            stats_base_model=data["stats_base_model"] or "tiny")
        return Response(UploadOutput(upload).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/v1/training/uploads/{upload.pk}/"})


class UploadDetailApi(DataApi):
    @extend_schema(operation_id="training_uploads_retrieve", responses=UploadOutput)
    def get(self, request, pk):
        return Response(UploadOutput(selectors.upload_get(owner=request.user, pk=pk)).data)


class DatasetDetailApi(DataApi):
    @extend_schema(operation_id="training_datasets_retrieve", responses=DatasetOutput)
    def get(self, request, pk):
        return Response(DatasetOutput(selectors.dataset_get(owner=request.user, pk=pk)).data)


class JobListCreateApi(TrainerApi):
    @extend_schema(operation_id="training_jobs_list", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        jobs = selectors.studio_overview(owner=request.user)["jobs"]
        return Response([{"id": str(j.pk), "name": j.name, "state": j.state, "step": j.step,
                          "total_steps": j.total_steps, "percent": j.progress_percent, "dataset": str(j.dataset_id),
                          "base_model": j.base_model, "created_at": j.created_at} for j in jobs])

    @extend_schema(operation_id="training_jobs_create", request=JobCreateInput,
                   description="Unset or null fields take their defaults; unknown fields are refused. With "
                   "`reuse: true`, your unfinished job on the same dataset, base "
                   "model and hyperparameters is resumed (paused) or returned (queued, running) instead, and "
                   "failing that the same job that already succeeded is returned (`outcome` succeeded, its "
                   "versions in `versions`): `outcome` says which, and the status is 200.",
                   responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT})
    def post(self, request):
        if not hasattr(request.data, "keys"):
            raise InvalidRequest("The body must be an object of the job's fields.")
        if unknown := sorted(set(request.data.keys()) - JOB_CREATE_KEYS):
            raise InvalidRequest(f"{unknown[0]}: not a field of a training job.", param=unknown[0])
        form = JobForm(request.data)
        if not form.is_valid():
            raise _form_error(form)
        dataset = selectors.dataset_for_training(user=request.user, pk=form.cleaned_data["dataset"])
        fields = {"owner": request.user, "dataset": dataset, "name": form.cleaned_data["name"],
                  "base_model": form.cleaned_data["base_model"], "hyperparameters": form.hyperparameters()}
        if str(request.data.get("reuse", "")).lower() in ("1", "true", "on"):
            job, outcome = jobs.job_start_or_resume(**fields)
        else:
            job, outcome = jobs.job_create(**fields), "created"
        return Response({**selectors.job_progress(job=job), "outcome": outcome},
                        status=status.HTTP_201_CREATED if outcome == "created" else status.HTTP_200_OK)


class HyperparametersApi(TrainerApi):
    """What a job can set (TrainConfig's fields): the CLI lists them for `imprint train`. With
    `base_model`, the defaults are that base's (a pretrained GPT-2 starts from a lower learning
    rate with a warmup); an unknown base is refused."""

    @extend_schema(operation_id="training_hyperparameters_list", responses=OpenApiTypes.OBJECT,
                   parameters=[OpenApiParameter("base_model", str, description="The defaults of this base "
                                                "(default: tiny)."),
                               OpenApiParameter("method", str, enum=list(METHODS), description="The defaults of "
                                                "this method (default: the base's own).")])
    def get(self, request):
        base_model = request.query_params.get("base_model") or TINY
        base_model_get(base_model)
        method = request.query_params.get("method") or None
        if method is not None and method not in METHODS:
            raise InvalidRequest(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.", param="method")
        defaults = job_defaults(base_model, method)
        return Response([{"name": name, "type": kind.__name__, "default": defaults.get(name, default),
                          "label": limits.label, "help": limits.help, "limits": _limits_out(limits)}
                         for name, kind, default, limits in hyperparameters()])


class BaseModelListApi(TrainerApi):
    """Every base model with whether this server can train on it now (`available`) and why
    (`reason`): the built-in base's preparation state and progress, a GPT-2 family model's local
    copy or cached weights, or the cached answer of the hub probe. Never waits on the network."""

    @extend_schema(operation_id="training_base_models_list", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(selectors.base_models_list())


def _limits_out(limits: Limits) -> dict:
    out = {"min": limits.min, "max": limits.max, "greater_than": limits.above, "choices": list(limits.choices),
           "max_length": limits.max_length, "nullable": limits.optional or None}
    return {key: value for key, value in out.items() if value not in (None, [])}


class JobDetailApi(TrainerApi):
    @extend_schema(operation_id="training_jobs_retrieve", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk):
        job = selectors.job_get(owner=request.user, pk=pk)
        return Response(selectors.job_progress(
            job=job, include_trace=request.user.is_staff,
            metrics_after=step_after(request.query_params, "metrics_after", 0),
            samples_after=step_after(request.query_params, "samples_after", -1)))


class JobControlApi(TrainerApi):
    @extend_schema(operation_id="training_jobs_control", request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk, action):
        job = selectors.job_get(owner=request.user, pk=pk)
        job = jobs.job_control(job=job, action=action)
        return Response(selectors.job_progress(job=job))


class VersionListApi(TrainerApi):
    @extend_schema(operation_id="training_versions_list", responses=VersionOutput(many=True))
    def get(self, request):
        return Response(VersionOutput(ModelVersion.objects.filter(owner=request.user), many=True).data)


class VersionDetailApi(TrainerApi):
    @extend_schema(operation_id="training_versions_retrieve", responses=VersionOutput)
    def get(self, request, pk):
        return Response(VersionOutput(selectors.version_get(owner=request.user, pk=pk)).data)


class VersionDownloadApi(TrainerApi):
    @extend_schema(operation_id="training_versions_download", responses={(200, "application/zip"): OpenApiTypes.BINARY},
                   parameters=[OpenApiParameter("merged", bool, description="an adapter folded into its base: "
                                                "a whole Hugging Face folder")])
    def get(self, request, pk):
        version = selectors.version_get(owner=request.user, pk=pk)
        merged = request.query_params.get("merged", "") in ("1", "true", "yes")
        return version_zip_response(versions.version_archive(version=version, merged=merged), version, merged)


class VersionFromCheckpointApi(TrainerApi):
    @extend_schema(operation_id="training_versions_from_checkpoint", request=OpenApiTypes.OBJECT, responses={201: VersionOutput})
    def post(self, request, pk, checkpoint_id):
        job = selectors.job_get(owner=request.user, pk=pk)
        checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id, job=job)
        version = versions.version_from_checkpoint(job=job, checkpoint=checkpoint, name=request.data.get("name", ""))
        return Response(VersionOutput(version).data, status=status.HTTP_201_CREATED)
