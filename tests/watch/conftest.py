"""Watch fixtures: short ticks (tests only), a seed-outage sandbox, and polling helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.watch.limits import WatchLimits

# Ticks far shorter than anyone may ask for: an internal override the app takes from tests.
FAST = WatchLimits(
    min_every=0.1,
    lease_margin=3.0,  # a loaded test machine can stall a renewal for a second or two
    adopt_every=0.2,
    ticket_every=0.0,
    updates_per_minute=6000,
)
EVERY = 0.5  # seconds; longer than the edge's rule cache, so a fix is seen within a tick


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def watch_row(chat: Any, watch_id: int = 1) -> Any:
    return chat.server.app.hokusai_services.store().watch(watch_id)


def top_level(chat: Any, containing: str) -> list[dict[str, Any]]:
    """Channel messages (not thread replies) whose text contains ``containing``."""
    return [m for m in chat.messages() if not m.get("thread_ts") and containing in m["text"]]


def thread_of(chat: Any, ts: str) -> list[dict[str, Any]]:
    return [m for m in chat.messages() if m.get("thread_ts") == ts and m["ts"] != ts]


@pytest.fixture(scope="module")
def seed_sandbox(shared_mlflow, tmp_path_factory) -> Iterator[Any]:
    """One seed-outage sandbox for the module; each test starts it broken."""
    from bot.sandbox.world import Sandbox

    with Sandbox(
        "seed-outage", mlflow=shared_mlflow, workdir=tmp_path_factory.mktemp("sandbox")
    ) as sandbox:
        yield sandbox


def mlflow_direct_status(sandbox: Any) -> int:
    """What the edge answers for MLflow's own path right now."""
    import httpx

    url = sandbox.edge.url + "/api/2.0/mlflow/experiments/search?max_results=1"
    return httpx.get(url, timeout=10).status_code


def fix_and_wait(sandbox: Any) -> None:
    """Apply the fix and wait until the edge routes by it (it re-reads rules twice a second)."""
    sandbox.fix()
    wait_for("the edge to route by the fix", lambda: mlflow_direct_status(sandbox) == 200)


@pytest.fixture
def broken(seed_sandbox) -> Iterator[Any]:
    """The seed outage, broken again if an earlier test fixed it."""
    seed_sandbox.break_again()
    wait_for("the edge to route by the break", lambda: mlflow_direct_status(seed_sandbox) == 404)
    yield seed_sandbox


@pytest.fixture
def chat(broken, tmp_path) -> Iterator[Any]:
    """The real bot over signed HTTP, with an incident declared and a diagnose run."""
    from bot.sandbox.conversation import Conversation

    with Conversation(
        broken.config_path, tmp_path / "hokusai.db", app_overrides={"watch_limits": FAST}
    ) as conversation:
        conversation.command('incident declare "Registry answers 404" sev=2 channel=here')
        conversation.command("diagnose")
        yield conversation
