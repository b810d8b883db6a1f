"""Watches in the incident log, on SQLite and on PostgreSQL (replicas share one log).

One running watch per channel, a save that names the tick it follows (so two processes can
never both advance one watch), and one lease holder at a time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from bot.incident.store import IncidentStore, WatchExists

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _start(store: IncidentStore, channel: str = "CINC", incident_id: int | None = None):
    return store.start_watch(
        channel_id=channel,
        incident_id=incident_id,
        env="development",
        scopes=["mlflow-direct"],
        check_ids=["routing.listener-rules[mlflow-direct]", "app.route-probe[mlflow-direct]"],
        every_s=30.0,
        burst=5,
        recover_after=3,
        ends_at=T0 + timedelta(minutes=30),
        actor="U1",
        now=T0,
    )


def test_a_watch_round_trips_and_lands_on_the_incident_timeline(database):
    store = IncidentStore(database)
    incident = store.declare_incident("Registry 404s", channel_id="CINC", commander="U1", now=T0)
    row = _start(store, incident_id=incident.id)
    assert (row.every_s, row.status, row.tick, row.message_ts) == (30.0, "active", 0, None)
    assert row.check_ids[1] == "app.route-probe[mlflow-direct]"
    assert row.ends_at == T0 + timedelta(minutes=30)
    assert store.timeline(incident.id)[-1].text == "Watch #1 started: 2 checks every 30s"
    store.set_watch_message(row.id, "1700000000.000100")
    state = {"headline": {"name": "failing"}, "tracks": [{"id": "x", "samples": ["fail"]}]}
    assert store.save_watch(row.id, tick=1, expected_tick=0, state=state)
    again = store.watch(row.id)
    assert (again.tick, again.state, again.message_ts) == (1, state, "1700000000.000100")
    assert [w.id for w in store.active_watches()] == [row.id]


def test_one_running_watch_per_channel_even_when_two_processes_race(database):
    IncidentStore(database)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        store = IncidentStore(database)
        barrier.wait()
        try:
            _start(store)
            outcomes.append("started")
        except WatchExists as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("started") == 1
    assert outcomes.count("watch #1 is already running in this channel") == 3
    store = IncidentStore(database)
    assert store.active_watch("CINC").id == 1
    # Once it ends, the channel may start another.
    assert store.end_watch(1, status="stopped")
    assert not store.end_watch(1, status="ended")  # ends once
    assert _start(store).id == 2


def test_a_save_that_does_not_follow_the_saved_tick_is_refused(database):
    store = IncidentStore(database)
    row = _start(store)
    assert store.save_watch(row.id, tick=1, expected_tick=0, state={"n": 1})
    # A second process that read tick 0 before the first saved cannot save over it.
    assert not store.save_watch(row.id, tick=1, expected_tick=0, state={"n": "stale"})
    assert store.watch(row.id).state == {"n": 1}
    store.end_watch(row.id, status="ended")
    assert not store.save_watch(row.id, tick=2, expected_tick=1, state={"n": 2})
    assert store.watch(row.id).ended_at is not None


def test_one_lease_holder_per_watch(database):
    store = IncidentStore(database)
    row = _start(store)
    name = f"watch:{row.id}"
    assert store.try_lease(name, "proc-a", 60, now=T0)
    assert not store.try_lease(name, "proc-b", 60, now=T0 + timedelta(seconds=30))
    assert store.try_lease(name, "proc-a", 60, now=T0 + timedelta(seconds=30))  # renewal
    assert store.try_lease(name, "proc-b", 60, now=T0 + timedelta(seconds=91))  # lapsed


@pytest.mark.parametrize("status", ["paused", "active"])
def test_a_watch_ends_only_as_stopped_or_ended(tmp_path, status):
    from bot.incident.store import StoreError

    store = IncidentStore(tmp_path / "hokusai.db")
    row = _start(store)
    with pytest.raises(StoreError):
        store.end_watch(row.id, status=status)
