"""`/hokusai watch` through the real bot and the Slack stand-in, on the seed-outage sandbox.

The responder declares an incident, diagnoses, starts a watch; the platform team fixes the
catch-all listener rule in (moto's) AWS while the watch runs. What a person in the channel
would see is asserted: one message updated in place, one thread line when it recovers, a
button that moves the incident to monitoring, a timeline of transitions only.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

from bot.incident.summaries import build_summary
from bot.sandbox.slack import DEFAULT_CHANNEL_ID
from bot.slack.server import BotServer
from bot.watch.supervisor import supervisor_for
from tests.watch.conftest import (
    EVERY,
    FAST,
    fix_and_wait,
    thread_of,
    top_level,
    wait_for,
    watch_row,
)


def _state(chat, name: str):
    def reached():
        row = watch_row(chat)
        return row if row.state.get("headline", {}).get("name") == name else None

    return reached


def _blocks_text(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_a_fix_mid_watch_is_recovered_within_n_plus_one_ticks_and_offers_monitoring(chat, broken):
    chat.command(f"watch every={EVERY}s for=2m")
    assert chat.ephemeral_texts()[-1].startswith(
        "Watching 2 checks (the checks that failed in the latest diagnose (run 1)) every 0.5 s"
    )
    wait_for("two failing ticks", lambda: _state(chat, "failing")() and watch_row(chat).tick >= 2)

    fix_and_wait(broken)
    fixed_at = watch_row(chat).tick
    recovered = wait_for("the recovery", _state(chat, "recovered"))
    assert recovered.tick - fixed_at <= FAST.recover_after + 1

    # One message, updated in place at most once a tick, showing each check's history.
    wait_for(
        "the message to say so",
        lambda: (
            "*Recovered* — 3 consecutive passes since"
            in _blocks_text(top_level(chat, "Watch #1")[0])
        ),
    )
    [message] = top_level(chat, "Watch #1")
    shown = _blocks_text(message)
    assert "`routing.listener-rules[mlflow-direct]`" in shown
    assert "`app.route-probe[mlflow-direct]`" in shown
    assert "❌" in shown and "✅" in shown and "failed first" in shown
    assert "404 by FastAPI" in shown and "200 by MLflow" in shown
    updates = [u for u in chat.slack.calls_to("chat.update") if "Watch #" in u.args["text"]]
    assert updates and all(u.args["ts"] == message["ts"] for u in updates)
    assert len(updates) <= watch_row(chat).tick

    # The recovery speaks once, in the watch's thread, and offers to move to monitoring.
    tick = watch_row(chat).tick
    wait_for("two more ticks", lambda: watch_row(chat).tick >= tick + 2)
    [line] = thread_of(chat, message["ts"])
    assert line["text"].startswith(":large_green_circle: Recovered: 3 consecutive passes since")
    chat.click(line, "Move incident to monitoring")
    store = chat.server.app.hokusai_services.store()
    incident = store.incident_for_channel(DEFAULT_CHANNEL_ID)
    assert incident.status == "monitoring"
    # Once monitoring, the live message no longer offers the button.
    wait_for(
        "the button to go",
        lambda: "Move incident to monitoring" not in _blocks_text(top_level(chat, "Watch #1")[0]),
    )

    # The timeline has the transitions, not the ticks.
    entries = [e.text for e in store.timeline(incident.id) if e.kind == "watch"]
    assert entries[0] == "Watch #1 started: 2 checks every 0.5s"
    assert entries[1].startswith("Watch #1: watching → failing (every recent result fails)")
    assert entries[2].startswith("Watch #1: failing → recovered (3 consecutive passes since")
    assert len(entries) == 3
    # The run that showed the recovery is on record: the incident's summary no longer names the
    # fixed hop as failing, and the diagnoses counted are still the people's.
    watched = {"routing.listener-rules[mlflow-direct]", "app.route-probe[mlflow-direct]"}

    def recovered_summary():
        now = build_summary(store, incident.id, datetime.now(UTC), since_last_summary=False)
        return None if watched & {s.check_id for s in now.failing} else now

    summary = wait_for("the recovery on record", recovered_summary)
    assert watched <= {s.check_id for s in summary.states}
    assert "listener-rules" not in summary.first_failure_line(markdown=False)
    assert summary.changes.runs == 1

    # Stopped: the message keeps the final state and the strip, and stops changing.
    chat.command("watch stop")
    assert chat.ephemeral_texts()[-1] == "Stopped watch #1."
    final = top_level(chat, "Watch #1")[0]
    assert "Watch stopped by <@U0ONCALL> · final state :large_green_circle: *Recovered*" in (
        _blocks_text(final)
    )
    assert "watch stop" not in _blocks_text(final) and "✅" in _blocks_text(final)
    time.sleep(3 * EVERY)
    assert top_level(chat, "Watch #1")[0]["updated"] == final["updated"]
    assert store.timeline(incident.id)[-1].text.startswith("Watch #1 stopped after")


def test_a_watch_survives_a_restart_with_no_second_message(chat, broken):
    chat.command(f"watch every={EVERY}s for=2m")
    wait_for("two ticks", lambda: watch_row(chat).tick >= 2)
    before = watch_row(chat)

    chat.restart_bot()  # a deploy: the old process gives its lease back, a new one starts

    wait_for("the new process to carry on", lambda: watch_row(chat).tick >= before.tick + 3)
    [message] = top_level(chat, "Watch #1")
    assert message["ts"] == before.message_ts
    posts = [c for c in chat.slack.calls_to("chat.postMessage") if "Watch #" in c.args["text"]]
    assert len(posts) == 1
    assert list(supervisor_for(chat.server.app.hokusai_services).jobs) == [1]
    # The history carried over: the strip still starts with the ticks before the restart.
    track = next(
        t for t in watch_row(chat).state["tracks"] if t["id"] == "app.route-probe[mlflow-direct]"
    )
    assert len(track["ticks"]) == watch_row(chat).tick
    # A second watch in the channel is refused while this one runs.
    chat.command("watch")
    assert "watch #1 is already running in this channel" in chat.ephemeral_texts()[-1]


def test_two_processes_never_run_the_same_watch(chat, broken):
    from bot.settings import load_settings
    from bot.slack.app import build_app

    servers = [chat.server, BotServer(build_app(load_settings(), watch_limits=FAST)).start()]
    supervisors = [supervisor_for(s.app.hokusai_services) for s in servers]

    async def start_second() -> None:
        supervisors[1].start()

    servers[1].run_coroutine(start_second())
    alive = [True, True]
    try:
        chat.command(f"watch every={EVERY}s for=2m")
        wait_for("an owner", lambda: any(s.jobs for s in supervisors))
        owner = 0 if supervisors[0].jobs else 1
        deadline = time.monotonic() + 8 * EVERY
        while time.monotonic() < deadline:
            running = [bool(s.jobs) for s in supervisors]
            assert running == [n == owner for n in range(2)], "one process runs it, always"
            time.sleep(0.05)

        # The owner dies without giving its lease back: the other takes over once it lapses.
        tick = watch_row(chat).tick
        servers[owner].stop()
        alive[owner] = False
        heir = 1 - owner
        chat.server = servers[heir]
        wait_for("the other process to adopt the watch", lambda: bool(supervisors[heir].jobs))
        wait_for("ticks to go on", lambda: watch_row(chat).tick >= tick + 3)
        [message] = top_level(chat, "Watch #1")
        assert message["ts"] == watch_row(chat).message_ts
    finally:
        # The conversation stops its own server; the other one is stopped here.
        for n, server in enumerate(servers):
            if alive[n] and server is not chat.server:
                server.run_coroutine(supervisors[n].stop())
                server.stop()


def test_a_ticket_done_while_its_checks_fail_is_called_out_once(chat, broken):
    chat.command("ticket create Fix the registry routing")
    [key] = list(chat.tracker.issues)
    chat.command(f"watch every={EVERY}s for=2m")
    wait_for("a tick", lambda: watch_row(chat).tick >= 1)
    ts = watch_row(chat).message_ts

    chat.tracker.mark_done(key)

    def called_out():
        return [m for m in thread_of(chat, ts) if f"{key} is marked Done" in m["text"]]

    [line] = wait_for("the Done ticket to be called out", called_out)
    assert "but its checks still fail" in line["text"]
    assert "routing.listener-rules[mlflow-direct]" in line["text"]
    [comment] = wait_for("a comment on the ticket", lambda: chat.tracker.comments(key))
    assert "still fail" in comment
    tick = watch_row(chat).tick
    wait_for("three more ticks", lambda: watch_row(chat).tick >= tick + 3)
    assert len(called_out()) == 1 and len(chat.tracker.comments(key)) == 1
    store = chat.server.app.hokusai_services.store()
    incident = store.incident_for_channel(DEFAULT_CHANNEL_ID)
    assert any(
        re.match(rf"{key} is Done but .* still fail \(watch #1\)", e.text)
        for e in store.timeline(incident.id)
    )

    fix_and_wait(broken)
    wait_for("the recovery", _state(chat, "recovered"))
    comments = wait_for("the recovery note", lambda: chat.tracker.comments(key)[1:])
    assert "recovered" in comments[0]
