"""The ticket tracker interface: create, comment, get. One small protocol, one module per tracker.

Example::

    provider = provider_from_settings(settings, config)
    ticket = await provider.create("Registry 404s on /api/mlflow", body)
    await provider.comment(ticket.key, "Still failing after the fix")
    if (await provider.get(ticket.key)).done: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import httpx

from bot.errors import HokusaiError

TrackerErrorKind = Literal["auth", "rate_limited", "timeout", "not_found", "unavailable", "invalid"]

# Every tracker call is bounded: connecting, reading and the whole request.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class Ticket:
    """A ticket as its tracker reports it. ``done`` is the tracker's own notion of finished."""

    key: str
    title: str
    url: str | None
    status: str | None
    done: bool
    provider: str


class TrackerError(HokusaiError):
    """A tracker call failed; ``kind`` says how, the message says it in one line."""

    def __init__(self, kind: TrackerErrorKind, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.provider = provider


@runtime_checkable
class TicketProvider(Protocol):
    """What the bot needs from a tracker."""

    name: str

    async def create(self, title: str, body: str) -> Ticket: ...

    async def comment(self, key: str, body: str) -> None: ...

    async def get(self, key: str) -> Ticket: ...


def retry_after(response: httpx.Response) -> str:
    """A human phrase for when to retry, from ``Retry-After`` (seconds or a date)."""
    value = response.headers.get("retry-after")
    if not value:
        return "later"
    return f"in {value} s" if value.strip().isdigit() else f"after {value}"


def error_for_status(response: httpx.Response, provider: str, what: str) -> TrackerError | None:
    """The ``TrackerError`` an HTTP answer means, or None when it is a success."""
    code = response.status_code
    label = provider.capitalize()
    if code < 400:
        return None
    if code in (401, 403):
        return TrackerError(
            "auth",
            f"{label} refused the credentials ({code}) while trying to {what}",
            provider=provider,
        )
    if code == 404:
        return TrackerError("not_found", f"{label} has no such ticket ({what})", provider=provider)
    if code == 429:
        return TrackerError(
            "rate_limited",
            f"{label} is rate limiting us; retry {retry_after(response)} ({what})",
            provider=provider,
        )
    if code in (400, 422):
        return TrackerError(
            "invalid", f"{label} rejected the request to {what} ({code})", provider=provider
        )
    return TrackerError(
        "unavailable", f"{label} answered {code} while trying to {what}", provider=provider
    )


def transport_error(exc: httpx.HTTPError, provider: str, what: str) -> TrackerError:
    """Map a network failure to a ``TrackerError`` naming the tracker and the action."""
    label = provider.capitalize()
    if isinstance(exc, httpx.TimeoutException):
        return TrackerError(
            "timeout", f"{label} did not answer in time ({what})", provider=provider
        )
    return TrackerError(
        "unavailable",
        f"{label} could not be reached ({what}): {type(exc).__name__}",
        provider=provider,
    )
