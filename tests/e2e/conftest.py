"""End-to-end fixtures: one real MLflow server for the session, a sandbox per scenario."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.mlflow_server import MlflowServer
from bot.sandbox.world import PUBLIC_HOSTNAME


@pytest.fixture(scope="session")
def shared_mlflow(tmp_path_factory) -> Iterator[MlflowServer]:
    """MLflow takes seconds to start: the scenarios share one (their breakage is elsewhere)."""
    workdir = tmp_path_factory.mktemp("mlflow")
    hosts = [PUBLIC_HOSTNAME, "127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"]
    server = MlflowServer(workdir, allowed_hosts=hosts).start()
    server.seed()
    try:
        yield server
    finally:
        server.stop()
