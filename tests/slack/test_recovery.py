"""`kill -9` mid-diagnose and mid-runbook-step, restart: nothing stays "running".

Two `hokusai serve` processes in turn on one incident log. Everything the checks ask (AWS, DNS,
the registry) is a loopback socket that accepts and never answers, so the first process is
surely mid-run when it is killed.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from bot.incident.store import IncidentStore
from bot.sandbox import signing
from bot.sandbox.slack import DEFAULT_CHANNEL_ID
from tests.doubles import REPO
from tests.slack.processes import start_serve, stop


@pytest.fixture
def black_hole() -> Iterator[tuple[int, int]]:
    """A TCP port that accepts and never answers, and a UDP port that never answers."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        yield tcp.getsockname()[1], udp.getsockname()[1]
    finally:
        tcp.close()
        udp.close()


@pytest.fixture
def env(bot_env, black_hole, tmp_path) -> dict[str, str]:
    tcp, udp = black_hole
    raw = yaml.safe_load((REPO / "hokusai.yml").read_text())
    development = raw["environments"]["development"]
    development["public"]["base_url"] = f"http://127.0.0.1:{tcp}"
    development["dns"] = {"nameservers": [f"127.0.0.1:{udp}"]}
    development["mlflow"] = {"tracking_uri": f"http://127.0.0.1:{tcp}/api/mlflow"}
    config = tmp_path / "hokusai.yml"
    config.write_text(yaml.safe_dump(raw))
    return {
        **os.environ,
        **bot_env,
        "HOKUSAI_CONFIG": str(config),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{tcp}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def _post(url: str, request: signing.SignedRequest) -> None:
    reply = httpx.post(url, content=request.body, headers=request.headers, timeout=10)
    assert reply.status_code == 200


def _wait(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _message(slack, needle: str) -> dict | None:
    for message in slack.messages(DEFAULT_CHANNEL_ID):
        if needle in json.dumps(message):
            return message
    return None


def _in_flight(env: dict[str, str]) -> int:
    with sqlite3.connect(env["HOKUSAI_DB"]) as conn:
        return conn.execute("SELECT COUNT(*) FROM in_flight").fetchone()[0]


def _buttons(message: dict) -> dict[str, dict]:
    return {
        e["text"]["text"]: e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }


def test_a_process_killed_mid_step_and_mid_diagnose_leaves_nothing_running(env, slack, tmp_path):
    secret = env["SLACK_SIGNING_SECRET"]
    IncidentStore(env["HOKUSAI_DB"]).declare_incident(
        "Registry down", channel_id=DEFAULT_CHANNEL_ID, commander="U0ONCALL"
    )
    first, url = start_serve(env, tmp_path / "first.log")
    try:
        _post(url, signing.slash_command(secret, "runbook start registry-unreachable"))
        walkthrough = _wait(lambda: _message(slack, "Runbook:"), "the walkthrough")
        # The whole path: its slowest checks wait out their timeouts on the black hole.
        _post(url, signing.slash_command(secret, "diagnose"))
        _wait(lambda: _message(slack, "Diagnosing development"), "the diagnose to start")
        # Last, so the step's DNS checks (a few seconds of timeout) are surely still running.
        run = _buttons(walkthrough)["Run"]
        _post(
            url,
            signing.block_action(
                secret,
                run["action_id"],
                run["value"],
                message_ts=walkthrough["ts"],
                message_blocks=walkthrough["blocks"],
            ),
        )
        _wait(lambda: "running" in json.dumps(_message(slack, "Runbook:")), "the step to run")
        _wait(lambda: _in_flight(env) == 2, "both to be noted in flight")
    finally:
        first.kill()  # kill -9: no shutdown, no goodbye
        first.wait(10)
    assert _in_flight(env) == 2

    second, _ = start_serve(env, tmp_path / "second.log")
    try:
        diagnose = _wait(
            lambda: _message(slack, "was interrupted"), "the diagnose to be marked interrupted"
        )
        step = _wait(
            lambda: (m := _message(slack, "Runbook:")) and "interrupted" in json.dumps(m) and m,
            "the step to be marked interrupted",
        )
    finally:
        stop(second)
    assert "Run again" in _buttons(diagnose)
    assert not any(
        m["text"].startswith(("Diagnosing", "Queued")) for m in slack.messages(DEFAULT_CHANNEL_ID)
    )
    assert "Run" in _buttons(step)  # the stuck step can be run again, not only skipped
    assert "running…" not in json.dumps(step)
    with sqlite3.connect(env["HOKUSAI_DB"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM in_flight").fetchone()[0] == 0
        (state,) = conn.execute("SELECT state FROM runbook_sessions").fetchone()
        assert '"running"' not in state
        timeline = [r[0] for r in conn.execute("SELECT text FROM timeline")]
    assert any("interrupted before its checks reported back" in t for t in timeline), timeline
