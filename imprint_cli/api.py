"""The Imprint HTTP API as the CLI uses it: JSON in and out, errors in the site's one shape
({"error": {"type", "code", "message", "param"}}) raised as ApiError with the server's message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from . import __version__


class ApiError(Exception):
    def __init__(self, status: int, message: str, body: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.body = status, message, body or {}

    @property
    def code(self) -> str:
        return (self.body.get("error") or {}).get("code", "")


class Client:
    def __init__(self, url: str, credential: str | None, timeout: float = 60):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"imprint-cli/{__version__}"
        if credential:
            self.session.headers["Authorization"] = f"Bearer {credential}"
        self.timeout = timeout

    def request(self, method: str, path: str, **kwargs) -> dict | list:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as exc:
            raise ApiError(0, f"Cannot reach {self.url}: is the site running?") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            message = (error or {}).get("message") or f"HTTP {response.status_code} from {path}"
            raise ApiError(response.status_code, message, body if isinstance(body, dict) else {})
        return body

    def get(self, path: str, **params):
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: dict | None = None):
        return self.request("POST", path, json=json or {})

    def upload(self, path: str, file: Path, fields: dict, on_progress: Callable[[int, int], None]):
        """POST a multipart form with `file`, streamed from disk (never read whole into memory),
        calling on_progress(bytes sent, total) as it goes."""
        with open(file, "rb") as fh:
            encoder = MultipartEncoder(fields={**fields, "file": (file.name, fh, "text/plain")})
            monitor = MultipartEncoderMonitor(encoder, lambda m: on_progress(m.bytes_read, m.len))
            return self.request("POST", path, data=monitor, headers={"Content-Type": monitor.content_type})
