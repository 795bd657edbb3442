"""Backing services of a fault test's own, started on free ports and stopped or restarted at will:
a throwaway PostgreSQL cluster (initdb + pg_ctl) and a redis-server. The suite's shared PostgreSQL
and Redis are never touched. Used by tests/faults and by bench/faults.py."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import free_port, port_open, start_process


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _as_postgres_user() -> list[str]:
    # initdb and postgres refuse to run as root; the tests run as root in CI.
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh", "-c"]


class PostgresCluster:
    """A PostgreSQL cluster of its own in a temporary folder, trusting local connections."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="imprint-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*_as_postgres_user(), str(self.bin / tool), *args]
        if cmd[0] == "su":
            cmd = cmd[:-1] + [" ".join([cmd[-1], *args])]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                        f"-c max_connections=200")

    def stop(self) -> None:
        # Fast: what a crash or a failover does to the clients (their connections are cut).
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", "fast", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def up(self) -> bool:
        return port_open(self.port)

    def destroy(self) -> None:
        try:
            if self.up():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A redis-server of its own (no persistence: a restart loses what it held, the worst case)."""

    def __init__(self, binary: str, port: int | None = None):
        self.binary, self.port = binary, port or free_port()
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = start_process("redis-fault", [self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                                                     "--save", "", "--appendonly", "no"], port=self.port)

    def stop(self) -> None:
        self.process.stop()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


def wait_for(condition, *, timeout: float, every: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        time.sleep(every)
