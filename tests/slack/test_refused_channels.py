"""A channel that refuses the bot (a private channel it was not invited to, a public one without
chat:write.public) still leaves the person who asked with an answer: the command's response_url
works where the bot is not a member. Through the real Bolt app and the strict Slack stand-in."""

from __future__ import annotations

import itertools
import json

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.sandbox import signing
from bot.sandbox.conversation import find_button
from bot.slack.app import services_of
from bot.slack.commanding import CommandRequest, Reply
from commands import deliver

PRIVATE, PUBLIC = "G0PRIVATE", "C0PLATFORM"
_keys = itertools.count(1)


async def dispatch(app, request: signing.SignedRequest) -> None:
    response = await app.async_dispatch(
        AsyncBoltRequest(body=request.text, headers=request.headers)
    )
    assert response.status == 200
    await services_of(app).drain()


async def command(app, slack, secrets, text: str, channel: str, name: str) -> list[str]:
    """Type ``/hokusai TEXT`` in ``channel``; what the person saw through the response_url."""
    key = f"cmd-{next(_keys)}"
    url = slack.response_url(key, channel=channel, user="U0ONCALL")
    request = signing.slash_command(
        secrets["signing_secret"], text, channel_id=channel, channel_name=name, response_url=url
    )
    await dispatch(app, request)
    return [r.get("text", "") for r in slack.responses(key)]


def walkthroughs(slack, channel: str) -> list[dict]:
    return [m for m in slack.messages(channel) if "Runbook:" in json.dumps(m["blocks"])]


async def test_a_private_channel_without_the_bot_answers_through_the_response_url(
    bot_app, slack, slack_secrets
) -> None:
    slack.add_channel(PRIVATE, "inc-secret", is_private=True, is_member=False)

    said = await command(
        bot_app, slack, slack_secrets, "runbook start dns-misconfiguration", PRIVATE, "inc-secret"
    )

    assert len(said) == 1
    assert "channel_not_found" in said[0] and "/invite @hokusai" in said[0]
    assert slack.messages(PRIVATE) == []
    # Slack refused the post; the answer came through the response_url instead.
    assert [c.args["channel"] for c in slack.calls_to("chat.postMessage")] == [PRIVATE]


async def test_chat_write_public_is_what_lets_the_bot_answer_in_a_public_channel(
    bot_app, slack, slack_secrets
) -> None:
    slack.add_channel(PUBLIC, "platform", is_member=False)
    text = "runbook start dns-misconfiguration"

    with_scope = await command(bot_app, slack, slack_secrets, text, PUBLIC, "platform")
    slack.scopes -= {"chat:write.public"}
    without = await command(bot_app, slack, slack_secrets, text, PUBLIC, "platform")

    assert with_scope == []  # nothing to say to the person: the walkthrough is in the channel
    assert len(walkthroughs(slack, PUBLIC)) == 1
    assert len(without) == 1 and "not_in_channel" in without[0]


async def test_a_reply_meant_for_the_channel_reaches_its_author_when_the_channel_refuses(
    bot_app, slack
) -> None:
    slack.add_channel(PRIVATE, "inc-secret", is_private=True, is_member=False)
    url = slack.response_url("reply", channel=PRIVATE, user="U0ONCALL")
    req = CommandRequest(
        text="ticket link HOK-1",
        args=["ticket", "link", "HOK-1"],
        user_id="U0ONCALL",
        channel_id=PRIVATE,
        response_url=url,
    )
    reply = Reply(
        "Linked HOK-1",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Linked *HOK-1*"}}],
        ephemeral=False,
    )

    assert await deliver(reply, req, services_of(bot_app)) is None

    (seen,) = slack.ephemeral_messages(channel=PRIVATE, user="U0ONCALL")
    assert "Only you see this" in seen["blocks"][0]["elements"][0]["text"]
    assert seen["blocks"][1]["text"]["text"] == "Linked *HOK-1*"
    assert slack.messages(PRIVATE) == []


async def test_a_click_after_the_bot_left_the_channel_is_answered_through_the_response_url(
    bot_app, slack, slack_secrets
) -> None:
    slack.add_channel(PRIVATE, "inc-secret", is_private=True)
    said = await command(
        bot_app, slack, slack_secrets, "runbook start dns-misconfiguration", PRIVATE, "inc-secret"
    )
    assert said == []
    (message,) = walkthroughs(slack, PRIVATE)
    # Someone removes the bot from the channel; the walkthrough message stays.
    slack.add_channel(PRIVATE, "inc-secret", is_private=True, is_member=False)
    button = find_button(message, "Skip")
    url = slack.response_url("click", channel=PRIVATE, user="U0ONCALL")

    await dispatch(
        bot_app,
        signing.block_action(
            slack_secrets["signing_secret"],
            button["action_id"],
            button["value"],
            message_ts=message["ts"],
            message_blocks=message["blocks"],
            channel_id=PRIVATE,
            channel_name="inc-secret",
            response_url=url,
        ),
    )

    (answer,) = [r["text"] for r in slack.responses("click")]
    assert "channel_not_found" in answer and "/invite @hokusai" in answer
    # The ephemeral was tried first and refused like the update: the response_url got through.
    refused = slack.calls_to("chat.postEphemeral")
    assert len(refused) == 1 and refused[0].args["channel"] == PRIVATE
