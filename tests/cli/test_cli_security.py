"""The `imprint` command keeps its credentials to itself: the config file holding a token is never
readable by others, even for a moment; a token never goes over plain http:// to another machine
unless the user says so; and an option given on the command line wins over the environment and
the saved config.

A small HTTP server on 127.0.0.1 stands in for the site (the CLI's side is what is tested here);
pointed to as the HTTP proxy, it also sees any request the CLI makes to a remote http:// URL, so
"nothing was sent" is observed rather than assumed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from imprint_cli import api, cli, config
from tests.support.processes import REPO, free_port

TOKEN = "imp_pat_secret-token-value"
ANSWERS = {
    ("GET", "/api/v1/account/"): {"username": "tess", "token": {"scopes": ["read"]}},
    ("GET", "/api/v1/training/jobs/"): [],
    ("POST", "/api/v1/verifications"): {"verdict": "receipt_valid", "receipt": {}, "watermark": {}},
}
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                   "NO_PROXY", "no_proxy")


class FakeSite:
    """Answers ANSWERS and records every request: (method, URL as requested, headers)."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                site.requests.append((self.command, self.path, dict(self.headers)))
                body = json.dumps(ANSWERS.get((self.command, urlsplit(self.path).path), {})).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(monkeypatch, tmp_path):
    for name in PROXY_VARIABLES + ("IMPRINT_URL", "IMPRINT_API_KEY", "IMPRINT_INSECURE_HTTP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMPRINT_CONFIG", str(tmp_path / "imprint" / "config.json"))
    monkeypatch.setenv("IMPRINT_TOKEN", TOKEN)
    fake = FakeSite()
    yield fake
    fake.close()


@pytest.fixture
def as_proxy(site, monkeypatch):
    """Route the CLI's plain-http requests through the fake site, as a network on the way would see them."""
    monkeypatch.setenv("HTTP_PROXY", site.url)
    return site


# --- the config file -------------------------------------------------------------------------

def test_it_never_writes_the_token_into_an_existing_file_others_can_read(site, tmp_path, monkeypatch):
    path = tmp_path / "imprint" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"url": "https://old.example"}))
    path.chmod(0o644)
    old = os.open(path, os.O_RDONLY)  # the inode others could open while it was 0644
    modes_changed = []
    monkeypatch.setattr(os, "chmod", lambda target, mode, **kw: modes_changed.append(str(target)))
    monkeypatch.setattr(os, "fchmod", lambda fd, mode: modes_changed.append(fd))
    try:
        assert cli.main(["login", site.url]) == 0
        assert TOKEN not in os.pread(old, 1 << 16, 0).decode()
        old_inode = os.fstat(old).st_ino
    finally:
        os.close(old)
    new = path.stat()
    assert new.st_ino != old_inode  # a new file replaced the readable one
    assert json.loads(path.read_text())["token"] == TOKEN
    assert stat.S_IMODE(new.st_mode) == 0o600
    # Created 0600 (a mode is only ever narrowed by chmod afterwards, and nothing was chmodded),
    # so no reader could open the file while the token was in it.
    assert modes_changed == []
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left behind


def test_it_keeps_its_own_config_folder_private(site, tmp_path, monkeypatch):
    monkeypatch.delenv("IMPRINT_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "xdg" / "imprint"
    folder.mkdir(parents=True, mode=0o755)
    assert cli.main(["login", site.url]) == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "config.json").stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_config_whole_and_no_temporary_file(site, tmp_path, monkeypatch):
    path = tmp_path / "imprint" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"url": "https://old.example", "token": "old"}))

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        config.save({"token": TOKEN})
    assert json.loads(path.read_text()) == {"url": "https://old.example", "token": "old"}
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]


# --- plain http ------------------------------------------------------------------------------

@pytest.mark.parametrize("url, exposed", [
    ("http://example.test", True),
    ("http://example.test:8000/", True),
    ("HTTP://Example.TEST/", True),
    ("http://10.0.0.5:8000", True),
    ("http://[2001:db8::1]:8000", True),
    ("http://127.0.0.1:8000", False),
    ("http://127.1.2.3", False),
    ("http://[::1]:8000", False),
    ("http://localhost:8000", False),
    ("http://LOCALHOST.", False),
    ("https://example.test", False),
])
def test_only_plain_http_to_another_machine_counts_as_exposed(url, exposed):
    assert api.is_plain_http_to_remote(url) is exposed


def test_login_to_a_remote_plain_http_site_is_refused_before_anything_is_sent(as_proxy, tmp_path):
    # The real command in its own process; the proxy would see any request it made.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "imprint_cli", "login", "http://example.test"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "plain http://" in done.stderr and "--insecure-http" in done.stderr
    assert "read it" in done.stderr  # names the risk
    assert as_proxy.requests == []
    assert not (tmp_path / "imprint" / "config.json").exists()


def test_commands_with_a_saved_remote_plain_http_site_refuse_to_send_the_token(as_proxy, capsys):
    config.save({"url": "http://example.test", "token": TOKEN})
    assert cli.main(["jobs"]) == 1
    assert "Refusing to send your token to example.test" in capsys.readouterr().err
    assert as_proxy.requests == []


@pytest.mark.parametrize("how", ["flag before", "flag after", "environment"])
def test_the_user_may_accept_plain_http_with_insecure_http(as_proxy, monkeypatch, capsys, how):
    argv = {"flag before": ["--insecure-http", "login", "http://example.test"],
            "flag after": ["login", "http://example.test", "--insecure-http"],
            "environment": ["login", "http://example.test"]}[how]
    if how == "environment":
        monkeypatch.setenv("IMPRINT_INSECURE_HTTP", "1")
    assert cli.main(argv) == 0
    assert "warning: sending your token over plain http://" in capsys.readouterr().err
    [(method, url, headers)] = as_proxy.requests
    assert url == "http://example.test/api/v1/account/"
    assert headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_loopback_plain_http_site_needs_no_flag(site, capsys):
    assert cli.main(["login", site.url]) == 0
    assert cli.main(["jobs"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert [r[1] for r in site.requests] == ["/api/v1/account/", "/api/v1/training/jobs/"]


# --- precedence: command line, then environment, then the saved file -------------------------

def test_verify_url_wins_over_the_saved_site(site, tmp_path):
    config.save({"url": f"http://127.0.0.1:{free_port()}", "token": TOKEN})  # nothing listens there
    text = tmp_path / "out.txt"
    text.write_text("Some generated text.")
    assert cli.main(["verify", str(text), "--url", site.url, "--receipt", "a.b.c"]) == 0
    [(method, path, headers)] = site.requests
    assert (method, path) == ("POST", "/api/v1/verifications")
    assert "Authorization" not in headers  # verifying sends the text, never the token


def test_verify_url_wins_over_imprint_url(site, tmp_path, monkeypatch):
    monkeypatch.setenv("IMPRINT_URL", f"http://127.0.0.1:{free_port()}")
    text = tmp_path / "out.txt"
    text.write_text("Some generated text.")
    assert cli.main(["verify", str(text), "--url", site.url, "--receipt", "a.b.c"]) == 0
    assert len(site.requests) == 1


def test_settings_come_from_the_command_line_then_the_environment_then_the_file(site, monkeypatch):
    config.save({"url": "https://saved.example", "token": "saved-token", "api_key": "imp_saved"})
    monkeypatch.delenv("IMPRINT_TOKEN")
    assert config.load() == {"url": "https://saved.example", "token": "saved-token", "api_key": "imp_saved"}
    monkeypatch.setenv("IMPRINT_URL", "https://env.example")
    monkeypatch.setenv("IMPRINT_API_KEY", "imp_env")
    monkeypatch.setenv("IMPRINT_TOKEN", "env-token")
    assert config.load() == {"url": "https://env.example", "token": "env-token", "api_key": "imp_env"}
    given = cli.command_options(cli.parse_arguments(["generate", "m", "p", "--api-key", "imp_flag"]))
    assert config.load(given)["api_key"] == "imp_flag"
    given = cli.command_options(cli.parse_arguments(["verify", "f", "--url", "https://flag.example"]))
    assert config.load(given)["url"] == "https://flag.example"
