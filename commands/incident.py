"""`/hokusai incident`: declare an incident, run it, and close it when it is fixed.

``declare`` with no title opens the declare form (title, severity with its meaning, public or
private, commander); ``declare TITLE [sev=N]`` declares at once. Declaring the same title from
the same channel within 10 minutes links to the first incident instead of opening a second.
The incident lives in its own channel (``inc-YYYYMMDD-short-title``, private if asked), whose
topic follows its status, severity, commander and tickets, unless declared with
``channel=here``. Every other subcommand acts on the open incident of the channel it is typed
in; ``resolve`` re-runs what still fails first (``bot.incident.resolve``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot import mrkdwn
from bot.incident.channel import channel_name, create_channel, refresh_topic
from bot.incident.export import export_filename, export_markdown
from bot.incident.modal import CALLBACK_ID, DeclareContext, declare_view, parse_submission
from bot.incident.people import names_for, people_of
from bot.incident.resolve import KEEP_OPEN, RESOLVE_ANYWAY, answered, check_before_resolve, prompt
from bot.incident.store import (
    CLOSED_STATUSES,
    ROLES,
    SEVERITIES,
    SEVERITY_MEANINGS,
    STATUSES,
    DuplicateDeclare,
    Incident,
    IncidentExists,
    IncidentStore,
    StoreError,
)
from bot.incident.summaries import format_duration, format_time
from bot.mrkdwn import user
from bot.slack.access import AccessRefused
from bot.slack.commanding import CommandRequest, Reply, UsageError, pop_options

if TYPE_CHECKING:
    from bot.slack.services import Services

NAME = "incident"
SUMMARY = "Declare and run an incident: status, severity, roles, notes, summaries, report."
USAGE = (
    "incident declare [TITLE [sev=1..4] [channel=here]]\n"
    f"incident status [{'|'.join(STATUSES)}]\n"
    "incident severity 1..4\n"
    f"incident role {'|'.join(ROLES)} @person\n"
    "incident note TEXT\n"
    "incident timeline\n"
    "incident summary [export]\n"
    "incident export\n"
    "incident resolve"
)
INLINE = False

ACTIONS = (
    "declare",
    "status",
    "severity",
    "role",
    "note",
    "timeline",
    "summary",
    "export",
    "resolve",
)
# Subcommands that show or post the incident's findings (a status change posts a summary).
READS_FINDINGS = ("status", "severity", "timeline", "summary", "export", "resolve")
# A timeline page: one section block (3,000 characters) of at most this many entries.
TIMELINE_PAGE_ENTRIES = 25
TIMELINE_PAGE_CHARS = 2800
TIMELINE_ENTRY_CHARS = 600
TIMELINE_PAGE_ACTION = "incident_timeline_page"
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")

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
    form: bool = False
    role: str = ""
    user: str = ""


def parse(args: list[str]) -> IncidentArgs:
    if not args:
        raise UsageError("Say what to do: " + ", ".join(f"`{a}`" for a in ACTIONS))
    action, rest = args[0].lower(), args[1:]
    if action not in ACTIONS:
        raise UsageError(f"`incident {action}` is not a thing I do")
    if action == "declare":
        return _parse_declare(rest)
    if action == "status":
        if len(rest) > 1:
            raise UsageError("`incident status` takes one status at most")
        status = rest[0].lower() if rest else None
        if status is not None and status not in STATUSES:
            raise UsageError(f"`{status}` is not a status; use one of {', '.join(STATUSES)}")
        return IncidentArgs("status", status=status)
    if action == "severity":
        if len(rest) != 1:
            raise UsageError("`incident severity` takes one severity: 1 (worst) to 4")
        return IncidentArgs("severity", severity=_severity(rest[0]))
    if action == "role":
        return _parse_role(rest)
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


def _parse_declare(rest: list[str]) -> IncidentArgs:
    options, words = pop_options(rest, {"sev", "severity", "channel"})
    sev_text = options.get("sev") or options.get("severity")
    severity = _severity(sev_text) if sev_text else None
    channel = options.get("channel")
    if channel is not None and channel.lower() != "here":
        raise UsageError("`channel=` only takes `here` (keep the incident in this channel)")
    title = " ".join(words).strip()
    if not title:
        # No title: the declare form asks for it (and for severity, privacy, commander).
        return IncidentArgs("declare", severity=severity or 2, form=True)
    return IncidentArgs("declare", title=title, severity=severity or 3, here=channel is not None)


def _severity(text: str) -> int:
    value = text.lower().removeprefix("sev")
    if not value.isdigit() or int(value) not in SEVERITIES:
        raise UsageError(f"`{text}`: severity is 1 (worst) to 4")
    return int(value)


def _parse_role(rest: list[str]) -> IncidentArgs:
    if len(rest) != 2:
        raise UsageError(f"`incident role` takes a role ({', '.join(ROLES)}) and a @person")
    role = rest[0].lower()
    if role not in ROLES:
        raise UsageError(f"`{rest[0]}` is not a role; use one of {', '.join(ROLES)}")
    match = _MENTION.match(rest[1])
    if match is None:
        raise UsageError(f"`{rest[1]}` is not a person: mention them with @ and pick them")
    return IncidentArgs("role", role=role, user=match.group(1))


async def handle(args: IncidentArgs, req: CommandRequest, services: Services) -> Reply | None:
    try:
        if args.action == "declare":
            if args.form:
                return await open_declare_form(services, req, severity=args.severity)
            return await declare(
                services,
                Declaration(
                    title=args.title,
                    severity=args.severity,
                    origin_channel_id=req.channel_id,
                    declared_by=req.user_id,
                    commander=req.user_id,
                    here=args.here,
                    origin_channel_name=req.channel_name,
                ),
            )
        closed_too = args.action in ("timeline", "summary", "export")
        incident = await asyncio.to_thread(
            _incident_here, services.store(), req.channel_id, closed_too
        )
        if incident is None:
            return Reply(
                "No incident is open in this channel. Declare one with `/hokusai incident declare`."
            )
        if args.action in READS_FINDINGS and (args.action != "status" or args.status):
            # These post or show the incident's findings: the environments' rules apply.
            await services.access.require_incident(services.store(), incident.id, req.user_id)
        return await _act(args, req, services, incident)
    except StoreError as exc:
        return Reply(f":warning: {exc}")


async def _act(
    args: IncidentArgs, req: CommandRequest, services: Services, incident: Incident
) -> Reply | None:
    if args.action == "status":
        if args.status is None:
            return Reply(_status_line(incident, services.clock()))
        if args.status == "resolved":
            return await resolve(services, req, incident)
        return await change_status(services, req, incident, args.status)
    if args.action == "resolve":
        return await resolve(services, req, incident)
    if args.action == "severity":
        return await change_severity(services, req, incident, args.severity)
    if args.action == "role":
        return await hand_over(services, req, incident, args.role, args.user)
    if args.action == "note":
        store = services.store()
        await asyncio.to_thread(
            store.add_note, incident.id, args.text, actor=req.user_id, now=services.clock()
        )
        return Reply(f":memo: Noted on the timeline of #{incident.id}.")
    if args.action == "timeline":
        return await timeline_reply(services, incident)
    if args.action == "export" or args.export:  # `summary export` is the same report
        return await export(services, req, incident)
    return await summary(services, req, incident)


def _incident_here(store: IncidentStore, channel_id: str, closed_too: bool) -> Incident | None:
    if closed_too:
        return store.incident_for_channel(channel_id)
    return store.open_incident_for_channel(channel_id)


# -- declaring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Declaration:
    """What to declare, from the command line, the form or the button."""

    title: str
    severity: int
    origin_channel_id: str
    declared_by: str
    commander: str
    private: bool = False
    here: bool = False
    run_id: int | None = None
    origin_channel_name: str = ""


async def open_declare_form(
    services: Services,
    req: CommandRequest,
    *,
    severity: int = 2,
    title: str = "",
    run_id: int | None = None,
) -> Reply | None:
    """Open the declare form with the request's trigger_id (it lives 3 seconds)."""
    context = DeclareContext(
        req.channel_id,
        run_id=run_id,
        response_url=req.response_url,
        origin_channel_name=req.channel_name,
    )
    view = declare_view(context, title=title, severity=severity, commander=req.user_id)
    try:
        await services.outbound.open_view(req.trigger_id, view)
    except SlackApiError as exc:
        return Reply(
            f":warning: The declare form did not open (Slack: {exc.response.get('error')}). "
            "Declare in one line instead: `/hokusai incident declare TITLE sev=2`."
        )
    return None


async def declare(services: Services, d: Declaration) -> Reply | None:
    """Open an incident (in a channel of its own unless ``here``), post its header, set the
    channel topic and announce it where it was declared (public incidents only)."""
    store = services.store()
    already = await _incident_of_run(store, d.run_id)
    if already is not None:
        return Reply(_follow(already, "was already declared from this diagnose result"))
    # Typed inside an incident's channel: that incident is the one to work on.
    here = await asyncio.to_thread(store.open_incident_for_channel, d.origin_channel_id)
    if here is not None:
        return Reply(_already_open(here))
    now = services.clock()
    try:
        incident = await asyncio.to_thread(
            lambda: store.declare_incident(
                d.title,
                channel_id=d.origin_channel_id if d.here else None,
                commander=d.commander,
                severity=d.severity,
                origin_channel_id=d.origin_channel_id,
                private=d.private,
                declared_by=d.declared_by,
                origin_channel_name=d.origin_channel_name,
                now=now,
            )
        )
    except DuplicateDeclare as exc:
        ago = format_duration(now - exc.incident.started_at)
        return Reply(_follow(exc.incident, f"was declared {ago} ago from this channel"))
    except IncidentExists as exc:
        return Reply(_already_open(exc.incident))
    if not d.here:
        name = channel_name(services.config.incidents.channel_prefix, d.title, now)
        try:
            channel, name = await create_channel(services, name, private=d.private)
        except SlackApiError as exc:
            await asyncio.to_thread(store.discard_incident, incident.id)
            return Reply(
                f":warning: I could not create the incident channel "
                f"({exc.response.get('error')}). Try `channel=here` to run it in this channel."
            )
        incident = await asyncio.to_thread(store.assign_channel, incident.id, channel, name)
        await _invite(services, channel, [d.declared_by, d.commander])
    if d.run_id is not None:
        await asyncio.to_thread(store.attach_run, d.run_id, incident.id)
    await services.outbound.post(incident.channel_id, *header(incident))
    await refresh_topic(services, incident.id)
    if d.here:
        return None
    if d.private:
        where = mrkdwn.channel(incident.channel_id)
        return Reply(f":lock: Private incident #{incident.id} is open in {where}.")
    await services.outbound.post(
        d.origin_channel_id,
        f":rotating_light: SEV{incident.severity} incident #{incident.id} declared by "
        f"{user(d.declared_by)}: {incident.title} — follow it in "
        f"{mrkdwn.channel(incident.channel_id)}",
    )
    return None


async def _incident_of_run(store: IncidentStore, run_id: int | None) -> Incident | None:
    """The open incident a diagnose run already belongs to: one incident per result."""
    if run_id is None:
        return None
    run = await asyncio.to_thread(store.run, run_id)
    if run.incident_id is None:
        return None
    incident = await asyncio.to_thread(store.incident, run.incident_id)
    return incident if incident.is_open else None


async def _invite(services: Services, channel: str, user_ids: list[str]) -> None:
    users = [u for u in dict.fromkeys(user_ids) if u]
    if not users:
        return
    try:
        await services.outbound.invite(channel, users)
    except SlackApiError as exc:
        if exc.response.get("error") != "already_in_channel":
            log.info("could not invite to the incident channel: %s", exc.response.get("error"))


def header(incident: Incident) -> tuple[str, list[dict[str, Any]]]:
    """The first message of an incident channel."""
    text = f"SEV{incident.severity} incident #{incident.id}: {incident.title}"
    meaning = SEVERITY_MEANINGS[incident.severity]
    private = " · :lock: private" if incident.private else ""
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Status:* {incident.status}   *Commander:* {user(incident.commander)}"
                f"{private}\n_SEV{incident.severity}: {meaning}_\n"
                "Run `/hokusai diagnose` here: every run and its findings go in the incident "
                "log. `/hokusai incident note TEXT` adds to the timeline; "
                "`/hokusai ticket create TITLE` files the fix; `/hokusai incident resolve` "
                "re-checks before it resolves.",
            },
        },
    ]
    return text, blocks


def _already_open(incident: Incident) -> str:
    return (
        f"Incident #{incident.id} “{incident.title}” is already open in this channel "
        f"(status {incident.status}). Use `/hokusai incident status`, `note` or `resolve`."
    )


def _follow(incident: Incident, what: str) -> str:
    if incident.private:
        return (
            f":lock: #{incident.id} “{incident.title}” {what} and is a private incident: "
            f"ask its commander {user(incident.commander)} to add you."
        )
    where = mrkdwn.channel(incident.channel_id)
    return f"#{incident.id} “{incident.title}” {what}: follow it in {where}."


# -- moving it --------------------------------------------------------------------------------


def _status_line(incident: Incident, now: datetime) -> str:
    return (
        f"#{incident.id} {incident.title}: SEV{incident.severity}, *{incident.status}* for "
        f"{format_duration(incident.duration(now))}. Move it with "
        f"`/hokusai incident status {'|'.join(STATUSES)}`."
    )


async def change_status(
    services: Services,
    req: CommandRequest,
    incident: Incident,
    status: str,
    *,
    reason: str | None = None,
) -> Reply | None:
    """``move_status`` for a typed command (or a button that acts like one)."""
    return await move_status(services, req.user_id, req.channel_id, incident, status, reason=reason)


async def move_status(
    services: Services,
    actor: str,
    where: str,
    incident: Incident,
    status: str,
    *,
    reason: str | None = None,
) -> Reply | None:
    """Set the status, post the status (or closing) summary in the incident channel, update
    the topic; a public incident's closing is also told where it was declared."""
    from bot.slack.scheduler import post_summary

    store = services.store()
    now = services.clock()
    updated = await asyncio.to_thread(
        lambda: store.set_status(incident.id, status, actor=actor, now=now, reason=reason)
    )
    closing = updated.status in CLOSED_STATUSES
    await post_summary(
        services, updated.id, reason=updated.status if closing else "status", now=now
    )
    await refresh_topic(services, updated.id)
    if closing and updated.has_own_channel and not updated.private:
        await services.outbound.post(
            updated.origin_channel_id or updated.channel_id,
            f":white_check_mark: Incident #{updated.id} {updated.title} is {updated.status} "
            f"({mrkdwn.channel(updated.channel_id)}).",
        )
    if where != updated.channel_id:
        return Reply(f"#{updated.id} is now {updated.status}.")
    return None


async def resolve(services: Services, req: CommandRequest, incident: Incident) -> Reply | None:
    """Resolve if what failed now passes and no ticket is open; otherwise ask in the channel."""
    check = await check_before_resolve(services, incident, actor=req.user_id)
    if check.clear:
        return await change_status(services, req, incident, "resolved", reason=check.passed())
    store = services.store()
    await asyncio.to_thread(
        lambda: store.add_timeline(
            incident.id,
            "resolve-check",
            f"Resolve asked while {check.obstacles()}",
            actor=req.user_id,
            now=services.clock(),
        )
    )
    await services.outbound.post(incident.channel_id, *prompt(check))
    if req.channel_id != incident.channel_id:
        return Reply(
            f"#{incident.id} is not fixed yet: I asked in {mrkdwn.channel(incident.channel_id)}."
        )
    return None


async def change_severity(
    services: Services, req: CommandRequest, incident: Incident, severity: int
) -> Reply | None:
    store = services.store()
    before = incident.severity
    updated = await asyncio.to_thread(
        lambda: store.set_severity(incident.id, severity, actor=req.user_id, now=services.clock())
    )
    arrow = ":arrow_up:" if severity < before else ":arrow_down:"
    await services.outbound.post(
        updated.channel_id,
        f"{arrow} {user(req.user_id)} changed #{updated.id} from SEV{before} to SEV{severity}: "
        f"{SEVERITY_MEANINGS[severity]}",
    )
    await refresh_topic(services, updated.id)
    return _elsewhere(req, updated, f"#{updated.id} is now SEV{severity}.")


async def hand_over(
    services: Services, req: CommandRequest, incident: Incident, role: str, person: str
) -> Reply | None:
    store = services.store()
    updated = await asyncio.to_thread(
        lambda: store.assign_role(
            incident.id, role, person, actor=req.user_id, now=services.clock()
        )
    )
    if updated.has_own_channel:
        await _invite(services, updated.channel_id, [person])
    await services.outbound.post(
        updated.channel_id,
        f":busts_in_silhouette: {user(person)} is now {role} of #{updated.id} "
        f"(handed over by {user(req.user_id)}).",
    )
    if role == "commander":
        await refresh_topic(services, updated.id)
    return _elsewhere(req, updated, f"{user(person)} is now {role} of #{updated.id}.")


def _elsewhere(req: CommandRequest, incident: Incident, text: str) -> Reply | None:
    """A short confirmation for someone who typed outside the incident channel."""
    return Reply(text) if req.channel_id != incident.channel_id else None


# -- reading it -------------------------------------------------------------------------------


async def timeline_reply(services: Services, incident: Incident, skip: int = 0) -> Reply:
    """One page of the timeline, newest first, with an *Older* button while there is more."""
    entries = await asyncio.to_thread(services.store().timeline, incident.id)
    text, blocks = timeline_page(incident, entries, skip)
    return Reply(text, blocks)


def _timeline_line(entry: Any) -> str:

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


async def report_for(services: Services, incident: Incident) -> str:
    """The post-incident report, people by name and the affected endpoint named."""
    store = services.store()
    names = await names_for(services, await asyncio.to_thread(people_of, store, incident))
    latest = await asyncio.to_thread(store.latest_run, incident.id)
    audience = None
    try:
        audience = services.config.environment(latest.env if latest else None).public.base_url
    except Exception:  # an environment removed from the config since: name nobody
        audience = None
    now = services.clock()
    return await asyncio.to_thread(
        lambda: export_markdown(store, incident.id, now, names=names, audience=audience)
    )


async def export(services: Services, req: CommandRequest, incident: Incident) -> Reply | None:
    """Attach the post-incident report to the channel it was asked in."""
    report = await report_for(services, incident)
    await services.outbound.upload(
        req.channel_id,
        export_filename(incident),
        report,
        title=f"Post-incident report #{incident.id}: {incident.title}",
        comment=f":page_facing_up: Post-incident report of #{incident.id} {incident.title}",
    )
    return None


async def summary(services: Services, req: CommandRequest, incident: Incident) -> Reply | None:
    """Post the summary where asked, unless nothing changed since the last one (then only the
    asker sees it again)."""
    from bot.incident.summaries import build_summary
    from bot.slack.scheduler import post_summary

    now = services.clock()
    store = services.store()
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


# -- buttons and the form ---------------------------------------------------------------------


def register_actions(app: Any, services: Services) -> None:
    """The *Declare incident* button, the declare form, the resolve question's buttons and
    the timeline's *Older* / *Newest* buttons."""

    @app.action(re.compile(rf"^{TIMELINE_PAGE_ACTION}(_newest)?$"))
    async def _timeline_page_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        services.spawn(_turn_timeline_page(services, body), notify=_who(body))

    @app.action("incident_declare")
    async def _declare_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        # The trigger_id lives 3 s: the form opens first, before anything slow.
        services.spawn(_open_form_from_button(services, body), notify=_who(body))

    @app.view(CALLBACK_ID)
    async def _declare_submitted(ack: Any, body: dict[str, Any]) -> None:
        form, errors = parse_submission(body.get("view") or {})
        if form is None:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        context = DeclareContext.decode((body.get("view") or {}).get("private_metadata", ""))
        user = (body.get("user") or {}).get("id", "")
        declaration = Declaration(
            title=form.title,
            severity=form.severity,
            origin_channel_id=context.origin_channel_id,
            declared_by=user,
            commander=form.commander,
            private=form.private,
            run_id=context.run_id,
            origin_channel_name=context.origin_channel_name,
        )
        services.spawn(
            _declare_from_form(services, declaration, context),
            notify=(context.origin_channel_id, user),
        )

    for action_id in (KEEP_OPEN, RESOLVE_ANYWAY):

        @app.action(action_id)
        async def _resolve_choice(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            services.spawn(_on_resolve_choice(services, body), notify=_who(body))


def _who(body: dict[str, Any]) -> tuple[str, str]:
    return ((body.get("channel") or {}).get("id", ""), (body.get("user") or {}).get("id", ""))


async def _tell(services: Services, channel: str, user: str, response_url: str, reply: Reply):
    """An ephemeral answer: through the response_url (works where the bot is no member)."""
    if response_url:
        await services.outbound.respond(response_url, reply.text, reply.blocks)
    else:
        await services.outbound.ephemeral(channel, user, reply.text, reply.blocks)


async def _open_form_from_button(services: Services, body: dict[str, Any]) -> None:
    channel_id, user_id = _who(body)
    response_url = body.get("response_url", "")
    channel_name = (body.get("channel") or {}).get("name")
    action = (body.get("actions") or [{}])[0]
    try:
        value = json.loads(action.get("value") or "{}")
    except ValueError:
        value = {}
    run_id = value.get("run_id") if isinstance(value.get("run_id"), int) else None
    title, run_env, already = "", None, None
    store = services.store()
    try:
        already = await _incident_of_run(store, run_id)
        if run_id is not None:
            run = await asyncio.to_thread(store.run, run_id)
            run_env = run.env
            if run.first_failure_id:
                title = f"{run.first_failure_id} failing ({run.env or 'default env'})"
    except StoreError:
        pass
    try:
        # The form's title names the run's failing check: that run's rules apply.
        await services.access.require(user_id, channel_id, channel_name, [run_env])
    except AccessRefused as exc:
        await services.outbound.ephemeral(channel_id, user_id, str(exc))
        return
    if already is not None:
        reply = Reply(_follow(already, "was already declared from this diagnose result"))
        await _tell(services, channel_id, user_id, response_url, reply)
        return
    req = CommandRequest(
        text="incident declare",
        args=[],
        user_id=user_id,
        channel_id=channel_id,
        channel_name=channel_name or "",
        response_url=response_url,
        trigger_id=body.get("trigger_id", ""),
    )
    reply = await open_declare_form(services, req, severity=2, title=title, run_id=run_id)
    if reply is not None:
        await _tell(services, channel_id, user_id, response_url, reply)


async def _declare_from_form(
    services: Services, declaration: Declaration, context: DeclareContext
) -> None:
    store = services.store()
    try:
        run_env = None
        if declaration.run_id is not None:
            run_env = (await asyncio.to_thread(store.run, declaration.run_id)).env
        # Declared from a diagnose result, the incident holds that run: its rules apply.
        await services.access.require(
            declaration.declared_by,
            declaration.origin_channel_id,
            declaration.origin_channel_name or None,
            [run_env],
        )
    except (AccessRefused, StoreError) as exc:
        await services.outbound.ephemeral(
            declaration.origin_channel_id, declaration.declared_by, str(exc)
        )
        return
    try:
        reply = await declare(services, declaration)
    except StoreError as exc:
        reply = Reply(f":warning: {exc}")
    if reply is not None:
        await _tell(
            services,
            declaration.origin_channel_id,
            declaration.declared_by,
            context.response_url,
            reply,
        )


async def _on_resolve_choice(services: Services, body: dict[str, Any]) -> None:
    """*Keep open* or *Resolve anyway*: once per question, on the timeline, in the message."""
    channel_id, user_id = _who(body)
    action = (body.get("actions") or [{}])[0]
    message = body.get("message") or {}
    response_url = body.get("response_url", "")
    try:
        incident_id = int(json.loads(action.get("value") or "{}")["incident_id"])
    except (ValueError, KeyError, TypeError):
        return
    store = services.store()
    try:
        services.access.require_channel(channel_id, (body.get("channel") or {}).get("name"))
        await services.access.require_incident(store, incident_id, user_id)
    except (AccessRefused, StoreError) as exc:
        await services.outbound.ephemeral(channel_id, user_id, str(exc))
        return
    key = f"resolve-choice:{channel_id}:{message.get('ts', '')}"
    if not await asyncio.to_thread(services.claim_request, key):
        reply = Reply("Someone already answered this question.")
        await _tell(services, channel_id, user_id, response_url, reply)
        return
    incident = await asyncio.to_thread(store.incident, incident_id)
    now = services.clock()
    if not incident.is_open:
        line = f"#{incident.id} is already {incident.status}."
    elif action.get("action_id") == KEEP_OPEN:
        await asyncio.to_thread(
            lambda: store.add_timeline(
                incident.id, "decision", "Kept open", actor=user_id, ref="keep-open", now=now
            )
        )
        line = f":hourglass: Kept open by {user(user_id)} at {now:%H:%M} UTC."
    else:
        timeline = await asyncio.to_thread(store.timeline, incident.id)
        asked = [e for e in timeline if e.kind == "resolve-check"]
        why = asked[-1].text.removeprefix("Resolve asked while ") if asked else "checks failed"
        await asyncio.to_thread(
            lambda: store.add_timeline(
                incident.id,
                "decision",
                f"Resolved anyway while {why}",
                actor=user_id,
                ref="resolve-anyway",
                now=now,
            )
        )
        await move_status(
            services, user_id, channel_id, incident, "resolved", reason=f"anyway, while {why}"
        )
        line = f":white_check_mark: Resolved anyway by {user(user_id)} at {now:%H:%M} UTC."
    if message.get("ts"):
        await services.outbound.update(channel_id, message["ts"], *answered(message, line))


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
