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


def test_database_errors_are_read_the_way_a_dba_would():
    """Texts a real MLflow on PostgreSQL answered in the sandbox (503 TEMPORARILY_UNAVAILABLE)."""
    from bot.diagnosis.checks.data import explain_backend_error

    refused = (
        'TEMPORARILY_UNAVAILABLE: (psycopg2.OperationalError) connection to server at "127.0.0.1", '
        "port 51083 failed: Connection refused\n\tIs the server running on that host and "
        "accepting TCP/IP connections?\n\n(Background on this error at: https://sqlalche.me/e/21/e3q8)"
    )
    found = explain_backend_error(refused, "hokusai-mlflow-development")
    assert found.classification == "infrastructure"
    assert found.summary.startswith(
        "MLflow cannot use its database hokusai-mlflow-development: nothing accepts its connections"
    )
    rejected = (
        "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "
        '"10.0.2.15", port 5432 failed: FATAL:  password authentication failed for user "mlflow"'
    )
    found = explain_backend_error(rejected, "hokusai-mlflow-development")
    assert found.classification == "configuration"
    assert found.summary == (
        "MLflow's database login is rejected "
        '(FATAL: password authentication failed for user "mlflow")'
    )
