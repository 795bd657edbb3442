"""Faults under load against a live site in the production shape (tests/faults/site.py: its own
PostgreSQL cluster, a redis-server as broker + result backend + relay + cache, gunicorn with 2
workers × 16 threads, 2 inference workers and a default worker with beat, all real processes):

1. an inference worker killed (SIGKILL) mid-stream: seconds from the kill to the client's error
   event, what that error said was charged against the ledger row, and seconds until a retry with
   the same Idempotency-Key was accepted (its response began) and sent its first token;
2. PostgreSQL stopped for 3 s (fast shutdown: clients' connections cut) under load;
3. Redis stopped for 10 s under load (broker, results, relay and cache at once).

For 2 and 3: the count of each status the clients saw, the requests answered 5xx other than
503 (and HTML pages), the 503s without Retry-After, the streams that ended in an error event (and
its codes), the seconds from the service's return to the start and to the end of the first
successful request begun after it, and the seconds until `manage.py reconcile` was clean (each
reconcile run itself takes a few seconds: it starts Django). A load client loops plain and streamed requests
through both APIs, each with its own Idempotency-Key, and pauses 0.2 s after a failure.

    .venv/bin/python bench/faults.py                 # 16 clients
    .venv/bin/python bench/faults.py --clients 8 --json /tmp/faults.json

Needs PostgreSQL server binaries (/usr/lib/postgresql/*/bin) and redis-server. The last line is a
JSON summary.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.services import wait_for  # noqa: E402
from tests.faults.site import Client, LiveSite, Load, available  # noqa: E402


def _kill_mid_stream(site: LiveSite) -> dict:
    for name, process in site.processes.items():
        if name.startswith("inference-"):
            process.log_path.write_text("")
    client = Client(site.port, site.keys[0], site.model)
    received, outcome, key = [], {}, f"bench-kill-{time.time_ns()}"
    reader = threading.Thread(target=lambda: outcome.setdefault("it", client.generate(
        stream=True, idempotency_key=key, max_tokens=480, on_event=received.append)))
    reader.start()
    wait_for(lambda: len(received) >= 20, timeout=60, what="twenty streamed tokens")
    victim = wait_for(lambda: next((n for n, p in site.processes.items() if n.startswith("inference-")
                                    and "inference.generate" in p.log()), None), timeout=30, what="the worker")
    site.processes[victim].kill(signal.SIGKILL)
    killed = time.monotonic()
    reader.join(timeout=60)
    error_after = time.monotonic() - killed
    error = (outcome["it"].body or {}).get("error", {})
    site.start_inference_worker(int(victim.rsplit("-", 1)[1]))  # what a supervisor does
    first_token = {}
    retry = client.generate(stream=True, idempotency_key=key, max_tokens=480, stop_after=3,
                            on_event=lambda e: first_token.setdefault("at", time.monotonic()))
    ledger = site.sql(f"select total_tokens, interrupted from inference_usageentry "
                      f"where request_id = '{error.get('charged', {}).get('ledger_row')}'")
    site.wait_ready(victim)
    return {"tokens_before_kill": len(received), "error_after_s": round(error_after, 2), "error_code": error.get("code"),
            "error_message": error.get("message"), "charged": error.get("charged"), "ledger_row_in_db": ledger,
            "retry_status": retry.status, "retry_accepted_after_s": round(retry.answered_at - killed, 2),
            "retry_first_token_after_s": round(first_token.get("at", 0) - killed, 2)}


def _outage(site: LiveSite, clients: int, stop, start, seconds: float) -> dict:
    with Load(site, clients=clients) as load:
        time.sleep(5)
        stop()
        time.sleep(seconds)
        start()
        back = time.monotonic()
        wait_for(lambda: load.first_success_after(back) is not None, timeout=60, what="service back")
        time.sleep(3)
    reconciled, output = site.reconciled_within(120)
    other_5xx = [o.status for o in load.outcomes if o.status >= 500 and o.status != 503]
    retry_after_missing = sum(1 for o in load.outcomes if o.status == 503 and "retry-after" not in o.headers)
    html = sum(1 for o in load.outcomes if o.html)
    return {"requests": len(load.outcomes), "statuses": load.statuses(), "other_5xx": len(other_5xx),
            "html_pages": html, "503_without_retry_after": retry_after_missing,
            "stream_error_events": len(load.stream_errors()),
            "stream_error_codes": sorted({e["error"]["code"] for e in load.stream_errors()}),
            "first_success_after_return_s": round(load.first_success_after(back), 2),
            "first_successful_request_began_after_return_s": round(_first_success_began(load, back), 2),
            "reconcile_clean_after_s": round(reconciled, 1), "reconcile": output.strip().splitlines()[-1]}


def _first_success_began(load: Load, moment: float) -> float:
    """Seconds from `moment` to the start of the first request begun after it that succeeded."""
    return min(o.started_at for o in load.outcomes if o.started_at >= moment and o.status == 200
               and o.body and "error" not in o.body) - moment


def _baseline(site: LiveSite, clients: int, seconds: float) -> dict:
    with Load(site, clients=clients) as load:
        time.sleep(seconds)
    ok = sorted(o.seconds for o in load.outcomes if o.status == 200)
    return {"requests": len(load.outcomes), "statuses": load.statuses(),
            "p50_s": round(statistics.median(ok), 2), "p95_s": round(ok[int(0.95 * (len(ok) - 1))], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    missing = available()
    if missing:
        print(f"needs {missing}")
        return 2
    started = time.monotonic()
    site = LiveSite(licences=4)
    print(f"site up in {time.monotonic() - started:.0f} s", flush=True)
    try:
        summary = {"clients": args.clients, "baseline": _baseline(site, args.clients, 10)}
        print("baseline", summary["baseline"], flush=True)
        summary["worker_killed_mid_stream"] = _kill_mid_stream(site)
        print("worker killed", summary["worker_killed_mid_stream"], flush=True)
        summary["postgresql_3s_restart"] = _outage(site, args.clients, site.pg.stop, site.pg.start, 3)
        print("postgresql", summary["postgresql_3s_restart"], flush=True)
        summary["redis_10s_stop"] = _outage(site, args.clients, site.redis.stop, site.redis.start, 10)
        print("redis", summary["redis_10s_stop"], flush=True)
        summary["workers_alive_at_end"] = {n: p.alive() for n, p in site.processes.items()}
    finally:
        site.close()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
