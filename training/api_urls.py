from django.urls import path, re_path

from . import api
from .urls import JOB_CONTROL

urlpatterns = [
    path("datasets/", api.DatasetListCreateApi.as_view(), name="training_api_datasets"),
    path("datasets/<uuid:pk>/", api.DatasetDetailApi.as_view(), name="training_api_dataset"),
    path("uploads/<uuid:pk>/", api.UploadDetailApi.as_view(), name="training_api_upload"),
    path("base-models/", api.BaseModelListApi.as_view(), name="training_api_base_models"),
    path("hyperparameters/", api.HyperparametersApi.as_view(), name="training_api_hyperparameters"),
    path("jobs/", api.JobListCreateApi.as_view(), name="training_api_jobs"),
    path("jobs/<uuid:pk>/", api.JobDetailApi.as_view(), name="training_api_job"),
    re_path(JOB_CONTROL, api.JobControlApi.as_view(),
            name="training_api_job_control"),
    path("jobs/<uuid:pk>/checkpoints/<int:checkpoint_id>/version/", api.VersionFromCheckpointApi.as_view(),
         name="training_api_version_from_checkpoint"),
    path("versions/", api.VersionListApi.as_view(), name="training_api_versions"),
    path("versions/<uuid:pk>/", api.VersionDetailApi.as_view(), name="training_api_version"),
    path("versions/<uuid:pk>/download/", api.VersionDownloadApi.as_view(), name="training_api_version_download"),
]
