"""A live Imprint site in the production shape, with its faults at hand: PostgreSQL (a cluster of
its own), Redis as broker, result backend, token relay and cache (a redis-server of its own),
gunicorn, inference workers on their own Celery processes and a default worker running beat.
Everything runs as real processes on free ports, in a temporary folder; `close()` stops it all.

Clients are plain HTTP (`Client`), which record every status and error they saw. Used by the
fault tests (tests/faults) and the load run (bench/faults.py).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import REPO, free_port, port_open, start_process

from .services import PostgresCluster, RedisServer, postgres_bin, wait_for

# Settings of the test process that must not leak into the site.
NOT_PASSED_ON = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
                 "CACHE_URL", "MEDIA_ROOT", "IMPRINT_BROKER_DIR", "TRAINING_WORK_DIR", "INFERENCE_RELAY_URL",
                 "INFERENCE_IN_PROCESS", "IMPRINT_VAR_DIR")


def available() -> str | None:
    """Why a live site cannot run here (None: it can)."""
    if postgres_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl)"
    if shutil.which("redis-server") is None:
        return "redis-server"
    return None


class LiveSite:
    def __init__(self, *, licences: int = 4, inference_workers: int = 2, gunicorn_workers: int = 2,
                 extra_env: dict | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="imprint-site-"))
        self.processes: dict[str, object] = {}
        self.pg = self.redis = None
        try:
            self._start(licences, inference_workers, gunicorn_workers, extra_env or {})
        except BaseException:
            self.close()
            raise

    # --- start-up ------------------------------------------------------------------------------

    def _start(self, licences: int, inference_workers: int, gunicorn_workers: int, extra_env: dict) -> None:
        self.pg = PostgresCluster(postgres_bin())
        self.redis = RedisServer(shutil.which("redis-server"))
        database = self.pg.create_database("imprint")
        self.env = {k: v for k, v in os.environ.items() if k not in NOT_PASSED_ON}
        self.env.update({
            "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
            "DATABASE_URL": database, "CELERY_BROKER_URL": self.redis.url(0), "CELERY_RESULT_BACKEND": self.redis.url(0),
            "CACHE_URL": self.redis.url(1), "INFERENCE_IN_PROCESS": "0", "IMPRINT_VAR_DIR": str(self.root / "var"),
            "IMPRINT_DEMO": "0", "TRAINING_SWEEP_SECONDS": "5", "DEBUG": "0", **extra_env})
        self.manage("migrate", "-v", "0")
        self.port = free_port()
        # The processes start (each imports torch: seconds) while the model is built and stored.
        for i in range(inference_workers):
            self.start_inference_worker(i)
        self.start_worker("default", ["-Q", "default", "-P", "threads", "-c", "2", "-B",
                                      "-s", str(self.root / "beat-schedule")])
        self.processes["web"] = start_process("gunicorn", [
            sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{self.port}",
            "--workers", str(gunicorn_workers), "--threads", "16", "--timeout", "120"], env=self.env)
        seeded = subprocess.run([sys.executable, "-m", "tests.faults.seed", str(licences)], cwd=REPO, env=self.env,
                                capture_output=True, text=True)
        if seeded.returncode:
            raise RuntimeError(f"seeding the site failed:\n{seeded.stderr[-3000:]}")
        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        self.model, self.keys = seed["model"], seed["keys"]
        wait_for(self.up, timeout=90, what="gunicorn")
        for i in range(inference_workers):
            self.wait_ready(f"inference-{i}")
        self.warm_up(2 * inference_workers)

    def warm_up(self, requests: int) -> None:
        """Requests at once, so that each worker has loaded the model (as on a site in service)."""
        client = Client(self.port, self.keys[0], self.model)
        threads = [threading.Thread(target=client.generate, kwargs={"max_tokens": 4}) for _ in range(requests)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    def wait_ready(self, name: str, timeout: float = 90) -> None:
        process = self.processes[name]
        wait_for(lambda: " ready." in process.log() or not process.alive(), timeout=timeout, what=name)
        assert process.alive(), f"{name} exited:\n{process.log()[-3000:]}"

    def start_worker(self, name: str, args: list[str]):
        self.processes[name] = start_process(f"celery-{name}", [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-n", f"{name}@faults", "--without-gossip",
            "--without-mingle", "-l", "INFO", *args], env=self.env)
        return self.processes[name]

    def start_inference_worker(self, i: int):
        return self.start_worker(f"inference-{i}", ["-Q", "inference", "-P", "threads", "-c", "4"])

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True)
        if check and done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done

    def reconcile(self) -> tuple[int, str]:
        done = self.manage("reconcile", check=False)
        return done.returncode, done.stdout + done.stderr

    def reconciled_within(self, seconds: float) -> tuple[float, str]:
        """Seconds until `reconcile` is clean (raises with its last output after `seconds`)."""
        started, last = time.monotonic(), ""
        while time.monotonic() - started < seconds:
            code, last = self.reconcile()
            if code == 0:
                return time.monotonic() - started, last
            time.sleep(2)
        raise AssertionError(f"reconcile not clean after {seconds:g} s:\n{last[-3000:]}")

    def sql(self, query: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
            return conn.execute(query).fetchall()

    def close(self) -> None:
        for process in self.processes.values():  # all at once: each warm shutdown takes seconds
            process.kill(signal.SIGTERM)
        for process in self.processes.values():
            process.stop(timeout=3)
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.destroy()
        shutil.rmtree(self.root, ignore_errors=True)

    def up(self) -> bool:
        return port_open(self.port)


# --- Clients ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    status: int
    seconds: float
    headers: dict
    body: dict | None = None  # JSON body, or the stream's last error / result event
    events: list = field(default_factory=list)  # a stream's parsed data events
    html: bool = False
    started_at: float = 0.0
    answered_at: float = 0.0  # when the status line and headers came (a stream's first byte)


class Client:
    """HTTP calls to a live site, each recorded as an Outcome."""

    def __init__(self, port: int, key: str, model: str):
        self.port, self.key, self.model = port, key, model

    def _request(self, path: str, body: dict, headers: dict | None, timeout: float):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request("POST", path, body=json.dumps(body), headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json", **(headers or {})})
        return conn, conn.getresponse()

    def generate(self, *, stream: bool = False, openai: bool = False, idempotency_key: str | None = None,
                 max_tokens: int = 24, prompt: str = "the quick brown", timeout: float = 120, on_event=None,
                 stop_after: int | None = None) -> Outcome:
        """One request; a stream is read to its end, or hung up on after `stop_after` events."""
        path = "/v1/completions" if openai else "/api/v1/generations"
        body = {"model": self.model, "prompt": prompt, "stream": stream, "ignore_eos": True, "seed": 1,
                ("max_tokens" if openai else "max_new_tokens"): max_tokens}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        started = time.monotonic()
        try:
            conn, response = self._request(path, body, headers, timeout)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(status=0, seconds=time.monotonic() - started, headers={}, body={"transport": str(exc)},
                           started_at=started)
        outcome = Outcome(status=response.status, seconds=0.0, headers={k.lower(): v for k, v in response.getheaders()},
                          started_at=started, answered_at=time.monotonic())
        try:
            if response.getheader("Content-Type", "").startswith("text/event-stream"):
                self._read_stream(response, outcome, on_event, stop_after)
            else:
                raw = response.read()
                outcome.html = raw.lstrip().lower().startswith((b"<!doctype", b"<html"))
                outcome.body = json.loads(raw) if not outcome.html and raw else None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            outcome.body = {"transport": str(exc)}
        finally:
            conn.close()
        outcome.seconds = time.monotonic() - started
        return outcome

    @staticmethod
    def _read_stream(response, outcome: Outcome, on_event, stop_after: int | None) -> None:
        for raw in response:
            if stop_after is not None and len(outcome.events) >= stop_after:
                return
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            outcome.events.append(event)
            if on_event is not None:
                on_event(event)
            if "error" in event or event.get("type") == "result" or event.get("usage"):
                outcome.body = event


class Load:
    """`clients` threads calling the site in a loop (plain and streamed, both APIs) until stopped."""

    def __init__(self, site: LiveSite, clients: int = 8, max_tokens: int = 16):
        self.site, self.clients, self.max_tokens = site, clients, max_tokens
        # Keys of one load run only: a later run on the same site must not meet a claim an earlier
        # run's outage left pending (it answers 409 in progress until its TTL, as it should).
        self.run = uuid.uuid4().hex[:8]
        self.outcomes: list[Outcome] = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(clients)]

    def _loop(self, i: int) -> None:
        client = Client(self.site.port, self.site.keys[i % len(self.site.keys)], self.site.model)
        n = 0
        while not self.stop_event.is_set():
            outcome = client.generate(stream=n % 2 == 1, openai=n % 3 == 2, max_tokens=self.max_tokens,
                                      prompt=f"the quick brown fox {i} {n}", idempotency_key=f"load-{self.run}-{i}-{n}")
            self.outcomes.append(outcome)
            n += 1
            if outcome.status != 200:
                time.sleep(0.2)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=150)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return dict(sorted(counts.items()))

    def stream_errors(self) -> list[dict]:
        return [o.body for o in self.outcomes if o.status == 200 and o.body and "error" in o.body]

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from `moment` (monotonic) to the end of the first successful request begun after it."""
        done = [o.started_at + o.seconds for o in self.outcomes
                if o.started_at >= moment and o.status == 200 and o.body and "error" not in o.body]
        return min(done) - moment if done else None
