"""Running the bot: /metrics for the operator, JSON log lines, and a shutdown that hands back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import httpx

from bot.config import load_config
from bot.incident.store import IncidentStore
from bot.sandbox import signing
from bot.settings import Settings
from bot.slack.scheduler import SummaryScheduler
from bot.slack.services import Services
from tests.doubles import REPO, RecordingOutbound
from tests.slack.processes import start_serve, stop


def _metric(page: str, name: str, labels: str) -> float:
    for line in page.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{labels}}} not on the page")


def test_metrics_count_acks_and_refusals_as_slack_sees_them(bot_env, slack_secrets, tmp_path):
    proc, url = start_serve({**os.environ, **bot_env}, tmp_path / "serve.log")
    try:
        base = url.removesuffix("/slack/events")
        for _ in range(3):
            signed = signing.slash_command(slack_secrets["signing_secret"], "help")
            assert httpx.post(url, content=signed.body, headers=signed.headers).status_code == 200
        forged = signing.slash_command("0" * 32, "help")
        assert httpx.post(url, content=forged.body, headers=forged.headers).status_code == 401
        page = httpx.get(base + "/metrics", timeout=5)
    finally:
        stop(proc)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    assert _metric(page.text, "hokusai_ack_seconds_count", 'outcome="acked"') == 3
    assert _metric(page.text, "hokusai_ack_seconds_count", 'outcome="refused"') == 1
    # Every ack of a help request is well inside Slack's 3 seconds.
    assert _metric(page.text, "hokusai_ack_seconds_bucket", 'le="3.0",outcome="acked"') == 3
    assert slack_secrets["signing_secret"] not in page.text


def test_json_log_format_writes_one_object_a_line(bot_env, tmp_path):
    env = {**os.environ, **bot_env, "HOKUSAI_LOG_FORMAT": "json"}
    proc, url = start_serve(env, tmp_path / "serve.log")
    try:
        forged = signing.slash_command("0" * 32, "help")
        httpx.post(url, content=forged.body, headers=forged.headers)
        time.sleep(0.5)
    finally:
        stop(proc)
    lines = [
        line
        for line in (tmp_path / "serve.log").read_text().splitlines()
        if line and not line.startswith("hokusai: listening on")  # the CLI's own output
    ]
    records = [json.loads(line) for line in lines]
    assert records, "the refused request was not logged"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert bot_env["SLACK_SIGNING_SECRET"] not in "\n".join(lines)


def test_sigterm_stops_serve_cleanly(bot_env, tmp_path):
    proc, _ = start_serve({**os.environ, **bot_env}, tmp_path / "serve.log")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


def test_stopping_hands_the_summary_leases_back_to_the_other_replicas(tmp_path):
    db = tmp_path / "hokusai.db"
    now = datetime.now(UTC)
    store = IncidentStore(db)
    inc = store.declare_incident("Registry 404s", channel_id="CINC", commander="U1", now=now)
    services = Services(
        Settings(hokusai_db=db), load_config(REPO / "hokusai.yml"), RecordingOutbound()
    )
    scheduler = SummaryScheduler(services, holder="replica-a")
    assert store.try_lease(f"summary:{inc.id}", "replica-a", 120, incident_id=inc.id, now=now)
    assert not store.try_lease(f"summary:{inc.id}", "replica-b", 120, now=now)
    asyncio.run(scheduler.stop())
    assert store.try_lease(f"summary:{inc.id}", "replica-b", 120, now=now + timedelta(seconds=1))
