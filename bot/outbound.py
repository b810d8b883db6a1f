"""The choke point: everything that leaves the process is redacted here first.

Slack messages, blocks, modals, App Home, ephemeral replies, ``response_url`` posts, ticket
bodies, incident-log rows (``scrub``), CLI output (``echo``) and log records
(``install_log_redaction``) all pass through this module. No other module calls Slack's Web API
or writes the incident store with unredacted data; ``tests/test_choke_point.py`` walks the
source to keep it that way.

Text bound for Slack is also neutralised (``bot.mrkdwn``): in every mrkdwn text, ``&``, ``<``
and ``>`` from outside the bot are escaped, so a ``<!channel>`` or ``<https://x|label>`` in a
log line, a body or a ticket title shows as typed; only the mentions and links the bot built
with ``bot.mrkdwn`` stay live. Everything not bound for Slack gets those as plain text.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.diagnosis.render import protect_wildcards
from bot.mrkdwn import neutralise, plain
from bot.offload import offload
from bot.redaction import RedactingFilter, Redactor, default_redactor
from bot.tls import client_context

log = logging.getLogger(__name__)

# Block Kit limits: slack-sdk does not check blocks passed as dicts.
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID = 255
MAX_MESSAGE_TEXT = 3900
MAX_CONTEXT_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_SECTION_FIELDS = 10


# Slack's answers meaning a token will never work again: stop, do not retry.
FATAL_TOKEN_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "not_allowed_token_type",
        "team_disabled",
    }
)


async def app_token_problem(app_token: str, base_url: str) -> str | None:
    """Slack's error for an app-level token (``apps.connections.open``), or None."""
    client = AsyncWebClient(token=app_token, base_url=base_url, timeout=10)
    try:
        await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "")
        return error if error in FATAL_TOKEN_ERRORS else None
    except Exception as exc:
        log.warning("could not check SLACK_APP_TOKEN: %s", type(exc).__name__)
    return None


# Slack's answers meaning "this channel will not take the bot's message" (not a member, a
# private channel it cannot see, archived): the person is told through the response_url.
CHANNEL_REFUSALS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})


def post_refused(exc: BaseException) -> str | None:
    """The Slack error code when ``exc`` is a channel refusing the bot; None otherwise."""
    response = getattr(exc, "response", None)
    error = response.get("error") if response is not None else None
    return error if error in CHANNEL_REFUSALS else None


def scrub(value: Any) -> Any:
    """Redact a string or any structure of dicts/lists holding strings (for the incident log,
    trackers and files: the bot's own mentions and links become plain text)."""
    return _plain(default_redactor().redact(value))


def echo(text: str, stream: IO[str] | None = None) -> None:
    """Print to the terminal, redacted: the CLI's only way out."""
    out = stream or sys.stdout
    out.write(plain(default_redactor().redact_text(text)))
    if not text.endswith("\n"):
        out.write("\n")
    out.flush()


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_plain(v) for v in value)
    return value


def neutralise_blocks(value: Any, mrkdwn: bool = False) -> Any:
    """Every mrkdwn text of a Block Kit structure neutralised; other strings (plain_text,
    button values, ids) with the bot's own constructs made plain — Slack acts on neither."""
    if isinstance(value, dict):
        is_mrkdwn = value.get("type") == "mrkdwn"
        return {k: neutralise_blocks(v, is_mrkdwn and k == "text") for k, v in value.items()}
    if isinstance(value, list):
        return [neutralise_blocks(v) for v in value]
    if isinstance(value, str):
        return neutralise(value) if mrkdwn else plain(value)
    return value


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fit_text_object(obj: dict[str, Any], limit: int) -> dict[str, Any]:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return {**obj, "text": _cut(obj["text"], limit)}
    return obj


def _fit_element(element: dict[str, Any]) -> dict[str, Any]:
    element = dict(element)
    if element.get("type") == "button":
        element["text"] = _fit_text_object(element.get("text", {}), MAX_BUTTON_TEXT)
        if isinstance(element.get("value"), str):
            element["value"] = element["value"][:MAX_BUTTON_VALUE]
    if isinstance(element.get("action_id"), str):
        element["action_id"] = element["action_id"][:MAX_ID]
    if element.get("type") in ("mrkdwn", "plain_text"):
        element = _fit_text_object(element, MAX_CONTEXT_TEXT)
    return element


def _protect_mrkdwn(value: Any) -> Any:  # after neutralise_blocks: wildcards are plain text
    """Wildcard paths in every mrkdwn text of a block structure go in code spans."""
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            return {**value, "text": protect_wildcards(value["text"])}
        return {k: _protect_mrkdwn(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_protect_mrkdwn(v) for v in value]
    return value


def fit_blocks(blocks: list[dict[str, Any]] | None, limit: int) -> list[dict[str, Any]] | None:
    """Trim blocks to Slack's limits instead of letting Slack reject the whole message."""
    if blocks is None:
        return None
    fitted = []
    for block in blocks:
        block = dict(block)
        kind = block.get("type")
        if kind == "header":
            block["text"] = _fit_text_object(block.get("text", {}), MAX_HEADER_TEXT)
        elif kind == "section":
            if "text" in block:
                block["text"] = _fit_text_object(block["text"], MAX_SECTION_TEXT)
            if "fields" in block:
                fields = block["fields"][:MAX_SECTION_FIELDS]
                block["fields"] = [_fit_text_object(f, 2000) for f in fields]
            if "accessory" in block:
                block["accessory"] = _fit_element(block["accessory"])
        elif kind == "actions":
            elements = block.get("elements", [])[:MAX_ACTIONS_ELEMENTS]
            block["elements"] = [_fit_element(e) for e in elements]
        elif kind == "context":
            elements = [_fit_element(e) for e in block.get("elements", [])]
            if len(elements) > MAX_CONTEXT_ELEMENTS:
                # The last slot says how many did not fit instead of dropping them unsaid.
                hidden = len(elements) - (MAX_CONTEXT_ELEMENTS - 1)
                elements = elements[: MAX_CONTEXT_ELEMENTS - 1] + [
                    {"type": "mrkdwn", "text": f"…and {hidden} more"}
                ]
            block["elements"] = elements
        if isinstance(block.get("block_id"), str):
            block["block_id"] = block["block_id"][:MAX_ID]
        fitted.append(block)
    if len(fitted) > limit:
        dropped = len(fitted) - (limit - 1)
        fitted = fitted[: limit - 1] + [
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"…{dropped} more blocks not shown"}],
            }
        ]
    return fitted


class Outbound:
    """Sends to Slack, redacted. The only place that calls the Web API.

    Args:
        client: the Web API client (its base URL points at a stand-in in tests and the demo).
        redactor: defaults to the process-wide redactor that knows the process's secrets.
    """

    def __init__(self, client: AsyncWebClient, redactor: Redactor | None = None) -> None:
        self.client = client
        self.redactor = redactor or default_redactor()
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def for_token(cls, token: str | None, base_url: str) -> Outbound:
        client = _CountingWebClient(token=token, base_url=base_url, timeout=10)
        # A 429 is retried after Retry-After instead of losing the message.
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
        return cls(client)

    def _text(self, text: str) -> str:
        """A message's top-level text (mrkdwn, and the notification's words): redacted,
        neutralised, wildcards protected, cut to Slack's limit."""
        text = neutralise(self.redactor.redact_text(text))
        return _cut(protect_wildcards(text), MAX_MESSAGE_TEXT)

    def _blocks(self, blocks: list[dict[str, Any]] | None, limit: int = MAX_MESSAGE_BLOCKS):
        if not blocks:
            return None
        safe = neutralise_blocks(self.redactor.redact(blocks))
        return fit_blocks(_protect_mrkdwn(safe), limit)

    def _view(self, view: dict[str, Any]) -> dict[str, Any]:
        view = neutralise_blocks(self.redactor.redact(view))
        view["blocks"] = fit_blocks(_protect_mrkdwn(view.get("blocks", [])), MAX_VIEW_BLOCKS)
        return view

    async def _clean(
        self, text: str, blocks: list[dict[str, Any]] | None
    ) -> tuple[str, list[dict[str, Any]] | None]:
        """Redacted and fitted text and blocks, worked out off the event loop."""
        return await offload(lambda: (self._text(text), self._blocks(blocks)))

    def ack_payload(self, text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The keyword arguments for Bolt's ``ack()`` carrying an ephemeral reply."""
        payload: dict[str, Any] = {"text": self._text(text), "response_type": "ephemeral"}
        if blocks:
            payload["blocks"] = self._blocks(blocks)
        return payload

    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Post a message; returns its ``ts``."""
        clean_text, clean_blocks = await self._clean(text, blocks)
        kwargs: dict[str, Any] = {"channel": channel, "text": clean_text}
        if clean_blocks:
            kwargs["blocks"] = clean_blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        resp = await self.client.chat_postMessage(**kwargs)
        return resp["ts"]

    async def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        clean_text, clean_blocks = await self._clean(text, blocks)
        kwargs: dict[str, Any] = {"channel": channel, "ts": ts, "text": clean_text}
        kwargs["blocks"] = clean_blocks or []
        await self.client.chat_update(**kwargs)

    async def ephemeral(
        self, channel: str, user: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        clean_text, clean_blocks = await self._clean(text, blocks)
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": clean_text}
        if clean_blocks:
            kwargs["blocks"] = clean_blocks
        await self.client.chat_postEphemeral(**kwargs)

    async def respond(
        self,
        response_url: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        ephemeral: bool = True,
        replace_original: bool = False,
    ) -> None:
        """Post to a ``response_url`` (works where the bot is not a channel member)."""
        clean_text, clean_blocks = await self._clean(text, blocks)
        body: dict[str, Any] = {
            "text": clean_text,
            "response_type": "ephemeral" if ephemeral else "in_channel",
            "replace_original": replace_original,
        }
        if clean_blocks:
            body["blocks"] = clean_blocks
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10, verify=client_context())
        resp = await self._http.post(response_url, json=body)
        if resp.status_code >= 400:
            log.warning("response_url post answered %s", resp.status_code)

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        view = await offload(self._view, view)
        await self.client.views_open(trigger_id=trigger_id, view=view)

    async def publish_home(self, user_id: str, view: dict[str, Any]) -> None:
        view = await offload(self._view, view)
        await self.client.views_publish(user_id=user_id, view=view)

    async def create_channel(self, name: str, *, private: bool = False) -> str:
        resp = await self.client.conversations_create(name=name, is_private=private)
        return resp["channel"]["id"]

    async def set_topic(self, channel: str, topic: str) -> None:
        """Set a channel topic (Slack's limit is 250 characters; plain text, no mentions)."""
        await self.client.conversations_setTopic(
            channel=channel, topic=_cut(self.redactor.redact_text(topic), 250)
        )

    async def archive(self, channel: str) -> None:
        await self.client.conversations_archive(channel=channel)

    async def user_name(self, user_id: str) -> str:
        """The name Slack shows for a person: display name, else real name, else handle."""
        resp = await self.client.users_info(user=user_id)
        user = resp.get("user") or {}
        profile = user.get("profile") or {}
        return (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user_id
        )

    async def invite(self, channel: str, user_ids: list[str]) -> None:
        await self.client.conversations_invite(channel=channel, users=",".join(user_ids))

    async def upload(
        self,
        channel: str,
        filename: str,
        content: str,
        title: str | None = None,
        thread_ts: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Share a file in a channel; ``comment`` is the message line that carries it."""
        kwargs: dict[str, Any] = {
            "channel": channel,
            "filename": filename,
            "content": plain(await offload(self.redactor.redact_text, content)),
            "title": plain(self.redactor.redact_text(title or filename)),
        }
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if comment:
            kwargs["initial_comment"] = self._text(comment)
        await self.client.files_upload_v2(**kwargs)

    async def token_problem(self) -> str | None:
        """Slack's error for the bot token (``invalid_auth``, ``token_revoked``...), or None
        when ``auth.test`` accepts it. Network trouble is not the token's fault: None too."""
        try:
            await self.client.auth_test()
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            return error if error in FATAL_TOKEN_ERRORS else None
        except Exception as exc:  # unreachable Slack: start anyway, the log says why
            log.warning("could not check SLACK_BOT_TOKEN: %s", type(exc).__name__)
        return None

    async def usergroup_members(self, usergroup_id: str) -> list[str]:
        """Member ids of a user group (``usergroups.users.list``; scope usergroups:read)."""
        resp = await self.client.usergroups_users_list(usergroup=usergroup_id)
        return list(resp.get("users") or [])

    async def usergroup_ids(self) -> dict[str, str]:
        """User group handles to ids (``usergroups.list``; scope usergroups:read)."""
        resp = await self.client.usergroups_list()
        return {g["handle"]: g["id"] for g in resp.get("usergroups") or [] if g.get("handle")}

    def scrub(self, value: Any) -> Any:
        return _plain(self.redactor.redact(value))

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


class _CountingWebClient(AsyncWebClient):
    """The Web API client, counting Slack's refusals by their error code for ``/metrics``."""

    async def api_call(self, api_method: str, **kwargs: Any) -> Any:
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            code = exc.response.get("error") if exc.response is not None else None
            metrics.ERRORS.labels("slack", metrics.error_kind(str(code or "http"))).inc()
            raise


class JsonLines(logging.Formatter):
    """One JSON object a line (``HOKUSAI_LOG_FORMAT=json``), for log pipelines.

    The record has passed the redacting filter by the time it is formatted.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text or record.exc_info:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def install_log_redaction(redactor: Redactor | None = None, *, json_lines: bool = False) -> None:
    """Redact every log record handled by the root logger's handlers.

    When the process has no handler yet, one is made: plain text lines, or JSON objects.
    """
    flt = RedactingFilter(redactor or default_redactor())
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        if json_lines:
            JsonLines.converter = time.gmtime
            root.handlers[0].setFormatter(JsonLines())
    # One line per HTTP request drowns the log (and the benchmarks); warnings still show.
    for noisy in ("httpx", "httpcore", "botocore.credentials", "botocore.configprovider"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
