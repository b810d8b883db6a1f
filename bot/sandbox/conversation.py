"""A person in a channel, talking to the real bot over signed HTTP: ``Conversation``.

It starts the Slack stand-in, the bot (``build_app`` behind ``hokusai serve``'s ASGI app on a
loopback port) and, when asked, a tracker stand-in; then sends the slash commands and button
clicks a responder would, and waits for the bot's work after each ack. The demo and the
end-to-end tests use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bot.sandbox import fakes, signing
from bot.sandbox.environ import EnvironPatch
from bot.sandbox.slack import DEFAULT_CHANNEL_ID, DEFAULT_CHANNEL_NAME, SlackStandIn
from bot.sandbox.trackers import TrackerStandIn
from bot.slack.server import BotServer

ONCALL_USER = "U0ONCALL"
ONCALL_NAME = "oncall"


@dataclass
class Ack:
    """The HTTP answer to a request: status and the ack's body (an ephemeral reply, often)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))


class Conversation:
    """The bot, the Slack stand-in and a tracker, wired together on loopback.

    Args:
        config_path: hokusai.yml the bot reads.
        db_path: the incident log.
        tracker: start a Linear stand-in and give the bot its URL and a key.
        app_overrides: objects handed to ``build_app`` (the demo's short watch ticks).
    """

    def __init__(
        self,
        config_path: Path,
        db_path: Path,
        *,
        tracker: bool = True,
        app_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.config_path = Path(config_path)
        self.db_path = Path(db_path)
        self.signing_secret = fakes.signing_secret()
        self.bot_token = fakes.slack_bot_token()
        self.slack = SlackStandIn(bot_token=self.bot_token)
        self.tracker = TrackerStandIn() if tracker else None
        self.server: BotServer | None = None
        self._environ = EnvironPatch()
        self._trigger = 0
        self.app_overrides = dict(app_overrides or {})

    def start(self) -> Conversation:
        self.slack.start()
        env = {
            "SLACK_BOT_TOKEN": self.bot_token,
            "SLACK_SIGNING_SECRET": self.signing_secret,
            "SLACK_API_URL": self.slack.api_url,
            "HOKUSAI_CONFIG": str(self.config_path),
            "HOKUSAI_DB": str(self.db_path),
        }
        if self.tracker is not None:
            self.tracker.start()
            env["LINEAR_API_URL"] = self.tracker.linear_url
            env["LINEAR_API_KEY"] = fakes.linear_api_key()
        self._environ.set(**env)
        self._start_bot()
        return self

    def _start_bot(self) -> None:
        from bot.settings import load_settings
        from bot.slack.app import build_app
        from bot.watch.supervisor import supervisor_for

        self.server = BotServer(build_app(load_settings(), **self.app_overrides)).start()
        # As `hokusai serve` does: watches left running by an earlier process are taken up.
        services = self.server.app.hokusai_services  # type: ignore[attr-defined]
        self.server.run_coroutine(_start(supervisor_for(services)))

    def _stop_bot(self) -> None:
        from bot.watch.supervisor import supervisor_for

        assert self.server is not None
        services = self.server.app.hokusai_services  # type: ignore[attr-defined]
        self.server.run_coroutine(supervisor_for(services).stop())
        self.server.stop()
        self.server = None

    def restart_bot(self) -> None:
        """A new bot process, as after a deploy: same database, same Slack."""
        assert self.server is not None
        self._stop_bot()
        self._start_bot()

    def stop(self) -> None:
        if self.server is not None:
            self._stop_bot()
        if self.tracker is not None:
            self.tracker.stop()
        self.slack.stop()
        self._environ.restore()

    def __enter__(self) -> Conversation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- talking -------------------------------------------------------------------------------

    def _post(self, request: signing.SignedRequest) -> Ack:
        assert self.server is not None
        resp = httpx.post(
            self.server.events_url, content=request.body, headers=request.headers, timeout=10
        )
        body: dict[str, Any] = {}
        if resp.content:
            try:
                body = resp.json()
            except ValueError:
                body = {"text": resp.text}
        if body.get("blocks") is not None:
            # Slack shows an ack's blocks only if they are valid Block Kit.
            self.slack.check_blocks("ack", body["blocks"])
        return Ack(resp.status_code, body)

    def command(
        self,
        text: str,
        *,
        channel_id: str = DEFAULT_CHANNEL_ID,
        channel_name: str | None = None,
        user_id: str = ONCALL_USER,
        user_name: str = ONCALL_NAME,
        wait: bool = True,
        retry_num: int | None = None,
        trigger_id: str | None = None,
    ) -> Ack:
        """Type ``/hokusai TEXT`` in a channel; by default wait for the work after the ack."""
        channel = self.slack.channel(channel_id) or {}
        request = signing.slash_command(
            self.signing_secret,
            text,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            channel_name=channel_name or channel.get("name") or DEFAULT_CHANNEL_NAME,
            response_url=self.slack.response_url(
                f"cmd-{self._next()}", channel=channel_id, user=user_id
            ),
            trigger_id=trigger_id,
            retry_num=retry_num,
        )
        ack = self._post(request)
        if wait:
            self.wait()
        return ack

    def click(
        self,
        message: dict[str, Any],
        label: str,
        *,
        channel_id: str = DEFAULT_CHANNEL_ID,
        user_id: str = ONCALL_USER,
        user_name: str = ONCALL_NAME,
        value: str | None = None,
        wait: bool = True,
    ) -> Ack:
        """Press the button whose text starts with ``label`` on ``message``."""
        button = find_button(message, label)
        request = signing.block_action(
            self.signing_secret,
            button["action_id"],
            value if value is not None else button.get("value"),
            block_id=button.get("_block_id"),
            message_ts=message["ts"],
            message_text=message.get("text", ""),
            message_blocks=message.get("blocks"),
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            response_url=self.slack.response_url(
                f"click-{self._next()}", channel=channel_id, user=user_id
            ),
        )
        ack = self._post(request)
        if wait:
            self.wait()
        return ack

    def submit(
        self,
        view: dict[str, Any],
        values: dict[str, Any] | None = None,
        *,
        user_id: str = ONCALL_USER,
        user_name: str = ONCALL_NAME,
        wait: bool = True,
    ) -> Ack:
        """Fill in a modal the bot opened (``values`` by block_id) and press its submit button."""
        request = signing.view_submission(
            self.signing_secret,
            view.get("callback_id", ""),
            signing.view_state(view, values or {}),
            private_metadata=view.get("private_metadata", ""),
            view_id=view.get("id", "V000000001"),
            user_id=user_id,
            user_name=user_name,
        )
        ack = self._post(request)
        if wait:
            self.wait()
        return ack

    def open_modals(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Modals the bot opened (views.open), oldest first."""
        return [
            v["view"]
            for v in self.slack.views
            if v["kind"] == "modal" and (user_id is None or v["user_id"] in (None, user_id))
        ]

    def wait(self, timeout: float = 90.0) -> None:
        """Wait until the bot has finished the work its acks started."""
        assert self.server is not None
        self.server.drain(timeout)

    def _next(self) -> int:
        self._trigger += 1
        return self._trigger

    # -- reading -------------------------------------------------------------------------------

    def messages(self, channel_id: str = DEFAULT_CHANNEL_ID) -> list[dict[str, Any]]:
        return self.slack.messages(channel_id)

    def last_message(self, channel_id: str = DEFAULT_CHANNEL_ID, containing: str = "") -> dict:
        for message in reversed(self.messages(channel_id)):
            if containing in json.dumps(message):
                return message
        raise LookupError(f"no message in {channel_id} contains {containing!r}")

    def ephemeral_texts(self, user_id: str = ONCALL_USER) -> list[str]:
        """What only ``user_id`` saw: response_url replies and chat.postEphemeral."""
        texts = [r.get("text", "") for r in self.slack.responses() if r.get("text")]
        texts += [m.get("text", "") for m in self.slack.ephemeral_messages(user=user_id)]
        # A response_url reply is also kept as an ephemeral message: count each once.
        return list(dict.fromkeys(texts))

    def channel_named(self, prefix: str) -> dict[str, Any]:
        for channel in self.slack.channels:
            if channel.get("name", "").startswith(prefix):
                return channel
        raise LookupError(f"no channel named {prefix}*")


def find_button(message: dict[str, Any], label: str) -> dict[str, Any]:
    """The button on ``message`` whose text starts with ``label`` (case-insensitive)."""
    labels = []
    for block in message.get("blocks") or []:
        elements = list(block.get("elements", []))
        if block.get("accessory"):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("type") != "button":
                continue
            text = element.get("text", {}).get("text", "")
            labels.append(text)
            if text.lower().startswith(label.lower()):
                return {**element, "_block_id": block.get("block_id")}
    raise LookupError(f"no button {label!r} on the message; buttons: {labels}")


async def _start(supervisor: Any) -> None:
    supervisor.start()  # needs the server's running loop
