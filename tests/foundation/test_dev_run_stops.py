"""`python3 dev.py run` stops everything it started (the web server, both Celery workers and their
children) when it is stopped, whichever stop signal it gets: `kill -TERM`, a closed terminal
(SIGHUP) or Ctrl+C (SIGINT). The real command runs against a fresh var folder on a free port, with
the demo skipped (IMPRINT_DEMO=0) so that it is up in seconds. A worker that dies meanwhile is
named and started again, and the rest keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dev
from tests.support.processes import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# Settings the test process may carry that would point the started site at the test database.
NOT_PASSED_ON = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MEDIA_ROOT",
                 "IMPRINT_BROKER_DIR", "TRAINING_WORK_DIR")


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """{pid: start time} of every process below `root` now."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))):
            children.setdefault(found[0], []).append(int(entry.name))
            started[int(entry.name)] = found[2]
    below, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            below[child] = started[child]
            todo.append(child)
    return below


def _still_running(seen: dict[int, int]) -> dict[int, str]:
    """Those of `seen` that still run (the same process: same start time; a zombie has ended)."""
    left = {}
    for pid, started in seen.items():
        found = _stat(pid)
        if found and found[2] == started and found[1] != "Z":
            left[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return left


def _start_dev_run(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED_ON}
    env.update(HOST="127.0.0.1", PORT=str(free_port()), IMPRINT_VAR_DIR=str(tmp_path / "var"), IMPRINT_DEMO="0",
               PYTHONPATH=str(REPO))
    output = tmp_path / "dev-run.log"
    with open(output, "w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "dev.py"), "run"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    return proc, output


def _wait_until_up(proc: subprocess.Popen, output: Path, seen: dict[int, int], timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while "Everything is up" not in output.read_text():
        seen.update(_descendants(proc.pid))
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"dev.py run did not come up:\n{output.read_text()[-4000:]}")
        time.sleep(0.2)
    for _ in range(10):  # the web server's workers and the embedded beat start just after
        seen.update(_descendants(proc.pid))
        time.sleep(0.2)


@pytest.mark.skipif(not (dev.installed("requirements.txt") or dev.installed("requirements-test.txt")),
                    reason="dev.py run would install .venv first; run `python3 dev.py test` once")
def test_sigterm_leaves_none_of_its_processes_running(tmp_path):
    proc, output = _start_dev_run(tmp_path)
    seen: dict[int, int] = {}
    try:
        _wait_until_up(proc, output, seen)
        commands = " ".join(_still_running(seen).values())
        assert "gunicorn" in commands and commands.count("celery") >= 2, commands
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=60)
        assert _still_running(seen) == {}
        assert returncode == 0
        # They shut down on SIGTERM (a Celery warm shutdown), before the SIGKILL that ends a straggler.
        assert time.monotonic() - signalled < dev.STOP_GRACE_SECONDS
    finally:
        for pid in _still_running(seen):  # never leave a site running, even when the test fails
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


# The same supervision (dev.until_stopped, dev.Process, dev.supervise) around stand-in processes that
# each have a child, one of them deaf to SIGTERM, so that every stop signal is tried in seconds.
SUPERVISED = """
import sys
from pathlib import Path

import dev

dev.STOP_GRACE_SECONDS = 1
logs = Path(sys.argv[1])
COMMANDS = {"obedient": "sleep 300 & sleep 300 & wait", "deaf": "trap '' TERM; sleep 300 & sleep 300 & wait"}


def start(procs):
    for name, command in COMMANDS.items():
        procs.append(dev.Process(name, ["sh", "-c", command], logs / f"{name}.log", None))
    print("up", flush=True)
    return dev.supervise(procs)


sys.exit(dev.until_stopped(start))
"""


def _stop_and_find_leftovers(script: str, args: list[str], ready: str, processes: int, stop_signal: int) -> dict:
    """Run `script`, wait for its `ready` line and its `processes` descendants, send `stop_signal`;
    those descendants still running once it has exited (it must exit 0)."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    seen: dict[int, int] = {}
    try:
        assert proc.stdout.readline() == ready + "\n"
        deadline = time.monotonic() + 10
        while len(seen) < processes and time.monotonic() < deadline:
            seen.update(_descendants(proc.pid))
            time.sleep(0.05)
        assert len(seen) == processes
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=20) == 0
        return _still_running(seen)
    finally:
        for pid in _still_running(seen):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_every_stop_signal_stops_each_process_and_its_children(tmp_path, stop_signal):
    # two shells, two sleeps each
    assert _stop_and_find_leftovers(SUPERVISED, [str(tmp_path)], "up", 6, stop_signal) == {}

SETTING_UP = """
import sys

import dev


def start(procs):
    print("setting up", flush=True)
    dev.run_to_end(["sh", "-c", "sleep 300 & sleep 300 & wait"])  # a set-up step (migrate, the demo)
    return 1


sys.exit(dev.until_stopped(start))
"""


def test_a_stop_signal_during_set_up_stops_the_set_up_step_and_its_children():
    # the shell and its two sleeps
    assert _stop_and_find_leftovers(SETTING_UP, [], "setting up", 3, signal.SIGTERM) == {}


@pytest.mark.skipif(not (dev.installed("requirements.txt") or dev.installed("requirements-test.txt")),
                    reason="dev.py run would install .venv first; run `python3 dev.py test` once")
def test_a_worker_killed_under_dev_run_is_named_and_restarted_while_the_rest_keeps_running(tmp_path):
    proc, output = _start_dev_run(tmp_path)
    seen: dict[int, int] = {}
    try:
        _wait_until_up(proc, output, seen)
        workers = {pid: cmd for pid, cmd in _still_running(seen).items() if "default@" in cmd}
        # The celery worker's main process is the one whose parent is not a worker (process ids wrap
        # around on a busy machine, so the smallest is not always the first); it leads its group.
        leader = next(pid for pid in workers if (_stat(pid) or (0,))[0] not in workers)
        os.killpg(os.getpgid(leader), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "Restarted the default worker" not in output.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.2)
        text = output.read_text()
        assert "The default worker stopped (killed by signal SIGKILL)" in text
        assert "Restarting the default worker in 1 s (restart 1)" in text
        log = tmp_path / "var" / "logs" / "default-worker.log"
        while log.read_text().count(" ready.") < 2:  # the new worker came up in the same log
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert "Stopping everything" not in output.read_text()
        seen.update(_descendants(proc.pid))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert _still_running(seen) == {}
    finally:
        for pid in _still_running(seen):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
