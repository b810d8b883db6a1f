"""``hokusai db migrate --from PATH --to postgresql://...``: move an incident log to a server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO, Any

from bot.cli.common import EXIT_OK, UsageExit, echo


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "db",
        help="db migrate --from PATH --to URL",
        description="Move the incident log between engines.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    a = actions.add_parser(
        "migrate",
        help="copy a SQLite incident log into PostgreSQL (safe to run again)",
        description="Copies every incident, run, finding, timeline entry, ticket link and "
        "runbook session the destination does not hold yet; ids are kept.",
    )
    a.add_argument("--from", dest="source", required=True, metavar="PATH", help="SQLite file")
    a.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://...")
    a.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace, stdout: IO[str] | None = None, **_: Any) -> int:
    from bot.incident.engine import display, is_postgres, password_of
    from bot.incident.store import IncidentStore
    from bot.redaction import default_redactor

    if not is_postgres(args.target):
        raise UsageExit("hokusai db migrate: --to must be a postgresql:// URL")
    if password_of(args.target):
        default_redactor().add_known(password_of(args.target))
    source = Path(args.source)
    if not source.is_file():
        raise UsageExit(f"hokusai db migrate: no incident log at {source}")
    from bot.incident.store import StoreError

    try:
        copied = IncidentStore(args.target).copy_from(IncidentStore(source))
    except StoreError as exc:
        raise UsageExit(f"hokusai db migrate: {display(args.target)}: {exc}") from None
    for table, (new, present) in copied.items():
        echo(f"{table:<20} {new:>7} copied  {present:>7} already there", stdout)
    total = sum(new for new, _ in copied.values())
    echo(f"{total} rows copied from {source} to {display(args.target)}", stdout)
    return EXIT_OK
