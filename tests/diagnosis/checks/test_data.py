"""Data hop: the RDS instance is available; stopped or missing instances fail."""

from __future__ import annotations

from bot.diagnosis.checks.base import Status


async def test_healthy_database_reports_endpoint_and_port(sandbox):
    world = sandbox("healthy")
    report = await world.diagnose(["data"])
    outcome = report.outcome("data.rds")
    assert outcome.status is Status.PASS
    assert outcome.result.summary == (
        f"hokusai-mlflow-development is available at {world.platform.rds_endpoint}:5432"
    )
    assert outcome.result.evidence["engine"].startswith("postgres")


async def test_a_stopped_database_is_the_first_failing_hop(sandbox):
    report = await sandbox("db-stopped").diagnose()
    first = report.first_failure
    assert first.id == "data.rds"
    assert str(first.result.classification) == "infrastructure"
    assert (
        first.result.summary == "RDS instance hokusai-mlflow-development is stopped, not available"
    )


async def test_a_missing_database_is_a_configuration_failure(sandbox):
    report = await sandbox("db-missing").diagnose()
    first = report.first_failure
    assert first.id == "data.rds"
    assert str(first.result.classification) == "configuration"
    assert "does not exist" in first.result.summary
