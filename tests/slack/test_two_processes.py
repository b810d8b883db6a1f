"""Two `hokusai serve` processes on one incident log (a SQLite file, or PostgreSQL): Slack's
redelivery, sent to the other process, creates no second incident (as behind a load balancer
with two bot instances)."""

from __future__ import annotations

import os
import time

import httpx

from bot.incident.store import IncidentStore
from bot.sandbox import signing
from tests.slack.processes import start_serve, stop


def test_redelivery_to_another_process_creates_nothing_twice(bot_env, slack, tmp_path, database):
    env = {**os.environ, **bot_env, "HOKUSAI_DB": str(database)}
    first, url_a = start_serve(env, tmp_path / "a.log")
    second, url_b = start_serve(env, tmp_path / "b.log")
    try:
        secret = bot_env["SLACK_SIGNING_SECRET"]
        request = signing.slash_command(
            secret,
            "incident declare Registry down sev=1 channel=here",
            response_url=slack.response_url("declare"),
            trigger_id="T1.two-processes",
        )
        assert httpx.post(url_a, content=request.body, headers=request.headers).status_code == 200
        slack.wait_for("chat.postMessage", count=1, timeout=30)
        retry = signing.slash_command(
            secret,
            "incident declare Registry down sev=1 channel=here",
            response_url=slack.response_url("declare"),
            trigger_id="T1.two-processes",
            retry_num=1,
            retry_reason="http_timeout",
        )
        assert httpx.post(url_b, content=retry.body, headers=retry.headers).status_code == 200
        time.sleep(2)
    finally:
        for proc in (first, second):
            stop(proc)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(IncidentStore(database).list_incidents()) == 1
