"""The stand-in refuses what Slack refuses: unknown and closed channels, missing scopes, and
Block Kit that breaks Slack's rules. The bot's own trimming (``fit_blocks``) gets through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound import Outbound
from bot.sandbox import fakes
from bot.sandbox.slack import DEFAULT_CHANNEL_ID, SlackStandIn, manifest_scopes


@pytest.fixture(scope="module")
def token() -> str:
    return fakes.slack_bot_token()


@pytest.fixture(scope="module")
def running(token: str) -> Iterator[SlackStandIn]:
    with SlackStandIn(bot_token=token) as stand_in:
        yield stand_in


@pytest.fixture
def slack(running: SlackStandIn) -> SlackStandIn:
    running.reset()
    return running


@pytest.fixture
def client(slack: SlackStandIn, token: str) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=slack.api_url, timeout=5)


async def _error(call) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as refused:
        await call
    return dict(refused.value.response.data)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# ------------------------------------------------------------------ channels


async def test_a_channel_nobody_configured_or_created_does_not_exist(slack, client) -> None:
    refused = await _error(client.chat_postMessage(channel="C0NOWHERE", text="hello"))
    ephemeral = await _error(
        client.chat_postEphemeral(channel="C0NOWHERE", user="U0ONCALL", text="hello")
    )

    assert refused["error"] == "channel_not_found"
    assert ephemeral["error"] == "channel_not_found"
    assert slack.channel("C0NOWHERE") is None  # asking did not create it


async def test_a_private_channel_the_bot_is_not_in_is_invisible_to_it(slack, client) -> None:
    slack.add_channel("G0SECRET", "inc-secret", is_private=True, is_member=False)
    slack.scopes |= {"groups:write"}  # so the invite is refused for the channel, not the scope

    answers = [
        await _error(client.chat_postMessage(channel="G0SECRET", text="results")),
        await _error(client.chat_postEphemeral(channel="G0SECRET", user="U0ONCALL", text="x")),
        await _error(client.conversations_invite(channel="G0SECRET", users="U0ONCALL")),
    ]

    assert [a["error"] for a in answers] == ["channel_not_found"] * 3
    assert slack.messages("G0SECRET") == []


async def test_a_public_channel_not_joined_takes_posts_only_with_chat_write_public(
    slack, client
) -> None:
    slack.add_channel("C0PLATFORM", "platform", is_member=False)

    await client.chat_postMessage(channel="C0PLATFORM", text="with chat:write.public")
    slack.scopes -= {"chat:write.public"}
    without = await _error(client.chat_postMessage(channel="C0PLATFORM", text="without"))
    invite = await _error(client.conversations_invite(channel="C0PLATFORM", users="U0ONCALL"))

    assert [m["text"] for m in slack.messages("C0PLATFORM")] == ["with chat:write.public"]
    assert without["error"] == "not_in_channel"
    assert invite["error"] == "not_in_channel"  # the bot must be in a channel to invite


async def test_files_are_shared_only_where_the_bot_is(slack, client) -> None:
    slack.add_channel("C0PLATFORM", "platform", is_member=False)

    refused = await _error(
        client.files_upload_v2(channel="C0PLATFORM", filename="r.md", content="# report")
    )
    await client.files_upload_v2(channel=DEFAULT_CHANNEL_ID, filename="r.md", content="# r")

    assert refused["error"] == "not_in_channel"
    assert [f.channel for f in slack.files] == [DEFAULT_CHANNEL_ID]


async def test_a_user_id_posts_in_the_bots_direct_messages(slack, client) -> None:
    sent = await client.chat_postMessage(channel="U0ONCALL", text="only for you")

    assert sent["channel"].startswith("D")
    assert [m["text"] for m in slack.messages("U0ONCALL")] == ["only for you"]


# ------------------------------------------------------------------ scopes


async def test_a_method_without_its_scope_answers_missing_scope(slack, client) -> None:
    slack.scopes = frozenset({"chat:write", "channels:manage"})

    public = await client.conversations_create(name="inc-public")
    private = await _error(client.conversations_create(name="inc-private", is_private=True))
    names = await _error(client.users_info(user="U0ONCALL"))

    assert public["channel"]["is_private"] is False
    assert (private["error"], private["needed"]) == ("missing_scope", "groups:write")
    assert (names["error"], names["needed"]) == ("missing_scope", "users:read")
    assert "chat:write" in private["provided"]


def test_the_stand_in_grants_what_the_manifest_asks_for(slack) -> None:
    assert slack.scopes == manifest_scopes()
    assert "chat:write" in slack.scopes


# ------------------------------------------------------------------ Block Kit


INVALID_BLOCKS = {
    "11 context elements": [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{n}"} for n in range(11)]}
    ],
    "51 blocks": [_section(f"{n}") for n in range(51)],
    "section text over 3000": [_section("x" * 3001)],
    "header over 150": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    "header in mrkdwn": [{"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}],
    "empty section text": [_section("")],
    "section text as a string": [{"type": "section", "text": "plain"}],
    "unknown block type": [{"type": "banner", "text": {"type": "mrkdwn", "text": "x"}}],
    "unknown property": [{**_section("x"), "colour": "red"}],
    "button in a context block": [
        {
            "type": "context",
            "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Go"}}],
        }
    ],
    "button text over 75": [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "a",
                    "text": {"type": "plain_text", "text": "b" * 76},
                }
            ],
        }
    ],
    "button style": [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "a",
                    "text": {"type": "plain_text", "text": "Go"},
                    "style": "warning",
                }
            ],
        }
    ],
    "empty actions": [{"type": "actions", "elements": []}],
}


@pytest.mark.parametrize("case", sorted(INVALID_BLOCKS))
async def test_blocks_slack_refuses_are_refused_and_recorded(slack, client, case) -> None:
    blocks = INVALID_BLOCKS[case]

    refused = await _error(
        client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="x", blocks=blocks)
    )
    recorded = slack.take_invalid_payloads()

    assert refused["error"] == "invalid_blocks"
    assert refused["response_metadata"]["messages"][0].startswith("[ERROR] /blocks")
    assert [p.method for p in recorded] == ["chat.postMessage"]
    assert slack.messages(DEFAULT_CHANNEL_ID) == []


async def test_updates_ephemerals_and_response_urls_are_validated_too(slack, client) -> None:
    posted = await client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="ok")
    bad = INVALID_BLOCKS["11 context elements"]
    url = slack.response_url("cmd-1", channel=DEFAULT_CHANNEL_ID, user="U0ONCALL")

    update = await _error(
        client.chat_update(channel=DEFAULT_CHANNEL_ID, ts=posted["ts"], text="x", blocks=bad)
    )
    ephemeral = await _error(
        client.chat_postEphemeral(channel=DEFAULT_CHANNEL_ID, user="U0ONCALL", text="x", blocks=bad)
    )
    async with httpx.AsyncClient() as http:
        response = await http.post(url, json={"text": "x", "blocks": bad})
    recorded = slack.take_invalid_payloads()

    assert update["error"] == ephemeral["error"] == "invalid_blocks"
    assert (response.status_code, response.text) == (400, "invalid_blocks")
    assert [p.method for p in recorded] == ["chat.update", "chat.postEphemeral", "response_url"]
    assert slack.messages(DEFAULT_CHANNEL_ID)[0]["text"] == "ok"


async def test_views_are_validated_with_their_own_limits(slack, client) -> None:
    title = {"type": "plain_text", "text": "Declare"}
    too_many = {"type": "modal", "title": title, "blocks": [_section("x")] * 101}
    long_title = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Declare an incident in this channel"},
        "blocks": [_section("x")],
    }
    home = {"type": "home", "blocks": [_section(f"{n}") for n in range(100)]}

    refusals = [
        await _error(client.views_open(trigger_id="1.2.3", view=too_many)),
        await _error(client.views_open(trigger_id="1.2.3", view=long_title)),
    ]
    await client.views_publish(user_id="U0ONCALL", view=home)
    recorded = slack.take_invalid_payloads()

    assert [r["error"] for r in refusals] == ["invalid_arguments"] * 2
    assert "100" in refusals[0]["response_metadata"]["messages"][0]
    assert "title" in refusals[1]["response_metadata"]["messages"][0]
    assert [p.method for p in recorded] == ["views.open", "views.open"]
    assert len(slack.home_view("U0ONCALL")["blocks"]) == 100


async def test_an_invalid_payload_stays_recorded_across_reset(slack, client) -> None:
    bad = INVALID_BLOCKS["empty section text"]
    await _error(client.chat_postMessage(channel=DEFAULT_CHANNEL_ID, text="x", blocks=bad))

    slack.reset()

    assert slack in SlackStandIn.live_instances()
    assert [p.method for p in slack.invalid_payloads] == ["chat.postMessage"]
    slack.take_invalid_payloads()


# ------------------------------------------------------------------ the bot's own trimming


async def test_outbound_trims_to_what_slack_takes(slack, token) -> None:
    outbound = Outbound.for_token(token, slack.api_url)
    context = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"`check-{n}`"} for n in range(14)],
    }
    actions = {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": f"b{n}",
                "text": {"type": "plain_text", "text": "Run " + "x" * 90},
                "value": "v" * 2500,
            }
            for n in range(30)
        ],
    }
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "H" * 200}},
        _section("s" * 5000),
        context,
        actions,
        *[_section(f"finding {n}") for n in range(60)],
    ]

    ts = await outbound.post(DEFAULT_CHANNEL_ID, "Diagnose", blocks)
    await outbound.update(DEFAULT_CHANNEL_ID, ts, "Diagnose", blocks)
    await outbound.publish_home("U0ONCALL", {"type": "home", "blocks": blocks * 2})
    await outbound.aclose()

    assert slack.invalid_payloads == []
    (message,) = slack.messages(DEFAULT_CHANNEL_ID)
    assert len(message["blocks"]) == 50
    shown_context = message["blocks"][2]["elements"]
    assert len(shown_context) == 10
    assert shown_context[-1]["text"] == "…and 5 more"
    assert len(message["blocks"][3]["elements"]) == 25
    assert message["blocks"][-1]["elements"][0]["text"].endswith("more blocks not shown")
    assert len(slack.home_view("U0ONCALL")["blocks"]) == 100
