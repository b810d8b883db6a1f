"""App Home: opening the tab publishes the open incidents, through the real event path."""

from __future__ import annotations

import json

import httpx

from bot.sandbox import signing


def test_opening_app_home_shows_open_incidents(bot_server, slack, slack_secrets):
    secret = slack_secrets["signing_secret"]
    declare = signing.slash_command(
        secret,
        "incident declare Registry answers 404 sev=1 channel=here",
        response_url=slack.response_url("declare"),
    )
    httpx.post(bot_server.events_url, content=declare.body, headers=declare.headers)
    bot_server.drain(30)

    opened = signing.event(secret, {"type": "app_home_opened", "user": "U0ONCALL", "tab": "home"})
    reply = httpx.post(bot_server.events_url, content=opened.body, headers=opened.headers)
    assert reply.status_code == 200
    (publish,) = slack.wait_for("views.publish", count=1, timeout=20)
    assert publish.args["user_id"] == "U0ONCALL"
    shown = json.dumps(publish.args["view"])
    assert "Open incidents" in shown and "Registry answers 404" in shown
