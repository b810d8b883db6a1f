"""What every ``hokusai`` subcommand shares: exit codes, the usage error, output, config loading.

Exit codes: 0 fine, 1 a problem was found, 2 bad usage or config (one line, no traceback).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from bot.errors import HokusaiError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


class UsageExit(HokusaiError):
    """Bad usage or config: print the one-line message and exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageExit(f"{self.prog}: {message} (see {self.prog} --help)")


def echo(text: str, stream=None) -> None:
    """Print through the redacting choke point (imported late: `hokusai --help` stays quick)."""
    from bot.outbound import echo as redacted_echo

    redacted_echo(text, stream)


def settings_or_exit():
    from bot.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise UsageExit(str(exc)) from None


def config_or_exit(path: str | None, settings=None):
    from bot.config import ConfigError, load_config

    try:
        return load_config(path or (settings or settings_or_exit()).hokusai_config)
    except ConfigError as exc:
        raise UsageExit(str(exc)) from None


def app_or_exit(settings):
    from bot.config import ConfigError
    from bot.incident.store import StoreError
    from bot.settings import SettingsError
    from bot.slack.app import build_app

    try:
        return build_app(settings)
    except (SettingsError, ConfigError) as exc:
        raise UsageExit(str(exc)) from None
    except StoreError as exc:
        from bot.incident.engine import display

        raise UsageExit(f"HOKUSAI_DB ({display(settings.hokusai_db)}): {exc}") from None


AddParser = Callable[[Any], None]
# "hokusai diagnose: ..." is prefixed already; "hokusai.yml: file not found" is not.
_HAS_PREFIX = re.compile(r"hokusai(?: [a-z][a-z-]*)*: ")


def one_line(message: str, argv: Sequence[str]) -> str:
    """The one CLI error form: ``hokusai <sub>: message``."""
    line = message.splitlines()[0] if message else "bad usage"
    if _HAS_PREFIX.match(line):
        return line
    sub = argv[0] if argv and not argv[0].startswith("-") else ""
    return f"hokusai {sub}: {line}" if sub else f"hokusai: {line}"


def run(
    add_parsers: Sequence[AddParser],
    argv: Sequence[str],
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    **context: Any,
) -> int:
    """Parse ``argv`` with the given subcommands' parsers and run the one it names.

    Every subcommand registers itself with ``add_parser(subparsers)`` and sets ``func``, which
    is called as ``func(args, stdout=..., stderr=..., **context)``. Errors meant for people
    become one line on stderr and their exit code; this is the only place that happens.
    """
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    parser = Parser(prog="hokusai", description="Hokusai incident bot.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for add_parser in add_parsers:
        add_parser(sub)
    try:
        args, extra = parser.parse_known_args(list(argv))
        if extra:
            # argparse reports these from the top parser; say which subcommand they were for.
            where = " ".join(w for w in (args.command, getattr(args, "action", None)) if w)
            raise UsageExit(
                f"hokusai {where}: unrecognized arguments: {' '.join(extra)}"
                f" (see hokusai {where} --help)"
            )
        return args.func(args, stdout=stdout, stderr=stderr, **context)
    except HokusaiError as exc:
        echo(one_line(exc.message, argv), stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
