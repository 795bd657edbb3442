"""Serve selected files of installed packages as static files, without copying them into the repo.

Third-party assets arrive through pip (plotly's wheel ships plotly.min.js); this finder exposes just
the named files under `vendor/`, so collectstatic and whitenoise serve them like our own.
"""

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

# static path -> (package, path inside the package)
PACKAGE_FILES = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    return Path(spec.origin).parent


class PackageFileFinder(BaseFinder):
    def check(self, **kwargs):
        return []

    def _source(self, path: str) -> Path | None:
        if path not in PACKAGE_FILES:
            return None
        package, inner = PACKAGE_FILES[path]
        return _package_dir(package) / inner

    def find(self, path, find_all=False, **kwargs):
        source = self._source(path)
        if source is None or not source.exists():
            return [] if find_all or kwargs.get("all") else None
        return [str(source)] if find_all or kwargs.get("all") else str(source)

    def list(self, ignore_patterns):
        """(name, storage) pairs for collectstatic; `storage.prefix` puts them under vendor/."""
        for path in PACKAGE_FILES:
            source = self._source(path)
            storage = FileSystemStorage(location=str(source.parent))
            storage.prefix = str(Path(path).parent)
            yield source.name, storage
