"""Ticket trackers behind one interface (``create``, ``comment``, ``get``): Linear and Jira."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.tickets.base import Ticket, TicketProvider, TrackerError
from bot.tickets.jira import JiraProvider
from bot.tickets.linear import LinearProvider

if TYPE_CHECKING:
    from bot.config import HokusaiConfig
    from bot.settings import Settings


def provider_from_settings(
    settings: Settings, config: HokusaiConfig | None = None
) -> TicketProvider | None:
    """The tracker the settings configure, or None when none is.

    ``incidents.tracker`` in hokusai.yml picks one explicitly; otherwise Linear when
    ``LINEAR_API_KEY`` is set, else Jira when ``JIRA_BASE_URL`` and ``JIRA_API_TOKEN`` are.
    """
    incidents = config.incidents if config else None
    choice = (incidents.tracker or "").lower() if incidents else ""
    linear_ready = settings.linear_api_key is not None
    jira_ready = bool(settings.jira_base_url and settings.jira_api_token)
    if choice == "linear" or (not choice and linear_ready):
        if not linear_ready:
            return None
        return LinearProvider(
            api_key=settings.linear_api_key.get_secret_value(),  # type: ignore[union-attr]
            url=settings.linear_api_url,
            team_id=incidents.linear_team_id if incidents else None,
        )
    if choice == "jira" or (not choice and jira_ready):
        if not jira_ready:
            return None
        if not (incidents and incidents.jira_project):
            return None  # tracker_problem() says so at start-up
        return JiraProvider(
            base_url=settings.jira_base_url,  # type: ignore[arg-type]
            email=settings.jira_email or "",
            api_token=settings.jira_api_token.get_secret_value(),  # type: ignore[union-attr]
            project=incidents.jira_project,
            issue_type=incidents.jira_issue_type,
        )
    return None


def tracker_problem(settings: Settings, config: HokusaiConfig) -> str | None:
    """What stops the configured tracker from working, in one line; None when nothing does.

    Checked at start-up, so a half-configured tracker stops the bot instead of failing (or
    filing into a guessed project) in the middle of an incident.
    """
    incidents = config.incidents
    linear_ready = settings.linear_api_key is not None
    jira_vars = {
        "JIRA_BASE_URL": settings.jira_base_url,
        "JIRA_EMAIL": settings.jira_email,
        "JIRA_API_TOKEN": settings.jira_api_token,
    }
    jira_wanted = incidents.tracker == "jira" or (
        incidents.tracker is None and not linear_ready and settings.jira_base_url is not None
    )
    if incidents.tracker == "linear" and not linear_ready:
        return "incidents.tracker is linear but LINEAR_API_KEY is not set"
    if jira_wanted:
        missing = [name for name, value in jira_vars.items() if not value]
        if missing:
            return f"Jira is the tracker but {', '.join(missing)} is not set"
        if not incidents.jira_project:
            return (
                "incidents.jira_project is not set: Jira needs the project key new tickets go "
                "to (like OPS), in hokusai.yml"
            )
    return None


__all__ = [
    "JiraProvider",
    "LinearProvider",
    "Ticket",
    "TicketProvider",
    "TrackerError",
    "provider_from_settings",
    "tracker_problem",
]
