"""``hokusai demo``: the sandbox demo end to end (needs the ``demo`` extra)."""

from __future__ import annotations

import argparse
from typing import IO, Any


class _ScenarioHelp(str):
    """Help text that lists the scenarios only when printed (listing them imports moto)."""

    def __mod__(self, params: Any) -> str:
        from bot.sandbox.world import scenario_names

        return "which breakage to show: " + ", ".join(scenario_names())


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="Run the sandbox demo end to end.")
    p.add_argument("--scenario", default="seed-outage", help=_ScenarioHelp("which breakage"))
    p.add_argument("--keep", action="store_true", help="leave the sandbox running")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, stdout: IO[str] | None = None, **_: Any) -> int:
    try:
        from bot.sandbox.demo import run_demo
    except ImportError as exc:
        from bot.cli.common import UsageExit

        raise UsageExit(
            f"hokusai demo: the sandbox needs {exc.name}: pip install 'hokusai-incident-bot[demo]'"
        ) from None
    return run_demo(scenario=args.scenario, keep=args.keep, out=stdout)
