"""Periodic summaries: due every N minutes while open, never posted twice by two processes."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import load_config
from bot.incident.store import IncidentStore
from bot.settings import Settings
from bot.slack.scheduler import SummaryScheduler
from bot.slack.services import Services
from tests.doubles import REPO, RecordingOutbound

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def services_for(db: Path | str, posts: list, now: datetime, delay: float = 0.0) -> Services:
    return Services(
        Settings(hokusai_db=db),
        load_config(REPO / "hokusai.yml"),
        RecordingOutbound(posts, delay),
        clock=lambda: now,
    )


def test_summary_posts_every_interval_while_open(database):
    db = database
    inc = IncidentStore(db).declare_incident(
        "Registry 404s", channel_id="CINC", commander="U1", now=T0
    )
    posts: list = []

    def tick(at: datetime) -> list[int]:
        return asyncio.run(SummaryScheduler(services_for(db, posts, at)).tick())

    assert tick(T0 + timedelta(minutes=29)) == []
    assert tick(T0 + timedelta(minutes=30)) == [inc.id]
    assert tick(T0 + timedelta(minutes=31)) == []
    IncidentStore(db).add_note(
        inc.id, "rolled back the rule", actor="U1", now=T0 + timedelta(minutes=40)
    )
    assert tick(T0 + timedelta(minutes=61)) == [inc.id]
    # Nothing new since the 61-minute summary: the next interval posts nothing.
    assert tick(T0 + timedelta(minutes=92)) == []
    assert [channel for channel, _ in posts] == ["CINC", "CINC"]
    assert posts[0][1].startswith("Scheduled summary: #1 Registry 404s")
    IncidentStore(db).resolve(inc.id, actor="U1", now=T0 + timedelta(minutes=70))
    assert tick(T0 + timedelta(hours=5)) == []


def test_two_processes_on_one_database_post_once(database):
    db = database
    for n in range(3):
        IncidentStore(db).declare_incident(
            f"Outage {n}", channel_id=f"C{n}", commander="U1", now=T0
        )
    posts: list = []
    barrier = threading.Barrier(2)
    now = T0 + timedelta(minutes=45)

    def process(name: str) -> None:
        # A slow post widens the window in which the other process could double up.
        services = services_for(db, posts, now, delay=0.05)
        barrier.wait()
        asyncio.run(SummaryScheduler(services, holder=name).tick())

    threads = [threading.Thread(target=process, args=(f"proc-{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(channel for channel, _ in posts) == ["C0", "C1", "C2"]
    # Later, with leases still held, neither process posts again before the next interval.
    again: list = []
    asyncio.run(SummaryScheduler(services_for(db, again, now + timedelta(minutes=5))).tick())
    assert again == []


def test_zero_interval_turns_summaries_off(tmp_path):
    db = tmp_path / "hokusai.db"
    IncidentStore(db).declare_incident("Registry 404s", channel_id="CINC", commander="U1", now=T0)
    posts: list = []
    services = services_for(db, posts, T0 + timedelta(days=1))
    services.config = services.config.model_copy(
        update={
            "incidents": services.config.incidents.model_copy(update={"summary_every_minutes": 0})
        }
    )
    assert asyncio.run(SummaryScheduler(services).tick()) == []
    assert posts == []
