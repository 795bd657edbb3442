"""Real server processes for tests, started on 127.0.0.1 on free ports and stopped by PID.

Each process runs in its own session (process group) so that stopping it also stops its children
(a Celery worker's pool, a server's reloader) and nothing outlives the test run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOG_DIR = REPO / "var" / "test" / "logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class ServerProcess:
    """A started process with its log file. `stop()` kills its whole process group."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    port: int | None = None
    env: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole process group (SIGKILL: no clean-up, as in a crash)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 10) -> None:
        if not self.alive():
            return
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.proc.wait(timeout=5)


def start_process(name: str, cmd: list[str], *, env: dict | None = None, port: int | None = None,
                  ready_timeout: float = 30, cwd: Path = REPO) -> ServerProcess:
    """Start `cmd`; when `port` is given, wait until it accepts connections (or fail with the log)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}-{int(time.time() * 1000)}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = ServerProcess(name=name, proc=proc, log_path=log_path, port=port, env=env or {})
    if port is not None:
        deadline = time.monotonic() + ready_timeout
        while not port_open(port):
            if not server.alive() or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{name} did not start on port {port}:\n{server.log()[-3000:]}")
            time.sleep(0.1)
    return server


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]
