"""The real Bolt app with fake checks a test can switch from failing to passing."""

from __future__ import annotations

import pytest

from bot.diagnosis.runner import Runner
from tests.incident.chat import Chat, NoAws, fake_checks


@pytest.fixture
def app(bot_app, monkeypatch):
    from bot.slack.services import Services

    state = {"failing": True}
    monkeypatch.setattr(
        Services,
        "runner",
        lambda self, env: Runner(env, aws=NoAws(), checks=fake_checks(state["failing"])),
    )
    bot_app.test_state = state
    return bot_app


@pytest.fixture
def chat(app, slack, slack_secrets) -> Chat:
    return Chat(app, slack, slack_secrets)
