"""Every command and button obeys access.channels and access.environments.

The commands and buttons are enumerated from the registry (``commands.COMMANDS`` and what their
``register_actions`` register), so a new one that is not listed here fails the test until
someone decides, in this file, how it is guarded.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_bolt.request.async_request import AsyncBoltRequest

import commands
from bot.config import parse_config
from bot.incident.modal import CALLBACK_ID as DECLARE_FORM
from bot.incident.modal import DeclareContext, declare_view
from bot.incident.resolve import KEEP_OPEN, RESOLVE_ANYWAY
from bot.incident.store import IncidentStore
from bot.runbook.render import NOTE_BLOCK, NOTE_INPUT, NOTE_MODAL_CALLBACK
from bot.sandbox import signing
from bot.sandbox.slack import DEFAULT_CHANNEL_ID, DEFAULT_CHANNEL_NAME
from bot.sandbox.trackers import TrackerStandIn
from bot.settings import load_settings
from bot.slack.access import channel_refusal, environment_refusal
from bot.slack.app import build_app, services_of
from bot.tickets import LinearProvider
from tests.doubles import REPO

BOSS, STRANGER, GROUPIE = "U0BOSS", "U0STRANGER", "U0GROUPIE"
RANDOM_ID, RANDOM_NAME = "C0RANDOM", "random"
HERE = (DEFAULT_CHANNEL_ID, DEFAULT_CHANNEL_NAME)
REFUSED = environment_refusal("development")[:60]

# Every subcommand, as someone would type it. Keys are "command action" from the usage lines.
TYPED = {
    "help": "help",
    "diagnose": "diagnose env=development",
    "incident declare": "incident declare Registry down channel=here",
    "incident status": "incident status identified",
    "incident note": "incident note looking at the rules",
    "incident timeline": "incident timeline",
    "incident summary": "incident summary",
    "incident resolve": "incident resolve",
    "incident severity": "incident severity 1",
    "incident role": "incident role comms <@U0BOSS|boss>",
    "incident export": "incident export",
    "ticket link": "ticket link HOK-99",
    "ticket create": "ticket create Fix the rules",
    "ticket list": "ticket list",
    "ticket verify": "ticket verify",
    "runbook list": "runbook list",
    "runbook start": "runbook start registry-unreachable",
    "watch": "watch env=development",
    "watch stop": "watch stop",  # the channel last diagnosed development: its rules apply
}
# The subcommands that neither run checks nor show findings, and why that is so.
NO_ENVIRONMENT = {
    "help": "static text",
    "incident declare": "opens an incident; shows no findings",
    "incident note": "adds a line to the timeline; shows nothing",
    "incident role": "hands a role over; shows no findings",
    "runbook list": "lists the installed runbooks",
}


def _usage_keys() -> set[str]:
    keys = set()
    for line in commands.usage_lines():
        if "#" in line:  # an example of the line above it
            continue
        words = line.removeprefix("/hokusai ").split()
        second = words[1] if len(words) > 1 else ""
        keys.add(f"{words[0]} {second}" if re.fullmatch(r"[a-z]+", second) else words[0])
    return keys


def test_every_subcommand_is_listed_here():
    assert set(TYPED) == _usage_keys()


class _Recorder:
    """Stands in for the Bolt app while the modules register: keeps what they listen for."""

    def __init__(self) -> None:
        self.listened: list[str] = []

    def _keep(self, kind: str):
        def register(constraint: Any, *args: Any, **kwargs: Any):
            text = constraint.pattern if isinstance(constraint, re.Pattern) else str(constraint)
            self.listened.append(f"{kind}:{text}")
            return lambda func: func

        return register

    def __getattr__(self, kind: str):
        return self._keep(kind)


def _registered(services) -> set[str]:
    recorder = _Recorder()
    commands.register(recorder, services)
    return set(recorder.listened) - {"command:/hokusai"}


class World:
    def __init__(self, slack, secret: str, db) -> None:
        self.slack, self.secret = slack, secret
        raw = yaml.safe_load((REPO / "hokusai.yml").read_text())
        raw["access"] = {
            "channels": [DEFAULT_CHANNEL_ID],
            "environments": {"development": {"users": [BOSS], "usergroups": ["@platform"]}},
        }
        self.app = build_app(load_settings(), config=parse_config(raw))
        self.services = services_of(self.app)
        self.services.overrides["rerun"] = self._no_checks
        slack.add_channel(RANDOM_ID, RANDOM_NAME)
        slack.add_usergroup("S0PLATFORM", "platform", [GROUPIE])
        self.store = IncidentStore(db)
        now = datetime.now(UTC)
        self.incident = self.store.declare_incident(
            "Registry 404s", channel_id=DEFAULT_CHANNEL_ID, commander=BOSS, now=now
        )
        self.run_id = self.store.record_run(
            _report("fail"),
            incident_id=self.incident.id,
            channel=DEFAULT_CHANNEL_ID,
            now=now - timedelta(minutes=5),
        )
        # A Done Linear ticket filed against the failing check: `ticket verify` re-runs it.
        self.trackers = TrackerStandIn().start()
        self.services.overrides["tracker"] = LinearProvider(
            api_key="lin_api_" + "x" * 8, url=self.trackers.linear_url, timeout=2.0
        )
        issue = self.trackers.add_issue("linear", "Fix the rules", done=True)
        self.store.link_ticket(
            self.incident.id,
            provider="linear",
            key=issue.key,
            check_ids=["routing.listener-rules[mlflow-proxy]"],
            now=now,
        )
        self.checks_run: list[list[str]] = []

    async def _no_checks(self, check_ids: list[str]) -> dict:
        self.checks_run.append(check_ids)
        return _report("pass")

    async def send(self, request: signing.SignedRequest) -> Any:
        response = await self.app.async_dispatch(
            AsyncBoltRequest(body=request.text, headers=request.headers)
        )
        await self.services.drain()
        return response

    async def command(
        self, text: str, user: str, channel=(DEFAULT_CHANNEL_ID, DEFAULT_CHANNEL_NAME)
    ):
        key = f"cmd-{len(self.slack.calls)}"
        response = await self.send(
            signing.slash_command(
                self.secret,
                text,
                user_id=user,
                channel_id=channel[0],
                channel_name=channel[1],
                response_url=self.slack.response_url(key),
            )
        )
        ack = json.loads(response.body) if response.body else {}
        said = [ack.get("text", "")] + [r.get("text", "") for r in self.slack.responses(key)]
        return "\n".join(said)

    def told(self, user: str) -> str:
        """Everything ``user`` was told only to them, and any DM."""
        ephemeral = [m.get("text", "") for m in self.slack.ephemeral_messages(user=user)]
        dms = [c.args.get("text", "") for c in self.slack.calls_to("chat.postMessage")]
        return "\n".join(ephemeral + [d for d in dms if d])

    def shown_findings(self) -> bool:
        """Whether anything was posted or edited in a channel (a summary, a run, a walkthrough)."""
        return bool(self.slack.calls_to("chat.postMessage") or self.slack.calls_to("chat.update"))


def _report(status: str) -> dict:
    check = "routing.listener-rules[mlflow-proxy]"
    return {
        "env": "development",
        "scopes": [],
        "started_at": datetime.now(UTC).isoformat(),
        "duration_ms": 100,
        "checks": [
            {
                "id": check,
                "layer": "routing",
                "status": status,
                "summary": "no rule sends /api/mlflow/* to the API",
                "classification": "configuration" if status == "fail" else None,
                "evidence": {"listener": "443"},
                "duration_ms": 40,
            }
        ],
        "first_failure": None,
        "verdict": "",
    }


@pytest.fixture
def world(slack, slack_secrets, bot_env):
    built = World(slack, slack_secrets["signing_secret"], Path(bot_env["HOKUSAI_DB"]))
    yield built
    built.trackers.stop()


@pytest.mark.parametrize("key", sorted(TYPED))
async def test_every_subcommand_obeys_access_environments(world, key):
    said = await world.command(TYPED[key], STRANGER)
    if key in NO_ENVIRONMENT:
        assert REFUSED not in said, said
        return
    assert REFUSED in said, f"`/hokusai {TYPED[key]}` answered a stranger: {said!r}"
    assert not world.shown_findings(), [c.method for c in world.slack.calls]
    assert world.checks_run == []


@pytest.mark.parametrize("key", sorted(set(TYPED) - {"help"}))
async def test_every_subcommand_obeys_access_channels(world, key):
    said = await world.command(TYPED[key], BOSS, channel=(RANDOM_ID, RANDOM_NAME))
    assert said.strip() == channel_refusal()
    assert not world.shown_findings()


async def test_a_member_of_an_allowed_user_group_gets_in_and_the_group_is_cached(world):
    said = await world.command("ticket verify", GROUPIE)
    assert REFUSED not in said
    assert world.checks_run, "the Done-ticket check did not run for a group member"
    await world.command("incident timeline", GROUPIE)
    await world.command("incident timeline", STRANGER)
    assert len(world.slack.calls_to("usergroups.users.list")) == 1
    assert len(world.slack.calls_to("usergroups.list")) == 1


async def test_an_unreadable_user_group_refuses_and_says_why(world):
    world.slack.fail_next("usergroups.list", error="missing_scope")
    said = await world.command("incident timeline", GROUPIE)
    assert REFUSED in said and "missing_scope" in said


# What each registered button or modal needs to be pressed, and how it must be guarded.
async def _press_declare(world, user, channel):
    return signing.block_action(
        world.secret,
        "incident_declare",
        json.dumps({"run_id": world.run_id}),
        user_id=user,
        channel_id=channel[0],
        channel_name=channel[1],
    )


async def _press_runbook_start(world, user, channel):
    return signing.block_action(
        world.secret,
        "runbook_start",
        "registry-unreachable",
        user_id=user,
        channel_id=channel[0],
        channel_name=channel[1],
    )


async def _walkthrough(world) -> dict:
    await world.command("runbook start registry-unreachable", BOSS)
    (message,) = [
        m for m in world.slack.messages(DEFAULT_CHANNEL_ID) if "Runbook:" in json.dumps(m)
    ]
    world.slack.clear()
    return message


def _button(message: dict, action_id: str) -> dict:
    for block in message["blocks"]:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} button")


async def _press_run(world, user, channel):
    message = await _walkthrough(world)
    button = _button(message, "runbook_run")
    return signing.block_action(
        world.secret,
        "runbook_run",
        button["value"],
        message_ts=message["ts"],
        message_blocks=message["blocks"],
        user_id=user,
        channel_id=channel[0],
        channel_name=channel[1],
    )


async def _submit_note(world, user, channel):
    message = await _walkthrough(world)
    button = _button(message, "runbook_note")
    return signing.view_submission(
        world.secret,
        NOTE_MODAL_CALLBACK,
        {NOTE_BLOCK: {NOTE_INPUT: {"type": "plain_text_input", "value": "checked"}}},
        private_metadata=button["value"],
        user_id=user,
    )


async def _press_older(world, user, channel):
    return signing.block_action(
        world.secret,
        "incident_timeline_page",
        json.dumps({"incident": world.incident.id, "skip": 0}),
        user_id=user,
        channel_id=channel[0],
        channel_name=channel[1],
    )


async def _press_run_again(world, user, channel):
    return signing.block_action(
        world.secret,
        "diagnose_again",
        json.dumps({"scopes": [], "env": "development"}),
        user_id=user,
        channel_id=channel[0],
        channel_name=channel[1],
    )


async def _press_monitoring(world, user, channel):
    return signing.block_action(
        world.secret,
        "watch_monitoring",
        "1",
        user_id=user,
        channel_id=channel[0],
        channel_name=channel[1],
    )


async def _press_resolve_choice(world, user, channel, action_id):
    return signing.block_action(
        world.secret,
        action_id,
        json.dumps({"incident_id": world.incident.id}),
        user_id=user,
        channel_id=channel[0],
        channel_name=channel[1],
    )


async def _press_keep_open(world, user, channel):
    return await _press_resolve_choice(world, user, channel, KEEP_OPEN)


async def _press_resolve_anyway(world, user, channel):
    return await _press_resolve_choice(world, user, channel, RESOLVE_ANYWAY)


async def _submit_declare_form(world, user, channel):
    # The declare form of a diagnose result: the new incident would hold that run.
    form = declare_view(
        DeclareContext(channel[0], run_id=world.run_id, origin_channel_name=channel[1])
    )
    return signing.view_submission(
        world.secret,
        DECLARE_FORM,
        signing.view_state(form, {"title": "Registry down", "commander": user}),
        private_metadata=form["private_metadata"],
        user_id=user,
    )


PRESSES = {
    "action:" + KEEP_OPEN: _press_keep_open,
    "action:" + RESOLVE_ANYWAY: _press_resolve_anyway,
    "view:" + DECLARE_FORM: _submit_declare_form,
    "action:diagnose_again": _press_run_again,
    "action:watch_monitoring": _press_monitoring,
    "action:^incident_timeline_page(_newest)?$": _press_older,
    "action:incident_declare": _press_declare,
    "action:runbook_start": _press_runbook_start,
    "action:" + commands.COMMANDS["runbook"]._CLICK.pattern: _press_run,
    "view:" + NOTE_MODAL_CALLBACK: _submit_note,
}
# Registered handlers that show nothing and change nothing themselves, and why.
HARMLESS = {"action:runbook_note": "opens the note modal; its submission is checked"}


def test_every_button_and_modal_is_listed_here(world):
    assert _registered(world.services) == set(PRESSES) | set(HARMLESS)


@pytest.mark.parametrize("handler", sorted(PRESSES))
async def test_every_button_obeys_access_environments(world, handler):
    request = await PRESSES[handler](world, STRANGER, (DEFAULT_CHANNEL_ID, DEFAULT_CHANNEL_NAME))
    await world.send(request)
    assert REFUSED in world.told(STRANGER), world.told(STRANGER)
    assert not world.slack.responses()  # nothing replaced a message through response_url
    assert not world.slack.calls_to("chat.update")
    assert not world.slack.calls_to("conversations.create")
    assert world.checks_run == []


@pytest.mark.parametrize("handler", sorted(set(PRESSES) - {"view:" + NOTE_MODAL_CALLBACK}))
async def test_every_button_obeys_access_channels(world, handler):
    world.slack.add_channel(RANDOM_ID, RANDOM_NAME)
    request = await PRESSES[handler](world, BOSS, (RANDOM_ID, RANDOM_NAME))
    await world.send(request)
    assert channel_refusal() in world.told(BOSS) or "another channel" in world.told(BOSS)
    assert not world.slack.calls_to("chat.update")
    assert not world.slack.calls_to("conversations.create")


async def test_app_home_leaves_out_findings_of_environments_the_viewer_may_not_use(world):
    views = {}
    for count, user in enumerate((BOSS, STRANGER), start=1):
        await world.send(
            signing.event(world.secret, {"type": "app_home_opened", "user": user, "tab": "home"})
        )
        publish = (await world.slack.wait_for_async("views.publish", count=count, timeout=20))[-1]
        assert publish.args["user_id"] == user
        views[user] = json.dumps(publish.args["view"])
    assert "routing.listener-rules" in views[BOSS]
    assert "Registry 404s" in views[STRANGER]  # the incident itself is not a finding
    assert "routing.listener-rules" not in views[STRANGER]
    assert "findings hidden" in views[STRANGER] and "development" in views[STRANGER]
