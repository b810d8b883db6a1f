"""Linear and Jira providers against respx-mocked trackers: what they send, what errors mean."""

from __future__ import annotations

import base64
import json
import random
import string

import httpx
import pytest
import respx

from bot.tickets import JiraProvider, LinearProvider, TrackerError
from bot.tickets.base import RetryBudget

LINEAR_URL = "https://linear.test/graphql"
JIRA_URL = "https://hokusai.atlassian.test"


def fake_token(prefix: str = "tok_") -> str:
    return prefix + "".join(random.choices(string.ascii_letters + string.digits, k=24))


def linear_issue(key: str = "HOK-7", state_type: str = "started", name: str = "In Progress"):
    return {
        "id": "9b2f6d7e-0000-4000-8000-000000000007",
        "identifier": key,
        "title": "Registry returns 404 on /api/mlflow",
        "url": f"https://linear.test/hokusai/issue/{key}",
        "state": {"name": name, "type": state_type},
    }


@pytest.fixture
def linear():
    return LinearProvider(api_key=fake_token(), url=LINEAR_URL, team_id="team-1", timeout=2.0)


@pytest.fixture
def jira():
    return JiraProvider(
        base_url=JIRA_URL,
        email="oncall@hokus.ai",
        api_token=fake_token(),
        project="OPS",
        timeout=2.0,
    )


@respx.mock
async def test_linear_create_sends_the_key_bare_and_returns_the_identifier(linear):
    route = respx.post(LINEAR_URL).respond(
        200, json={"data": {"issueCreate": {"success": True, "issue": linear_issue()}}}
    )
    ticket = await linear.create("Registry returns 404", "routing.listener-rules fails")
    assert ticket.key == "HOK-7" and ticket.provider == "linear" and not ticket.done
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == linear._api_key  # no "Bearer" for personal keys
    body = json.loads(sent.content)
    assert "issueCreate" in body["query"]
    assert body["variables"]["input"] == {
        "teamId": "team-1",
        "title": "Registry returns 404",
        "description": "routing.listener-rules fails",
    }


@pytest.mark.parametrize(
    ("state_type", "done"), [("completed", True), ("canceled", True), ("started", False)]
)
@respx.mock
async def test_linear_done_follows_the_workflow_state_type(linear, state_type, done):
    respx.post(LINEAR_URL).respond(
        200, json={"data": {"issue": linear_issue(state_type=state_type, name="Whatever")}}
    )
    assert (await linear.get("HOK-7")).done is done


@respx.mock
async def test_linear_comment_targets_the_issue_id(linear):
    route = respx.post(LINEAR_URL).mock(
        side_effect=[
            httpx.Response(200, json={"data": {"issue": linear_issue()}}),
            httpx.Response(
                200, json={"data": {"commentCreate": {"success": True, "comment": {"id": "c1"}}}}
            ),
        ]
    )
    await linear.comment("HOK-7", "still failing")
    body = json.loads(route.calls.last.request.content)
    assert body["variables"]["input"] == {"issueId": linear_issue()["id"], "body": "still failing"}


@respx.mock
async def test_linear_errors_are_named(linear):
    respx.post(LINEAR_URL).mock(
        side_effect=[
            httpx.Response(
                401,
                json={
                    "errors": [
                        {
                            "message": "Authentication required",
                            "extensions": {"type": "authentication error"},
                        }
                    ]
                },
            ),
            httpx.Response(
                429,
                headers={"Retry-After": "30"},
                json={
                    "errors": [
                        {"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}
                    ]
                },
            ),
            httpx.Response(
                200,
                json={
                    "data": None,
                    "errors": [
                        {
                            "message": "Entity not found: Issue",
                            "extensions": {"type": "invalid input"},
                        }
                    ],
                },
            ),
            httpx.ReadTimeout("slow"),
        ]
    )
    kinds = []
    for _ in range(4):
        with pytest.raises(TrackerError) as caught:
            await linear.get("HOK-404")
        kinds.append((caught.value.kind, str(caught.value)))
    assert [k for k, _ in kinds] == ["auth", "rate_limited", "not_found", "timeout"]
    assert "retry in 30 s" in kinds[1][1]
    assert all("\n" not in message for _, message in kinds)


@respx.mock
async def test_jira_create_posts_adf_with_basic_auth(jira):
    route = respx.post(f"{JIRA_URL}/rest/api/3/issue").respond(
        201, json={"id": "10001", "key": "OPS-12", "self": f"{JIRA_URL}/rest/api/3/issue/10001"}
    )
    ticket = await jira.create("Registry 404s", 'First line\n\n```\n{"rule": "/api/*"}\n```')
    assert ticket.key == "OPS-12"
    assert ticket.url == f"{JIRA_URL}/browse/OPS-12"
    request = route.calls.last.request
    user, _, token = base64.b64decode(request.headers["Authorization"][6:]).decode().partition(":")
    assert user == "oncall@hokus.ai" and token == jira._auth[1]
    fields = json.loads(request.content)["fields"]
    assert fields["project"] == {"key": "OPS"}
    assert fields["description"]["type"] == "doc"
    kinds = [node["type"] for node in fields["description"]["content"]]
    assert kinds == ["paragraph", "codeBlock"]


@respx.mock
async def test_jira_done_is_the_status_category(jira):
    respx.get(f"{JIRA_URL}/rest/api/3/issue/OPS-12").respond(
        200,
        json={
            "key": "OPS-12",
            "fields": {
                "summary": "Registry 404s",
                "status": {"name": "Closed", "statusCategory": {"key": "done"}},
            },
        },
    )
    ticket = await jira.get("OPS-12")
    assert ticket.done and ticket.status == "Closed" and ticket.title == "Registry 404s"


@pytest.mark.parametrize(
    ("response", "kind", "words"),
    [
        (httpx.Response(401), "auth", "refused the credentials"),
        (httpx.Response(429, headers={"Retry-After": "12"}), "rate_limited", "retry in 12 s"),
        (
            httpx.Response(404, json={"errorMessages": ["Issue does not exist"]}),
            "not_found",
            "no such ticket",
        ),
        (httpx.Response(503), "unavailable", "answered 503"),
        (httpx.ConnectTimeout("slow"), "timeout", "did not answer in time"),
    ],
)
@respx.mock
async def test_jira_errors_are_named(jira, response, kind, words):
    route = respx.get(f"{JIRA_URL}/rest/api/3/issue/OPS-404")
    if isinstance(response, Exception):
        route.mock(side_effect=response)
    else:
        route.mock(return_value=response)
    with pytest.raises(TrackerError) as caught:
        await jira.get("OPS-404")
    assert caught.value.kind == kind
    assert words in str(caught.value)


async def test_providers_work_against_the_loopback_stand_in():
    from bot.sandbox.trackers import TrackerStandIn

    key = fake_token()
    with TrackerStandIn(linear_key=key) as trackers:
        linear = LinearProvider(api_key=key, url=trackers.linear_url, timeout=2.0)
        ticket = await linear.create("Registry 404s", "body")
        trackers.mark_done(ticket.key)
        await linear.comment(ticket.key, "checked")
        assert (await linear.get(ticket.key)).done
        assert trackers.comments(ticket.key) == ["checked"]
        jira = JiraProvider(
            base_url=trackers.jira_url,
            email="a@hokus.ai",
            api_token=fake_token(),
            project="OPS",
            timeout=2.0,
            retry=RetryBudget(longest_wait=2.0),
        )
        filed = await jira.create("Registry 404s", "body")
        assert not (await jira.get(filed.key)).done
        # Longer than the budget allows: said at once, with when to try again.
        trackers.fail_next("jira", 429, retry_after=5)
        with pytest.raises(TrackerError, match="retry in 5 s"):
            await jira.get(filed.key)
        wrong = LinearProvider(api_key=fake_token(), url=trackers.linear_url, timeout=2.0)
        with pytest.raises(TrackerError) as caught:
            await wrong.get(ticket.key)
        assert caught.value.kind == "auth"
