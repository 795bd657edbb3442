from django.contrib import admin

from .models import BuiltinBase, Checkpoint, Dataset, JobMetric, ModelVersion, Sample, TrainingJob


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "licence", "size_bytes", "created_at")
    search_fields = ("name", "sha256", "owner__username")


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "state", "step", "total_steps", "attempts", "heartbeat_at")
    list_filter = ("state", "base_model")
    readonly_fields = ("error_trace",)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "digest", "parameter_count", "created_at")
    search_fields = ("name", "digest")


admin.site.register(Checkpoint)
admin.site.register(JobMetric)
admin.site.register(Sample)


@admin.register(BuiltinBase)
class BuiltinBaseAdmin(admin.ModelAdmin):
    list_display = ("name", "size", "state", "progress", "digest", "finished_at")
    readonly_fields = ("facts", "files", "error")
