"""`/hokusai diagnose`: walk the request path and name the first failing hop.

One message shows the checks as they finish (updated at most about once a second: Slack limits
``chat.update``), then the final view; the full detail goes in a thread when it does not fit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot import metrics
from bot.diagnosis.checks.base import CheckOutcome, Status
from bot.diagnosis.render import detail_chunks, lead_outcome, progress_blocks, report_blocks
from bot.errors import HokusaiError
from bot.offload import offload
from bot.slack.access import AccessRefused, channel_refusal
from bot.slack.commanding import CommandRequest, Reply, UsageError, not_a_member, pop_options

if TYPE_CHECKING:
    from bot.slack.run_queue import RunQueue, Ticket
    from bot.slack.services import Services

NAME = "diagnose"
SUMMARY = "Walk the request path hop by hop and name the first failing hop (read-only)."
USAGE = (
    "diagnose [scope...] [env=ENV]\n"
    "diagnose routing mlflow-proxy     # scopes: a layer, a check id, a route or an ECS service"
)
INLINE = False
UPDATE_INTERVAL = 1.0  # seconds between progress updates of one message
QUEUE_REFRESH = 20.0  # seconds between "N ahead" refreshes of a queued run's message
RUN_AGAIN = "diagnose_again"
KIND = "diagnose"  # in the in-flight table

log = logging.getLogger(__name__)


@dataclass
class DiagnoseArgs:
    scopes: list[str]
    env: str | None = None


def parse(args: list[str]) -> DiagnoseArgs:
    options, scopes = pop_options(args, {"env"})
    for scope in scopes:
        if "=" in scope:
            raise UsageError(f"`{scope}`: the only option is `env=ENV`")
    return DiagnoseArgs(scopes=scopes, env=options.get("env"))


async def handle(args: DiagnoseArgs, req: CommandRequest, services: Services) -> Reply | None:
    from bot.diagnosis.runner import UnknownScope

    env = services.environment(args.env)
    await services.access.require_environment(env.name, req.user_id)
    runner = services.runner(env)
    try:
        planned = runner.select(args.scopes)
    except UnknownScope as exc:
        raise UsageError(str(exc)) from None
    target = env.public.hostname
    queue = services.diagnoses
    ticket = queue.join()
    progress = ProgressMessage(
        services, req.channel_id, env.name, target, planned, queue=queue, ticket=ticket
    )
    try:
        await progress.start()
    except SlackApiError as exc:
        queue.abandon(ticket)
        return Reply(f":warning: {not_a_member(str(exc.response.get('error')))}")
    work = await services.in_flight.begin(
        KIND,
        channel=req.channel_id,
        message_ts=progress.ts,
        payload={"scopes": args.scopes, "env": args.env, "env_name": env.name},
        requested_by=req.user_id,
    )
    try:
        async with queue.running(ticket):
            await progress.begin()
            try:
                report = await services.run_checks(runner, args.scopes, progress.add)
            finally:
                await progress.stop()
            if args.scopes:
                # A scoped run sees part of the path: say what a full run here found recently.
                note = await asyncio.to_thread(_recent_full_run_note, services, req.channel_id)
                if note:
                    report.verdict = f"{report.verdict} {note}"
            await finish(report, req, services, progress.ts, target)
    except Exception as exc:
        # The message must not stay at "Diagnosing…": it says what happened and offers a retry.
        await progress.stop()
        if not await progress.fail(args, exc):
            services.in_flight.abandon(work)  # recovery edits the message once Slack answers
            raise
    await services.in_flight.end(work)
    return None


async def recover(services: Services, work: Any) -> None:
    """A diagnose a dead process left queued or mid-run: its message says it was interrupted."""
    payload = work.payload or {}
    args = DiagnoseArgs(scopes=list(payload.get("scopes") or []), env=payload.get("env"))
    env = payload.get("env_name") or args.env or "the environment"
    text, blocks = stopped_blocks(
        f"This diagnose of {env} was interrupted: the bot stopped before it finished, so "
        "nothing was recorded.",
        args,
    )
    await services.outbound.update(work.channel, work.message_ts, text, blocks)


async def finish(
    report: Any, req: CommandRequest, services: Services, ts: str, target: str
) -> None:
    """Record the run, then turn the progress message into the final view."""
    metrics.DIAGNOSES.observe(report.duration_ms / 1000)
    for outcome in report.outcomes:
        if outcome.status in (Status.ERROR, Status.TIMEOUT):
            metrics.CHECK_PROBLEMS.labels(outcome.layer, str(outcome.status)).inc()
    recorded = await asyncio.to_thread(_record, report, req, services)
    incident = recorded.incident
    # Reading the runbook files is disk work: off the event loop like the store.
    actions = await asyncio.to_thread(_actions, report, incident, recorded.run_id, report.env)
    text, blocks, overflow = await offload(report_blocks, report, target=target, actions=actions)
    if incident is not None:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Recorded on incident #{incident.id}: {incident.title}",
                    }
                ],
            }
        )
    await services.outbound.update(req.channel_id, ts, text, blocks)
    if recorded.fault:
        await services.outbound.post(
            req.channel_id,
            f":warning: Diagnose posted but not saved to the incident log: {recorded.fault}.",
        )
    if overflow:
        for chunk in await offload(thread_detail, report):
            await services.outbound.post(req.channel_id, chunk, thread_ts=ts)


def thread_detail(report: Any) -> list[str]:
    """The thread under the final view: every finding but the lead's, with its evidence, and
    the passing checks on one line (a handful of messages, not one per check)."""
    shown = [
        o for o in report.outcomes if o.status != Status.PASS and o is not report.first_failure
    ]
    passed = [o.id for o in report.outcomes if o.status == Status.PASS]
    chunks = detail_chunks(shown)
    if passed:
        chunks.append(f"*Passed ({len(passed)}):* " + ", ".join(f"`{i}`" for i in passed))
    return chunks


@dataclass
class Recorded:
    """Where a run was recorded, or why it could not be (``fault``: the store's short cause)."""

    incident: Any = None
    run_id: int | None = None
    fault: str | None = None


def _record(report: Any, req: CommandRequest, services: Services) -> Recorded:
    from bot.incident.store import StoreError

    try:
        store = services.store()
        with store.session():
            incident = store.open_incident_for_channel(req.channel_id)
            run_id = store.record_run(
                report.to_json(),
                incident_id=incident.id if incident else None,
                channel=req.channel_id,
                requested_by=req.user_id,
                request_key=req.request_key,
            )
        return Recorded(incident, run_id)
    except StoreError as exc:  # the answer still reaches the channel; the channel is told
        log.warning("diagnose run in %s not recorded: %s", req.channel_id, exc.message)
        return Recorded(fault=exc.reason)


def _actions(report: Any, incident: Any, run_id: int | None, env: str) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    first: CheckOutcome | None = report.first_failure
    # The runbook for what broke (the cause), else for where it shows.
    runbook = _suggested_runbook(lead_outcome(report)) or _suggested_runbook(first)
    if runbook is not None:
        actions.append(
            {
                "type": "button",
                "action_id": "runbook_start",
                "text": {"type": "plain_text", "text": f"Start runbook: {runbook.title}"},
                "value": runbook.id,
                "style": "primary",
            }
        )
    if incident is None and first is not None:
        actions.append(
            {
                "type": "button",
                "action_id": "incident_declare",
                "text": {"type": "plain_text", "text": "Declare incident"},
                "value": json.dumps({"run_id": run_id, "env": env}),
                "style": "primary",
            }
        )
    return actions


def _recent_full_run_note(services: Any, channel: str) -> str | None:
    from datetime import UTC, datetime

    from bot.diagnosis.verdict import recent_full_run_note

    try:
        runs = services.store().runs(limit=20)
    except Exception as exc:  # the scoped answer still goes out without the note
        log.info("could not read recent runs: %s", type(exc).__name__)
        return None
    return recent_full_run_note(runs, channel=channel, now=datetime.now(UTC))


def _suggested_runbook(first: CheckOutcome | None) -> Any:
    if first is None:
        return None
    from bot.runbook.catalog import catalog
    from bot.runbook.model import suggest_runbook

    return suggest_runbook(catalog().values(), first.layer, first.check_id, first.subject)


def run_again_button(args: DiagnoseArgs) -> dict[str, Any]:
    """A button that runs the same diagnose again (after a failure or an interruption)."""
    return {
        "type": "button",
        "action_id": RUN_AGAIN,
        "text": {"type": "plain_text", "text": "Run again"},
        "value": json.dumps({"scopes": args.scopes, "env": args.env}),
        "style": "primary",
    }


def stopped_blocks(headline: str, args: DiagnoseArgs) -> tuple[str, list[dict[str, Any]]]:
    """The view of a diagnose that did not finish: what happened, and *Run again*."""
    return headline, [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {headline}"}},
        {"type": "actions", "elements": [run_again_button(args)]},
    ]


@dataclass
class ProgressMessage:
    """One Slack message for one run: "queued, N ahead" while it waits for a slot, then the
    checks as they finish (updated at most once a second), then the final view."""

    services: Services
    channel: str
    env: str
    target: str
    planned: list[Any]
    queue: RunQueue | None = None
    ticket: Ticket | None = None
    done: list[CheckOutcome] = field(default_factory=list)
    ts: str = ""
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _ticker: asyncio.Task[None] | None = None

    @property
    def queued(self) -> bool:
        return self.ticket is not None and not self.ticket.started

    def _render(self) -> tuple[str, list[dict[str, Any]]]:
        if self.queued:
            return self._render_queued()
        layers = list(dict.fromkeys(i.layer for i in self.planned))
        return progress_blocks(self.env, self.target, self.done, layers, len(self.planned))

    def _render_queued(self) -> tuple[str, list[dict[str, Any]]]:
        assert self.queue is not None and self.ticket is not None
        ahead = self.queue.ahead(self.ticket)
        text = (
            f"Queued: diagnose {self.env} ({self.target}), {ahead} ahead. It starts when one of "
            f"the {self.queue.limit} diagnoses running now finishes."
        )
        return text, [
            {"type": "section", "text": {"type": "mrkdwn", "text": f":hourglass: {text}"}}
        ]

    async def start(self) -> None:
        text, blocks = self._render()
        self.ts = await self.services.outbound.post(self.channel, text, blocks)
        if self.queued:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_queued())

    async def begin(self) -> None:
        """The run got its slot: show the checks from now on."""
        await self.stop()
        if self.ticket is not None and self.ticket.waited:
            await self._show()  # it said "queued": say at once that it runs now
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def add(self, outcome: CheckOutcome) -> None:
        self.done.append(outcome)
        self._dirty.set()

    async def _show(self) -> None:
        text, blocks = await offload(self._render)
        try:
            await self.services.outbound.update(self.channel, self.ts, text, blocks)
        except Exception as exc:  # a missed progress frame is harmless; the final view is not
            log.info("progress update skipped: %s", type(exc).__name__)

    async def _tick(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(UPDATE_INTERVAL)
            self._dirty.clear()
            await self._show()

    async def _tick_queued(self) -> None:
        """Refresh "N ahead" now and then: chat.update is rate limited, and a queue of fifty
        refreshed at every change would spend the budget the running diagnoses need."""
        assert self.queue is not None and self.ticket is not None
        shown = self.queue.ahead(self.ticket)
        while self.queued:
            await asyncio.sleep(QUEUE_REFRESH)
            ahead = self.queue.ahead(self.ticket)
            if self.queued and ahead != shown:
                shown = ahead
                await self._show()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None

    async def fail(self, args: DiagnoseArgs, exc: Exception) -> bool:
        """Turn the message into "did not finish" with *Run again*; False if that failed too."""
        if isinstance(exc, HokusaiError):
            why = exc.message
            log.warning("diagnose in %s did not finish: %s", self.channel, why)
        else:
            why = f"it failed ({type(exc).__name__}; the details are in the bot's log)"
            log.exception("diagnose in %s failed (%s)", self.channel, type(exc).__name__)
        text, blocks = stopped_blocks(f"This diagnose of {self.env} did not finish: {why}.", args)
        try:
            await self.services.outbound.update(self.channel, self.ts, text, blocks)
        except Exception as update_exc:
            log.warning("could not mark the diagnose message failed: %s", type(update_exc).__name__)
            return False
        return True


# -- Run again --------------------------------------------------------------------------------


def register_actions(app: Any, services: Services) -> None:
    """*Run again* on a diagnose that failed or was interrupted."""
    services.in_flight.handlers[KIND] = recover

    @app.action(RUN_AGAIN)
    async def _run_again_clicked(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        user = (body.get("user") or {}).get("id", "")
        channel = (body.get("channel") or {}).get("id", "")
        services.spawn(_run_again(services, body), notify=(channel, user))


async def _run_again(services: Services, body: dict[str, Any]) -> None:
    action = (body.get("actions") or [{}])[0]
    channel = body.get("channel") or {}
    user = (body.get("user") or {}).get("id", "")
    try:
        value = json.loads(action.get("value") or "{}")
        args = DiagnoseArgs(
            scopes=[str(s) for s in value.get("scopes") or []], env=value.get("env") or None
        )
    except (ValueError, AttributeError, TypeError):
        raise UsageError("that button does not carry a diagnose to run again") from None
    if not services.access.channel_allowed(channel.get("id", ""), channel.get("name")):
        await services.outbound.ephemeral(channel.get("id", ""), user, channel_refusal())
        return
    message_ts = (body.get("container") or {}).get("message_ts", "")
    req = CommandRequest(
        text=" ".join(["diagnose", *args.scopes]),
        args=["diagnose", *args.scopes],
        user_id=user,
        channel_id=channel.get("id", ""),
        channel_name=channel.get("name", ""),
        response_url=body.get("response_url", ""),
        request_key=f"again:{message_ts}:{action.get('action_ts', '')}",
    )
    if not await asyncio.to_thread(services.claim_request, req.request_key):
        return
    try:
        reply = await handle(args, req, services)
    except AccessRefused as exc:
        reply = Reply(str(exc))
    if reply is not None:
        await services.outbound.ephemeral(req.channel_id, user, reply.text, reply.blocks)
