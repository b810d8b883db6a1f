"""Ack latency of /hokusai over loopback HTTP, against a bare Bolt app served the same way.

Prints p50/p99 for each and the p99 ratio (goal: at most 1.5, every ack far inside Slack's 3 s),
then 50 requests sent at once. Both apps run in this process behind uvicorn on 127.0.0.1.

    .venv/bin/python bench/ack_latency.py [--n 200] [--with-diagnose]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from slack_bolt.async_app import AsyncApp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.sandbox import fakes, signing  # noqa: E402
from bot.sandbox.slack import SlackStandIn  # noqa: E402
from bot.slack.server import BotServer  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def bare_app(signing_secret: str, token: str, api_url: str) -> AsyncApp:
    from slack_sdk.web.async_client import AsyncWebClient

    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=api_url),
        signing_secret=signing_secret,
    )

    @app.command("/hokusai")
    async def _ack(ack) -> None:
        await ack()

    return app


def _quick_checks() -> dict:
    from bot.diagnosis.checks.base import Check, CheckResult

    async def quick(ctx) -> CheckResult:
        await asyncio.sleep(0.01)
        return CheckResult.passed("answers")

    return {
        "dns.quick": Check("dns.quick", "dns", "a stand-in DNS check", quick),
        "app.quick": Check("app.quick", "app", "a stand-in app check", quick),
    }


def sequential(
    url: str, secret: str, text: str, n: int, settle: BotServer | None = None
) -> list[float]:
    """``n`` requests one after another; with ``settle``, each waits for the previous one's
    background work first, so the figure is the ack path alone."""
    timings = []
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            if settle is not None:
                settle.drain(60)
            req = signing.slash_command(secret, text)
            start = time.perf_counter()
            resp = client.post(url, content=req.body, headers=req.headers)
            timings.append((time.perf_counter() - start) * 1000)
            assert resp.status_code == 200, resp.text
    return timings


async def _concurrent(url: str, secret: str, text: str, n: int) -> list[float]:
    async with httpx.AsyncClient(timeout=10) as client:

        async def one() -> float:
            req = signing.slash_command(secret, text)
            start = time.perf_counter()
            resp = await client.post(url, content=req.body, headers=req.headers)
            assert resp.status_code == 200, resp.text
            return (time.perf_counter() - start) * 1000

        return list(await asyncio.gather(*(one() for _ in range(n))))


def line(name: str, timings: list[float]) -> str:
    return (
        f"{name:<34} n={len(timings):<4} p50={statistics.median(timings):7.2f} ms  "
        f"p99={percentile(timings, 99):7.2f} ms  max={max(timings):7.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    secret, token = fakes.signing_secret(), fakes.slack_bot_token()
    with tempfile.TemporaryDirectory() as tmp, SlackStandIn(bot_token=token) as slack:
        os.environ.update(
            SLACK_BOT_TOKEN=token,
            SLACK_SIGNING_SECRET=secret,
            SLACK_API_URL=slack.api_url,
            HOKUSAI_CONFIG=str(ROOT / "hokusai.yml"),
            HOKUSAI_DB=str(Path(tmp) / "bench.db"),
        )
        from bot.settings import load_settings
        from bot.slack.app import build_app

        # /hokusai diagnose acks, then runs its checks in the background: here two quick
        # stand-in checks, so the run's own work (post, update, record) still happens.
        hokusai = build_app(load_settings(), checks=_quick_checks())
        bare = bare_app(secret, token, slack.api_url)
        with BotServer(hokusai) as ours, BotServer(bare, signing_secret=secret) as base:
            # Warm both (imports, auth.test, first connection) before measuring.
            sequential(ours.events_url, secret, "help", 5)
            sequential(base.events_url, secret, "help", 5)
            results = {}
            # Interleave rounds so machine noise hits both alike.
            rounds = 4
            per = args.n // rounds
            for name in ("bare", "help", "unknown", "diagnose", "diagnose-busy"):
                results[name] = []
            for _ in range(rounds):
                results["bare"] += sequential(base.events_url, secret, "help", per)
                results["help"] += sequential(ours.events_url, secret, "help", per)
                results["unknown"] += sequential(ours.events_url, secret, "frobnicate", per)
                results["diagnose"] += sequential(
                    ours.events_url, secret, "diagnose", per, settle=ours
                )
                results["diagnose-busy"] += sequential(ours.events_url, secret, "diagnose", per)
                ours.drain(120)
            # Warm both the same way, then alternate bursts so neither pays for going first.
            asyncio.run(_concurrent(ours.events_url, secret, "help", 50))
            asyncio.run(_concurrent(base.events_url, secret, "help", 50))
            burst_ours, burst_bare = [], []
            for _ in range(3):
                burst_bare += asyncio.run(_concurrent(base.events_url, secret, "help", 50))
                burst_ours += asyncio.run(_concurrent(ours.events_url, secret, "help", 50))

    print(line("bare AsyncApp (ack only)", results["bare"]))
    print(line("/hokusai help", results["help"]))
    print(line("/hokusai <unknown> (usage)", results["unknown"]))
    print(line("/hokusai diagnose", results["diagnose"]))
    print(line("/hokusai diagnose, back to back", results["diagnose-busy"]))
    base_p99 = percentile(results["bare"], 99)
    for name in ("help", "unknown", "diagnose"):
        ratio = percentile(results[name], 99) / base_p99
        verdict = "ok" if ratio <= 1.5 else "OVER GOAL"
        print(f"p99 ratio {name:<8} vs bare: {ratio:5.2f}  (goal <= 1.5: {verdict})")
    busy = percentile(results["diagnose-busy"], 99) / base_p99
    print(
        f"p99 ratio diagnose back to back (acks competing with the previous runs' work "
        f"for 2 cores): {busy:5.2f}"
    )
    print(line("50 at once (x3): /hokusai help", burst_ours))
    print(line("50 at once (x3): bare", burst_bare))
    ratio = percentile(burst_ours, 99) / percentile(burst_bare, 99)
    print(f"p99 ratio 50 at once vs bare: {ratio:5.2f}")
    worst = max(max(v) for v in (*results.values(), burst_ours))
    print(f"slowest ack of all: {worst:.1f} ms (Slack gives up at 3000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
