"""`hokusai socket` as a real process, connected to a loopback Socket Mode stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bot.sandbox import fakes, signing
from tests.slack.processes import run_cli


@pytest.fixture
def socket_bot(slack, bot_env):
    env = {**os.environ, **bot_env, "SLACK_APP_TOKEN": fakes.slack_app_token()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "socket"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert slack.socket_connected(timeout=30), "the bot never opened a Socket Mode connection"
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_help_over_socket_mode(slack, socket_bot):
    payload = signing.slash_command_payload("help", response_url=slack.response_url("sm"))
    ack = slack.send_envelope("slash_commands", payload, timeout=10)
    text = ack["payload"]["text"]
    assert "help" in text and "first failing hop" in text
    assert slack.calls_to("apps.connections.open")[0].token.startswith("xapp-")


def test_unknown_subcommand_over_socket_mode(slack, socket_bot):
    payload = signing.slash_command_payload("reboot-prod", response_url=slack.response_url("u"))
    ack = slack.send_envelope("slash_commands", payload, timeout=10)
    assert "reboot-prod" in ack["payload"]["text"]
    assert "/hokusai help" in ack["payload"]["text"]
    assert not slack.calls_to("chat.postMessage")


def test_socket_mode_without_app_token_is_one_line(bot_env):
    env = {k: v for k, v in {**os.environ, **bot_env}.items() if k != "SLACK_APP_TOKEN"}
    proc = run_cli("socket", env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("hokusai socket: SLACK_APP_TOKEN is not set")
    assert proc.stderr.count("\n") == 1


def _declare_payload(slack, trigger_id: str) -> dict:
    return signing.slash_command_payload(
        "incident declare Registry down channel=here",
        response_url=slack.response_url(trigger_id),
        trigger_id=trigger_id,
    )


def test_redelivered_envelope_is_not_handled_twice(slack, socket_bot):
    payload = _declare_payload(slack, "T1.socket-redeliver")
    slack.send_envelope("slash_commands", payload, timeout=10)
    slack.wait_for("chat.postMessage", count=1, timeout=20)
    slack.send_envelope(
        "slash_commands", payload, retry_attempt=1, retry_reason="timeout", timeout=10
    )
    time.sleep(1.5)
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_rate_limited_post_still_arrives_over_socket_mode(slack, socket_bot):
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    slack.send_envelope("slash_commands", _declare_payload(slack, "T2.socket-429"), timeout=10)
    posts = slack.wait_for("chat.postMessage", count=2, timeout=20)
    assert len(posts) == 2
    assert any("Registry down" in m["text"] for m in slack.messages("C0INCIDENT"))


def test_a_refused_app_token_stops_socket_mode_with_one_line(slack_secrets, bot_env):
    from bot.sandbox.slack import SlackStandIn

    with SlackStandIn(
        bot_token=slack_secrets["bot_token"], app_token=fakes.slack_app_token()
    ) as strict:
        env = {
            **os.environ,
            **bot_env,
            "SLACK_API_URL": strict.api_url,
            "SLACK_APP_TOKEN": fakes.slack_app_token(),  # not the one Slack knows (revoked)
        }
        started = time.monotonic()
        proc = run_cli("socket", env=env)
    assert proc.returncode == 2
    assert time.monotonic() - started < 30
    assert proc.stderr == (
        "hokusai socket: SLACK_APP_TOKEN was refused by Slack (invalid_auth); make a new one\n"
    )
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["serve", "socket"])
def test_a_refused_bot_token_stops_the_bot_with_one_line(bot_env, command):
    env = {
        **os.environ,
        **bot_env,
        "SLACK_BOT_TOKEN": fakes.slack_bot_token(),  # the stand-in answers invalid_auth
        "SLACK_APP_TOKEN": fakes.slack_app_token(),
    }
    args = ["serve", "--port", "0"] if command == "serve" else ["socket"]
    proc = run_cli(*args, env=env)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"hokusai {command}: SLACK_BOT_TOKEN was refused by Slack (invalid_auth); make a new one\n"
    )


def test_a_silent_socket_is_replaced_within_ten_seconds(slack, socket_bot):
    """A connection that dies without a close frame (pings unanswered) is noticed and a new
    one opened well before Slack's envelopes would be lost for long."""
    before = slack.sockets_accepted
    slack.go_silent()
    started = time.monotonic()
    while slack.sockets_accepted == before and time.monotonic() - started < 10:
        time.sleep(0.1)
    assert slack.sockets_accepted > before, "the silent socket was not replaced within 10 s"
    payload = signing.slash_command_payload("help", response_url=slack.response_url("after"))
    ack = slack.send_envelope("slash_commands", payload, timeout=10)
    assert "first failing hop" in ack["payload"]["text"]


def test_an_app_token_revoked_while_running_stops_the_process_with_one_line(slack, bot_env):
    app_token = fakes.slack_app_token()
    env = {**os.environ, **bot_env, "SLACK_APP_TOKEN": app_token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "socket"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert slack.socket_connected(timeout=30)
        slack.revoke(app_token)
        slack.send_disconnect()  # Slack asks the client to reconnect: it needs a new URL
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 2
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "hokusai socket: SLACK_APP_TOKEN was refused by Slack (token_revoked); make a new one"
    )


def test_sigterm_closes_the_socket_and_exits_cleanly(slack, socket_bot):
    socket_bot.send_signal(signal.SIGTERM)
    assert socket_bot.wait(15) == 0
    deadline = time.monotonic() + 5
    while slack.socket_count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert slack.socket_count == 0
