#!/usr/bin/env python3
"""Imprint's two commands. Each sets itself up on a fresh machine that has only Python 3.11.

    python3 dev.py run     # install, migrate, start the Celery workers and the site; ends with URL, logins, key
    python3 dev.py test    # install the test dependencies, check the layers, run the whole test suite

Both create `.venv/` next to this file and pip-install the pinned requirements into it (again only
when a requirements file changed). Environment variables (see README.md) switch engines;
IMPRINT_DEMO=0 makes `run` skip preparing the demo.

`run` stops every process it started, and their children, on Ctrl+C (SIGINT), SIGTERM and SIGHUP alike.
A process that dies on its own (a worker that lost its broker for good, an out-of-memory kill) is
started again after a back-off (1, 2, 4 … 30 s), named in the output; the others keep running.
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
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"


# Ctrl+C, `kill` and a closed terminal all mean "stop everything".
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_SECONDS = 15


class StopRequested(Exception):
    """One of STOP_SIGNALS arrived."""


_stop_deferred = False
_stop_pending: list[int] = []
_stop_raised = False  # later signals (a second Ctrl+C) must not cut the stop short


def _raise_stop(signum, frame) -> None:
    global _stop_raised
    if _stop_raised:
        return
    if _stop_deferred:
        _stop_pending.append(signum)
        return
    _stop_raised = True
    raise StopRequested(signal.Signals(signum).name)


@contextmanager
def stop_deferred():
    """A stop signal arriving inside the block is raised at its end, so that a process started in
    it is recorded before the stop. (Blocking the signals instead would leave them blocked in the
    started processes, which inherit the signal mask, and they would ignore SIGTERM.)"""
    global _stop_deferred, _stop_raised
    _stop_deferred = True
    try:
        yield
    finally:
        _stop_deferred = False
    if _stop_pending and not _stop_raised:
        _stop_raised = True
        raise StopRequested(signal.Signals(_stop_pending[0]).name)


def sh(*cmd: str | Path, env: dict | None = None) -> None:
    returncode = run_to_end([str(c) for c in cmd], env=env)
    if returncode != 0:
        raise subprocess.CalledProcessError(returncode, [str(c) for c in cmd])


def run_to_end(cmd: list[str], **popen_kwargs) -> int:
    """Run a set-up step in its own process group and wait for it; if this process is stopped
    meanwhile (a stop signal, Ctrl+C), the step and its children are stopped too."""
    popen = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, **popen_kwargs)
    try:
        return popen.wait()
    except BaseException:
        stop_groups([popen])
        raise


def ensure_venv(requirements: str) -> None:
    """Create .venv and install `requirements` and the `imprint` command (pyproject.toml, editable)
    unless the same file set is already installed."""
    if any(installed(name) for name in INSTALLS_ALSO[requirements]):
        return
    if not PY.exists():
        print("Creating the virtual environment in .venv/ …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"Installing {requirements} (first run takes a few minutes) …", flush=True)
    sh(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements)
    # The CLI's dependencies are pinned in requirements.txt; this adds the console script .venv/bin/imprint.
    sh(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "-e", ".")
    (VENV / f".installed-{requirements}").write_text(_digest(requirements))


# requirements-test.txt includes requirements.txt, so an environment set up for the tests can also run the site.
INSTALLS_ALSO = {"requirements.txt": ("requirements.txt", "requirements-test.txt"),
                 "requirements-test.txt": ("requirements-test.txt",)}


def _digest(requirements: str) -> str:
    files = sorted(ROOT.glob("requirements*.txt")) + [ROOT / "pyproject.toml"]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files) + requirements.encode()).hexdigest()


def installed(requirements: str) -> bool:
    """Whether .venv holds `requirements` as the files now pin them."""
    stamp = VENV / f".installed-{requirements}"
    return stamp.exists() and stamp.read_text() == _digest(requirements)


def manage(*args: str) -> None:
    sh(PY, "manage.py", *args)


def var_dir() -> Path:
    return Path(os.environ.get("IMPRINT_VAR_DIR") or ROOT / "var")


def run() -> int:
    return until_stopped(start_and_supervise)


def until_stopped(start: Callable[[list[Process]], int]) -> int:
    """Call start(procs), which starts processes into `procs` and supervises them. Every process
    started (and its children) is stopped before this returns, whether one died or a stop signal
    arrived at any point (during set-up too)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    procs: list[Process] = []
    try:
        return start(procs)
    except StopRequested:
        return stop_all(procs, because=None)


def start_and_supervise(procs: list[Process]) -> int:
    ensure_venv("requirements.txt")
    logs = var_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("collectstatic", "--noinput", "-v", "0")
    demo = prepare_demo(logs / "demo.log")
    if demo != 0:
        return demo
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    # Links made outside a request (e-mails and cards from the workers) point where this site runs.
    os.environ.setdefault("SITE_URL", f"http://{browsable(host)}:{port}")
    start_processes(host, port, logs, procs)
    print(f"Starting the web server and two Celery workers (logs in {rel(logs)}/) …", flush=True)
    if not wait_until_up(host, int(port), procs):
        return stop_all(procs, because=dead_process_message(procs))
    print_ready(host, port, (logs / "demo.log").read_text())
    return supervise(procs)


def prepare_demo(log_path: Path) -> int:
    """Run `manage.py demo` (unless IMPRINT_DEMO=0); its exit code, with the end of its log if it failed."""
    if os.environ.get("IMPRINT_DEMO", "1") == "0":
        log_path.write_text("The demo was not prepared (IMPRINT_DEMO=0).\n")
        return 0
    print(f"Preparing the demo (log in {rel(log_path)}) …", flush=True)
    with open(log_path, "w") as log:
        returncode = run_to_end([str(PY), "manage.py", "demo"], stdout=log, stderr=subprocess.STDOUT)
    if returncode != 0:
        print(f"The demo could not be prepared (exit code {returncode}); the end of "
              f"{rel(log_path)}:\n{tail(log_path)}", flush=True)
    return returncode


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join("    " + line for line in text[-lines:])


class Process:
    """A started process, its log file, and the line its log shows once it is ready."""

    def __init__(self, name: str, cmd: list[str], log: Path, ready_line: str | None):
        self.name, self.cmd, self.log, self.ready_line = name, cmd, log, ready_line
        self.restarts = 0
        self.restart_at: float | None = None  # when a dead process is due to start again
        self._start("w")

    def _start(self, mode: str) -> None:
        # Its own session (and process group), so that stopping it reaches its children too: the
        # web server's workers, a Celery pool, the embedded beat.
        with open(self.log, mode) as out:
            self.popen = subprocess.Popen(self.cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def restart(self) -> None:
        """Start the process again (its log goes on in the same file)."""
        stop_groups([self.popen])  # children a dead leader left behind (a pool, a beat)
        self.restarts += 1
        self.restart_at = None
        with stop_deferred():  # recorded before a stop can arrive
            self._start("a")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def ready(self) -> bool:
        return self.ready_line is None or self.ready_line in self.log.read_text(errors="replace")

    def why_dead(self) -> str:
        code = self.popen.returncode
        how = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return f"The {self.name} stopped ({how}). The end of {rel(self.log)}:\n{tail(self.log)}"


def start_processes(host: str, port: str, logs: Path, procs: list[Process]) -> None:
    """Start the workers and the web server, appending each to `procs` as it starts."""
    for name, cmd, log, ready_line in process_commands(host, port, logs):
        with stop_deferred():  # so that no started process escapes the stop
            procs.append(Process(name, cmd, log, ready_line))


def process_commands(host: str, port: str, logs: Path) -> list[tuple[str, list[str], Path, str | None]]:
    # Two worker processes, as production would have: a training worker that runs one job at a time
    # (GPU workers use the same command on their own machines) and a worker for everything else
    # (datasets, generation, billing), which also runs Celery beat in the embedded default.
    bin_ = VENV / "bin"
    return [
        ("training worker", [str(bin_ / "celery"), "-A", "config", "worker", "-Q", "training", "-P", "solo",
                             "-n", "training@%h", "--without-gossip", "--without-mingle", "-l", "INFO"],
         logs / "training-worker.log", " ready."),
        # Without gossip and mingle: their broker channels are what a threads-pool worker failed to
        # reopen after a broker restart (kombu's redis channel on a closed connection), and this
        # set-up does not use them (README: "Workers and broker outages").
        ("default worker", [str(bin_ / "celery"), "-A", "config", "worker", "-Q", "default,inference",
                            "-P", "threads", "-c", "4", "-n", "default@%h", "-B", "--without-gossip",
                            "--without-mingle", "-l", "INFO"],
         logs / "default-worker.log", " ready."),
        ("web server", [str(bin_ / "gunicorn"), "config.wsgi", "-b", f"{host}:{port}", "--threads", "8",
                        "--timeout", "120", "--access-logfile", str(logs / "access.log")],
         logs / "web.log", None),
    ]


def wait_until_up(host: str, port: int, procs: list[Process], timeout: float = 120) -> bool:
    """True once the web server accepts connections and each worker says it is ready, so the
    printed URL works when shown; False as soon as a process dies (or nothing came up in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not all(p.alive() for p in procs):
            return False
        with socket.socket() as s:
            s.settimeout(0.5)
            web_up = s.connect_ex((browsable(host), port)) == 0
        if web_up and all(p.ready() for p in procs):
            return True
        time.sleep(0.3)
    return False


def dead_process_message(procs: list[Process]) -> str:
    dead = [p for p in procs if not p.alive()]
    if dead:
        return "\n".join(p.why_dead() for p in dead)
    late = ", ".join(p.name for p in procs if not p.ready()) or "web server"
    return f"Not up after two minutes: {late}. See the logs in {rel(var_dir() / 'logs')}/."


def browsable(host: str) -> str:
    """The address a browser on this machine opens for a server listening on `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def print_ready(host: str, port: str, demo_log: str) -> None:
    """The last lines of the start-up: the URL, the demo logins, the demo API key, and where the
    e-mails go (a new account confirms its address before it buys or creates a key)."""
    logins = [line.strip() for line in demo_log.splitlines() if " / " in line]
    key_file = var_dir() / "demo-api-key.txt"
    # The demo prints this while the built-in base model prepares on the training worker.
    waiting = "base model preparing in the background" in demo_log
    later = "(made with the demo listings, in var/demo-api-key.txt)" if waiting else "(none: see the demo log)"
    key = key_file.read_text().strip() if key_file.exists() else later
    print("\nEverything is up. Ctrl+C stops it all.\n", flush=True)
    print(f"  Imprint:      {os.environ['SITE_URL'].rstrip('/')}/", flush=True)
    print("  Demo logins:  " + "\n                ".join(logins), flush=True)
    print(f"  Demo API key: {key}", flush=True)
    if waiting:
        print("  Demo models:  the built-in base model is preparing in the background on the training worker;\n"
              "                the demo listings appear when it is ready (minutes; its progress is in the Trainer studio).",
              flush=True)
    print(f"  E-mails:      {emails_go()}\n                A new account opens its confirmation link from there "
          "before it can buy a licence or create an API key.", flush=True)


def emails_go() -> str:
    backend = os.environ.get("EMAIL_BACKEND", "console")
    if "console" not in backend:
        return f"sent through {backend.rsplit('.', 2)[-2]} ({os.environ.get('EMAIL_HOST', 'localhost')})"
    logs = var_dir() / "logs"
    return f"printed to {rel(logs / 'web.log')} (the workers' to {rel(logs / 'default-worker.log')})."


RESTART_BACKOFF_SECONDS = (1, 2, 4, 8, 15, 30)  # then every 30 s
STABLE_SECONDS = 60  # a process up this long after a restart starts its back-off over


def restart_delay(restarts: int) -> float:
    return RESTART_BACKOFF_SECONDS[min(restarts, len(RESTART_BACKOFF_SECONDS) - 1)]


def supervise(procs: list[Process], *, poll: float = 0.5) -> int:
    """Keep every process running until a stop signal (which raises StopRequested out of the wait):
    one that exits is named with why and the end of its log, and started again after a back-off
    that grows while it keeps dying. The others are left alone."""
    started = {id(p): time.monotonic() for p in procs}
    while True:
        now = time.monotonic()
        for p in procs:
            if p.alive():
                if p.restarts and now - started[id(p)] > STABLE_SECONDS:
                    p.restarts = 0
                continue
            if p.restart_at is None:
                p.restart_at = now + restart_delay(p.restarts)
                print(f"\n{p.why_dead()}\nRestarting the {p.name} in {restart_delay(p.restarts):g} s "
                      f"(restart {p.restarts + 1}).", flush=True)
            elif now >= p.restart_at:
                p.restart()
                started[id(p)] = time.monotonic()
                print(f"Restarted the {p.name} (pid {p.popen.pid}).", flush=True)
        time.sleep(poll)


def stop_all(procs: list[Process], *, because: str | None) -> int:
    # Once stopping, a stop signal (a second Ctrl+C) must not cut it short and leave processes behind.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if because:
        print(f"\n{because}\nStopping everything.", flush=True)
    else:
        print("\nStopping everything …", flush=True)
    stop_groups([p.popen for p in procs])
    return 1 if because else 0


def stop_groups(popens: list[subprocess.Popen]) -> None:
    """SIGTERM each process's group (each was started in its own session), wait up to
    STOP_GRACE_SECONDS for every member to exit, then SIGKILL what is left."""
    for popen in popens:
        _signal_group(popen, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(_group_alive(popen) for popen in popens) and time.monotonic() < deadline:
        time.sleep(0.1)
    for popen in popens:
        if _group_alive(popen):
            _signal_group(popen, signal.SIGKILL)
        popen.wait()


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(popen.pid, sig)
    except ProcessLookupError:
        pass  # every member has exited


def _group_alive(popen: subprocess.Popen) -> bool:
    popen.poll()  # reap the leader: a zombie would still count as a member
    try:
        os.killpg(popen.pid, 0)
    except ProcessLookupError:
        return False
    return True


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
