"""Fixtures shared by the whole suite: fake secrets, the Slack stand-in, a running bot."""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox import fakes
from tests.doubles import REPO

# Loopback traffic must never go through a proxy from the environment.
os.environ["NO_PROXY"] = "127.0.0.1,localhost" + (
    "," + os.environ["NO_PROXY"] if os.environ.get("NO_PROXY") else ""
)
os.environ["no_proxy"] = os.environ["NO_PROXY"]
# slack_sdk ignores NO_PROXY and would send loopback calls through a configured proxy.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: object) -> bool:
    if host is None:
        return True  # binding to "any" for a client socket, or a UNIX path
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host)
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto


# What tried to leave, so the test that did it fails even if the code swallowed the error.
_ESCAPES: list[str] = []


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_loopback(host):
        _ESCAPES.append(f"resolve {host!r}")
        raise OSError(f"test tried to resolve {host!r}: tests may only reach 127.0.0.1")
    return _real_getaddrinfo(host, *args, **kwargs)


def _check_address(sock: socket.socket, address: object) -> None:
    inet = sock.family in (socket.AF_INET, socket.AF_INET6)
    if inet and isinstance(address, tuple) and not _is_loopback(address[0]):
        _ESCAPES.append(f"reach {address[0]}")
        raise OSError(f"test tried to reach {address[0]}: only 127.0.0.1 is allowed")


def _guarded_connect(self, address):
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check_address(self, address)
    return _real_connect_ex(self, address)


def _guarded_sendto(self, data, *args):
    _check_address(self, args[-1])
    return _real_sendto(self, data, *args)


# Every test: nothing leaves the machine. A check that forgets its loopback config fails loudly
# instead of quietly asking the internet (subprocesses are covered by their own configs).
socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _nothing_leaves_the_machine():
    _ESCAPES.clear()
    yield
    assert not _ESCAPES, f"the test tried to leave 127.0.0.1: {_ESCAPES[:3]}"


@pytest.fixture(autouse=True)
def _slack_refused_nothing():
    """Blocks or a view Slack would refuse fail the test that sent them, even when the bot
    swallowed the error answer (the stand-in records every refusal)."""
    from bot.sandbox.slack import SlackStandIn

    for stand_in in SlackStandIn.live_instances():
        stand_in.take_invalid_payloads()
    yield
    refused = [p for s in SlackStandIn.live_instances() for p in s.take_invalid_payloads()]
    assert not refused, "Slack would refuse: " + "; ".join(
        f"{p.method}: {', '.join(p.errors[:3])}" for p in refused[:3]
    )


@pytest.fixture
def slack_secrets() -> dict[str, str]:
    return {"bot_token": fakes.slack_bot_token(), "signing_secret": fakes.signing_secret()}


@pytest.fixture
def slack(slack_secrets) -> Iterator:
    from bot.sandbox.slack import SlackStandIn

    with SlackStandIn(bot_token=slack_secrets["bot_token"]) as stand_in:
        yield stand_in


@pytest.fixture
def bot_env(slack, slack_secrets, tmp_path, monkeypatch) -> dict[str, str]:
    """The environment variables a bot process needs to talk to the stand-in."""
    env = {
        "SLACK_BOT_TOKEN": slack_secrets["bot_token"],
        "SLACK_SIGNING_SECRET": slack_secrets["signing_secret"],
        "SLACK_API_URL": slack.api_url,
        "HOKUSAI_CONFIG": str(REPO / "hokusai.yml"),
        "HOKUSAI_DB": str(tmp_path / "hokusai.db"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def bot_app(bot_env):
    from bot.settings import load_settings
    from bot.slack.app import build_app

    return build_app(load_settings())


@pytest.fixture
def bot_server(bot_app) -> Iterator:
    from bot.slack.server import BotServer

    with BotServer(bot_app) as server:
        yield server


# -- the incident log on both engines --------------------------------------------------------

_database_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator:
    """One real PostgreSQL server on 127.0.0.1 for the session (never skipped: CI installs it)."""
    from bot.sandbox.postgres import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path) -> str | Path:
    """Where an incident log lives: a SQLite file, or a fresh database on the test server.

    Tests that take this run once per engine: the store keeps one behaviour on both.
    """
    if request.param == "sqlite":
        return tmp_path / "hokusai.db"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"t{next(_database_names)}_{os.getpid()}")


@pytest.fixture(scope="session")
def shared_mlflow(tmp_path_factory) -> Iterator:
    """MLflow takes seconds to start: the sandboxes of a test session share one (their
    breakage is elsewhere)."""
    from bot.sandbox.mlflow_server import MlflowServer
    from bot.sandbox.world import PUBLIC_HOSTNAME

    workdir = tmp_path_factory.mktemp("mlflow")
    hosts = [PUBLIC_HOSTNAME, "127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"]
    server = MlflowServer(workdir, allowed_hosts=hosts).start()
    server.seed()
    try:
        yield server
    finally:
        server.stop()
