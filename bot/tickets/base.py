"""The ticket tracker interface: create, comment, get. One small protocol, one module per tracker.

Every tracker call goes through :func:`with_retries`: a 429 or a 503 (and, for reads, any other
5xx) is tried again after the ``Retry-After`` the tracker asked for,
or after a short backoff, within a bounded budget (``RetryBudget``). When the tracker asks us
to wait longer than the budget allows, the error says when to try again instead of waiting.

Example::

    provider = provider_from_settings(settings, config)
    ticket = await provider.create("Registry 404s on /api/mlflow", body)
    await provider.comment(ticket.key, "Still failing after the fix")
    if (await provider.get(ticket.key)).done: ...
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_any

from bot.redaction import default_redactor

TrackerErrorKind = Literal["auth", "rate_limited", "timeout", "not_found", "unavailable", "invalid"]

# Every tracker call is bounded: connecting, reading and the whole request.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)

# What a tracker's own words may take up in a Slack reply.
MAX_DETAIL = 300

T = TypeVar("T")


@dataclass(frozen=True)
class RetryBudget:
    """How hard a tracker call tries before it tells the user.

    Args:
        attempts: tries in all, the first one included.
        total: seconds of waiting between tries, at most, for one call.
        longest_wait: a ``Retry-After`` longer than this is not waited for; the error says
            when to try again instead.
        backoff: the first wait when the tracker names none; it doubles each try.
    """

    attempts: int = 4
    total: float = 20.0
    longest_wait: float = 10.0
    backoff: float = 0.5


DEFAULT_RETRY = RetryBudget()


@dataclass(frozen=True)
class Ticket:
    """A ticket as its tracker reports it. ``done`` is the tracker's own notion of finished."""

    key: str
    title: str
    url: str | None
    status: str | None
    done: bool
    provider: str


class TrackerError(Exception):
    """A tracker call failed; ``kind`` says how, the message says it in one line.

    ``retryable`` marks a failure that may go away on its own (rate limits, a tracker that is
    briefly down); ``retry_after`` is the wait the tracker asked for, in seconds.
    """

    def __init__(
        self,
        kind: TrackerErrorKind,
        message: str,
        *,
        provider: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.provider = provider
        self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = 1


@runtime_checkable
class TicketProvider(Protocol):
    """What the bot needs from a tracker."""

    name: str

    def check_key(self, key: str) -> str: ...

    async def create(self, title: str, body: str) -> Ticket: ...

    async def comment(self, key: str, body: str) -> None: ...

    async def get(self, key: str) -> Ticket: ...


def outgoing(text: str) -> str:
    """Text leaving for a tracker: redacted, the bot's own mentions and links as plain text.
    Every provider passes titles, descriptions and comments through here, so no caller can
    forget to (the tracker is outside the process, like Slack)."""
    from bot.outbound import scrub

    return scrub(text)


def tracker_detail(text: object) -> str:
    """A tracker's own error text, fit for a Slack line: one line, redacted, bounded."""
    line = " ".join(str(text).split())
    line = default_redactor().redact_text(line)
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The wait a tracker asks for: ``Retry-After`` (seconds or an HTTP date), else Linear's
    ``X-RateLimit-Requests-Reset`` (epoch milliseconds); None when it names none."""
    now = time.time() if now is None else now
    value = (response.headers.get("retry-after") or "").strip()
    if value:
        if value.replace(".", "", 1).isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    reset = (response.headers.get("x-ratelimit-requests-reset") or "").strip()
    if reset.isdigit():
        return max(0.0, int(reset) / 1000 - now)
    return None


def retry_after(response: httpx.Response) -> str:
    """A human phrase for when to retry, from ``Retry-After`` (seconds or a date)."""
    seconds = retry_after_seconds(response)
    if seconds is None:
        return "later"
    raw = (response.headers.get("retry-after") or "").strip()
    if raw and not raw.replace(".", "", 1).isdigit():
        return f"after {raw}"
    return f"in {round(seconds)} s"


# Statuses that mean "not processed, try again": safe to repeat even for a create.
_RETRY_ANY = frozenset({429, 503})
# Statuses worth repeating only for a request that changes nothing (a read).
_RETRY_READS = frozenset({500, 502, 504})


def error_for_status(
    response: httpx.Response,
    provider: str,
    what: str,
    *,
    idempotent: bool = True,
    detail: str = "",
) -> TrackerError | None:
    """The ``TrackerError`` an HTTP answer means, or None when it is a success.

    ``detail`` is the tracker's own explanation (Jira's ``errors`` map), shown to the user.
    """
    code = response.status_code
    label = provider.capitalize()
    if code < 400:
        return None
    said = f": {detail}" if detail else ""
    if code in (401, 403):
        return TrackerError(
            "auth",
            f"{label} refused the credentials ({code}) while trying to {what}{said}",
            provider=provider,
        )
    if code == 404:
        return TrackerError("not_found", f"{label} has no such ticket ({what})", provider=provider)
    if code == 429:
        return TrackerError(
            "rate_limited",
            f"{label} is rate limiting us; retry {retry_after(response)} ({what})",
            provider=provider,
            retryable=True,
            retry_after=retry_after_seconds(response),
        )
    if code in (400, 409, 422):
        return TrackerError(
            "invalid", f"{label} rejected the request to {what} ({code}){said}", provider=provider
        )
    retryable = code in _RETRY_ANY or (idempotent and code in _RETRY_READS)
    return TrackerError(
        "unavailable",
        f"{label} answered {code} while trying to {what}{said}",
        provider=provider,
        retryable=retryable,
        retry_after=retry_after_seconds(response),
    )


def transport_error(exc: httpx.HTTPError, provider: str, what: str) -> TrackerError:
    """Map a network failure to a ``TrackerError`` naming the tracker and the action.

    Not retried: a tracker that does not answer within the timeout would keep the person
    waiting several timeouts long; they hear about it at once instead.
    """
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


async def with_retries(call: Callable[[], Awaitable[T]], budget: RetryBudget = DEFAULT_RETRY) -> T:
    """Run ``call`` (one tracker request), trying again on a retryable ``TrackerError``.

    Waits what the tracker asked (``Retry-After``), else backs off exponentially with jitter;
    gives up after ``budget.attempts`` tries, when the waits would pass ``budget.total``, or at
    once when the tracker asks for more than ``budget.longest_wait``. The last error is raised,
    saying how many tries were made.
    """

    def wait(state: Any) -> float:
        exc = state.outcome.exception()
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            return float(asked)
        base = budget.backoff * 2 ** (state.attempt_number - 1)
        return base + random.uniform(0, base / 4)

    def asks_too_much(state: Any) -> bool:
        return state.upcoming_sleep > budget.longest_wait

    def out_of_budget(state: Any) -> bool:
        return state.idle_for + state.upcoming_sleep > budget.total

    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda e: isinstance(e, TrackerError) and e.retryable),
        wait=wait,
        stop=stop_any(stop_after_attempt(budget.attempts), asks_too_much, out_of_budget),
        reraise=True,
    )
    tries = 0
    try:
        async for attempt in retrying:
            with attempt:
                tries += 1
                return await call()
    except TrackerError as exc:
        exc.attempts = tries
        if tries > 1:
            exc.args = (f"{exc.args[0]} (tried {tries} times)",)
        raise
    raise AssertionError("unreachable: tenacity either returns or raises")
