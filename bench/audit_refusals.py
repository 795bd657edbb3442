"""Audited refusals: 200 refused generation requests from 20 client threads, with every refusal
appended to the hash chain (the chain head locked once per refusal) against refusals recorded off
the chain head (one insert each, sealed into the chain in one batch afterwards), in one run.

Each client sends `POST /api/v1/generations` through Django's test client (API-key auth, grant
lookup, the licence check that refuses the purpose, the refusal's audit record, compliance's flag
rule on the signal) from its own thread with its own database connection, as threads of a web
server would. Both variants run the same requests; "chained" swaps the refusal record back to
`audit_append`. Compliance's receivers are disconnected for the comparison (after the swap they
would not see the refusals at all; their work is the same in both designs); one more run of the
off-chain design with them shows the full path. The seal that puts the off-chain refusals under the
chain is timed separately.

    .venv/bin/python bench/audit_refusals.py --quick    # under a minute on 2 cores
    .venv/bin/python bench/audit_refusals.py            # more rounds
    .venv/bin/python bench/audit_refusals.py --database-url postgres://...   # an empty PostgreSQL database
    .venv/bin/python bench/audit_refusals.py --quick --busy-chain 0.005      # other audited changes meanwhile

SQLite (the default) serialises every write transaction anyway, so there the gain is only the
work no longer done per refusal (a locked read, a second write and a hash); on PostgreSQL the
refusals also stop queueing behind the one row that every audited change in the site locks.

The last line is `ratio: X` with X = the median over rounds of chained wall time / off-chain
wall time for the 200 refusals (higher is better for the off-chain design; 1.0 = no difference).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def django_setup(var_dir: Path, database_url: str | None) -> None:
    os.environ["IMPRINT_VAR_DIR"] = str(var_dir)
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{var_dir / 'bench.sqlite3'}"
    os.environ.pop("CACHE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


def fake_model(folder: Path) -> Path:
    # The purpose is refused before any weight or tokenizer is read: a config file is enough.
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"n_positions": 128}))
    return folder


class BusyChain:
    """With --busy-chain: one more thread keeps appending to the chain inside transactions that hold
    the head for `hold` seconds each (an audited change that does more work after its append, as
    a purchase or a decision does), while the refusals run."""

    def __init__(self, hold: float):
        self.hold, self.stop, self.thread = hold, threading.Event(), None

    def __enter__(self):
        if self.hold > 0:
            self.thread = threading.Thread(target=self._run)
            self.thread.start()
        return self

    def _run(self):
        from django.db import connections, transaction

        from audit.services import audit_append

        try:
            while not self.stop.is_set():
                with transaction.atomic():
                    audit_append(event="bench.other_change")
                    time.sleep(self.hold)
        finally:
            connections.close_all()

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def refused_licence(model_dir: Path):
    """bench/generation_overhead.py's served licence (uses: personal and research), its users'
    e-mail addresses confirmed where the site asks for that before it issues a key."""
    from django.db.models.signals import pre_save
    from django.utils import timezone
    from generation_overhead import served_licence

    from accounts.models import User

    def confirmed(sender, instance, **kwargs):
        if hasattr(instance, "email_verified_at") and instance.email_verified_at is None:
            instance.email_verified_at = timezone.now()

    pre_save.connect(confirmed, sender=User, dispatch_uid="bench.confirmed")
    try:
        return served_licence(model_dir)
    finally:
        pre_save.disconnect(dispatch_uid="bench.confirmed", sender=User)


def refuse_all(version, plaintext: str, *, clients: int, per_client: int, busy: float = 0.0) -> float:
    """Wall seconds for clients × per_client refused requests; every answer must be 403."""
    from django.db import connections
    from django.test import Client

    body = json.dumps({"model": str(version.pk), "prompt": "the quick brown", "max_new_tokens": 8,
                       "purpose": "commercial"})
    failures: list[str] = []

    def client_loop():
        http = Client()
        try:
            for _ in range(per_client):
                response = http.post("/api/v1/generations", data=body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {plaintext}"})
                if response.status_code != 403:
                    failures.append(f"{response.status_code} {response.content[:200]!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    with BusyChain(busy):
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests were not refused with 403, e.g. {failures[0]}")
    return wall


def without_receivers():
    """Context: the audit signal's receivers (compliance's flag rules) disconnected. Their work per
    refusal is the same in both designs, but after the swap to `audit_append` they would no longer
    see the refusals at all, so both variants run without them to compare like with like."""
    import contextlib

    from audit.signals import entry_appended

    @contextlib.contextmanager
    def quiet():
        receivers = entry_appended.receivers
        entry_appended.receivers = []
        entry_appended.sender_receivers_cache.clear()
        try:
            yield
        finally:
            entry_appended.receivers = receivers
            entry_appended.sender_receivers_cache.clear()

    return quiet()


def chained_refusals():
    """Context: refusals appended to the chain, as every refusal was before (one head lock each)."""
    import contextlib

    import inference.services
    from audit.services import audit_append

    @contextlib.contextmanager
    def swapped():
        original = inference.services.audit_refusal_record
        inference.services.audit_refusal_record = audit_append
        try:
            yield
        finally:
            inference.services.audit_refusal_record = original

    return swapped()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 1 min on 2 cores)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="an empty database to use instead of SQLite")
    parser.add_argument("--busy-chain", type=float, default=0.0, metavar="SECONDS",
                        help="meanwhile, other audited changes hold the chain head this long each (e.g. 0.005)")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)

    with tempfile.TemporaryDirectory(prefix="imprint-bench-") as tmp:
        django_setup(Path(tmp), args.database_url)
        version, plaintext = refused_licence(fake_model(Path(tmp) / "model"))
        run_comparison(version, plaintext, clients=args.clients, per_client=args.requests // args.clients,
                       rounds=rounds, busy=args.busy_chain)


def run_comparison(version, plaintext: str, *, clients: int, per_client: int, rounds: int, busy: float) -> None:
    from django.db import connection

    from audit.models import AuditEntry, AuditRefusal
    from audit.services import audit_chain_verify, audit_refusals_seal

    refuse_all(version, plaintext, clients=clients, per_client=2)  # warm-up: imports, key lookup, first flag
    audit_refusals_seal()
    times: dict[str, list[float]] = {"chained": [], "off-chain": []}
    seals, ratios = [], []
    with without_receivers():
        for i in range(rounds):
            for variant in (("chained", "off-chain") if i % 2 == 0 else ("off-chain", "chained")):
                if variant == "chained":
                    with chained_refusals():
                        times[variant].append(refuse_all(version, plaintext, clients=clients, per_client=per_client,
                                                         busy=busy))
                else:
                    times[variant].append(refuse_all(version, plaintext, clients=clients, per_client=per_client,
                                                     busy=busy))
                    started = time.perf_counter()
                    audit_refusals_seal()
                    seals.append(time.perf_counter() - started)
            ratios.append(times["chained"][-1] / times["off-chain"][-1])
    with_flags = refuse_all(version, plaintext, clients=clients, per_client=per_client)
    audit_refusals_seal()
    assert audit_chain_verify()[1] is None
    n = clients * per_client
    print(f"machine: {os.cpu_count()} CPUs; database {connection.vendor}; {n} refused requests from {clients} "
          f"client threads per run, {rounds} rounds (alternating order)"
          + (f"; other changes hold the chain head {busy * 1000:.0f} ms each meanwhile" if busy else ""))
    for name, values in times.items():
        print(f"{name:10}: median {statistics.median(values):.3f} s ({n / statistics.median(values):.0f} refusals/s)  "
              f"runs {fmt(values)}")
    print(f"off-chain with compliance's flag rules on each refusal's signal (the full path): {with_flags:.3f} s "
          f"({n / with_flags:.0f} refusals/s)")
    print(f"seal of {n} off-chain refusals into one chain entry: median {statistics.median(seals) * 1000:.1f} ms")
    print(f"rows: {AuditEntry.objects.count()} chain entries, {AuditRefusal.objects.count()} off-chain refusals; "
          f"chain verifies")
    print(f"per-round ratios (chained / off-chain): {fmt(ratios)}")
    print(f"ratio: {statistics.median(ratios):.3f}")


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


if __name__ == "__main__":
    main()
