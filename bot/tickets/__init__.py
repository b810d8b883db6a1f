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
        return JiraProvider(
            base_url=settings.jira_base_url,  # type: ignore[arg-type]
            email=settings.jira_email or "",
            api_token=settings.jira_api_token.get_secret_value(),  # type: ignore[union-attr]
            project=(incidents.jira_project if incidents else None) or "OPS",
        )
    return None


__all__ = [
    "JiraProvider",
    "LinearProvider",
    "Ticket",
    "TicketProvider",
    "TrackerError",
    "provider_from_settings",
]
