"""The incident log's schema, as ordered sqlite-utils migrations.

Each migration runs once per database (``_sqlite_migrations`` records it). Add a new function at
the end to change the schema; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from sqlite_utils import Database, Migrations

from bot.incident.engine import PgDatabase

MIGRATIONS = Migrations("hokusai.incidents")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    """Incidents, diagnose runs, findings, timeline, tickets, runbooks, dedupe keys, leases."""
    db.table("incidents").create(
        {
            "id": int,
            "title": str,
            "severity": int,
            "status": str,
            "channel_id": str,
            "origin_channel_id": str,
            "commander": str,
            "started_at": str,
            "resolved_at": str,
            "last_summary_at": str,
        },
        pk="id",
        not_null={"title", "severity", "status", "channel_id", "started_at"},
    )
    # One open incident per channel, enforced by the database so two processes cannot race.
    db.execute(
        "CREATE UNIQUE INDEX idx_incidents_open_channel ON incidents(channel_id) "
        "WHERE status != 'resolved'"
    )
    db.table("incidents").create_index(["status", "started_at"])

    db.table("diagnose_runs").create(
        {
            "id": int,
            "incident_id": int,
            "channel": str,
            "env": str,
            "scopes": str,
            "started_at": str,
            "duration_ms": int,
            "first_failure_id": str,
            "first_failure_layer": str,
            "classification": str,
            "verdict": str,
            "requested_by": str,
            "request_key": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("diagnose_runs").create_index(["incident_id", "id"])
    db.table("diagnose_runs").create_index(["started_at"])
    db.execute(
        "CREATE UNIQUE INDEX idx_diagnose_runs_request_key ON diagnose_runs(request_key) "
        "WHERE request_key IS NOT NULL"
    )

    db.table("findings").create(
        {
            "id": int,
            "run_id": int,
            "incident_id": int,
            "at": str,
            "check_id": str,
            "layer": str,
            "status": str,
            "classification": str,
            "summary": str,
            "evidence": str,
            "hint": str,
            "duration_ms": int,
        },
        pk="id",
        foreign_keys=[("run_id", "diagnose_runs", "id"), ("incident_id", "incidents", "id")],
    )
    # The summary's "latest finding per check" query walks this index only.
    db.table("findings").create_index(["incident_id", "check_id", "run_id"])
    db.table("findings").create_index(["run_id"])

    db.table("timeline").create(
        {
            "id": int,
            "incident_id": int,
            "at": str,
            "actor": str,
            "kind": str,
            "text": str,
            "ref": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("timeline").create_index(["incident_id", "at"])

    db.table("ticket_links").create(
        {
            "incident_id": int,
            "provider": str,
            "key": str,
            "title": str,
            "url": str,
            "status": str,
            "done": int,
            "linked_at": str,
            "linked_by": str,
            "check_ids": str,
        },
        pk=("incident_id", "provider", "key"),
        foreign_keys=[("incident_id", "incidents", "id")],
    )

    db.table("runbook_sessions").create(
        {
            "id": int,
            "incident_id": int,
            "runbook_id": str,
            "channel": str,
            "message_ts": str,
            "state": str,
            "version": int,
            "started_at": str,
            "updated_at": str,
            "updated_by": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db.table("runbook_sessions").create_index(["incident_id"])
    db.table("runbook_sessions").create_index(["channel", "message_ts"])

    db.table("handled_requests").create({"key": str, "at": str}, pk="key")
    db.table("summary_leases").create(
        {"name": str, "incident_id": int, "holder": str, "expires_at": str}, pk="name"
    )


@MIGRATIONS()
def m002_summary_indexes(db: Database) -> None:
    """When each run was recorded, and indexes so summaries stay fast on 10,000 findings."""
    db.execute("ALTER TABLE diagnose_runs ADD COLUMN recorded_at TEXT")
    db.execute(
        "UPDATE diagnose_runs SET recorded_at = coalesce("
        "(SELECT MIN(at) FROM findings WHERE findings.run_id = diagnose_runs.id), started_at)"
    )
    db.table("diagnose_runs").create_index(["incident_id", "recorded_at"])
    db.table("findings").create_index(["incident_id", "status"])


@MIGRATIONS()
def m003_watches(db: Database) -> None:
    """Watches: what each follows, its state after the latest tick, and its one message."""
    db.table("watches").create(
        {
            "id": int,
            "channel_id": str,
            "incident_id": int,
            "env": str,
            "scopes": str,
            "check_ids": str,
            "every_s": float,
            "burst": int,
            "recover_after": int,
            "started_by": str,
            "started_at": str,
            "ends_at": str,
            "status": str,
            "message_ts": str,
            "tick": int,
            "state": str,
            "updated_at": str,
            "ended_at": str,
        },
        pk="id",
        not_null={"channel_id", "env", "status", "started_at", "ends_at"},
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    # One running watch per channel, enforced by the database so two processes cannot race.
    db.execute(
        "CREATE UNIQUE INDEX idx_watches_active_channel ON watches(channel_id) "
        "WHERE status = 'active'"
    )
    db.table("watches").create_index(["status"])
    # A watch's default scope is the channel's latest diagnose.
    db.table("diagnose_runs").create_index(["channel", "id"])


@MIGRATIONS()
def m004_in_flight(db: Database) -> None:
    """Work a process has started and not finished (a diagnose, a runbook step's checks): who
    holds it until when, and which message shows it, so a restart can say it was interrupted."""
    db.table("in_flight").create(
        {
            "id": int,
            "kind": str,
            "channel": str,
            "message_ts": str,
            "payload": str,
            "requested_by": str,
            "holder": str,
            "started_at": str,
            "expires_at": str,
        },
        pk="id",
        not_null={"kind", "holder", "started_at", "expires_at"},
    )
    db.table("in_flight").create_index(["expires_at"])


@MIGRATIONS()
def m005_incident_lifecycle(db: Database) -> None:
    """Private incidents, comms and scribe roles, channel names, topics and archiving;
    ``cancelled`` closes an incident like ``resolved``; polled and verified ticket states;
    the diagnosis' cause on each run; the names of the people the log mentions."""
    for column in (
        "private INTEGER NOT NULL DEFAULT 0",
        "comms TEXT",
        "scribe TEXT",
        "channel_name TEXT",
        "origin_channel_name TEXT",
        "topic TEXT",
        "archived_at TEXT",
    ):
        db.execute(f"ALTER TABLE incidents ADD COLUMN {column}")
    # One open incident per channel still; a cancelled one no longer holds its channel.
    db.execute("DROP INDEX idx_incidents_open_channel")
    db.execute(
        "CREATE UNIQUE INDEX idx_incidents_open_channel ON incidents(channel_id) "
        "WHERE status NOT IN ('resolved', 'cancelled')"
    )
    # "Was this title declared from this channel in the last 10 minutes?"
    db.table("incidents").create_index(["origin_channel_id", "started_at"])
    for column in ("polled_at TEXT", "verified TEXT", "verified_at TEXT"):
        db.execute(f"ALTER TABLE ticket_links ADD COLUMN {column}")
    db.execute("ALTER TABLE diagnose_runs ADD COLUMN cause TEXT")
    db.table("people").create({"user_id": str, "name": str, "fetched_at": str}, pk="user_id")


def apply_migrations(db: Database | PgDatabase) -> list[str]:
    """Apply pending migrations under one write lock; returns the names applied.

    ``BEGIN IMMEDIATE`` makes a second process starting at the same moment wait for the first
    instead of racing it to ``CREATE TABLE``; each migration nests as a savepoint.
    """
    if isinstance(db, PgDatabase):
        return _apply_on_postgres(db)
    pending = [m.name for m in MIGRATIONS.pending(db)]
    if not pending:
        return []
    db.execute("BEGIN IMMEDIATE")
    try:
        applied = [m.name for m in MIGRATIONS.pending(db)]
        MIGRATIONS.apply(db)
        db.execute("COMMIT")
    except (sqlite3.Error, ValueError):
        db.rollback()
        raise
    return applied


def _apply_on_postgres(db: PgDatabase) -> list[str]:
    """The same migrations, recorded in the same table, under the store's advisory lock.

    PostgreSQL's DDL is transactional: the migrations and their records commit together.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS.migrations_table} ("
            "migration_set TEXT NOT NULL, name TEXT NOT NULL, applied_at TEXT,"
            " PRIMARY KEY (migration_set, name))"
        )
        done = {
            row["name"]
            for row in db.query(
                f"SELECT name FROM {MIGRATIONS.migrations_table} WHERE migration_set = ?",
                [MIGRATIONS.name],
            )
        }
        applied = []
        for migration in MIGRATIONS._migrations:
            if migration.name in done:
                continue
            migration.fn(db)
            db.execute(
                f"INSERT INTO {MIGRATIONS.migrations_table} (migration_set, name, applied_at)"
                " VALUES (?, ?, ?)",
                [MIGRATIONS.name, migration.name, datetime.now(UTC).isoformat()],
            )
            applied.append(migration.name)
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
    return applied
