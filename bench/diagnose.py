"""Benchmark: a full diagnose run, concurrent against one check at a time.

Builds the sandbox platform in moto (in-process), then runs every registered check with a
fixed latency L added to every AWS call and every HTTP request, first concurrently and then
with ``concurrency=1``, in the same process. Prints both wall times, their ratio, and the
slowest chain of dependent checks (the sum of the one-at-a-time durations along the longest
``needs`` chain): the floor a concurrent run cannot beat.

Goals: concurrent <= 1.5 x the slowest chain; concurrent >= 3 x faster than one at a time.

    .venv/bin/python bench/diagnose.py [--latency 0.1] [--scenario seed-outage]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import boto3
import httpx
from moto import mock_aws

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.config import DnsSettings, Environment, load_config  # noqa: E402
from bot.diagnosis.aws import AwsCaller, read_only_session  # noqa: E402
from bot.diagnosis.runner import DiagnoseReport, Runner  # noqa: E402
from bot.sandbox.dns_server import DnsServer  # noqa: E402
from bot.sandbox.platform import build_platform  # noqa: E402


def _answer(request: httpx.Request) -> httpx.Response:
    """A plausible MLflow/API answer for every probe; the latency comes from the runner."""
    if request.url.path.endswith("/health"):
        return httpx.Response(200, text="OK")
    return httpx.Response(200, json={"experiments": [], "registered_models": []})


async def _run(env: Environment, latency: float, concurrency: int | None) -> DiagnoseReport:
    aws = AwsCaller(read_only_session(env.region), latency=latency, max_workers=32)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(_answer)) as http:
            runner = Runner(
                env, aws=aws, http=http, secrets={}, http_latency=latency, concurrency=concurrency
            )
            return await runner.run()
    finally:
        aws.close()


def slowest_chain(env: Environment, report: DiagnoseReport) -> tuple[float, list[str]]:
    """The longest ``needs`` chain, weighed by each instance's measured duration (seconds)."""
    runner = Runner(env, secrets={})
    instances = runner.select()
    duration = {o.id: o.duration_ms / 1000 for o in report.outcomes}
    best: dict[str, tuple[float, list[str]]] = {}

    def chain(instance) -> tuple[float, list[str]]:
        if instance.id not in best:
            needs = [chain(n) for n in runner.needs_of(instance, instances)]
            before = max(needs, default=(0.0, []))
            best[instance.id] = (
                before[0] + duration.get(instance.id, 0.0),
                [*before[1], instance.id],
            )
        return best[instance.id]

    return max((chain(i) for i in instances), default=(0.0, []))


def slack_calls_per_diagnose(env: Environment, latency: float) -> dict[str, int]:
    """Send one signed `/hokusai diagnose` to the real bot; count its Slack Web API calls."""
    from bot.sandbox import fakes, signing
    from bot.sandbox.slack import SlackStandIn
    from bot.settings import load_settings
    from bot.slack.app import build_app
    from bot.slack.server import BotServer

    config = load_config(REPO / "hokusai.yml")
    config = config.model_copy(update={"environments": {env.name: env}, "default_env": env.name})
    token, secret = fakes.slack_bot_token(), fakes.signing_secret()
    with tempfile.TemporaryDirectory() as tmp, SlackStandIn(bot_token=token) as slack:
        settings = load_settings(
            slack_bot_token=token,
            slack_signing_secret=secret,
            slack_api_url=slack.api_url,
            hokusai_db=Path(tmp) / "bench.db",
        )
        aws = AwsCaller(read_only_session(env.region), latency=latency, max_workers=32)
        http = httpx.AsyncClient(transport=httpx.MockTransport(_answer))

        async def delay(_: httpx.Request) -> None:
            await asyncio.sleep(latency)

        http.event_hooks["request"].append(delay)
        app = build_app(settings, config=config, aws=aws, http=http)
        with BotServer(app) as server:
            request = signing.slash_command(secret, "diagnose")
            httpx.post(server.events_url, content=request.body, headers=request.headers)
            server.drain(60)
        aws.close()
        counts: dict[str, int] = {}
        for call in slack.calls:
            if call.method != "auth.test":  # once per process, not per command
                counts[call.method] = counts.get(call.method, 0) + 1
        return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per AWS/HTTP call")
    parser.add_argument("--scenario", default="healthy")
    args = parser.parse_args(argv)

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    seed = load_config(REPO / "hokusai.yml").environment()
    with DnsServer({seed.public.hostname: ["127.0.0.1"]}) as dns_server, mock_aws():
        # MlflowClient speaks `requests`, not the runner's HTTP client: leave it out so nothing
        # leaves the machine (app.mlflow-client is skipped).
        env = seed.model_copy(
            update={"dns": DnsSettings(nameservers=[dns_server.address]), "mlflow": None}
        )
        build_platform(boto3.Session(region_name=env.region), env, scenario=args.scenario)
        asyncio.run(_run(env, 0.0, None))  # warm up: clients, models, imports
        start = time.perf_counter()
        concurrent = asyncio.run(_run(env, args.latency, None))
        concurrent_s = time.perf_counter() - start
        start = time.perf_counter()
        sequential = asyncio.run(_run(env, args.latency, 1))
        sequential_s = time.perf_counter() - start
        slack_calls = slack_calls_per_diagnose(env, args.latency)

    chain_s, chain_ids = slowest_chain(env, sequential)
    checks = len(concurrent.outcomes)
    print(
        f"diagnose benchmark: {checks} check instances, L = {args.latency * 1000:.0f} ms per call"
    )
    print(f"  one at a time : {sequential_s:6.2f} s")
    print(f"  concurrent    : {concurrent_s:6.2f} s")
    print(f"  ratio         : {sequential_s / concurrent_s:6.1f} x faster (goal >= 3)")
    print(f"  slowest chain : {chain_s:6.2f} s  {' -> '.join(chain_ids)}")
    print(f"  concurrent / slowest chain: {concurrent_s / chain_s:4.2f} (goal <= 1.5)")
    total_calls = sum(slack_calls.values())
    detail = ", ".join(f"{n} {method}" for method, n in sorted(slack_calls.items()))
    print(f"  Slack Web API calls for one /hokusai diagnose: {total_calls} ({detail})")
    ok = sequential_s / concurrent_s >= 3 and concurrent_s <= 1.5 * chain_s and total_calls <= 8
    print("  goals met" if ok else "  GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
