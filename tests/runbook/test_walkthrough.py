"""The walkthrough state machine: transitions, branches, stale and tampered actions, races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from bot.runbook.model import Runbook
from bot.runbook.walkthrough import (
    Action,
    CheckLine,
    IncidentSessionStore,
    InvalidAction,
    StaleAction,
    StepState,
    Walker,
    WalkState,
    advance,
    load_state,
)

RUNBOOK = Runbook.model_validate(
    {
        "id": "demo",
        "title": "Demo",
        "steps": [
            {"id": "look", "title": "Look around", "manual": {"instructions": "Look."}},
            {
                "id": "probe",
                "title": "Probe DNS",
                "automated": {"checks": ["dns"]},
                "on_fail": "triage",
                "on_pass": {"stop": {"conclusion": "DNS is fine."}},
            },
            {
                "id": "triage",
                "title": "What broke?",
                "question": {
                    "prompt": "Which?",
                    "choices": [
                        {
                            "label": "The record",
                            "next": {"stop": {"conclusion": "Fix the record."}},
                        },
                        {"label": "Try again", "next": "probe"},
                        {"label": "Keep going"},
                    ],
                },
            },
            {"id": "last", "title": "Write it up", "manual": {"instructions": "Write."}},
        ],
    }
)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def line(status: str, check_id: str = "dns.resolve") -> CheckLine:
    return CheckLine(id=check_id, status=status, summary=f"{check_id} {status}")


@pytest.fixture
def walker() -> Walker:
    return Walker(RUNBOOK)


def act(walker: Walker, state: WalkState, kind: str, **kw) -> tuple[WalkState, str]:
    step = kw.pop("step", state.current)
    version = kw.pop("version", state.version)
    now = kw.pop("now", NOW)
    return walker.apply(state, Action(kind, step, version, **kw), "U1", now)


def run_step(walker: Walker, state: WalkState, *statuses: str) -> tuple[WalkState, str]:
    state, _ = act(walker, state, "run")
    assert state.steps[state.current].state is StepState.RUNNING
    results = tuple(line(s, f"dns.c{i}") for i, s in enumerate(statuses))
    return act(walker, state, "result", results=results)


def test_start_is_at_the_first_step_with_everything_pending(walker):
    state = walker.start(actor="U1", env="development")
    assert state.current == "look"
    assert state.version == 1
    assert {r.state for r in state.steps.values()} == {StepState.PENDING}


def test_done_moves_a_manual_step_to_the_next(walker):
    state, text = act(walker, walker.start(), "done")
    assert state.current == "probe"
    assert state.steps["look"].state is StepState.DONE
    assert state.steps["look"].by == "U1"
    assert state.version == 2
    assert text == "demo step 1 'Look around': done → step 2 'Probe DNS'"


def test_passing_run_follows_on_pass_to_a_stop(walker):
    state, _ = act(walker, walker.start(), "done")
    state, text = run_step(walker, state, "pass", "warn", "skipped")
    assert state.finished and state.current is None
    assert state.conclusion == "DNS is fine."
    assert state.steps["probe"].state is StepState.PASSED
    assert "passed (3 checks)" in text and "stop: DNS is fine." in text


@pytest.mark.parametrize("bad", ["fail", "error", "timeout"])
def test_failing_run_follows_on_fail(walker, bad):
    state, _ = act(walker, walker.start(), "done")
    state, text = run_step(walker, state, "pass", bad)
    assert state.current == "triage"
    assert state.steps["probe"].state is StepState.FAILED
    assert [r.status for r in state.steps["probe"].results] == ["pass", bad]
    assert "failed (1 of 2 checks: dns.c1) → step 3 'What broke?'" in text


def test_a_run_where_nothing_ran_does_not_pass(walker):
    state, _ = act(walker, walker.start(), "done")
    state, text = run_step(walker, state)
    assert state.current == "triage"
    assert "no checks ran" in text


def test_choices_branch_to_stop_loop_back_or_next(walker):
    state, _ = act(walker, walker.start(), "done")
    at_triage, _ = run_step(walker, state, "fail")
    stopped, text = act(walker, at_triage, "choice", choice=0)
    assert stopped.conclusion == "Fix the record."
    assert stopped.steps["triage"].answer == "The record"
    assert "answered 'The record'" in text
    looped, _ = act(walker, at_triage, "choice", choice=1)
    assert looped.current == "probe"
    # Re-entering a step starts it afresh.
    assert looped.steps["probe"].state is StepState.PENDING
    assert looped.steps["probe"].results == []
    onward, _ = act(walker, at_triage, "choice", choice=2)
    assert onward.current == "last"
    done, text = act(walker, onward, "done")
    assert done.finished and done.conclusion is None
    assert text.endswith("→ end of runbook")


def test_skip_follows_next_from_any_kind_of_step(walker):
    state, _ = act(walker, walker.start(), "skip")
    assert state.steps["look"].state is StepState.SKIPPED
    state, _ = act(walker, state, "skip")  # automated: skip goes to the following step
    assert state.current == "triage"


def test_notes_attach_without_moving_and_survive_a_stale_version(walker):
    start = walker.start()
    moved, _ = act(walker, start, "done")
    noted, text = act(walker, moved, "note", step="look", version=1, text="  saw 404s  ")
    assert noted.current == "probe"
    assert noted.steps["look"].notes[0].text == "saw 404s"
    assert noted.steps["look"].notes[0].actor == "U1"
    assert text == "demo step 1 'Look around': note: saw 404s"
    with pytest.raises(InvalidAction, match="needs some text"):
        act(walker, moved, "note", text="   ")


def test_stale_version_is_refused_and_names_where_the_walk_is(walker):
    start = walker.start()
    moved, _ = act(walker, start, "done")
    with pytest.raises(StaleAction, match="now at step 2: Probe DNS"):
        act(walker, moved, "done", step="look", version=1)
    # The old state is untouched by the refused action.
    assert moved.current == "probe" and moved.version == 2


def test_a_button_for_a_step_that_is_not_current_is_stale(walker):
    with pytest.raises(StaleAction):
        act(walker, walker.start(), "skip", step="probe")


@pytest.mark.parametrize(
    ("kind", "kw", "message"),
    [
        ("done", {"step": "nope"}, "does not belong to this runbook"),
        ("explode", {}, "unknown action"),
        ("run", {}, "no checks to run"),
        ("choice", {"choice": 0}, "asks no question"),
        ("done", {"version": 99}, "never had"),
        ("done", {"version": 0}, "never had"),
    ],
)
def test_tampered_actions_are_invalid(walker, kind, kw, message):
    with pytest.raises(InvalidAction, match=message):
        act(walker, walker.start(), kind, **kw)


def test_choice_out_of_range_is_invalid(walker):
    state, _ = act(walker, walker.start(), "done")
    state, _ = run_step(walker, state, "fail")
    for choice in (3, -1, None):
        with pytest.raises(InvalidAction, match="not one of the step's choices"):
            act(walker, state, "choice", choice=choice)


def test_a_second_run_while_running_is_stale_until_abandoned(walker):
    state, _ = act(walker, walker.start(), "done")
    running, _ = act(walker, state, "run")
    with pytest.raises(StaleAction, match="already running"):
        act(walker, running, "run")
    later = NOW + timedelta(minutes=10)
    rerun, _ = act(walker, running, "run", now=later)  # the bot restarted mid-run
    assert rerun.steps["probe"].state is StepState.RUNNING
    with pytest.raises(StaleAction):
        act(walker, running, "run", now=NOW + timedelta(minutes=1))


def test_a_result_survives_a_note_but_not_a_skip(walker):
    state, _ = act(walker, walker.start(), "done")
    running, _ = act(walker, state, "run")
    run_version = running.version
    noted, _ = act(walker, running, "note", text="running it")
    result = Action("result", "probe", run_version, results=(line("fail"),))
    after, _ = walker.apply(noted, result, "U1", NOW)
    assert after.current == "triage"
    skipped, _ = act(walker, running, "skip")
    with pytest.raises(StaleAction):
        walker.apply(skipped, result, "U1", NOW)


def test_finished_walk_refuses_moves(walker):
    state, _ = act(walker, walker.start(), "done")
    state, _ = run_step(walker, state, "pass")
    with pytest.raises(StaleAction, match="already finished"):
        act(walker, state, "done", step="look", version=state.version)


def test_state_round_trips_through_json(walker):
    state, _ = act(walker, walker.start(actor="U9", env="dev"), "done")
    state, _ = run_step(walker, state, "fail")
    again = WalkState.from_json(state.to_json())
    assert again == state


# -- persistence and races -------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    from bot.incident.store import IncidentStore

    return IncidentSessionStore(IncidentStore(tmp_path / "hokusai.db"))


def test_advance_saves_through_the_store_and_loads_back(store, walker):
    record = store.create("demo", incident_id=None, channel="C1", state=walker.start(), actor="U1")
    state, _ = advance(store, walker, record.id, Action("done", "look", 1), "U2")
    loaded = load_state(store.load(record.id))
    assert loaded.current == "probe" and loaded.version == 2 == state.version
    assert store.load(999) is None


def test_two_threads_clicking_at_once_advance_the_step_exactly_once(store, walker):
    record = store.create("demo", incident_id=None, channel="C1", state=walker.start(), actor="U1")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    class SlowStore:
        """Both clicks read version 1 before either writes: the race the lock must settle."""

        def load(self, session_id):
            loaded = store.load(session_id)
            barrier.wait(timeout=5)
            return loaded

        def save_if_version(self, *args, **kwargs):
            return store.save_if_version(*args, **kwargs)

    def click(user: str) -> None:
        try:
            advance(SlowStore(), walker, record.id, Action("done", "look", 1), user)
            outcomes.append("advanced")
        except StaleAction:
            outcomes.append("stale")

    threads = [threading.Thread(target=click, args=(u,)) for u in ("U1", "U2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(outcomes) == ["advanced", "stale"]
    final = load_state(store.load(record.id))
    assert final.current == "probe"
    assert final.version == 2


def test_a_note_that_loses_a_race_is_applied_to_the_newer_state(store, walker):
    record = store.create("demo", incident_id=None, channel="C1", state=walker.start(), actor="U1")
    stale_record = store.load(record.id)
    advance(store, walker, record.id, Action("done", "look", 1), "U1")

    class StaleOnce:
        calls = 0

        def load(self, session_id):
            self.calls += 1
            return stale_record if self.calls == 1 else store.load(session_id)

        def save_if_version(self, *args, **kwargs):
            return store.save_if_version(*args, **kwargs)

    state, _ = advance(StaleOnce(), walker, record.id, Action("note", "look", 1, text="hi"), "U2")
    assert state.current == "probe"
    assert load_state(store.load(record.id)).steps["look"].notes[0].text == "hi"
