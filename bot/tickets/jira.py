"""Jira Cloud over REST v3: create an issue, comment on it, read its status.

Basic auth with the account e-mail and an API token. Descriptions and comments are Atlassian
Document Format; a status whose category key is ``done`` counts as finished.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.tickets.base import (
    DEFAULT_TIMEOUT,
    Ticket,
    TrackerError,
    error_for_status,
    transport_error,
)


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


class JiraProvider:
    """Tickets in a Jira Cloud project (``project`` key, issue type ``issue_type``)."""

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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = (email, api_token)
        self.project = project
        self.issue_type = issue_type
        self.timeout = timeout

    async def _request(
        self, method: str, path: str, what: str, *, json: Any = None, params: Any = None
    ) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, auth=self._auth) as client:
                response = await client.request(
                    method,
                    f"{self.base_url}{path}",
                    json=json,
                    params=params,
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name, what) from None
        failure = error_for_status(response, self.name, what)
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
        await self._request(
            "POST",
            f"/rest/api/3/issue/{key}/comment",
            f"comment on {key}",
            json={"body": to_adf(body)},
        )

    async def get(self, key: str) -> Ticket:
        """The issue's summary and status; done when the status category is ``done``."""
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

    def browse_url(self, key: str) -> str:
        return f"{self.base_url}/browse/{key}"
