"""Builds the Slack Bolt app. No app exists at import time: call ``build_app``.

Example::

    settings = load_settings()
    app = build_app(settings)            # AsyncApp with /hokusai and its buttons
"""

from __future__ import annotations

import logging
import os
from typing import Any

from slack_bolt.async_app import AsyncApp

import commands
from bot.config import HokusaiConfig, load_config
from bot.outbound import Outbound, install_log_redaction
from bot.redaction import default_redactor
from bot.settings import Settings, SettingsError
from bot.slack.services import Services
from bot.tickets import tracker_problem

log = logging.getLogger(__name__)

# Fields of a request that may be logged; never the raw body (tokens end up in logs).
_LOGGABLE = ("type", "command", "team_id", "channel_id", "user_id", "api_app_id")


def remember_process_secrets(settings: Settings | None, config: HokusaiConfig | None) -> None:
    """Teach the redactor the exact secrets this process holds: its tokens and probe keys."""
    redactor = default_redactor()
    if settings is not None:
        redactor.add_known(*settings.secret_values())
    for env in config.environments.values() if config else ():
        if env.auth and os.environ.get(env.auth.api_key_env):
            redactor.add_known(os.environ[env.auth.api_key_env])


def build_app(
    settings: Settings,
    *,
    config: HokusaiConfig | None = None,
    **overrides: Any,
) -> AsyncApp:
    """Build the AsyncApp with every listener registered.

    Args:
        settings: validated settings; SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN are required.
        config: hokusai.yml, loaded from ``settings.hokusai_config`` when not given.
        overrides: objects the sandbox and tests hand to checks (``aws``, ``http``, ...).
    """
    settings.require("slack_signing_secret", "slack_bot_token")
    config = config or load_config(settings.hokusai_config)
    problem = tracker_problem(settings, config)
    if problem:
        raise SettingsError(problem)
    remember_process_secrets(settings, config)
    install_log_redaction(json_lines=settings.hokusai_log_format == "json")

    outbound = Outbound.for_token(
        settings.slack_bot_token.get_secret_value(),  # type: ignore[union-attr]
        settings.slack_api_url,
    )
    services = Services(settings, config, outbound)
    services.overrides.update(overrides)
    # Open and migrate the incident log now: a bad HOKUSAI_DB stops start-up, not a command.
    services.store()
    # Bolt reads SLACK_BOT_TOKEN itself and warns that our client makes it unused; it is.
    logging.getLogger("slack_bolt.AsyncApp").addFilter(_UnusedTokenWarning())
    # Bolt logs a refused request with its whole body; the HTTP gate logs size and reason only.
    logging.getLogger("slack_bolt.AsyncRequestVerification").addFilter(_RefusedRequestBody())
    app = AsyncApp(
        client=outbound.client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),  # type: ignore[union-attr]
        raise_error_for_unhandled_request=False,
    )
    app.hokusai_services = services  # type: ignore[attr-defined]
    commands.register(app, services)
    _register_home(app, services)

    @app.error
    async def _on_error(error: Exception, body: dict[str, Any]) -> None:
        fields = {k: body.get(k) for k in _LOGGABLE if isinstance(body, dict) and k in body}
        log.error("unhandled %s in listener %s", type(error).__name__, fields)

    return app


class _UnusedTokenWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


class _RefusedRequestBody(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Invalid request signature")


def services_of(app: AsyncApp) -> Services:
    return app.hokusai_services  # type: ignore[attr-defined]


def _register_home(app: AsyncApp, services: Services) -> None:
    from bot.slack import home

    @app.event("app_home_opened")
    async def _home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        view = await home.build_home_view(services, event["user"])
        await services.outbound.publish_home(event["user"], view)
