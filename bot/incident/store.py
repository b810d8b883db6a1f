"""The incident log: incidents, diagnose runs, findings, timeline, tickets, runbook sessions.

SQLite through sqlite-utils, in WAL mode, one ``Database`` per unit of work (a Database refuses
use from another thread than the one that opened it). Every row written goes through
``IncidentStore._write``, which redacts it first; no other module writes the log.

Example::

    store = IncidentStore("hokusai.db")
    incident = store.declare_incident("Registry 404s", severity=1, channel_id="C1",
                                      commander="U1")
    run_id = store.record_run(report.to_json(), incident_id=incident.id, channel="C1",
                              requested_by="U1")
    with store.session():          # several calls on one connection
        findings = store.findings(incident.id)
        tickets = store.tickets(incident.id)
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from bot import metrics
from bot.diagnosis.checks.base import HOP_LAYERS, PROBLEM_STATUSES
from bot.errors import HokusaiError
from bot.incident.engine import PgDatabase, display, is_postgres
from bot.incident.migrations import apply_migrations

STATUSES: tuple[str, ...] = (
    "investigating",
    "identified",
    "mitigated",
    "monitoring",
    "resolved",
    "cancelled",
)
# Resolved and cancelled close an incident: its channel is free for a new one, it may be archived.
CLOSED_STATUSES: tuple[str, ...] = ("resolved", "cancelled")
OPEN_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s not in CLOSED_STATUSES)
ROLES: tuple[str, ...] = ("commander", "comms", "scribe")
FAILING_STATUSES: tuple[str, ...] = tuple(s.value for s in PROBLEM_STATUSES)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4)
# What each severity means, shown where people choose one (the declare form, usage, reports).
SEVERITY_MEANINGS: dict[int, str] = {
    1: "Critical: the platform is down or data is at risk, for everyone",
    2: "Major: a core function fails for many users",
    3: "Minor: degraded or failing for some users, with a workaround",
    4: "Low: little or no user impact",
}
# A declare whose title matches an open incident declared this recently from the same channel
# links to it instead of opening a second one.
DUPLICATE_DECLARE_WINDOW = timedelta(minutes=10)
_CLOSED_SQL = "('resolved', 'cancelled')"
_JSON_COLUMNS = {"evidence", "check_ids", "state", "scopes", "payload", "cause"}
_T = TypeVar("_T")
# Files this process has already brought up to date (``Services.store()`` builds many stores).
_MIGRATED: set[str] = set()


class StoreError(HokusaiError):
    """The incident log could not be read or written; the message is one line for a person.

    ``reason`` is the short cause (``database is locked``) for lines that name what failed
    themselves: "posted but not saved to the incident log: database is locked".
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class UnknownIncident(StoreError):
    """No incident has this id."""


class IncidentExists(StoreError):
    """The channel already has an open incident (``.incident``)."""

    def __init__(self, incident: Incident) -> None:
        super().__init__(
            f"#{incident.id} “{incident.title}” is already open in this channel "
            f"(status {incident.status})"
        )
        self.incident = incident


class DuplicateDeclare(StoreError):
    """The same title was declared from the same channel minutes ago (``.incident``)."""

    def __init__(self, incident: Incident) -> None:
        super().__init__(f"#{incident.id} “{incident.title}” was declared moments ago")
        self.incident = incident


class InvalidTransition(StoreError):
    """The status change is not allowed (unknown status, same status, or already resolved)."""


class StaleSession(StoreError):
    """A runbook session changed since it was read (optimistic lock lost)."""


class WatchExists(StoreError):
    """The channel already has a running watch (``.watch``)."""

    def __init__(self, watch: WatchRow) -> None:
        super().__init__(f"watch #{watch.id} is already running in this channel")
        self.watch = watch


def to_ts(when: datetime) -> str:
    """A fixed-width, sortable UTC timestamp: ``2026-01-31T12:00:00.000000Z``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_ts(value: str | None) -> datetime | None:
    """Parse a timestamp written by :func:`to_ts` (or any ISO 8601 string)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _started_at(value: Any, now: datetime | None) -> str:
    if isinstance(value, datetime):
        return to_ts(value)
    parsed = from_ts(str(value)) if value else None
    return to_ts(parsed or _now(now))


def _loads(value: str | None, default: Any) -> Any:
    if value is None or value == "":
        return default
    try:
        return json.loads(value)
    except ValueError:
        # Redaction of an odd secret inside JSON text can leave it unparsable; keep the text.
        return {"raw": value} if isinstance(default, dict) else default


def _default_scrub(value: Any) -> Any:
    """Redact through ``bot.outbound.scrub`` when the framework has it, else the redactor."""
    try:
        from bot.outbound import scrub  # type: ignore[attr-defined]
    except ImportError:
        from bot.redaction import default_redactor

        return default_redactor().redact(value)
    return scrub(value)


def _from_row(cls: type[_T], row: dict[str, Any]) -> _T:
    """A row as its dataclass, converting by the field's declared type: timestamps to
    datetimes, JSON columns to lists and dicts, integers to bools, NULL text to ""."""
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in row:
            continue
        value, kind = row[f.name], str(f.type)
        if kind.startswith("datetime"):
            value = from_ts(value)
        elif kind.startswith("list"):
            value = _loads(value, [])
        elif kind.startswith("dict"):
            value = _loads(value, {})
        elif kind == "bool":
            value = bool(value)
        elif kind == "str" and value is None:
            value = ""
        values[f.name] = value
    return cls(**values)


class _FromRow:
    """``Cls.from_row(row)`` for the store's row dataclasses."""

    @classmethod
    def from_row(cls: type[_T], row: dict[str, Any]) -> _T:
        return _from_row(cls, row)

    @classmethod
    def first(cls: type[_T], rows: Sequence[dict[str, Any]]) -> _T | None:
        """The first of ``rows`` as this class; None when there are none."""
        return _from_row(cls, rows[0]) if rows else None


@dataclass(frozen=True)
class Incident(_FromRow):
    """One incident row."""

    id: int
    title: str
    severity: int
    status: str
    channel_id: str
    origin_channel_id: str | None
    commander: str | None
    started_at: datetime
    resolved_at: datetime | None = None
    last_summary_at: datetime | None = None
    private: bool = False
    comms: str | None = None
    scribe: str | None = None
    channel_name: str | None = None
    origin_channel_name: str | None = None
    topic: str | None = None
    archived_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def has_own_channel(self) -> bool:
        """Declared into a channel of its own (not ``channel=here``), which may be archived."""
        return self.channel_id != self.origin_channel_id and not self.channel_id.startswith(
            "pending:"
        )

    def role(self, name: str) -> str | None:
        """Who holds ``commander``, ``comms`` or ``scribe``."""
        return {"commander": self.commander, "comms": self.comms, "scribe": self.scribe}[name]

    def duration(self, now: datetime) -> timedelta:
        return (self.resolved_at or now) - self.started_at


_WATCH_ACTOR = "watch #"


def watch_actor(watch_id: int) -> str:
    """``requested_by`` of the runs a watch records when it sees a change."""
    return f"{_WATCH_ACTOR}{watch_id}"


_BY_PEOPLE = f"(requested_by IS NULL OR requested_by NOT LIKE '{_WATCH_ACTOR}%')"


@dataclass(frozen=True)
class DiagnoseRun(_FromRow):
    """One recorded ``/hokusai diagnose`` run (or the run a watch recorded at a change)."""

    id: int
    incident_id: int | None
    channel: str | None
    env: str | None
    scopes: list[str]
    started_at: datetime
    duration_ms: int | None
    first_failure_id: str | None
    first_failure_layer: str | None
    classification: str | None
    verdict: str | None
    requested_by: str | None
    cause: dict[str, Any] = field(default_factory=dict)

    @property
    def by_watch(self) -> bool:
        """Recorded by a watch at a change: evidence of it, not a diagnose a person ran."""
        return (self.requested_by or "").startswith(_WATCH_ACTOR)


@dataclass(frozen=True)
class Finding(_FromRow):
    """One check outcome recorded in a run."""

    id: int
    run_id: int
    incident_id: int | None
    at: datetime
    check_id: str
    layer: str
    status: str
    classification: str | None
    summary: str
    evidence: dict[str, Any]
    hint: str | None
    duration_ms: int | None

    @property
    def failing(self) -> bool:
        return self.status in FAILING_STATUSES


@dataclass(frozen=True)
class TimelineEntry(_FromRow):
    """Who did or saw what, when."""

    id: int
    incident_id: int
    at: datetime
    actor: str | None
    kind: str
    text: str
    ref: str | None


@dataclass(frozen=True)
class TicketLink(_FromRow):
    """A tracker ticket tied to an incident and to the checks failing when it was linked."""

    incident_id: int
    provider: str
    key: str
    title: str | None
    url: str | None
    status: str | None
    done: bool
    linked_at: datetime
    linked_by: str | None
    check_ids: list[str] = field(default_factory=list)
    polled_at: datetime | None = None
    verified: str | None = None
    """``confirmed`` (Done and its checks pass), ``failing`` (Done, checks still fail) or
    ``unchecked`` (Done, but its checks could not run); None until a Done ticket is checked."""
    verified_at: datetime | None = None


@dataclass(frozen=True)
class InFlight(_FromRow):
    """Work a process started and has not finished; ``holder`` renews ``expires_at``."""

    id: int
    kind: str
    channel: str | None
    message_ts: str | None
    payload: dict[str, Any]
    requested_by: str | None
    holder: str
    started_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class RunbookSession(_FromRow):
    """A runbook being walked in a channel; ``version`` guards concurrent button presses."""

    id: int
    incident_id: int | None
    runbook_id: str
    channel: str | None
    message_ts: str | None
    state: dict[str, Any]
    version: int
    started_at: datetime
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True)
class WatchRow(_FromRow):
    """A ``/hokusai watch``: what it follows, how often, and its state after the latest tick."""

    id: int
    channel_id: str
    incident_id: int | None
    env: str
    scopes: list[str]
    check_ids: list[str]
    every_s: float
    burst: int
    recover_after: int
    started_by: str | None
    started_at: datetime
    ends_at: datetime
    status: str  # active, stopped (by a person) or ended (its time ran out)
    message_ts: str | None
    tick: int
    state: dict[str, Any]
    updated_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class CheckState:
    """The latest finding of one check, as aggregated by SQL for summaries."""

    check_id: str
    layer: str
    status: str
    classification: str | None
    summary: str
    hint: str | None
    run_id: int
    at: datetime

    @property
    def failing(self) -> bool:
        return self.status in FAILING_STATUSES


@dataclass(frozen=True)
class FailureSpan:
    """One check that failed during an incident, for the report's Impact."""

    check_id: str
    layer: str
    first_at: datetime
    last_at: datetime
    summary: str
    still_failing: bool


class _RedactedRow(dict[str, Any]):
    """A row whose values went through the store's scrub (made by ``_redacted`` only)."""


def _store_error(exc: sqlite3.Error) -> StoreError:
    """A sentence for a person, never the exception's class name; ``reason`` the short cause."""
    text = str(exc).lower()
    if "password authentication failed" in text:
        reason = "the database server refused the password"
        message = f"the incident log's database server refused the login ({exc})"
    elif "connection" in text and ("failed" in text or "refused" in text or "timeout" in text):
        reason = "cannot reach the database server"
        message = f"the incident log's database server cannot be reached ({exc})"
    elif "locked" in text or "busy" in text:
        reason = "database is locked"
        message = "the incident log is busy (database is locked); try again in a moment"
    elif "full" in text:
        reason = "database or disk is full"
        message = "the incident log is full (disk or size limit reached); nothing new was saved"
    elif "readonly" in text or "read-only" in text:
        reason = "database is read-only"
        message = (
            "the incident log is read-only (check HOKUSAI_DB's permissions); nothing new was saved"
        )
    elif "disk i/o" in text:
        reason = "disk I/O error"
        message = f"the incident log cannot be written ({exc}); nothing new was saved"
    elif "unable to open" in text:
        reason = "cannot open the database file"
        message = "the incident log cannot be opened (check HOKUSAI_DB and its directory)"
    elif "malformed" in text or "not a database" in text:
        reason = "the database file is damaged"
        message = "the incident log is damaged (restore HOKUSAI_DB from a backup)"
    else:
        reason = str(exc)
        message = f"the incident log failed: {exc}"
    known = reason != str(exc)  # a label is a closed set: unknown errors count by their type
    metrics.ERRORS.labels(
        "store", metrics.error_kind(reason if known else type(exc).__name__)
    ).inc()
    return StoreError(message, reason=reason)


class IncidentStore:
    """The incident log on one SQLite file. Cheap to build; safe to share across threads.

    Args:
        path: the database file (``HOKUSAI_DB``).
        busy_timeout: seconds a write waits for another writer before ``StoreError``. Writes
            are short (rows are redacted before the write lock is taken), so a wait this long
            means something is wrong, not that the bot is busy.
        scrub: the redaction applied to every written value (default: outbound's scrub).
        on_connect: called with each new ``sqlite3.Connection`` (tests set PRAGMAs here).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 15.0,
        scrub: Callable[[Any], Any] | None = None,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        # A postgresql:// URL puts the log on a server (several hosts); anything else is a file.
        self.url = str(path) if is_postgres(path) else None
        self.path = Path(path) if self.url is None else None
        self.location = display(path)
        self.busy_timeout = busy_timeout
        self._scrub = scrub or _default_scrub
        self._on_connect = on_connect
        self._local = threading.local()
        key = self.url or str(self.path.resolve())
        if key in _MIGRATED and (self.url or self.path.exists()):
            return
        with self._db() as db:
            if (
                self.path is not None
                and next(db.query("PRAGMA journal_mode"))["journal_mode"] != "wal"
            ):
                db.enable_wal()
            apply_migrations(db)
        _MIGRATED.add(key)

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> Database | PgDatabase:
        if self.url is not None:
            return PgDatabase.connect(self.url, self.busy_timeout)
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        if self._on_connect:
            self._on_connect(conn)
        return Database(conn, execute_plugins=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[IncidentStore]:
        """Run several calls on one connection (one unit of work, this thread only)."""
        if getattr(self._local, "db", None) is not None:
            yield self
            return
        try:
            db = self._connect()
        except sqlite3.Error as exc:
            raise _store_error(exc) from None
        self._local.db = db
        try:
            yield self
        finally:
            self._local.db = None
            db.close()

    @contextlib.contextmanager
    def _db(self) -> Iterator[Database]:
        current = getattr(self._local, "db", None)
        try:
            if current is not None:
                yield current
                return
            db = self._connect()
            try:
                yield db
            finally:
                db.close()
        except sqlite3.IntegrityError:
            # Constraint violations are decisions (duplicate key, open incident): callers map them.
            raise
        except sqlite3.Error as exc:
            raise _store_error(exc) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Database]:
        """A write transaction taken up front, so check-then-write cannot race another process."""
        with self._db() as db:
            if db.conn.in_transaction:
                with db.atomic():
                    yield db
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise

    def _write(
        self, db: Database, sql: str, params: Sequence[Any] = (), *, redacted: bool = False
    ) -> sqlite3.Cursor:
        """The one place the store writes: every parameter is redacted first (``redacted``:
        by :meth:`_redacted` already, only ever for the values of a ``_RedactedRow``)."""
        clean = (
            params if redacted else [self._scrub(v) if isinstance(v, str) else v for v in params]
        )
        return db.execute(sql, clean)

    def _redacted(self, row: dict[str, Any]) -> _RedactedRow:
        """A row with every text redacted and JSON columns encoded, ready for ``_insert``."""
        return _RedactedRow(
            {
                k: json.dumps(self._scrub(v), default=str)
                if k in _JSON_COLUMNS
                else (self._scrub(v) if isinstance(v, str) else v)
                for k, v in row.items()
            }
        )

    def _insert(self, db: Database, table: str, row: dict[str, Any]) -> int:
        clean = row if isinstance(row, _RedactedRow) else self._redacted(row)
        columns = ", ".join(clean)
        marks = ", ".join("?" for _ in clean)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        cursor = self._write(db, sql, list(clean.values()), redacted=True)
        return int(cursor.lastrowid or 0)

    def _timeline(
        self,
        db: Database,
        incident_id: int,
        kind: str,
        text: str,
        *,
        at: str,
        actor: str | None,
        ref: str | None = None,
    ) -> int:
        """Append one timeline entry, inside the caller's transaction when there is one."""
        row = {"incident_id": incident_id, "at": at, "actor": actor, "kind": kind}
        return self._insert(db, "timeline", {**row, "text": text, "ref": ref})

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._db() as db:
            return list(db.query(sql, list(params)))

    # -- incidents ---------------------------------------------------------------------------

    def declare_incident(
        self,
        title: str,
        *,
        channel_id: str | None,
        commander: str | None,
        severity: int = 3,
        origin_channel_id: str | None = None,
        private: bool = False,
        declared_by: str | None = None,
        origin_channel_name: str | None = None,
        now: datetime | None = None,
    ) -> Incident:
        """Open an incident in ``channel_id``, or (None) reserve it for a channel of its own.

        A reserved incident gets its channel with ``assign_channel`` once Slack created it, or
        is dropped with ``discard_incident`` if Slack would not. Reserving first means a double
        declare finds the first one before a second channel is made.

        Raises:
            DuplicateDeclare: the same title was declared from ``origin_channel_id`` in the
                last 10 minutes and is still open.
            IncidentExists: ``channel_id`` already has an open incident.
            StoreError: bad severity, or the log cannot be written.
        """
        if severity not in SEVERITIES:
            raise StoreError(f"severity must be 1..4, not {severity}")
        title = " ".join(title.split())
        if not title:
            raise StoreError("an incident needs a title")
        origin = origin_channel_id or channel_id
        when = _now(now)
        at = to_ts(when)
        target = channel_id or f"pending:{uuid.uuid4().hex}"
        try:
            with self._transaction() as db:
                duplicate = self._recent_declare(db, origin, title, when)
                if duplicate:
                    raise DuplicateDeclare(duplicate)
                existing = self._open_in(db, target)
                if existing:
                    raise IncidentExists(existing)
                incident_id = self._insert(
                    db,
                    "incidents",
                    {
                        "title": title,
                        "severity": severity,
                        "status": "investigating",
                        "channel_id": target,
                        "origin_channel_id": origin,
                        "commander": commander,
                        "started_at": at,
                        "private": int(private),
                        "origin_channel_name": origin_channel_name or None,
                        "channel_name": (origin_channel_name or None) if channel_id else None,
                    },
                )
                self._timeline(
                    db,
                    incident_id,
                    "declared",
                    f"Declared SEV{severity}: {title}" + (" (private)" if private else ""),
                    at=at,
                    actor=declared_by or commander,
                )
        except sqlite3.IntegrityError:
            # Another process won the race for this channel between our check and insert.
            existing = self.open_incident_for_channel(target)
            if existing:
                raise IncidentExists(existing) from None
            raise
        return self.incident(incident_id)

    def _recent_declare(
        self, db: Database, origin: str | None, title: str, now: datetime
    ) -> Incident | None:
        if not origin:
            return None
        rows = db.query(
            f"SELECT * FROM incidents WHERE origin_channel_id = ? AND started_at >= ?"
            f" AND status NOT IN {_CLOSED_SQL} ORDER BY id DESC",
            [origin, to_ts(now - DUPLICATE_DECLARE_WINDOW)],
        )
        key = title_key(title)
        for row in rows:
            if title_key(row["title"]) == key:
                return Incident.from_row(row)
        return None

    def assign_channel(self, incident_id: int, channel_id: str, channel_name: str) -> Incident:
        """Give a reserved incident the channel Slack created for it."""
        with self._transaction() as db:
            self._write(
                db,
                "UPDATE incidents SET channel_id = ?, channel_name = ? WHERE id = ?",
                [channel_id, channel_name, incident_id],
            )
        return self.incident(incident_id)

    def discard_incident(self, incident_id: int) -> None:
        """Forget a reserved incident whose channel could not be created (nothing else refers
        to it yet)."""
        with self._transaction() as db:
            self._write(db, "DELETE FROM timeline WHERE incident_id = ?", [incident_id])
            self._write(
                db,
                "DELETE FROM incidents WHERE id = ? AND channel_id LIKE 'pending:%'",
                [incident_id],
            )

    def _open_in(self, db: Database, channel_id: str) -> Incident | None:
        rows = list(
            db.query(
                f"SELECT * FROM incidents WHERE channel_id = ? AND status NOT IN {_CLOSED_SQL} "
                "ORDER BY id DESC LIMIT 1",
                [channel_id],
            )
        )
        return Incident.first(rows)

    def incident(self, incident_id: int) -> Incident:
        """The incident with this id; ``UnknownIncident`` if there is none."""
        rows = self._rows("SELECT * FROM incidents WHERE id = ?", [incident_id])
        if not rows:
            raise UnknownIncident(f"no incident #{incident_id}")
        return Incident.from_row(rows[0])

    def open_incident_for_channel(self, channel_id: str) -> Incident | None:
        """The open incident whose channel is ``channel_id``, if any."""
        with self._db() as db:
            return self._open_in(db, channel_id)

    def incident_for_channel(self, channel_id: str) -> Incident | None:
        """The open incident of the channel, else the latest closed one there."""
        rows = self._rows(
            "SELECT * FROM incidents WHERE channel_id = ? "
            f"ORDER BY status IN {_CLOSED_SQL}, id DESC LIMIT 1",
            [channel_id],
        )
        return Incident.first(rows)

    def list_incidents(self, *, open_only: bool = False, limit: int = 50) -> list[Incident]:
        """Incidents, newest first (reserved ones still waiting for a channel left out)."""
        where = "WHERE channel_id NOT LIKE 'pending:%'"
        if open_only:
            where += f" AND status NOT IN {_CLOSED_SQL}"
        rows = self._rows(f"SELECT * FROM incidents {where} ORDER BY id DESC LIMIT ?", [limit])
        return [Incident.from_row(r) for r in rows]

    def open_incidents(self) -> list[Incident]:
        return self.list_incidents(open_only=True, limit=1000)

    def set_status(
        self,
        incident_id: int,
        status: str,
        *,
        actor: str | None,
        now: datetime | None = None,
        reason: str | None = None,
    ) -> Incident:
        """Move an incident to ``status`` and note it on the timeline (with ``reason``).

        Any open status may move to any other; resolved and cancelled incidents stay closed.

        Raises:
            InvalidTransition: unknown status, unchanged status, or the incident is closed.
        """
        status = status.lower()
        if status not in STATUSES:
            raise InvalidTransition(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        at = to_ts(_now(now))
        with self._transaction() as db:
            rows = list(db.query("SELECT * FROM incidents WHERE id = ?", [incident_id]))
            if not rows:
                raise UnknownIncident(f"no incident #{incident_id}")
            current = rows[0]["status"]
            if current in CLOSED_STATUSES:
                raise InvalidTransition(f"incident #{incident_id} is already {current}")
            if current == status:
                raise InvalidTransition(f"incident #{incident_id} is already {status}")
            closes = status in CLOSED_STATUSES
            self._write(
                db,
                "UPDATE incidents SET status = ?, resolved_at = ? WHERE id = ?",
                [status, at if closes else None, incident_id],
            )
            self._timeline(
                db,
                incident_id,
                status if closes else "status",
                f"Status {current} → {status}" + (f": {reason}" if reason else ""),
                at=at,
                actor=actor,
                ref=current,
            )
        return self.incident(incident_id)

    def resolve(
        self, incident_id: int, *, actor: str | None, now: datetime | None = None
    ) -> Incident:
        """Mark the incident resolved (``set_status(..., "resolved")``)."""
        return self.set_status(incident_id, "resolved", actor=actor, now=now)

    def set_severity(
        self, incident_id: int, severity: int, *, actor: str | None, now: datetime | None = None
    ) -> Incident:
        """Change the severity and note it on the timeline.

        Raises:
            InvalidTransition: bad or unchanged severity, or the incident is closed.
        """
        if severity not in SEVERITIES:
            raise InvalidTransition(f"severity is 1 (worst) to 4, not {severity}")
        with self._transaction() as db:
            current = self._open_row(db, incident_id)
            if current["severity"] == severity:
                raise InvalidTransition(f"incident #{incident_id} is already SEV{severity}")
            self._write(
                db, "UPDATE incidents SET severity = ? WHERE id = ?", [severity, incident_id]
            )
            self._insert(
                db,
                "timeline",
                {
                    "incident_id": incident_id,
                    "at": to_ts(_now(now)),
                    "actor": actor,
                    "kind": "severity",
                    "text": f"Severity SEV{current['severity']} → SEV{severity}",
                    "ref": str(current["severity"]),
                },
            )
        return self.incident(incident_id)

    def assign_role(
        self,
        incident_id: int,
        role: str,
        user_id: str,
        *,
        actor: str | None,
        now: datetime | None = None,
    ) -> Incident:
        """Hand ``commander``, ``comms`` or ``scribe`` to ``user_id``; on the timeline.

        Raises:
            InvalidTransition: unknown role, the person already holds it, or the incident is
                closed.
        """
        if role not in ROLES:
            raise InvalidTransition(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        with self._transaction() as db:
            current = self._open_row(db, incident_id)
            if current[role] == user_id:
                raise InvalidTransition(f"that person is already {role} of #{incident_id}")
            # ``role`` is one of ROLES (checked above), so it is safe as a column name.
            self._write(db, f"UPDATE incidents SET {role} = ? WHERE id = ?", [user_id, incident_id])
            before = f" (was @{current[role]})" if current[role] else ""
            self._insert(
                db,
                "timeline",
                {
                    "incident_id": incident_id,
                    "at": to_ts(_now(now)),
                    "actor": actor,
                    "kind": "role",
                    "text": f"{role.capitalize()}: @{user_id}{before}",
                    "ref": role,
                },
            )
        return self.incident(incident_id)

    def _open_row(self, db: Database, incident_id: int) -> dict[str, Any]:
        rows = list(db.query("SELECT * FROM incidents WHERE id = ?", [incident_id]))
        if not rows:
            raise UnknownIncident(f"no incident #{incident_id}")
        if rows[0]["status"] in CLOSED_STATUSES:
            raise InvalidTransition(f"incident #{incident_id} is already {rows[0]['status']}")
        return rows[0]

    def set_topic(self, incident_id: int, topic: str) -> None:
        """Remember the channel topic last set, so an unchanged one is not set again."""
        with self._db() as db:
            self._write(db, "UPDATE incidents SET topic = ? WHERE id = ?", [topic, incident_id])

    def archivable(self, now: datetime, after: timedelta) -> list[Incident]:
        """Closed incidents with a channel of their own, closed ``after`` ago, not archived."""
        rows = self._rows(
            f"SELECT * FROM incidents WHERE status IN {_CLOSED_SQL} AND archived_at IS NULL"
            " AND channel_id != origin_channel_id AND channel_id NOT LIKE 'pending:%'"
            " AND resolved_at <= ? ORDER BY id",
            [to_ts(now - after)],
        )
        return [Incident.from_row(r) for r in rows]

    def mark_archived(
        self, incident_id: int, *, now: datetime | None = None, note: str | None = None
    ) -> None:
        """Record that the incident's channel was archived (or, with ``note``, why it was not
        and will not be retried)."""
        at = to_ts(_now(now))
        with self._transaction() as db:
            self._write(db, "UPDATE incidents SET archived_at = ? WHERE id = ?", [at, incident_id])
            self._insert(
                db,
                "timeline",
                {
                    "incident_id": incident_id,
                    "at": at,
                    "actor": None,
                    "kind": "channel",
                    "text": note or "Channel archived",
                },
            )

    def channel_names(self) -> dict[str, str]:
        """Channel id -> name for the incident channels the log knows."""
        rows = self._rows(
            "SELECT origin_channel_id AS id, origin_channel_name AS name FROM incidents"
            " WHERE origin_channel_name IS NOT NULL UNION ALL"
            " SELECT channel_id, channel_name FROM incidents WHERE channel_name IS NOT NULL"
        )
        return {r["id"]: r["name"] for r in rows}

    def mark_summary_posted(self, incident_id: int, at: datetime) -> None:
        """Remember when the last summary went out; "what changed" counts from here."""
        with self._db() as db:
            self._write(
                db,
                "UPDATE incidents SET last_summary_at = ? WHERE id = ?",
                [to_ts(at), incident_id],
            )

    # -- timeline ----------------------------------------------------------------------------

    def add_timeline(
        self,
        incident_id: int,
        kind: str,
        text: str,
        *,
        actor: str | None = None,
        ref: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Append an entry (kinds: note, status, diagnose, ticket, verify, runbook, summary...)."""
        with self._db() as db:
            if not list(db.query("SELECT 1 FROM incidents WHERE id = ?", [incident_id])):
                raise UnknownIncident(f"no incident #{incident_id}")
            return self._timeline(
                db, incident_id, kind, text, at=to_ts(_now(now)), actor=actor, ref=ref
            )

    def add_note(
        self, incident_id: int, text: str, *, actor: str | None, now: datetime | None = None
    ) -> int:
        """Add a person's note to the timeline."""
        if not text.strip():
            raise StoreError("a note needs some text")
        return self.add_timeline(incident_id, "note", text.strip(), actor=actor, now=now)

    def timeline(self, incident_id: int, *, since: datetime | None = None) -> list[TimelineEntry]:
        """Timeline entries in order."""
        rows = self._rows(
            "SELECT * FROM timeline WHERE incident_id = ? AND at > ? ORDER BY at, id",
            [incident_id, to_ts(since) if since else ""],
        )
        return [TimelineEntry.from_row(r) for r in rows]

    # -- diagnose runs and findings ----------------------------------------------------------

    def record_run(
        self,
        run: Mapping[str, Any],
        *,
        incident_id: int | None = None,
        channel: str | None = None,
        requested_by: str | None = None,
        request_key: str | None = None,
        now: datetime | None = None,
        on_timeline: bool = True,
    ) -> int:
        """Store one diagnose run and its findings atomically; returns the run's id.

        Args:
            run: the run as ``hokusai diagnose --json`` prints it (``DiagnoseReport.to_json()``:
                ``env``, ``scopes``, ``started_at``, ``duration_ms``, ``checks`` with their
                ``hint``, ``first_failure``, ``verdict``).

        A ``request_key`` seen before returns the run already recorded for it, so a Slack
        retry never records the findings twice. ``on_timeline=False`` leaves the timeline to
        the caller (a watch writes its own line about the change the run showed).
        """
        recorded = to_ts(_now(now))
        first = run.get("first_failure") or {}
        checks = run["checks"]
        # Redacted before the write lock is taken: the lock is held for the inserts alone.
        run_row = self._redacted(
            {
                "incident_id": incident_id,
                "channel": channel,
                "env": run["env"],
                "scopes": list(run.get("scopes") or []),
                "started_at": _started_at(run.get("started_at"), now),
                "duration_ms": run.get("duration_ms"),
                "first_failure_id": first.get("id"),
                "first_failure_layer": first.get("layer"),
                "classification": first.get("classification"),
                "verdict": run.get("verdict"),
                "requested_by": requested_by,
                "request_key": request_key,
                "recorded_at": recorded,
                "cause": run.get("cause"),
            }
        )
        finding_rows = [
            self._redacted(
                {
                    "incident_id": incident_id,
                    "at": recorded,
                    "check_id": check["id"],
                    "layer": check["layer"],
                    "status": str(check["status"]),
                    "classification": check.get("classification"),
                    "summary": check.get("summary"),
                    "evidence": check.get("evidence") or {},
                    "hint": check.get("hint"),
                    "duration_ms": check.get("duration_ms"),
                }
            )
            for check in checks
        ]
        where = (
            f"first failing hop {first.get('layer')} ({first.get('id')}, "
            f"{first.get('classification') or 'unclassified'})"
            if first
            else "no failing hop"
        )
        line = f"Diagnose: {len(checks)} checks, {where}. {run.get('verdict') or ''}".strip()
        if request_key and (known := self._run_for_key(request_key)) is not None:
            return known
        try:
            with self._transaction() as db:
                run_id = self._insert(db, "diagnose_runs", run_row)
                for row in finding_rows:
                    self._insert(db, "findings", _RedactedRow({"run_id": run_id, **row}))
                if incident_id is not None and on_timeline:
                    self._timeline(
                        db,
                        incident_id,
                        "diagnose",
                        line,
                        at=recorded,
                        actor=requested_by,
                        ref=f"run:{run_id}",
                    )
        except sqlite3.IntegrityError:
            # Another process recorded the same request between our look and our insert.
            if request_key and (known := self._run_for_key(request_key)) is not None:
                return known
            raise
        return run_id

    def _run_for_key(self, request_key: str) -> int | None:
        rows = self._rows("SELECT id FROM diagnose_runs WHERE request_key = ?", [request_key])
        return int(rows[0]["id"]) if rows else None

    def run(self, run_id: int) -> DiagnoseRun:
        rows = self._rows("SELECT * FROM diagnose_runs WHERE id = ?", [run_id])
        if not rows:
            raise StoreError(f"no diagnose run {run_id}")
        return DiagnoseRun.from_row(rows[0])

    def runs(
        self, incident_id: int | None = None, *, limit: int = 10, people_only: bool = False
    ) -> list[DiagnoseRun]:
        """Recent runs, newest first: of one incident, or across the log; ``people_only``
        leaves out the runs a watch recorded when it saw a change."""
        where = _BY_PEOPLE if people_only else "1 = 1"
        if incident_id is None:
            rows = self._rows(
                f"SELECT * FROM diagnose_runs WHERE {where} ORDER BY id DESC LIMIT ?", [limit]
            )
        else:
            rows = self._rows(
                f"SELECT * FROM diagnose_runs WHERE incident_id = ? AND {where}"
                " ORDER BY id DESC LIMIT ?",
                [incident_id, limit],
            )
        return [DiagnoseRun.from_row(r) for r in rows]

    def latest_run(self, incident_id: int) -> DiagnoseRun | None:
        runs = self.runs(incident_id, limit=1)
        return runs[0] if runs else None

    def attach_run(self, run_id: int, incident_id: int) -> None:
        """Tie a run recorded outside an incident (and its findings) to one declared later."""
        with self._transaction() as db:
            self._write(
                db,
                "UPDATE diagnose_runs SET incident_id = ? WHERE id = ? AND incident_id IS NULL",
                [incident_id, run_id],
            )
            self._write(
                db,
                "UPDATE findings SET incident_id = ? WHERE run_id = ? AND incident_id IS NULL",
                [incident_id, run_id],
            )

    def findings(
        self,
        incident_id: int,
        *,
        latest_only: bool = True,
        run_id: int | None = None,
        failing_only: bool = False,
    ) -> list[Finding]:
        """Findings of an incident; by default only each check's latest, in path order."""
        failing = (
            f"AND f.status IN ({', '.join(repr(s) for s in FAILING_STATUSES)})"
            if failing_only
            else ""
        )
        if run_id is not None:
            sql = f"SELECT f.* FROM findings f WHERE f.run_id = ? {failing} ORDER BY f.id"
            params: list[Any] = [run_id]
        elif latest_only:
            sql = f"{_LATEST} WHERE 1 = 1 {failing} ORDER BY f.run_id, f.id"
            params = [incident_id, _NO_CUTOFF, incident_id]
        else:
            sql = f"SELECT f.* FROM findings f WHERE f.incident_id = ? {failing} ORDER BY f.id"
            params = [incident_id]
        return [Finding.from_row(r) for r in self._rows(sql, params)]

    def check_states(self, incident_id: int, *, as_of: datetime | None = None) -> list[CheckState]:
        """Each check's latest state (optionally as it stood at ``as_of``), aggregated in SQL."""
        cutoff = _NO_CUTOFF
        if as_of is not None:
            rows = self._rows(
                "SELECT MAX(id) AS run_id FROM diagnose_runs"
                " WHERE incident_id = ? AND recorded_at <= ?",
                [incident_id, to_ts(as_of)],
            )
            cutoff = rows[0]["run_id"] or 0
        rows = self._rows(f"{_LATEST} ORDER BY f.run_id, f.id", [incident_id, cutoff, incident_id])
        return [
            CheckState(
                check_id=r["check_id"],
                layer=r["layer"],
                status=r["status"],
                classification=r["classification"],
                summary=r["summary"] or "",
                hint=r["hint"],
                run_id=r["run_id"],
                at=from_ts(r["at"]),  # type: ignore[arg-type]
            )
            for r in rows
        ]

    def finding_counts(self, incident_id: int) -> dict[str, int]:
        """How many findings of each status across every run of the incident."""
        rows = self._rows(
            "SELECT status, COUNT(*) AS n FROM findings WHERE incident_id = ? GROUP BY status",
            [incident_id],
        )
        return {r["status"]: r["n"] for r in rows}

    def run_count(self, incident_id: int) -> int:
        rows = self._rows(
            "SELECT COUNT(*) AS n FROM diagnose_runs WHERE incident_id = ?", [incident_id]
        )
        return int(rows[0]["n"])

    def last_failures(self, incident_id: int) -> list[Finding]:
        """Each check's last failing finding in the incident (its evidence of what was wrong)."""
        problem = ", ".join(f"'{s}'" for s in FAILING_STATUSES)
        rows = self._rows(
            "SELECT f.* FROM findings f JOIN (SELECT MAX(id) AS id FROM findings"
            f" WHERE incident_id = ? AND status IN ({problem}) GROUP BY check_id) last"
            " ON f.id = last.id ORDER BY f.run_id, f.id",
            [incident_id],
        )
        return [Finding.from_row(r) for r in rows]

    def failure_spans(self, incident_id: int) -> list[FailureSpan]:
        """Every check that failed during the incident: when first and last seen failing,
        its last failing summary, and whether its latest result still fails. Path order."""
        problem = ", ".join(f"'{s}'" for s in FAILING_STATUSES)
        rows = self._rows(
            "SELECT check_id, MIN(at) AS first_at, MAX(at) AS last_at FROM findings"
            f" WHERE incident_id = ? AND status IN ({problem}) GROUP BY check_id",
            [incident_id],
        )
        last = {f.check_id: f for f in self.last_failures(incident_id)}
        still = {s.check_id for s in self.check_states(incident_id) if s.failing}
        order = {layer: i for i, layer in enumerate(HOP_LAYERS)}
        spans = [
            FailureSpan(
                check_id=r["check_id"],
                layer=last[r["check_id"]].layer,
                first_at=from_ts(r["first_at"]),  # type: ignore[arg-type]
                last_at=from_ts(r["last_at"]),  # type: ignore[arg-type]
                summary=last[r["check_id"]].summary,
                still_failing=r["check_id"] in still,
            )
            for r in rows
            if r["check_id"] in last
        ]
        return sorted(spans, key=lambda s: (order.get(s.layer, len(order)), s.first_at))

    # -- tickets -----------------------------------------------------------------------------

    def link_ticket(
        self,
        incident_id: int,
        *,
        provider: str,
        key: str,
        title: str | None = None,
        url: str | None = None,
        status: str | None = None,
        done: bool = False,
        check_ids: Sequence[str] | None = None,
        actor: str | None = None,
        now: datetime | None = None,
    ) -> TicketLink:
        """Tie a ticket to the incident and to the checks failing now (unless given).

        Linking the same ticket again refreshes its title, url and state but keeps the checks
        it was first linked with.
        """
        at = to_ts(_now(now))
        if check_ids is None:
            check_ids = [s.check_id for s in self.check_states(incident_id) if s.failing]
        with self._transaction() as db:
            if not list(db.query("SELECT 1 FROM incidents WHERE id = ?", [incident_id])):
                raise UnknownIncident(f"no incident #{incident_id}")
            existing = list(
                db.query(
                    "SELECT 1 FROM ticket_links WHERE incident_id = ? AND provider = ? AND key = ?",
                    [incident_id, provider, key],
                )
            )
            if existing:
                self._write(
                    db,
                    "UPDATE ticket_links SET title = coalesce(?, title), url = coalesce(?, url),"
                    " status = coalesce(?, status), done = ?"
                    " WHERE incident_id = ? AND provider = ? AND key = ?",
                    [title, url, status, int(done), incident_id, provider, key],
                )
            else:
                self._insert(
                    db,
                    "ticket_links",
                    {
                        "incident_id": incident_id,
                        "provider": provider,
                        "key": key,
                        "title": title,
                        "url": url,
                        "status": status,
                        "done": int(done),
                        "linked_at": at,
                        "linked_by": actor,
                        "check_ids": list(check_ids),
                    },
                )
                checks = ", ".join(check_ids) if check_ids else "no failing checks"
                self._timeline(
                    db,
                    incident_id,
                    "ticket",
                    f"Linked {provider} ticket {key}"
                    + (f" “{title}”" if title else "")
                    + f" (checks: {checks})",
                    at=at,
                    actor=actor,
                    ref=key,
                )
        return self.ticket(incident_id, provider, key)

    def ticket(self, incident_id: int, provider: str, key: str) -> TicketLink:
        rows = self._rows(
            "SELECT * FROM ticket_links WHERE incident_id = ? AND provider = ? AND key = ?",
            [incident_id, provider, key],
        )
        if not rows:
            raise StoreError(f"ticket {key} is not linked to incident #{incident_id}")
        return TicketLink.from_row(rows[0])

    def tickets(self, incident_id: int) -> list[TicketLink]:
        """Linked tickets in the order they were linked."""
        rows = self._rows(
            "SELECT * FROM ticket_links WHERE incident_id = ? ORDER BY linked_at, key",
            [incident_id],
        )
        return [TicketLink.from_row(r) for r in rows]

    def update_ticket_state(
        self, incident_id: int, provider: str, key: str, *, status: str | None, done: bool
    ) -> None:
        """Record the state the tracker last reported for a linked ticket."""
        with self._db() as db:
            self._write(
                db,
                "UPDATE ticket_links SET status = ?, done = ?"
                " WHERE incident_id = ? AND provider = ? AND key = ?",
                [status, int(done), incident_id, provider, key],
            )

    def record_ticket_poll(
        self,
        incident_id: int,
        provider: str,
        key: str,
        *,
        status: str | None,
        done: bool,
        now: datetime | None = None,
    ) -> bool:
        """Store what the tracker said at a poll; True when the ticket has just turned done."""
        with self._transaction() as db:
            rows = list(
                db.query(
                    "SELECT done FROM ticket_links WHERE incident_id = ? AND provider = ?"
                    " AND key = ?",
                    [incident_id, provider, key],
                )
            )
            if not rows:
                return False
            self._write(
                db,
                "UPDATE ticket_links SET status = ?, done = ?, polled_at = ?"
                " WHERE incident_id = ? AND provider = ? AND key = ?",
                [status, int(done), to_ts(_now(now)), incident_id, provider, key],
            )
        return done and not rows[0]["done"]

    def tickets_to_poll(self, now: datetime, every: timedelta) -> list[TicketLink]:
        """Open incidents' tickets not known to be done and not polled within ``every``."""
        rows = self._rows(
            "SELECT t.* FROM ticket_links t JOIN incidents i ON i.id = t.incident_id"
            f" WHERE i.status NOT IN {_CLOSED_SQL} AND t.done = 0"
            " AND (t.polled_at IS NULL OR t.polled_at <= ?)"
            " ORDER BY coalesce(t.polled_at, ''), t.linked_at",
            [to_ts(now - every)],
        )
        return [TicketLink.from_row(r) for r in rows]

    def set_ticket_verified(
        self,
        incident_id: int,
        provider: str,
        key: str,
        verified: str,
        *,
        now: datetime | None = None,
    ) -> None:
        """Record the outcome of re-running a Done ticket's checks (see ``TicketLink``)."""
        with self._db() as db:
            self._write(
                db,
                "UPDATE ticket_links SET verified = ?, verified_at = ?"
                " WHERE incident_id = ? AND provider = ? AND key = ?",
                [verified, to_ts(_now(now)), incident_id, provider, key],
            )

    # -- people ------------------------------------------------------------------------------

    def people(self, user_ids: Sequence[str] | None = None) -> dict[str, str]:
        """Cached Slack names by user id (all of them, or these)."""
        if user_ids is None:
            rows = self._rows("SELECT user_id, name FROM people")
        else:
            ids = list(dict.fromkeys(user_ids))
            if not ids:
                return {}
            marks = ", ".join("?" for _ in ids)
            rows = self._rows(f"SELECT user_id, name FROM people WHERE user_id IN ({marks})", ids)
        return {r["user_id"]: r["name"] for r in rows}

    def stale_people(self, user_ids: Sequence[str], now: datetime, ttl: timedelta) -> list[str]:
        """Which of ``user_ids`` have no cached name, or one older than ``ttl``."""
        fresh = {
            r["user_id"]
            for r in self._rows(
                "SELECT user_id FROM people WHERE fetched_at > ?", [to_ts(now - ttl)]
            )
        }
        return [u for u in dict.fromkeys(user_ids) if u and u not in fresh]

    def remember_people(self, names: dict[str, str], *, now: datetime | None = None) -> None:
        """Cache Slack names (``users.info``) so reports and the CLI show names, not ids."""
        at = to_ts(_now(now))
        with self._transaction() as db:
            for user_id, name in names.items():
                self._write(
                    db,
                    "INSERT INTO people (user_id, name, fetched_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(user_id) DO UPDATE SET name = excluded.name,"
                    " fetched_at = excluded.fetched_at",
                    [user_id, name, at],
                )

    # -- runbook sessions --------------------------------------------------------------------

    def start_runbook_session(
        self,
        runbook_id: str,
        *,
        incident_id: int | None,
        channel: str | None,
        state: dict[str, Any],
        actor: str | None,
        message_ts: str | None = None,
        now: datetime | None = None,
    ) -> RunbookSession:
        """Record a runbook started in a channel (version 1)."""
        at = to_ts(_now(now))
        with self._transaction() as db:
            session_id = self._insert(
                db,
                "runbook_sessions",
                {
                    "incident_id": incident_id,
                    "runbook_id": runbook_id,
                    "channel": channel,
                    "message_ts": message_ts,
                    "state": state,
                    "version": 1,
                    "started_at": at,
                    "updated_at": at,
                    "updated_by": actor,
                },
            )
            if incident_id is not None:
                self._timeline(
                    db,
                    incident_id,
                    "runbook",
                    f"Started runbook {runbook_id}",
                    at=at,
                    actor=actor,
                    ref=f"runbook:{session_id}",
                )
        return self.runbook_session(session_id)

    def runbook_session(self, session_id: int) -> RunbookSession:
        rows = self._rows("SELECT * FROM runbook_sessions WHERE id = ?", [session_id])
        if not rows:
            raise StoreError(f"no runbook session {session_id}")
        return RunbookSession.from_row(rows[0])

    def runbook_sessions(self, incident_id: int) -> list[RunbookSession]:
        rows = self._rows(
            "SELECT * FROM runbook_sessions WHERE incident_id = ? ORDER BY id", [incident_id]
        )
        return [RunbookSession.from_row(r) for r in rows]

    def update_runbook_session(
        self,
        session_id: int,
        *,
        state: dict[str, Any],
        expected_version: int,
        actor: str | None,
        message_ts: str | None = None,
        now: datetime | None = None,
    ) -> RunbookSession:
        """Save new state if nobody saved since ``expected_version``; else ``StaleSession``."""
        with self._db() as db:
            cursor = self._write(
                db,
                "UPDATE runbook_sessions SET state = ?, version = version + 1, updated_at = ?,"
                " updated_by = ?, message_ts = coalesce(?, message_ts)"
                " WHERE id = ? AND version = ?",
                [
                    json.dumps(self._scrub(state), default=str),
                    to_ts(_now(now)),
                    actor,
                    message_ts,
                    session_id,
                    expected_version,
                ],
            )
        if cursor.rowcount != 1:
            raise StaleSession(
                f"runbook session {session_id} changed since version {expected_version}"
            )
        return self.runbook_session(session_id)

    # -- moving a log ---------------------------------------------------------------------------

    def copy_from(self, source: IncidentStore) -> dict[str, tuple[int, int]]:
        """Copy every row of ``source`` that this log does not hold yet; ids are kept.

        Idempotent: a row whose key is already here is left alone, so a copy that stopped half
        way can simply be run again. Returns ``{table: (copied, already_here)}``, tables in the
        order their foreign keys need. Leases are not copied: they belong to running processes.
        """
        copied: dict[str, tuple[int, int]] = {}
        with source._db() as src, self._transaction() as dest:
            for table in _tables_in_dependency_order(src):
                if table in _NOT_COPIED:
                    continue
                theirs = {
                    r["name"] for r in src.query(f"SELECT name FROM pragma_table_info('{table}')")
                }
                ours = set(_columns(dest, table))
                columns = [c for c in _columns(src, table) if c in theirs and c in ours]
                rows = list(src.query(f"SELECT {', '.join(columns)} FROM {table}"))
                new = 0
                for row in rows:
                    cursor = self._write(
                        dest,
                        f"INSERT OR IGNORE INTO {table} ({', '.join(columns)})"
                        f" VALUES ({', '.join('?' for _ in columns)})",
                        [row[c] for c in columns],
                    )
                    new += cursor.rowcount
                copied[table] = (new, len(rows) - new)
            if isinstance(dest, PgDatabase):
                dest.restart_identities()
        return copied

    # -- watches -----------------------------------------------------------------------------

    def start_watch(
        self,
        *,
        channel_id: str,
        incident_id: int | None,
        env: str,
        scopes: Sequence[str],
        check_ids: Sequence[str],
        every_s: float,
        burst: int,
        recover_after: int,
        ends_at: datetime,
        actor: str | None,
        now: datetime | None = None,
    ) -> WatchRow:
        """Record a new running watch (and put it on the incident's timeline).

        Raises:
            WatchExists: the channel already has a running watch.
        """
        at = to_ts(_now(now))
        try:
            with self._transaction() as db:
                existing = self._active_watch_in(db, channel_id)
                if existing:
                    raise WatchExists(existing)
                watch_id = self._insert(
                    db,
                    "watches",
                    {
                        "channel_id": channel_id,
                        "incident_id": incident_id,
                        "env": env,
                        "scopes": list(scopes),
                        "check_ids": list(check_ids),
                        "every_s": every_s,
                        "burst": burst,
                        "recover_after": recover_after,
                        "started_by": actor,
                        "started_at": at,
                        "ends_at": to_ts(ends_at),
                        "status": "active",
                        "tick": 0,
                        "state": {},
                        "updated_at": at,
                    },
                )
                if incident_id is not None:
                    self._insert(
                        db,
                        "timeline",
                        {
                            "incident_id": incident_id,
                            "at": at,
                            "actor": actor,
                            "kind": "watch",
                            "text": f"Watch #{watch_id} started: {len(check_ids)} checks "
                            f"every {every_s:g}s",
                            "ref": f"watch:{watch_id}",
                        },
                    )
        except sqlite3.IntegrityError:
            # Another process started one in this channel between our check and insert.
            with self._db() as db:
                existing = self._active_watch_in(db, channel_id)
            if existing:
                raise WatchExists(existing) from None
            raise
        return self.watch(watch_id)

    def _active_watch_in(self, db: Database, channel_id: str) -> WatchRow | None:
        rows = list(
            db.query(
                "SELECT * FROM watches WHERE channel_id = ? AND status = 'active'", [channel_id]
            )
        )
        return WatchRow.first(rows)

    def watch(self, watch_id: int) -> WatchRow:
        rows = self._rows("SELECT * FROM watches WHERE id = ?", [watch_id])
        if not rows:
            raise StoreError(f"no watch #{watch_id}")
        return WatchRow.from_row(rows[0])

    def active_watch(self, channel_id: str) -> WatchRow | None:
        """The running watch of a channel, if any."""
        with self._db() as db:
            return self._active_watch_in(db, channel_id)

    def active_watches(self) -> list[WatchRow]:
        rows = self._rows("SELECT * FROM watches WHERE status = 'active' ORDER BY id")
        return [WatchRow.from_row(r) for r in rows]

    def save_watch(
        self,
        watch_id: int,
        *,
        tick: int,
        expected_tick: int,
        state: dict[str, Any],
        now: datetime | None = None,
    ) -> bool:
        """Save a running watch's state after a tick, if it is still running and nobody saved
        a later tick meanwhile (False otherwise: the caller stops running it)."""
        with self._db() as db:
            cursor = self._write(
                db,
                "UPDATE watches SET tick = ?, state = ?, updated_at = ?"
                " WHERE id = ? AND status = 'active' AND tick = ?",
                [
                    tick,
                    json.dumps(self._scrub(state), default=str),
                    to_ts(_now(now)),
                    watch_id,
                    expected_tick,
                ],
            )
        return cursor.rowcount == 1

    def set_watch_message(self, watch_id: int, message_ts: str) -> None:
        with self._db() as db:
            self._write(
                db, "UPDATE watches SET message_ts = ? WHERE id = ?", [message_ts, watch_id]
            )

    def end_watch(self, watch_id: int, *, status: str, now: datetime | None = None) -> bool:
        """Mark a running watch ``stopped`` or ``ended``; False when it was not running."""
        if status not in ("stopped", "ended"):
            raise StoreError(f"a watch ends as stopped or ended, not {status!r}")
        with self._db() as db:
            cursor = self._write(
                db,
                "UPDATE watches SET status = ?, ended_at = ? WHERE id = ? AND status = 'active'",
                [status, to_ts(_now(now)), watch_id],
            )
        return cursor.rowcount == 1

    def latest_run_in_channel(self, channel_id: str) -> DiagnoseRun | None:
        """The newest diagnose a person ran from a channel (a watch's runs are evidence of
        a change, not a diagnose to follow)."""
        rows = self._rows(
            f"SELECT * FROM diagnose_runs WHERE channel = ? AND {_BY_PEOPLE}"
            " ORDER BY id DESC LIMIT 1",
            [channel_id],
        )
        return DiagnoseRun.first(rows)

    # -- dedupe and leases -------------------------------------------------------------------

    def claim_request(self, key: str, *, now: datetime | None = None) -> bool:
        """True if this process is the first to handle ``key`` (a Slack request or event id)."""
        with self._db() as db:
            cursor = self._write(
                db,
                "INSERT OR IGNORE INTO handled_requests (key, at) VALUES (?, ?)",
                [key, to_ts(_now(now))],
            )
        return cursor.rowcount == 1

    def try_lease(
        self,
        name: str,
        holder: str,
        ttl: float,
        *,
        incident_id: int | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Take or renew the lease ``name`` for ``ttl`` seconds; False if another holds it.

        One statement, so two processes asking at once cannot both win.
        """
        at = _now(now)
        expires = to_ts(at + timedelta(seconds=ttl))
        with self._db() as db:
            cursor = self._write(
                db,
                "INSERT INTO summary_leases (name, incident_id, holder, expires_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at, incident_id = excluded.incident_id"
                " WHERE summary_leases.expires_at <= ? OR summary_leases.holder = excluded.holder",
                [name, incident_id, holder, expires, to_ts(at)],
            )
        return cursor.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up early (only if ``holder`` still holds it)."""
        with self._db() as db:
            self._write(
                db, "DELETE FROM summary_leases WHERE name = ? AND holder = ?", [name, holder]
            )

    def release_leases(self, holder: str) -> int:
        """Give back every lease ``holder`` holds (on shutdown); how many there were."""
        with self._db() as db:
            cursor = self._write(db, "DELETE FROM summary_leases WHERE holder = ?", [holder])
        return cursor.rowcount

    def leases_held(self, holder: str, prefix: str = "", *, now: datetime | None = None) -> int:
        """How many unexpired leases named ``prefix...`` ``holder`` holds."""
        rows = self._rows(
            "SELECT COUNT(*) AS n FROM summary_leases WHERE holder = ? AND name LIKE ?"
            " AND expires_at > ?",
            [holder, prefix + "%", to_ts(_now(now))],
        )
        return int(rows[0]["n"])

    # -- work in flight ----------------------------------------------------------------------

    def begin_in_flight(
        self,
        kind: str,
        *,
        holder: str,
        ttl: float,
        channel: str | None = None,
        message_ts: str | None = None,
        payload: dict[str, Any] | None = None,
        requested_by: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Note work ``holder`` has started; it must be renewed within ``ttl`` seconds."""
        at = _now(now)
        with self._db() as db:
            return self._insert(
                db,
                "in_flight",
                {
                    "kind": kind,
                    "channel": channel,
                    "message_ts": message_ts,
                    "payload": payload or {},
                    "requested_by": requested_by,
                    "holder": holder,
                    "started_at": to_ts(at),
                    "expires_at": to_ts(at + timedelta(seconds=ttl)),
                },
            )

    def renew_in_flight(
        self, ids: Sequence[int], ttl: float, *, now: datetime | None = None
    ) -> None:
        """Push the deadline of the work ``ids`` (the holder is alive and still at it)."""
        if not ids:
            return
        marks = ", ".join("?" for _ in ids)
        expires = to_ts(_now(now) + timedelta(seconds=ttl))
        with self._db() as db:
            self._write(
                db, f"UPDATE in_flight SET expires_at = ? WHERE id IN ({marks})", [expires, *ids]
            )

    def in_flight(self) -> list[InFlight]:
        """All work noted as started and not finished, oldest first."""
        return [InFlight.from_row(r) for r in self._rows("SELECT * FROM in_flight ORDER BY id")]

    def end_in_flight(self, work_id: int) -> bool:
        """Strike the work off; True if this call did it (so two processes never both act)."""
        with self._db() as db:
            cursor = self._write(db, "DELETE FROM in_flight WHERE id = ?", [work_id])
        return cursor.rowcount == 1

    def prune_requests(self, older_than: datetime) -> int:
        """Forget handled request keys older than ``older_than`` (Slack retries within minutes)."""
        with self._db() as db:
            cursor = self._write(
                db,
                # Declare keys guard "one incident per diagnose result" for good: keep them.
                "DELETE FROM handled_requests WHERE at < ? AND key NOT LIKE 'declare:%'",
                [to_ts(older_than)],
            )
        return cursor.rowcount


# Each check's latest finding: group the covering index (incident, check, run) first, then look
# up ~one row per check; CROSS JOIN keeps SQLite from scanning every finding instead.
_LATEST = (
    "SELECT f.* FROM (SELECT check_id, MAX(run_id) AS run_id FROM findings"
    " WHERE incident_id = ? AND run_id <= ? GROUP BY check_id) latest"
    " CROSS JOIN findings f ON f.incident_id = ? AND f.check_id = latest.check_id"
    " AND f.run_id = latest.run_id"
)
_NO_CUTOFF = 2**62

_NOT_COPIED = frozenset({"summary_leases", "_sqlite_migrations"})


def _columns(db: Any, table: str) -> list[str]:
    if isinstance(db, PgDatabase):
        return db.columns(table)
    return [r["name"] for r in db.query(f"SELECT name FROM pragma_table_info('{table}')")]


def _tables_in_dependency_order(db: Database) -> list[str]:
    """A SQLite log's tables, each after the tables its foreign keys point at."""
    tables = [t for t in db.table_names() if not t.startswith("sqlite_")]
    needs = {
        t: {r["table"] for r in db.query(f"SELECT * FROM pragma_foreign_key_list('{t}')")} - {t}
        for t in tables
    }
    ordered: list[str] = []
    while needs:
        ready = sorted(t for t, deps in needs.items() if deps <= set(ordered))
        if not ready:  # a cycle: keep the rest as they are
            ready = sorted(needs)
        ordered += ready
        for t in ready:
            needs.pop(t)
    return ordered


_ID = re.compile(r"^#?(?:inc-?)?(\d+)$", re.IGNORECASE)


def parse_incident_id(text: str) -> int | None:
    """``12``, ``#12`` or ``INC-12`` -> 12; anything else -> None."""
    match = _ID.match(text.strip())
    return int(match.group(1)) if match else None


def title_key(title: str) -> str:
    """What two titles must share to be "the same incident": case, spacing and trailing
    punctuation aside."""
    return " ".join(title.casefold().split()).rstrip(".!?… ")
