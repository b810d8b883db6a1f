"""`/hokusai ticket`: tie tracker tickets to the incident and check that "Done" means fixed.

``verify`` asks the tracker about every linked ticket; for each one it calls done, it re-runs
the checks that were failing when the ticket was linked (``bot.incident.verify``, which the
scheduler also uses when it sees a ticket turn Done). A ticket closed while its failure
persists is called out in the channel, commented on in the tracker and put on the timeline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot import mrkdwn
from bot.incident.channel import refresh_topic
from bot.incident.store import Incident, StoreError, TicketLink
from bot.incident.verify import Verification, tracker, verify_ticket
from bot.slack.commanding import CommandRequest, Reply, UsageError
from bot.tickets import TicketProvider, TrackerError

if TYPE_CHECKING:
    from bot.slack.services import Services

NAME = "ticket"
SUMMARY = "Link or file tickets for the incident; verify that Done tickets really fixed it."
USAGE = "ticket link KEY\nticket create TITLE\nticket list\nticket verify"
INLINE = False

ACTIONS = ("link", "create", "list", "verify")
MAX_EVIDENCE_CHARS = 1500
# What any tracker's key looks like (ENG-123, OPS-12) or a Linear issue's UUID; each tracker
# checks its own form again before a request (``check_key``).
TICKET_KEY = re.compile(
    r"^([A-Za-z][A-Za-z0-9_]{0,254}-[0-9]{1,18}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TicketArgs:
    action: str
    value: str = ""


def parse(args: list[str]) -> TicketArgs:
    if not args:
        raise UsageError("Say what to do: " + ", ".join(f"`{a}`" for a in ACTIONS))
    action, rest = args[0].lower(), args[1:]
    if action not in ACTIONS:
        raise UsageError(f"`ticket {action}` is not a thing I do")
    if action == "link":
        if len(rest) != 1:
            raise UsageError("`ticket link` takes one ticket key, e.g. `ticket link ENG-123`")
        key = rest[0].strip()
        if not TICKET_KEY.match(key):
            raise UsageError(
                f"`{key[:40]}` is not a ticket key: use one like `ENG-123` or `OPS-12`"
            )
        return TicketArgs("link", key if len(key) == 36 else key.upper())
    if action == "create":
        title = " ".join(rest).strip()
        if not title:
            raise UsageError("`ticket create` needs a title")
        return TicketArgs("create", title)
    if rest:
        raise UsageError(f"`ticket {action}` takes no arguments")
    return TicketArgs(action)


async def handle(args: TicketArgs, req: CommandRequest, services: Services) -> Reply | None:
    try:
        store = services.store()
        incident = await asyncio.to_thread(store.incident_for_channel, req.channel_id)
        if incident is None:
            return Reply(
                "No incident in this channel. Declare one with `/hokusai incident declare TITLE`."
            )
        # Every action shows or re-runs the incident's findings (verify re-runs its checks):
        # the rules of the environments they come from apply, like diagnose's.
        await services.access.require_incident(store, incident.id, req.user_id)
        provider = tracker(services)
        if args.action == "link":
            return await link(services, req, incident, provider, args.value)
        if args.action == "create":
            return await create(services, req, incident, provider, args.value)
        if args.action == "list":
            return await list_tickets(services, incident, provider)
        return await verify(services, req, incident, provider)
    except StoreError as exc:
        return Reply(f":warning: {exc}")


async def link(
    services: Services,
    req: CommandRequest,
    incident: Incident,
    provider: TicketProvider | None,
    key: str,
) -> Reply:
    store = services.store()
    title = url = status = None
    done = False
    note = ""
    if provider is not None:
        try:
            key = provider.check_key(key)  # before any request: a key is part of the URL
            ticket = await provider.get(key)
        except TrackerError as exc:
            if exc.kind == "invalid":
                return Reply(f":warning: {exc}. Nothing was linked.")
            if exc.kind == "not_found":
                return Reply(f":warning: {exc}. Nothing was linked.")
            note = f" (could not read it from the tracker: {exc})"
        else:
            key, title, url, status, done = (
                ticket.key,
                ticket.title,
                ticket.url,
                ticket.status,
                ticket.done,
            )
    link_row = await asyncio.to_thread(
        lambda: store.link_ticket(
            incident.id,
            provider=provider.name if provider else "manual",
            key=key,
            title=title,
            url=url,
            status=status,
            done=done,
            actor=req.user_id,
            now=services.clock(),
        )
    )
    await refresh_topic(services, incident.id)
    checks = ", ".join(f"`{c}`" for c in link_row.check_ids) or "no failing checks yet"
    return Reply(
        f":link: Linked {_ticket_ref(link_row)} to #{incident.id} with {checks}{note}.",
        ephemeral=False,
    )


async def create(
    services: Services,
    req: CommandRequest,
    incident: Incident,
    provider: TicketProvider | None,
    title: str,
) -> Reply:
    if provider is None:
        return Reply(
            ":warning: No tracker is configured (set LINEAR_API_KEY, or JIRA_BASE_URL, "
            "JIRA_EMAIL and JIRA_API_TOKEN). Link an existing ticket with `ticket link KEY`."
        )
    store = services.store()
    findings = await asyncio.to_thread(store.findings, incident.id, failing_only=True)
    try:
        # The provider redacts what it sends (bot.tickets.base.outgoing).
        ticket = await provider.create(title, ticket_body(incident, findings))
    except TrackerError as exc:
        return Reply(f":warning: {exc}. No ticket was created; the incident log is unchanged.")
    link_row = await asyncio.to_thread(
        lambda: store.link_ticket(
            incident.id,
            provider=provider.name,
            key=ticket.key,
            title=ticket.title,
            url=ticket.url,
            status=ticket.status,
            done=ticket.done,
            check_ids=[f.check_id for f in findings],
            actor=req.user_id,
            now=services.clock(),
        )
    )
    await refresh_topic(services, incident.id)
    return Reply(
        f":ticket: Filed {_ticket_ref(link_row)} for #{incident.id} with "
        f"{len(findings)} failing finding{'s' if len(findings) != 1 else ''}.",
        ephemeral=False,
    )


def ticket_body(incident: Incident, findings: list[Any]) -> str:
    """What a new ticket says: the incident and its failing findings with evidence."""
    lines = [
        f"Incident #{incident.id}: {incident.title} (SEV{incident.severity}, {incident.status})",
        "",
    ]
    if not findings:
        lines.append("No failing checks are recorded yet.")
    for f in findings:
        lines += [
            f"{f.status.upper()} {f.check_id} ({f.classification or 'unclassified'}): {f.summary}"
        ]
        if f.hint:
            lines.append(f"Hint: {f.hint}")
        if f.evidence:
            evidence = json.dumps(f.evidence, indent=2, sort_keys=True, default=str)
            lines += ["```", evidence[:MAX_EVIDENCE_CHARS], "```"]
        lines.append("")
    lines.append("Filed by Hokusai from the incident log; `/hokusai ticket verify` re-checks it.")
    return "\n".join(lines)


async def _refresh(provider: TicketProvider | None, link_row: TicketLink) -> tuple[Any, str | None]:
    if provider is None or link_row.provider != provider.name:
        return None, None
    try:
        return await provider.get(link_row.key), None
    except TrackerError as exc:
        return None, str(exc)


async def list_tickets(
    services: Services, incident: Incident, provider: TicketProvider | None
) -> Reply:
    store = services.store()
    links = await asyncio.to_thread(store.tickets, incident.id)
    if not links:
        return Reply(
            f"No tickets linked to #{incident.id}. `ticket link KEY` or `ticket create TITLE`."
        )
    fresh = await asyncio.gather(*(_refresh(provider, t) for t in links))
    lines = [f"*Tickets of #{incident.id}*"]
    for link_row, (ticket, error) in zip(links, fresh, strict=True):
        if ticket is not None:
            await asyncio.to_thread(
                store.update_ticket_state,
                incident.id,
                link_row.provider,
                link_row.key,
                status=ticket.status,
                done=ticket.done,
            )
            state = ticket.status or ("done" if ticket.done else "open")
        else:
            state = (link_row.status or "unknown") + (f" (tracker: {error})" if error else "")
        checks = ", ".join(f"`{c}`" for c in link_row.check_ids) or "-"
        lines.append(f"• {_ticket_ref(link_row)} — {state} — checks {checks}")
    return Reply("\n".join(lines))


async def verify(
    services: Services, req: CommandRequest, incident: Incident, provider: TicketProvider | None
) -> Reply | None:
    """Verify every linked ticket (``bot.incident.verify``) and answer with one line each."""
    if provider is None:
        return Reply(":warning: No tracker is configured, so I cannot tell which tickets are done.")
    links = await asyncio.to_thread(services.store().tickets, incident.id)
    if not links:
        return Reply(f"No tickets linked to #{incident.id}.")
    results = [
        await verify_ticket(
            services, incident, provider, link_row, actor=req.user_id, channel=req.channel_id
        )
        for link_row in links
    ]
    lines = [f"*Ticket check for #{incident.id}*"] + [_verification_line(r) for r in results]
    await refresh_topic(services, incident.id)
    return Reply("\n".join(lines), ephemeral=False)


def _verification_line(result: Verification) -> str:
    ref = _ticket_ref(result.link)
    if result.error:
        return f"• {ref}: :warning: {result.error}"
    if not result.done:
        return f"• {ref}: not done yet ({result.link.status or 'open'})"
    if result.still_failing and result.comment_error:
        return (
            f"• :x: {ref} is Done but the failure persists — :warning: I could not say so "
            f"on the ticket: {result.comment_error}. Reopen it by hand."
        )
    if result.still_failing:
        return f"• :x: {ref} is Done but the failure persists (commented on the ticket)"
    return f"• :white_check_mark: {ref} is Done and its checks pass: confirmed"


def _ticket_ref(link_row: TicketLink) -> str:
    label = f"{link_row.key}" + (f" “{link_row.title}”" if link_row.title else "")
    return mrkdwn.link(link_row.url, label) if link_row.url else label
