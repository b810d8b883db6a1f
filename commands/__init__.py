"""The /hokusai subcommands, one module each, and the listener that routes to them.

A module declares NAME, SUMMARY, USAGE, INLINE, ``parse(args)`` and ``handle(parsed, req,
services)``, and optionally ``register_actions(app, services)`` for its buttons. Adding a
module to ``_MODULES`` is all it takes to appear in ``/hokusai help`` and the router.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bot.errors import HokusaiError
from bot.outbound import post_refused
from bot.slack.access import AccessRefused, channel_refusal
from bot.slack.commanding import CommandRequest, Reply, UsageError, not_a_member

if TYPE_CHECKING:
    from bot.slack.services import Services

log = logging.getLogger(__name__)

# In the order /hokusai help lists them.
_MODULES = ("help", "diagnose", "watch", "incident", "ticket", "runbook")


def _load() -> dict[str, ModuleType]:
    modules = (importlib.import_module(f"commands.{name}") for name in _MODULES)
    return {module.NAME: module for module in modules}


COMMANDS: dict[str, ModuleType] = _load()


def usage_lines(*modules: ModuleType) -> list[str]:
    """``/hokusai ...`` usage lines of ``modules`` (default: every subcommand), in help order.

    /hokusai help, the usage replies and the README's usage block all come from here.
    """
    return [
        f"/hokusai {line}" for m in modules or COMMANDS.values() for line in m.USAGE.splitlines()
    ]


def usage_text() -> str:
    return "```" + "\n".join(usage_lines()) + "```"


def usage_reply(problem: str, module: ModuleType | None = None) -> Reply:
    """An ephemeral usage message: what was wrong, then how to ask."""
    if module is not None:
        usage = "\n".join(usage_lines(module))
        text = f"{problem}\nUsage:\n```{usage}```"
    else:
        text = f"{problem}\nUsage:\n{usage_text()}\nTry `/hokusai help`."
    return Reply(text)


def register(app: Any, services: Services) -> None:
    """Wire /hokusai and every module's actions into a Bolt app."""
    app.command("/hokusai")(_make_listener(services))
    for module in COMMANDS.values():
        register_actions = getattr(module, "register_actions", None)
        if register_actions is not None:
            register_actions(app, services)


def _make_listener(services: Services):
    outbound = services.outbound

    async def hokusai(ack, body, request) -> None:
        is_retry = bool(request.headers.get("x-slack-retry-num"))
        req = CommandRequest.from_body(body, is_retry=is_retry)
        word = req.args[0].lower() if req.args else "help"
        module = COMMANDS.get(word)
        if module is None:
            reply = usage_reply(f"I don't know `{_short(word)}`.")
            await ack(**outbound.ack_payload(reply.text, reply.blocks))
            return
        if word != "help" and not services.access.channel_allowed(req.channel_id, req.channel_name):
            await ack(**outbound.ack_payload(channel_refusal()))
            return
        try:
            parsed = module.parse(req.args[1:])
        except UsageError as exc:
            reply = usage_reply(str(exc), module)
            await ack(**outbound.ack_payload(reply.text, reply.blocks))
            return
        if module.INLINE:
            # Idempotent and answered in the ack: a redelivery deserves the answer again.
            reply = await module.handle(parsed, req, services)
            await ack(**outbound.ack_payload(reply.text, reply.blocks))
            return
        await ack()
        services.spawn(_run(module, parsed, req, services))

    return hokusai


async def _run(module: ModuleType, parsed: Any, req: CommandRequest, services: Services) -> None:
    # After the ack, so a slow database never costs Slack's 3 seconds.
    try:
        if not await asyncio.to_thread(
            services.claim_request, req.request_key, is_retry=req.is_retry
        ):
            return  # Slack redelivered a command whose work has already started
        reply = await module.handle(parsed, req, services)
    except UsageError as exc:
        reply = usage_reply(str(exc), module)
    except AccessRefused as exc:
        reply = Reply(str(exc))
    except HokusaiError as exc:
        # An error meant for people: its message is the answer (the one place it is mapped).
        log.warning("/hokusai %s: %s", module.NAME, exc.message)
        reply = Reply(f":warning: `/hokusai {module.NAME}`: {exc.message}")
    except Exception as exc:
        refused = post_refused(exc)
        if refused:
            # The channel would not take a post (the bot is not in it): say so, through the
            # response_url, which works where the bot is not a member.
            log.warning("/hokusai %s: the channel refused a post (%s)", module.NAME, refused)
            reply = Reply(f":warning: `/hokusai {module.NAME}`: {not_a_member(refused)}")
        else:
            # One place turns a failure into a short answer; the traceback goes to the log only.
            log.exception("/hokusai %s failed (%s)", module.NAME, type(exc).__name__)
            reply = Reply(
                f":warning: `/hokusai {module.NAME}` failed: {type(exc).__name__}. "
                "Nothing was changed; the details are in the bot's log."
            )
    if reply is not None:
        await deliver(reply, req, services)


async def deliver(reply: Reply, req: CommandRequest, services: Services) -> str | None:
    """Post a reply: ephemeral through response_url, in-channel with its thread."""
    outbound = services.outbound
    if reply.ephemeral:
        if req.response_url:
            await outbound.respond(req.response_url, reply.text, reply.blocks)
        else:
            await outbound.ephemeral(req.channel_id, req.user_id, reply.text, reply.blocks)
        return None
    try:
        ts = await outbound.post(req.channel_id, reply.text, reply.blocks)
    except Exception as exc:
        refused = post_refused(exc)
        if not (refused and req.response_url):
            raise
        # Meant for the channel, which refuses the bot: its author still gets the answer.
        note = f":lock: Only you see this: {not_a_member(refused)}"
        blocks = reply.blocks and [_context(note), *reply.blocks]
        await outbound.respond(req.response_url, f"{note}\n{reply.text}", blocks)
        return None
    for follow_up in reply.thread:
        await outbound.post(req.channel_id, follow_up.text, follow_up.blocks, thread_ts=ts)
    return ts


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _short(word: str) -> str:
    return word if len(word) <= 30 else word[:29] + "…"
