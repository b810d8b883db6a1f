"""When the incident log cannot be written, people are told in a sentence; nothing runs twice.

The real Bolt app behind uvicorn, signed requests, the Slack stand-in; the database is locked
by another connection holding an exclusive transaction, as another process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.diagnosis.checks.base import Check, CheckResult, Classification
from bot.sandbox import signing
from bot.sandbox.slack import DEFAULT_CHANNEL_ID
from bot.settings import load_settings
from bot.slack.app import build_app, services_of
from bot.slack.server import BotServer


@contextlib.contextmanager
def locked(db: Path) -> Iterator[None]:
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _checks() -> dict[str, Check]:
    async def resolves(ctx) -> CheckResult:
        await asyncio.sleep(0.01)
        return CheckResult.passed("registry.hokus.ai resolves")

    async def no_rule(ctx) -> CheckResult:
        return CheckResult.failed(
            "no listener rule matches /api/mlflow/*",
            Classification.CONFIGURATION,
            hint="add a rule for /api/mlflow/*",
        )

    return {
        "dns.stand-in": Check("dns.stand-in", "dns", "stand-in DNS check", resolves),
        "routing.stand-in": Check("routing.stand-in", "routing", "stand-in rule check", no_rule),
    }


@pytest.fixture
def served(bot_env):
    app = build_app(load_settings(), checks=_checks())
    # A lock held this long would be a fault anyway; the test need not wait the default.
    services_of(app).store().busy_timeout = 0.3
    with BotServer(app) as server:
        yield server


def _send(server: BotServer, request: signing.SignedRequest) -> None:
    reply = httpx.post(server.events_url, content=request.body, headers=request.headers)
    assert reply.status_code == 200
    server.drain(30)


def test_a_run_the_log_cannot_keep_is_posted_and_the_channel_told(
    served, slack, slack_secrets, bot_env, caplog
):
    caplog.set_level(logging.WARNING)
    request = signing.slash_command(
        slack_secrets["signing_secret"], "diagnose", response_url=slack.response_url("d1")
    )
    with locked(Path(bot_env["HOKUSAI_DB"])):
        _send(served, request)
    texts = [m["text"] for m in slack.messages(DEFAULT_CHANNEL_ID)]
    assert any("First failing hop" in t or "listener rule" in t for t in texts), texts
    assert (
        ":warning: Diagnose posted but not saved to the incident log: database is locked." in texts
    )
    assert not any(t.startswith("Diagnosing") for t in texts)
    assert "not recorded: the incident log is busy (database is locked)" in caplog.text
    with sqlite3.connect(bot_env["HOKUSAI_DB"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM diagnose_runs").fetchone()[0] == 0


def test_a_redelivery_that_cannot_be_checked_is_not_run(served, slack, slack_secrets, bot_env):
    request = signing.slash_command(
        slack_secrets["signing_secret"],
        "diagnose",
        response_url=slack.response_url("retry"),
        trigger_id="T9.retry-while-locked",
        retry_num=1,
        retry_reason="http_timeout",
    )
    with locked(Path(bot_env["HOKUSAI_DB"])):
        _send(served, request)
    assert slack.calls_to("chat.postMessage") == []  # no second run was started
    (answer,) = slack.responses("retry")
    assert "cannot tell whether this request was already handled" in answer["text"]
    assert "database is locked" in answer["text"]
    assert "StoreError" not in answer["text"]


def test_runbook_start_on_a_locked_log_says_why_in_a_sentence(
    served, slack, slack_secrets, bot_env
):
    request = signing.slash_command(
        slack_secrets["signing_secret"],
        "runbook start registry-unreachable",
        response_url=slack.response_url("rb"),
    )
    with locked(Path(bot_env["HOKUSAI_DB"])):
        _send(served, request)
    (answer,) = slack.responses("rb")
    assert "incident log is busy (database is locked)" in answer["text"]
    assert "StoreError" not in answer["text"]
