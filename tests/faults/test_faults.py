"""Faults heal by themselves, and clients are told the truth — against a live site in the
production shape (tests/faults/site.py): an inference worker killed mid-stream, PostgreSQL
restarted under load, Redis stopped for ten seconds under load. Each asserts what the clients saw
(never a 500; 503s carry Retry-After and the API's error shape), that service came back without
anyone's help, and that `reconcile` finds the books balanced afterwards."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from .services import wait_for
from .site import Client, Load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _worker_running(site, request_marker: str = "inference.generate") -> str:
    """The name of the inference worker that took the newest generation."""
    def find():
        for name, process in site.processes.items():
            if name.startswith("inference-") and process.alive() and request_marker in process.log():
                return name
        return None

    return wait_for(find, timeout=30, what="a worker taking the request")


def _assert_no_500_and_honest_503s(load: Load) -> None:
    for outcome in load.outcomes:
        assert outcome.status != 500 and not outcome.html, outcome
        assert outcome.status in (200, 503, 0) or outcome.status == 504, outcome
        if outcome.status == 503:
            assert int(outcome.headers["retry-after"]) >= 1, outcome
            assert outcome.body["error"]["code"] and outcome.body["error"]["message"], outcome


@pytest.mark.parametrize("openai", [False, True], ids=["generation-api", "openai-api"])
def test_a_worker_killed_mid_stream_is_reported_within_seconds_with_its_charge(site, openai):
    for process in site.processes.values():  # which worker takes it is told by its log
        process.log_path.write_text("") if process.name.startswith("celery-inference") else None
    client = Client(site.port, site.keys[0], site.model)
    received, outcome = [], {}
    key = f"killed-{int(openai)}-{time.time_ns()}"

    def read():
        outcome["it"] = client.generate(stream=True, openai=openai, idempotency_key=key, max_tokens=480,
                                        on_event=received.append)

    reader = threading.Thread(target=read)
    reader.start()
    wait_for(lambda: len(received) >= 10, timeout=60, what="ten streamed tokens")
    victim = _worker_running(site)
    site.processes[victim].kill(signal.SIGKILL)
    killed_at = time.monotonic()
    reader.join(timeout=30)
    error_after = time.monotonic() - killed_at
    result = outcome["it"]

    assert result.status == 200 and "error" in result.body, result  # the stream had begun: its last event
    error = result.body["error"]
    assert error_after < 10, error_after
    assert error["code"] == "inference_worker_lost"
    charged = error["charged"]
    tokens_received = len(received) - 1  # every event but the error carried one token
    assert charged["completion_tokens"] == tokens_received and charged["ledger_row"]
    assert f"Charged {charged['total_tokens']} tokens" in error["message"] and charged["ledger_row"] in error["message"]
    row = site.sql(f"select total_tokens, interrupted from inference_usageentry "
                   f"where request_id = '{charged['ledger_row']}'")
    assert row == [(charged["total_tokens"], True)]

    site.start_inference_worker(int(victim.rsplit("-", 1)[1]))  # as a supervisor would
    # The same Idempotency-Key works again at once, on the worker still alive (the dead one's claim
    # was freed as soon as it was known dead).
    retry = client.generate(stream=True, openai=openai, idempotency_key=key, max_tokens=480, stop_after=3)
    assert retry.status == 200 and retry.events and "error" not in retry.events[0], retry  # it generates
    assert retry.answered_at - killed_at < 10  # accepted, not 409 until a TTL passed
    site.reconciled_within(60)
    site.wait_ready(victim)


def _outage_under_load(site, service, *, seconds: float, what: str) -> tuple[Load, float]:
    """`service` stopped for `seconds` under 8 clients' load, until a request succeeds again after it
    returned; no 500 and only honest 503s. Returns the load and when the service returned."""
    with Load(site, clients=8) as load:
        time.sleep(4)
        service.stop()
        time.sleep(seconds)
        service.start()
        back_at = time.monotonic()
        wait_for(lambda: load.first_success_after(back_at) is not None, timeout=30, what=what)
        time.sleep(2)
    _assert_no_500_and_honest_503s(load)
    return load, back_at


def test_a_postgresql_restart_under_load_gives_503s_not_500s_and_the_books_balance(site):
    load, back_at = _outage_under_load(site, site.pg, seconds=3, what="service after restart")
    statuses = load.statuses()
    assert statuses.get(200, 0) > 10, statuses
    print(f"\nPostgreSQL 3 s restart: statuses {statuses}, back {load.first_success_after(back_at):.1f} s after it "
          f"returned, stream errors {len(load.stream_errors())}")
    site.reconciled_within(60)


def test_a_redis_stop_under_load_gives_503s_not_500s_and_every_worker_comes_back(site):
    load, back_at = _outage_under_load(site, site.redis, seconds=10, what="service after Redis")
    statuses = load.statuses()
    print(f"\nRedis 10 s stop: statuses {statuses}, back {load.first_success_after(back_at):.1f} s after it returned")
    for name, process in site.processes.items():
        assert process.alive(), f"{name} exited:\n{process.log()[-3000:]}"
    site.reconciled_within(60)
