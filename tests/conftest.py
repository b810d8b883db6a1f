"""Fixtures shared by the whole suite: fake secrets, the Slack stand-in, a running bot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox import fakes

REPO = Path(__file__).resolve().parent.parent

# Loopback traffic must never go through a proxy from the environment (FIELD-NOTES).
os.environ["NO_PROXY"] = "127.0.0.1,localhost" + (
    "," + os.environ["NO_PROXY"] if os.environ.get("NO_PROXY") else ""
)
os.environ["no_proxy"] = os.environ["NO_PROXY"]
# slack_sdk ignores NO_PROXY and would send loopback calls through a configured proxy.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)


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
    from bot.app import build_app
    from bot.settings import load_settings

    return build_app(load_settings())


@pytest.fixture
def bot_server(bot_app) -> Iterator:
    from bot.server import BotServer

    with BotServer(bot_app) as server:
        yield server
