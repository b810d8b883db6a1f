"""A first-come, first-served limit on how many runs of one kind go at once in this process.

Example::

    queue = RunQueue(limit=3)
    ticket = queue.join()
    if not ticket.started:
        show(f"queued, {queue.ahead(ticket)} ahead")
    async with queue.running(ticket):
        await run()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Ticket:
    """One run's place: started at once, or waiting for a slot."""

    def __init__(self, started: bool) -> None:
        self.started = started
        self.waited = not started
        self._go: asyncio.Future[None] | None = None


class RunQueue:
    """At most ``limit`` runs at once; the others wait in arrival order."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a run queue needs room for at least one run")
        self.limit = limit
        self.active = 0
        self._waiting: list[Ticket] = []

    def join(self) -> Ticket:
        """Take a slot if one is free and nobody is waiting; otherwise a place in line."""
        if self.active < self.limit and not self._waiting:
            self.active += 1
            return Ticket(started=True)
        ticket = Ticket(started=False)
        ticket._go = asyncio.get_running_loop().create_future()
        self._waiting.append(ticket)
        return ticket

    def ahead(self, ticket: Ticket) -> int:
        """How many runs start before this one (0 once it has started)."""
        return self._waiting.index(ticket) if ticket in self._waiting else 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def abandon(self, ticket: Ticket) -> None:
        """Give up a place that will never run (its message could not be posted)."""
        if ticket in self._waiting:
            self._waiting.remove(ticket)
        elif ticket.started:
            self._release()

    @contextlib.asynccontextmanager
    async def running(self, ticket: Ticket) -> AsyncIterator[None]:
        """Wait for the ticket's turn, hold the slot for the block, then hand it on."""
        if not ticket.started:
            assert ticket._go is not None
            try:
                await ticket._go
            except asyncio.CancelledError:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                elif ticket._go.done() and not ticket._go.cancelled():
                    self._release()  # woken and cancelled at once: pass the slot on
                raise
            ticket.started = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        if self._waiting:
            nxt = self._waiting.pop(0)
            assert nxt._go is not None
            nxt._go.set_result(None)  # the slot passes straight to the next in line
        else:
            self.active -= 1
