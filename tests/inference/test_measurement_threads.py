"""Measurements that run torch outside the engine's own thread (a precision check, a watermark
power measurement, a verification's entropies, from a Celery pool thread or a web thread) leave
that long-lived thread without a torch (OpenMP) thread team: while such a team lives, a process
holds more OpenMP threads than cores and every parallel op of the engine's decode slows down."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from core.torch_runtime import on_passing_thread
from inference.engine import Engine

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")


def _threads() -> set[int]:
    """The process's threads (their ids), once the set has held for 0.2 s: an ended thread's team
    leaves a moment after it."""
    found, since = set(os.listdir("/proc/self/task")), time.monotonic()
    deadline = since + 10
    while time.monotonic() - since < 0.2 and time.monotonic() < deadline:
        time.sleep(0.02)
        now = set(os.listdir("/proc/self/task"))
        if now != found:
            found, since = now, time.monotonic()
    return {int(tid) for tid in found}


def _big_op() -> float:
    a = torch.randn(512, 512)
    return float((a @ a).sum())


def _threads_while_a_pool_thread_lives(work) -> int:
    """How many threads started while a long-lived thread (a pool thread) ran `work` are still
    there while it lives, itself aside (threads that ended meanwhile, anyone's, do not count)."""
    ran, leave = threading.Event(), threading.Event()
    errors, native = [], []

    def pool_thread():
        native.append(threading.get_native_id())
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported on the test's thread
            errors.append(exc)
        ran.set()
        leave.wait(30)

    before = _threads()
    thread = threading.Thread(target=pool_thread)
    thread.start()
    try:
        assert ran.wait(60)
        assert not errors, errors
        return len(_threads() - before - set(native))
    finally:
        leave.set()
        thread.join()


def test_work_on_a_passing_thread_returns_its_result_or_raises_its_error_on_the_callers_thread():
    caller = threading.get_ident()
    ran_on = on_passing_thread(threading.get_ident)
    assert ran_on != caller
    assert on_passing_thread(lambda a, *, b: a + b, 2, b=3) == 5
    with pytest.raises(KeyError, match="gone"):
        on_passing_thread(lambda: {}["gone"])


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one torch thread: no OpenMP team to keep")
def test_a_thread_that_ran_torch_keeps_threads_while_it_lives_and_a_measurement_leaves_none(tiny_dir: Path):
    # The hazard itself: a long-lived thread that ran a parallel op keeps its team's threads.
    assert _threads_while_a_pool_thread_lives(_big_op) >= 1
    engine = Engine(cache_bytes=2 * 1024**3)
    try:
        assert _threads_while_a_pool_thread_lives(lambda: on_passing_thread(_big_op)) == 0
        # A perplexity check and a measurement with the model as served, as the measuring tasks call them.
        windows = torch.randint(1, 200, (8, 65))
        perplexities = []
        assert _threads_while_a_pool_thread_lives(
            lambda: perplexities.append(engine.perplexity("t" * 64, tiny_dir, windows, precision="fp32"))) == 0
        assert perplexities and perplexities[0] > 1
        shapes = []
        assert _threads_while_a_pool_thread_lives(lambda: shapes.append(engine.measure(
            lambda loaded, model: (tuple(model(input_ids=windows).logits.shape), _big_op()), "t" * 64, tiny_dir))) == 0
        assert shapes[0][0] == (8, 65, engine.load("t" * 64, tiny_dir).vocab_size)
    finally:
        engine.close()
