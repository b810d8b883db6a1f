"""Jira Cloud over REST v3: create an issue, comment on it, read its status.

Basic auth with the account e-mail and an API token. Descriptions and comments are Atlassian
Document Format; a status whose category key is ``done`` counts as finished. A 400's
``errorMessages`` and ``errors`` map (``{"issuetype": "Specify a valid issue type"}``) are what
the user is told, redacted. Issue keys are checked (``OPS-12``) before any request is built.
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
    tracker_detail,
    transport_error,
    with_retries,
)
from bot.tls import client_context

# A project key (a letter, then letters, digits or _) and the issue's number.
PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,254}$")
ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,254}-[1-9][0-9]{0,17}$")


def to_adf(text: str) -> dict[str, Any]:
    """Plain text to an ADF document: paragraphs on blank lines, ``` fences as code blocks."""
    content: list[dict[str, Any]] = []
    paragraph: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            nodes: list[dict[str, Any]] = []
            for i, line in enumerate(paragraph):
                if i:
                    nodes.append({"type": "hardBreak"})
                if line:
                    nodes.append({"type": "text", "text": line})
            content.append({"type": "paragraph", "content": nodes})
            paragraph.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            if code is None:
                flush()
                code = []
            else:
                block = {"type": "codeBlock", "content": []}
                if code:
                    block["content"] = [{"type": "text", "text": "\n".join(code)}]
                content.append(block)
                code = None
        elif code is not None:
            code.append(line)
        elif not line.strip():
            flush()
        else:
            paragraph.append(line)
    if code:
        content.append(
            {"type": "codeBlock", "content": [{"type": "text", "text": "\n".join(code)}]}
        )
    flush()
    return {"type": "doc", "version": 1, "content": content}


def jira_errors(response: httpx.Response) -> str:
    """Jira's own explanation of a refusal: ``errorMessages`` then the ``errors`` map."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {message}" for field, message in errors.items()]
    return tracker_detail("; ".join(parts)) if parts else ""


class JiraProvider:
    """Tickets in a Jira Cloud project (``project`` key, issue type ``issue_type``).

    Both come from hokusai.yml (``incidents.jira_project``, ``incidents.jira_issue_type``).
    """

    name = "jira"

    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        api_token: str,
        project: str,
        issue_type: str = "Task",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryBudget = DEFAULT_RETRY,
    ) -> None:
        if not PROJECT_KEY.match(project):
            raise ValueError(f"{project!r} is not a Jira project key (OPS, PLAT2)")
        self.base_url = base_url.rstrip("/")
        self._auth = (email, api_token)
        self.project = project
        self.issue_type = issue_type
        self.timeout = timeout
        self.retry = retry

    def check_key(self, key: str) -> str:
        """``key`` as Jira spells it (``OPS-12``); ``TrackerError`` before any request if it
        is not an issue key (``../../myself`` never reaches the URL)."""
        candidate = key.strip().upper()
        if not ISSUE_KEY.match(candidate):
            raise TrackerError(
                "invalid",
                f"`{tracker_detail(key)[:60]}` is not a Jira issue key (like {self.project}-12)",
                provider=self.name,
            )
        return candidate

    async def _request(
        self, method: str, path: str, what: str, *, json: Any = None, params: Any = None
    ) -> dict[str, Any]:
        return await with_retries(
            lambda: self._request_once(method, path, what, json=json, params=params), self.retry
        )

    async def _request_once(
        self, method: str, path: str, what: str, *, json: Any = None, params: Any = None
    ) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout, auth=self._auth, verify=client_context()
            ) as client:
                response = await client.request(
                    method,
                    f"{self.base_url}{path}",
                    json=json,
                    params=params,
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name, what) from None
        failure = error_for_status(
            response,
            self.name,
            what,
            idempotent=method == "GET",
            detail=jira_errors(response) if response.status_code >= 400 else "",
        )
        if failure:
            raise failure
        try:
            body = response.json() if response.content else {}
        except ValueError:
            raise TrackerError(
                "unavailable", f"Jira sent an unreadable answer ({what})", provider=self.name
            ) from None
        return body if isinstance(body, dict) else {}

    async def create(self, title: str, body: str) -> Ticket:
        """Create an issue in the project; its key (``OPS-12``) is returned."""
        title, body = outgoing(title), outgoing(body)
        fields = {
            "project": {"key": self.project},
            "summary": title[:250],
            "issuetype": {"name": self.issue_type},
            "description": to_adf(body),
        }
        created = await self._request(
            "POST", "/rest/api/3/issue", "create an issue", json={"fields": fields}
        )
        key = created.get("key")
        if not key:
            raise TrackerError(
                "invalid", "Jira did not return the new issue's key", provider=self.name
            )
        return Ticket(
            key=key,
            title=title,
            url=self.browse_url(key),
            status=None,
            done=False,
            provider=self.name,
        )

    async def comment(self, key: str, body: str) -> None:
        """Add a comment to ``key``."""
        key = self.check_key(key)
        await self._request(
            "POST",
            f"/rest/api/3/issue/{key}/comment",
            f"comment on {key}",
            json={"body": to_adf(outgoing(body))},
        )

    async def get(self, key: str) -> Ticket:
        """The issue's summary and status; done when the status category is ``done``."""
        key = self.check_key(key)
        issue = await self._request(
            "GET", f"/rest/api/3/issue/{key}", f"read {key}", params={"fields": "summary,status"}
        )
        fields = issue.get("fields") or {}
        status = fields.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key")
        return Ticket(
            key=issue.get("key") or key,
            title=fields.get("summary") or "",
            url=self.browse_url(issue.get("key") or key),
            status=status.get("name"),
            done=category == "done",
            provider=self.name,
        )

    async def settings_problem(self) -> str | None:
        """Whether ``project`` exists and has ``issue_type``, asked once at start-up; a line
        saying what is wrong, or None (also when Jira cannot be reached: it may come back)."""
        try:
            project = await self._request(
                "GET", f"/rest/api/3/project/{self.project}", f"read project {self.project}"
            )
        except TrackerError as exc:
            if exc.kind == "not_found":
                return (
                    f"incidents.jira_project: Jira has no project {self.project} "
                    "(or JIRA_EMAIL cannot see it)"
                )
            if exc.kind == "auth":
                return f"JIRA_EMAIL / JIRA_API_TOKEN: {exc}"
            return None
        types = [t.get("name") for t in project.get("issueTypes") or [] if isinstance(t, dict)]
        if types and self.issue_type not in types:
            return (
                f"incidents.jira_issue_type: {self.issue_type!r} is not an issue type of "
                f"{self.project} ({', '.join(str(t) for t in types)})"
            )
        return None

    def browse_url(self, key: str) -> str:
        return f"{self.base_url}/browse/{key}"
