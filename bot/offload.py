"""CPU work off the event loop: redaction, rendering, parsing large answers.

The event loop only parses, verifies, acks and schedules. Anything that may take more than a
few milliseconds of Python runs in one small pool of threads, so at most ``CPU_THREADS`` such
jobs compete with the loop for the interpreter at any moment, however many diagnoses run.

Example::

    text = await offload(redactor.redact_text, big_text)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

_T = TypeVar("_T")

# Two, not one per core: Python runs one thread at a time, and the loop needs its turns too.
CPU_THREADS = 2

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def cpu_pool() -> ThreadPoolExecutor:
    """The process's pool for CPU work (built on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=CPU_THREADS, thread_name_prefix="hokusai-cpu")
        return _pool


async def offload(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """Run ``fn(*args, **kwargs)`` in the CPU pool, with the caller's context variables."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(cpu_pool(), call)
