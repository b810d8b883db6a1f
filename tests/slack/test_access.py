"""access.channels and access.environments, as a person meets them in Slack."""

from __future__ import annotations

import httpx
import pytest
import yaml

from bot.sandbox import signing
from tests.conftest import REPO


@pytest.fixture
def guarded_server(bot_env, tmp_path, monkeypatch):
    data = yaml.safe_load((REPO / "hokusai.yml").read_text())
    data["access"] = {
        "channels": ["C0ALLOWED", "inc-*"],
        "environments": {"development": {"users": ["U0BOSS"]}},
    }
    path = tmp_path / "hokusai.yml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("HOKUSAI_CONFIG", str(path))
    from bot.settings import load_settings
    from bot.slack.app import build_app
    from bot.slack.server import BotServer

    with BotServer(build_app(load_settings())) as server:
        yield server


def _send(server, slack, secret, text, *, channel_id, channel_name, user_id="U0ONCALL"):
    request = signing.slash_command(
        secret,
        text,
        channel_id=channel_id,
        channel_name=channel_name,
        user_id=user_id,
        response_url=slack.response_url(f"{channel_id}-{user_id}-{text}"),
    )
    reply = httpx.post(server.events_url, content=request.body, headers=request.headers)
    server.drain(30)
    return reply


def test_a_channel_outside_access_channels_is_refused(guarded_server, slack, slack_secrets):
    reply = _send(
        guarded_server,
        slack,
        slack_secrets["signing_secret"],
        "diagnose",
        channel_id="C0RANDOM",
        channel_name="random",
    )
    assert "not enabled in this channel" in reply.json()["text"]
    assert not slack.calls_to("chat.postMessage")


def test_help_works_anywhere(guarded_server, slack, slack_secrets):
    reply = _send(
        guarded_server,
        slack,
        slack_secrets["signing_secret"],
        "help",
        channel_id="C0RANDOM",
        channel_name="random",
    )
    assert "diagnose" in reply.json()["text"]


def test_a_restricted_environment_is_refused_to_others_with_the_reason(
    guarded_server, slack, slack_secrets
):
    # A glob match on the channel name lets the command in; the environment rule stops it.
    _send(
        guarded_server,
        slack,
        slack_secrets["signing_secret"],
        "diagnose env=development",
        channel_id="C0INC",
        channel_name="inc-20261126-registry",
    )
    answers = [r.get("text", "") for r in slack.responses()]
    assert any("access.environments.development" in text for text in answers), answers
    assert not slack.calls_to("chat.postMessage")  # nothing ran, nothing was posted
