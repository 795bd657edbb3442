"""Files written through the project's storage layer read back byte-identical, on S3 and locally."""

import os

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

PAYLOAD = os.urandom(256 * 1024) + "ünïcödé <|endoftext|>".encode()


def test_it_round_trips_a_file_through_s3_on_moto_server(s3_storage):
    name = default_storage.save("datasets/roundtrip.bin", ContentFile(PAYLOAD))
    assert type(default_storage._wrapped).__name__ == "S3Storage"
    with default_storage.open(name, "rb") as fh:
        assert fh.read() == PAYLOAD
    # The object really is in the bucket, byte for byte, as another S3 client sees it.
    obj = s3_storage["client"].get_object(Bucket=s3_storage["bucket"], Key=name)
    assert obj["Body"].read() == PAYLOAD


def test_it_writes_to_local_media_by_default(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    name = default_storage.save("datasets/roundtrip.bin", ContentFile(PAYLOAD))
    assert (tmp_path / name).read_bytes() == PAYLOAD
    with default_storage.open(name, "rb") as fh:
        assert fh.read() == PAYLOAD


def test_the_embedded_default_uses_local_files_under_var():
    from config import settings as project_settings

    if not project_settings.AWS_STORAGE_BUCKET_NAME:
        backend = project_settings.STORAGES["default"]["BACKEND"]
        assert backend == "django.core.files.storage.FileSystemStorage"
        assert str(project_settings.MEDIA_ROOT).startswith(str(project_settings.VAR_DIR))
