"""Which base models this server can train on now, and why not: read from the database (the
built-in base's row), the disk (a configured local copy, the Hugging Face cache) and the cached
answer of the hub probe task. Never the network: a request must not wait on the hub."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.cache import cache

from .base_models import BASE_MODELS, BUILTIN, TINY, base_model_get
from .models import BuiltinBase

HUB_PROBE_CACHE_KEY = "training:hub-probe"


_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


def _folder_has_model(folder: Path) -> str | None:
    """None when `folder` holds a config, weights and a tokenizer; else what is missing."""
    if not folder.is_dir():
        return "the folder does not exist"
    missing = [what for what, names in (("config", ("config.json",)), ("weights", _WEIGHT_FILES),
                                        ("tokenizer", _TOKENIZER_FILES))
               if not any((folder / name).is_file() for name in names)]
    return f"it has no {' and no '.join(missing)}" if missing else None


def _hub_cache_has(name: str) -> bool:
    """Whether the local Hugging Face cache holds the model's config, weights and tokenizer
    (read from disk only; nothing is fetched)."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id=name, filename=filename), str)

    return cached("config.json") and any(map(cached, _WEIGHT_FILES)) and any(map(cached, _TOKENIZER_FILES))


def hub_probe_result() -> dict | None:
    """The last answer of the hub probe task (training.services.bases.hub_probe), or None."""
    return cache.get(HUB_PROBE_CACHE_KEY)


def _builtin_availability() -> tuple[bool, str, dict]:
    row = BuiltinBase.objects.filter(name=BUILTIN).first()
    state = row.state if row else BuiltinBase.State.MISSING
    extra = {"state": state, "progress": round(row.progress) if row else 0}
    if state == BuiltinBase.State.READY:
        return True, f"ready (prepared here, digest {row.digest[:12]})", extra | {"digest": row.digest}
    if state == BuiltinBase.State.PREPARING:
        return False, f"preparing, {row.progress:.0f} % ({row.phase})", extra
    if state == BuiltinBase.State.FAILED:
        return False, f"failed: {row.error[:200]} (run manage.py base_prepare)", extra
    return False, "not prepared yet (run manage.py base_prepare)", extra


def _gpt2_availability(base) -> tuple[bool, str]:
    configured = dict(settings.TRAINING_BASE_MODEL_PATHS).get(base.name)
    if configured:
        problem = _folder_has_model(Path(configured))
        if problem is None:
            return True, f"local copy in {configured}"
        return False, f"TRAINING_BASE_MODEL_PATHS names {configured}, but {problem}"
    if _hub_cache_has(base.name):
        return True, "in the local Hugging Face cache"
    probe = hub_probe_result()
    if probe and probe["reachable"]:
        return True, f"downloads from the model hub on first use (hub reachable, checked {probe['checked_at'][:16]})"
    why = f"hub not reachable ({probe['detail']})" if probe else "the hub has not been checked yet"
    return False, f"no local copy (TRAINING_BASE_MODEL_PATHS) or cached weights, and {why}"


def base_availability(name: str) -> dict:
    """Whether this server can train on the base model `name` now: {available, reason, …}.
    Reads only the database, the disk and the cached hub probe: never the network."""
    base = base_model_get(name)
    extra: dict = {}
    if base.name == TINY:
        available, reason = True, "built in: trains from scratch on your data"
    elif base.builtin:
        available, reason, extra = _builtin_availability()
    else:
        available, reason = _gpt2_availability(base)
    return {"available": available, "reason": reason, **extra}


def base_models_list() -> list[dict]:
    """Every base model with what it is and whether it can be trained on here."""
    return [{"name": base.name, "label": base.label, "parameters": base.parameters,
             "n_positions": base.n_positions, "licence": base.licence, "builtin": base.builtin,
             "from_scratch": base.from_scratch, **base_availability(base.name)}
            for base in BASE_MODELS.values()]
