"""The `intermittent` scenario: one of MLflow's two targets is a stale API task.

A single diagnose can pass by luck there; a watch's burst measures it instead.
"""

from __future__ import annotations

import json
import re

from bot.sandbox.conversation import Conversation
from bot.sandbox.world import Sandbox
from tests.watch.conftest import EVERY, FAST, top_level, wait_for, watch_row

PROBE = "app.route-probe[mlflow-direct]"


def test_flapping_is_reported_intermittent_with_a_measured_rate(shared_mlflow, tmp_path):
    with (
        Sandbox("intermittent", mlflow=shared_mlflow, workdir=tmp_path / "sandbox") as sandbox,
        Conversation(
            sandbox.config_path, tmp_path / "hokusai.db", app_overrides={"watch_limits": FAST}
        ) as chat,
    ):
        chat.command('incident declare "Registry flaps" sev=2 channel=here')
        chat.command(f"watch {PROBE} every={EVERY}s for=2m")

        def intermittent_for_a_while():
            row = watch_row(chat)
            name = row.state.get("headline", {}).get("name")
            return row if name == "intermittent" and row.tick >= 3 else None

        row = wait_for("three intermittent ticks", intermittent_for_a_while)
        detail = row.state["headline"]["detail"]
        rate, samples = map(int, re.match(r"(\d+)% of (\d+) recent results pass", detail).groups())
        assert 30 <= rate <= 70, detail
        assert samples >= 3 * FAST.burst  # every tick sent a burst, not one request
        assert re.search(r"\d+ of \d+ answered 404 by FastAPI", detail)

        wait_for(
            "the message to show the flapping",
            lambda: "*Intermittent*" in json.dumps(top_level(chat, "Watch #1")[0]["blocks"]),
        )
        shown = json.dumps(top_level(chat, "Watch #1")[0]["blocks"], ensure_ascii=False)
        assert "200 by MLflow" in shown and "404 by FastAPI" in shown
        assert "✅❌" in shown or "❌✅" in shown

        # Deregistering the stale target (in moto) ends the flapping.
        sandbox.fix()
        wait_for(
            "the recovery",
            lambda: watch_row(chat).state["headline"]["name"] == "recovered",
        )
