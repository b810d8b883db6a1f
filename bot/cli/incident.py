"""``hokusai incident list | show ID | export ID``: the incident log from a terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bot.cli.common import UsageExit, echo, run, settings_or_exit


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "incident",
        help="incident list | show ID | export ID",
        description="The incident log ($HOKUSAI_DB) from a terminal.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    actions.add_parser("list", help="the incidents in the log, newest first")
    for action, what in (("show", "an incident's summary"), ("export", "the post-incident report")):
        a = actions.add_parser(action, help=what)
        a.add_argument("id", metavar="ID", help="an incident number, e.g. 7 or #7")
    p.set_defaults(func=cmd_incident)


def main(args: list[str], settings: Any, stdout: IO[str], stderr: IO[str]) -> int:
    """``hokusai incident ...`` on its own; returns the exit code."""
    return run([add_parser], ["incident", *args], stdout, stderr, settings=settings)


def cmd_incident(
    args: Any, stdout: IO[str], stderr: IO[str], settings: Any = None, **_: Any
) -> int:
    """Run one incident subcommand; 0 on success, 2 on bad usage, unknown id or store error."""
    from bot.incident.store import IncidentStore, UnknownIncident, parse_incident_id

    settings = settings or settings_or_exit()
    action = args.action
    if isinstance(settings.hokusai_db, Path) and not settings.hokusai_db.exists():
        # Opening would create an empty log and answer "no incidents": a typo would look fine.
        raise UsageExit(f"hokusai incident: no incident log at {settings.hokusai_db} (HOKUSAI_DB)")
    store = IncidentStore(settings.hokusai_db)
    now = datetime.now(UTC)
    if action == "list":
        return _list(store, now, stdout)
    incident_id = parse_incident_id(args.id)
    if incident_id is None:
        raise UsageExit(f"hokusai incident {action}: {args.id!r} is not an incident id")
    try:
        if action == "show":
            from bot.incident.summaries import build_summary

            # Outside the channel "since the last summary" means nothing: show it all.
            summary = build_summary(store, incident_id, now, since_last_summary=False)
            echo(summary.text(), stdout)
        else:
            from bot.incident.export import export_markdown

            echo(export_markdown(store, incident_id, now), stdout)
    except UnknownIncident as exc:
        raise UsageExit(f"hokusai incident {action}: {exc}") from None
    return 0


def _list(store: Any, now: datetime, stdout: IO[str]) -> int:
    from bot.incident.summaries import format_duration, format_time

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
