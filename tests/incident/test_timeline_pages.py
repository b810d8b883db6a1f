"""`incident timeline` pages through a long incident, newest first, with an *Older* button.

Nothing is cut off: pressing *Older* until it goes away shows every entry exactly once, and
every page fits one Slack message.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.incident.store import IncidentStore
from bot.outbound import MAX_MESSAGE_TEXT, MAX_SECTION_TEXT
from bot.sandbox import signing
from bot.sandbox.slack import DEFAULT_CHANNEL_ID
from bot.settings import load_settings
from bot.slack.app import build_app, services_of

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ENTRIES = 150


@pytest.fixture
def bot(slack, slack_secrets, bot_env):
    app = build_app(load_settings())
    store = IncidentStore(Path(bot_env["HOKUSAI_DB"]))
    incident = store.declare_incident(
        "Registry 404s", channel_id=DEFAULT_CHANNEL_ID, commander="U0BOSS", now=T0
    )
    for i in range(ENTRIES):
        # Some entries are long (pasted log lines); the page must still fit.
        text = f"note {i:03d} " + ("x" * 900 if i % 10 == 0 else "checked the rules")
        store.add_note(incident.id, text, actor="U0ONCALL", now=T0 + timedelta(minutes=i + 1))
    return app, slack_secrets["signing_secret"]


async def _send(app, request) -> None:
    await app.async_dispatch(AsyncBoltRequest(body=request.text, headers=request.headers))
    await services_of(app).drain()


def _notes(blocks) -> list[int]:
    text = " ".join(b["text"]["text"] for b in blocks if b.get("type") == "section")
    return [int(n) for n in re.findall(r"note (\d{3})", text)]


def _buttons(blocks) -> dict[str, dict]:
    return {
        e["text"]["text"]: e for b in blocks if b.get("type") == "actions" for e in b["elements"]
    }


async def test_pressing_older_until_the_end_shows_every_entry_once(bot, slack):
    app, secret = bot
    await _send(
        app,
        signing.slash_command(
            secret, "incident timeline", response_url=slack.response_url("timeline")
        ),
    )
    (page,) = slack.responses("timeline")
    pages = [page]
    while "Older" in _buttons(page["blocks"]):
        button = _buttons(page["blocks"])["Older"]
        await _send(
            app,
            signing.block_action(
                secret,
                button["action_id"],
                button["value"],
                response_url=slack.response_url("timeline"),
                message_blocks=page["blocks"],
            ),
        )
        page = slack.responses("timeline")[-1]
        assert page.get("replace_original") is True
        pages.append(page)
        assert len(pages) < 40, "Older never ends"
    seen = [n for p in pages for n in _notes(p["blocks"])]
    assert seen == list(range(ENTRIES - 1, -1, -1))  # newest first, none missing, no repeats
    assert len(pages) > 2
    for p in pages:
        assert len(p["text"]) <= MAX_MESSAGE_TEXT
        for block in p["blocks"]:
            if block.get("type") == "section":
                assert len(block["text"]["text"]) <= MAX_SECTION_TEXT
    assert "Newest" in _buttons(pages[-1]["blocks"])
    assert "entries" in pages[0]["text"] and f"of {ENTRIES + 1}" in pages[0]["text"]


async def test_a_page_button_from_another_channel_shows_nothing(bot, slack):
    app, secret = bot
    slack.add_channel("C0OTHER", "other")
    value = json.dumps({"incident": 1, "skip": 0})
    await _send(
        app,
        signing.block_action(
            secret,
            "incident_timeline_page",
            value,
            channel_id="C0OTHER",
            channel_name="other",
            response_url=slack.response_url("other"),
        ),
    )
    assert slack.responses("other") == []
    (told,) = slack.ephemeral_messages(channel="C0OTHER")
    assert "another channel" in told["text"]
