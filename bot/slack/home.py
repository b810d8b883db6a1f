"""The App Home tab: open incidents (status, last summary, first failing hop) and recent runs."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.diagnosis.checks.base import HOP_TITLES
from bot.incident.store import IncidentStore
from bot.incident.summaries import first_failing_hop, format_duration, format_time
from bot.mrkdwn import channel
from bot.slack.access import incident_environments

if TYPE_CHECKING:
    from bot.slack.services import Services

MAX_BLOCKS = 100
MAX_INCIDENTS = 15
MAX_RUNS = 10


async def build_home_view(services: Services, user_id: str) -> dict[str, Any]:
    """The ``views.publish`` view for ``user_id``: findings of environments the person may
    not use (``access.environments``) are left out."""
    hidden = await services.access.hidden_environments(user_id)
    return await asyncio.to_thread(home_view, services.store(), services.clock(), hidden)


def home_view(
    store: IncidentStore, now: datetime, hidden: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Build the Home view from the incident log; at most 100 blocks."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Open incidents"}}
    ]
    with store.session():
        incidents = store.list_incidents(open_only=True, limit=MAX_INCIDENTS)
        hops = {i.id: first_failing_hop(store.check_states(i.id)) for i in incidents}
        restricted = {
            i.id: sorted(set(incident_environments(store, i.id)) & hidden) for i in incidents
        }
        runs = [r for r in store.runs(limit=MAX_RUNS * 3, people_only=True) if r.env not in hidden][
            :MAX_RUNS
        ]
    if not incidents:
        blocks.append(_section("No open incidents. :sunny:"))
    for inc in incidents:
        hop = hops[inc.id]
        where = (
            f"first failing hop *{HOP_TITLES.get(hop.layer, hop.layer)}* (`{hop.check_id}`, "
            f"{hop.classification or 'unclassified'})"
            if hop
            else "no failing hop recorded"
        )
        if restricted[inc.id]:
            where = "findings hidden: " + ", ".join(f"`{e}`" for e in restricted[inc.id])
            where += " is restricted (access.environments)"
        last = format_time(inc.last_summary_at) if inc.last_summary_at else "none yet"
        blocks.append(
            _section(
                f"*#{inc.id} {inc.title}* in {channel(inc.channel_id)}\n"
                f"SEV{inc.severity} · *{inc.status}* · {format_duration(inc.duration(now))} · "
                f"{where}\nLast summary: {last}"
            )
        )
    blocks += [
        {"type": "divider"},
        {"type": "header", "text": {"type": "plain_text", "text": "Recent diagnose runs"}},
    ]
    if not runs:
        blocks.append(_section("No diagnose runs yet. Try `/hokusai diagnose` in a channel."))
    for run in runs:
        result = (
            f":x: {HOP_TITLES.get(run.first_failure_layer or '', run.first_failure_layer)} "
            f"(`{run.first_failure_id}`)"
            if run.first_failure_id
            else ":white_check_mark: no failing hop"
        )
        incident = f" · incident #{run.incident_id}" if run.incident_id else ""
        where_run = f" in {channel(run.channel)}" if run.channel else ""
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{format_time(run.started_at)}{where_run} · {run.env or '-'} · "
                        f"{result}{incident}",
                    }
                ],
            }
        )
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
