"""`/hokusai ticket verify` against respx-mocked Linear and Jira.

A Done ticket whose checks now pass is confirmed; one whose checks still fail is flagged in the
channel, commented on in the tracker and put on the timeline. Tracker errors lose nothing.
"""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from bot.config import load_config
from bot.settings import Settings
from bot.slack.commanding import CommandRequest
from bot.slack.services import Services
from bot.tickets import JiraProvider, LinearProvider
from commands import ticket as ticket_cmd
from tests.doubles import REPO, RecordingOutbound

LINEAR_URL = "https://linear.test/graphql"
JIRA_URL = "https://hokusai.atlassian.test"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=30)
FAILING = "routing.listener-rules[mlflow-proxy]"


def token() -> str:
    return "t_" + "".join(random.choices(string.ascii_letters, k=20))


def report(status: str) -> dict:
    return {
        "env": "development",
        "scopes": [FAILING],
        "started_at": NOW.isoformat(),
        "duration_ms": 300,
        "checks": [
            {
                "id": FAILING,
                "layer": "routing",
                "status": status,
                "summary": "no rule sends /api/mlflow/* to hokusai-api"
                if status == "fail"
                else "rule 10 forwards /api/mlflow/* to hokusai-api",
                "classification": "configuration" if status == "fail" else None,
                "evidence": {"listener": "443", "matched_rule": "default"},
                "duration_ms": 40,
            }
        ],
        "first_failure": None,
        "verdict": "",
    }


@pytest.fixture
def services(tmp_path):
    settings = Settings(hokusai_db=tmp_path / "hokusai.db")
    svc = Services(
        settings, load_config(REPO / "hokusai.yml"), RecordingOutbound(), clock=lambda: NOW
    )
    return svc


@pytest.fixture
def incident(services):
    store = services.store()
    inc = store.declare_incident(
        "Registry 404s", channel_id="CINC", commander="U1", now=NOW - timedelta(hours=2)
    )
    store.record_run(
        report("fail"), incident_id=inc.id, channel="CINC", now=NOW - timedelta(hours=1)
    )
    return inc


def request() -> CommandRequest:
    return CommandRequest(text="ticket verify", args=["verify"], user_id="U1", channel_id="CINC")


def rerun_returning(status: str, asked: list[list[str]]):
    async def rerun(check_ids: list[str]) -> dict:
        asked.append(check_ids)
        return report(status)

    return rerun


def linear_state(key: str, state_type: str) -> dict:
    return {
        "data": {
            "issue": {
                "id": "uuid-" + key,
                "identifier": key,
                "title": "Fix routing",
                "url": f"https://linear.test/i/{key}",
                "state": {"name": "Done", "type": state_type},
            }
        }
    }


def linear_router(state_type: str, comments: list[dict]):
    def respond(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "commentCreate" in body["query"]:
            comments.append(body["variables"]["input"])
            return httpx.Response(
                200, json={"data": {"commentCreate": {"success": True, "comment": {"id": "c"}}}}
            )
        return httpx.Response(200, json=linear_state(body["variables"]["id"], state_type))

    return respond


@respx.mock
async def test_linear_done_ticket_whose_checks_pass_is_confirmed(services, incident):
    comments: list[dict] = []
    respx.post(LINEAR_URL).mock(side_effect=linear_router("completed", comments))
    services.overrides["tracker"] = LinearProvider(api_key=token(), url=LINEAR_URL, team_id="t")
    asked: list[list[str]] = []
    services.overrides["rerun"] = rerun_returning("pass", asked)
    store = services.store()
    store.link_ticket(incident.id, provider="linear", key="HOK-1", title="Fix routing", now=EARLIER)

    reply = await ticket_cmd.handle(ticket_cmd.parse(["verify"]), request(), services)

    assert asked == [[FAILING]]
    assert "HOK-1" in reply.text and "confirmed" in reply.text
    assert comments == []
    assert services.outbound.posts == []
    last = store.timeline(incident.id)[-1]
    assert last.kind == "verify" and "confirmed" in last.text
    assert {f.check_id: f.status for f in store.findings(incident.id)} == {FAILING: "pass"}


@respx.mock
async def test_linear_done_ticket_whose_failure_persists_is_flagged_commented_timelined(
    services, incident
):
    comments: list[dict] = []
    respx.post(LINEAR_URL).mock(side_effect=linear_router("completed", comments))
    services.overrides["tracker"] = LinearProvider(api_key=token(), url=LINEAR_URL, team_id="t")
    services.overrides["rerun"] = rerun_returning("fail", [])
    store = services.store()
    store.link_ticket(incident.id, provider="linear", key="HOK-2", title="Fix routing", now=EARLIER)

    reply = await ticket_cmd.handle(ticket_cmd.parse(["verify"]), request(), services)

    assert "HOK-2" in reply.text and "failure persists" in reply.text
    channel, text = services.outbound.posts[0]
    assert channel == "CINC"
    assert "Ticket HOK-2 is Done but the failure persists" in text
    assert "matched_rule" in text  # the evidence travels with the claim
    assert comments and comments[0]["issueId"] == "uuid-HOK-2"
    assert "failure persists" in comments[0]["body"]
    last = store.timeline(incident.id)[-1]
    assert last.kind == "verify" and "HOK-2 is Done but the failure persists" in last.text


@respx.mock
async def test_jira_done_ticket_whose_failure_persists_is_flagged(services, incident):
    respx.get(f"{JIRA_URL}/rest/api/3/issue/OPS-3").respond(
        200,
        json={
            "key": "OPS-3",
            "fields": {
                "summary": "Fix routing",
                "status": {"name": "Done", "statusCategory": {"key": "done"}},
            },
        },
    )
    comment = respx.post(f"{JIRA_URL}/rest/api/3/issue/OPS-3/comment").respond(201, json={})
    services.overrides["tracker"] = JiraProvider(
        base_url=JIRA_URL, email="oncall@hokus.ai", api_token=token(), project="OPS"
    )
    services.overrides["rerun"] = rerun_returning("fail", [])
    store = services.store()
    store.link_ticket(incident.id, provider="jira", key="OPS-3", now=EARLIER)

    await ticket_cmd.handle(ticket_cmd.parse(["verify"]), request(), services)

    assert comment.called
    adf = json.loads(comment.calls.last.request.content)["body"]
    assert adf["type"] == "doc" and "failure persists" in json.dumps(adf)
    assert "OPS-3 is Done but the failure persists" in store.timeline(incident.id)[-1].text


@respx.mock
async def test_jira_done_ticket_whose_checks_pass_is_confirmed(services, incident):
    respx.get(f"{JIRA_URL}/rest/api/3/issue/OPS-4").respond(
        200,
        json={
            "key": "OPS-4",
            "fields": {
                "summary": "Fix routing",
                "status": {"name": "Done", "statusCategory": {"key": "done"}},
            },
        },
    )
    comment = respx.post(f"{JIRA_URL}/rest/api/3/issue/OPS-4/comment").respond(201, json={})
    services.overrides["tracker"] = JiraProvider(
        base_url=JIRA_URL, email="oncall@hokus.ai", api_token=token(), project="OPS"
    )
    services.overrides["rerun"] = rerun_returning("pass", [])
    services.store().link_ticket(incident.id, provider="jira", key="OPS-4", now=EARLIER)

    reply = await ticket_cmd.handle(ticket_cmd.parse(["verify"]), request(), services)

    assert "confirmed" in reply.text
    assert not comment.called


@respx.mock
async def test_a_ticket_not_done_is_not_rechecked(services, incident):
    respx.post(LINEAR_URL).mock(side_effect=linear_router("started", []))
    services.overrides["tracker"] = LinearProvider(api_key=token(), url=LINEAR_URL, team_id="t")
    asked: list[list[str]] = []
    services.overrides["rerun"] = rerun_returning("pass", asked)
    services.store().link_ticket(incident.id, provider="linear", key="HOK-5", now=EARLIER)
    reply = await ticket_cmd.handle(ticket_cmd.parse(["verify"]), request(), services)
    assert asked == []
    assert "not done yet" in reply.text


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            httpx.Response(
                401,
                json={
                    "errors": [{"message": "auth", "extensions": {"type": "authentication error"}}]
                },
            ),
            "refused the API key",
        ),
        (httpx.Response(429, headers={"Retry-After": "20"}), "retry in 20 s"),
        (httpx.ReadTimeout("slow"), "did not answer in time"),
        (
            httpx.Response(200, json={"data": None, "errors": [{"message": "Entity not found"}]}),
            "no such issue",
        ),
    ],
)
@respx.mock
async def test_tracker_errors_are_reported_and_lose_nothing(services, incident, answer, words):
    route = respx.post(LINEAR_URL)
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    services.overrides["tracker"] = LinearProvider(
        api_key=token(), url=LINEAR_URL, team_id="t", timeout=1.0
    )
    services.overrides["rerun"] = rerun_returning("pass", [])
    store = services.store()
    store.link_ticket(incident.id, provider="linear", key="HOK-9", now=EARLIER)
    before = [e.text for e in store.timeline(incident.id)]

    verify = await ticket_cmd.handle(ticket_cmd.parse(["verify"]), request(), services)
    created = await ticket_cmd.handle(
        ticket_cmd.parse(["create", "Fix", "routing"]), request(), services
    )

    assert words in verify.text
    assert words in created.text and "No ticket was created" in created.text
    assert [e.text for e in store.timeline(incident.id)] == before
    assert [t.key for t in store.tickets(incident.id)] == ["HOK-9"]
    assert store.run_count(incident.id) == 1


@respx.mock
async def test_create_files_the_current_findings_redacted(services, incident):
    secret = "hk_" + "live_" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
    store = services.store()
    bad = report("fail")
    bad["checks"][0]["evidence"]["header"] = f"Bearer {secret}"
    store.record_run(bad, incident_id=incident.id, now=EARLIER)
    route = respx.post(LINEAR_URL).respond(
        200,
        json={
            "data": {
                "issueCreate": {
                    "success": True,
                    "issue": linear_state("HOK-11", "unstarted")["data"]["issue"],
                }
            }
        },
    )
    services.overrides["tracker"] = LinearProvider(api_key=token(), url=LINEAR_URL, team_id="t")

    reply = await ticket_cmd.handle(
        ticket_cmd.parse(["create", "Fix", "routing"]), request(), services
    )

    description = json.loads(route.calls.last.request.content)["variables"]["input"]["description"]
    assert FAILING in description and "matched_rule" in description
    assert secret not in description
    assert "HOK-11" in reply.text and not reply.ephemeral
    assert store.tickets(incident.id)[0].check_ids == [FAILING]


async def test_a_locked_incident_log_gets_a_clear_reply_and_keeps_earlier_rows(
    services, incident, monkeypatch
):
    import sqlite3

    from bot.incident.store import IncidentStore
    from commands import incident as incident_cmd

    path = services.settings.hokusai_db
    monkeypatch.setattr(services, "store", lambda: IncidentStore(path, busy_timeout=0.1))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        reply = await incident_cmd.handle(
            incident_cmd.parse(["note", "restarted", "the", "API", "task"]), request(), services
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "incident log is busy (database is locked)" in reply.text
    kinds = [e.kind for e in services.store().timeline(incident.id)]
    assert kinds == ["declared", "diagnose"]


@respx.mock
async def test_done_ticket_whose_check_did_not_run_is_not_confirmed(services, incident):
    """A re-run where the linked check is skipped or absent proves nothing."""
    respx.post(LINEAR_URL).mock(side_effect=linear_router("completed", []))
    services.overrides["tracker"] = LinearProvider(api_key=token(), url=LINEAR_URL, team_id="t")
    services.overrides["rerun"] = rerun_returning("skipped", [])
    store = services.store()
    store.link_ticket(incident.id, provider="linear", key="HOK-3", title="Fix routing", now=EARLIER)

    reply = await ticket_cmd.handle(ticket_cmd.parse(["verify"]), request(), services)

    assert "confirmed" not in reply.text
    assert "could not be re-checked" in reply.text
    assert "could not be re-checked" in store.timeline(incident.id)[-1].text
