"""Walking registry-unreachable through the real Bolt app, the Slack stand-in and moto.

The platform is the seed outage (a catch-all /api/* rule shadows the MLflow rules), so the
walkthrough's infrastructure steps pass DNS and the load balancer, fail at the listener rules
and branch to the routing question. Every click goes through a signed request.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.config import parse_config
from bot.diagnosis.aws import AwsCaller, read_only_session
from bot.incident.store import IncidentStore
from bot.sandbox import signing
from bot.sandbox.dns_server import DnsServer
from bot.sandbox.platform import build_platform
from bot.sandbox.slack import DEFAULT_CHANNEL_ID
from bot.settings import load_settings
from bot.slack.app import build_app, services_of
from tests.doubles import REPO

from .test_render import assert_within_slack_limits, buttons, text_of

CHANNEL = DEFAULT_CHANNEL_ID
ALICE, BOB = "U0ALICE", "U0BOB"


class World:
    """The moto platform, the DNS stand-in, and a way to (re)build the bot on one database."""

    def __init__(self, slack, secrets: dict[str, str], db: Path, dns: DnsServer) -> None:
        self.slack = slack
        self.secret = secrets["signing_secret"]
        self.db = db
        raw = yaml.safe_load((REPO / "hokusai.yml").read_text())
        raw["environments"]["development"]["dns"] = {"nameservers": [dns.address]}
        self.config = parse_config(raw)
        build_platform(
            boto3.Session(region_name="us-east-1"),
            self.config.environment(),
            scenario="seed-outage",
        )
        self.callers: list[AwsCaller] = []
        self.app = self.build_bot()

    def build_bot(self):
        """A fresh app, as after a restart: nothing shared but the database file."""
        caller = AwsCaller(read_only_session("us-east-1"))
        self.callers.append(caller)
        return build_app(load_settings(), config=self.config, aws=caller)

    async def send(self, request: signing.SignedRequest, app=None) -> Any:
        app = app or self.app
        response = await app.async_dispatch(
            AsyncBoltRequest(body=request.text, headers=request.headers)
        )
        await services_of(app).drain()
        return response

    async def command(self, text: str, user: str = ALICE) -> Any:
        key = f"cmd-{len(self.slack.calls)}"
        request = signing.slash_command(
            self.secret, text, user_id=user, response_url=self.slack.response_url(key)
        )
        await self.send(request)
        return self.slack.responses(key)

    def message(self) -> dict[str, Any]:
        (walkthrough,) = [
            m for m in self.slack.messages(CHANNEL) if "Runbook:" in json.dumps(m["blocks"])
        ]
        return walkthrough

    def click_request(self, label: str, user: str, message=None) -> signing.SignedRequest:
        message = message or self.message()
        button = buttons(message["blocks"])[label]
        return signing.block_action(
            self.secret,
            button["action_id"],
            button["value"],
            message_ts=message["ts"],
            message_blocks=message["blocks"],
            user_id=user,
        )

    async def click(self, label: str, user: str = ALICE, message=None, app=None) -> None:
        await self.send(self.click_request(label, user, message), app)

    def store(self) -> IncidentStore:
        return IncidentStore(self.db)


@pytest.fixture
def world(slack, slack_secrets, bot_env, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(), DnsServer({"registry.hokus.ai": ["52.44.61.20"]}) as dns:
        built = World(slack, slack_secrets, Path(bot_env["HOKUSAI_DB"]), dns)
        yield built
        for caller in built.callers:
            caller.close()


def shown(world: World) -> str:
    return text_of(world.message()["blocks"])


async def test_walk_registry_unreachable_branches_at_routing_and_survives_a_restart(world):
    incident = world.store().declare_incident(
        "Registry answers 404", channel_id=CHANNEL, commander=ALICE, severity=1
    )
    assert await world.command("runbook start registry-unreachable") == []
    first = world.message()
    assert "*Step 1 of 17: Phase 1: DNS resolves to the load balancer*" in text_of(first["blocks"])
    assert list(buttons(first["blocks"])) == ["Run", "Skip", "Add note"]
    assert_within_slack_limits(first["blocks"])

    await world.click("Run", ALICE)  # DNS: resolves and aliases the registry ALB
    assert ":white_check_mark: 1. Phase 1: DNS resolves" in shown(world)
    assert "*Step 2 of 17: Phase 1: load balancer is active" in shown(world)
    await world.click("Run", ALICE)  # the load balancer is fine
    assert "*Step 3 of 17: Phase 1: listener rules" in shown(world)

    # The bot restarts; Bob presses Run on the message the old bot drew.
    old_message = world.message()
    restarted = world.build_bot()
    await world.click("Run", BOB, message=old_message, app=restarted)
    after = shown(world)
    assert ":x: 3. Phase 1: listener rules" in after
    assert "*Step 4 of 17: Phase 1: what do the listener rules do with the MLflow paths?*" in after
    assert "failed*" in after and ":x: `routing.listener-rules" in after
    labels = list(buttons(world.message()["blocks"]))
    assert labels[:4] == [
        "No rule matches; the default action answers",
        "A rule forwards to the wrong target group",
        "A broader rule with a lower priority number wins",
        "The rules look right",
    ]

    world.app = restarted
    await world.click("A broader rule with a lower priority number wins", ALICE)
    final = world.message()
    assert "shadows the MLflow rule" in text_of(final["blocks"])
    assert buttons(final["blocks"]) == {}
    assert_within_slack_limits(final["blocks"])

    timeline = [
        (e.actor, e.text) for e in world.store().timeline(incident.id) if e.kind == "runbook"
    ]
    assert timeline[0] == (ALICE, "Started runbook registry-unreachable")
    steps = [(actor, text.split("': ", 1)[1]) for actor, text in timeline[1:]]
    assert [actor for actor, _ in steps] == [ALICE, ALICE, ALICE, ALICE, BOB, BOB, ALICE]
    assert steps[0][1] == "running dns"
    assert steps[1][1].startswith("passed (") and "→ step 2" in steps[1][1]
    assert steps[4][1] == "running routing"
    assert steps[5][1].startswith("failed (") and "→ step 4" in steps[5][1]
    assert steps[6][1].startswith("answered 'A broader rule with a lower priority number wins'")
    assert "→ stop: Routing: a broader rule" in steps[6][1]


def _state(world: World, session_id: int) -> tuple[int, int]:
    """(store version, message update count): what an ignored click must leave alone."""
    return world.store().runbook_session(session_id).version, world.message().get("updated", 0)


async def test_invalid_button_payloads_get_an_ephemeral_explanation_and_change_nothing(world):
    await world.command("runbook start registry-unreachable")
    start = world.message()
    await world.click("Skip", ALICE)  # now at step 2; `start`'s buttons are stale
    run = buttons(start["blocks"])["Run"]
    session = json.loads(run["value"])["s"]
    before = _state(world, session)

    def forged(action_id: str, value: str) -> signing.SignedRequest:
        return signing.block_action(
            world.secret, action_id, value, message_ts=start["ts"], user_id=BOB
        )

    current = json.loads(buttons(world.message()["blocks"])["Run"]["value"])
    cases = {
        "unknown session": forged("runbook_run", json.dumps({"s": 9999, "p": "dns", "v": 1})),
        "stale step": world.click_request("Run", BOB, message=start),
        "tampered value": forged("runbook_run", "not-json"),
        "tampered step": forged("runbook_skip", json.dumps({**current, "p": "nope"})),
        "future version": forged("runbook_skip", json.dumps({**current, "v": 99})),
        "choice mismatch": forged("runbook_choice_1", json.dumps({**current, "c": 0})),
    }
    for request in cases.values():
        await world.send(request)
    explanations = [m["text"] for m in world.slack.ephemeral_messages(CHANNEL, BOB)]
    assert len(explanations) == len(cases)
    assert "does not exist" in explanations[0]
    assert "Someone else moved this walkthrough on" in explanations[1]
    assert "It is now at step 2" in explanations[1]
    assert "not one I made" in explanations[2]
    assert "does not belong to this runbook" in explanations[3]
    assert "never had" in explanations[4]
    assert "does not match its button" in explanations[5]
    assert all(text.endswith("Nothing was changed.") for text in explanations)
    assert _state(world, session) == before


async def test_two_people_clicking_at_once_advance_the_step_once(world):
    await world.command("runbook start registry-unreachable")
    alice = world.click_request("Skip", ALICE)
    bob = world.click_request("Skip", BOB)
    await asyncio.gather(world.send(alice), world.send(bob))
    assert "*Step 2 of 17" in shown(world)
    assert world.store().runbook_session(1).state["current"] == "edge"
    refused = world.slack.ephemeral_messages(CHANNEL)
    assert len(refused) == 1
    assert "moved this walkthrough on" in refused[0]["text"]


async def test_add_note_opens_a_modal_and_the_note_lands_in_message_and_timeline(world):
    incident = world.store().declare_incident("Registry 404", channel_id=CHANNEL, commander=ALICE)
    await world.command("runbook start registry-unreachable")
    await world.click("Add note", BOB)
    (opened,) = world.slack.views
    view = opened["view"]
    assert view["callback_id"] == "runbook_note_modal"
    submit = signing.view_submission(
        world.secret,
        "runbook_note_modal",
        {"note": {"text": {"type": "plain_text_input", "value": "ALB logs show 404 from FastAPI"}}},
        private_metadata=view["private_metadata"],
        user_id=BOB,
    )
    await world.send(submit)
    assert ":memo: <@U0BOB>: ALB logs show 404 from FastAPI" in shown(world)
    notes = [e for e in world.store().timeline(incident.id) if e.text.endswith("FastAPI")]
    assert [(e.actor, e.kind) for e in notes] == [(BOB, "runbook")]


async def test_list_and_unknown_name(world):
    (listing,) = await world.command("runbook list")
    assert "registry-unreachable" in listing["text"]
    assert "`dns-misconfiguration` — *DNS misconfiguration*" in text_of(listing["blocks"])
    (unknown,) = await world.command("runbook start nope")
    assert "I have no runbook `nope`" in unknown["text"]
    assert "`registry-unreachable`" in unknown["text"]
    assert "runbook start NAME" in unknown["text"]


async def test_diagnose_start_runbook_button_starts_the_walkthrough(world):
    start = signing.block_action(world.secret, "runbook_start", "dns-misconfiguration", user_id=BOB)
    await world.send(start)
    assert "*Step 1 of 5: The public hostname resolves*" in shown(world)
    assert "started by <@U0BOB>" in shown(world)
    unknown = signing.block_action(world.secret, "runbook_start", "no-such-book", user_id=BOB)
    await world.send(unknown)
    (refused,) = world.slack.ephemeral_messages(CHANNEL, BOB)
    assert "There is no runbook `no-such-book` installed. Nothing was changed." in refused["text"]
