"""Rendering a walkthrough: what people see, and that Slack would accept every message."""

from __future__ import annotations

from typing import Any

import pytest

from bot.mrkdwn import neutralise
from bot.runbook.model import Runbook
from bot.runbook.render import (
    ButtonRef,
    note_modal,
    runbook_list_blocks,
    walkthrough_blocks,
)
from bot.runbook.walkthrough import Action, CheckLine, InvalidAction, Walker

from .test_walkthrough import NOW, RUNBOOK


def assert_within_slack_limits(blocks: list[dict[str, Any]], max_blocks: int = 50) -> None:
    """Fail if Slack would reject these blocks (Block Kit limits, docs/architecture.md)."""
    assert len(blocks) <= max_blocks
    for block in blocks:
        assert len(block.get("block_id", "")) <= 255
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
        if block["type"] == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= 75
                assert len(button["value"]) <= 2000
                assert len(button["action_id"]) <= 255
            ids = [b["action_id"] for b in block["elements"]]
            assert len(ids) == len(set(ids)), "action ids must be unique within a block"


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        b["text"]["text"]: b for blk in blocks if blk["type"] == "actions" for b in blk["elements"]
    }


def text_of(blocks: list[dict[str, Any]]) -> str:
    """The blocks' text as Slack gets it. Blocks straight from the renderer still carry the
    marks of the bot's own mentions, which the choke point (``neutralise``) takes off."""
    parts = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(
            e.get("text", "") for e in block.get("elements", []) if e.get("type") == "mrkdwn"
        )
    text = "\n".join(parts)
    return neutralise(text) if "\ue000" in text else text


def test_first_step_shows_its_instructions_and_done_skip_note():
    state = Walker(RUNBOOK).start(actor="U1", env="development")
    text, blocks = walkthrough_blocks(RUNBOOK, state, session_id=7)
    assert text == "Runbook Demo: step 1 of 4: Look around"
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Runbook: Demo", "emoji": True},
    }
    shown = text_of(blocks)
    assert ":point_right: 1. *Look around*" in shown
    assert ":white_large_square: 2. Probe DNS" in shown
    assert "*Step 1 of 4: Look around*\nLook." in shown
    assert "started by <@U1>" in shown and "env `development`" in shown
    assert list(buttons(blocks)) == ["Done", "Skip", "Add note"]
    ref = ButtonRef.decode(buttons(blocks)["Done"]["value"])
    assert ref == ButtonRef(7, "look", 1)
    assert buttons(blocks)["Done"]["action_id"] == "runbook_done"
    assert_within_slack_limits(blocks)


def test_automated_step_offers_run_then_shows_running_then_results():
    walker = Walker(RUNBOOK)
    state, _ = walker.apply(walker.start(), Action("done", "look", 1), "U1", NOW)
    _, blocks = walkthrough_blocks(RUNBOOK, state, 7)
    assert list(buttons(blocks)) == ["Run", "Skip", "Add note"]
    running, _ = walker.apply(state, Action("run", "probe", 2), "U2", NOW)
    _, blocks = walkthrough_blocks(RUNBOOK, running, 7)
    assert "Run" not in buttons(blocks)
    assert "Running the checks… (started by <@U2>)" in text_of(blocks)
    result = (
        CheckLine(id="dns.resolve", status="fail", summary="NXDOMAIN", hint="Check the zone"),
        CheckLine(id="dns.route53-alias", status="pass", summary="alias ok"),
    )
    failed, _ = walker.apply(running, Action("result", "probe", 3, results=result), "U2", NOW)
    _, blocks = walkthrough_blocks(RUNBOOK, failed, 7)
    shown = text_of(blocks)
    assert ":x: 2. Probe DNS" in shown
    assert (
        "*Results of “Probe DNS”: failed*\n:x: `dns.resolve` NXDOMAIN\n      _Check the zone_"
        in shown
    )
    assert ":white_check_mark: `dns.route53-alias` alias ok" in shown
    # The question step's choices are buttons, each carrying its index.
    choice_buttons = buttons(blocks)
    assert list(choice_buttons) == ["The record", "Try again", "Keep going", "Skip", "Add note"]
    assert ButtonRef.decode(choice_buttons["Try again"]["value"]).choice == 1
    assert choice_buttons["Try again"]["action_id"] == "runbook_choice_1"
    assert_within_slack_limits(blocks)


def test_finished_walk_shows_the_conclusion_and_no_buttons():
    walker = Walker(RUNBOOK)
    state, _ = walker.apply(walker.start(), Action("done", "look", 1), "U1", NOW)
    state, _ = walker.apply(state, Action("run", "probe", 2), "U1", NOW)
    ok = (CheckLine(id="dns.resolve", status="pass", summary="resolves"),)
    state, _ = walker.apply(state, Action("result", "probe", 3, results=ok), "U1", NOW)
    text, blocks = walkthrough_blocks(RUNBOOK, state, 7)
    assert ":checkered_flag: *Conclusion*\nDNS is fine." in text_of(blocks)
    assert buttons(blocks) == {}
    assert "finished" in text


def test_notes_are_shown_with_who_wrote_them():
    walker = Walker(RUNBOOK)
    state, _ = walker.apply(walker.start(), Action("note", "look", 1, text="ALB 404s"), "U5", NOW)
    _, blocks = walkthrough_blocks(RUNBOOK, state, 7)
    assert ":memo: <@U5>: ALB 404s" in text_of(blocks)


def _huge_runbook() -> Runbook:
    long = "x" * 140
    steps = [
        {"id": f"s{i}", "title": f"{i} {long}", "manual": {"instructions": ("word " * 2000)}}
        for i in range(80)
    ]
    steps.insert(
        0,
        {
            "id": "ask",
            "title": long,
            "question": {
                "prompt": "line\n" * 3000,
                "choices": [{"label": f"{i} " + "y" * 72} for i in range(40)],
            },
        },
    )
    return Runbook.model_validate({"id": "huge", "title": "T" * 150, "steps": steps})


def test_a_huge_runbook_stays_within_slack_limits_and_keeps_its_buttons():
    runbook = _huge_runbook()
    walker = Walker(runbook)
    state = walker.start(actor="U" * 40)
    for _ in range(30):
        state, _ = walker.apply(state, Action("note", "ask", 1, text="n" * 2000), "U1", NOW)
    state = state.model_copy(update={"version": 10**12})
    _, blocks = walkthrough_blocks(runbook, state, session_id=10**15)
    assert_within_slack_limits(blocks)
    labels = list(buttons(blocks))
    assert len(labels) == 42  # 40 choices, Skip, Add note, across two actions blocks
    assert labels[-2:] == ["Skip", "Add note"]
    for state_step in (None, "s5"):
        if state_step:
            state = state.model_copy(update={"current": state_step})
        _, blocks = walkthrough_blocks(runbook, state, 1)
        assert_within_slack_limits(blocks)


def test_note_modal_carries_the_reference():
    view = note_modal(ButtonRef(3, "look", 4), "Look around")
    assert ButtonRef.decode(view["private_metadata"]) == ButtonRef(3, "look", 4)
    assert view["callback_id"] == "runbook_note_modal"
    assert_within_slack_limits(view["blocks"], max_blocks=100)


@pytest.mark.parametrize(
    "raw",
    ['{"s":"1","p":"a","v":1}', '{"s":1,"p":"a"}', "not json", "[]", None, '{"s":1,"p":2,"v":1}',
     '{"s":1,"p":"a","v":true}', '{"s":1,"p":"a","v":1,"c":"0"}'],
)  # fmt: skip
def test_tampered_button_values_do_not_decode(raw):
    with pytest.raises(InvalidAction):
        ButtonRef.decode(raw)


def test_runbook_list_names_each_runbook_with_its_description():
    text, blocks = runbook_list_blocks([RUNBOOK])
    assert text == "1 runbooks: demo"
    assert "• `demo` — *Demo*" in text_of(blocks)
    assert "/hokusai runbook start NAME" in text_of(blocks)
