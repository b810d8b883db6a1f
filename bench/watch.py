"""Benchmark: what a watch costs per tick, alone and as one of 20 watching the same platform.

Builds the seed-outage platform in moto (in-process) and answers HTTP probes from a mock
transport, with a fixed latency L added to every AWS call and HTTP request. Then, in the same
process:

- one tick of a watch with only each run's own read cache (the baseline: what re-running
  diagnose for the checks and each probe of the burst costs), and with the tick's shared reads;
- 20 watches of the same environment ticking together, each on its own uncached caller
  (baseline), then all sharing the process's cache as the watch supervisor arranges;
- Slack: the chat.update calls 20 watches at a 10 s tick would make in a minute, and what
  the update budget lets through (Slack's chat.update is about 50 a minute).

Goals: at most 5 AWS calls per watched check per tick; 20 watches ticking together cost at
most 2 x one watch's AWS calls; at most 50 chat.update in any minute.

    .venv/bin/python bench/watch.py [--latency 0.05] [--watches 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import boto3
import httpx
from moto import mock_aws

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.config import DnsSettings, Environment, load_config  # noqa: E402
from bot.diagnosis.aws import AwsCaller, read_only_session  # noqa: E402
from bot.diagnosis.runner import Runner  # noqa: E402
from bot.sandbox.dns_server import DnsServer  # noqa: E402
from bot.sandbox.platform import build_platform  # noqa: E402
from bot.watch.engine import WatchEngine, select_instances  # noqa: E402
from bot.watch.limits import WatchLimits  # noqa: E402
from bot.watch.reads import TickReads  # noqa: E402
from bot.watch.supervisor import UpdateBudget  # noqa: E402

# What diagnose finds failing in the seed outage: the default scope of a watch there.
FAILED = ["routing.listener-rules[mlflow-direct]", "app.route-probe[mlflow-direct]"]


def _answer(request: httpx.Request) -> httpx.Response:
    """The seed outage's answers: FastAPI's 404 on MLflow's own paths, 200 elsewhere."""
    if request.url.path.endswith("/health"):
        return httpx.Response(200, text="OK")
    if request.url.path.startswith("/api/2.0/mlflow/"):
        return httpx.Response(404, json={"detail": "Not Found"})
    return httpx.Response(200, json={"experiments": [], "registered_models": []})


def _http(latency: float) -> httpx.AsyncClient:
    async def delay(_: httpx.Request) -> None:
        await asyncio.sleep(latency)

    return httpx.AsyncClient(
        transport=httpx.MockTransport(_answer), event_hooks={"request": [delay]}
    )


async def _tick(engines: list[WatchEngine]) -> float:
    start = time.perf_counter()
    ticks = await asyncio.gather(*(e.tick(spread=0.0) for e in engines))
    for engine, tick in zip(engines, ticks, strict=True):
        engine.fold(tick)
    return time.perf_counter() - start


async def _watches(
    env: Environment, scopes: list[str], count: int, latency: float, *, shared: bool
) -> tuple[int, float, int]:
    """AWS calls and seconds for one tick of ``count`` watches, and the HTTP requests made."""
    callers = [AwsCaller(read_only_session(env.region), latency=latency, max_workers=32)]
    if not shared:
        callers += [
            AwsCaller(read_only_session(env.region), latency=latency, max_workers=32)
            for _ in range(count - 1)
        ]
    requests = 0

    async def count_request(_: httpx.Request) -> None:
        nonlocal requests
        requests += 1

    async with _http(latency) as http:
        http.event_hooks["request"].append(count_request)
        cache = TickReads(callers[0], ttl=15.0) if shared else None
        engines = []
        for n in range(count):
            aws = cache if shared else callers[n]
            runner = Runner(env, aws=aws, http=http, secrets={})  # type: ignore[arg-type]
            engines.append(WatchEngine(runner, select_instances(runner, scopes), burst=5))
        seconds = await _tick(engines)
    calls = sum(len(c.calls) for c in callers)
    for caller in callers:
        caller.close()
    return calls, seconds, requests


def _slack_updates_per_minute(watches: int, every: float, per_minute: int) -> tuple[int, int]:
    """chat.update calls wanted and let through in one minute of ticks."""
    now = [0.0]
    budget = UpdateBudget(per_minute, clock=lambda: now[0])
    wanted = sent = 0
    ticks = int(60 / every)
    for tick in range(ticks):
        for n in range(watches):
            now[0] = tick * every + n * 0.01
            wanted += 1
            sent += budget.take()
    return wanted, sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per AWS/HTTP call")
    parser.add_argument("--watches", type=int, default=20)
    args = parser.parse_args(argv)

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    seed = load_config(REPO / "hokusai.yml").environment()
    results = {}
    with DnsServer({seed.public.hostname: ["127.0.0.1"]}) as dns_server, mock_aws():
        # MlflowClient speaks `requests`, not the runner's HTTP client: leave it out so nothing
        # leaves the machine (app.mlflow-client is skipped).
        env = seed.model_copy(
            update={"dns": DnsSettings(nameservers=[dns_server.address]), "mlflow": None}
        )
        build_platform(boto3.Session(region_name=env.region), env, scenario="seed-outage")
        asyncio.run(_watches(env, [], 1, 0.0, shared=False))  # warm up: clients, models
        whole = select_instances(Runner(env, secrets={}), [])
        for label, scopes in (("the diagnose's failures", FAILED), ("the whole path", [])):
            base = asyncio.run(_watches(env, scopes, 1, args.latency, shared=False))
            cached = asyncio.run(_watches(env, scopes, 1, args.latency, shared=True))
            results[label] = (base, cached)
        many_base = asyncio.run(_watches(env, FAILED, args.watches, args.latency, shared=False))
        many = asyncio.run(_watches(env, FAILED, args.watches, args.latency, shared=True))
        many_whole = asyncio.run(_watches(env, [], args.watches, args.latency, shared=True))

    print(f"watch benchmark: seed outage in moto, L = {args.latency * 1000:.0f} ms per call")
    for label, ((b_calls, _, _), (c_calls, _, c_req)) in results.items():
        checks = len(FAILED) if label != "the whole path" else len(whole)
        print(f"  one tick watching {label} ({checks} checks):")
        print(f"    AWS calls  per-run cache {b_calls:4d}   tick's shared reads {c_calls:4d}")
        print(f"    ratio      {b_calls / max(c_calls, 1):5.1f} x fewer calls")
        print(f"    per check  {c_calls / checks:5.2f} AWS calls a tick; HTTP requests {c_req}")
    n = args.watches
    single = results["the diagnose's failures"][1][0]
    print(f"  {n} watches of the diagnose's failures, ticking together:")
    print(f"    AWS calls  separate {many_base[0]:4d}   shared {many[0]:4d}   one watch {single}")
    print(f"    ratio      {many_base[0] / max(many[0], 1):5.1f} x fewer than separate")
    print(f"    cost       {many[0] / max(single, 1):5.2f} x one watch; tick {many[1]:.2f} s")
    print(
        f"  {n} watches of the whole path, shared: {many_whole[0]} AWS calls a tick, "
        f"{many_whole[2]} HTTP requests, {many_whole[1]:.2f} s"
    )
    limits = WatchLimits()
    wanted, sent = _slack_updates_per_minute(n, limits.min_every, limits.updates_per_minute)
    print(
        f"  Slack: {n} watches at a {limits.min_every:g} s tick want {wanted} chat.update a "
        f"minute; the budget sends {sent}"
    )
    per_check = max(
        results["the diagnose's failures"][1][0] / len(FAILED),
        results["the whole path"][1][0] / len(whole),
    )
    ok = per_check <= 5 and many[0] <= 2 * single and sent <= 50
    print("  goals met" if ok else "  GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
