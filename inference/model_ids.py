"""Readable model ids for the OpenAI-compatible API, as people name models on the Hugging Face Hub:
`<trainer>/<listing-slug>` for the newest version of a model a key is licensed for, and
`<trainer>/<listing-slug>@<version>` to pin one (the version is the first 12 hex digits of its
SHA-256 digest, or more of them, or its full UUID). UUIDs, digests and listing ids keep working.

The names come from training.model_names (the one name of a model on every page and response);
the slug is the listing's title slugified. Two listings of one trainer with the same title are
versions of one model (a new version is published as a new listing); `@` tells them apart.
Resolution only ever looks among the grants of the key presenting the id, so a readable id
reveals nothing of models the caller holds no licence for. The listing is reached through the
model version's reverse relation: inference imports nothing from the marketplace.
"""

from __future__ import annotations

from dataclasses import dataclass

from licensing.selectors import apikey_grants
from training.model_names import model_name


@dataclass(frozen=True)
class NamedVersion:
    version: object  # training.ModelVersion
    base_id: str  # trainer/slug
    pinned_id: str  # trainer/slug@digest12
    owned_by: str


def _named(version) -> NamedVersion | None:
    name = model_name(version)
    if name.readable_id is None:
        return None
    return NamedVersion(version=version, base_id=name.readable_id, pinned_id=name.pinned_id, owned_by=name.trainer)


def licensed_versions(*, api_key, active_only: bool) -> list[NamedVersion]:
    """The key's licensed model versions that have a listing, newest first, each once."""
    grants = apikey_grants(api_key)
    if active_only:
        grants = grants.filter(state="active")
    seen, named = set(), []
    for grant in grants.select_related("model_version__owner", "model_version__listing").order_by(
            "-model_version__created_at"):
        version = grant.model_version
        if version.pk not in seen:
            seen.add(version.pk)
            item = _named(version)
            if item is not None:
                named.append(item)
    return named


def model_id_resolve(*, api_key, model: str) -> str:
    """The model version id a readable `model` names among the key's grants; any other `model`
    (a UUID, a digest, or a readable id that names nothing licensed) comes back unchanged, for
    the generation service to resolve or refuse as model_not_found."""
    model = (model or "").strip()
    if "/" not in model:
        return model
    base, _, pin = model.partition("@")
    candidates = [n for n in licensed_versions(api_key=api_key, active_only=False) if n.base_id == base]
    if pin:
        candidates = [n for n in candidates
                      if (len(pin) >= 7 and n.version.digest.startswith(pin.lower())) or str(n.version.pk) == pin]
    return str(candidates[0].version.pk) if candidates else model
