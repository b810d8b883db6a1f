"""A local stand-in for Slack: Web API, response URLs, file uploads and Socket Mode.

The real Bolt app and the real slack_sdk clients talk to it over loopback HTTP exactly as they
would talk to Slack, so tests and ``hokusai demo`` exercise the same code paths as production.
It runs in its own daemon thread with its own event loop, which makes it usable from sync
tests, async tests on any loop, and the demo alike.

It refuses what Slack refuses:

- channels exist only when configured (``add_channel``; the default ``#incidents`` channel,
  with the bot in it) or created with ``conversations.create``: any other id answers
  ``channel_not_found``, and so does a private channel the bot is not in (Slack hides them);
- posting in a public channel the bot has not joined answers ``not_in_channel`` unless the app
  has ``chat:write.public``; inviting, setting a topic, archiving and sharing files there
  answer ``not_in_channel`` whatever the scopes;
- a method whose scope the app lacks answers ``missing_scope`` with ``needed`` and
  ``provided``; the scopes default to manifest.yml's (``METHOD_SCOPES`` maps methods to them);
- every ``blocks`` and ``view`` is validated with slack_sdk's Block Kit models, limits
  included (50 blocks a message, 100 a view, 10 context elements...). An invalid one answers
  ``invalid_blocks`` (views: ``invalid_arguments``; a response_url: HTTP 400) and is kept in
  ``invalid_payloads``, which the test suite checks after every test.

Example::

    with SlackStandIn(bot_token=token) as slack:
        client = AsyncWebClient(token=token, base_url=slack.api_url)
        await client.chat_postMessage(channel="C0INCIDENT", text="hello")
        assert slack.messages("C0INCIDENT")[0]["text"] == "hello"
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import re
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_CHANNEL_ID",
    "DEFAULT_CHANNEL_NAME",
    "METHOD_SCOPES",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "InvalidPayload",
    "RecordedCall",
    "SlackStandIn",
    "UploadedFile",
    "block_kit_errors",
    "manifest_scopes",
    "view_errors",
]

logger = logging.getLogger(__name__)

TEAM_ID = "T0HOKUSAI"
TEAM_DOMAIN = "hokusai-sandbox"
BOT_USER_ID = "U0HOKUSAI"
BOT_ID = "B0HOKUSAI"
APP_ID = "A0HOKUSAI"
DEFAULT_CHANNEL_ID = "C0INCIDENT"
DEFAULT_CHANNEL_NAME = "incidents"
RESPONSE_URL_LIMIT = 5
"""Slack accepts five posts to one response_url; the stand-in refuses the sixth the same way."""
TRIGGER_LIFETIME = 3.0
"""Seconds a trigger_id stays usable for views.open after the click or command."""
ONCALL_USER_ID = "U0ONCALL"

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_JSON_STRING_FIELDS = frozenset(
    {"blocks", "attachments", "view", "files", "metadata", "unfurls", "outputs"}
)
_CHANNEL_NAME_MAX = 80
_CHANNEL_NAME_ALLOWED = re.compile(r"^[a-z0-9_-]+$")
_STOP_TIMEOUT = 10.0

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100

METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    # Bot-token scopes a Web API method needs (Slack's method reference). A conversations.*
    # method needs the first scope for a public channel and the second for a private one;
    # chat.postMessage in a public channel the bot has not joined also needs chat:write.public.
    "api.test": (),
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.getPermalink": (),
    "views.open": (),
    "views.push": (),
    "views.update": (),
    "views.publish": (),
    "conversations.info": ("channels:read", "groups:read"),
    "conversations.create": ("channels:manage", "groups:write"),
    "conversations.invite": ("channels:manage", "groups:write"),
    "conversations.setTopic": ("channels:manage", "groups:write"),
    "conversations.archive": ("channels:manage", "groups:write"),
    "conversations.join": ("channels:join",),
    "conversations.history": ("channels:history", "groups:history"),
    "conversations.replies": ("channels:history", "groups:history"),
    "users.info": ("users:read",),
    "usergroups.list": ("usergroups:read",),
    "usergroups.users.list": ("usergroups:read",),
    "reactions.add": ("reactions:write",),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "apps.connections.open": (),  # the app-level token's connections:write, not a bot scope
}
"""Scopes per method; for ``conversations.*`` ``(public channel, private channel)``."""
_PER_CHANNEL_TYPE = frozenset(m for m in METHOD_SCOPES if m.startswith("conversations."))
_LIVE_STANDINS: weakref.WeakSet[SlackStandIn] = weakref.WeakSet()


def manifest_scopes() -> frozenset[str]:
    """The bot scopes manifest.yml asks for."""
    from bot.slack.manifest import load_manifest

    return frozenset(load_manifest()["oauth_config"]["scopes"]["bot"])


class _SlackError(Exception):
    """A Web API answer of ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass(frozen=True)
class RecordedCall:
    """One request the stand-in received: a Web API method or a response_url post."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    key: str | None = None
    """The response_url key, for ``method == "response_url"``; None otherwise."""


@dataclass
class UploadedFile:
    """A file uploaded through the files.uploadV2 steps."""

    id: str
    name: str
    title: str | None
    content: bytes = b""
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    uploaded: bool = field(default=False, repr=False)


@dataclass(frozen=True)
class InvalidPayload:
    """Blocks or a view Slack would have refused, and why (the test that sent it fails)."""

    method: str
    errors: tuple[str, ...]
    payload: Any


@dataclass
class _Fault:
    status: int
    error: str
    retry_after: int | None
    remaining: int


@dataclass
class _ResponseUrl:
    key: str
    channel: str | None
    user: str | None
    message_ts: str | None
    posts: int = 0


class SlackStandIn:
    """A Slack Web API and Socket Mode server on loopback that records and answers like Slack.

    Args:
        host: loopback address to bind (only loopback is allowed).
        port: port to bind; 0 picks a free one.
        bot_token: when set, Web API calls with any other token answer ``invalid_auth``.
        app_token: when set, ``apps.connections.open`` only accepts this app-level token.
        scopes: the bot scopes the app was granted; default: manifest.yml's.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_token: str | None = None,
        app_token: str | None = None,
        scopes: Iterable[str] | None = None,
    ) -> None:
        if host not in _LOOPBACK_HOSTS:
            raise ValueError(f"the Slack stand-in binds loopback only, not {host!r}")
        self._granted = frozenset(scopes) if scopes is not None else manifest_scopes()
        self.scopes = self._granted
        """The scopes calls are checked against; ``reset()`` restores the granted ones."""
        self._invalid: list[InvalidPayload] = []
        _LIVE_STANDINS.add(self)
        self.host = host
        self._requested_port = port
        self._bot_token = bot_token
        self._app_token = app_token
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._open_sockets = 0
        self._sockets_accepted = 0
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.info": self._conversations_info,
            "conversations.create": self._conversations_create,
            "conversations.invite": self._conversations_invite,
            "conversations.join": self._conversations_join,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.archive": self._conversations_archive,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "reactions.add": self._reactions_add,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "apps.connections.open": self._apps_connections_open,
        }
        self._reset_state()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> SlackStandIn:
        """Start serving in a daemon thread; returns self once the port is listening."""
        if self._thread is not None:
            raise RuntimeError("the Slack stand-in is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:
                failure.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=serve, name="slack-standin", daemon=True)
        self._thread.start()
        if not ready.wait(_STOP_TIMEOUT) or failure:
            self._thread.join(_STOP_TIMEOUT)
            self._thread = None
            self._loop = None
            if failure:
                raise failure[0]
            raise TimeoutError("the Slack stand-in did not start within 10 s")
        return self

    def stop(self) -> None:
        """Close sockets, stop the server and join its thread; safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(self._close(), loop)
            try:
                closing.result(_STOP_TIMEOUT)
            except Exception:
                logger.exception("the Slack stand-in did not shut down cleanly")
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_STOP_TIMEOUT)
        self._thread = None
        self._loop = None
        self._port = None

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _open(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_get("/socket-mode", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, shutdown_timeout=1.0).start()

    async def _close(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"stand-in stopping")
        for future in self._pending_acks.values():
            if not future.done():
                future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        """The port the stand-in listens on (after start)."""
        if self._port is None:
            raise RuntimeError("the Slack stand-in is not running; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """The Web API base URL for ``SLACK_API_URL`` / ``base_url=``; ends with ``/api/``."""
        return self.base_url + "api/"

    @property
    def socket_url(self) -> str:
        """The WebSocket URL ``apps.connections.open`` hands out."""
        return "ws" + self.base_url.removeprefix("http") + "socket-mode"

    def response_url(
        self,
        key: str,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
    ) -> str:
        """A response_url on the stand-in; posts to it are recorded as method ``response_url``.

        Given ``channel``, posts also change the channel the way Slack shows them:
        ``response_type: in_channel`` adds a message, ``replace_original`` / ``delete_original``
        change the message at ``message_ts``, anything else becomes an ephemeral for ``user``.
        """
        with self._lock:
            self._response_urls[key] = _ResponseUrl(key, channel, user, message_ts)
        return f"{self.base_url}response/{quote(key, safe='')}"

    # ---------------------------------------------------------------- recorded calls

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, *, key: str | None = None) -> list[RecordedCall]:
        """The calls to one method (and, for ``response_url``, one key)."""
        with self._lock:
            return [c for c in self._calls if _matches(c, method, key)]

    def responses(self, key: str | None = None) -> list[dict[str, Any]]:
        """The bodies posted to response URLs (to one key, if given)."""
        return [c.args for c in self.calls_to("response_url", key=key)]

    def clear(self) -> None:
        """Forget the recorded calls; channels, messages and files stay."""
        with self._lock:
            self._calls.clear()

    def reset(self) -> None:
        """Forget everything: calls, faults, messages, files, views; channels back to default.

        Invalid payloads stay recorded: a reset between test phases does not hide them.
        """
        with self._lock:
            self._reset_state()
            self.scopes = self._granted

    @property
    def invalid_payloads(self) -> list[InvalidPayload]:
        """Every blocks/view Slack would have refused, oldest first."""
        with self._lock:
            return list(self._invalid)

    def take_invalid_payloads(self) -> list[InvalidPayload]:
        """The invalid payloads so far, forgotten: for tests that send them on purpose."""
        with self._lock:
            taken, self._invalid = self._invalid, []
            return taken

    def check_blocks(self, source: str, blocks: Any, *, limit: int = MAX_MESSAGE_BLOCKS) -> bool:
        """Validate blocks that reach Slack another way (an ack's body); record if invalid."""
        errors = block_kit_errors(blocks, limit=limit)
        if errors:
            with self._lock:
                self._invalid.append(InvalidPayload(source, tuple(errors), copy.deepcopy(blocks)))
        return not errors

    @staticmethod
    def live_instances() -> list[SlackStandIn]:
        """Stand-ins created in this process and not yet garbage-collected."""
        return list(_LIVE_STANDINS)

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 5.0, *, key: str | None = None
    ) -> list[RecordedCall]:
        """Block until ``count`` calls to ``method`` arrived; returns all calls to it so far.

        Raises:
            TimeoutError: naming what did arrive, so a failing test says what the bot did.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self._calls if _matches(c, method, key)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._wait_failure(method, count, timeout, len(found)))
                self._changed.wait(remaining)

    async def wait_for_async(
        self, method: str, count: int = 1, timeout: float = 5.0, *, key: str | None = None
    ) -> list[RecordedCall]:
        """``wait_for`` without blocking the caller's event loop (where the bot may run)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls_to(method, key=key)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(self._wait_failure(method, count, timeout, len(found)))
            await asyncio.sleep(0.01)

    def _wait_failure(self, method: str, count: int, timeout: float, got: int) -> str:
        arrived = ", ".join(_describe(c) for c in self.calls[-20:]) or "nothing"
        hint = ""
        if _caller_has_running_loop():
            hint = " (called from a running event loop: use wait_for_async if the bot runs on it)"
        return (
            f"expected {count} call(s) to {method} within {timeout}s, got {got}{hint}; "
            f"calls received: {arrived}"
        )

    # ---------------------------------------------------------------- workspace model

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_member: bool = True,
        is_private: bool = False,
        members: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Configure a channel (replacing one with the same id); returns its conversations.info.

        ``is_member`` says whether the bot is in it; ``members`` are the people in it.
        """
        with self._lock:
            channel = _new_channel(channel_id, name, is_member=is_member, is_private=is_private)
            channel["members"] += [m for m in members if m not in channel["members"]]
            self._channels[channel_id] = channel
            self._messages.setdefault(channel_id, [])
            return copy.deepcopy(channel)

    def add_usergroup(self, group_id: str, handle: str, users: list[str]) -> None:
        """Create (or replace) a user group, as ``usergroups.list`` and
        ``usergroups.users.list`` will show it."""
        with self._lock:
            self._usergroups[group_id] = {
                "id": group_id,
                "team_id": TEAM_ID,
                "is_usergroup": True,
                "name": handle,
                "handle": handle,
                "user_count": len(users),
                "users": list(users),
            }

    def add_user(
        self, user_id: str, name: str, *, real_name: str | None = None, is_bot: bool = False
    ) -> dict[str, Any]:
        """Add a workspace member users.info knows (unknown ids answer ``user_not_found``).

        The bot and the on-call person the signing helpers act as (``U0ONCALL``, Ona Call)
        exist from the start.
        """
        user = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name or name,
            "tz": "UTC",
            "is_bot": is_bot,
            "profile": {"display_name": real_name or name, "real_name": real_name or name},
        }
        with self._lock:
            self._users[user_id] = user
        return copy.deepcopy(user)

    def channel(self, ref: str) -> dict[str, Any] | None:
        """A channel by id, name or ``#name``, as conversations.info shows it; None if unknown."""
        with self._lock:
            channel = self._find_channel(ref)
            return copy.deepcopy(channel) if channel else None

    @property
    def channels(self) -> list[dict[str, Any]]:
        """All channels the workspace has, in creation order."""
        with self._lock:
            return copy.deepcopy(list(self._channels.values()))

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's messages in ts order, as they stand after updates and deletes.

        Each has ``ts``, ``text``, ``blocks``, ``attachments``, ``thread_ts``, ``user``,
        ``bot_id``, ``files`` and ``updated`` (how many times chat.update changed it).
        """
        with self._lock:
            found = self._find_channel(channel)
            channel_id = found["id"] if found else channel
            return copy.deepcopy(sorted(self._messages.get(channel_id, []), key=_ts_key))

    def ephemeral_messages(
        self, channel: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral and ephemeral response_url posts)."""
        with self._lock:
            return copy.deepcopy(
                [
                    m
                    for m in self._ephemeral
                    if (channel is None or m["channel"] == channel)
                    and (user is None or m["user"] == user)
                ]
            )

    @property
    def files(self) -> list[UploadedFile]:
        """Files whose upload was completed (files.completeUploadExternal), oldest first."""
        with self._lock:
            return list(self._files)

    @property
    def views(self) -> list[dict[str, Any]]:
        """Modals opened and App Home views published: ``{id, kind, user_id, view}``."""
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        """The App Home view last published for a user, or None."""
        with self._lock:
            homes = [v for v in self._views.values() if v["kind"] == "home"]
            for view in reversed(homes):
                if view["user_id"] == user_id:
                    return copy.deepcopy(view["view"])
            return None

    # ---------------------------------------------------------------- fault injection

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        retry_after: int = 1,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail.

        - no ``status`` and no ``error``: HTTP 429 with ``Retry-After: retry_after``,
          ``{"ok": false, "error": "ratelimited"}`` (Slack's rate limit answer);
        - ``error`` only: HTTP 200 with ``{"ok": false, "error": error}``;
        - ``status`` given: that HTTP status (429 adds ``Retry-After``) with ``error`` or a
          default error in the body.

        ``method`` may be ``"response_url"`` or ``"upload"`` too.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if status is None:
            status = 200 if error is not None else 429
        default_error = {200: "fatal_error", 429: "ratelimited"}.get(status, "internal_error")
        fault = _Fault(
            status=status,
            error=error or default_error,
            retry_after=retry_after if status == 429 else None,
            remaining=times,
        )
        with self._lock:
            self._faults.setdefault(method, []).append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    # ---------------------------------------------------------------- Socket Mode

    def socket_connected(self, timeout: float = 5.0) -> bool:
        """Block until a Socket Mode client is connected; True, or TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._open_sockets == 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    opened = len(self.calls_to("apps.connections.open"))
                    raise TimeoutError(
                        f"no Socket Mode client connected within {timeout}s; "
                        f"apps.connections.open calls: {opened}"
                    )
                self._changed.wait(remaining)
            return True

    async def socket_connected_async(self, timeout: float = 5.0) -> bool:
        """``socket_connected`` without blocking the caller's event loop."""
        deadline = time.monotonic() + timeout
        while self.socket_count == 0:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no Socket Mode client connected within {timeout}s")
            await asyncio.sleep(0.01)
        return True

    @property
    def socket_count(self) -> int:
        """How many Socket Mode connections are open."""
        with self._lock:
            return self._open_sockets

    @property
    def sockets_accepted(self) -> int:
        """How many Socket Mode connections were accepted since start, reconnects included."""
        with self._lock:
            return self._sockets_accepted

    @property
    def acks(self) -> list[dict[str, Any]]:
        """Every ack a Socket Mode client sent, oldest first."""
        with self._lock:
            return copy.deepcopy(self._acks)

    def send_envelope(
        self,
        type_: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        envelope_id: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Push an envelope to the connected Socket Mode client and block until its ack.

        Args:
            type_: ``slash_commands``, ``interactive`` or ``events_api``.
            payload: what Slack would put in the envelope (see ``bot.sandbox.signing``).
            accepts_response_payload: default True, except False for ``events_api``.
            retry_attempt, retry_reason: mark a redelivery (Bolt sees them as
                ``x-slack-retry-num`` / ``x-slack-retry-reason`` headers).
            envelope_id: reuse an id to redeliver the same envelope; a new one by default.
            timeout: seconds to wait for a client and then for its ack.

        Returns:
            The ack: ``{"envelope_id": ..., "payload": {...}}`` (payload only when the listener
            acked with content).

        Call ``send_envelope_async`` instead when the bot runs on the caller's event loop.
        """
        envelope = _envelope(
            type_, payload, accepts_response_payload, retry_attempt, retry_reason, envelope_id
        )
        loop = self._running_loop()
        pushed = asyncio.run_coroutine_threadsafe(self._push_envelope(envelope, timeout), loop)
        try:
            return pushed.result(timeout + 5)
        except TimeoutError as exc:
            pushed.cancel()
            if _caller_has_running_loop():
                raise TimeoutError(
                    f"{exc} (called from a running event loop: use send_envelope_async if the "
                    "bot runs on it)"
                ) from None
            raise

    async def send_envelope_async(
        self,
        type_: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        envelope_id: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """``send_envelope`` for callers on an event loop (any loop, including the bot's)."""
        envelope = _envelope(
            type_, payload, accepts_response_payload, retry_attempt, retry_reason, envelope_id
        )
        loop = self._running_loop()
        pushed = asyncio.run_coroutine_threadsafe(self._push_envelope(envelope, timeout), loop)
        return await asyncio.wrap_future(pushed)

    def revoke(self, token: str) -> None:
        """From now on every call with ``token`` answers ``token_revoked`` (as after an admin
        revokes it); open sockets stay open until they reconnect."""
        with self._changed:
            self._revoked.add(token)

    def go_silent(self) -> None:
        """The open sockets stop answering anything, pings included, without closing: what a
        dead network path looks like from the client. New connections behave normally."""
        with self._changed:
            self._silent_sockets.update(self._sockets)

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask connected clients to reconnect, as Slack does before it recycles a socket."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}
        asyncio.run_coroutine_threadsafe(self._broadcast(message), self._running_loop()).result(
            _STOP_TIMEOUT
        )

    async def _broadcast(self, message: dict[str, Any]) -> None:
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.send_json(message)

    async def _push_envelope(self, envelope: dict[str, Any], timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ws = await self._open_socket(deadline, timeout)
        envelope_id = envelope["envelope_id"]
        ack: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending_acks[envelope_id] = ack
        try:
            await ws.send_json(envelope)
            return await asyncio.wait_for(ack, max(deadline - loop.time(), 0.01))
        except TimeoutError:
            raise TimeoutError(
                f"no ack for {envelope['type']} envelope {envelope_id} within {timeout}s "
                f"(Bolt sends none when no listener acks); acks received: {len(self._acks)}"
            ) from None
        finally:
            if self._pending_acks.get(envelope_id) is ack:
                del self._pending_acks[envelope_id]

    async def _open_socket(self, deadline: float, timeout: float) -> web.WebSocketResponse:
        loop = asyncio.get_running_loop()
        while True:
            open_sockets = [ws for ws in self._sockets if not ws.closed]
            if open_sockets:
                return open_sockets[-1]
            if loop.time() >= deadline:
                raise TimeoutError(f"no Socket Mode client connected within {timeout}s")
            await asyncio.sleep(0.01)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self._loop.is_running():
            raise RuntimeError("the Slack stand-in is not running; call start() first")
        return self._loop

    # ---------------------------------------------------------------- HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, parse_error = await _read_args(request)
        token = _bearer_token(request) or args.pop("token", None)
        args.pop("token", None)
        with self._changed:
            self._record(RecordedCall(method, args, token, time.time()))
            fault = self._take_fault(method)
            if fault is None:
                answer = self._answer(method, args, token, parse_error)
        if fault is not None:
            return _fault_response(fault)
        return web.json_response(answer)

    def _answer(
        self, method: str, args: dict[str, Any], token: str | None, parse_error: str | None
    ) -> dict[str, Any]:
        handler = self._methods.get(method)
        try:
            if parse_error:
                raise _SlackError(parse_error)
            if handler is None:
                raise _SlackError("unknown_method")
            self._check_token(method, token)
            self._check_scope(method, args)
            self._check_payload(method, args)
            answer = handler(args)
        except _SlackError as exc:
            return {"ok": False, "error": exc.error, **exc.extra}
        return {"ok": True, **answer}

    def _check_scope(self, method: str, args: dict[str, Any]) -> None:
        needed = METHOD_SCOPES.get(method, ())
        if method in _PER_CHANNEL_TYPE and needed:
            if method == "conversations.create":
                private = _truthy(args.get("is_private"))
            else:
                channel = self._find_channel(str(args.get("channel") or ""))
                private = bool(channel and channel["is_private"])
            needed = needed[1:] if private else needed[:1]
        missing = [scope for scope in needed if scope not in self.scopes]
        if missing:
            raise _SlackError(
                "missing_scope", needed=",".join(missing), provided=",".join(sorted(self.scopes))
            )

    def _check_payload(self, method: str, args: dict[str, Any]) -> None:
        """Block Kit as Slack checks it; a refusal is also recorded for the test to fail on."""
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            blocks = args.get("blocks")
            if blocks in (None, "") or (blocks == [] and method == "chat.update"):
                return
            errors = block_kit_errors(blocks)
            if errors:
                self._invalid.append(InvalidPayload(method, tuple(errors), copy.deepcopy(args)))
                raise _SlackError(
                    "invalid_blocks",
                    errors=errors,
                    response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
                )
        elif method.startswith("views.") and isinstance(args.get("view"), dict):
            kind = "home" if method == "views.publish" else "modal"
            errors = view_errors(args["view"], kind=kind)
            if errors:
                self._invalid.append(InvalidPayload(method, tuple(errors), copy.deepcopy(args)))
                raise _SlackError(
                    "invalid_arguments",
                    response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
                )

    def _check_token(self, method: str, token: str | None) -> None:
        if token and token in self._revoked:
            raise _SlackError("token_revoked")
        if method == "apps.connections.open":
            if not token:
                raise _SlackError("not_authed")
            if not token.startswith("xapp-"):
                raise _SlackError("not_allowed_token_type")
            if self._app_token is not None and token != self._app_token:
                raise _SlackError("invalid_auth")
            return
        if self._bot_token is None:
            return
        if not token:
            raise _SlackError("not_authed")
        if token != self._bot_token:
            raise _SlackError("invalid_auth")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        args, parse_error = await _read_args(request)
        with self._changed:
            self._record(RecordedCall("response_url", args, None, time.time(), key=key))
            fault = self._take_fault("response_url")
            if fault is None:
                binding = self._response_urls.setdefault(key, _ResponseUrl(key, None, None, None))
                binding.posts += 1
                if parse_error:
                    return web.Response(status=400, text=parse_error)
                if binding.posts > RESPONSE_URL_LIMIT:
                    return web.Response(status=404, text="used_url")
                if args.get("blocks") not in (None, ""):
                    errors = block_kit_errors(args["blocks"])
                    if errors:
                        self._invalid.append(
                            InvalidPayload("response_url", tuple(errors), copy.deepcopy(args))
                        )
                        return web.Response(status=400, text="invalid_blocks")
                self._apply_response(binding, args)
        if fault is not None:
            return _fault_response(fault)
        return web.Response(text="ok")

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        content = await request.read()
        with self._changed:
            fault = self._take_fault("upload")
            if fault is None:
                pending = self._pending_files.get(file_id)
                if pending is None:
                    return web.Response(status=404, text="file not found")
                pending.content = content
                pending.uploaded = True
                self._changed.notify_all()
        if fault is not None:
            return _fault_response(fault)
        return web.Response(text=f"OK - {len(content)}")

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        # Pings are answered below ("sdk-ping-pong:<time>" gets its matching pong), unless the
        # socket was made silent, as a connection that died without a close frame is.
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        with self._changed:
            self._sockets.append(ws)
            self._open_sockets += 1
            self._sockets_accepted += 1
            self._changed.notify_all()
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {
                        "host": "applink-standin",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": APP_ID},
                }
            )
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive_ack(message.data)
                elif message.type == WSMsgType.PING and ws not in self._silent_sockets:
                    await ws.pong(message.data)
        finally:
            with self._changed:
                self._sockets.remove(ws)
                self._open_sockets -= 1
                self._changed.notify_all()
        return ws

    def _receive_ack(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            logger.warning("Socket Mode client sent a message that is not JSON")
            return
        if not isinstance(ack, dict) or "envelope_id" not in ack:
            return
        with self._changed:
            self._acks.append(ack)
            self._changed.notify_all()
        pending = self._pending_acks.pop(ack["envelope_id"], None)
        if pending is not None and not pending.done():
            pending.set_result(ack)

    # ---------------------------------------------------------------- state

    def _reset_state(self) -> None:
        self._calls: list[RecordedCall] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemeral: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._pending_files: dict[str, UploadedFile] = {}
        self._files: list[UploadedFile] = []
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._acks: list[dict[str, Any]] = []
        self._usergroups: dict[str, dict[str, Any]] = {}
        self._silent_sockets: set[Any] = set()
        self._revoked: set[str] = set()
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._users: dict[str, dict[str, Any]] = {}
        self.add_channel(DEFAULT_CHANNEL_ID, DEFAULT_CHANNEL_NAME)
        self.add_user(BOT_USER_ID, "hokusai", is_bot=True)
        self.add_user(ONCALL_USER_ID, "oncall", real_name="Ona Call")

    def _record(self, call: RecordedCall) -> None:
        self._calls.append(call)
        self._changed.notify_all()

    def _next_ts(self) -> str:
        n = next(self._ts_counter)
        return f"{1700000000 + n // 10000}.{(n % 10000) * 100:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._id_counter):08d}"

    def _find_channel(self, ref: str) -> dict[str, Any] | None:
        if ref in self._channels:
            return self._channels[ref]
        name = ref.removeprefix("#")
        for channel in self._channels.values():
            if (name and channel["name"] == name) or (
                channel.get("is_im") and channel.get("user") == ref
            ):
                return channel
        return None

    def _channel_for_post(
        self, ref: str | None, *, public_scope: str | None = "chat:write.public"
    ) -> dict[str, Any]:
        """The channel a message goes to, refused the way Slack refuses it.

        A user id is that person's DM with the bot. Elsewhere the bot must be a member, except
        in a public channel when the app has ``public_scope`` (``chat:write.public``).
        """
        if ref and ref[:1] in ("U", "W") and ref not in self._channels:
            return self._direct_message(ref)
        channel = self._existing_channel(ref)
        if channel["is_archived"]:
            raise _SlackError("is_archived")
        if not channel["is_member"] and not (public_scope and public_scope in self.scopes):
            raise _SlackError("not_in_channel")
        return channel

    def _existing_channel(self, ref: str | None) -> dict[str, Any]:
        """A channel the bot can see: it exists, and if private the bot is in it."""
        channel = self._find_channel(ref) if ref else None
        if channel is None or (channel["is_private"] and not channel["is_member"]):
            raise _SlackError("channel_not_found")
        return channel

    def _joined_channel(self, ref: str | None) -> dict[str, Any]:
        """A channel the bot is in (invite, topic, archive); ``not_in_channel`` otherwise."""
        channel = self._existing_channel(ref)
        if not channel["is_member"]:
            raise _SlackError("not_in_channel")
        return channel

    def _direct_message(self, user_id: str) -> dict[str, Any]:
        for channel in self._channels.values():
            if channel.get("is_im") and channel.get("user") == user_id:
                return channel
        channel = _new_channel(self._next_id("D"), user_id.lower(), is_member=True)
        channel.update(is_channel=False, is_im=True, user=user_id, name="")
        channel["members"].append(user_id)
        self._channels[channel["id"]] = channel
        self._messages[channel["id"]] = []
        return channel

    def _find_message(self, channel_id: str, ts: str | None) -> dict[str, Any]:
        for message in self._messages.get(channel_id, []):
            if message["ts"] == ts:
                return message
        raise _SlackError("message_not_found")

    def _post(self, channel_id: str, args: dict[str, Any]) -> dict[str, Any]:
        message = {
            "type": "message",
            "ts": self._next_ts(),
            "channel": channel_id,
            "text": args.get("text") or "",
            "blocks": args.get("blocks") or [],
            "attachments": args.get("attachments") or [],
            "thread_ts": args.get("thread_ts") or None,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "files": args.get("files") or [],
            "metadata": args.get("metadata"),
            "updated": 0,
        }
        self._messages.setdefault(channel_id, []).append(message)
        return message

    def _apply_response(self, binding: _ResponseUrl, body: dict[str, Any]) -> None:
        # A response_url works in any channel the command came from, the bot a member or not.
        channel = self._find_channel(binding.channel) if binding.channel else None
        if channel is None:
            return
        with_original = binding.message_ts is not None
        if _truthy(body.get("delete_original")) and with_original:
            self._messages[channel["id"]] = [
                m for m in self._messages[channel["id"]] if m["ts"] != binding.message_ts
            ]
        elif _truthy(body.get("replace_original")) and with_original:
            for message in self._messages[channel["id"]]:
                if message["ts"] == binding.message_ts:
                    _apply_update(message, body)
        elif body.get("response_type") == "in_channel":
            self._post(channel["id"], body)
        else:
            self._ephemeral.append(
                _ephemeral(channel["id"], binding.user, body, self._next_ts(), via="response_url")
            )

    # ---------------------------------------------------------------- Web API methods

    def _api_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"args": args}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Hokusai",
            "user": "hokusai",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_for_post(args.get("channel"))
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _SlackError("no_text")
        message = self._post(channel["id"], args)
        return {"channel": channel["id"], "ts": message["ts"], "message": _public(message)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._existing_channel(args.get("channel"))
        message = self._find_message(channel["id"], args.get("ts"))
        _apply_update(message, args)
        return {
            "channel": channel["id"],
            "ts": message["ts"],
            "text": message["text"],
            "message": _public(message),
        }

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._existing_channel(args.get("channel"))
        message = self._find_message(channel["id"], args.get("ts"))
        self._messages[channel["id"]].remove(message)
        return {"channel": channel["id"], "ts": message["ts"]}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_for_post(args.get("channel"))
        if not args.get("user"):
            raise _SlackError("user_not_in_channel")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _SlackError("no_text")
        ts = self._next_ts()
        self._ephemeral.append(_ephemeral(channel["id"], args["user"], args, ts, via="api"))
        return {"message_ts": ts}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._existing_channel(args.get("channel"))
        message = self._find_message(channel["id"], args.get("message_ts"))
        link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel['id']}/p"
        return {"channel": channel["id"], "permalink": link + message["ts"].replace(".", "")}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id") or not isinstance(args.get("view"), dict):
            raise _SlackError("invalid_arguments")
        _check_trigger(str(args["trigger_id"]))
        return {"view": self._store_view(self._next_id("V"), "modal", args.get("user_id"), args)}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(args.get("view"), dict):
            raise _SlackError("invalid_arguments")
        view_id = args.get("view_id")
        if view_id is None:
            external = args.get("external_id")
            matching = [v for v in self._views.values() if v["view"].get("external_id") == external]
            view_id = matching[-1]["id"] if external and matching else None
        if view_id not in self._views:
            raise _SlackError("not_found")
        existing = self._views[view_id]
        return {"view": self._store_view(view_id, existing["kind"], existing["user_id"], args)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user_id") or not isinstance(args.get("view"), dict):
            raise _SlackError("invalid_arguments")
        return {"view": self._store_view(self._next_id("V"), "home", args["user_id"], args)}

    def _store_view(
        self, view_id: str, kind: str, user_id: str | None, args: dict[str, Any]
    ) -> dict[str, Any]:
        view = {
            **args["view"],
            "id": view_id,
            "team_id": TEAM_ID,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "type": args["view"].get("type", "modal" if kind == "modal" else "home"),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
        }
        self._views[view_id] = {"id": view_id, "kind": kind, "user_id": user_id, "view": view}
        return copy.deepcopy(view)

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": copy.deepcopy(self._existing_channel(args.get("channel")))}

    def _conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("name") or ""
        _validate_channel_name(name)
        if self._find_channel(name) is not None:
            raise _SlackError("name_taken")
        channel_id = self._next_id("C")
        channel = _new_channel(
            channel_id, name, is_member=True, is_private=_truthy(args.get("is_private"))
        )
        channel["creator"] = BOT_USER_ID
        self._channels[channel_id] = channel
        self._messages[channel_id] = []
        return {"channel": copy.deepcopy(channel)}

    def _conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._joined_channel(args.get("channel"))
        users = [u for u in str(args.get("users") or "").split(",") if u.strip()]
        if not users:
            raise _SlackError("no_user")
        for user in users:
            if user.strip() not in channel["members"]:
                channel["members"].append(user.strip())
        return {"channel": copy.deepcopy(channel)}

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._existing_channel(args.get("channel"))
        if channel["is_archived"]:
            raise _SlackError("is_archived")
        channel["is_member"] = True
        if BOT_USER_ID not in channel["members"]:
            channel["members"].append(BOT_USER_ID)
        return {"channel": copy.deepcopy(channel)}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._existing_channel(args.get("channel"))
        top_level = [m for m in self._messages[channel["id"]] if m["thread_ts"] in (None, m["ts"])]
        newest_first = sorted(top_level, key=_ts_key, reverse=True)
        return {"messages": [_public(m) for m in newest_first], "has_more": False}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._existing_channel(args.get("channel"))
        thread_ts = args.get("ts")
        thread = [
            m
            for m in self._messages[channel["id"]]
            if m["ts"] == thread_ts or m["thread_ts"] == thread_ts
        ]
        if not thread:
            raise _SlackError("thread_not_found")
        return {"messages": [_public(m) for m in sorted(thread, key=_ts_key)], "has_more": False}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(args.get("user") or ""))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _conversations_set_topic(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._member_channel(args.get("channel"), archived="is_archived")
        topic = str(args.get("topic") or "")
        if len(topic) > 250:
            raise _SlackError("too_long")
        channel["topic"] = {"value": topic, "creator": BOT_USER_ID, "last_set": int(time.time())}
        return {"channel": copy.deepcopy(channel)}

    def _conversations_archive(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._member_channel(args.get("channel"), archived="already_archived")
        if channel["is_general"]:
            raise _SlackError("cant_archive_general")
        channel["is_archived"] = True
        return {}

    def _member_channel(self, ref: str | None, *, archived: str) -> dict[str, Any]:
        """A channel the bot may change: it exists, is not archived and has the bot in it."""
        channel = self._existing_channel(ref)
        if channel["is_archived"]:
            raise _SlackError(archived)
        if not channel["is_member"]:
            raise _SlackError("not_in_channel")
        return channel

    def _usergroups_list(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            groups = [dict(g) for g in self._usergroups.values()]
        return {"usergroups": [{k: v for k, v in g.items() if k != "users"} for g in groups]}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group_id = args.get("usergroup")
        if not group_id:
            raise _SlackError("invalid_arguments")
        with self._lock:
            group = self._usergroups.get(group_id)
            if group is None:
                raise _SlackError("no_such_subteam")
            return {"users": list(group["users"])}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._existing_channel(args.get("channel"))
        message = self._find_message(channel["id"], args.get("timestamp"))
        message.setdefault("reactions", []).append(args.get("name"))
        return {}

    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not args.get("length"):
            raise _SlackError("invalid_arguments")
        file_id = self._next_id("F")
        self._pending_files[file_id] = UploadedFile(
            id=file_id, name=str(args["filename"]), title=None
        )
        return {"upload_url": f"{self.base_url}upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = args.get("files")
        if not isinstance(entries, list) or not entries:
            raise _SlackError("invalid_arguments")
        pending = [self._pending_files.get(str(e.get("id"))) for e in entries]
        if any(f is None or not f.uploaded for f in pending):
            raise _SlackError("file_not_found")
        channel_ref = args.get("channel_id") or (args.get("channels") or "").split(",")[0]
        # Sharing a file takes membership: chat:write.public does not cover it.
        channel = self._channel_for_post(channel_ref, public_scope=None) if channel_ref else None
        completed: list[UploadedFile] = []
        for entry, upload in zip(entries, pending, strict=True):
            assert upload is not None
            upload.title = entry.get("title") or upload.name
            upload.channel = channel["id"] if channel else None
            upload.thread_ts = args.get("thread_ts") or None
            upload.initial_comment = args.get("initial_comment") or None
            del self._pending_files[upload.id]
            completed.append(upload)
        self._files.extend(completed)
        described = [_file_info(f) for f in completed]
        if channel is not None:
            self._post(
                channel["id"],
                {
                    "text": args.get("initial_comment") or "",
                    "thread_ts": args.get("thread_ts"),
                    "files": described,
                },
            )
        return {"files": described}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.socket_url}


# -------------------------------------------------------------------- helpers


async def _read_args(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """Query, form or JSON arguments merged into one dict, JSON-string fields decoded."""
    args: dict[str, Any] = dict(request.query)
    error = None
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body, error = None, "invalid_json"
            if isinstance(body, dict):
                args.update(body)
        else:
            form = await request.post()
            for name, value in form.items():
                args[name] = value.file.read() if isinstance(value, web.FileField) else value
    for name in _JSON_STRING_FIELDS & args.keys():
        value = args[name]
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                args[name] = json.loads(value)
            except ValueError:
                error = error or "invalid_arguments"
    return args, error


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _fault_response(fault: _Fault) -> web.Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    return web.json_response(
        {"ok": False, "error": fault.error}, status=fault.status, headers=headers
    )


def _envelope(
    type_: str,
    payload: dict[str, Any],
    accepts_response_payload: bool | None,
    retry_attempt: int | None,
    retry_reason: str | None,
    envelope_id: str | None,
) -> dict[str, Any]:
    if accepts_response_payload is None:
        accepts_response_payload = type_ != "events_api"
    envelope: dict[str, Any] = {
        "envelope_id": envelope_id or str(uuid.uuid4()),
        "type": type_,
        "payload": payload,
        "accepts_response_payload": accepts_response_payload,
    }
    # Slack puts retry fields on every events_api envelope, and on others only when retrying.
    if type_ == "events_api" or retry_attempt is not None:
        envelope["retry_attempt"] = retry_attempt or 0
        envelope["retry_reason"] = retry_reason or ""
    return envelope


def _new_channel(
    channel_id: str, name: str, *, is_member: bool, is_private: bool = False
) -> dict[str, Any]:
    return {
        "id": channel_id,
        "name": name,
        "is_channel": not is_private,
        "is_group": is_private,
        "is_private": is_private,
        "is_archived": False,
        "is_general": False,
        "is_member": is_member,
        "created": int(time.time()),
        "creator": "U0ONCALL",
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": "", "creator": "", "last_set": 0},
        "members": [BOT_USER_ID] if is_member else [],
    }


def _validate_channel_name(name: str) -> None:
    """Slack's conversations.create name rules and the errors it answers with."""
    if not name:
        raise _SlackError("invalid_name_required")
    if len(name) > _CHANNEL_NAME_MAX:
        raise _SlackError("invalid_name_maxlength")
    if not _CHANNEL_NAME_ALLOWED.match(name):
        raise _SlackError("invalid_name_specials")
    if not re.search(r"[a-z0-9]", name):
        raise _SlackError("invalid_name_punctuation")


def _apply_update(message: dict[str, Any], args: dict[str, Any]) -> None:
    for name in ("text", "blocks", "attachments", "metadata"):
        if name in args and args[name] is not None:
            message[name] = args[name]
    message["updated"] += 1


def _ephemeral(
    channel_id: str, user: str | None, args: dict[str, Any], ts: str, *, via: str
) -> dict[str, Any]:
    return {
        "channel": channel_id,
        "user": user,
        "ts": ts,
        "text": args.get("text") or "",
        "blocks": args.get("blocks") or [],
        "thread_ts": args.get("thread_ts") or None,
        "via": via,
    }


def _public(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the Web API shows it: no stand-in bookkeeping, no empty fields."""
    shown = {
        k: copy.deepcopy(v)
        for k, v in message.items()
        if k not in ("updated", "channel") and v not in (None, [])
    }
    shown.setdefault("text", "")
    if message["updated"]:
        shown["edited"] = {"user": BOT_USER_ID, "ts": message["ts"]}
    return shown


def _file_info(upload: UploadedFile) -> dict[str, Any]:
    return {
        "id": upload.id,
        "name": upload.name,
        "title": upload.title,
        "size": len(upload.content),
        "mimetype": "text/plain",
        "user": BOT_USER_ID,
    }


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _ts_key(message: dict[str, Any]) -> tuple[int, int]:
    seconds, _, micros = message["ts"].partition(".")
    return int(seconds), int(micros or 0)


def _matches(call: RecordedCall, method: str, key: str | None) -> bool:
    return call.method == method and (key is None or call.key == key)


def _describe(call: RecordedCall) -> str:
    details = []
    for name in ("channel", "text", "response_type"):
        value = call.args.get(name)
        if value:
            shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
            details.append(f"{name}={shown!r}")
    if call.key:
        details.insert(0, f"key={call.key!r}")
    return f"{call.method}({', '.join(details)})"


def _caller_has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _check_trigger(trigger_id: str) -> None:
    """Refuse a trigger_id Slack would: not one it issued, or older than 3 seconds.

    Trigger ids look like ``<n>.<unix time>.<hex>`` (``signing.new_trigger_id``).
    """
    parts = trigger_id.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise _SlackError("invalid_trigger_id")
    # The id carries whole seconds: allow for the fraction it dropped.
    if time.time() - int(parts[1]) > TRIGGER_LIFETIME + 1:
        raise _SlackError("expired_trigger_id")


# -------------------------------------------------------------------- Block Kit

_TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
_CONTEXT_ELEMENT_TYPES = frozenset({"plain_text", "mrkdwn", "image"})
_PLAIN_TEXT_ONLY = {
    # (block or element type, field) whose text object Slack accepts only as plain_text
    ("header", "text"),
    ("button", "text"),
    ("input", "label"),
    ("input", "hint"),
    ("modal", "title"),
    ("modal", "submit"),
    ("modal", "close"),
}
_MAX_INPUT_VALUE = 3000


def block_kit_errors(
    blocks: Any, *, limit: int = MAX_MESSAGE_BLOCKS, at: str = "/blocks"
) -> list[str]:
    """Why Slack would refuse ``blocks`` (empty when it would take them).

    slack_sdk's models check each block and its elements (lengths, counts, styles); what they
    let through but Slack refuses is checked here too: unknown block types and properties,
    empty texts, mrkdwn where only plain_text goes, context elements that are not text or
    images, empty actions/context blocks, and more blocks than ``limit``.
    """
    if not isinstance(blocks, list):
        return [f"{at}: blocks must be an array"]
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(f"{at}: no more than {limit} items allowed (got {len(blocks)})")
    for i, block in enumerate(blocks):
        errors += _block_errors(block, f"{at}/{i}")
    return errors


def view_errors(view: Any, *, kind: str) -> list[str]:
    """Why Slack would refuse a modal (``kind="modal"``) or App Home view (``"home"``)."""
    if not isinstance(view, dict):
        return ["/view: must be an object"]
    errors: list[str] = []
    if view.get("type") != kind:
        errors.append(f"/view/type: must be {kind!r} here, not {view.get('type')!r}")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        return errors + ["/view/blocks: required"]
    errors += block_kit_errors(blocks, limit=MAX_VIEW_BLOCKS, at="/view/blocks")
    try:
        parsed = View(**view).to_dict()
    except Exception as exc:  # slack_sdk raises its own error or a TypeError
        return errors + [f"/view: {_reason(exc)}"]
    errors += _dropped(view, parsed, "/view", skip={"blocks"})
    errors += _text_rules({k: v for k, v in view.items() if k != "blocks"}, "/view")
    return errors


def _block_errors(block: Any, at: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"{at}: must be an object"]
    try:
        parsed = Block.parse(block)
    except Exception as exc:
        return [f"{at}: {_reason(exc)}"]
    if parsed is None:
        return [f"{at}/type: unknown block type {block.get('type')!r}"]
    try:
        shown = parsed.to_dict()  # validates the block and, recursively, its elements
    except Exception as exc:
        return [f"{at}: {_reason(exc)}"]
    errors = _dropped(block, shown, at)
    kind = block.get("type")
    if kind in ("actions", "context") and not block.get("elements"):
        errors.append(f"{at}/elements: must have at least 1 element")
    if kind == "context":
        for i, element in enumerate(block.get("elements") or []):
            if isinstance(element, dict) and element.get("type") not in _CONTEXT_ELEMENT_TYPES:
                errors.append(f"{at}/elements/{i}: a context block holds text and images only")
    errors += _text_rules(block, at)
    return errors


def _text_rules(value: Any, at: str) -> list[str]:
    """Text objects are objects with a known type and a non-empty text; some must be plain."""
    errors: list[str] = []
    if isinstance(value, dict):
        kind = value.get("type") if isinstance(value.get("type"), str) else None
        for key, child in value.items():
            where = f"{at}/{key}"
            if key in ("text", "label", "title", "submit", "close", "hint", "placeholder"):
                if isinstance(child, str) and kind not in _TEXT_TYPES:
                    errors.append(f"{where}: must be a text object, not a string")
                elif isinstance(child, dict) and child.get("type") in _TEXT_TYPES:
                    if not isinstance(child.get("text"), str) or not child["text"]:
                        errors.append(f"{where}/text: must be more than 0 characters")
                    plain_only = (kind, key) in _PLAIN_TEXT_ONLY or key == "placeholder"
                    if plain_only and child["type"] != "plain_text":
                        errors.append(f"{where}/type: must be plain_text")
            if (
                key in ("initial_value",)
                and isinstance(child, str)
                and len(child) > _MAX_INPUT_VALUE
            ):
                errors.append(f"{where}: must be at most {_MAX_INPUT_VALUE} characters")
            if key != "text" or isinstance(child, (dict, list)):
                errors += _text_rules(child, where)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            errors += _text_rules(child, f"{at}/{i}")
    return errors


def _dropped(
    sent: Any, parsed: Any, at: str, skip: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    """Properties slack_sdk's model did not keep: Slack refuses them as unknown."""
    errors: list[str] = []
    if isinstance(sent, dict) and isinstance(parsed, dict):
        for key, value in sent.items():
            if key in skip:
                continue
            if key not in parsed:
                if value not in (None, [], {}):
                    errors.append(f"{at}/{key}: unknown property")
                elif value == []:
                    errors.append(f"{at}/{key}: must not be empty")
                continue
            errors += _dropped(value, parsed[key], f"{at}/{key}")
    elif isinstance(sent, list) and isinstance(parsed, list) and len(sent) == len(parsed):
        for i, (a, b) in enumerate(zip(sent, parsed, strict=True)):
            errors += _dropped(a, b, f"{at}/{i}")
    return errors


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SlackObjectFormationError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
