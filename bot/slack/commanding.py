"""What a /hokusai subcommand receives and returns.

A command module parses its arguments before the ack (cheap, synchronous) and does its work
after it; ``CommandRequest`` is the request as the module sees it and ``Reply`` is what it
gives back. Sending is not the module's business: ``bot.outbound`` does that.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from bot.errors import HokusaiError


class UsageError(HokusaiError):
    """Bad input; the user gets this message and the command's usage, ephemerally."""


@dataclass
class Reply:
    """A reply to post. Ephemeral replies go only to the person who asked."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    ephemeral: bool = True
    thread: list[Reply] = field(default_factory=list)


@dataclass
class CommandRequest:
    """One /hokusai invocation, reduced to what commands need."""

    text: str
    args: list[str]
    user_id: str
    channel_id: str
    user_name: str = ""
    channel_name: str = ""
    team_id: str = ""
    response_url: str = ""
    trigger_id: str = ""
    request_key: str = ""
    is_retry: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any], *, is_retry: bool = False) -> CommandRequest:
        # Slack escapes &, < and > in what people type. It stays escaped: unescaped, a title
        # like "<!channel>" would ping everyone when the bot posts it back.
        text = (body.get("text") or "").strip()
        return cls(
            text=text,
            args=split_args(text),
            user_id=body.get("user_id", ""),
            user_name=body.get("user_name", ""),
            channel_id=body.get("channel_id", ""),
            channel_name=body.get("channel_name", ""),
            team_id=body.get("team_id", ""),
            response_url=body.get("response_url", ""),
            trigger_id=body.get("trigger_id", ""),
            request_key=request_key(body),
            is_retry=is_retry,
        )


def not_a_member(error: str) -> str:
    """What to do when a channel refuses the bot's post (``not_in_channel``...)."""
    if error == "is_archived":
        return "this channel is archived, so I could not post in it (`is_archived`)."
    return (
        f"I could not post in this channel (`{error}`): I am not a member of it. "
        "Invite me with `/invite @hokusai`, then try again."
    )


def unescape(text: str) -> str:
    """Slack's escaping undone, for text that never goes back into mrkdwn (channel names)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def split_args(text: str) -> list[str]:
    """Split like a shell, but forgive an unbalanced quote (people type them in chat)."""
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'")
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def request_key(body: dict[str, Any]) -> str:
    """A key that is the same for Slack's redeliveries of one command and differs otherwise.

    Slack redelivers the same body, so its ``trigger_id`` identifies the invocation.
    """
    trigger = body.get("trigger_id")
    if trigger:
        return f"cmd:{body.get('team_id', '')}:{trigger}"
    return "cmd:" + ":".join(
        str(body.get(k, "")) for k in ("team_id", "channel_id", "user_id", "text")
    )


def pop_options(args: list[str], known: set[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``key=value`` options (only ``known`` keys) from positional words.

    Example: ``pop_options(["dns", "env=prod"], {"env"})`` -> ``({"env": "prod"}, ["dns"])``.

    Raises:
        UsageError: for an empty value.
    """
    options: dict[str, str] = {}
    rest: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lower() in known:
            if not value:
                raise UsageError(f"`{key}=` needs a value")
            options[key.lower()] = value
        else:
            rest.append(arg)
    return options, rest
