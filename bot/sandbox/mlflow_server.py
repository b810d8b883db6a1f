"""A real ``mlflow server`` on loopback with a SQLite store, for tests and the demo.

It starts lean (one uvicorn worker, job execution off, no telemetry), waits for ``/health``,
and stops its whole process group so no worker is left behind. Starting takes several
seconds: start it once per test session.

Example::

    with MlflowServer(tmp_path) as mlflow:
        mlflow.seed()
        httpx.get(mlflow.url + "/health")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.sandbox.upstreams import LOOPBACK

START_TIMEOUT = 60.0
SEED_EXPERIMENT = "hokusai-smoke"
SEED_MODEL = "lscor"


class MlflowServerError(RuntimeError):
    """The server did not come up; the message carries the end of its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MlflowServer:
    """One ``mlflow server`` subprocess.

    Args:
        workdir: holds the SQLite database, the artifacts and the server's log.
        host / port: where it listens; port 0 picks a free one.
        allowed_hosts: ``--allowed-hosts`` (None: MLflow's default, localhost and private IPs).
        static_prefix: ``--static-prefix``, e.g. "/api/mlflow".
        backend_store_uri: where MLflow keeps its registry; a SQLite file in ``workdir`` if
            None (``bot.sandbox.mlflow_database`` gives it a real PostgreSQL).
    """

    def __init__(
        self,
        workdir: str | Path,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        allowed_hosts: list[str] | None = None,
        static_prefix: str | None = None,
        backend_store_uri: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self.port = port or free_port(host)
        self.allowed_hosts = allowed_hosts
        self.static_prefix = static_prefix
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.workdir / 'mlflow.db'}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mlflow-server.log"

    @property
    def url(self) -> str:
        """The server's root URL (with the static prefix, when set)."""
        return f"http://{self.host}:{self.port}{self.static_prefix or ''}"

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--default-artifact-root",
            str(self.workdir / "artifacts"),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        if self.allowed_hosts:
            cmd += ["--allowed-hosts", ",".join(self.allowed_hosts)]
        if self.static_prefix:
            cmd += ["--static-prefix", self.static_prefix]
        return cmd

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in (
            "MLFLOW_TRACKING_TOKEN",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        ):
            env.pop(name, None)
        env.update(
            {
                # Without it the server starts job runners: 9 processes and 1 GB instead of 2.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        return env

    def start(self, timeout: float = START_TIMEOUT) -> MlflowServer:
        """Start the server and wait until ``/health`` answers 200."""
        if self.process is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "artifacts").mkdir(exist_ok=True)
        with self.log_path.open("ab") as log:
            # A session of its own, so stop() can end the uvicorn worker with its parent.
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        health = f"http://{self.host}:{self.port}{self.static_prefix or ''}/health"
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise MlflowServerError(
                        f"mlflow server exited with {self.process.returncode}: {self.log_tail()}"
                    )
                try:
                    if client.get(health).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        raise MlflowServerError(f"mlflow server not healthy after {timeout:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server's process group and wait for it; kill what does not stop."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=5)
        # The uvicorn worker may outlive its parent by a moment; make sure the group is gone.
        end = time.monotonic() + 5
        while time.monotonic() < end and _group_alive(process.pid):
            time.sleep(0.1)
        if _group_alive(process.pid):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def seed(self) -> None:
        """Create an experiment and a registered model, so searches return something."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.url, registry_uri=self.url)
        if client.get_experiment_by_name(SEED_EXPERIMENT) is None:
            client.create_experiment(SEED_EXPERIMENT)
        if not client.search_registered_models(filter_string=f"name='{SEED_MODEL}'"):
            client.create_registered_model(SEED_MODEL, description="seeded by the sandbox")

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
