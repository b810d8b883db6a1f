"""``hokusai diagnose`` on the command line: live progress, a readable report or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import IO, Any

from bot.cli.common import EXIT_OK, EXIT_PROBLEM, UsageExit, config_or_exit, echo


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="Run the read-only checks and name the first failing hop.",
        description="Exit 0: nothing failed; 1: a check failed or could not run; 2: bad usage.",
    )
    p.add_argument("--env", help="environment from hokusai.yml (default: its default_env)")
    p.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="S",
        help="a layer, check id, route or ECS service; repeatable (default: everything)",
    )
    p.add_argument("--config", help="path of hokusai.yml (default: $HOKUSAI_CONFIG)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--iam-policy",
        action="store_true",
        help="print the read-only IAM policy the checks need, and exit",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace, stdout: IO[str] | None = None, **_: Any) -> int:
    from bot.config import ConfigError
    from bot.diagnosis.checks.base import CheckOutcome
    from bot.diagnosis.render import terminal_report
    from bot.diagnosis.runner import Runner, UnknownScope
    from bot.outbound import install_log_redaction

    out = stdout or sys.stdout
    # The report says what failed and why; per-check warnings on stderr would repeat it.
    logging.basicConfig(level=logging.ERROR)
    install_log_redaction()  # what does get logged passes the same redactor as the report
    if args.iam_policy:
        import bot.diagnosis.checks
        from bot.diagnosis.iam import iam_policy

        echo(json.dumps(iam_policy(bot.diagnosis.checks.REGISTRY.values()), indent=2), out)
        return EXIT_OK
    config = config_or_exit(args.config)
    try:
        env = config.environment(args.env or _default_env())
    except ConfigError as exc:
        raise UsageExit(f"hokusai diagnose: {exc}") from None
    from bot.slack.app import remember_process_secrets

    remember_process_secrets(_settings_or_none(), config)
    runner = Runner(env)
    try:
        planned = runner.select(args.scope)
    except UnknownScope as exc:
        raise UsageExit(f"hokusai diagnose: {exc}") from None

    live = sys.stderr.isatty()
    if live:
        echo(f"Diagnosing {env.name} ({env.public.hostname}): {len(planned)} checks", sys.stderr)

    def progress(outcome: CheckOutcome) -> None:
        if live:
            symbol = outcome.status.symbol
            echo(f"  {symbol} {outcome.id:<40} {outcome.result.summary}", sys.stderr)

    report = asyncio.run(runner.run(args.scope, on_outcome=progress))
    if args.json:
        echo(json.dumps(report.to_json(), indent=2, default=str), out)
    else:
        echo(terminal_report(report), out)
    problem = any(o.status.is_problem for o in report.outcomes)
    return EXIT_PROBLEM if problem else EXIT_OK


def _default_env() -> str | None:
    import os

    return os.environ.get("HOKUSAI_ENV") or None


def _settings_or_none():
    """The settings when they load; the CLI needs none of them, only their secret values."""
    from bot.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError:
        return None
