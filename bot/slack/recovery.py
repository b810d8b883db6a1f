"""Nothing stays "running" forever: work in flight is written down, and a process that starts
(and every minute after) tells the channel about the work a dead process left behind.

Each process notes the work it starts (a diagnose, a runbook step's checks) in the incident log
under its name, ``host:pid:nonce``, and renews the deadline of what it is still doing. Work is
abandoned when its holder is a process on this host that no longer exists (a ``kill -9``, a
crash, a container restart reusing the pid) or when nobody renewed it past its deadline (a host
that went away). The first process to strike abandoned work off acts on it: the handler for
its kind edits its message to say it was interrupted and offers to run it again.

Example::

    work = await services.in_flight.begin("diagnose", channel=c, message_ts=ts, payload={...})
    ...
    await services.in_flight.end(work)
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.incident.store import InFlight, StoreError

log = logging.getLogger(__name__)

# A holder renews its work every RENEW_EVERY seconds; work nobody renewed for TTL is abandoned.
TTL = 90.0
RENEW_EVERY = 20.0
# How often a running process looks for work another process abandoned.
SWEEP_EVERY = 60.0

# (services, the abandoned work) -> edits its message to say it was interrupted.
Recover = Callable[[Any, InFlight], Awaitable[None]]


def process_name() -> str:
    """This process in the in-flight table: host, pid and a nonce (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(holder: str, me: str) -> bool:
    """True when ``holder`` was a process on this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host: only its deadline can tell
    pid = int(pid_text)
    if pid == os.getpid():
        return holder != me  # this pid's earlier life (a restarted container reuses pids)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class InFlightWork:
    """This process's work in flight, its renewals, and the recovery of abandoned work.

    Args:
        services: the app's ``Services`` (the store, and what the handlers need).
        holder: this process's name (default: :func:`process_name`).
    """

    def __init__(self, services: Any, *, holder: str | None = None) -> None:
        self.services = services
        self.holder = holder or process_name()
        self.handlers: dict[str, Recover] = {}
        self._mine: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    async def begin(
        self,
        kind: str,
        *,
        channel: str | None,
        message_ts: str | None,
        payload: dict[str, Any],
        requested_by: str | None = None,
    ) -> int | None:
        """Note work started; None when the log cannot take it (the work still goes ahead)."""
        store = self.services.store()
        try:
            work_id = await asyncio.to_thread(
                store.begin_in_flight,
                kind,
                holder=self.holder,
                ttl=TTL,
                channel=channel,
                message_ts=message_ts,
                payload=payload,
                requested_by=requested_by,
            )
        except StoreError as exc:
            log.warning("%s in %s not noted as in flight: %s", kind, channel, exc.reason)
            return None
        self._mine.add(work_id)
        return work_id

    async def end(self, work_id: int | None) -> None:
        """The work finished and its message says so."""
        if work_id is None:
            return
        self._mine.discard(work_id)
        try:
            await asyncio.to_thread(self.services.store().end_in_flight, work_id)
        except StoreError as exc:
            log.warning("in-flight work %s not struck off: %s", work_id, exc.reason)

    def abandon(self, work_id: int | None) -> None:
        """Stop renewing work whose message could not be finished: recovery will, later."""
        if work_id is not None:
            self._mine.discard(work_id)

    async def recover(self, now: datetime | None = None) -> list[InFlight]:
        """Act on every piece of abandoned work this process is first to strike off."""
        store = self.services.store()
        now = now or self.services.clock()
        recovered = []
        for work in await asyncio.to_thread(store.in_flight):
            if work.id in self._mine:
                continue
            if work.expires_at > now and not holder_is_gone(work.holder, self.holder):
                continue
            if not await asyncio.to_thread(store.end_in_flight, work.id):
                continue  # another process got there first
            handler = self.handlers.get(work.kind)
            if handler is None:
                log.warning("no recovery for in-flight work of kind %r", work.kind)
                continue
            try:
                await handler(self.services, work)
            except Exception as exc:
                log.warning(
                    "could not mark %s %s interrupted: %s", work.kind, work.id, type(exc).__name__
                )
                continue
            log.info("%s in %s was interrupted (held by %s)", work.kind, work.channel, work.holder)
            recovered.append(work)
        return recovered

    async def renew(self) -> None:
        if self._mine:
            await asyncio.to_thread(self.services.store().renew_in_flight, sorted(self._mine), TTL)

    async def run_forever(self) -> None:
        """Recover at once, then renew this process's work and sweep for abandoned work."""
        since_sweep = SWEEP_EVERY
        while True:
            try:
                if since_sweep >= SWEEP_EVERY:
                    since_sweep = 0.0
                    await self.recover()
                await self.renew()
            except StoreError as exc:
                log.warning("in-flight bookkeeping: %s", exc.reason)
            await asyncio.sleep(RENEW_EVERY)
            since_sweep += RENEW_EVERY

    def start(self) -> asyncio.Task[None]:
        """Start on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run_forever())
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
