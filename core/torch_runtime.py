"""Process-wide settings of the runtime that torch runs on, for every app that computes with torch
(the training loop, the generation engine), and where torch work runs. No Django and no torch
import: callers apply the settings before their first large allocation."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_GLIBC_M_TRIM_THRESHOLD, _GLIBC_M_MMAP_THRESHOLD = -1, -3
# 1 GiB: above any tensor a training step or a decode step frees, so glibc keeps them all.
_KEEP_BLOCKS_UP_TO = 1 << 30
_allocator_tuned = False


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory in the heap for reuse instead of handing it back to the OS.

    A training step allocates and frees the same large tensors (logits, activations, gradients:
    megabytes to hundreds of megabytes) every step. By default glibc serves such blocks with
    fresh mmaps and unmaps them on free, so every step page-faults them in again: about 14% of a
    small GPT-2's CPU step time here. Process-wide and permanent (the process keeps its peak heap,
    which a training worker reaches again on its next step anyway); idempotent. Returns whether the
    setting took effect (False off glibc).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _allocator_tuned = bool(
            libc.mallopt(_GLIBC_M_MMAP_THRESHOLD, _KEEP_BLOCKS_UP_TO)
            and libc.mallopt(_GLIBC_M_TRIM_THRESHOLD, _KEEP_BLOCKS_UP_TO)
        )
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return _allocator_tuned


def on_passing_thread(work: Callable[..., T], /, *args, **kwargs) -> T:
    """`work(*args, **kwargs)` run on a new thread that ends with it; its result, or its exception
    raised here.

    For torch work on a long-lived thread other than the engine's (a Celery pool thread measuring
    a model, a web thread): a thread that has run torch's parallel (OpenMP) ops keeps its own
    OpenMP thread team for as long as it lives, and once a process holds more OpenMP threads than
    cores, libgomp stops spinning between parallel regions and every small op waits on a wake-up.
    Measured on a 2-core machine: the engine's decode fell from 736 to 550 tok/s while a pool thread
    that had measured one perplexity lived, and came back when it ended. A thread that ends gives
    its team back."""
    # Leaving the `with` block joins the executor's one thread, so it has ended when this returns.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imprint-torch-work") as executor:
        return executor.submit(work, *args, **kwargs).result()
