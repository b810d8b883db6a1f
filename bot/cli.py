"""The ``hokusai`` command line.

Exit codes: 0 fine, 1 a problem was found, 2 bad usage or config (one line, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


class UsageExit(Exception):
    """Bad usage or config: print the one-line message and exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageExit(f"{self.prog}: {message} (see {self.prog} --help)")


def echo(text: str, stream=None) -> None:
    """Print through the redacting choke point (imported late: `hokusai --help` stays quick)."""
    from bot.outbound import echo as redacted_echo

    redacted_echo(text, stream)


def _settings():
    from bot.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise UsageExit(str(exc)) from None


def _config(path: str | None, settings=None):
    from bot.config import ConfigError, load_config

    try:
        return load_config(path or (settings or _settings()).hokusai_config)
    except ConfigError as exc:
        raise UsageExit(str(exc)) from None


def _build_app(settings):
    from bot.app import build_app
    from bot.config import ConfigError
    from bot.incidents import StoreError
    from bot.settings import SettingsError

    try:
        return build_app(settings)
    except (SettingsError, ConfigError) as exc:
        raise UsageExit(str(exc)) from None
    except StoreError as exc:
        raise UsageExit(f"HOKUSAI_DB ({settings.hokusai_db}): {exc}") from None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _can_listen(host: str, port: int) -> None:
    """Fail with one line now rather than a uvicorn log line and exit 3 later."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise UsageExit(f"hokusai serve: cannot listen on {host}:{port}: {exc.strerror}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.server import serve_forever

    if args.port is None:
        try:
            port = _port(os.environ.get("PORT") or "3000")
        except argparse.ArgumentTypeError as exc:
            raise UsageExit(f"PORT is invalid: {exc}") from None
    else:
        port = args.port
    _can_listen(args.host, port)
    settings = _settings()
    app = _build_app(settings)

    def ready(bound: int) -> None:
        echo(f"hokusai: listening on http://{args.host}:{bound}/slack/events")

    try:
        asyncio.run(serve_forever(app, args.host, port, ready))
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_socket(args: argparse.Namespace) -> int:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    settings = _settings()
    try:
        settings.require("slack_app_token")
    except Exception as exc:
        raise UsageExit(f"{exc} (Socket Mode needs an app-level token, xapp-...)") from None
    app = _build_app(settings)

    async def run() -> None:
        from bot.server import start_scheduler

        handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
        scheduler = start_scheduler(app)
        echo("hokusai: connecting in Socket Mode")
        try:
            await handler.start_async()
        finally:
            await scheduler.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace) -> int:
    from bot.manifest import render_manifest

    try:
        echo(render_manifest(args.url, socket_mode=args.socket))
    except ValueError as exc:
        raise UsageExit(f"hokusai manifest: {exc}") from None
    return EXIT_OK


def cmd_redact(args: argparse.Namespace) -> int:
    from bot import redact_cli

    return redact_cli.main(args.files, sys.stdin, sys.stdout, sys.stderr)


def cmd_runbook(args: argparse.Namespace) -> int:
    from bot import runbook_cli

    return runbook_cli.main(args.rest, sys.stdout, sys.stderr)


def cmd_incident(args: argparse.Namespace) -> int:
    from bot import incident_cli

    return incident_cli.main(args.rest, _settings(), sys.stdout, sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo(scenario=args.scenario, keep=args.keep, out=sys.stdout)


def _scenario_names() -> list[str]:
    from bot.sandbox.world import scenario_names

    return scenario_names()


def build_parser(demo_help: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog="hokusai", description="Hokusai incident bot.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("serve", help="Run the bot in HTTP mode (POST /slack/events, GET /healthz).")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=None, help="port (default $PORT or 3000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("socket", help="Run the bot in Socket Mode (needs SLACK_APP_TOKEN).")
    p.set_defaults(func=cmd_socket)

    p = sub.add_parser("manifest", help="Print the Slack app manifest with URLs filled in.")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--url", help="https:// address Slack reaches the bot at")
    group.add_argument("--socket", action="store_true", help="a manifest for Socket Mode")
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser(
        "redact",
        help="Copy text with every secret replaced, line for line.",
        description="Reads FILEs (or stdin, or -) and writes them with every secret replaced.",
    )
    p.add_argument("files", nargs=argparse.REMAINDER, metavar="FILE", help="default: stdin")
    p.set_defaults(func=cmd_redact)

    p = sub.add_parser("runbook", help="runbook lint [PATH]... | runbook show NAME")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="lint|show ...")
    p.set_defaults(func=cmd_runbook)

    p = sub.add_parser("incident", help="incident list | show ID | export ID")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="list|show|export ...")
    p.set_defaults(func=cmd_incident)

    p = sub.add_parser("demo", help="Run the sandbox demo end to end.")
    p.add_argument(
        "--scenario",
        default="seed-outage",
        help="which breakage to show: " + ", ".join(_scenario_names())
        if demo_help
        else "which breakage to show (see hokusai demo --help)",
    )
    p.add_argument("--keep", action="store_true", help="leave the sandbox running")
    p.set_defaults(func=cmd_demo)

    from bot import diagnose_cli

    diagnose_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Listing the scenarios imports the sandbox (moto, boto3): only for `demo`'s own help.
    parser = build_parser(demo_help=bool(argv) and argv[0] == "demo")
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageExit as exc:
        echo(str(exc).splitlines()[0] if str(exc) else "hokusai: bad usage", sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
