"""Seed a fault-test site's database (run with that site's environment): a model built on the spot
(the tiny GPT-2 with room for 500-token streams, long enough to be cut mid-way),
stored where the site serves models from, and `count` licences on it with large quotas. Prints
{"model": version id, "keys": [API keys]} as JSON.

    python -m tests.faults.seed <count>
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def main(count: int) -> dict:
    import django

    django.setup()
    from tests.inference.conftest import licence_factory
    from tests.support.corpus import corpus_documents
    from training.artifacts import folder_upload, manifest_digest
    from training.tiny import build_tiny_model

    folder = build_tiny_model(Path(tempfile.mkdtemp()) / "model", corpus_documents(), n_positions=512)
    manifest = folder_upload(folder, "models/faults/small")
    stored = {"prefix": "models/faults/small", "manifest": manifest, "digest": manifest_digest(manifest)}
    make = licence_factory(stored, n_positions=512)
    licences = [make(quota={"tokens": 50_000_000, "period": "total"}, rate_limit_per_minute=10_000)
                for _ in range(count)]
    return {"model": str(licences[0].version.pk), "keys": [licence.plaintext for licence in licences]}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
