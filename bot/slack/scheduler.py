"""Work on a clock: periodic summaries, ticket polls, and archiving closed incidents' channels.

- Summaries every N minutes while an incident is open (and on status changes, via
  ``post_summary``). Several bot processes may share one database; a lease row decides which
  one posts each periodic summary, and the incident's ``last_summary_at`` is read again after
  the lease is won, so a summary is never posted twice.
- Ticket polls (``incidents.ticket_poll_minutes``): an open incident's linked tickets are read
  from the tracker, at most ``MAX_POLLS_PER_TICK`` a tick (20 a minute, under Linear's 1,500 an
  hour and Jira Cloud's per-user limits), pausing after a 429. A ticket seen turning Done gets
  its checks re-run (``bot.incident.verify``); the turn is decided in one transaction, so only
  one process re-checks it.
- Archiving (``incidents.archive_after_hours``): see ``bot.incident.channel.archive_closed``.

Example::

    scheduler = SummaryScheduler(services)
    scheduler.start()                      # a background task on the running loop
    await post_summary(services, incident_id, reason="status")
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import metrics
from bot.incident.channel import archive_closed, refresh_topic
from bot.incident.store import Incident, StoreError, TicketLink
from bot.incident.summaries import build_summary
from bot.incident.verify import POLLED, tracker, verify_done
from bot.tickets import TicketProvider, TrackerError

if TYPE_CHECKING:
    from bot.slack.services import Services

log = logging.getLogger(__name__)

MAX_POLLS_PER_TICK = 10
RATE_LIMIT_PAUSE = timedelta(minutes=1)


def summary_due(incident: Incident, now: datetime, every_minutes: int) -> bool:
    """True when an open incident has gone ``every_minutes`` without a summary."""
    if not incident.is_open or every_minutes <= 0:
        return False
    last = incident.last_summary_at or incident.started_at
    return now - last >= timedelta(minutes=every_minutes)


async def post_summary(
    services: Services,
    incident_id: int,
    *,
    reason: str = "requested",
    now: datetime | None = None,
    channel: str | None = None,
    only_if_changed: bool = False,
) -> str | None:
    """Build and post the summary in the incident's channel; remember when. Returns the ts.

    With ``only_if_changed``, nothing is posted (None) when nothing changed since the last one:
    a summary says what is new, and a second identical one is noise.
    """
    now = now or services.clock()
    store = services.store()
    summary = await asyncio.to_thread(build_summary, store, incident_id, now, reason=reason)
    if only_if_changed and summary.changes.empty and summary.changes.since is not None:
        return None
    ts = await services.outbound.post(
        channel or summary.incident.channel_id, summary.text(), summary.blocks()
    )
    await asyncio.to_thread(store.mark_summary_posted, incident_id, now)
    return ts


class SummaryScheduler:
    """Posts periodic summaries for open incidents; safe to run in every bot process.

    Args:
        services: the app's services (store, outbound, config, clock).
        holder: this process's name in the lease table (default: host, pid and a nonce).
        tick_seconds: how often to look for due incidents.
        lease_ttl: how long a won lease keeps other processes off one incident's summary.
    """

    def __init__(
        self,
        services: Services,
        *,
        holder: str | None = None,
        tick_seconds: float = 30.0,
        lease_ttl: float = 120.0,
    ) -> None:
        self.services = services
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.tick_seconds = tick_seconds
        self.lease_ttl = lease_ttl
        self._task: asyncio.Task[None] | None = None
        # Incidents whose due summary had nothing new: not looked at again before this time.
        self._quiet_until: dict[int, datetime] = {}
        self._polls_paused_until: datetime | None = None

    @property
    def every_minutes(self) -> int:
        return self.services.config.incidents.summary_every_minutes

    async def tick(self, now: datetime | None = None) -> list[int]:
        """Post every summary that is due and whose lease this process wins; their ids."""
        now = now or self.services.clock()
        # Slack redelivers within minutes; a day of request keys is plenty to dedupe on.
        await asyncio.to_thread(self.services.store().prune_requests, now - timedelta(days=1))
        every = self.every_minutes
        if every <= 0:
            return []
        store = self.services.store()
        posted: list[int] = []
        for incident in await asyncio.to_thread(store.open_incidents):
            if not summary_due(incident, now, every):
                continue
            if now < self._quiet_until.get(incident.id, now):
                continue
            name = f"summary:{incident.id}"
            won = await asyncio.to_thread(
                store.try_lease,
                name,
                self.holder,
                self.lease_ttl,
                incident_id=incident.id,
                now=now,
            )
            if not won:
                continue
            # Another process may have posted between our read and our lease: look again.
            fresh = await asyncio.to_thread(store.incident, incident.id)
            if not summary_due(fresh, now, every):
                continue
            try:
                ts = await post_summary(
                    self.services, incident.id, reason="scheduled", now=now, only_if_changed=True
                )
            except Exception as exc:  # one incident's failure must not stop the others
                log.warning("summary for incident %s failed: %s", incident.id, type(exc).__name__)
                await asyncio.to_thread(store.release_lease, name, self.holder)
                continue
            if ts is None:  # nothing new since the last summary: look again in N minutes
                self._quiet_until[incident.id] = now + timedelta(minutes=every)
                continue
            self._quiet_until.pop(incident.id, None)
            posted.append(incident.id)
        held = await asyncio.to_thread(store.leases_held, self.holder, "summary:")
        metrics.LEASES.labels("summary").set(held)
        return posted

    async def run_forever(self) -> None:
        """Tick until cancelled; store errors are logged and retried on the next tick."""
        while True:
            for step in (self.tick, self.poll_tickets, self.archive):
                try:
                    await step()
                except StoreError as exc:
                    log.warning("scheduler (%s): %s", step.__name__, exc)
            await asyncio.sleep(self.tick_seconds)

    async def poll_tickets(self, now: datetime | None = None) -> list[str]:
        """Read due tickets from the tracker; re-check those that turned Done. Their keys."""
        now = now or self.services.clock()
        minutes = self.services.config.incidents.ticket_poll_minutes
        provider = tracker(self.services)
        if minutes <= 0 or provider is None:
            return []
        if self._polls_paused_until is not None and now < self._polls_paused_until:
            return []
        store = self.services.store()
        due = await asyncio.to_thread(store.tickets_to_poll, now, timedelta(minutes=minutes))
        turned: list[str] = []
        for link in [t for t in due if t.provider == provider.name][:MAX_POLLS_PER_TICK]:
            try:
                ticket = await provider.get(link.key)
            except TrackerError as exc:
                if exc.kind == "rate_limited":
                    self._polls_paused_until = now + RATE_LIMIT_PAUSE
                    log.info("ticket polls paused: %s", exc)
                    break
                log.info("ticket %s not polled: %s", link.key, exc)
                continue
            became_done = await asyncio.to_thread(
                lambda t=ticket, lk=link: store.record_ticket_poll(
                    lk.incident_id, lk.provider, lk.key, status=t.status, done=t.done, now=now
                )
            )
            if became_done:
                await self._turned_done(provider, link)
                turned.append(link.key)
        return turned

    async def _turned_done(self, provider: TicketProvider, link: TicketLink) -> None:
        """Re-check a ticket that just turned Done; a pass gets one line, a failure the call-out."""
        store = self.services.store()
        incident = await asyncio.to_thread(store.incident, link.incident_id)
        try:
            result = await verify_done(
                self.services, incident, provider, link, actor=None, trigger=POLLED
            )
        except Exception as exc:  # one ticket's failure must not stop the others
            log.warning("re-check of %s failed: %s", link.key, type(exc).__name__)
            return
        if result.recheck is not None and result.recheck.verdict == "confirmed":
            await self.services.outbound.post(
                incident.channel_id,
                f":white_check_mark: {link.key} turned Done and its checks pass now.",
            )
        await refresh_topic(self.services, incident.id)

    async def archive(self, now: datetime | None = None) -> list[int]:
        """Archive closed incidents' channels that are due (``incidents.archive_after_hours``)."""
        return await archive_closed(self.services, now or self.services.clock())

    def start(self) -> asyncio.Task[None]:
        """Start ticking on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run_forever())
        return self._task

    async def stop(self) -> None:
        """Stop ticking and hand this process's leases back, so another replica takes over at
        once instead of waiting for them to expire (a graceful shutdown, SIGTERM)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await asyncio.to_thread(self.services.store().release_leases, self.holder)
        except StoreError as exc:
            log.warning("summary scheduler: could not hand leases back: %s", exc)
        metrics.LEASES.labels("summary").set(0)
