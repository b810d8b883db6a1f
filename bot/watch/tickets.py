"""A watch keeps the tracker honest: Done while still failing is said at once; recovery is noted.

Each linked ticket is tied to the checks that failed when it was linked. While a watch follows
any of those checks, a ticket the tracker calls done while they still fail gets one line in the
watch's thread, one comment on the ticket and one timeline entry; when the watch recovers, every
such ticket gets a comment saying so. Each is said once per watch (``TicketNotes``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.tickets import TicketProvider, TrackerError, provider_from_settings
from bot.watch.model import clock, strip

if TYPE_CHECKING:
    from bot.incident.store import Incident, TicketLink, WatchRow
    from bot.watch.engine import WatchEngine

log = logging.getLogger(__name__)


@dataclass
class TicketNotes:
    """Which tickets this watch has already spoken about."""

    done_while_failing: list[str] = field(default_factory=list)
    recovery_noted: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return {
            "done_while_failing": list(self.done_while_failing),
            "recovery_noted": list(self.recovery_noted),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> TicketNotes:
        data = data or {}
        return cls(
            list(data.get("done_while_failing") or []), list(data.get("recovery_noted") or [])
        )


def tracker(services: Any) -> TicketProvider | None:
    """The configured tracker (tests and the sandbox may hand one in as ``tracker``)."""
    given = services.overrides.get("tracker")
    if given is not None:
        return given
    return provider_from_settings(services.settings, services.config)


def watched_checks(link: TicketLink, watched: list[str]) -> list[str]:
    """The checks of a ticket this watch follows (all of them for a ticket linked with none)."""
    if not link.check_ids:
        return list(watched)
    return [c for c in link.check_ids if c in watched]


async def review_tickets(
    services: Any,
    row: WatchRow,
    incident: Incident,
    engine: WatchEngine,
    notes: TicketNotes,
    *,
    recovered_now: bool,
) -> list[str]:
    """Look at the incident's tickets; returns the notes said in the channel (for the message)."""
    provider = tracker(services)
    if provider is None:
        return []
    store = services.store()
    links = await asyncio.to_thread(store.tickets, incident.id)
    failing = set(engine.failing_now())
    said: list[str] = []
    for link in links:
        checks = watched_checks(link, engine.check_ids)
        if not checks or link.provider != provider.name:
            continue
        if recovered_now and link.key not in notes.recovery_noted:
            await _comment(
                provider,
                link.key,
                f"Hokusai watch #{row.id}: {', '.join(checks)} recovered — "
                f"{engine.headline.detail}.",
            )
            notes.recovery_noted.append(link.key)
            continue
        still = [c for c in checks if c in failing]
        if not still or link.key in notes.done_while_failing:
            continue
        try:
            ticket = await provider.get(link.key)
        except TrackerError as exc:
            log.info("watch #%s: could not read %s: %s", row.id, link.key, exc)
            continue
        await asyncio.to_thread(
            store.update_ticket_state,
            incident.id,
            link.provider,
            link.key,
            status=ticket.status,
            done=ticket.done,
        )
        if not ticket.done:
            continue
        line = done_while_failing_text(link.key, ticket.status, still, engine)
        if row.message_ts:
            await services.outbound.post(row.channel_id, line, thread_ts=row.message_ts)
        await _comment(provider, link.key, _plain(line))
        await asyncio.to_thread(
            store.add_timeline,
            incident.id,
            "watch",
            f"{link.key} is {ticket.status or 'Done'} but {', '.join(still)} still fail "
            f"(watch #{row.id})",
            ref=link.key,
            now=services.clock(),
        )
        notes.done_while_failing.append(link.key)
        said.append(f":warning: {link.key} is marked {ticket.status or 'Done'} but still fails")
    return said


def done_while_failing_text(
    key: str, status: str | None, still: list[str], engine: WatchEngine
) -> str:
    lines = [f":warning: *{key} is marked {status or 'Done'}, but its checks still fail.*"]
    for cid in still:
        track = engine.tracks[cid]
        last = f", last failure {clock(track.last_failure_at)}" if track.last_failure_at else ""
        lines.append(f"`{cid}` {strip(track, 10)}{last}: {track.summary}")
    return "\n".join(lines)


def _plain(text: str) -> str:
    return text.replace(":warning: ", "").replace("*", "").replace("`", "")


async def _comment(provider: TicketProvider, key: str, body: str) -> None:
    try:
        await provider.comment(key, body)
    except TrackerError as exc:
        log.info("could not comment on %s: %s", key, exc)
