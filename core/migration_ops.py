"""Operations for migrations that move a model to another app while its table stays put."""

from __future__ import annotations

from django.db import migrations


def content_types_moved(*, models: list[str], old_app: str, new_app: str) -> migrations.RunPython:
    """Relabel the moved models' content types, so their admin permissions and history follow
    them. A content type already made under the new label (a half-finished earlier run) wins."""

    def forward(apps, schema_editor, old=old_app, new=new_app):
        _relabel(apps, models, old, new)

    def backward(apps, schema_editor, old=old_app, new=new_app):
        _relabel(apps, models, new, old)

    return migrations.RunPython(forward, backward)


def _relabel(apps, models: list[str], old: str, new: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in models:
        if not content_type.objects.filter(app_label=new, model=model).exists():
            content_type.objects.filter(app_label=old, model=model).update(app_label=new)
