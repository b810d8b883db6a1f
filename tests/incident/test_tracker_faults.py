"""Trackers on a bad day, against stand-ins that answer the way Atlassian and Linear document.

A rate limit is waited out (Retry-After) instead of making the responder retype the command; a
tracker that stays down is given up on within a budget and the person is told; Jira's own
reasons for refusing reach the person, redacted; keys are checked before any request.
"""

from __future__ import annotations

import os
import random
import string
import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import load_config
from bot.sandbox.trackers import TrackerStandIn
from bot.settings import Settings
from bot.slack.commanding import CommandRequest
from bot.slack.services import Services
from bot.tickets import JiraProvider, LinearProvider, TrackerError
from bot.tickets.base import RetryBudget
from commands import ticket as ticket_cmd
from tests.doubles import REPO, RecordingOutbound
from tests.slack.processes import run_cli

QUICK = RetryBudget(attempts=3, total=5.0, longest_wait=3.0, backoff=0.05)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def token() -> str:
    return "t_" + "".join(random.choices(string.ascii_letters, k=20))


@pytest.fixture
def trackers():
    with TrackerStandIn() as stand_in:
        yield stand_in


def jira(trackers, **kwargs) -> JiraProvider:
    return JiraProvider(
        base_url=trackers.jira_url,
        email="oncall@hokus.ai",
        api_token=token(),
        project="OPS",
        timeout=2.0,
        **{"retry": QUICK, **kwargs},
    )


def linear(trackers) -> LinearProvider:
    return LinearProvider(api_key=token(), url=trackers.linear_url, timeout=2.0, retry=QUICK)


async def test_jira_rate_limits_are_waited_out_for_create_read_and_comment(trackers):
    provider = jira(trackers)
    started = time.monotonic()
    trackers.rate_limit_next("jira", retry_after=1)
    ticket = await provider.create("Registry 404s", "body")
    trackers.rate_limit_next("jira", retry_after=1)
    await provider.comment(ticket.key, "still failing")
    trackers.rate_limit_next("jira", retry_after=1)
    assert (await provider.get(ticket.key)).key == ticket.key
    assert time.monotonic() - started >= 3.0  # each waited the second Jira asked for
    assert len(trackers.requests_to("jira")) == 6  # each call: refused once, then done
    assert trackers.comments(ticket.key) == ["still failing"]


async def test_linear_rate_limits_are_waited_out(trackers):
    provider = linear(trackers)
    trackers.rate_limit_next("linear", retry_after=1)
    ticket = await provider.create("Registry 404s", "body")  # teams query, then the create
    assert ticket.key.startswith("HOK-")
    assert len(trackers.requests_to("linear")) == 3


async def test_a_rate_limit_longer_than_the_budget_is_said_at_once(trackers):
    provider = jira(trackers)
    ticket = await provider.create("Registry 404s", "body")
    trackers.rate_limit_next("jira", retry_after=60)
    started = time.monotonic()
    with pytest.raises(TrackerError) as caught:
        await provider.get(ticket.key)
    assert time.monotonic() - started < 2
    assert caught.value.kind == "rate_limited" and "retry in 60 s" in str(caught.value)


async def test_a_tracker_that_stays_down_is_given_up_on_within_the_budget(trackers):
    provider = jira(trackers)
    trackers.fail_next("jira", 503, times=10)
    with pytest.raises(TrackerError) as caught:
        await provider.get("OPS-1")
    assert "answered 503" in str(caught.value) and "tried 3 times" in str(caught.value)
    assert len(trackers.requests_to("jira")) == QUICK.attempts


async def test_a_500_on_create_is_not_repeated_but_a_500_on_read_is(trackers):
    provider = jira(trackers)
    trackers.fail_next("jira", 500)
    with pytest.raises(TrackerError, match="answered 500"):
        await provider.create("Registry 404s", "body")  # it may have been created: no repeat
    assert len(trackers.requests_to("jira")) == 1
    ticket = await provider.create("Registry 404s", "body")
    trackers.fail_next("jira", 500)
    assert (await provider.get(ticket.key)).key == ticket.key


async def test_jiras_own_reasons_reach_the_user(trackers):
    provider = jira(trackers, issue_type="Story")  # not an issue type of the project
    with pytest.raises(TrackerError) as caught:
        await provider.create("Registry 404s", "body")
    assert caught.value.kind == "invalid"
    assert "issuetype: Specify a valid issue type" in str(caught.value)


async def test_the_trackers_words_are_redacted(trackers):
    secret = "hk_live_" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
    trackers.fail_next(
        "jira",
        400,
        body={"errorMessages": [], "errors": {"description": f"contains {secret}"}},
    )
    with pytest.raises(TrackerError) as caught:
        await jira(trackers).create("Registry 404s", "body")
    assert "description: contains" in str(caught.value)
    assert secret not in str(caught.value)


@pytest.mark.parametrize("key", ["../../myself", "OPS-1/../../myself", "OPS-1?x=1", "ops"])
async def test_keys_are_checked_before_any_request(trackers, key):
    for provider in (jira(trackers), linear(trackers)):
        with pytest.raises(TrackerError) as caught:
            await provider.get(key)
        assert caught.value.kind == "invalid"
        with pytest.raises(TrackerError):
            await provider.comment(key, "x")
    assert trackers.requests == []


@pytest.fixture
def services(tmp_path):
    svc = Services(
        Settings(hokusai_db=tmp_path / "hokusai.db"),
        load_config(REPO / "hokusai.yml"),
        RecordingOutbound(),
        clock=lambda: NOW,
    )
    store = svc.store()
    svc.incident = store.declare_incident(
        "Registry 404s", channel_id="CINC", commander="U1", now=NOW - timedelta(hours=1)
    )
    return svc


def request(*args: str) -> CommandRequest:
    return CommandRequest(
        text="ticket " + " ".join(args), args=list(args), user_id="U1", channel_id="CINC"
    )


async def test_ticket_link_refuses_a_path_as_a_key(services, trackers):
    from bot.slack.commanding import UsageError

    with pytest.raises(UsageError, match="is not a ticket key"):
        ticket_cmd.parse(["link", "../../myself"])
    services.overrides["tracker"] = jira(trackers)
    reply = await ticket_cmd.handle(ticket_cmd.TicketArgs("link", "HOK_1-x"), request(), services)
    assert "is not a Jira issue key" in reply.text and "Nothing was linked" in reply.text
    assert trackers.requests == []
    assert services.store().tickets(services.incident.id) == []


async def test_ticket_create_says_jiras_reason_and_changes_nothing(services, trackers):
    services.overrides["tracker"] = jira(trackers, issue_type="Story")
    reply = await ticket_cmd.handle(
        ticket_cmd.parse(["create", "Fix", "rules"]), request("create"), services
    )
    assert "issuetype: Specify a valid issue type" in reply.text
    assert "No ticket was created" in reply.text


async def test_verify_says_in_the_channel_when_it_cannot_comment_on_a_done_ticket(
    services, trackers
):
    store = services.store()
    failing = "routing.listener-rules[mlflow-proxy]"
    report = {
        "env": "development",
        "scopes": [failing],
        "started_at": NOW.isoformat(),
        "duration_ms": 1,
        "checks": [
            {
                "id": failing,
                "layer": "routing",
                "status": "fail",
                "summary": "no rule sends /api/mlflow/*",
                "classification": "configuration",
                "evidence": {},
                "duration_ms": 1,
            }
        ],
        "first_failure": None,
        "verdict": "",
    }
    store.record_run(report, incident_id=services.incident.id, channel="CINC", now=NOW)
    issue = trackers.add_issue("jira", "Fix the rules", done=True)
    trackers.lock_done = True  # the workflow's Done status is not editable
    store.link_ticket(
        services.incident.id, provider="jira", key=issue.key, check_ids=[failing], now=NOW
    )
    services.overrides["tracker"] = jira(trackers)

    async def still_failing(check_ids):
        return report

    services.overrides["rerun"] = still_failing
    reply = await ticket_cmd.handle(ticket_cmd.parse(["verify"]), request("verify"), services)
    assert not reply.ephemeral  # said in the channel
    assert "I could not say so on the ticket" in reply.text
    assert "not editable" in reply.text
    assert trackers.comments(issue.key) == []


def test_jira_without_a_project_stops_start_up_with_one_line(bot_env, tmp_path):
    env = {
        **os.environ,
        **bot_env,
        "JIRA_BASE_URL": "http://127.0.0.1:9",
        "JIRA_EMAIL": "oncall@hokus.ai",
        "JIRA_API_TOKEN": token(),
    }
    proc = run_cli("serve", "--port", "0", env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "incidents.jira_project is not set" in proc.stderr


@pytest.mark.parametrize(
    ("project", "issue_type", "said"),
    [
        ("NOPE", "Task", "incidents.jira_project: Jira has no project NOPE"),
        ("OPS", "Story", "incidents.jira_issue_type: 'Story' is not an issue type of OPS"),
    ],
)
def test_a_jira_project_or_issue_type_jira_does_not_have_stops_start_up(
    bot_env, tmp_path, trackers, project, issue_type, said
):
    import yaml

    config = yaml.safe_load((REPO / "hokusai.yml").read_text())
    config["incidents"].update({"jira_project": project, "jira_issue_type": issue_type})
    path = tmp_path / "hokusai.yml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        **bot_env,
        "HOKUSAI_CONFIG": str(path),
        "JIRA_BASE_URL": trackers.jira_url,
        "JIRA_EMAIL": "oncall@hokus.ai",
        "JIRA_API_TOKEN": token(),
    }
    proc = run_cli("serve", "--port", "0", env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"hokusai serve: {said}")


async def test_a_jira_project_and_issue_type_that_exist_pass_the_start_up_check(trackers):
    assert await jira(trackers).settings_problem() is None
    trackers.fail_next("jira", 503, times=10)  # Jira down at start-up: start anyway
    assert await jira(trackers).settings_problem() is None


@pytest.mark.parametrize("make", [jira, linear])
async def test_what_a_provider_sends_is_redacted_whoever_calls_it(trackers, make):
    """The tracker is outside the process: titles, descriptions and comments pass the choke
    point in the provider itself, not only where a caller remembered to."""
    secret = "hk_live_" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
    provider = make(trackers)
    ticket = await provider.create(f"Registry 404s for {secret}", f"key {secret} in the log")
    await provider.comment(ticket.key, f"still failing with {secret}")
    issue = trackers.issues[ticket.key]
    sent = f"{issue.title} {issue.description} {trackers.comments(ticket.key)}"
    assert secret not in sent and secret[8:20] not in sent
    assert "[redacted:hokusai-api-key]" in issue.title
