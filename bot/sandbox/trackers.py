"""A loopback stand-in for Linear (GraphQL) and Jira Cloud (REST v3), for tests and the demo.

It answers exactly the requests ``bot.tickets`` sends, keeps issues and comments in memory,
and lets a scenario mark an issue done or make the next call fail (401, 429, 500, slow).
It fails the way the real services document: Jira answers a rate limit with 429,
``Retry-After`` and ``X-RateLimit-Reset``, and a bad create with 400 and an ``errors`` map
naming the field; Linear answers a rate limit with HTTP 400, ``RATELIMITED`` and
``X-RateLimit-Requests-Reset`` (epoch milliseconds). Jira refuses comments on an issue whose
workflow status is not editable (``lock_done``), as a closed-issue workflow does.

Example::

    with TrackerStandIn() as trackers:
        provider = LinearProvider(api_key=key, url=trackers.linear_url)
        ticket = await provider.create("Registry 404s", "body")
        trackers.mark_done(ticket.key)
        assert (await provider.get(ticket.key)).done
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Fault", "StoredIssue", "TrackerStandIn"]

_JIRA_ISSUE = re.compile(r"^/rest/api/3/issue/([A-Za-z0-9-]+)(/comment)?$")


@dataclass
class StoredIssue:
    """An issue as the stand-in keeps it."""

    tracker: str
    key: str
    id: str
    title: str
    description: Any
    status: str = "Todo"
    done: bool = False
    comments: list[Any] = field(default_factory=list)


@dataclass
class Fault:
    """What the next matching request gets instead of an answer."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class TrackerStandIn:
    """Both trackers on one loopback port (``linear_url``, ``jira_url``).

    Args:
        linear_key: the Authorization value Linear accepts (None: any non-empty one).
        jira_auth: (email, token) Jira accepts (None: any Basic credentials).
        linear_team: the key of Linear issues (``HOK-1``); jira_project likewise (``OPS-1``).
    """

    def __init__(
        self,
        *,
        linear_key: str | None = None,
        jira_auth: tuple[str, str] | None = None,
        linear_team: str = "HOK",
        jira_project: str = "OPS",
        jira_issue_types: tuple[str, ...] = ("Task", "Bug", "Incident"),
    ) -> None:
        self.linear_key = linear_key
        self.jira_auth = jira_auth
        self.linear_team = linear_team
        self.jira_project = jira_project
        self.jira_issue_types = jira_issue_types
        # Jira: comments on a Done issue are refused (a workflow with jira.issue.editable=false).
        self.lock_done = False
        self.issues: dict[str, StoredIssue] = {}
        self.requests: list[tuple[str, str]] = []
        self._faults: dict[str, list[Fault]] = {"linear": [], "jira": []}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TrackerStandIn:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="tracker-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TrackerStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def linear_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def jira_url(self) -> str:
        return self.base_url

    # -- scenario controls -------------------------------------------------------------------

    def add_issue(self, tracker: str, title: str, *, done: bool = False) -> StoredIssue:
        """File an issue directly (as if someone had opened it in the tracker)."""
        return self._new_issue(tracker, title, None, done=done)

    def mark_done(self, key: str, status: str | None = None) -> None:
        """Move an issue to a finished state (Linear ``Done``/completed, Jira ``Done``)."""
        issue = self.issues[key]
        issue.done = True
        issue.status = status or "Done"

    def reopen(self, key: str) -> None:
        issue = self.issues[key]
        issue.done = False
        issue.status = "In Progress"

    def fail_next(
        self,
        tracker: str,
        status: int,
        *,
        retry_after: int | None = None,
        delay: float = 0.0,
        body: Any = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` requests to ``tracker`` answer ``status`` (and sleep
        ``delay`` first)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        for _ in range(times):
            self._faults[tracker].append(Fault(status, body=body, headers=headers, delay=delay))

    def rate_limit_next(self, tracker: str, *, retry_after: int = 1, times: int = 1) -> None:
        """The next ``times`` requests are rate limited the way the tracker does it."""
        for _ in range(times):
            reset = time.time() + retry_after
            if tracker == "jira":
                stamp = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(reset))
                fault = Fault(
                    429,
                    body={"errorMessages": ["Rate limit exceeded."], "errors": {}},
                    headers={
                        "Retry-After": str(retry_after),
                        "X-RateLimit-Reset": stamp,
                        "RateLimit-Reason": "jira-burst-based",
                    },
                )
            else:
                fault = Fault(
                    400,
                    body={
                        "errors": [
                            {
                                "message": "Rate limit exceeded",
                                "extensions": {
                                    "code": "RATELIMITED",
                                    "type": "ratelimited",
                                    "userPresentableMessage": "Too many requests.",
                                },
                            }
                        ]
                    },
                    headers={"X-RateLimit-Requests-Reset": str(int(reset * 1000))},
                )
            self._faults[tracker].append(fault)

    def requests_to(self, tracker: str) -> list[tuple[str, str]]:
        """(method, path) of every request ``tracker`` received, faults included."""
        return [
            r
            for r in self.requests
            if (r[1].split("?", 1)[0] == "/graphql") == (tracker == "linear")
        ]

    def comments(self, key: str) -> list[str]:
        """Comment texts on an issue (ADF flattened to text for Jira)."""
        return [_flatten(c) for c in self.issues[key].comments]

    # -- internals ---------------------------------------------------------------------------

    def _new_issue(
        self, tracker: str, title: str, description: Any, *, done: bool = False
    ) -> StoredIssue:
        with self._lock:
            prefix = self.linear_team if tracker == "linear" else self.jira_project
            key = f"{prefix}-{next(self._counter)}"
            issue = StoredIssue(
                tracker,
                key,
                str(uuid.uuid4()),
                title,
                description,
                status="Done" if done else "Todo",
                done=done,
            )
            self.issues[key] = issue
        return issue

    def _find(self, tracker: str, key: str) -> StoredIssue | None:
        issue = self.issues.get(key) or next((i for i in self.issues.values() if i.id == key), None)
        return issue if issue and issue.tracker == tracker else None

    def _take_fault(self, tracker: str) -> Fault | None:
        with self._lock:
            return self._faults[tracker].pop(0) if self._faults[tracker] else None

    def linear(self, headers: Any, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        auth = headers.get("Authorization") or ""
        if not auth or (self.linear_key is not None and auth != self.linear_key):
            return (
                400,
                {
                    "errors": [
                        {
                            "message": "Authentication required, not authenticated",
                            "extensions": {
                                "type": "authentication error",
                                "code": "AUTHENTICATION_ERROR",
                            },
                        }
                    ]
                },
                {},
            )
        query = body.get("query") or ""
        variables = body.get("variables") or {}
        if "issueCreate" in query:
            data = variables.get("input") or {}
            issue = self._new_issue("linear", data.get("title", ""), data.get("description"))
            return (
                200,
                {"data": {"issueCreate": {"success": True, "issue": self._linear_issue(issue)}}},
                {},
            )
        if "commentCreate" in query:
            data = variables.get("input") or {}
            issue = self._find("linear", data.get("issueId", ""))
            if not issue:
                return 200, _linear_not_found(), {}
            issue.comments.append(data.get("body"))
            return (
                200,
                {
                    "data": {
                        "commentCreate": {"success": True, "comment": {"id": str(uuid.uuid4())}}
                    }
                },
                {},
            )
        if "teams" in query:
            return (
                200,
                {
                    "data": {
                        "teams": {
                            "nodes": [
                                {
                                    "id": "team-" + self.linear_team.lower(),
                                    "key": self.linear_team,
                                    "name": "Hokusai",
                                }
                            ]
                        }
                    }
                },
                {},
            )
        if "issue(" in query:
            issue = self._find("linear", variables.get("id", ""))
            if not issue:
                return 200, _linear_not_found(), {}
            return 200, {"data": {"issue": self._linear_issue(issue)}}, {}
        return 400, {"errors": [{"message": "Unknown operation"}]}, {}

    def _linear_issue(self, issue: StoredIssue) -> dict[str, Any]:
        return {
            "id": issue.id,
            "identifier": issue.key,
            "title": issue.title,
            "url": f"{self.base_url}/linear/issue/{issue.key}",
            "state": {"name": issue.status, "type": "completed" if issue.done else "unstarted"},
        }

    def jira(
        self, method: str, path: str, headers: Any, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not self._jira_authorised(headers.get("Authorization") or ""):
            return 401, {"errorMessages": ["Client must be authenticated"]}, {}
        if method == "POST" and path == "/rest/api/3/issue":
            fields = (body or {}).get("fields") or {}
            problems = self._jira_create_problems(fields)
            if problems:
                return 400, {"errorMessages": [], "errors": problems}, {}
            issue = self._new_issue("jira", fields.get("summary", ""), fields.get("description"))
            return (
                201,
                {
                    "id": issue.id,
                    "key": issue.key,
                    "self": f"{self.base_url}/rest/api/3/issue/{issue.id}",
                },
                {},
            )
        if method == "GET" and path.startswith("/rest/api/3/project/"):
            key = path.rsplit("/", 1)[1]
            if key != self.jira_project:
                return 404, {"errorMessages": [f"No project could be found with key '{key}'."]}, {}
            types = [{"id": str(i), "name": t} for i, t in enumerate(self.jira_issue_types, 1)]
            return 200, {"key": key, "name": key, "issueTypes": types}, {}
        match = _JIRA_ISSUE.match(path)
        if not match:
            return 404, {"errorMessages": ["Not found"]}, {}
        issue = self._find("jira", match.group(1))
        if not issue:
            return (
                404,
                {"errorMessages": ["Issue does not exist or you do not have permission"]},
                {},
            )
        if match.group(2) and method == "POST":
            if self.lock_done and issue.done:
                return (
                    400,
                    {
                        "errorMessages": [
                            "You cannot comment on an issue in a status that is not editable."
                        ],
                        "errors": {},
                    },
                    {},
                )
            issue.comments.append((body or {}).get("body"))
            return 201, {"id": str(len(issue.comments))}, {}
        if method == "GET":
            category = "done" if issue.done else "new"
            return (
                200,
                {
                    "id": issue.id,
                    "key": issue.key,
                    "fields": {
                        "summary": issue.title,
                        "status": {"name": issue.status, "statusCategory": {"key": category}},
                    },
                },
                {},
            )
        return 405, {"errorMessages": ["Method not allowed"]}, {}

    def _jira_create_problems(self, fields: dict[str, Any]) -> dict[str, str]:
        """What Jira's create-issue answers with 400, field by field."""
        problems: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project != self.jira_project:
            problems["project"] = "valid project is required"
        issue_type = (fields.get("issuetype") or {}).get("name")
        if issue_type not in self.jira_issue_types:
            problems["issuetype"] = "Specify a valid issue type"
        if not fields.get("summary"):
            problems["summary"] = "You must specify a summary of the issue."
        elif len(fields["summary"]) > 255:
            problems["summary"] = "Summary must be less than 255 characters."
        return problems

    def _jira_authorised(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        if self.jira_auth is None:
            return True
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return False
        return decoded == f"{self.jira_auth[0]}:{self.jira_auth[1]}"


def _linear_not_found() -> dict[str, Any]:
    return {
        "data": None,
        "errors": [
            {
                "message": "Entity not found: Issue",
                "extensions": {"type": "invalid input", "userPresentableMessage": "Not found"},
            }
        ],
    }


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("type") == "text":
            return value.get("text", "")
        parts = [_flatten(v) for v in value.get("content") or []]
        joiner = "\n" if value.get("type") in ("doc", "codeBlock") else ""
        return joiner.join(parts) if value.get("type") != "hardBreak" else "\n"
    return ""


def _handler_for(standin: TrackerStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            return

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            tracker = "linear" if path == "/graphql" else "jira"
            standin.requests.append((method, self.path))
            fault = standin._take_fault(tracker)
            if fault:
                if fault.delay:
                    time.sleep(fault.delay)
                self._reply(
                    fault.status, fault.body or {"errors": [{"message": "fault"}]}, fault.headers
                )
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._reply(400, {"errors": [{"message": "invalid JSON"}]}, {})
                return
            if tracker == "linear":
                status, answer, headers = standin.linear(self.headers, body or {})
            else:
                status, answer, headers = standin.jira(method, path, self.headers, body)
            self._reply(status, answer, headers)

        def _reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
