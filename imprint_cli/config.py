"""Where `imprint login` keeps the site and the token: a JSON file readable by its owner only
(0600) in the user's config folder ($XDG_CONFIG_HOME/imprint, else ~/.config/imprint, kept 0700),
or the file named by IMPRINT_CONFIG.

What a command uses comes from, in order of precedence: its command-line option, the environment
(IMPRINT_URL, IMPRINT_TOKEN, IMPRINT_API_KEY, IMPRINT_INSECURE_HTTP), then the saved file."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

ENVIRONMENT = {"url": "IMPRINT_URL", "token": "IMPRINT_TOKEN", "api_key": "IMPRINT_API_KEY"}
TRUE_WORDS = ("1", "true", "yes", "on")


def config_path() -> Path:
    explicit = os.environ.get("IMPRINT_CONFIG")
    if explicit:
        return Path(explicit)
    return _default_dir() / "config.json"


def _default_dir() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "imprint"


def _stored(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def load(options: dict | None = None) -> dict:
    """The settings a command runs with: `options` given on the command line (None or empty when
    not given) win over the environment, which wins over the saved file."""
    environment = {key: os.environ.get(name) for key, name in ENVIRONMENT.items()}
    environment["insecure_http"] = os.environ.get("IMPRINT_INSECURE_HTTP", "").strip().lower() in TRUE_WORDS
    layers = [_stored(config_path()), environment, options or {}]
    return {key: value for layer in layers for key, value in layer.items() if value}


def save(values: dict) -> Path:
    """Merge `values` into the stored config. The new content goes to a new file created 0600 and
    renamed over the old one, so a token is never in a file others can read (an existing file may
    be 0644, and tightening it after writing would leave a window), and a failed write leaves the
    old file whole."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.parent == _default_dir():
        path.parent.chmod(0o700)  # our own folder; one named by IMPRINT_CONFIG is the user's to set
    stored = _stored(path)
    stored.update(values)
    _write_private(path, json.dumps(stored, indent=2))
    return path


def _write_private(path: Path, text: str) -> None:
    # O_EXCL: never write through a file (or a link) someone else placed under the temporary name.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
