"""Work in flight held by a process on another host is recovered once its lease lapses, once."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from bot.incident.store import IncidentStore
from bot.slack.recovery import TTL, InFlightWork

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _process(store: IncidentStore, handled: list[int], holder: str | None = None) -> InFlightWork:
    services = SimpleNamespace(store=lambda: store, clock=lambda: T0)
    work = InFlightWork(services, holder=holder)

    async def mark(_services, item) -> None:
        handled.append(item.id)

    work.handlers["diagnose"] = mark
    return work


async def test_work_of_another_host_waits_for_its_lease_then_one_process_takes_it(tmp_path):
    store = IncidentStore(tmp_path / "hokusai.db")
    work_id = store.begin_in_flight(
        "diagnose", holder="elsewhere:4242:abcd", ttl=TTL, channel="C1", message_ts="1.1", now=T0
    )
    handled: list[int] = []
    first, second = _process(store, handled), _process(store, handled)
    assert await first.recover(now=T0 + timedelta(seconds=TTL - 1)) == []
    later = T0 + timedelta(seconds=TTL + 1)
    taken = await first.recover(now=later) + await second.recover(now=later)
    assert [w.id for w in taken] == [work_id]
    assert handled == [work_id]
    assert store.in_flight() == []


async def test_renewed_work_is_not_taken(tmp_path):
    store = IncidentStore(tmp_path / "hokusai.db")
    handled: list[int] = []
    # Another live process on this host (pid 1 always runs).
    holder = _process(store, handled, holder=f"{socket.gethostname()}:1:alive")
    work_id = await holder.begin("diagnose", channel="C1", message_ts="1.1", payload={})
    assert work_id is not None
    other = _process(store, handled)
    await holder.renew()
    assert await other.recover(now=datetime.now(UTC)) == []
    await holder.end(work_id)
    assert store.in_flight() == [] and handled == []
