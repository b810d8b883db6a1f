"""``hokusai runbook list | lint [PATH]... | show NAME``: the runbooks from a terminal.

Exit codes: 0 clean, 2 bad usage or a runbook with problems (one line per problem).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.cli.common import UsageExit, echo, run
from bot.runbook.model import (
    NEXT,
    Runbook,
    RunbookError,
    Stop,
    default_runbooks_dir,
    lint_paths,
    load_runbook,
    runbook_files,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "runbook",
        help="runbook list | lint [PATH]... | show NAME",
        description="The installed runbooks ($HOKUSAI_RUNBOOKS, else the repository's runbooks/).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    a = actions.add_parser("list", help="the installed runbooks")
    a.set_defaults(func=lambda args, stdout, stderr, **_: _list(stdout, stderr))
    a = actions.add_parser("lint", help="check runbooks against the check registry")
    a.add_argument("paths", nargs="*", metavar="PATH", help="default: the installed runbooks")
    a.set_defaults(func=lambda args, stdout, stderr, **_: _lint(args.paths, stdout, stderr))
    a = actions.add_parser("show", help="a runbook's steps and where they lead")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=lambda args, stdout, stderr, **_: _show(args.name, stdout, stderr))


def main(
    args: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """``hokusai runbook ...`` on its own; returns the exit code."""
    args = list(sys.argv[1:] if args is None else args)
    return run([add_parser], ["runbook", *args], stdout, stderr)


def _list(stdout: TextIO, stderr: TextIO) -> int:
    from bot.runbook.catalog import catalog

    runbooks = catalog()
    if not runbooks:
        raise UsageExit(f"hokusai runbook list: no runbooks in {_relative(default_runbooks_dir())}")
    width = max(len(name) for name in runbooks)
    for name, runbook in runbooks.items():
        echo(f"{name:<{width}}  {runbook.title}", stdout)
    return 0


def _lint(paths: list[str], stdout: TextIO, stderr: TextIO) -> int:
    targets = [Path(p) for p in paths] or [_relative(default_runbooks_dir())]
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise UsageExit(f"hokusai runbook lint: {missing[0]}: no such file or directory")
    files = runbook_files(targets)
    if not files:
        where = ", ".join(map(str, targets))
        raise UsageExit(f"hokusai runbook lint: {where}: no runbooks (*.yml) found")
    errors = lint_paths(files)
    for error in errors:
        echo(str(error), stderr)
    if errors:
        return 2
    echo(f"{len(files)} runbook(s) OK", stdout)
    return 0


def _relative(path: Path) -> Path:
    """``runbooks`` rather than ``/work/main/runbooks`` when run from the repository."""
    relative = os.path.relpath(path)
    return Path(relative) if not relative.startswith("..") else path


def _find(name: str) -> Path | None:
    given = Path(name)
    if given.suffix in (".yml", ".yaml") and given.is_file():
        return given
    for path in runbook_files([default_runbooks_dir()]):
        if path.stem == name:
            return path
    return None


def _show(name: str, stdout: TextIO, stderr: TextIO) -> int:
    path = _find(name)
    if path is None:
        directory = default_runbooks_dir()
        installed = runbook_files([directory]) if directory.is_dir() else []
        known = ", ".join(p.stem for p in installed) or f"none in {_relative(directory)}"
        raise UsageExit(f"hokusai runbook show: unknown runbook {name!r}; known: {known}")
    try:
        runbook = load_runbook(path)
    except RunbookError as exc:
        raise UsageExit(f"hokusai runbook show: {exc}") from None
    echo(describe(runbook), stdout)
    return 0


def _target_text(runbook: Runbook, step_id: str, target: object) -> str:
    if isinstance(target, Stop):
        return f"stop: {target.stop.conclusion}"
    if target == NEXT:
        following = runbook.following(step_id)
        return following.id if following else "end"
    return str(target)


def describe(runbook: Runbook) -> str:
    """The runbook as plain text: steps, what they run or ask, and where they lead."""
    lines = [f"{runbook.title} ({runbook.id})"]
    if runbook.description:
        lines.append(f"  {runbook.description}")
    applies = runbook.applies_to
    scopes = [*applies.layers, *applies.checks, *applies.routes, *applies.services]
    if scopes:
        lines.append(f"  applies to: {', '.join(scopes)}")
    for i, step in enumerate(runbook.steps, 1):
        lines.append("")
        lines.append(f"{i}. [{step.id}] {step.title}  ({step.kind})")
        if step.manual:
            lines.append(f"   {' '.join(step.manual.instructions.split())}")
            if step.manual.link:
                lines.append(f"   link: {step.manual.link}")
            lines.append(f"   done -> {_target_text(runbook, step.id, step.next)}")
        elif step.automated:
            lines.append(f"   runs: {', '.join(step.automated.checks)}")
            lines.append(f"   pass -> {_target_text(runbook, step.id, step.pass_target)}")
            lines.append(f"   fail -> {_target_text(runbook, step.id, step.fail_target)}")
        elif step.question:
            lines.append(f"   {' '.join(step.question.prompt.split())}")
            for choice in step.question.choices:
                where = _target_text(runbook, step.id, choice.next)
                lines.append(f"   - {choice.label} -> {where}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
