"""End-to-end fixtures: MLflow on a real PostgreSQL for the scenarios that break the database
(the plain MLflow server is tests/conftest.py's ``shared_mlflow``), and each scenario's diagnosis
run once and shared by the tests that read it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from bot.diagnosis.runner import DiagnoseReport, Runner
from bot.sandbox.mlflow_database import DatabaseBackedMlflow, postgres_available
from bot.sandbox.world import Sandbox


@pytest.fixture(scope="session")
def shared_database_mlflow(tmp_path_factory) -> Iterator[DatabaseBackedMlflow | None]:
    """MLflow on a real PostgreSQL, for db-stopped and db-password-rejected (None when the
    machine has no PostgreSQL: those tests are skipped, they need the real cascade)."""
    if not postgres_available():
        yield None
        return
    backed = DatabaseBackedMlflow(
        tmp_path_factory.mktemp("mlflow-pg"), allowed_hosts=Sandbox.mlflow_hosts()
    ).start()
    try:
        yield backed
    finally:
        backed.stop()


@pytest.fixture(scope="session")
def diagnosed(
    shared_mlflow, shared_database_mlflow, tmp_path_factory
) -> Callable[[str, str], DiagnoseReport]:
    """``diagnosed(scenario, shape)``: the full diagnosis of that sandbox, run once a session."""
    done: dict[tuple[str, str], DiagnoseReport] = {}

    def run(scenario: str, shape: str = "hokusai") -> DiagnoseReport:
        if (scenario, shape) not in done:
            workdir = tmp_path_factory.mktemp(f"{shape}-{scenario}")
            with Sandbox(
                scenario,
                shape=shape,
                mlflow=shared_mlflow,
                database_mlflow=shared_database_mlflow,
                workdir=workdir,
            ) as sandbox:
                done[scenario, shape] = asyncio.run(Runner(sandbox.env).run())
        return done[scenario, shape]

    return run
