#!/usr/bin/env python3
"""Imprint's two commands. Each sets itself up on a fresh machine that has only Python 3.11.

    python3 dev.py run     # install, migrate, start a Celery worker and the site; prints URL and logins
    python3 dev.py test    # install the test dependencies, check the layers, run the whole test suite

Both create `.venv/` next to this file and pip-install the pinned requirements into it (again only
when a requirements file changed). Environment variables (see README.md) switch engines.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"


def sh(*cmd: str | Path, env: dict | None = None) -> None:
    subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, check=True)


def ensure_venv(requirements: str) -> None:
    """Create .venv and install `requirements` unless the same file set is already installed."""
    files = sorted(ROOT.glob("requirements*.txt"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files) + requirements.encode()).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not PY.exists():
        print("Creating the virtual environment in .venv/ …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"Installing {requirements} (first run takes a few minutes) …", flush=True)
    sh(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements)
    stamp.write_text(digest)


def manage(*args: str) -> None:
    sh(PY, "manage.py", *args)


def run() -> int:
    ensure_venv("requirements.txt")
    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("collectstatic", "--noinput", "-v", "0")
    print("Preparing the demo (the first start trains two small models) …", flush=True)
    logins = subprocess.run([str(PY), "manage.py", "demo"], cwd=ROOT, check=True,
                            stdout=subprocess.PIPE, text=True).stdout
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    # Two worker processes, as production would have: a training worker that runs one job at a time
    # (GPU workers use the same command on their own machines) and a worker for everything else,
    # which also runs Celery beat (periodic sweeps) in the embedded default.
    bin_ = VENV / "bin"
    procs = [
        subprocess.Popen([str(bin_ / "celery"), "-A", "config", "worker", "-Q", "training", "-P", "solo",
                          "-n", "training@%h", "-l", "WARNING"], cwd=ROOT),
        subprocess.Popen([str(bin_ / "celery"), "-A", "config", "worker", "-Q", "default,inference",
                          "-P", "threads", "-c", "4", "-n", "default@%h", "-B", "-l", "WARNING"], cwd=ROOT),
        subprocess.Popen([str(bin_ / "gunicorn"), "config.wsgi", "-b", f"{host}:{port}", "--threads", "8",
                          "--timeout", "120", "--access-logfile", "-"], cwd=ROOT),
    ]
    wait_for_port(host, int(port), procs)
    print(f"\nDemo logins (embedded default, password imprint-demo):\n{logins}", flush=True)
    print(f"Imprint is running at http://{host}:{port}/   (Ctrl+C stops it)\n", flush=True)
    return supervise(procs)


def wait_for_port(host: str, port: int, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    """Return once the web server accepts connections, so the printed URL works when shown."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)


def supervise(procs: list[subprocess.Popen]) -> int:
    """Wait until one process exits or Ctrl+C, then stop them all."""
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    return max((p.returncode or 0) for p in procs)


def test(args: list[str]) -> int:
    ensure_venv("requirements-test.txt")
    # The layer contract first (.importlinter): an upward import fails the build before any test runs.
    layers = subprocess.run([str(VENV / "bin" / "lint-imports"), "--no-cache"], cwd=ROOT)
    if layers.returncode != 0:
        print("lint-imports: an app imports from a layer above it (see docs/architecture.md).", flush=True)
        return layers.returncode
    result = subprocess.run([str(PY), "-m", "pytest", *args], cwd=ROOT)
    return result.returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "test"):
        print(__doc__)
        return 2
    return run() if sys.argv[1] == "run" else test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
