"""Where `imprint login` keeps the site and the token: a JSON file readable by its owner only
(0600) in the user's config folder ($XDG_CONFIG_HOME/imprint, else ~/.config/imprint), or the
file named by IMPRINT_CONFIG. IMPRINT_URL, IMPRINT_TOKEN and IMPRINT_API_KEY override it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def config_path() -> Path:
    explicit = os.environ.get("IMPRINT_CONFIG")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "imprint" / "config.json"


def load() -> dict:
    path = config_path()
    stored = json.loads(path.read_text()) if path.exists() else {}
    overrides = {"url": os.environ.get("IMPRINT_URL"), "token": os.environ.get("IMPRINT_TOKEN"),
                 "api_key": os.environ.get("IMPRINT_API_KEY")}
    return {**stored, **{k: v for k, v in overrides.items() if v}}


def save(values: dict) -> Path:
    """Merge `values` into the stored config; the file is created 0600 and kept so (a token is a
    password)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored.update(values)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(stored, fh, indent=2)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
    return path
