"""Slack control text from outside the bot reaches Slack as text; the bot's own links live.

The Outbound choke point posts to the Slack stand-in; what the stand-in recorded is what Slack
would render.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from bot import mrkdwn
from bot.outbound import Outbound, scrub
from bot.sandbox import fakes
from bot.sandbox.slack import SlackStandIn

HOSTILE = (
    "<!channel> <!here> <!everyone> <@U0ATTACKER> <!subteam^S0ONCALL|@oncall> "
    "<#C0SECRET> <https://evil.example/login|Re-authenticate here> <mailto:x@evil.example> "
    "a < b && c > d"
)
# Any <...> Slack acts on: a special mention, a person, a group, a channel or a link.
LIVE = re.compile(r"<[!@#][^<>]*>|<(?:https?|mailto):[^<>]*>")


def test_outside_control_text_is_escaped_and_the_bots_own_constructs_stay_live() -> None:
    text = (
        f"{mrkdwn.user('U0ONCALL')} linked "
        f"{mrkdwn.link('https://linear.app/hokusai/issue/ENG-1', HOSTILE)} in "
        f"{mrkdwn.channel('C0INCIDENT')}: {HOSTILE}"
    )
    out = mrkdwn.neutralise(text)
    assert LIVE.findall(out) == [
        "<@U0ONCALL>",
        "<https://linear.app/hokusai/issue/ENG-1|&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; "
        "&lt;@U0ATTACKER&gt; &lt;!subteam^S0ONCALL|@oncall&gt; &lt;#C0SECRET&gt; "
        "&lt;https://evil.example/login|Re-authenticate here&gt; &lt;mailto:x@evil.example&gt; "
        "a &lt; b &amp;&amp; c &gt; d>",
        "<#C0INCIDENT>",
    ]
    assert out.endswith(": " + mrkdwn.escape(HOSTILE))


def test_text_slack_already_escaped_is_not_escaped_twice() -> None:
    assert mrkdwn.neutralise("incident &lt;!channel&gt; &amp; more") == (
        "incident &lt;!channel&gt; &amp; more"
    )


def test_a_forged_or_cut_mark_does_not_make_text_live() -> None:
    real = mrkdwn.user("U0ONCALL")
    forged = "\ue000" + "0" * 12 + "\ue001<!channel>\ue002"
    cut = real[: len(real) - 3]  # a mark cut in half by a length limit
    out = mrkdwn.neutralise(f"{forged} {cut}")
    assert not LIVE.findall(out)
    assert not re.search("[\ue000-\ue002]", out)


def test_values_that_are_not_ids_or_urls_are_shown_as_text() -> None:
    assert mrkdwn.user("<!here>") == "&lt;!here&gt;"
    assert mrkdwn.channel("general>") == "general&gt;"
    assert mrkdwn.link("javascript:alert(1)", "click") == "click"
    assert not LIVE.findall(mrkdwn.neutralise(mrkdwn.link("https://x.example/a|b", "label")))


def test_everywhere_but_slack_the_constructs_are_plain_text() -> None:
    text = f"{mrkdwn.user('U0ONCALL')} linked {mrkdwn.link('https://t.example/ENG-1', 'a & b')}"
    assert mrkdwn.plain(text) == "@U0ONCALL linked a & b (https://t.example/ENG-1)"
    assert scrub({"note": text, "n": 1}) == {"note": mrkdwn.plain(text), "n": 1}


def _posted_text(call_args: dict) -> list[tuple[str, str]]:
    """(where, text) for every string Slack would render as mrkdwn in a recorded call."""
    out = [("text", call_args.get("text", ""))]

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            if value.get("type") == "mrkdwn":
                out.append((path, value.get("text", "")))
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    blocks = call_args.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    walk(blocks, "blocks")
    view = call_args.get("view")
    if isinstance(view, str):
        view = json.loads(view)
    walk(view, "view")
    return out


@pytest.mark.parametrize("method", ["post", "update", "ephemeral", "publish_home"])
def test_the_choke_point_neutralises_every_slack_call(method: str) -> None:
    token = fakes.slack_bot_token()
    own = mrkdwn.link("https://linear.app/hokusai/issue/ENG-7", "ENG-7")
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{own} {HOSTILE}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": HOSTILE}]},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": HOSTILE}]},
        {"type": "header", "text": {"type": "plain_text", "text": f"{own} header"}},
    ]

    async def send(outbound: Outbound) -> None:
        if method == "post":
            await outbound.post("C0INCIDENT", f"{own} {HOSTILE}", blocks)
        elif method == "update":
            ts = await outbound.post("C0INCIDENT", "Diagnosing…")
            await outbound.update("C0INCIDENT", ts, HOSTILE, blocks)
        elif method == "ephemeral":
            await outbound.ephemeral("C0INCIDENT", "U0ONCALL", HOSTILE, blocks)
        else:
            await outbound.publish_home("U0ONCALL", {"type": "home", "blocks": blocks})
        await outbound.aclose()

    with SlackStandIn(bot_token=token) as slack:
        asyncio.run(send(Outbound.for_token(token, slack.api_url)))
        calls = [c for c in slack.calls if c.method != "auth.test"]
    assert calls, "nothing reached the stand-in"
    live = [
        (where, construct)
        for call in calls
        for where, text in _posted_text(call.args)
        for construct in LIVE.findall(text)
    ]
    foreign = [(where, c) for where, c in live if not c.startswith("<https://linear.app/")]
    assert not foreign, foreign
    assert live, "the bot's own link is live"
    rendered = json.dumps([c.args for c in calls])
    assert "&lt;!channel&gt;" in rendered  # the hostile text did arrive, as text
    assert "\\ue000" not in rendered and "\ue000" not in rendered
