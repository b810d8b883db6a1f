"""A person talking to the real Bolt app through signed requests, for the incident tests.

``Chat`` types slash commands, presses buttons and submits modals the way Slack sends them
(signed bodies through ``app.async_dispatch``), then waits for the work the ack started.
The diagnose checks are two small fakes whose outcome a test switches (``failing``).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.diagnosis.checks.base import Check, CheckResult, Classification
from bot.sandbox import signing
from bot.sandbox.conversation import find_button
from bot.slack.app import services_of

ORIGIN = "C0INCIDENT"
_requests = itertools.count(1)


class NoAws:
    """These checks make no AWS calls; the runner still wants a caller to hand them."""

    async def call(self, service: str, operation: str, **params: Any) -> Any:
        raise AssertionError(f"unexpected AWS call {service}.{operation}")

    def close(self) -> None:
        return None


def fake_checks(listener_rules_fail: bool) -> dict[str, Check]:
    async def dns(ctx: Any) -> CheckResult:
        return CheckResult.passed("registry.hokus.ai resolves", addresses=["203.0.113.10"])

    async def rules(ctx: Any) -> CheckResult:
        if listener_rules_fail:
            return CheckResult.failed(
                "no listener rule sends /api/mlflow/* to hokusai-api-development",
                Classification.CONFIGURATION,
                hint="Add a rule for /api/mlflow/* forwarding to the API target group",
                matched_rule="default",
                listener_port=443,
            )
        return CheckResult.passed("rule 10 forwards /api/mlflow/*", matched_rule="10")

    return {
        "dns.resolve": Check("dns.resolve", "dns", "DNS resolves", dns),
        "routing.listener-rules": Check("routing.listener-rules", "routing", "rules", rules),
    }


class Chat:
    """Commands, clicks and form submissions from one workspace, with their acks."""

    def __init__(self, app: Any, slack: Any, secrets: dict[str, str]) -> None:
        self.app = app
        self.slack = slack
        self.secret = secrets["signing_secret"]
        self.services = services_of(app)

    async def _dispatch(self, request: signing.SignedRequest) -> Any:
        response = await self.app.async_dispatch(
            AsyncBoltRequest(body=request.text, headers=request.headers)
        )
        assert response.status == 200, response.body
        await self.services.drain()
        return response

    async def command(
        self,
        text: str,
        channel: str = ORIGIN,
        *,
        user: str = signing.DEFAULT_USER_ID,
        trigger: str | None = None,
        retry: bool = False,
    ) -> Any:
        n = next(_requests)
        return await self._dispatch(
            signing.slash_command(
                self.secret,
                text,
                channel_id=channel,
                user_id=user,
                response_url=self.slack.response_url(f"cmd{n}", channel=channel, user=user),
                trigger_id=trigger or signing.new_trigger_id(),
                retry_num=1 if retry else None,
            )
        )

    async def click(
        self, message: dict[str, Any], label: str, channel: str, *, user: str = "U0ONCALL"
    ) -> Any:
        button = find_button(message, label)
        n = next(_requests)
        return await self._dispatch(
            signing.block_action(
                self.secret,
                button["action_id"],
                button.get("value"),
                block_id=button.get("_block_id"),
                message_ts=message["ts"],
                message_text=message.get("text", ""),
                message_blocks=message.get("blocks"),
                user_id=user,
                channel_id=channel,
                response_url=self.slack.response_url(
                    f"click{n}", channel=channel, user=user, message_ts=message["ts"]
                ),
            )
        )

    async def submit(
        self, view: dict[str, Any], values: dict[str, Any], *, user: str = "U0ONCALL"
    ) -> dict[str, Any]:
        """Submit a modal the bot opened; returns the ack's body (errors, if any)."""
        response = await self._dispatch(
            signing.view_submission(
                self.secret,
                view["callback_id"],
                signing.view_state(view, values),
                private_metadata=view.get("private_metadata", ""),
                view_id=view.get("id", "V1"),
                user_id=user,
            )
        )
        return json.loads(response.body) if response.body else {}

    def replies(self) -> list[str]:
        """What people were told through response URLs, oldest first."""
        return [c.args.get("text", "") for c in self.slack.calls_to("response_url")]

    def modals(self) -> list[dict[str, Any]]:
        return [v["view"] for v in self.slack.views if v["kind"] == "modal"]
