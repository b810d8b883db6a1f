"""Diagnoses beyond the per-process limit queue and say so; no message is left mid-run.

The real Bolt app behind uvicorn, signed requests, the Slack stand-in, stand-in checks that
wait until the test lets them finish.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from bot.diagnosis.checks.base import Check, CheckResult
from bot.sandbox import signing
from bot.sandbox.slack import DEFAULT_CHANNEL_ID
from bot.settings import load_settings
from bot.slack.app import build_app
from bot.slack.run_queue import RunQueue
from bot.slack.server import BotServer


class Gate:
    """Checks wait here until the test opens it."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def checks(self) -> dict[str, Check]:
        async def waits(ctx) -> CheckResult:
            while not self.opened.is_set():
                await asyncio.sleep(0.02)
            return CheckResult.passed("registry.hokus.ai resolves")

        return {"dns.waits": Check("dns.waits", "dns", "waits for the test", waits, timeout=30)}


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def served(bot_env, monkeypatch, gate):
    monkeypatch.setenv("HOKUSAI_MAX_DIAGNOSES", "1")
    with BotServer(build_app(load_settings(), checks=gate.checks())) as server:
        yield server


def _diagnose(server: BotServer, secret: str, slack, key: str) -> None:
    request = signing.slash_command(secret, "diagnose", response_url=slack.response_url(key))
    assert httpx.post(server.events_url, content=request.body, headers=request.headers).is_success


def _texts(slack) -> list[str]:
    return [m["text"] for m in slack.messages(DEFAULT_CHANNEL_ID)]


def _wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_diagnose_beyond_the_limit_says_queued_then_runs(served, slack, slack_secrets, gate):
    secret = slack_secrets["signing_secret"]
    for key in ("first", "second", "third"):
        _diagnose(served, secret, slack, key)
    _wait_for(lambda: len(_texts(slack)) == 3)
    first, second, third = _texts(slack)
    assert first.startswith("Diagnosing development")
    assert second.startswith("Queued: diagnose development") and "0 ahead" in second
    assert "1 ahead" in third
    gate.opened.set()
    served.drain(30)
    texts = _texts(slack)
    assert len(texts) == 3
    assert not any(t.startswith(("Queued", "Diagnosing")) for t in texts), texts


def test_a_run_whose_final_view_fails_says_so_and_offers_run_again(
    served, slack, slack_secrets, gate
):
    gate.opened.set()
    # The final chat.update is refused (the progress frames may be too): the message must still
    # end up saying what happened, not "Diagnosing…".
    slack.fail_next("chat.update", error="internal_error", times=1)
    secret = slack_secrets["signing_secret"]
    _diagnose(served, secret, slack, "failing")
    served.drain(30)
    (message,) = slack.messages(DEFAULT_CHANNEL_ID)
    assert "did not finish" in message["text"], message["text"]
    (button,) = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["text"]["text"] == "Run again"
    click = signing.block_action(
        secret, button["action_id"], button["value"], message_ts=message["ts"]
    )
    assert httpx.post(served.events_url, content=click.body, headers=click.headers).is_success
    served.drain(30)
    texts = _texts(slack)
    assert len(texts) == 2
    assert "did not finish" not in texts[1] and not texts[1].startswith("Diagnosing")


async def test_the_queue_keeps_arrival_order_and_survives_a_cancelled_waiter():
    queue = RunQueue(limit=1)
    order: list[str] = []
    first = queue.join()
    second, third = queue.join(), queue.join()
    assert (first.started, queue.ahead(second), queue.ahead(third)) == (True, 0, 1)

    async def run(name: str, ticket) -> None:
        async with queue.running(ticket):
            order.append(name)
            await asyncio.sleep(0.01)

    waiting = asyncio.create_task(run("second", second))
    later = asyncio.create_task(run("third", third))
    await asyncio.sleep(0)
    waiting.cancel()
    await run("first", first)
    await later
    assert order == ["first", "third"]
    assert queue.active == 0 and queue.waiting == 0


def test_checks_that_keep_their_loop_busy_do_not_hold_up_an_ack(bot_env, slack, slack_secrets):
    """A diagnose's checks run on their own event loop: while one of them holds its loop (here
    outright, until the test lets go; in life, dozens of probes parsing answers), /hokusai help
    is still answered, and the diagnose still finishes once the check does."""
    release, holding = threading.Event(), threading.Event()

    async def hogs(ctx) -> CheckResult:
        holding.set()
        release.wait(30)  # blocks the loop the check runs on, as busy probes would
        return CheckResult.passed("registry.hokus.ai resolves")

    checks = {"dns.hogs": Check("dns.hogs", "dns", "holds its loop", hogs, timeout=40)}
    secret = slack_secrets["signing_secret"]
    with BotServer(build_app(load_settings(), checks=checks)) as server:
        try:
            _diagnose(server, secret, slack, "hog")
            assert holding.wait(15), "the check never started"
            helped = signing.slash_command(secret, "help")
            answer = httpx.post(
                server.events_url, content=helped.body, headers=helped.headers, timeout=10
            )
            assert answer.is_success and "first failing hop" in answer.json()["text"]
        finally:
            release.set()
        server.drain(30)
    (message,) = slack.messages(DEFAULT_CHANNEL_ID)
    assert not message["text"].startswith(("Queued", "Diagnosing")), message["text"]
