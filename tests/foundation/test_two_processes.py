"""Two `hokusai serve` processes on one incident log: Slack's redelivery, sent to the other
process, creates no second incident (as behind a load balancer with two bot instances)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import httpx

from bot.sandbox import signing


def _serve(env: dict[str, str], log_path) -> tuple[subprocess.Popen, str]:
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 60
    while "listening on" not in log_path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    line = next(x for x in log_path.read_text().splitlines() if "listening on" in x)
    return proc, line.split("listening on ", 1)[1].strip()


def test_redelivery_to_another_process_creates_nothing_twice(bot_env, slack, tmp_path):
    env = {**os.environ, **bot_env, "PYTHONUNBUFFERED": "1"}
    first, url_a = _serve(env, tmp_path / "a.log")
    second, url_b = _serve(env, tmp_path / "b.log")
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
            proc.terminate()
            proc.wait(10)
    assert len(slack.calls_to("chat.postMessage")) == 1
    with sqlite3.connect(bot_env["HOKUSAI_DB"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 1
