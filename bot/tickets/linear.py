"""Linear over its GraphQL API: ``issueCreate``, ``commentCreate`` and ``issue(id:)``.

Personal API keys go in the ``Authorization`` header as they are (no ``Bearer``). Linear reports
most failures as GraphQL ``errors`` with ``extensions.type`` (``authentication_error``,
``ratelimited``...), sometimes with HTTP 200, so both the status and the body are checked.
A rate limit (``RATELIMITED``, HTTP 400 or 429) is retried after the wait Linear names
(``Retry-After`` or ``X-RateLimit-Requests-Reset``), within the provider's ``RetryBudget``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from bot.tickets.base import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    RetryBudget,
    Ticket,
    TrackerError,
    error_for_status,
    outgoing,
    retry_after,
    retry_after_seconds,
    tracker_detail,
    transport_error,
    with_retries,
)
from bot.tls import client_context

# An issue identifier (team key, number: ``ENG-123``) or an issue's UUID.
ISSUE_IDENTIFIER = re.compile(r"^[A-Z][A-Z0-9_]{0,9}-[1-9][0-9]{0,9}$")
ISSUE_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_ISSUE_FIELDS = "id identifier title url state { name type }"
ISSUE_CREATE = (
    "mutation IssueCreate($input: IssueCreateInput!) { issueCreate(input: $input) "
    f"{{ success issue {{ {_ISSUE_FIELDS} }} }} }}"
)
COMMENT_CREATE = (
    "mutation CommentCreate($input: CommentCreateInput!) { commentCreate(input: $input) "
    "{ success comment { id } } }"
)
ISSUE_GET = f"query Issue($id: String!) {{ issue(id: $id) {{ {_ISSUE_FIELDS} }} }}"
TEAMS = "query Teams { teams(first: 1) { nodes { id key name } } }"

# Workflow state types Linear counts as finished work.
DONE_STATE_TYPES = frozenset({"completed", "canceled"})


class LinearProvider:
    """Tickets in Linear. ``team_id`` picks the team new issues go to (default: the first)."""

    name = "linear"

    def __init__(
        self,
        *,
        api_key: str,
        url: str = "https://api.linear.app/graphql",
        team_id: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryBudget = DEFAULT_RETRY,
    ) -> None:
        self._api_key = api_key
        self.url = url
        self.team_id = team_id
        self.timeout = timeout
        self.retry = retry

    def check_key(self, key: str) -> str:
        """``key`` as Linear spells it (``ENG-123`` or a UUID); ``TrackerError`` before any
        request when it is neither."""
        candidate = key.strip()
        if ISSUE_UUID.match(candidate.lower()):
            return candidate.lower()
        if ISSUE_IDENTIFIER.match(candidate.upper()):
            return candidate.upper()
        raise TrackerError(
            "invalid",
            f"`{tracker_detail(key)[:60]}` is not a Linear issue identifier (like ENG-123)",
            provider=self.name,
        )

    async def _call(self, query: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        return await with_retries(lambda: self._call_once(query, variables, what), self.retry)

    async def _call_once(self, query: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        idempotent = not query.lstrip().startswith("mutation")
        headers = {"Authorization": self._api_key, "Content-Type": "application/json"}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, verify=client_context()) as client:
                response = await client.post(
                    self.url, json={"query": query, "variables": variables}, headers=headers
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name, what) from None
        body: Any = {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            raise _graphql_error(errors, response, what, idempotent=idempotent)
        failure = error_for_status(response, self.name, what, idempotent=idempotent)
        if failure:
            raise failure
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise TrackerError(
                "unavailable", f"Linear sent an unreadable answer ({what})", provider=self.name
            )
        return data

    async def _team(self) -> str:
        if self.team_id:
            return self.team_id
        data = await self._call(TEAMS, {}, "find a team")
        nodes = (data.get("teams") or {}).get("nodes") or []
        if not nodes:
            raise TrackerError(
                "invalid",
                "Linear has no team to file issues in; set incidents.linear_team_id",
                provider=self.name,
            )
        self.team_id = nodes[0]["id"]
        return self.team_id

    async def create(self, title: str, body: str) -> Ticket:
        """File an issue; returns it with its identifier (``ENG-123``) as the key."""
        team = await self._team()
        data = await self._call(
            ISSUE_CREATE,
            {"input": {"teamId": team, "title": outgoing(title), "description": outgoing(body)}},
            "create an issue",
        )
        result = data.get("issueCreate") or {}
        if not result.get("success") or not result.get("issue"):
            raise TrackerError("invalid", "Linear did not create the issue", provider=self.name)
        return _ticket(result["issue"])

    async def comment(self, key: str, body: str) -> None:
        """Comment on the issue ``key`` (identifier or id)."""
        key = self.check_key(key)
        issue = await self._issue(key)
        data = await self._call(
            COMMENT_CREATE,
            {"input": {"issueId": issue["id"], "body": outgoing(body)}},
            f"comment on {key}",
        )
        if not (data.get("commentCreate") or {}).get("success"):
            raise TrackerError(
                "invalid", f"Linear did not add the comment to {key}", provider=self.name
            )

    async def get(self, key: str) -> Ticket:
        """The issue ``key`` with its workflow state; done when completed or canceled."""
        return _ticket(await self._issue(self.check_key(key)))

    async def _issue(self, key: str) -> dict[str, Any]:
        data = await self._call(ISSUE_GET, {"id": key}, f"read {key}")
        issue = data.get("issue")
        if not issue:
            raise TrackerError("not_found", f"Linear has no issue {key}", provider=self.name)
        return issue


def _ticket(issue: dict[str, Any]) -> Ticket:
    state = issue.get("state") or {}
    return Ticket(
        key=issue.get("identifier") or issue["id"],
        title=issue.get("title") or "",
        url=issue.get("url"),
        status=state.get("name"),
        done=(state.get("type") or "").lower() in DONE_STATE_TYPES,
        provider="linear",
    )


def _graphql_error(
    errors: list[dict[str, Any]], response: httpx.Response, what: str, *, idempotent: bool
) -> TrackerError:
    first = errors[0] if errors else {}
    ext = first.get("extensions") or {}
    kind_text = f"{ext.get('type', '')} {ext.get('code', '')}".lower()
    message = str(first.get("message") or "")
    if "authentication" in kind_text or "forbidden" in kind_text or response.status_code == 401:
        return TrackerError(
            "auth", f"Linear refused the API key while trying to {what}", provider="linear"
        )
    if "ratelimit" in kind_text or response.status_code == 429:
        return TrackerError(
            "rate_limited",
            f"Linear is rate limiting us; retry {retry_after(response)} ({what})",
            provider="linear",
            retryable=True,
            retry_after=retry_after_seconds(response),
        )
    if "not found" in message.lower() or "not_found" in kind_text:
        return TrackerError("not_found", f"Linear has no such issue ({what})", provider="linear")
    if response.status_code >= 500:
        return TrackerError(
            "unavailable",
            f"Linear answered {response.status_code} while trying to {what}: "
            + tracker_detail(message or "no detail"),
            provider="linear",
            retryable=response.status_code in (429, 503) or idempotent,
            retry_after=retry_after_seconds(response),
        )
    detail = tracker_detail(ext.get("userPresentableMessage") or message or "unknown error")
    return TrackerError("invalid", f"Linear could not {what}: {detail}", provider="linear")
