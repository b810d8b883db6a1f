"""Resolve what is fixed: re-run what still failed and read the tickets before resolving.

``incident resolve`` re-runs the checks failing in the incident's latest findings and asks the
tracker about the linked tickets. When every re-run check passes and no ticket is open, the
incident is resolved. Otherwise the channel sees what still fails, with its evidence, and is
asked *Keep open* or *Resolve anyway*; the question and the choice go on the timeline.

Example::

    check = await check_before_resolve(services, incident, actor="U1")
    if not check.clear:
        text, blocks = prompt(check)
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot import mrkdwn
from bot.incident.store import Incident, TicketLink
from bot.incident.verify import recheck, tracker
from bot.tickets import TrackerError

if TYPE_CHECKING:
    from bot.slack.services import Services

RESOLVE_ANYWAY = "incident_resolve_anyway"
KEEP_OPEN = "incident_keep_open"
MAX_LISTED = 6
MAX_EVIDENCE = 300


@dataclass(frozen=True)
class ResolveCheck:
    """What stands between an incident and *resolved*."""

    incident: Incident
    rechecked: list[str]
    still_failing: list[dict[str, Any]]
    unchecked: list[str]
    open_tickets: list[TicketLink]

    @property
    def clear(self) -> bool:
        return not self.still_failing and not self.open_tickets

    def obstacles(self) -> str:
        """One line for the timeline: ``still failing: a, b; open tickets: ENG-1``."""
        parts = []
        if self.still_failing:
            parts.append("still failing: " + ", ".join(c["id"] for c in self.still_failing))
        if self.open_tickets:
            parts.append("open tickets: " + ", ".join(t.key for t in self.open_tickets))
        return "; ".join(parts)

    def passed(self) -> str:
        """How the re-check went, for the resolve's timeline entry."""
        if not self.rechecked:
            return "no failing check to re-run"
        ran = len(self.rechecked) - len(self.unchecked)
        text = (
            f"re-ran {len(self.rechecked)} failing check{'s' if len(self.rechecked) != 1 else ''}"
        )
        text += f", {ran} now pass{'es' if ran == 1 else ''}"
        if self.unchecked:
            text += f" ({', '.join(self.unchecked)} could not run)"
        return text


async def check_before_resolve(
    services: Services, incident: Incident, *, actor: str | None
) -> ResolveCheck:
    """Re-run the incident's failing checks and refresh its tickets' states."""
    store = services.store()
    states = await asyncio.to_thread(store.check_states, incident.id)
    failing_ids = [s.check_id for s in states if s.failing]
    result = None
    if failing_ids:
        result = await recheck(services, incident, failing_ids, actor=actor)
    tickets = await _fresh_tickets(services, incident)
    return ResolveCheck(
        incident=incident,
        rechecked=failing_ids,
        still_failing=result.failing if result else [],
        unchecked=result.unchecked if result else [],
        open_tickets=[t for t in tickets if not t.done],
    )


async def _fresh_tickets(services: Services, incident: Incident) -> list[TicketLink]:
    """The linked tickets, with the state the tracker reports now where it can be asked."""
    store = services.store()
    links = await asyncio.to_thread(store.tickets, incident.id)
    provider = tracker(services)
    for link in links:
        if link.done or provider is None or link.provider != provider.name:
            continue
        try:
            ticket = await provider.get(link.key)
        except TrackerError:
            continue  # the stored state stands; an unreachable tracker does not block
        await asyncio.to_thread(
            store.update_ticket_state,
            incident.id,
            link.provider,
            link.key,
            status=ticket.status,
            done=ticket.done,
        )
    return await asyncio.to_thread(store.tickets, incident.id)


def prompt(check: ResolveCheck) -> tuple[str, list[dict[str, Any]]]:
    """The question posted in the channel: what still fails, its evidence, two buttons."""
    inc = check.incident
    text = f"#{inc.id} is not fixed yet ({check.obstacles()}). Resolve anyway?"
    lines = [f":warning: *#{inc.id} is not fixed yet.*"]
    if check.still_failing:
        lines.append(f"Re-ran {len(check.rechecked)} failing check(s); still failing:")
        for c in check.still_failing[:MAX_LISTED]:
            lines.append(f"• `{c['id']}` {c.get('status', 'fail')}: {c.get('summary') or ''}")
            evidence = _evidence(c.get("evidence"))
            if evidence:
                lines.append(f"   evidence: {evidence}")
        if len(check.still_failing) > MAX_LISTED:
            lines.append(f"• …and {len(check.still_failing) - MAX_LISTED} more")
    for t in check.open_tickets[:MAX_LISTED]:
        label = f"{t.key} “{t.title}”" if t.title else t.key
        ref = mrkdwn.link(t.url, label) if t.url else label
        lines.append(f"• Ticket {ref} is still {t.status or 'open'}")
    value = json.dumps({"incident_id": inc.id})
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        {
            "type": "actions",
            "block_id": f"resolve-{inc.id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": KEEP_OPEN,
                    "text": {"type": "plain_text", "text": "Keep open"},
                    "style": "primary",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": RESOLVE_ANYWAY,
                    "text": {"type": "plain_text", "text": "Resolve anyway"},
                    "value": value,
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Resolve anyway?"},
                        "text": {
                            "type": "plain_text",
                            "text": f"#{inc.id} will be resolved while {check.obstacles()}."[:300],
                        },
                        "confirm": {"type": "plain_text", "text": "Resolve"},
                        "deny": {"type": "plain_text", "text": "Keep open"},
                    },
                },
            ],
        },
    ]
    return text, blocks


def answered(question: dict[str, Any], line: str) -> tuple[str, list[dict[str, Any]]]:
    """The question message once answered: its text kept, the buttons replaced by ``line``."""
    kept = [b for b in question.get("blocks") or [] if b.get("type") != "actions"]
    kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    return question.get("text") or line, kept


def _evidence(evidence: Any) -> str:
    if not isinstance(evidence, dict) or not evidence:
        return ""
    text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in evidence.items())
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"
