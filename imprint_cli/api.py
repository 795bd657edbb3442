"""The Imprint HTTP API as the CLI uses it: JSON in and out, errors in the site's one shape
({"error": {"type", "code", "message", "param"}}) raised as ApiError with the server's message."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

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


class PlainHttpRefused(Exception):
    """A credential would go over plain http:// to another machine, and the user did not accept it."""

    def __init__(self, url: str):
        host = urlsplit(url).hostname or url
        super().__init__(
            f"Refusing to send your token to {host} over plain http://: anyone on the network between "
            f"you and {host} could read it and act as you. Use https://, or pass --insecure-http "
            f"(or set IMPRINT_INSECURE_HTTP=1) to send it anyway.")


def is_plain_http_to_remote(url: str) -> bool:
    """True when `url` is plain http:// to a host other than this machine (loopback: 127.0.0.0/8,
    ::1, localhost), i.e. when what is sent can be read on the network."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost may resolve anywhere
        return True


def check_transport(url: str, *, allow_plain_http: bool) -> None:
    """Raise PlainHttpRefused before a credential would go over plain http to another machine,
    unless the user allowed it (then say so on stderr)."""
    if not is_plain_http_to_remote(url):
        return
    if not allow_plain_http:
        raise PlainHttpRefused(url)
    print(f"warning: sending your token over plain http:// to {urlsplit(url).hostname} (--insecure-http).",
          file=sys.stderr)


class Client:
    def __init__(self, url: str, credential: str | None, timeout: float = 60, *, allow_plain_http: bool = False):
        if credential:
            check_transport(url, allow_plain_http=allow_plain_http)
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

    def download(self, path: str, target: Path, params: dict | None = None) -> int:
        """GET a file to `target`, streamed; returns its size. Raises ApiError as `request` does."""
        try:
            response = self.session.get(self.url + path, params=params or {}, timeout=self.timeout, stream=True)
        except requests.ConnectionError as exc:
            raise ApiError(0, f"Cannot reach {self.url}: is the site running?") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            error = body.get("error") if isinstance(body, dict) else None
            message = (error or {}).get("message") or f"HTTP {response.status_code} from {path}"
            raise ApiError(response.status_code, message, body if isinstance(body, dict) else {})
        size = 0
        with open(target, "wb") as fh:
            for chunk in response.iter_content(1024 * 1024):
                fh.write(chunk)
                size += len(chunk)
        return size

    def post(self, path: str, json: dict | None = None):
        return self.request("POST", path, json=json or {})

    def upload(self, path: str, file: Path, fields: dict, on_progress: Callable[[int, int], None]):
        """POST a multipart form with `file`, streamed from disk (never read whole into memory),
        calling on_progress(bytes sent, total) as it goes."""
        with open(file, "rb") as fh:
            encoder = MultipartEncoder(fields={**fields, "file": (file.name, fh, "text/plain")})
            monitor = MultipartEncoderMonitor(encoder, lambda m: on_progress(m.bytes_read, m.len))
            return self.request("POST", path, data=monitor, headers={"Content-Type": monitor.content_type})
