"""Fixtures for the app, MLflow and auth checks: an environment, contexts, and the loopback stack.

The real MLflow server starts once per session; the API stand-in and the load-balancer proxy
are cheap and start per test, so one test's scenario knobs never leak into another.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from bot.config import Environment, load_config
from bot.diagnosis.checks.base import CheckContext
from bot.sandbox import fakes
from bot.sandbox.mlflow_server import MlflowServer
from bot.sandbox.proxy import LoadBalancerProxy, public_rules
from bot.sandbox.upstreams import ApiService
from tests.doubles import REPO

# The MLflow client in this process must not phone home during tests.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

KEY_ENV = "HOKUSAI_API_KEY"


def seed_environment() -> Environment:
    """The development environment of the repository's hokusai.yml."""
    return load_config(REPO / "hokusai.yml").environment("development")


def pointed_at(env: Environment, base_url: str, *, direct_protected: bool = True) -> Environment:
    """``env`` with its public URL and tracking URI on ``base_url`` (a loopback stand-in)."""
    routes = [
        r.model_copy(update={"protected": direct_protected}) if r.name == "mlflow-direct" else r
        for r in env.routes
    ]
    return env.model_copy(
        update={
            "public": env.public.model_copy(update={"base_url": base_url.rstrip("/")}),
            "mlflow": env.mlflow.model_copy(update={"tracking_uri": f"{base_url}/api/mlflow"}),
            "routes": routes,
        }
    )


def make_ctx(
    env: Environment, http: httpx.AsyncClient, *, subject: str | None = None, key: str | None
) -> CheckContext:
    return CheckContext(env, subject=subject, http=http, secrets={KEY_ENV: key} if key else {})


@pytest.fixture
def api_key(monkeypatch) -> str:
    """A fresh fake key; the process variable is cleared so only ctx.secrets carries it."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    return fakes.hokusai_key(live=False)


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[MlflowServer]:
    """One real MLflow server for the session, seeded with an experiment and a model."""
    with MlflowServer(tmp_path_factory.mktemp("mlflow")) as server:
        server.seed()
        yield server


@dataclass
class Stack:
    """MLflow behind the API stand-in, both behind the load-balancer proxy."""

    env: Environment
    key: str
    api: ApiService
    lb: LoadBalancerProxy
    mlflow: MlflowServer


@pytest.fixture
def stack(mlflow_server, api_key) -> Iterator[Stack]:
    api = ApiService(api_keys=[api_key], accept_auth="bearer", mlflow_url=mlflow_server.url)
    with api:
        lb = LoadBalancerProxy(public_rules(api.url, mlflow_server.url), upstream_timeout=5.0)
        lb.start()
        # MLflow itself has no auth: its direct route is not expected to refuse strangers.
        env = pointed_at(seed_environment(), lb.url, direct_protected=False)
        try:
            yield Stack(env=env, key=api_key, api=api, lb=lb, mlflow=mlflow_server)
        finally:
            lb.stop()


class SilentServer:
    """A loopback TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()
