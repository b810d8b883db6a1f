"""The MLflow server wrapper: a server that never gets healthy is stopped, worker and all."""

from __future__ import annotations

import os
import sys

import pytest

from bot.sandbox.mlflow_server import MlflowServer, MlflowServerError

# A parent that starts a child and never serves: like mlflow's CLI and its uvicorn worker.
NEVER_HEALTHY = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('starting', flush=True)\n"
    "time.sleep(60)\n"
)


class NeverHealthy(MlflowServer):
    def command(self) -> list[str]:
        return [sys.executable, "-c", NEVER_HEALTHY]

    def _wait_healthy(self, timeout: float) -> None:
        self.group = self.process.pid
        super()._wait_healthy(timeout)


def test_a_server_that_never_gets_healthy_is_stopped_without_orphans(tmp_path):
    server = NeverHealthy(tmp_path)
    with pytest.raises(MlflowServerError, match="not healthy after 1 s"):
        server.start(timeout=1)
    assert server.process is None
    with pytest.raises(ProcessLookupError):
        os.killpg(server.group, 0)
    assert "starting" in server.log_tail()


def test_the_session_server_answers_and_has_a_url(mlflow_server):
    import httpx

    assert mlflow_server.url.startswith("http://127.0.0.1:")
    answer = httpx.get(mlflow_server.url + "/version", timeout=5, trust_env=False)
    assert answer.status_code == 200 and answer.text.startswith("3.")
    assert mlflow_server.process is not None and mlflow_server.process.poll() is None
