from django.urls import path, re_path

from . import views

# A job id (a UUID, as the <uuid:> converter matches it) and one of the control actions.
JOB_CONTROL = r"^jobs/(?P<pk>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(?P<action>pause|resume|cancel)/$"

app_name = "training"
urlpatterns = [
    path("", views.studio, name="studio"),
    path("datasets/new/", views.dataset_upload, name="dataset_upload"),
    path("datasets/<uuid:pk>/", views.dataset_detail, name="dataset"),
    path("uploads/<uuid:pk>/", views.upload_detail, name="upload"),
    path("jobs/new/", views.job_create, name="job_create"),
    path("jobs/estimate/", views.estimate, name="estimate"),
    path("jobs/<uuid:pk>/", views.job_detail, name="job"),
    path("jobs/<uuid:pk>/progress/", views.job_progress, name="job_progress"),
    re_path(JOB_CONTROL, views.job_control,
            name="job_control"),
    path("jobs/<uuid:pk>/checkpoints/<int:checkpoint_id>/version/", views.version_from_checkpoint,
         name="version_from_checkpoint"),
    path("versions/<uuid:pk>/", views.version_detail, name="version"),
    path("versions/<uuid:pk>/files/<path:name>", views.version_file, name="version_file"),
    path("versions/<uuid:pk>/download/", views.version_download, name="version_download"),
]
