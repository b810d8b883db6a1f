"""``hokusai serve`` (HTTP mode under uvicorn) and ``hokusai socket`` (Socket Mode)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from bot.cli.common import EXIT_OK, UsageExit, app_or_exit, echo, settings_or_exit

# Seconds between Socket Mode pings: a silent socket is noticed, and replaced, within 10 s
# (aiohttp closes a socket whose pong is late; Slack's client also reconnects after 4 silent
# intervals).
SOCKET_PING_INTERVAL = 2.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="Run the bot in HTTP mode (POST /slack/events, GET /healthz).")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=None, help="port (default $PORT or 3000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("socket", help="Run the bot in Socket Mode (needs SLACK_APP_TOKEN).")
    p.set_defaults(func=cmd_socket)


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


def cmd_serve(args: argparse.Namespace, **_: Any) -> int:
    from bot.slack.server import serve_forever

    if args.port is None:
        try:
            port = _port(os.environ.get("PORT") or "3000")
        except argparse.ArgumentTypeError as exc:
            raise UsageExit(f"PORT is invalid: {exc}") from None
    else:
        port = args.port
    _can_listen(args.host, port)
    settings = settings_or_exit()
    app = app_or_exit(settings)

    def ready(bound: int) -> None:
        echo(f"hokusai: listening on http://{args.host}:{bound}/slack/events")

    async def run() -> None:
        await _tokens_or_exit(app, settings)
        await serve_forever(app, args.host, port, ready)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return EXIT_OK


async def _tokens_or_exit(app: Any, settings: Any, *, app_token: bool = False) -> None:
    """Stop with one line when Slack refuses a token (instead of retrying forever) or Jira
    says the project or issue type in hokusai.yml does not exist."""
    from bot.outbound import app_token_problem
    from bot.slack.app import services_of
    from bot.tickets import provider_from_settings

    services = services_of(app)
    problem = await services.outbound.token_problem()
    if problem:
        raise UsageExit(f"SLACK_BOT_TOKEN was refused by Slack ({problem}); make a new one")
    tracker = services.overrides.get("tracker") or provider_from_settings(
        services.settings, services.config
    )
    check = getattr(tracker, "settings_problem", None)
    problem = await check() if check is not None else None
    if problem:
        raise UsageExit(problem)
    if app_token:
        token = settings.slack_app_token.get_secret_value()
        problem = await app_token_problem(token, settings.slack_api_url)
        if problem:
            raise UsageExit(f"SLACK_APP_TOKEN was refused by Slack ({problem}); make a new one")


def cmd_socket(args: argparse.Namespace, **_: Any) -> int:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    settings = settings_or_exit()
    try:
        settings.require("slack_app_token")
    except Exception as exc:
        raise UsageExit(f"{exc} (Socket Mode needs an app-level token, xapp-...)") from None
    app = app_or_exit(settings)

    async def run() -> None:
        from slack_sdk.errors import SlackApiError

        from bot.outbound import FATAL_TOKEN_ERRORS
        from bot.slack.server import settle_process, start_scheduler

        await _tokens_or_exit(app, settings, app_token=True)
        settle_process()
        handler = AsyncSocketModeHandler(
            app, settings.slack_app_token.get_secret_value(), ping_interval=SOCKET_PING_INTERVAL
        )
        # A token revoked while running: Slack's client would log a traceback and retry forever.
        refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        issue_url = handler.client.issue_new_wss_url

        async def issue_new_wss_url(*args: Any, **kwargs: Any) -> str:
            try:
                return await issue_url(*args, **kwargs)
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                if error not in FATAL_TOKEN_ERRORS:
                    raise
                if not refused.done():
                    refused.set_result(error)
                # Park until the shutdown below cancels us: raising would only make the SDK
                # log a traceback and try again.
                await asyncio.Event().wait()
                raise

        handler.client.issue_new_wss_url = issue_new_wss_url  # type: ignore[method-assign]
        scheduler = start_scheduler(app)
        echo("hokusai: connecting in Socket Mode")
        running = asyncio.ensure_future(handler.start_async())
        # SIGTERM (a supervisor, a deploy): close the socket, hand the leases back, exit 0.
        stopping = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGTERM, lambda: stopping.done() or stopping.set_result(None)
        )
        try:
            await asyncio.wait({running, refused, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                return
            if refused.done():
                raise UsageExit(
                    f"SLACK_APP_TOKEN was refused by Slack ({refused.result()}); make a new one"
                )
            await running
        finally:
            running.cancel()
            await handler.close_async()
            await scheduler.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return EXIT_OK
