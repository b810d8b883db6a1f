"""``hokusai manifest``: the Slack app manifest with the request URLs filled in."""

from __future__ import annotations

import argparse
from typing import IO, Any

from bot.cli.common import EXIT_OK, UsageExit, echo


def add_parser(sub: Any) -> None:
    p = sub.add_parser("manifest", help="Print the Slack app manifest with URLs filled in.")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--url", help="https:// address Slack reaches the bot at")
    group.add_argument("--socket", action="store_true", help="a manifest for Socket Mode")
    p.set_defaults(func=cmd_manifest)


def cmd_manifest(args: argparse.Namespace, stdout: IO[str] | None = None, **_: Any) -> int:
    from bot.slack.manifest import render_manifest

    try:
        echo(render_manifest(args.url, socket_mode=args.socket), stdout)
    except ValueError as exc:
        raise UsageExit(f"hokusai manifest: {exc}") from None
    return EXIT_OK
