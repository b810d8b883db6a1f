"""``hokusai watch``: wait until the request path is fixed — usable in a deploy script.

Runs the checks every ``--every`` seconds for at most ``--for`` seconds and shows a live
table (rich) on a terminal, or one line per tick otherwise. Exit 0 as soon as every watched
check has passed ``recover_after`` ticks in a row, 1 when the time runs out first, 2 for bad
usage.

Example::

    hokusai watch --scope mlflow-direct --every 15 --for 600 && ./promote.sh
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import IO, Any

from bot.cli.common import EXIT_OK, EXIT_PROBLEM, UsageExit, config_or_exit, echo
from bot.tls import client_context
from bot.watch.limits import (
    CLI_OPTIONS,
    DEFAULT_LIMITS,
    DurationError,
    WatchLimits,
    parse_duration,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch",
        help="Re-run the checks until they recover (exit 0) or time runs out (exit 1).",
        description="Exit 0: every watched check passed 3 ticks in a row; 1: time ran out "
        "first; 2: bad usage.",
    )
    p.add_argument("--env", help="environment from hokusai.yml (default: its default_env)")
    p.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="S",
        help="a layer, check id, route or ECS service; repeatable (default: the request path)",
    )
    p.add_argument("--every", default="30", help="seconds between ticks, 10-600 (default 30)")
    p.add_argument(
        "--for",
        dest="duration",
        default="1800",
        help="give up after this many seconds (at most 10800; default 1800)",
    )
    p.add_argument("--config", help="path of hokusai.yml (default: $HOKUSAI_CONFIG)")
    p.set_defaults(func=main)


def main(
    args: argparse.Namespace,
    stdout: IO[str] | None = None,
    *,
    limits: WatchLimits = DEFAULT_LIMITS,
    **_: Any,
) -> int:
    """Run the watch; ``limits`` is for tests (short ticks), not a user setting."""
    from bot.config import ConfigError
    from bot.diagnosis.runner import UnknownScope
    from bot.outbound import install_log_redaction

    out = stdout or sys.stdout
    logging.basicConfig(level=logging.ERROR)
    install_log_redaction()
    try:
        every = parse_duration(str(args.every), CLI_OPTIONS["every"])
        duration = parse_duration(str(args.duration), CLI_OPTIONS["for"])
        limits.check_every(every, CLI_OPTIONS)
        limits.check_for(duration, every, CLI_OPTIONS)
    except DurationError as exc:
        raise UsageExit(f"hokusai watch: {_plain(str(exc))}") from None
    config = config_or_exit(args.config)
    try:
        env = config.environment(args.env or _default_env())
    except ConfigError as exc:
        raise UsageExit(f"hokusai watch: {exc}") from None
    from bot.slack.app import remember_process_secrets

    remember_process_secrets(None, config)
    try:
        return asyncio.run(_watch(env, args.scope, every, duration, limits, out))
    except UnknownScope as exc:
        raise UsageExit(f"hokusai watch: {exc}") from None


async def _watch(
    env: Any, scopes: list[str], every: float, duration: float, limits: WatchLimits, out: IO[str]
) -> int:
    import httpx

    from bot.diagnosis.aws import AwsCaller, read_only_session
    from bot.diagnosis.runner import HTTP_TIMEOUT, Runner
    from bot.watch.engine import WatchEngine, select_instances
    from bot.watch.model import RECOVERED
    from bot.watch.reads import TickReads

    aws = TickReads(AwsCaller(read_only_session(env.region)), ttl=max(every / 2, 0.05))
    async with httpx.AsyncClient(
        timeout=HTTP_TIMEOUT, follow_redirects=False, verify=client_context()
    ) as http:
        runner = Runner(env, aws=aws, http=http)  # type: ignore[arg-type]
        check_ids = select_instances(runner, scopes)
        engine = WatchEngine(
            runner, check_ids, burst=limits.burst, recover_after=limits.recover_after
        )
        display = _Display(out, env.name, every)
        deadline = time.monotonic() + duration
        try:
            with display:
                while True:
                    started = time.monotonic()
                    tick = await engine.tick(spread=min(every / 2, 15.0))
                    engine.fold(tick)
                    display.show(engine)
                    if engine.headline.name == RECOVERED:
                        break
                    if time.monotonic() + every > deadline:
                        break
                    await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))
        finally:
            aws.close()
    display.finish(engine)
    return EXIT_OK if engine.headline.name == RECOVERED else EXIT_PROBLEM


class _Display:
    """A live rich table on a terminal; one plain line per tick anywhere else."""

    def __init__(self, out: IO[str], env: str, every: float) -> None:
        from rich.console import Console

        self.out = out
        self.env = env
        self.every = every
        self.tty = out.isatty()
        # Off a terminal (a CI log) the table is printed once, wide enough not to fold ids.
        width = None if self.tty else 200
        self.console = Console(file=out, force_terminal=self.tty, highlight=False, width=width)
        self._live: Any = None
        self.ticks = 0

    def __enter__(self) -> _Display:
        if self.tty:
            from rich.live import Live

            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def show(self, engine: Any) -> None:
        from bot.watch.render import plain_headline

        self.ticks += 1
        if self._live is not None:
            self._live.update(table(engine, self.env, self.ticks))
            return
        from bot.watch.model import strip

        cells = "  ".join(f"{t.id} {strip(t, 10)}" for t in engine.tracks.values())
        echo(f"tick {self.ticks}: {plain_headline(engine.headline)} | {cells}", self.out)

    def finish(self, engine: Any) -> None:
        from bot.watch.model import RECOVERED
        from bot.watch.render import plain_headline

        if not self.tty:
            self.console.print(table(engine, self.env, self.ticks))
        verdict = "recovered" if engine.headline.name == RECOVERED else "not recovered"
        echo(f"hokusai watch: {verdict} — {plain_headline(engine.headline)}", self.out)


def table(engine: Any, env: str, ticks: int) -> Any:
    """The watch as a rich table: a row per check with its strip, rate and failure times."""
    from rich.table import Table

    from bot.outbound import scrub
    from bot.watch.model import strip
    from bot.watch.render import answers_text, failure_times, plain_headline, rate_text

    grid = Table(title=scrub(f"{plain_headline(engine.headline)}  ({env}, tick {ticks})"))
    grid.add_column("check", no_wrap=True, overflow="fold")
    grid.add_column("results")
    grid.add_column("pass rate")
    grid.add_column("failures")
    grid.add_column("answers")
    for track in engine.tracks.values():
        grid.add_row(
            scrub(track.id),
            strip(track, 20),
            rate_text(track),
            failure_times(track),
            scrub(answers_text(track)),
        )
    return grid


def _plain(text: str) -> str:
    return text.replace("`", "")


def _default_env() -> str | None:
    import os

    return os.environ.get("HOKUSAI_ENV") or None
