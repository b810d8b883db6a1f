"""Ack latency of /hokusai over loopback HTTP, against a bare Bolt app served the same way.

Prints p50/p99 for each and the p99 ratio (goal: at most 1.5, every ack far inside Slack's 3 s),
then 50 requests sent at once. Both apps run in this process behind uvicorn on 127.0.0.1.

``--burst``: the bad day instead. ``hokusai serve`` runs as its own process against the sandbox
platform (moto, the edge, MLflow, DNS, all on loopback); 50 ``/hokusai diagnose`` arrive at once
while ``/hokusai help`` arrives every 250 ms. Prints the help p99 during the burst and its ratio
to the quiet p99 measured just before (goals: p99 <= 500 ms, ratio <= 3), the slowest ack of
all (goal: every ack < 3 s), the serve process's peak RSS after the 50 diagnoses (goal <= 400 MB)
and its peak thread count, and how many messages were left unfinished (goal: none).

    .venv/bin/python bench/ack_latency.py [--n 200]
    .venv/bin/python bench/ack_latency.py --burst [--diagnoses 50]

``BENCH_KEEP_LOG=/tmp/serve.log`` keeps the serve process's log of the burst case.
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
from bot.sandbox.processes import start_serve, stop  # noqa: E402
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
    parser.add_argument("--burst", action="store_true", help="the burst case against serve")
    parser.add_argument("--diagnoses", type=int, default=50)
    args = parser.parse_args()
    if args.burst:
        return burst_main(args.diagnoses)
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


# ---------------------------------------------------------------- the burst case

HELP_EVERY = 0.25
QUIET_HELPS = 40


def _proc_status(pid: int) -> dict[str, int]:
    """RSS and peak RSS (MB) and thread count of a process, from /proc."""
    fields = dict(row.split(":", 1) for row in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {
        "rss": int(fields["VmRSS"].split()[0]) // 1024,
        "hwm": int(fields["VmHWM"].split()[0]) // 1024,
        "threads": int(fields["Threads"]),
    }


async def _help_every(
    url: str,
    secret: str,
    stop: asyncio.Event,
    timings: list[float],
    sent_at: list[float] | None = None,
) -> None:
    """``/hokusai help`` every HELP_EVERY seconds until ``stop``; each ack's latency (and,
    with ``sent_at``, when each was sent, on the ``time.perf_counter`` clock)."""
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            req = signing.slash_command(secret, "help")
            start = time.perf_counter()
            resp = await client.post(url, content=req.body, headers=req.headers)
            timings.append((time.perf_counter() - start) * 1000)
            if sent_at is not None:
                sent_at.append(start)
            assert resp.status_code == 200, resp.status_code
            try:
                await asyncio.wait_for(stop.wait(), HELP_EVERY)
            except TimeoutError:
                pass


def _unfinished(slack: SlackStandIn) -> tuple[int, int]:
    """(top-level messages in the channel, those still queued or mid-run)."""
    from bot.sandbox.slack import DEFAULT_CHANNEL_ID

    top = [
        m for m in slack.messages(DEFAULT_CHANNEL_ID) if m.get("thread_ts") in (None, "", m["ts"])
    ]
    stuck = [m for m in top if m.get("text", "").startswith(("Queued", "Diagnosing"))]
    return len(top), len(stuck)


async def _burst(url: str, secret: str, slack: SlackStandIn, pid: int, n: int) -> dict:
    stop = asyncio.Event()
    quiet: list[float] = []
    helper = asyncio.create_task(_help_every(url, secret, stop, quiet))
    while len(quiet) < QUIET_HELPS:
        await asyncio.sleep(HELP_EVERY)
    stop.set()
    await helper
    before = _proc_status(pid)
    stop = asyncio.Event()
    during: list[float] = []
    sent_at: list[float] = []
    helper = asyncio.create_task(_help_every(url, secret, stop, during, sent_at))
    peak_threads = 0
    await asyncio.sleep(HELP_EVERY * 2)  # the helps are already flowing when the burst lands
    start = time.perf_counter()
    acks = await _concurrent(url, secret, "diagnose", n)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        peak_threads = max(peak_threads, _proc_status(pid)["threads"])
        posted, stuck = _unfinished(slack)
        if posted >= n and stuck == 0:
            break
        await asyncio.sleep(0.5)
    took = time.perf_counter() - start
    stop.set()
    await helper
    after = _proc_status(pid)
    posted, stuck = _unfinished(slack)
    return {
        "quiet": quiet,
        "during": during,
        "during_at": [t - start for t in sent_at],
        "acks": acks,
        "took": took,
        "posted": posted,
        "stuck": stuck,
        "before": before,
        "after": after,
        "threads": max(peak_threads, after["threads"]),
    }


def burst_main(n: int) -> int:
    from bot.sandbox.world import Sandbox

    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    secret, token = fakes.signing_secret(), fakes.slack_bot_token()
    with (
        tempfile.TemporaryDirectory() as tmp,
        SlackStandIn(bot_token=token) as slack,
        Sandbox("seed-outage", workdir=Path(tmp) / "sandbox") as sandbox,
    ):
        env = {
            **os.environ,  # the sandbox's AWS endpoint, region and API key are in here
            "SLACK_BOT_TOKEN": token,
            "SLACK_SIGNING_SECRET": secret,
            "SLACK_API_URL": slack.api_url,
            "HOKUSAI_CONFIG": str(sandbox.config_path),
            "HOKUSAI_DB": str(Path(tmp) / "bench.db"),
        }
        log = Path(tmp) / "serve.log"
        proc, url = start_serve(env, log, cwd=ROOT)
        try:
            result = asyncio.run(_burst(url, secret, slack, proc.pid, n))
        finally:
            stop(proc)
        if os.environ.get("BENCH_KEEP_LOG"):
            Path(os.environ["BENCH_KEEP_LOG"]).write_text(log.read_text())
        errors = [x for x in log.read_text().splitlines() if "Traceback" in x or " ERROR " in x]

    quiet, during, acks = result["quiet"], result["during"], result["acks"]
    print(line("quiet: /hokusai help every 250 ms", quiet))
    print(line(f"burst: {n} x /hokusai diagnose acks", acks))
    print(line("burst: /hokusai help every 250 ms", during))
    p99, quiet_p99 = percentile(during, 99), percentile(quiet, 99)
    ratio = p99 / quiet_p99
    print(
        f"help p99 during the burst: {p99:.0f} ms (goal <= 500: "
        f"{'ok' if p99 <= 500 else 'OVER GOAL'}); ratio to quiet p99 {quiet_p99:.0f} ms: "
        f"{ratio:.2f} (goal <= 3: {'ok' if ratio <= 3 else 'OVER GOAL'})"
    )
    slowest = max(range(len(during)), key=during.__getitem__)
    print(
        f"slowest help during the burst: {during[slowest]:.0f} ms, sent "
        f"{result['during_at'][slowest]:+.2f} s from the moment the {n} diagnoses were sent"
    )
    worst = max(max(acks), max(during), max(quiet))
    print(
        f"slowest ack of all: {worst:.0f} ms (every ack < 3000 ms: "
        f"{'yes' if worst < 3000 else 'NO'})"
    )
    hwm = result["after"]["hwm"]
    print(
        f"serve RSS: {result['before']['rss']} MB before the burst, {result['after']['rss']} MB "
        f"after; peak {hwm} MB (goal <= 400: {'ok' if hwm <= 400 else 'OVER GOAL'}); "
        f"peak threads {result['threads']}"
    )
    print(
        f"{n} diagnoses: {result['posted']} messages, {result['stuck']} left queued or mid-run, "
        f"all done in {result['took']:.0f} s; {len(errors)} error lines in the serve log"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
