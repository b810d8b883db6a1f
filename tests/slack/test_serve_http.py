"""`hokusai serve` as a real process on a free loopback port, driven over HTTP."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from bot.sandbox import signing
from tests.slack.processes import run_cli, start_serve, stop


@pytest.fixture
def served(bot_env, tmp_path):
    """`hokusai serve --port 0` in a subprocess; yields its events URL."""
    proc, url = start_serve({**os.environ, **bot_env}, tmp_path / "serve.log")
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture
def served_on(bot_env, database, tmp_path):
    """`hokusai serve` with its incident log on each engine in turn (SQLite, PostgreSQL)."""
    env = {**os.environ, **bot_env, "HOKUSAI_DB": str(database)}
    proc, url = start_serve(env, tmp_path / "serve.log")
    try:
        yield url
    finally:
        stop(proc)


def post(url: str, request: signing.SignedRequest) -> httpx.Response:
    return httpx.post(url, content=request.body, headers=request.headers, timeout=10)


def test_help_is_answered_in_the_ack(served, slack_secrets):
    reply = post(served, signing.slash_command(slack_secrets["signing_secret"], "help"))
    assert reply.status_code == 200
    body = reply.json()
    assert body["response_type"] == "ephemeral"
    assert "diagnose" in body["text"] and "help" in body["text"]


def test_healthz(served):
    base = served.removesuffix("/slack/events")
    assert httpx.get(base + "/healthz", timeout=5).json() == {"ok": True}


def test_bad_signature_is_refused(served, slack_secrets):
    request = signing.slash_command("0" * 32, "help")
    assert post(served, request).status_code == 401


def test_tampered_body_is_refused(served, slack_secrets):
    request = signing.slash_command(slack_secrets["signing_secret"], "help")
    tampered = signing.SignedRequest(request.body.replace(b"help", b"diag"), request.headers)
    assert post(served, tampered).status_code == 401


def test_stale_timestamp_is_refused(served, slack_secrets):
    old = int(time.time()) - 6 * 60
    request = signing.slash_command(slack_secrets["signing_secret"], "help", timestamp=old)
    assert post(served, request).status_code == 401


def test_unknown_subcommand_gets_usage(served, slack_secrets):
    reply = post(served, signing.slash_command(slack_secrets["signing_secret"], "frobnicate"))
    assert reply.status_code == 200
    text = reply.json()["text"]
    assert "frobnicate" in text and "/hokusai diagnose" in text


def test_missing_setting_stops_startup_with_one_line(bot_env):
    env = {k: v for k, v in {**os.environ, **bot_env}.items() if k != "SLACK_SIGNING_SECRET"}
    proc = run_cli("serve", "--port", "0", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hokusai serve: SLACK_SIGNING_SECRET is not set"


def test_bad_config_stops_startup_naming_file_and_field(bot_env, tmp_path):
    bad = tmp_path / "hokusai.yml"
    bad.write_text("default_env: prod\nenvironments: {}\n")
    env = {**os.environ, **bot_env, "HOKUSAI_CONFIG": str(bad)}
    proc = run_cli("serve", "--port", "0", env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert str(bad) in proc.stderr and "default_env" in proc.stderr


def _declare(secret: str, slack, retry_num: int | None = None, trigger_id: str = "T1.redeliver"):
    return signing.slash_command(
        secret,
        "incident declare Registry down channel=here",
        response_url=slack.response_url("declare"),
        trigger_id=trigger_id,
        retry_num=retry_num,
    )


def test_redelivered_command_is_acked_and_not_handled_twice(served_on, slack, slack_secrets):
    served = served_on
    first = _declare(slack_secrets["signing_secret"], slack)
    assert post(served, first).status_code == 200
    slack.wait_for("chat.postMessage", count=1, timeout=20)
    # Slack thinks the first ack timed out and sends the same body again.
    again = signing.SignedRequest(
        first.body,
        {
            **signing.sign(slack_secrets["signing_secret"], first.body, int(time.time())),
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Retry-Num": "1",
            "X-Slack-Retry-Reason": "http_timeout",
        },
    )
    assert post(served, again).status_code == 200
    time.sleep(1.5)
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1, [p.args.get("text") for p in posts]
    assert "Registry down" in posts[0].args["text"]


def test_a_rate_limited_post_still_arrives(served, slack, slack_secrets):
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    request = _declare(slack_secrets["signing_secret"], slack, trigger_id="T2.ratelimited")
    assert post(served, request).status_code == 200
    posts = slack.wait_for("chat.postMessage", count=2, timeout=20)
    assert len(posts) == 2  # the 429 and its retry after Retry-After
    assert any("Registry down" in m["text"] for m in slack.messages("C0INCIDENT"))


def test_a_malformed_token_stops_startup_naming_the_variable(bot_env):
    env = {**os.environ, **bot_env, "SLACK_BOT_TOKEN": "not-a-bot-token"}
    proc = run_cli("serve", "--port", "0", env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("hokusai serve: SLACK_BOT_TOKEN is invalid")
    assert "not-a-bot-token" not in proc.stderr  # the value itself is never echoed


def test_a_typed_mention_is_not_turned_into_a_ping(served, slack, slack_secrets):
    # Slack escapes what people type: "<!channel>" arrives as "&lt;!channel&gt;".
    request = signing.slash_command(
        slack_secrets["signing_secret"],
        "incident declare &lt;!channel&gt; registry down channel=here",
        response_url=slack.response_url("mention"),
        trigger_id="T3.mention",
    )
    assert post(served, request).status_code == 200
    (posted,) = slack.wait_for("chat.postMessage", count=1, timeout=20)
    sent = str(posted.args)
    assert "registry down" in sent
    assert "<!channel>" not in sent
