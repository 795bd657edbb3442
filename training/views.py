"""Trainer pages: thin views that validate with forms, call one service, and render."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import role_required
from core.errors import DomainError

from . import selectors
from .base_models import BASE_MODELS
from .errors import UploadsInFlight
from .forms import DatasetForm, JobForm, all_job_defaults
from .models import Checkpoint
from .services import access, datasets, jobs, versions


@role_required("trainer")
def studio(request):
    """The trainer's home: their datasets, jobs and model versions."""
    return render(request, "training/studio.html", selectors.studio_overview(owner=request.user))


@role_required("trainer")
def dataset_upload(request):
    form = DatasetForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and getattr(request, "upload_too_large", False):
        return render(request, "training/dataset_upload.html",
                      {"form": DatasetForm(), "refused": datasets.upload_too_large().message}, status=413)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            upload = datasets.dataset_upload_receive(
                owner=request.user, name=data["name"], upload=data["file"], licence=data["licence"],
                licence_attested=data["licence_attested"], rights_holders=data["rights_holders"],
                stats_base_model=data["stats_base_model"] or "tiny")
        except UploadsInFlight as exc:
            response = render(request, "training/dataset_upload.html", {"form": form, "refused": exc.message},
                              status=exc.status_code)
            response["Retry-After"] = exc.headers["Retry-After"]
            return response
        except DomainError as exc:
            form.add_error(exc.param, exc.message)
        else:
            return redirect("training:upload", pk=upload.pk)
    return render(request, "training/dataset_upload.html", {"form": form})


@role_required("trainer")
def upload_detail(request, pk):
    """An upload being processed: its progress (the page polls the API), then its dataset or why
    it was refused."""
    upload = selectors.upload_get(owner=request.user, pk=pk)
    if upload.dataset_id:
        messages.success(request, "Dataset ready. Check its statistics, then start a training job.")
        return redirect("training:dataset", pk=upload.dataset_id)
    return render(request, "training/upload_detail.html", {"upload": upload})


@role_required("trainer")
def dataset_detail(request, pk):
    dataset = selectors.dataset_get(owner=request.user, pk=pk)
    form = JobForm(initial={"dataset": dataset.pk})
    return render(request, "training/dataset_detail.html",
                  {"dataset": dataset, "form": form, "base_defaults": all_job_defaults()})


@role_required("trainer")
def job_create(request):
    form = JobForm(request.POST)
    dataset = None
    if form.is_valid():
        dataset = selectors.dataset_for_training(user=request.user, pk=form.cleaned_data["dataset"])
        try:
            job = jobs.job_create(owner=request.user, dataset=dataset, name=form.cleaned_data["name"],
                                  base_model=form.cleaned_data["base_model"],
                                  hyperparameters=form.hyperparameters())
        except DomainError as exc:
            form.add_error(exc.param, exc.message)
        else:
            return redirect("training:job", pk=job.pk)
    elif form.cleaned_data.get("dataset"):
        dataset = selectors.dataset_for_training(user=request.user, pk=form.cleaned_data["dataset"])
    if dataset is None:
        raise Http404("Choose one of your datasets.")
    return render(request, "training/dataset_detail.html",
                  {"dataset": dataset, "form": form, "base_defaults": all_job_defaults()}, status=400)


@role_required("trainer")
def job_detail(request, pk):
    job = selectors.job_get(owner=request.user, pk=pk)
    return render(request, "training/job_detail.html", {"job": job, "hyperparameters": selectors.job_settings(job=job),
                                                        "warnings": selectors.job_warning_list(job=job)})


@role_required("trainer")
def job_progress(request, pk):
    job = selectors.job_get(owner=request.user, pk=pk)
    return JsonResponse(selectors.job_progress(
        job=job, include_trace=request.user.is_staff, metrics_after=step_after(request.GET, "metrics_after", 0),
        samples_after=step_after(request.GET, "samples_after", -1)))


def step_after(params, name: str, default: int) -> int:
    """A polling client's "only what is newer than this step" parameter (page and API alike)."""
    value = params.get(name, "")
    return int(value) if value.isdigit() else default


@require_POST
@role_required("trainer")
def job_control(request, pk, action):
    job = selectors.job_get(owner=request.user, pk=pk)
    try:
        jobs.job_control(job=job, action=action)
        messages.success(request, {"pause": "Pausing at the next step.", "cancel": "Cancelled.",
                                   "resume": "Resumed from the latest checkpoint."}[action])
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("training:job", pk=job.pk)


@require_POST
@role_required("trainer")
def version_from_checkpoint(request, pk, checkpoint_id):
    job = selectors.job_get(owner=request.user, pk=pk)
    checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id, job=job)
    try:
        version = versions.version_from_checkpoint(job=job, checkpoint=checkpoint)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("training:job", pk=job.pk)
    messages.success(request, f"Model version created from step {checkpoint.step}.")
    return redirect("training:version", pk=version.pk)


@role_required("trainer")
def version_detail(request, pk):
    version = selectors.version_get(owner=request.user, pk=pk)
    return render(request, "training/version_detail.html",
                  {"version": version, "base": BASE_MODELS.get(version.base_model),
                   "held": access.version_held_exclusively(version)})


@role_required("trainer")
def version_file(request, pk, name):
    """The trainer's own model files (customers never get weights: they get generation)."""
    version = selectors.version_get(owner=request.user, pk=pk)
    if access.version_held_exclusively(version):
        raise PermissionDenied("This version was trained on data lent to you exclusively: its files stay here.")
    if name not in {f["name"] for f in version.files}:
        raise Http404("No such file in this version.")
    from django.core.files.storage import default_storage

    return FileResponse(default_storage.open(f"{version.storage_prefix}/{name}", "rb"), as_attachment=True,
                        filename=name)


@role_required("trainer")
def version_download(request, pk):
    """The owner's version as a zip (`?merged=1`: an adapter folded into its base)."""
    version = selectors.version_get(owner=request.user, pk=pk)
    if access.version_held_exclusively(version):
        raise PermissionDenied("This version was trained on data lent to you exclusively: its files stay here.")
    merged = request.GET.get("merged", "") in ("1", "true", "yes")
    return version_zip_response(versions.version_archive(version=version, merged=merged), version, merged)


def version_zip_response(archive, version, merged: bool) -> FileResponse:
    """The zip as an attachment; the temporary file goes when the response is closed."""
    handle = open(archive, "rb")  # noqa: SIM115 - FileResponse closes it
    archive.unlink()  # the open handle keeps the data readable (POSIX)
    suffix = "merged" if merged else ("adapter" if version.is_adapter else "model")
    return FileResponse(handle, as_attachment=True, filename=f"{version.digest[:12]}-{suffix}.zip",
                        content_type="application/zip")



@role_required("trainer")
def estimate(request):
    form = JobForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors}, status=400)
    base_model = form.cleaned_data["base_model"]
    estimate = jobs.job_estimate_for(base_model=base_model, config=form.config)
    try:
        jobs.job_memory_check(base=BASE_MODELS[base_model], config=form.config)
    except DomainError as exc:
        estimate["refusal"] = {"code": exc.code, "message": exc.message, "param": exc.param}
    return JsonResponse(estimate)
