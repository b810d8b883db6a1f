"""changes.* on moto: task-definition diffs; CloudTrail skipped quickly when unreadable."""

import asyncio
from datetime import UTC, datetime

from bot.diagnosis.aws import AwsAccessDenied
from bot.diagnosis.checks.base import REGISTRY, CheckContext, Status
from tests.diagnosis.checks.ecs_fixtures import scenario_run, seed_environment

MLFLOW = "hokusai-mlflow-development"
API = "hokusai-api-development"


def test_deployments_diff_the_last_two_revisions_by_name():
    report = scenario_run("healthy").ours
    mlflow = report.outcome(f"changes.deployments[{MLFLOW}]")
    assert mlflow.status is Status.PASS
    assert "image v3.1.0 -> v3.3.2" in mlflow.result.summary
    assert "env +GUNICORN_CMD_ARGS +MLFLOW_SERVER_ENABLE_JOB_EXECUTION" in mlflow.result.summary
    api = report.outcome(f"changes.deployments[{API}]").result
    assert api.evidence["diff"]["env"] == {
        "added": ["MLFLOW_TRACKING_URI"],
        "removed": [],
        "changed": ["MLFLOW_SERVER_URL"],
    }
    assert "secrets" not in api.evidence["diff"]


def test_a_changed_command_flag_is_named():
    result = scenario_run("bad-allowed-hosts").ours.outcome(f"changes.deployments[{MLFLOW}]")
    assert "command changed (~--allowed-hosts)" in result.result.summary


def test_cloudtrail_not_implemented_is_skipped_with_the_reason():
    outcome = scenario_run("healthy").ours.outcome("changes.listener-rules")
    assert outcome.status is Status.SKIPPED
    assert outcome.result.summary.startswith("CloudTrail is not readable here:")
    # Not retried with backoff (botocore would keep at it for tens of seconds); the bound is
    # loose because shared CI machines are slow, not because a few seconds would be fine.
    assert outcome.duration_ms < 8000


def _run_listener_rules(answer):
    async def aws_call(service, operation, **params):
        assert (service, operation) == ("cloudtrail", "lookup_events")
        return answer(params)

    ctx = CheckContext(seed_environment(), aws_call=aws_call)
    return asyncio.run(REGISTRY["changes.listener-rules"].run(ctx))


def test_cloudtrail_access_denied_is_skipped_naming_the_permission():
    def deny(_):
        raise AwsAccessDenied("cloudtrail:LookupEvents")

    result = _run_listener_rules(deny)
    assert result.status is Status.SKIPPED
    assert "cloudtrail:LookupEvents" in result.summary


def test_rule_changes_are_listed_newest_first():
    events = [
        {
            "EventName": name,
            "EventTime": datetime(2025, 8, 18, hour, tzinfo=UTC),
            "Username": user,
            "Resources": [{"ResourceName": "listener-rule/app/hokusai-registry-development/x"}],
        }
        for name, hour, user in (
            ("CreateRule", 9, "terraform"),
            ("ModifyRule", 14, "alice"),
            ("CreateLoadBalancer", 15, "terraform"),  # not a rule change
        )
    ]
    result = _run_listener_rules(lambda params: {"Events": events})
    assert result.status is Status.WARN
    assert result.summary.startswith(
        "2 listener/rule change(s) in the last 7 days, newest: ModifyRule"
    )
    assert "by alice at 2025-08-18T14:00" in result.summary
