"""Where the incident log lives: a SQLite file (the default) or a PostgreSQL server.

``HOKUSAI_DB`` is a path (SQLite, embedded, one host) or a ``postgresql://`` URL (several
hosts). The store is written once, in the SQL both engines understand, against the small part
of sqlite-utils' ``Database`` it uses (``query``, ``execute``, ``atomic``, ``table().create``);
``PgDatabase`` offers that same surface on a psycopg 3 connection and translates the few
dialect differences mechanically:

- ``?`` placeholders become ``%s`` (and a literal ``%`` becomes ``%%``);
- ``INSERT OR IGNORE`` becomes ``INSERT ... ON CONFLICT DO NOTHING``; an insert into a table
  with an ``id`` column returns it (SQLite's ``lastrowid``);
- ``BEGIN IMMEDIATE`` (SQLite's one-writer-at-a-time lock) becomes ``BEGIN`` plus a
  transaction-scoped advisory lock, so check-then-write stays race-free across hosts;
- ``CROSS JOIN ... ON`` becomes ``JOIN ... ON``; ``PRAGMA`` is a no-op.

Errors keep one vocabulary: psycopg's are raised as the matching ``sqlite3`` exception, so the
store maps a constraint violation or an unreachable server the same way on both engines.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# One lock for the whole log: writers queue as they do on SQLite's BEGIN IMMEDIATE.
_WRITE_LOCK_KEY = 0x686F6B75  # "hoku"
_TYPES = {int: "BIGINT", str: "TEXT", float: "DOUBLE PRECISION", bool: "BIGINT", bytes: "BYTEA"}


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def display(target: str | Path) -> str:
    """The location as it may be shown: a URL without its password."""
    if not is_postgres(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def password_of(target: str | Path) -> str | None:
    """The URL's password, so the redactor knows its exact value."""
    return urlsplit(str(target)).password if is_postgres(target) else None


def _translate(sql: str) -> str:
    """SQLite's spelling of the store's SQL into PostgreSQL's."""
    text = sql
    ignore = re.match(r"\s*INSERT\s+OR\s+IGNORE\s+INTO\b", text, re.IGNORECASE)
    if ignore:
        text = "INSERT INTO" + text[ignore.end() :] + " ON CONFLICT DO NOTHING"
    text = re.sub(r"\bCROSS\s+JOIN\b", "JOIN", text, flags=re.IGNORECASE)
    out, quoted = [], False
    for char in text:
        if char == "'":
            quoted = not quoted
        if char == "%":
            out.append("%%")
        elif char == "?" and not quoted:
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


def _params(params: Sequence[Any] | None) -> list[Any]:
    # SQLite stores a bool as 0/1 in an INTEGER column; PostgreSQL would refuse the type.
    return [int(p) if isinstance(p, bool) else p for p in (params or ())]


@contextlib.contextmanager
def _as_sqlite_errors() -> Iterator[None]:
    import psycopg
    import psycopg.errors

    try:
        yield
    except psycopg.errors.LockNotAvailable:
        raise sqlite3.OperationalError("database is locked (another writer holds it)") from None
    except psycopg.IntegrityError as exc:
        raise sqlite3.IntegrityError(str(exc).strip()) from None
    except psycopg.OperationalError as exc:
        raise sqlite3.OperationalError(str(exc).strip().splitlines()[0]) from None
    except psycopg.Error as exc:
        raise sqlite3.DatabaseError(str(exc).strip().splitlines()[0]) from None


class _Result:
    """What the store reads off a cursor: ``rowcount`` and ``lastrowid``."""

    def __init__(self, rowcount: int, lastrowid: int | None) -> None:
        self.rowcount = rowcount
        self.lastrowid = lastrowid


class _Transactions:
    """``db.conn.in_transaction``, as the store asks sqlite3 connections."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._conn.info.transaction_status != TransactionStatus.IDLE


class PgDatabase:
    """The slice of sqlite-utils' ``Database`` the store uses, on a PostgreSQL connection."""

    def __init__(self, conn: Any) -> None:
        self._pg = conn
        self.conn = _Transactions(conn)
        self._with_id: dict[str, bool] = {}
        self._savepoints = 0

    @classmethod
    def connect(cls, url: str, timeout: float) -> PgDatabase:
        import psycopg
        from psycopg.rows import dict_row

        with _as_sqlite_errors():
            conn = psycopg.connect(
                url, autocommit=True, row_factory=dict_row, connect_timeout=max(1, int(timeout))
            )
            # A write that waits longer than this for the lock fails like SQLite's busy timeout.
            conn.execute(f"SET lock_timeout = '{int(timeout * 1000)}ms'")
        return cls(conn)

    def _has_id(self, table: str) -> bool:
        if table not in self._with_id:
            row = self._pg.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = %s AND column_name = 'id'",
                [table],
            ).fetchone()
            self._with_id[table] = row is not None
        return self._with_id[table]

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> _Result:
        statement = sql.strip()
        if statement.upper().startswith("PRAGMA"):
            return _Result(0, None)
        with _as_sqlite_errors():
            if statement.upper() == "BEGIN IMMEDIATE":
                self._pg.execute("BEGIN")
                self._pg.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITE_LOCK_KEY])
                return _Result(0, None)
            text = _translate(statement)
            insert = re.match(r"INSERT\s+INTO\s+(\w+)", text, re.IGNORECASE)
            returning = bool(insert) and self._has_id(insert.group(1).lower())
            if returning:
                text += " RETURNING id"
            cursor = self._pg.execute(text, _params(params))
            lastrowid = None
            if returning and cursor.rowcount:
                lastrowid = cursor.fetchone()["id"]
            return _Result(cursor.rowcount, lastrowid)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]:
        with _as_sqlite_errors():
            rows = self._pg.execute(_translate(sql), _params(params)).fetchall()
        yield from rows

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction, or a savepoint inside one (as sqlite-utils does)."""
        if not self.conn.in_transaction:
            self.execute("BEGIN")
            try:
                yield
            except BaseException:
                self.rollback()
                raise
            self.execute("COMMIT")
            return
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        finally:
            self._savepoints -= 1
        self.execute(f"RELEASE SAVEPOINT {name}")

    def rollback(self) -> None:
        with contextlib.suppress(Exception):
            self._pg.execute("ROLLBACK")

    def close(self) -> None:
        self._pg.close()

    def enable_wal(self) -> None:
        """SQLite's journal mode; PostgreSQL has its own write-ahead log."""

    def table_names(self) -> list[str]:
        return [
            row["table_name"]
            for row in self.query(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY table_name"
            )
        ]

    def columns(self, table: str) -> list[str]:
        return [
            row["column_name"]
            for row in self.query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = ? ORDER BY ordinal_position",
                [table],
            )
        ]

    def restart_identities(self) -> None:
        """After rows were inserted with their ids: new rows continue after the highest."""
        for row in list(
            self.query(
                "SELECT table_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND column_name = 'id' AND is_identity = 'YES'"
            )
        ):
            table = row["table_name"]
            self.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )

    def table(self, name: str) -> PgTable:
        return PgTable(self, name)


class PgTable:
    """``db.table(name)``: what the migrations use to create tables and indexes."""

    def __init__(self, db: PgDatabase, name: str) -> None:
        self.db = db
        self.name = name

    def exists(self) -> bool:
        row = next(
            self.db.query(
                "SELECT 1 AS found FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name = ?",
                [self.name],
            ),
            None,
        )
        return row is not None

    def create(
        self,
        columns: dict[str, type],
        pk: str | tuple[str, ...] | None = None,
        not_null: set[str] | None = None,
        foreign_keys: Sequence[tuple[str, str, str]] = (),
    ) -> PgTable:
        not_null = not_null or set()
        lines = []
        for column, kind in columns.items():
            if pk == column and kind is int:
                lines.append(f"{column} BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
                continue
            lines.append(
                f"{column} {_TYPES[kind]}"
                + (" NOT NULL" if column in not_null else "")
                + (" PRIMARY KEY" if pk == column else "")
            )
        if isinstance(pk, tuple):
            lines.append(f"PRIMARY KEY ({', '.join(pk)})")
        lines += [f"FOREIGN KEY ({c}) REFERENCES {t}({o})" for c, t, o in foreign_keys]
        self.db.execute(f"CREATE TABLE {self.name} ({', '.join(lines)})")
        self.db._with_id.pop(self.name, None)
        return self

    def create_index(self, columns: Sequence[str], unique: bool = False) -> PgTable:
        name = f"idx_{self.name}_{'_'.join(columns)}"
        kind = "UNIQUE INDEX" if unique else "INDEX"
        self.db.execute(f"CREATE {kind} {name} ON {self.name} ({', '.join(columns)})")
        return self
