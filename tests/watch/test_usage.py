"""Bad `/hokusai watch` input gets a short usage reply, only to the person who typed it."""

from __future__ import annotations

import pytest

from bot.sandbox.conversation import Conversation
from tests.doubles import REPO

USAGE = "/hokusai watch [scope...] [every=30s] [for=30m] [env=ENV]"


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    db = tmp_path_factory.mktemp("usage") / "hokusai.db"
    with Conversation(REPO / "hokusai.yml", db, tracker=False) as conversation:
        yield conversation


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("watch every=5s", "`every=` must be between 10 s and 10 min"),
        ("watch every=11m", "`every=` can be at most 10 min"),
        ("watch for=4h", "`for=` can be at most 3 h"),
        ("watch every=1m for=30s", "`for=` must be at least one tick (`every=`) long"),
        ("watch every=soon", "`every=` takes a duration like 30s, 2m or 1h, not `soon`"),
        ("watch routing verbose=yes", "`verbose=yes`: the options are `every=`, `for=` and `env=`"),
        ("watch stop now", "`watch stop` takes no arguments"),
        ("watch no-such-hop", "unknown scope 'no-such-hop'"),
    ],
)
def test_bad_input_gets_a_usage_reply(chat, text, problem):
    before = len(chat.messages())
    ack = chat.command(text)
    said = [ack.text, *chat.ephemeral_texts()]
    reply = next((r for r in reversed(said) if problem in r), None)
    assert reply is not None, said[-1]
    assert USAGE in reply
    assert len(chat.messages()) == before  # nothing in the channel


def test_stop_without_a_watch_says_so(chat):
    chat.command("watch stop")
    assert chat.ephemeral_texts()[-1] == "No watch is running in this channel."


def test_help_lists_watch(chat):
    ack = chat.command("help watch")
    assert "*/hokusai watch* —" in ack.text and "/hokusai watch stop" in ack.text


def test_a_channel_that_refuses_the_bot_tells_the_person_and_leaves_no_watch(chat):
    chat.slack.add_channel("C0OUTSIDE", "outside", is_member=False, is_private=True)
    chat.command("watch routing", channel_id="C0OUTSIDE", channel_name="outside")
    said = chat.ephemeral_texts()[-1]
    assert "I could not post in this channel" in said and "/invite @hokusai" in said
    assert "Watching" not in said
    assert chat.server.app.hokusai_services.store().active_watches() == []
