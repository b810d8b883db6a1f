"""Work off the event loop that answers Slack: CPU work, and the checks' network chatter.

The event loop only parses, verifies, acks and schedules. Anything that may take more than a
few milliseconds of Python runs in one small pool of threads, so at most ``CPU_THREADS`` such
jobs compete with the loop for the interpreter at any moment, however many diagnoses run.

The checks of a run speak HTTP, DNS and AWS by the dozen: each probe is a connection, a
request and a parse in httpx and anyio, cheap alone and most of the loop's work during a burst
of diagnoses. They run on a second event loop in its own thread (``on_side_loop``), so a
``/hokusai help`` arriving meanwhile waits for none of them.

Example::

    text = await offload(redactor.redact_text, big_text)
    report = await on_side_loop(runner.run(scopes))
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine
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


_side: asyncio.AbstractEventLoop | None = None


def side_loop() -> asyncio.AbstractEventLoop:
    """The process's second event loop, running in its own daemon thread (started on first
    use; it lives as long as the process, like the CPU pool)."""
    global _side
    with _pool_lock:
        if _side is None or _side.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="hokusai-side-loop", daemon=True).start()
            _side = loop
        return _side


async def on_side_loop(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on the side loop and wait for it here. Cancelling the caller cancels it.

    Anything ``coro`` shares with the calling loop must be safe across threads: callbacks
    into the caller go through ``loop.call_soon_threadsafe`` (see ``relay``).
    """
    future = asyncio.run_coroutine_threadsafe(coro, side_loop())
    return await asyncio.wrap_future(future)


def relay(callback: Callable[[_T], Any] | None) -> Callable[[_T], None] | None:
    """``callback`` as called from the side loop: it runs on the calling loop, in order."""
    if callback is None:
        return None
    here = asyncio.get_running_loop()

    def call(value: _T) -> None:
        here.call_soon_threadsafe(callback, value)

    return call
