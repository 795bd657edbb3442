"""Training API (session-authenticated trainers). Validation goes through the same forms as the
pages; the services' domain errors reach the client in the project's one error shape through
config.api_errors, so nothing here translates them."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidRequest

from . import selectors
from .forms import DatasetForm, JobForm
from .models import Checkpoint, Dataset, ModelVersion
from .services import datasets, jobs, versions


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
        fields = ("id", "name", "sha256", "size_bytes", "licence", "rights_holders", "stats", "created_at")


class VersionOutput(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ("id", "name", "job", "from_step", "digest", "parameter_count", "base_model", "base_licence",
                  "dataset_digest", "dataset_licence", "n_positions", "metrics", "card", "files", "created_at")


class TrainerApi(APIView):
    permission_classes = [IsTrainer]


DatasetUpload = inline_serializer("DatasetUpload", fields={
    "name": serializers.CharField(required=False),
    "file": serializers.FileField(help_text="UTF-8 text; documents separated by <|endoftext|>."),
    "licence": serializers.CharField(help_text="SPDX id of the data's licence, or 'custom'."),
    "licence_attested": serializers.BooleanField(),
    "rights_holders": serializers.CharField(required=False, help_text="Who holds the rights in the data: one "
                                            "per line or separated by semicolons."),
    "stats_base_model": serializers.CharField(required=False),
})
JOB_FIELDS = ("Fields of the job form: dataset (required), name, base_model, steps, learning_rate, batch_size, "
              "context_length, warmup_steps, sample_every, sample_count, sample_prompt, sample_max_new_tokens, "
              "checkpoint_every, seed, early_stopping_patience, early_stopping_min_delta. Unset fields take defaults.")


class DatasetListCreateApi(TrainerApi):
    @extend_schema(operation_id="training_datasets_list", responses=DatasetOutput(many=True))
    def get(self, request):
        return Response(DatasetOutput(Dataset.objects.filter(owner=request.user), many=True).data)

    @extend_schema(operation_id="training_datasets_create", request={"multipart/form-data": DatasetUpload}, responses={201: DatasetOutput})
    def post(self, request):
        form = DatasetForm(request.data, request.FILES)
        if not form.is_valid():
            raise _form_error(form)
        data = form.cleaned_data
        dataset = datasets.dataset_create(owner=request.user, name=data["name"], upload=data["file"],
                                          licence=data["licence"], licence_attested=data["licence_attested"],
                                          rights_holders=data["rights_holders"],
                                          stats_base_model=data["stats_base_model"] or "tiny")
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(TrainerApi):
    @extend_schema(operation_id="training_datasets_retrieve", responses=DatasetOutput)
    def get(self, request, pk):
        return Response(DatasetOutput(selectors.dataset_get(owner=request.user, pk=pk)).data)


class JobListCreateApi(TrainerApi):
    @extend_schema(operation_id="training_jobs_list", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        jobs = selectors.studio_overview(owner=request.user)["jobs"]
        return Response([{"id": str(j.pk), "name": j.name, "state": j.state, "step": j.step,
                          "total_steps": j.total_steps, "percent": j.progress_percent} for j in jobs])

    @extend_schema(operation_id="training_jobs_create", request=OpenApiTypes.OBJECT, description=JOB_FIELDS, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        form = JobForm(request.data)
        if not form.is_valid():
            raise _form_error(form)
        dataset = selectors.dataset_get(owner=request.user, pk=form.cleaned_data["dataset"])
        job = jobs.job_create(owner=request.user, dataset=dataset, name=form.cleaned_data["name"],
                              base_model=form.cleaned_data["base_model"], hyperparameters=form.hyperparameters())
        return Response(selectors.job_progress(job=job), status=status.HTTP_201_CREATED)


class JobDetailApi(TrainerApi):
    @extend_schema(operation_id="training_jobs_retrieve", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk):
        job = selectors.job_get(owner=request.user, pk=pk)
        return Response(selectors.job_progress(job=job, include_trace=request.user.is_staff))


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


class VersionFromCheckpointApi(TrainerApi):
    @extend_schema(operation_id="training_versions_from_checkpoint", request=OpenApiTypes.OBJECT, responses={201: VersionOutput})
    def post(self, request, pk, checkpoint_id):
        job = selectors.job_get(owner=request.user, pk=pk)
        checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id, job=job)
        version = versions.version_from_checkpoint(job=job, checkpoint=checkpoint, name=request.data.get("name", ""))
        return Response(VersionOutput(version).data, status=status.HTTP_201_CREATED)
