"""The incident log's lifecycle rows on both engines: duplicate declares, closing statuses,
severity and roles, archiving, ticket polls, failure spans and cached names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.incident.store import (
    DuplicateDeclare,
    IncidentExists,
    IncidentStore,
    InvalidTransition,
)
from tests.incident.test_store import report

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(database) -> IncidentStore:
    return IncidentStore(database)


def test_same_title_from_the_same_channel_within_ten_minutes_is_one_incident(store):
    first = store.declare_incident(
        "Registry returns 404", channel_id=None, commander="U1", origin_channel_id="C1", now=T0
    )
    store.assign_channel(first.id, "C9", "inc-20260301-registry-returns-404")
    with pytest.raises(DuplicateDeclare) as raised:
        store.declare_incident(
            "registry  RETURNS 404!",
            channel_id=None,
            commander="U2",
            origin_channel_id="C1",
            now=T0 + timedelta(minutes=9),
        )
    assert raised.value.incident.id == first.id
    # Another channel, or eleven minutes later, is another incident.
    store.declare_incident(
        "Registry returns 404", channel_id="C2", commander="U2", origin_channel_id="C2", now=T0
    )
    later = store.declare_incident(
        "Registry returns 404",
        channel_id=None,
        commander="U2",
        origin_channel_id="C1",
        now=T0 + timedelta(minutes=11),
    )
    assert later.id != first.id and later.channel_id.startswith("pending:")
    # A reserved incident whose channel could not be made leaves nothing behind.
    store.discard_incident(later.id)
    assert [i.id for i in store.list_incidents()] == [2, 1]


def test_cancelled_closes_like_resolved_and_frees_the_channel(store):
    inc = store.declare_incident("Oops", channel_id="C1", commander="U1", now=T0)
    with pytest.raises(IncidentExists):
        store.declare_incident("Other", channel_id="C1", commander="U1", now=T0)
    store.set_status(inc.id, "mitigated", actor="U1", now=T0 + timedelta(minutes=5))
    closed = store.set_status(inc.id, "cancelled", actor="U1", now=T0 + timedelta(minutes=6))
    assert not closed.is_open and closed.resolved_at == T0 + timedelta(minutes=6)
    with pytest.raises(InvalidTransition):
        store.set_status(inc.id, "investigating", actor="U1")
    assert store.declare_incident("Real", channel_id="C1", commander="U1", now=T0).id == 2
    assert [e.kind for e in store.timeline(inc.id)] == ["declared", "status", "cancelled"]


def test_severity_and_roles_change_on_the_timeline(store):
    inc = store.declare_incident("Down", channel_id="C1", commander="U1", severity=3, now=T0)
    store.set_severity(inc.id, 1, actor="U1", now=T0)
    updated = store.assign_role(inc.id, "comms", "U2", actor="U1", now=T0)
    assert (updated.severity, updated.comms, updated.role("commander")) == (1, "U2", "U1")
    with pytest.raises(InvalidTransition):
        store.set_severity(inc.id, 1, actor="U1")
    with pytest.raises(InvalidTransition):
        store.assign_role(inc.id, "boss", "U2", actor="U1")
    texts = [e.text for e in store.timeline(inc.id)][1:]
    assert texts == ["Severity SEV3 → SEV1", "Comms: @U2"]


def test_closed_incidents_with_their_own_channel_are_archivable(store):
    own = store.declare_incident("A", channel_id=None, commander="U1", origin_channel_id="C1")
    store.assign_channel(own.id, "C9", "inc-a")
    here = store.declare_incident("B", channel_id="C1", commander="U1", origin_channel_id="C1")
    for inc in (own, here):
        store.set_status(inc.id, "resolved", actor="U1", now=T0)
    assert store.archivable(T0 + timedelta(hours=1), timedelta(hours=2)) == []
    (due,) = store.archivable(T0 + timedelta(hours=3), timedelta(hours=2))
    assert due.id == own.id
    store.mark_archived(own.id, now=T0 + timedelta(hours=3))
    assert store.archivable(T0 + timedelta(hours=4), timedelta(hours=2)) == []


def test_a_ticket_turns_done_once_and_failures_keep_their_span(store):
    inc = store.declare_incident("Down", channel_id="C1", commander="U1", now=T0)
    store.record_run(
        report(("dns.resolve", "dns", "pass"), ("routing.rules", "routing", "fail")),
        incident_id=inc.id,
        now=T0 + timedelta(minutes=1),
    )
    store.link_ticket(inc.id, provider="linear", key="HOK-1", now=T0 + timedelta(minutes=2))
    (due,) = store.tickets_to_poll(T0 + timedelta(minutes=3), timedelta(minutes=5))
    assert due.key == "HOK-1"
    poll = dict(status="Done", done=True, now=T0 + timedelta(minutes=3))
    assert store.record_ticket_poll(inc.id, "linear", "HOK-1", **poll) is True
    assert store.record_ticket_poll(inc.id, "linear", "HOK-1", **poll) is False
    assert store.tickets_to_poll(T0 + timedelta(hours=1), timedelta(minutes=5)) == []
    store.set_ticket_verified(inc.id, "linear", "HOK-1", "failing", now=T0)
    assert store.tickets(inc.id)[0].verified == "failing"
    store.record_run(
        report(("routing.rules", "routing", "pass")),
        incident_id=inc.id,
        now=T0 + timedelta(minutes=20),
    )
    (span,) = store.failure_spans(inc.id)
    assert (span.check_id, span.still_failing) == ("routing.rules", False)
    assert span.first_at == T0 + timedelta(minutes=1)
    (last,) = store.last_failures(inc.id)
    assert last.status == "fail" and last.evidence == {"probe": "/api/mlflow/health"}


def test_names_are_cached_and_refreshed_after_a_day(store):
    store.remember_people({"U1": "Ona Call"}, now=T0)
    store.remember_people({"U1": "Ona C.", "U2": "Dana"}, now=T0 + timedelta(hours=1))
    assert store.people(["U1", "U2", "U3"]) == {"U1": "Ona C.", "U2": "Dana"}
    stale = store.stale_people(["U1", "U3"], T0 + timedelta(hours=2), timedelta(days=1))
    assert stale == ["U3"]
