"""An incident's Slack channel: its name, creation, the topic that tracks the incident, and
archiving once it has been closed for a while.

The topic reads ``Investigating · SEV1 · Commander: Ona Call · Ticket: ENG-12`` and is set again
only when that text changes (Slack posts a line in the channel for every topic change).
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.incident.people import names_for
from bot.incident.store import Incident, TicketLink
from bot.slack.commanding import unescape

if TYPE_CHECKING:
    from bot.slack.services import Services

log = logging.getLogger(__name__)

MAX_CHANNEL_NAME = 80
MAX_TOPIC = 250
_NAME_ATTEMPTS = 5


def channel_name(prefix: str, title: str, when: datetime) -> str:
    """``inc-20260131-registry-returns-404``: Slack's rules (lowercase, no spaces, <= 80)."""
    # "ünïcødé" -> "unicode": fold accents to ASCII before dropping what Slack refuses.
    folded = unicodedata.normalize("NFKD", unescape(title)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    base = f"{prefix.lower().strip('-') or 'inc'}-{when:%Y%m%d}"
    if len(slug) > 40:  # cut at a word boundary, unless that would leave little of the title
        cut = slug[:41].rsplit("-", 1)[0]
        slug = cut if len(cut) >= 20 else slug[:40]
    slug = slug.strip("-")
    return f"{base}-{slug}"[:MAX_CHANNEL_NAME] if slug else base


async def create_channel(services: Services, name: str, *, private: bool) -> tuple[str, str]:
    """Create the channel, numbering the name when it is taken; ``(id, name)``.

    Raises:
        SlackApiError: Slack refused (other than ``name_taken``), or five names were taken.
    """
    for attempt in range(1, _NAME_ATTEMPTS + 1):
        candidate = name if attempt == 1 else f"{name[: MAX_CHANNEL_NAME - 3]}-{attempt}"
        try:
            return await services.outbound.create_channel(candidate, private=private), candidate
        except SlackApiError as exc:
            if exc.response.get("error") != "name_taken" or attempt == _NAME_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def topic_text(incident: Incident, names: dict[str, str], tickets: list[TicketLink]) -> str:
    """What the channel topic says about the incident, in at most 250 characters."""
    parts = [incident.status.capitalize(), f"SEV{incident.severity}"]
    if incident.commander:
        parts.append(f"Commander: {names.get(incident.commander, incident.commander)}")
    open_first = sorted(tickets, key=lambda t: t.done)
    if open_first:
        keys = ", ".join(t.key + (" (done)" if t.done else "") for t in open_first[:3])
        parts.append(f"Ticket{'s' if len(tickets) > 1 else ''}: {keys}")
    text = " · ".join(parts)
    return text if len(text) <= MAX_TOPIC else text[: MAX_TOPIC - 1] + "…"


async def refresh_topic(services: Services, incident_id: int) -> None:
    """Set the incident channel's topic if what it should say has changed.

    Only a channel made for the incident gets a topic. One that cannot be set (the bot left
    the channel, it was archived) is logged: the incident goes on without it.
    """
    store = services.store()
    incident = await asyncio.to_thread(store.incident, incident_id)
    # A channel the incident was declared ``here`` in has a topic of its own: leave it alone.
    if not incident.has_own_channel or incident.archived_at:
        return
    tickets = await asyncio.to_thread(store.tickets, incident_id)
    names = await names_for(services, [incident.commander])
    topic = topic_text(incident, names, tickets)
    if topic == incident.topic:
        return
    try:
        await services.outbound.set_topic(incident.channel_id, topic)
    except SlackApiError as exc:
        log.info("topic of incident %s not set: %s", incident_id, exc.response.get("error"))
        return
    await asyncio.to_thread(store.set_topic, incident_id, topic)


async def archive_closed(services: Services, now: datetime) -> list[int]:
    """Archive the channels of incidents closed ``incidents.archive_after_hours`` ago.

    Only channels made for an incident are archived, never one it was declared ``here`` in.
    Returns the ids of the incidents whose channel this call archived.
    """
    hours = services.config.incidents.archive_after_hours
    if hours <= 0:
        return []
    store = services.store()
    archived: list[int] = []
    for incident in await asyncio.to_thread(store.archivable, now, timedelta(hours=hours)):
        try:
            await services.outbound.archive(incident.channel_id)
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in ("ratelimited", "fatal_error", "internal_error"):
                continue  # try again on a later tick
            note = f"Channel not archived: Slack answered {error}"
            await asyncio.to_thread(
                lambda i=incident, n=note: store.mark_archived(i.id, now=now, note=n)
            )
            continue
        await asyncio.to_thread(lambda i=incident: store.mark_archived(i.id, now=now))
        archived.append(incident.id)
    return archived
