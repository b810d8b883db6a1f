"""`/hokusai incident`: declare an incident, move its status, note, summarise and resolve it.

The incident lives in its own channel (``inc-YYYYMMDD-short-title``) unless declared with
``channel=here``; every other subcommand acts on the open incident of the channel it is typed in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot import mrkdwn
from bot.incident.store import STATUSES, Incident, IncidentExists, IncidentStore, StoreError
from bot.mrkdwn import user
from bot.slack.access import AccessRefused
from bot.slack.commanding import CommandRequest, Reply, UsageError, pop_options, unescape

if TYPE_CHECKING:
    from bot.slack.services import Services

NAME = "incident"
SUMMARY = "Declare and run an incident: status, notes, timeline, summaries, resolve."
USAGE = (
    "incident declare TITLE [sev=1..4] [channel=here]\n"
    "incident status [investigating|identified|monitoring|resolved]\n"
    "incident note TEXT\n"
    "incident timeline\n"
    "incident summary [export]\n"
    "incident resolve"
)
INLINE = False

ACTIONS = ("declare", "status", "note", "timeline", "summary", "resolve")
# Subcommands that show or post the incident's findings (a status change posts a summary).
READS_FINDINGS = ("status", "timeline", "summary", "resolve")
MAX_CHANNEL_NAME = 80
# A timeline page: one section block (3,000 characters) of at most this many entries.
TIMELINE_PAGE_ENTRIES = 25
TIMELINE_PAGE_CHARS = 2800
TIMELINE_ENTRY_CHARS = 600
TIMELINE_PAGE_ACTION = "incident_timeline_page"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncidentArgs:
    """A parsed ``/hokusai incident`` request."""

    action: str
    title: str = ""
    severity: int = 3
    here: bool = False
    status: str | None = None
    text: str = ""
    export: bool = False


def parse(args: list[str]) -> IncidentArgs:
    if not args:
        raise UsageError("Say what to do: " + ", ".join(f"`{a}`" for a in ACTIONS))
    action, rest = args[0].lower(), args[1:]
    if action not in ACTIONS:
        raise UsageError(f"`incident {action}` is not a thing I do")
    if action == "declare":
        options, words = pop_options(rest, {"sev", "severity", "channel"})
        sev_text = options.get("sev") or options.get("severity") or "3"
        sev_text = sev_text.lower().removeprefix("sev")
        if not sev_text.isdigit() or int(sev_text) not in (1, 2, 3, 4):
            raise UsageError(f"`sev={sev_text}`: severity is 1 (worst) to 4")
        channel = options.get("channel")
        if channel is not None and channel.lower() != "here":
            raise UsageError("`channel=` only takes `here` (keep the incident in this channel)")
        title = " ".join(words).strip()
        if not title:
            raise UsageError("An incident needs a title: `incident declare Registry returns 404`")
        return IncidentArgs(
            "declare", title=title, severity=int(sev_text), here=channel is not None
        )
    if action == "status":
        if len(rest) > 1:
            raise UsageError("`incident status` takes one status at most")
        status = rest[0].lower() if rest else None
        if status is not None and status not in STATUSES:
            raise UsageError(f"`{status}` is not a status; use one of {', '.join(STATUSES)}")
        return IncidentArgs("status", status=status)
    if action == "note":
        text = " ".join(rest).strip()
        if not text:
            raise UsageError("`incident note` needs the text of the note")
        return IncidentArgs("note", text=text)
    if action == "summary":
        if rest and [w.lower() for w in rest] != ["export"]:
            raise UsageError("`incident summary` takes only `export` (attach the report)")
        return IncidentArgs("summary", export=bool(rest))
    if rest:
        raise UsageError(f"`incident {action}` takes no arguments")
    return IncidentArgs(action)


async def handle(args: IncidentArgs, req: CommandRequest, services: Services) -> Reply | None:
    try:
        if args.action == "declare":
            return await declare(services, req, args.title, args.severity, here=args.here)
        incident = await asyncio.to_thread(
            _incident_here, services.store(), req.channel_id, args.action in ("timeline", "summary")
        )
        if incident is None:
            return Reply(
                "No incident is open in this channel. Declare one with "
                "`/hokusai incident declare TITLE [sev=1..4]`."
            )
        if args.action in READS_FINDINGS and (args.action != "status" or args.status):
            # These post or show the incident's findings: the environments' rules apply.
            await services.access.require_incident(services.store(), incident.id, req.user_id)
        if args.action == "status":
            if args.status is None:
                return Reply(_status_line(incident, services.clock()))
            return await change_status(services, req, incident, args.status)
        if args.action == "resolve":
            return await change_status(services, req, incident, "resolved")
        if args.action == "note":
            store = services.store()
            await asyncio.to_thread(
                store.add_note, incident.id, args.text, actor=req.user_id, now=services.clock()
            )
            return Reply(f":memo: Noted on the timeline of #{incident.id}.")
        if args.action == "timeline":
            return await timeline_reply(services, incident)
        return await summary(services, req, incident, export=args.export)
    except StoreError as exc:
        return Reply(f":warning: {exc}")


def _incident_here(
    store: IncidentStore, channel_id: str, include_resolved: bool
) -> Incident | None:
    if include_resolved:
        return store.incident_for_channel(channel_id)
    return store.open_incident_for_channel(channel_id)


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


async def declare(
    services: Services,
    req: CommandRequest,
    title: str,
    severity: int,
    *,
    here: bool,
    run_id: int | None = None,
) -> Reply | None:
    """Open an incident (in a new channel unless ``here``), post its header, announce it."""
    store = services.store()
    existing = await asyncio.to_thread(store.open_incident_for_channel, req.channel_id)
    if existing is not None:
        return Reply(_already_open(existing))
    now = services.clock()
    channel = req.channel_id
    if not here:
        try:
            channel = await _create_channel(
                services, channel_name(services.config.incidents.channel_prefix, title, now)
            )
        except SlackApiError as exc:
            return Reply(
                f":warning: I could not create the incident channel "
                f"({exc.response.get('error')}). Try `channel=here` to run it in this channel."
            )
        try:
            await services.outbound.invite(channel, [req.user_id])
        except SlackApiError as exc:
            if exc.response.get("error") != "already_in_channel":
                log.info("could not invite the declarer: %s", exc.response.get("error"))
    try:
        incident = await asyncio.to_thread(
            lambda: store.declare_incident(
                title,
                severity=severity,
                channel_id=channel,
                origin_channel_id=req.channel_id,
                commander=req.user_id,
                now=now,
            )
        )
    except IncidentExists as exc:
        return Reply(_already_open(exc.incident))
    if run_id is not None:
        await asyncio.to_thread(store.attach_run, run_id, incident.id)
    await services.outbound.post(channel, *header(incident))
    if channel != req.channel_id:
        await services.outbound.post(
            req.channel_id,
            f":rotating_light: SEV{severity} incident #{incident.id} declared by "
            f"{user(req.user_id)}: {incident.title} — follow it in {mrkdwn.channel(channel)}",
        )
    return None


async def _create_channel(services: Services, name: str) -> str:
    for attempt in range(1, 6):
        candidate = name if attempt == 1 else f"{name[: MAX_CHANNEL_NAME - 3]}-{attempt}"
        try:
            return await services.outbound.create_channel(candidate)
        except SlackApiError as exc:
            if exc.response.get("error") != "name_taken" or attempt == 5:
                raise
    raise AssertionError("unreachable")


def header(incident: Incident) -> tuple[str, list[dict[str, Any]]]:
    """The first message of an incident channel."""
    text = f"SEV{incident.severity} incident #{incident.id}: {incident.title}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Status:* {incident.status}   *Commander:* {user(incident.commander)}\n"
                "Run `/hokusai diagnose` here: every run and its findings go in the incident "
                "log. `/hokusai incident note TEXT` adds to the timeline; "
                "`/hokusai ticket create TITLE` files the fix.",
            },
        },
    ]
    return text, blocks


def _already_open(incident: Incident) -> str:
    return (
        f"Incident #{incident.id} “{incident.title}” is already open in this channel "
        f"(status {incident.status}). Use `/hokusai incident status`, `note` or `resolve`."
    )


def _status_line(incident: Incident, now: datetime) -> str:
    from bot.incident.summaries import format_duration

    return (
        f"#{incident.id} {incident.title}: SEV{incident.severity}, *{incident.status}* for "
        f"{format_duration(incident.duration(now))}. Move it with "
        f"`/hokusai incident status {'|'.join(STATUSES)}`."
    )


async def change_status(
    services: Services, req: CommandRequest, incident: Incident, status: str
) -> Reply | None:
    """Set the status, then post the status (or resolve) summary in the incident channel."""
    from bot.slack.scheduler import post_summary

    store = services.store()
    now = services.clock()
    updated = await asyncio.to_thread(
        store.set_status, incident.id, status, actor=req.user_id, now=now
    )
    reason = "resolved" if updated.status == "resolved" else "status"
    await post_summary(services, updated.id, reason=reason, now=now)
    if updated.status == "resolved" and updated.origin_channel_id not in (None, updated.channel_id):
        await services.outbound.post(
            updated.origin_channel_id,
            f":white_check_mark: Incident #{updated.id} {updated.title} is resolved "
            f"({mrkdwn.channel(updated.channel_id)}).",
        )
    if req.channel_id != updated.channel_id:
        return Reply(f"#{updated.id} is now {updated.status}.")
    return None


async def timeline_reply(services: Services, incident: Incident, skip: int = 0) -> Reply:
    """One page of the timeline, newest first, with an *Older* button while there is more."""
    entries = await asyncio.to_thread(services.store().timeline, incident.id)
    text, blocks = timeline_page(incident, entries, skip)
    return Reply(text, blocks)


def _timeline_line(entry: Any) -> str:
    from bot.incident.summaries import format_time

    who = f" {user(entry.actor)}" if entry.actor else ""
    body = entry.text
    if len(body) > TIMELINE_ENTRY_CHARS:
        body = body[: TIMELINE_ENTRY_CHARS - 1] + "… (all of it: `incident summary export`)"
    return f"`{format_time(entry.at)}`{who} {entry.kind}: {body}"


def timeline_page(
    incident: Incident, entries: list[Any], skip: int = 0
) -> tuple[str, list[dict[str, Any]]]:
    """Entries ``skip``… of the timeline, newest first, as many as fit one message."""
    newest_first = list(reversed(entries))
    skip = max(0, min(skip, max(len(newest_first) - 1, 0)))
    lines: list[str] = []
    used = 0
    end = skip
    while end < len(newest_first) and len(lines) < TIMELINE_PAGE_ENTRIES:
        line = _timeline_line(newest_first[end])
        if lines and used + len(line) + 1 > TIMELINE_PAGE_CHARS:
            break
        lines.append(line)
        used += len(line) + 1
        end += 1
    title = f"*Timeline of #{incident.id} {incident.title}*"
    if not newest_first:
        return f"{title}\nNothing on it yet.", [_mrkdwn(f"{title}\nNothing on it yet.")]
    where = f"entries {skip + 1}–{end} of {len(newest_first)}, newest first"
    blocks = [_mrkdwn(f"{title} — {where}"), _mrkdwn("\n".join(lines))]
    buttons = []
    if end < len(newest_first):
        buttons.append(_page_button("Older", incident.id, end, primary=True))
    if skip > 0:
        buttons.append(_page_button("Newest", incident.id, 0))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return f"{title} — {where}\n" + "\n".join(lines), blocks


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _page_button(label: str, incident_id: int, skip: int, primary: bool = False) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": TIMELINE_PAGE_ACTION + ("" if primary else "_newest"),
        "text": {"type": "plain_text", "text": label},
        "value": json.dumps({"incident": incident_id, "skip": skip}),
    }
    if primary:
        button["style"] = "primary"
    return button


async def summary(
    services: Services, req: CommandRequest, incident: Incident, *, export: bool
) -> Reply | None:
    """Post the summary where asked, unless nothing changed since the last one (then only the
    asker sees it again); with ``export``, share the Markdown report with one line."""
    from bot.incident.export import export_filename, export_markdown
    from bot.incident.summaries import build_summary, format_time
    from bot.slack.scheduler import post_summary

    now = services.clock()
    store = services.store()
    if export:
        report = await asyncio.to_thread(export_markdown, store, incident.id, now)
        await services.outbound.upload(
            req.channel_id,
            export_filename(incident),
            report,
            title=f"Post-incident report #{incident.id}",
            comment=f":page_facing_up: Post-incident report of #{incident.id} {incident.title}",
        )
        return None
    ts = await post_summary(
        services,
        incident.id,
        reason="requested",
        now=now,
        channel=req.channel_id,
        only_if_changed=True,
    )
    if ts is not None:
        return None
    again = await asyncio.to_thread(build_summary, store, incident.id, now)
    note = (
        f"Only you see this: nothing changed since the last summary "
        f"({format_time(again.changes.since)}), so it was not posted again."
    )
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}
    return Reply(f"{note}\n{again.text()}", blocks=[context, *again.blocks()])


def register_actions(app: Any, services: Services) -> None:
    """The "Declare incident" button under a diagnose result outside an incident, and the
    timeline's *Older* / *Newest* buttons."""

    @app.action(re.compile(rf"^{TIMELINE_PAGE_ACTION}(_newest)?$"))
    async def _timeline_page_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        who = ((body.get("channel") or {}).get("id", ""), (body.get("user") or {}).get("id", ""))
        services.spawn(_turn_timeline_page(services, body), notify=who)

    @app.action("incident_declare")
    async def _declare_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        who = ((body.get("channel") or {}).get("id", ""), (body.get("user") or {}).get("id", ""))
        services.spawn(_declare_from_button(services, body), notify=who)


async def _declare_from_button(services: Services, body: dict[str, Any]) -> None:
    from commands import deliver

    action = (body.get("actions") or [{}])[0]
    try:
        value = json.loads(action.get("value") or "{}")
    except ValueError:
        value = {}
    run_id = value.get("run_id")
    channel_id = (body.get("channel") or {}).get("id", "")
    user_id = (body.get("user") or {}).get("id", "")
    req = CommandRequest(
        text="incident declare",
        args=[],
        user_id=user_id,
        channel_id=channel_id,
        response_url=body.get("response_url", ""),
        trigger_id=body.get("trigger_id", ""),
    )
    channel_name = (body.get("channel") or {}).get("name")
    run_env = None
    if run_id and str(run_id).isdigit():
        try:
            run_env = (await asyncio.to_thread(services.store().run, int(run_id))).env
        except StoreError:
            run_env = None
    try:
        # The new incident's title names the run's failing check: that run's rules apply.
        await services.access.require(user_id, channel_id, channel_name, [run_env])
    except AccessRefused as exc:
        await services.outbound.ephemeral(channel_id, user_id, str(exc))
        return
    # One incident per diagnose result, however many people (or Slack retries) click.
    message_ts = body.get("container", {}).get("message_ts", "")
    key = f"declare:run:{run_id}" if run_id else f"declare:message:{channel_id}:{message_ts}"
    if not await asyncio.to_thread(services.claim_request, key):
        return
    try:
        title = "Diagnose found a failing hop"
        if run_id and str(run_id).isdigit():
            run = await asyncio.to_thread(services.store().run, int(run_id))
            if run.first_failure_id:
                title = f"{run.first_failure_id} failing ({run.env or 'default env'})"
        reply = await declare(services, req, title, 2, here=False, run_id=run_id)
    except (StoreError, LookupError) as exc:
        reply = Reply(f":warning: {exc}")
    if reply is not None:
        await deliver(reply, req, services)


async def _turn_timeline_page(services: Services, body: dict[str, Any]) -> None:
    """Replace the timeline message the button is on with the page it asks for."""
    action = (body.get("actions") or [{}])[0]
    channel = body.get("channel") or {}
    channel_id, user_id = channel.get("id", ""), (body.get("user") or {}).get("id", "")
    try:
        value = json.loads(action.get("value") or "{}")
        incident_id, skip = int(value["incident"]), int(value.get("skip", 0))
    except (ValueError, KeyError, TypeError):
        await services.outbound.ephemeral(channel_id, user_id, ":warning: That button is broken.")
        return
    store = services.store()
    try:
        services.access.require_channel(channel_id, channel.get("name"))
        incident = await asyncio.to_thread(store.incident, incident_id)
        if incident.channel_id != channel_id:
            raise AccessRefused("That timeline belongs to an incident in another channel.")
        await services.access.require_incident(store, incident.id, user_id)
    except (AccessRefused, StoreError) as exc:
        await services.outbound.ephemeral(channel_id, user_id, str(exc))
        return
    reply = await timeline_reply(services, incident, skip)
    if body.get("response_url"):
        await services.outbound.respond(
            body["response_url"], reply.text, reply.blocks, replace_original=True
        )
    else:
        await services.outbound.ephemeral(channel_id, user_id, reply.text, reply.blocks)
