"""`/hokusai watch`: is it fixed, still broken, or flapping? One live message until it recovers.

Without a scope the watch follows the checks that failed in the channel's latest diagnose (the
whole request path when there is none). Each tick updates one message; a recovery or a
regression says so once in its thread, and a recovery offers to move the incident to
monitoring.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.slack.commanding import CommandRequest, Reply, UsageError, pop_options
from bot.watch.limits import (
    DEFAULT_LIMITS,
    SLACK_OPTIONS,
    DurationError,
    format_duration,
    parse_duration,
)

NAME = "watch"
SUMMARY = "Watch the failing checks until they recover: one live message, flapping measured."
USAGE = "watch [scope...] [every=30s] [for=30m] [env=ENV]\nwatch stop"
INLINE = False

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchArgs:
    scopes: list[str]
    every: float | None = None
    duration: float | None = None
    env: str | None = None
    stop: bool = False


def parse(args: list[str]) -> WatchArgs:
    if args and args[0].lower() == "stop":
        if len(args) > 1:
            raise UsageError("`watch stop` takes no arguments")
        return WatchArgs([], stop=True)
    options, scopes = pop_options(args, {"every", "for", "env"})
    for scope in scopes:
        if "=" in scope:
            raise UsageError(f"`{scope}`: the options are `every=`, `for=` and `env=`")
    names = SLACK_OPTIONS
    try:
        every = parse_duration(options["every"], names["every"]) if "every" in options else None
        duration = parse_duration(options["for"], names["for"]) if "for" in options else None
    except DurationError as exc:
        raise UsageError(str(exc)) from None
    # The lower bound of `every` is checked when handled (the app's limits); these are fixed.
    limits = DEFAULT_LIMITS
    if every is not None and every > limits.max_every:
        raise UsageError(f"{names['every']} can be at most {format_duration(limits.max_every)}")
    if duration is not None and duration > limits.max_for:
        raise UsageError(f"{names['for']} can be at most {format_duration(limits.max_for)}")
    return WatchArgs(scopes, every=every, duration=duration, env=options.get("env"))


async def handle(args: WatchArgs, req: CommandRequest, services: Any) -> Reply | None:
    from bot.watch.supervisor import supervisor_for

    supervisor = supervisor_for(services)
    supervisor.start()
    if args.stop:
        return await stop(services, req)
    return await start(args, req, services)


async def start(args: WatchArgs, req: CommandRequest, services: Any) -> Reply | None:
    from bot.diagnosis.runner import UnknownScope
    from bot.incident.store import FAILING_STATUSES, WatchExists
    from bot.watch.engine import select_instances
    from bot.watch.supervisor import first_message, lease_name, supervisor_for

    supervisor = supervisor_for(services)
    limits = supervisor.limits
    every = args.every or limits.default_every
    duration = args.duration or limits.default_for
    try:
        limits.check_every(every)
        limits.check_for(duration, every)
    except DurationError as exc:
        raise UsageError(str(exc)) from None
    store = services.store()
    latest = await asyncio.to_thread(store.latest_run_in_channel, req.channel_id)
    env = services.environment(args.env or (latest.env if latest else None))
    await services.access.require_environment(env.name, req.user_id)
    runner = supervisor.runner(env, every)
    scopes = list(args.scopes)
    origin = "the scopes you named"
    if not scopes and latest is not None and latest.env == env.name:
        failed = await asyncio.to_thread(
            lambda: store.findings(latest.incident_id, run_id=latest.id)
        )
        known = {i.id for i in runner.instances()}
        scopes = [
            f.check_id for f in failed if f.status in FAILING_STATUSES and f.check_id in known
        ]
        origin = f"the checks that failed in the latest diagnose (run {latest.id})"
    try:
        check_ids = select_instances(runner, scopes)
    except UnknownScope as exc:
        raise UsageError(str(exc)) from None
    if not scopes:
        origin = "the whole request path (no failed diagnose in this channel)"
    if not check_ids:
        return Reply("Nothing to watch: those scopes select no request-path checks.")
    incident = await asyncio.to_thread(store.open_incident_for_channel, req.channel_id)
    now = services.clock()
    try:
        row = await asyncio.to_thread(
            lambda: store.start_watch(
                channel_id=req.channel_id,
                incident_id=incident.id if incident else None,
                env=env.name,
                scopes=scopes,
                check_ids=check_ids,
                every_s=every,
                burst=limits.burst,
                recover_after=limits.recover_after,
                ends_at=now + timedelta(seconds=duration),
                actor=req.user_id,
                now=now,
            )
        )
    except WatchExists as exc:
        return Reply(f"{exc}. Stop it with `/hokusai watch stop` first, or wait for it to end.")
    # The message is posted here, so a channel that refuses the bot tells the person at once
    # (the router explains the refusal) and leaves no watch running.
    try:
        text, blocks = first_message(row)
        ts = await services.outbound.post(req.channel_id, text, blocks)
    except Exception:
        await asyncio.to_thread(lambda: store.end_watch(row.id, status="stopped"))
        raise
    await asyncio.to_thread(store.set_watch_message, row.id, ts)
    row = await asyncio.to_thread(store.watch, row.id)
    won = await asyncio.to_thread(
        store.try_lease,
        lease_name(row.id),
        supervisor.holder,
        limits.lease_ttl(every),
        incident_id=row.incident_id,
    )
    if won:
        supervisor.launch(row)
    return Reply(
        f"Watching {len(check_ids)} check{'s' if len(check_ids) != 1 else ''} ({origin}) "
        f"every {format_duration(every)} for {format_duration(duration)}. "
        "Stop with `/hokusai watch stop`."
    )


async def stop(services: Any, req: CommandRequest) -> Reply | None:
    from bot.watch.supervisor import finalize, supervisor_for

    store = services.store()
    row = await asyncio.to_thread(store.active_watch, req.channel_id)
    # The watch's environment; with none running, the one this channel last diagnosed.
    latest = None if row else await asyncio.to_thread(store.latest_run_in_channel, req.channel_id)
    await services.access.require_environment(
        row.env if row else (latest.env if latest else None), req.user_id
    )
    if row is None:
        return Reply("No watch is running in this channel.")
    ended = await asyncio.to_thread(lambda: store.end_watch(row.id, status="stopped"))
    supervisor_for(services).cancel(row.id)
    if ended:
        await finalize(services, row, "stopped", by=req.user_id)
    return Reply(f"Stopped watch #{row.id}.")


def register_actions(app: Any, services: Any) -> None:
    """The "Move incident to monitoring" button a recovery offers."""
    from bot.watch.render import MONITORING_ACTION

    @app.action(MONITORING_ACTION)
    async def _monitoring_button(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        who = ((body.get("channel") or {}).get("id", ""), (body.get("user") or {}).get("id", ""))
        services.spawn(_move_to_monitoring(services, body), notify=who)


async def _move_to_monitoring(services: Any, body: dict[str, Any]) -> None:
    from bot.slack.access import AccessRefused
    from commands.incident import change_status

    channel = body.get("channel") or {}
    channel_id, user_id = channel.get("id", ""), (body.get("user") or {}).get("id", "")
    store = services.store()
    incident = await asyncio.to_thread(store.open_incident_for_channel, channel_id)
    try:
        services.access.require_channel(channel_id, channel.get("name"))
        if incident is not None:
            # Moving the incident is for those who may see its findings.
            await services.access.require_incident(store, incident.id, user_id)
    except AccessRefused as exc:
        await services.outbound.ephemeral(channel_id, user_id, str(exc))
        return
    if incident is None or incident.status in ("monitoring", "resolved"):
        state = f"is already {incident.status}" if incident else "is not open here"
        await services.outbound.ephemeral(channel_id, user_id, f"The incident {state}.")
        return
    req = CommandRequest(
        text="incident status monitoring",
        args=[],
        user_id=user_id,
        channel_id=channel_id,
        response_url=body.get("response_url", ""),
    )
    await change_status(services, req, incident, "monitoring")
