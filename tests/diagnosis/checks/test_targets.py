"""Targets hop: the target group a route lands on has healthy targets."""

from __future__ import annotations

from bot.diagnosis.checks.base import Status
from bot.diagnosis.checks.targets import TargetHealth, summarise_health


def test_some_unhealthy_targets_warn_and_none_healthy_fail():
    healthy = TargetHealth("10.0.10.20", 5000, "healthy")
    sick = TargetHealth("10.0.10.21", 5000, "unhealthy", "Target.Timeout", "Request timed out")
    assert summarise_health([healthy, sick]) == (
        Status.WARN,
        "1 of 2 targets healthy (1 unhealthy Target.Timeout)",
    )
    assert summarise_health([sick])[0] is Status.FAIL
    assert summarise_health([]) == (Status.FAIL, "no registered targets")


async def test_healthy_targets_pass(sandbox):
    report = await sandbox("healthy").diagnose(["targets"])
    direct = report.outcome("targets.health[mlflow-direct]")
    proxy = report.outcome("targets.health[mlflow-proxy]")
    assert direct.result.summary == "hokusai-mlflow-development-tg: 1 of 1 targets healthy"
    assert proxy.result.summary == "hokusai-api-development-tg: 2 of 2 targets healthy"
    assert report.first_failure is None


async def test_failing_health_checks_are_the_first_failing_hop_with_reason_codes(sandbox):
    report = await sandbox("unhealthy-targets").diagnose()
    first = report.first_failure
    assert first.id == "targets.health[mlflow-direct]"
    assert first.layer == "targets"
    assert str(first.result.classification) == "infrastructure"
    assert first.result.summary == (
        "hokusai-mlflow-development-tg: 0 of 1 targets healthy "
        "(1 unhealthy Target.ResponseCodeMismatch)"
    )
    target = first.result.evidence["target_groups"][0]["targets"][0]
    assert target["description"] == "Health checks failed with these codes: [404]"


async def test_mlflow_tasks_down_leave_the_target_group_empty(sandbox):
    report = await sandbox("mlflow-down", ecs=True).diagnose()
    first = report.first_failure
    assert first.id == "targets.health[mlflow-direct]"
    assert first.result.summary == "hokusai-mlflow-development-tg: no registered targets"
    assert "no tasks of hokusai-mlflow-development" in first.result.hint
