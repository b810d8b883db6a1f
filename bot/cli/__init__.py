"""The ``hokusai`` command line: one module per subcommand, each with ``add_parser``.

Exit codes: 0 fine, 1 a problem was found, 2 bad usage or config (one line, no traceback).
The grammar mirrors Slack's: ``/hokusai runbook list`` is ``hokusai runbook list``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bot.cli import db, demo, diagnose, incident, manifest, redact, runbook, serve, watch
from bot.cli.common import Parser, run

# In the order `hokusai --help` lists them.
SUBCOMMANDS = (serve, manifest, redact, runbook, incident, demo, diagnose, db, watch)


def build_parser() -> Parser:
    """The whole grammar (the README's generated usage reads it)."""
    parser = Parser(prog="hokusai", description="Hokusai incident bot.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run([m.add_parser for m in SUBCOMMANDS], argv)


if __name__ == "__main__":
    sys.exit(main())
