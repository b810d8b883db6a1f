"""`/hokusai runbook`: list the runbooks, or walk one in the channel with buttons.

One message per walkthrough; every click acks at once, then moves the walkthrough through
the store (a compare-and-swap on its version, so two clicks cannot advance a step twice),
updates the same message and writes the incident's timeline with who did it. Automated steps
run their checks with the same runner as ``/hokusai diagnose``. The state lives in the store,
so a button on a message posted before a restart still works.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.outbound import post_refused
from bot.runbook.catalog import catalog
from bot.runbook.model import Runbook
from bot.runbook.render import (
    CHOICE,
    DONE,
    NOTE_BLOCK,
    NOTE_INPUT,
    NOTE_MODAL_CALLBACK,
    RUN,
    SKIP,
    ButtonRef,
    action_id,
    note_modal,
    runbook_list_blocks,
    walkthrough_blocks,
)
from bot.runbook.walkthrough import (
    Action,
    ActionKind,
    ActionRejected,
    CheckLine,
    IncidentSessionStore,
    InvalidAction,
    SessionRecord,
    Walker,
    WalkState,
    advance,
)
from bot.slack.access import AccessRefused, channel_refusal
from bot.slack.commanding import CommandRequest, Reply, UsageError, not_a_member, pop_options

if TYPE_CHECKING:
    from bot.slack.services import Services

NAME = "runbook"
SUMMARY = "List the runbooks, or walk one here step by step with buttons that run the checks."
USAGE = "runbook list\nrunbook start NAME [env=ENV]"
INLINE = False

NOTHING_CHANGED = "Nothing was changed."
STEP_KIND = "runbook_step"  # in the in-flight table
_CLICK = re.compile(rf"^runbook_({RUN}|{DONE}|{SKIP}|{CHOICE}_\d+)$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunbookArgs:
    action: str
    name: str | None = None
    env: str | None = None


def parse(args: list[str]) -> RunbookArgs:
    if not args:
        raise UsageError("Say `list` or `start NAME`.")
    action, rest = args[0].lower(), args[1:]
    if action == "list":
        if rest:
            raise UsageError("`runbook list` takes no arguments")
        return RunbookArgs("list")
    if action == "start":
        options, words = pop_options(rest, {"env"})
        if len(words) != 1:
            raise UsageError("`runbook start` takes one runbook name (see `runbook list`)")
        return RunbookArgs("start", name=words[0], env=options.get("env"))
    raise UsageError(f"`runbook {action}` is not a thing I do")


def _unknown(name: str) -> UsageError:
    known = ", ".join(f"`{n}`" for n in catalog()) or "none installed"
    return UsageError(f"I have no runbook `{name}`. Runbooks: {known}")


# -- commands --------------------------------------------------------------------------------


async def handle(args: RunbookArgs, req: CommandRequest, services: Services) -> Reply | None:
    if args.action == "list":
        text, blocks = runbook_list_blocks(list(catalog().values()))
        return Reply(text, blocks)
    assert args.name is not None
    runbook = catalog().get(args.name)
    if runbook is None:
        raise _unknown(args.name)
    return await start_walkthrough(services, runbook, req.channel_id, req.user_id, args.env)


async def start_walkthrough(
    services: Services, runbook: Runbook, channel: str, user: str, env_name: str | None = None
) -> Reply | None:
    """Store a new walkthrough and post its message; a Reply only when something is wrong."""

    env = services.environment(env_name)
    try:
        await services.access.require_environment(env.name, user)
    except AccessRefused as exc:
        return Reply(str(exc))
    walker = Walker(runbook)
    state = walker.start(actor=user, env=env.name)
    record = await asyncio.to_thread(_create, services, runbook, channel, state, user)
    # The message is stored with the session (one more version), so draw it at that version.
    posted = state.model_copy(update={"version": record.version + 1})
    text, blocks = walkthrough_blocks(runbook, posted, record.id)
    try:
        ts = await services.outbound.post(channel, text, blocks)
    except SlackApiError as exc:
        return Reply(f":warning: {not_a_member(str(exc.response.get('error')))}")
    saved = await asyncio.to_thread(_save_message_ts, services, record, posted, user, ts)
    if not saved:  # someone clicked within milliseconds of the post: the click's update wins
        log.info("walkthrough %s moved before its message ts was stored", record.id)
    return None


def _create(
    services: Services, runbook: Runbook, channel: str, state: WalkState, user: str
) -> SessionRecord:
    store = services.store()
    with store.session():
        incident = store.open_incident_for_channel(channel)
        return IncidentSessionStore(store).create(
            runbook.id,
            incident_id=incident.id if incident else None,
            channel=channel,
            state=state,
            actor=user,
        )


def _save_message_ts(
    services: Services, record: SessionRecord, state: WalkState, user: str, ts: str
) -> bool:
    sessions = IncidentSessionStore(services.store())
    return sessions.save_if_version(record.id, record.version, state, user, message_ts=ts)


# -- buttons ---------------------------------------------------------------------------------


def register_actions(app: Any, services: Services) -> None:
    """Walkthrough buttons, the Add note modal, and diagnose's "Start runbook" button."""
    services.in_flight.handlers[STEP_KIND] = recover_step

    @app.action(_CLICK)
    async def _click(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        services.spawn(_if_first(services, body, _on_click), notify=_who(body))

    @app.action(action_id("note"))
    async def _add_note(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        # trigger_id lives 3 s: open the modal before anything slow; the note is checked on submit.
        action = _action(body)
        try:
            ref = ButtonRef.decode(action.get("value"))
        except InvalidAction as exc:
            services.spawn(_explain(services, body, str(exc)))
            return
        runbook = _runbook_for_ref(ref, body)
        title = runbook.step(ref.step_id).title if runbook and runbook.step(ref.step_id) else ""
        services.spawn(services.outbound.open_view(body["trigger_id"], note_modal(ref, title)))

    @app.view(NOTE_MODAL_CALLBACK)
    async def _note_submitted(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        services.spawn(_on_note(services, body), notify=_who(body))

    @app.action("runbook_start")
    async def _start_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        services.spawn(_if_first(services, body, _on_start_button), notify=_who(body))


async def _if_first(services: Services, body: dict[str, Any], work: Any) -> None:
    """Do ``work`` unless this is Slack's redelivery of a click we already have."""
    if await asyncio.to_thread(_claim, services, body):
        await work(services, body)


def _who(body: dict[str, Any]) -> tuple[str, str, str]:
    return _channel(body), _user(body), body.get("response_url") or ""


def _action(body: dict[str, Any]) -> dict[str, Any]:
    return (body.get("actions") or [{}])[0]


def _user(body: dict[str, Any]) -> str:
    return (body.get("user") or {}).get("id", "")


def _channel(body: dict[str, Any]) -> str:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id", ""
    )


def _claim(services: Services, body: dict[str, Any]) -> bool:
    """False for Slack's redelivery of a click we already have."""
    message_ts = (body.get("container") or {}).get("message_ts", "")
    action = _action(body)
    return services.claim_request(
        f"action:{message_ts}:{action.get('action_id', '')}:{action.get('action_ts', '')}"
    )


def _runbook_for_ref(ref: ButtonRef, body: dict[str, Any]) -> Runbook | None:
    # The step title for the modal; the runbook id comes from the message's context, if any.
    for runbook in catalog().values():
        if runbook.step(ref.step_id) is not None and _message_mentions(body, runbook.id):
            return runbook
    return None


def _message_mentions(body: dict[str, Any], runbook_id: str) -> bool:
    return f"`{runbook_id}`" in str((body.get("message") or {}).get("blocks", ""))


async def _explain(services: Services, body: dict[str, Any], why: str) -> None:
    """Tell only the person who clicked why nothing happened."""
    channel, user = _channel(body), _user(body)
    text = f":warning: {why[:1].upper()}{why[1:]} {NOTHING_CHANGED}"
    try:
        if channel:
            # The click's response_url reaches the person even where the bot is not a member.
            await services.tell(channel, user, text, response_url=body.get("response_url") or "")
        elif user:
            # A modal submission for a walkthrough we cannot find has no channel: use the DM.
            await services.outbound.post(user, text)
    except SlackApiError as exc:
        log.info("could not explain a refused click: %s", exc.response.get("error"))


def _kind_of(action_id_text: str) -> tuple[ActionKind, int | None]:
    word = action_id_text.removeprefix("runbook_")
    if word.startswith(f"{CHOICE}_"):
        return ActionKind.CHOICE, int(word.rsplit("_", 1)[1])
    return ActionKind(word), None


async def _on_click(services: Services, body: dict[str, Any]) -> None:
    action = _action(body)
    try:
        ref = ButtonRef.decode(action.get("value"))
        kind, index = _kind_of(action.get("action_id", ""))
        if kind is ActionKind.CHOICE and index != ref.choice:
            raise InvalidAction("that answer does not match its button")
        await _apply(services, body, ref, Action(kind, ref.step_id, ref.version, choice=ref.choice))
    except ActionRejected as exc:
        await _explain(services, body, str(exc))


async def _on_note(services: Services, body: dict[str, Any]) -> None:
    view = body.get("view") or {}
    value = (view.get("state", {}).get("values", {}).get(NOTE_BLOCK, {}).get(NOTE_INPUT, {})).get(
        "value"
    ) or ""
    try:
        ref = ButtonRef.decode(view.get("private_metadata"))
        await _apply(
            services, body, ref, Action(ActionKind.NOTE, ref.step_id, ref.version, text=value)
        )
    except ActionRejected as exc:
        await _explain(services, body, str(exc))


@dataclass
class _Walk:
    """A loaded walkthrough: its record, runbook and walker."""

    record: SessionRecord
    runbook: Runbook
    walker: Walker


def _load(services: Services, ref: ButtonRef, body: dict[str, Any]) -> _Walk:
    record = IncidentSessionStore(services.store()).load(ref.session_id)
    if record is None:
        raise InvalidAction("that walkthrough does not exist (it may belong to another bot).")
    channel = _channel(body)
    if channel and record.channel and channel != record.channel:
        raise InvalidAction("that button belongs to a walkthrough in another channel.")
    runbook = catalog().get(record.runbook_id)
    if runbook is None:
        raise InvalidAction(f"the runbook `{record.runbook_id}` is no longer installed.")
    return _Walk(record, runbook, Walker(runbook))


async def _apply(services: Services, body: dict[str, Any], ref: ButtonRef, action: Action) -> None:
    user = _user(body)
    if body.get("type") == "view_submission":
        # A modal has no channel of its own: the walkthrough's record says where it is.
        walk = await asyncio.to_thread(_load, services, ref, {})
        body = {**body, "channel": {"id": walk.record.channel}}
    else:
        walk = await asyncio.to_thread(_load, services, ref, body)
    await _check_access(services, walk, user, (body.get("channel") or {}).get("name"))
    state, line = await asyncio.to_thread(_advance, services, walk, action, user)
    # Noted in flight before anyone sees "running": if this process dies before the result,
    # a restart offers Run again.
    work = (
        await _note_in_flight(services, walk, state, body, user)
        if action.kind == ActionKind.RUN
        else None
    )
    await _show(services, walk, state, body)
    await asyncio.to_thread(_log, services, walk, line, user)
    if action.kind is ActionKind.RUN:
        await _run_checks(services, walk, state, body, user, work)


async def _note_in_flight(
    services: Services, walk: _Walk, running: WalkState, body: dict[str, Any], user: str
) -> int | None:
    step_id = running.current or ""
    record = running.steps.get(step_id)
    run_version = (record.run_version if record else None) or running.version
    return await services.in_flight.begin(
        STEP_KIND,
        channel=walk.record.channel or _channel(body),
        message_ts=walk.record.message_ts or (body.get("container") or {}).get("message_ts"),
        payload={"session": walk.record.id, "step": step_id, "run_version": run_version},
        requested_by=user,
    )


async def _check_access(
    services: Services, walk: _Walk, user: str, channel_name: str | None
) -> None:
    """A button obeys hokusai.yml's access rules like the command that posted it."""
    try:
        await services.access.require(
            user, walk.record.channel or "", channel_name, [(walk.record.state or {}).get("env")]
        )
    except AccessRefused as exc:
        raise InvalidAction(str(exc)) from None


def _advance(services: Services, walk: _Walk, action: Action, user: str) -> tuple[WalkState, str]:
    sessions = IncidentSessionStore(services.store())
    return advance(sessions, walk.walker, walk.record.id, action, user, services.clock())


async def _show(services: Services, walk: _Walk, state: WalkState, body: dict[str, Any]) -> None:
    """Redraw the walkthrough's one message."""
    ts = walk.record.message_ts or (body.get("container") or {}).get("message_ts")
    channel = walk.record.channel or _channel(body)
    if not ts or not channel:
        return
    text, blocks = walkthrough_blocks(walk.runbook, state, walk.record.id)
    try:
        await services.outbound.update(channel, ts, text, blocks)
    except SlackApiError as exc:
        log.warning(
            "could not update walkthrough %s: %s", walk.record.id, exc.response.get("error")
        )
        refused = post_refused(exc)
        if refused:
            # The step is recorded but nobody sees it: the person who clicked must know.
            await services.tell(
                channel,
                _user(body),
                f":warning: Recorded, but the walkthrough message could not show it: "
                f"{not_a_member(refused)}",
                response_url=body.get("response_url") or "",
            )


def _log(services: Services, walk: _Walk, line: str, user: str) -> None:
    """Write the action to the incident's timeline (the channel's open one if none was set)."""
    store = services.store()
    with store.session():
        incident_id = walk.record.incident_id
        if incident_id is None and walk.record.channel:
            incident = store.open_incident_for_channel(walk.record.channel)
            incident_id = incident.id if incident else None
        if incident_id is not None:
            store.add_timeline(
                incident_id, "runbook", line, actor=user, ref=f"runbook:{walk.record.id}"
            )


async def _run_checks(
    services: Services,
    walk: _Walk,
    running: WalkState,
    body: dict[str, Any],
    user: str,
    work: int | None,
) -> None:
    """Run the step's checks, then record the result and follow its branch."""
    step = walk.runbook.step(running.current or "")
    assert step is not None and step.automated is not None
    run_version = running.steps[step.id].run_version or running.version
    results = await _results(services, running.env, step.automated.checks)
    action = Action(ActionKind.RESULT, step.id, run_version, results=tuple(results))
    try:
        state, line = await asyncio.to_thread(_advance, services, walk, action, user)
    except ActionRejected as exc:
        # Skipped or re-run while the checks ran: those results answer nothing now.
        log.info("walkthrough %s: result dropped (%s)", walk.record.id, exc)
        await services.in_flight.end(work)
        return
    await services.in_flight.end(work)
    await _show(services, walk, state, body)
    await asyncio.to_thread(_log, services, walk, line, user)


async def recover_step(services: Services, work: Any) -> None:
    """A step whose checks a dead process was running: marked interrupted, *Run* offered."""
    payload = work.payload or {}
    ref = ButtonRef(int(payload["session"]), str(payload["step"]), int(payload["run_version"]))
    try:
        walk = await asyncio.to_thread(_load, services, ref, {})
        action = Action(ActionKind.INTERRUPTED, ref.step_id, ref.version)
        actor = work.requested_by or ""
        state, line = await asyncio.to_thread(_advance, services, walk, action, actor)
    except ActionRejected as exc:
        log.info("walkthrough %s needs no recovery (%s)", ref.session_id, exc)
        return
    body = {"channel": {"id": work.channel}, "container": {"message_ts": work.message_ts}}
    await _show(services, walk, state, body)
    await asyncio.to_thread(_log, services, walk, line, actor)


async def _results(services: Services, env_name: str | None, scopes: list[str]) -> list[CheckLine]:
    from bot.diagnosis.runner import UnknownScope

    try:
        env = services.environment(env_name)
        report = await services.run_checks(services.runner(env), scopes)
    except (UsageError, UnknownScope) as exc:
        return [CheckLine(id="runbook", status="error", summary=str(exc)[:300])]
    except Exception as exc:  # the step must not stay "running" forever
        log.exception("runbook checks failed (%s)", type(exc).__name__)
        return [
            CheckLine(id="runbook", status="error", summary=f"the run failed: {type(exc).__name__}")
        ]
    return [CheckLine.from_outcome(o) for o in report.outcomes]


async def _on_start_button(services: Services, body: dict[str, Any]) -> None:
    name = _action(body).get("value") or ""
    runbook = catalog().get(name)
    if runbook is None:
        await _explain(services, body, f"there is no runbook `{name[:60]}` installed.")
        return
    if not services.access.channel_allowed(_channel(body), (body.get("channel") or {}).get("name")):
        await _explain(services, body, channel_refusal())
        return
    reply = await start_walkthrough(services, runbook, _channel(body), _user(body))
    if reply is not None:
        await _explain(services, body, reply.text)
