"""The incident log: WAL, migrations, dedupe, leases, redaction and failures that lose nothing."""

from __future__ import annotations

import ast
import contextlib
import random
import sqlite3
import string
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.incident.migrations import MIGRATIONS, apply_migrations
from bot.incident.people import people_of
from bot.incident.store import (
    IncidentExists,
    IncidentStore,
    InvalidTransition,
    StaleSession,
    StoreError,
    watch_actor,
)
from tests.doubles import REPO

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def hokusai_key() -> str:
    return "hk_" + "live_" + "".join(random.choices(string.ascii_letters + string.digits, k=32))


def report(*checks: tuple[str, str, str], started: datetime = T0) -> dict:
    """A diagnose report dict with (id, layer, status) checks."""
    rows = [
        {
            "id": cid,
            "layer": layer,
            "status": status,
            "summary": f"{cid} {status}",
            "classification": "configuration" if status == "fail" else None,
            "evidence": {"probe": "/api/mlflow/health"},
            "duration_ms": 12,
        }
        for cid, layer, status in checks
    ]
    first = next((c for c in rows if c["status"] == "fail"), None)
    return {
        "env": "development",
        "scopes": [],
        "started_at": started.isoformat(),
        "duration_ms": 800,
        "checks": rows,
        "first_failure": (
            {
                "id": first["id"],
                "layer": first["layer"],
                "classification": "configuration",
                "summary": first["summary"],
            }
            if first
            else None
        ),
        "verdict": "Routing fails first." if first else "Every hop answered.",
    }


@pytest.fixture
def db_path(database) -> str | Path:
    """The log's location, on each engine in turn (see ``database`` in tests/conftest.py)."""
    return database


@pytest.fixture
def sqlite_path(tmp_path) -> Path:
    """For what only a SQLite file has: WAL, its bytes on disk, page limits."""
    return tmp_path / "hokusai.db"


@pytest.fixture
def store(db_path) -> IncidentStore:
    return IncidentStore(db_path)


def test_database_is_in_wal_mode(sqlite_path):
    IncidentStore(sqlite_path)
    with sqlite3.connect(sqlite_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_apply_once_however_often_the_store_opens(db_path):
    store = IncidentStore(db_path)
    IncidentStore(db_path)
    db = store._connect()
    assert apply_migrations(db) == []
    applied = [r["name"] for r in db.query("SELECT name FROM _sqlite_migrations ORDER BY name")]
    assert applied == [m.name for m in MIGRATIONS._migrations]
    assert {
        "incidents",
        "findings",
        "timeline",
        "ticket_links",
        "runbook_sessions",
        "handled_requests",
        "summary_leases",
        "diagnose_runs",
    } <= set(db.table_names())


def test_second_declare_in_a_channel_names_the_open_incident(db_path):
    first = IncidentStore(db_path).declare_incident(
        "Registry 404s", severity=1, channel_id="C1", commander="U1", now=T0
    )
    with pytest.raises(IncidentExists) as caught:
        IncidentStore(db_path).declare_incident("Again", channel_id="C1", commander="U2")
    assert caught.value.incident.id == first.id
    assert "Registry 404s" in str(caught.value)
    IncidentStore(db_path).resolve(first.id, actor="U1")
    again = IncidentStore(db_path).declare_incident("New one", channel_id="C1", commander="U2")
    assert again.id != first.id


def test_two_threads_declaring_in_one_channel_open_one_incident(db_path):
    IncidentStore(db_path)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def declare(n: int) -> None:
        store = IncidentStore(db_path)
        barrier.wait()
        try:
            store.declare_incident(f"Outage {n}", channel_id="C9", commander=f"U{n}")
            outcomes.append("declared")
        except IncidentExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=declare, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["declared", "exists", "exists", "exists"]
    assert len(IncidentStore(db_path).list_incidents()) == 1


def test_status_moves_are_checked_and_timelined(store):
    inc = store.declare_incident("Registry 404s", channel_id="C1", commander="U1", now=T0)
    store.set_status(inc.id, "identified", actor="U1", now=T0 + timedelta(minutes=5))
    with pytest.raises(InvalidTransition, match="already identified"):
        store.set_status(inc.id, "identified", actor="U1")
    with pytest.raises(InvalidTransition, match="unknown status"):
        store.set_status(inc.id, "fixed", actor="U1")
    resolved = store.resolve(inc.id, actor="U2", now=T0 + timedelta(hours=1))
    assert resolved.resolved_at == T0 + timedelta(hours=1)
    with pytest.raises(InvalidTransition, match="already resolved"):
        store.set_status(inc.id, "monitoring", actor="U1")
    texts = [e.text for e in store.timeline(inc.id)]
    assert texts == [
        "Declared SEV3: Registry 404s",
        "Status investigating → identified",
        "Status identified → resolved",
    ]


def test_a_redelivered_diagnose_records_its_findings_once(store):
    inc = store.declare_incident("Registry 404s", channel_id="C1", commander="U1")
    rep = report(("dns.resolve", "dns", "pass"), ("routing.listener-rules", "routing", "fail"))
    first = store.record_run(rep, incident_id=inc.id, channel="C1", request_key="cmd:T:trig-1")
    again = store.record_run(rep, incident_id=inc.id, channel="C1", request_key="cmd:T:trig-1")
    assert first == again
    assert len(store.findings(inc.id, latest_only=False)) == 2
    assert store.run_count(inc.id) == 1


def test_latest_findings_keep_each_checks_newest_result(store):
    inc = store.declare_incident("Registry 404s", channel_id="C1", commander="U1")
    store.record_run(
        report(("routing.listener-rules", "routing", "fail"), ("dns.resolve", "dns", "pass")),
        incident_id=inc.id,
    )
    store.record_run(report(("routing.listener-rules", "routing", "pass")), incident_id=inc.id)
    latest = {f.check_id: f.status for f in store.findings(inc.id)}
    assert latest == {"routing.listener-rules": "pass", "dns.resolve": "pass"}
    assert len(store.findings(inc.id, latest_only=False)) == 3


def _dump(db_path: str | Path) -> str:
    """Every value the log holds: the SQLite file's SQL dump, or every row on the server."""
    if isinstance(db_path, Path):
        with sqlite3.connect(db_path) as conn:
            return "\n".join(conn.iterdump())
    import psycopg

    with psycopg.connect(db_path) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        ]
        return "\n".join(
            repr(row) for table in tables for row in conn.execute(f"SELECT * FROM {table}")
        )


@contextlib.contextmanager
def _another_writer_holds(db_path: str | Path, *tables: str):
    """Hold the log the way a stuck writer would: SQLite's file lock, PostgreSQL's table locks."""
    if isinstance(db_path, Path):
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    import psycopg

    with psycopg.connect(db_path) as holder:
        holder.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            holder.rollback()


def test_secrets_never_reach_the_database_file(store, db_path):
    key = hokusai_key()
    inc = store.declare_incident("Registry 404s", channel_id="C1", commander="U1")
    rep = report(("auth.api-key", "auth", "fail"))
    rep["checks"][0]["evidence"] = {"header": f"Authorization: Bearer {key}"}
    store.record_run(rep, incident_id=inc.id)
    store.add_note(inc.id, f"tried the key {key} by hand", actor="U1")
    store.link_ticket(inc.id, provider="linear", key="HOK-1", title=f"leaked {key}")
    dump = _dump(db_path)
    assert key not in dump
    assert "[redacted:hokusai-api-key]" in dump


def test_claim_request_lets_exactly_one_thread_win(db_path):
    IncidentStore(db_path)
    wins: list[bool] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        store = IncidentStore(db_path)
        barrier.wait()
        wins.append(store.claim_request("cmd:T1:trigger-42"))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]


def test_lease_is_held_until_it_expires(db_path):
    a, b = IncidentStore(db_path), IncidentStore(db_path)
    assert a.try_lease("summary:1", "proc-a", 60, now=T0)
    assert not b.try_lease("summary:1", "proc-b", 60, now=T0 + timedelta(seconds=30))
    assert a.try_lease("summary:1", "proc-a", 60, now=T0 + timedelta(seconds=30))  # renew
    assert b.try_lease("summary:1", "proc-b", 60, now=T0 + timedelta(seconds=91))
    assert not a.try_lease("summary:1", "proc-a", 60, now=T0 + timedelta(seconds=92))


def test_runbook_session_refuses_a_stale_version(store):
    inc = store.declare_incident("Registry 404s", channel_id="C1", commander="U1")
    session = store.start_runbook_session(
        "alb-routing", incident_id=inc.id, channel="C1", state={"current": "a"}, actor="U1"
    )
    store.update_runbook_session(session.id, state={"current": "b"}, expected_version=1, actor="U1")
    with pytest.raises(StaleSession):
        store.update_runbook_session(
            session.id, state={"current": "c"}, expected_version=1, actor="U2"
        )
    assert store.runbook_session(session.id).state == {"current": "b"}


def test_locked_database_is_a_clear_error_and_keeps_earlier_rows(db_path):
    store = IncidentStore(db_path, busy_timeout=0.2)
    inc = store.declare_incident("Registry 404s", channel_id="C1", commander="U1")
    store.add_note(inc.id, "first note", actor="U1")
    with _another_writer_holds(db_path, "timeline", "diagnose_runs", "findings"):
        with pytest.raises(StoreError, match="locked"):
            store.add_note(inc.id, "second note", actor="U1")
        with pytest.raises(StoreError, match="locked"):
            store.record_run(report(("dns.resolve", "dns", "fail")), incident_id=inc.id)
    notes = [e.text for e in store.timeline(inc.id) if e.kind == "note"]
    assert notes == ["first note"]
    assert store.run_count(inc.id) == 0
    store.add_note(inc.id, "after the lock", actor="U1")
    assert [e.text for e in store.timeline(inc.id) if e.kind == "note"][-1] == "after the lock"


def test_full_disk_is_a_clear_error_and_a_run_is_all_or_nothing(sqlite_path):
    db_path = sqlite_path
    IncidentStore(db_path).declare_incident("Registry 404s", channel_id="C1", commander="U1")
    with sqlite3.connect(db_path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]

    def cap(conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    store = IncidentStore(db_path, on_connect=cap)
    inc = store.open_incident_for_channel("C1")
    big = report(*[(f"logs.errors[svc-{n}]", "logs", "fail") for n in range(200)])
    for check in big["checks"]:
        check["evidence"] = {"lines": ["ERROR upstream connect failed " * 20] * 5}
    with pytest.raises(StoreError, match="full"):
        store.record_run(big, incident_id=inc.id)
    roomy = IncidentStore(db_path)
    assert roomy.run_count(inc.id) == 0
    assert roomy.findings(inc.id, latest_only=False) == []
    assert [e.kind for e in roomy.timeline(inc.id)] == ["declared"]


def test_only_the_write_choke_point_executes_sql_writes():
    """Every write in the store goes through ``_write`` (which redacts); nothing else in bot/
    or commands/ opens the database."""
    source = (REPO / "bot" / "incident" / "store.py").read_text()
    tree = ast.parse(source)
    allowed = {"_write", "_transaction", "_connect", "__init__"}
    offenders = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef) or func.name in allowed:
            continue
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr
                in {
                    "execute",
                    "executescript",
                    "insert",
                    "upsert",
                    "insert_all",
                    "update",
                    "delete_where",
                }
                and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self")
            ):
                offenders.append(f"{func.name}:{node.lineno}")
    assert offenders == []
    for path in [*(REPO / "bot").rglob("*.py"), *(REPO / "commands").rglob("*.py")]:
        if path.relative_to(REPO).as_posix() in (
            "bot/incident/store.py",
            "bot/incident/migrations.py",
        ):
            continue
        text = path.read_text()
        assert "sqlite_utils" not in text, path


def test_pruning_request_keys_keeps_the_one_incident_per_result_guard(tmp_path):
    from datetime import UTC, datetime, timedelta

    from bot.incident.store import IncidentStore

    store = IncidentStore(tmp_path / "keys.db")
    then = datetime(2026, 1, 1, tzinfo=UTC)
    assert store.claim_request("cmd:T:trigger", now=then)
    assert store.claim_request("declare:run:7", now=then)
    store.prune_requests(then + timedelta(days=2))
    assert store.claim_request("cmd:T:trigger")  # old command keys are forgotten
    assert not store.claim_request("declare:run:7")  # a second incident stays impossible


def test_a_watch_run_is_evidence_but_not_the_diagnose_to_follow(store):
    """The run a watch records at a recovery updates each check's state; 'the latest
    diagnose' (what a new watch follows, the Home tab lists) is still the person's."""
    incident = store.declare_incident("Registry 404s", channel_id="C1", commander="U1", now=T0)
    person = store.record_run(
        report(("routing.listener-rules", "routing", "fail")),
        incident_id=incident.id,
        channel="C1",
        requested_by="U1",
        now=T0,
    )
    store.record_run(
        report(("routing.listener-rules", "routing", "pass")),
        incident_id=incident.id,
        channel="C1",
        requested_by=watch_actor(1),
        on_timeline=False,
        now=T0 + timedelta(minutes=5),
    )
    [state] = store.check_states(incident.id)
    assert state.status == "pass"
    assert store.latest_run_in_channel("C1").id == person
    assert [r.id for r in store.runs(incident.id, people_only=True)] == [person]
    assert [r.by_watch for r in store.runs(incident.id)] == [True, False]
    diagnoses = [e for e in store.timeline(incident.id) if e.kind == "diagnose"]
    assert len(diagnoses) == 1
    # Nobody named "watch #1" is looked up on Slack for the report.
    assert "watch #1" not in people_of(store, store.incident(incident.id))
