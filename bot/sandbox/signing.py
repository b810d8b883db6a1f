"""Signed Slack requests, built the way Slack builds them, for tests and the demo.

Slack signs every request with ``v0=`` + HMAC-SHA256(signing secret, ``v0:{ts}:{body}``) in
``X-Slack-Signature`` and the time in ``X-Slack-Request-Timestamp``. The helpers here produce
the exact bodies Slack sends (form-encoded slash commands and interactions, JSON events) and
sign them, so the real Bolt app can verify them with slack_sdk's ``SignatureVerifier``.

Example::

    request = slash_command(secret, "diagnose dns", response_url=slack.response_url("run-1"))
    response = await app.async_dispatch(AsyncBoltRequest(body=request.text,
                                                         headers=request.headers))

The ``*_payload`` builders return the dicts alone, for Socket Mode envelopes.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import string
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bot.sandbox.slack import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_CHANNEL_NAME,
    TEAM_DOMAIN,
    TEAM_ID,
)

__all__ = [
    "DEFAULT_USER_ID",
    "DEFAULT_USER_NAME",
    "SignedRequest",
    "block_action",
    "block_actions_payload",
    "event",
    "event_payload",
    "interaction",
    "new_trigger_id",
    "sign",
    "slash_command",
    "slash_command_payload",
    "url_verification",
    "view_state",
    "view_submission",
    "view_submission_payload",
]

DEFAULT_USER_ID = "U0ONCALL"
DEFAULT_USER_NAME = "oncall"
# Nothing listens on the discard port: a response_url left at its default fails loudly on
# loopback instead of reaching Slack. Tests pass SlackStandIn.response_url(key).
_UNREACHABLE_RESPONSE_BASE = "http://127.0.0.1:9/commands"
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
_sequence = itertools.count(1)


@dataclass(frozen=True)
class SignedRequest:
    """A request body and the headers Slack would send with it."""

    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        """The body as text, as ``BoltRequest(body=...)`` takes it."""
        return self.body.decode("utf-8")

    def json(self) -> dict[str, Any]:
        """The body parsed as JSON (events), for assertions."""
        return json.loads(self.body)


def sign(signing_secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The two signature headers for ``body`` sent at ``timestamp`` (Unix seconds)."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def _signed(
    signing_secret: str,
    body: bytes,
    content_type: str,
    timestamp: int | None,
    retry_num: int | None,
    retry_reason: str | None,
) -> SignedRequest:
    headers = {
        "Content-Type": content_type,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    headers.update(sign(signing_secret, body, int(time.time()) if timestamp is None else timestamp))
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    return SignedRequest(body=body, headers=headers)


def new_trigger_id(issued_at: float | None = None) -> str:
    """A unique trigger id shaped like Slack's (``digits.<unix time>.hex``).

    The Slack stand-in refuses it for views.open 3 seconds after ``issued_at`` (default: now).
    """
    issued = int(time.time() if issued_at is None else issued_at)
    return f"{next(_sequence) + 1000000000}.{issued}.{uuid.uuid4().hex[:28]}"


def _verification_token() -> str:
    # The deprecated verification token Slack still sends; random so nothing secret-shaped
    # sits in the source, and never checked by Bolt.
    return "".join(random.choices(string.ascii_letters + string.digits, k=24))


def _default_response_url() -> str:
    return f"{_UNREACHABLE_RESPONSE_BASE}/{TEAM_ID}/{next(_sequence)}/{uuid.uuid4().hex[:24]}"


# ------------------------------------------------------------------ slash commands


def slash_command_payload(
    text: str,
    *,
    command: str = "/hokusai",
    user_id: str = DEFAULT_USER_ID,
    user_name: str = DEFAULT_USER_NAME,
    channel_id: str = DEFAULT_CHANNEL_ID,
    channel_name: str = DEFAULT_CHANNEL_NAME,
    team_id: str = TEAM_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, str]:
    """A slash command's fields in Slack's order; also the Socket Mode payload."""
    return {
        "token": _verification_token(),
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url or _default_response_url(),
        "trigger_id": trigger_id or new_trigger_id(),
    }


def slash_command(
    signing_secret: str,
    text: str,
    *,
    command: str = "/hokusai",
    user_id: str = DEFAULT_USER_ID,
    user_name: str = DEFAULT_USER_NAME,
    channel_id: str = DEFAULT_CHANNEL_ID,
    channel_name: str = DEFAULT_CHANNEL_NAME,
    team_id: str = TEAM_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> SignedRequest:
    """A signed, form-encoded slash command as Slack POSTs it to the request URL.

    ``retry_num`` marks a redelivery (``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``).
    """
    payload = slash_command_payload(
        text,
        command=command,
        user_id=user_id,
        user_name=user_name,
        channel_id=channel_id,
        channel_name=channel_name,
        team_id=team_id,
        response_url=response_url,
        trigger_id=trigger_id,
    )
    body = urlencode(payload).encode()
    return _signed(signing_secret, body, _FORM, timestamp, retry_num, retry_reason)


# ------------------------------------------------------------------ interactions


def interaction(
    signing_secret: str,
    payload: dict[str, Any],
    *,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> SignedRequest:
    """A signed interaction (block_actions, view_submission...): form body ``payload=<json>``."""
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
    return _signed(signing_secret, body, _FORM, timestamp, retry_num, retry_reason)


def _user(user_id: str, user_name: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def block_actions_payload(
    action_id: str,
    value: str | None = None,
    *,
    block_id: str | None = None,
    message_ts: str = "1700000000.000100",
    message_text: str = "",
    message_blocks: list[dict[str, Any]] | None = None,
    user_id: str = DEFAULT_USER_ID,
    user_name: str = DEFAULT_USER_NAME,
    channel_id: str = DEFAULT_CHANNEL_ID,
    channel_name: str = DEFAULT_CHANNEL_NAME,
    team_id: str = TEAM_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """A realistic block_actions payload for one button click on a bot message."""
    block_id = block_id or f"{action_id}-block"
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": "button",
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "action_ts": f"{int(time.time())}.{next(_sequence):06d}",
    }
    if value is not None:
        action["value"] = value
    return {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": _verification_token(),
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": message_ts,
            "text": message_text,
            "blocks": message_blocks or [],
            "team": team_id,
        },
        "state": {"values": {}},
        "response_url": response_url or _default_response_url(),
        "actions": [action],
    }


def block_action(
    signing_secret: str,
    action_id: str,
    value: str | None = None,
    *,
    timestamp: int | None = None,
    **payload_fields: Any,
) -> SignedRequest:
    """A signed block_actions request; keyword arguments go to ``block_actions_payload``."""
    payload = block_actions_payload(action_id, value, **payload_fields)
    return interaction(signing_secret, payload, timestamp=timestamp)


def view_submission_payload(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    *,
    private_metadata: str = "",
    view_id: str = "V000000001",
    user_id: str = DEFAULT_USER_ID,
    user_name: str = DEFAULT_USER_NAME,
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """A view_submission payload.

    ``values`` is Slack's ``state.values``: ``{block_id: {action_id: {"type": ...,
    "value": ...}}}``.
    """
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": _verification_token(),
        "trigger_id": trigger_id or new_trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_state(view: dict[str, Any], values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Slack's ``state.values`` for a modal as a person filled it in.

    ``values`` maps an input block's ``block_id`` to what was typed or picked (the option's
    ``value``, the user id); blocks left out keep their initial value, as in Slack.
    """
    state: dict[str, dict[str, Any]] = {}
    for block in view.get("blocks") or []:
        element = block.get("element") or {}
        if block.get("type") != "input" or "action_id" not in element:
            continue
        kind = element.get("type")
        given = values.get(block["block_id"])
        entry: dict[str, Any] = {"type": kind}
        if kind in ("static_select", "radio_buttons"):
            options = {o["value"]: o for o in element.get("options") or []}
            chosen = options.get(str(given)) if given is not None else element.get("initial_option")
            entry["selected_option"] = chosen
        elif kind == "users_select":
            entry["selected_user"] = given if given is not None else element.get("initial_user")
        else:
            entry["value"] = given if given is not None else element.get("initial_value")
        state[block["block_id"]] = {element["action_id"]: entry}
    return state


def view_submission(
    signing_secret: str,
    callback_id: str,
    values: dict[str, dict[str, Any]],
    *,
    timestamp: int | None = None,
    **payload_fields: Any,
) -> SignedRequest:
    """A signed view_submission; keyword arguments go to ``view_submission_payload``."""
    payload = view_submission_payload(callback_id, values, **payload_fields)
    return interaction(signing_secret, payload, timestamp=timestamp)


# ------------------------------------------------------------------ Events API


def event_payload(
    event: dict[str, Any],
    *,
    event_id: str | None = None,
    event_time: int | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """An ``event_callback`` envelope around ``event`` (the Socket Mode ``events_api`` payload)."""
    return {
        "token": _verification_token(),
        "team_id": team_id,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{uuid.uuid4().hex}",
    }


def event(
    signing_secret: str,
    event: dict[str, Any],
    *,
    event_id: str | None = None,
    event_time: int | None = None,
    team_id: str = TEAM_ID,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> SignedRequest:
    """A signed Events API request; reuse ``event_id`` with ``retry_num`` for a redelivery."""
    payload = event_payload(event, event_id=event_id, event_time=event_time, team_id=team_id)
    body = json.dumps(payload).encode()
    return _signed(signing_secret, body, _JSON, timestamp, retry_num, retry_reason)


def url_verification(
    signing_secret: str, challenge: str, *, timestamp: int | None = None
) -> SignedRequest:
    """The signed challenge Slack sends when the Events request URL is saved."""
    payload = {"token": _verification_token(), "challenge": challenge, "type": "url_verification"}
    body = json.dumps(payload).encode()
    return _signed(signing_secret, body, _JSON, timestamp, None, None)
