"""People by name: Slack user ids turned into the names Slack shows, cached in the log.

Reports and summaries name people ("Ona Call"), not ids (``U0ONCALL``). Names come from
``users.info`` once a day per person and are kept in the incident log, so the CLI's
``hokusai incident export`` shows them too, without a Slack token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.incident.store import Incident, IncidentStore

if TYPE_CHECKING:
    from bot.slack.services import Services

log = logging.getLogger(__name__)

NAME_TTL = timedelta(days=1)
# A person in stored text: a Slack mention (<@U123|dana>) or the log's plain form (@U123).
_MENTION = re.compile(r"@([UW][A-Z0-9]{2,})\b")


async def names_for(services: Services, user_ids: Iterable[str | None]) -> dict[str, str]:
    """Names for ``user_ids``: cached ones, and ``users.info`` for the missing or stale.

    A person Slack cannot find (or a failing call) keeps the cached name, else the id.
    """
    wanted = [u for u in dict.fromkeys(user_ids) if u and u[0] in "UW"]
    if not wanted:
        return {}
    store = services.store()
    now = services.clock()
    stale = await asyncio.to_thread(store.stale_people, wanted, now, NAME_TTL)
    fetched: dict[str, str] = {}
    for user_id in stale:
        try:
            fetched[user_id] = await services.outbound.user_name(user_id)
        except SlackApiError as exc:
            log.info("users.info %s: %s", user_id, exc.response.get("error"))
    if fetched:
        await asyncio.to_thread(store.remember_people, fetched, now=now)
    known = await asyncio.to_thread(store.people, wanted)
    return {**known, **fetched}


def people_of(store: IncidentStore, incident: Incident) -> list[str]:
    """Every user id an incident's report mentions: roles, timeline, runs, tickets."""
    with store.session():
        timeline = store.timeline(incident.id)
        ids = [incident.commander, incident.comms, incident.scribe]
        ids += [e.actor for e in timeline]
        ids += [m for e in timeline for m in _MENTION.findall(e.text)]
        ids += [r.requested_by for r in store.runs(incident.id, limit=50, people_only=True)]
        ids += [t.linked_by for t in store.tickets(incident.id)]
    return [i for i in dict.fromkeys(ids) if i]
