"""``hokusai incident list | show ID | export ID``: the incident log from a terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bot.incidents import IncidentStore, StoreError, UnknownIncident, parse_incident_id
from bot.outbound import echo

USAGE = "usage: hokusai incident list | show ID | export ID"


def main(args: list[str], settings: Any, stdout: IO[str], stderr: IO[str]) -> int:
    """Run one incident subcommand; 0 on success, 2 on bad usage, unknown id or store error."""
    if not args or args[0] not in ("list", "show", "export"):
        echo(USAGE, stderr)
        return 2
    action, rest = args[0], args[1:]
    if action == "list" and rest:
        echo(USAGE, stderr)
        return 2
    if action != "list" and len(rest) != 1:
        echo(f"hokusai incident {action}: needs one incident id", stderr)
        return 2
    if not Path(settings.hokusai_db).exists():
        # Opening would create an empty log and answer "no incidents": a typo would look fine.
        echo(f"hokusai incident: no incident log at {settings.hokusai_db} (HOKUSAI_DB)", stderr)
        return 2
    try:
        store = IncidentStore(settings.hokusai_db)
        now = datetime.now(UTC)
        if action == "list":
            return _list(store, now, stdout)
        incident_id = parse_incident_id(rest[0])
        if incident_id is None:
            echo(f"hokusai incident {action}: {rest[0]!r} is not an incident id", stderr)
            return 2
        if action == "show":
            from bot.summaries import build_summary

            echo(build_summary(store, incident_id, now).text(), stdout)
        else:
            from bot.export import export_markdown

            echo(export_markdown(store, incident_id, now), stdout)
        return 0
    except UnknownIncident as exc:
        echo(f"hokusai incident {action}: {exc}", stderr)
        return 2
    except StoreError as exc:
        echo(f"hokusai incident: {exc}", stderr)
        return 2


def _list(store: IncidentStore, now: datetime, stdout: IO[str]) -> int:
    from bot.summaries import format_duration, format_time

    incidents = store.list_incidents(limit=200)
    if not incidents:
        echo("No incidents recorded.", stdout)
        return 0
    for inc in incidents:
        echo(
            f"#{inc.id:<4} SEV{inc.severity} {inc.status:<13} {format_time(inc.started_at)}  "
            f"{format_duration(inc.duration(now)):>7}  {inc.title}",
            stdout,
        )
    return 0
