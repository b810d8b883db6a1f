"""Benchmark: one diagnose while the account around the platform grows, step by step.

Builds the sandbox platform in moto (in-process), then grows the account one dimension at a
time, to half and then to full size, keeping what earlier steps added:

    listener rules     up to the listener limit (100) on the registry's HTTPS listener
    load balancers     +50 (each with its listeners)
    target groups      +300, each with an ECS service in the cluster
    Cloud Map          +200 services in the platform's namespace, one instance each
    log lines          +100,000 across the services' log groups, over the last hour
    access-log objects +1,500 in the access-log bucket, one a minute back from now

After each step one diagnose runs (every check, a fixed latency L added to every AWS call and
HTTP request) and the bench prints its wall time, the AWS calls by operation, the peak RSS
during the run, the size of the ``--json`` report, and how close the slowest check came to
its timeout. At the end, the growth law of each dimension: how the calls grew when it did.

Goals: every dimension constant in calls, bounded (it reaches a cap), or growing by pages
only (at most one call per 100 items added); no check over its timeout budget; wall at the
largest step <= 1.5 x baseline (the baseline and the largest step keep the best of ``--runs``).

    .venv/bin/python bench/scale.py [--latency 0.05] [--scenario healthy] [--fraction 1.0]

``--fraction 0.1`` grows every dimension to a tenth (a quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
from moto import mock_aws

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.config import DnsSettings, Environment, load_config  # noqa: E402
from bot.diagnosis.aws import AwsCaller, read_only_session  # noqa: E402
from bot.diagnosis.checks import REGISTRY  # noqa: E402  (registers every check)
from bot.diagnosis.checks.base import Status  # noqa: E402
from bot.diagnosis.runner import DiagnoseReport, Runner  # noqa: E402
from bot.sandbox.dns_server import DnsServer  # noqa: E402
from bot.sandbox.large_account import (  # noqa: E402
    LISTENER_RULE_LIMIT,
    add_access_logs,
    add_cloud_map_services,
    add_listener_rules,
    add_load_balancers,
    add_log_lines,
    add_services,
)
from bot.sandbox.platform import Platform, build_platform  # noqa: E402

PAGE_ITEMS = 100  # "growing by pages": at most one more call per this many items


def _answer(request: httpx.Request) -> httpx.Response:
    """A plausible MLflow/API answer for every probe; the latency comes from the runner."""
    if request.url.path.endswith("/health"):
        return httpx.Response(200, text="OK")
    return httpx.Response(200, json={"experiments": [], "registered_models": []})


# -- growing the account ----------------------------------------------------------------------


@dataclass
class Account:
    """The moto account being grown, and how much of each dimension it holds beyond the seed."""

    session: boto3.Session
    env: Environment
    platform: Platform
    added: Counter = field(default_factory=Counter)


def _grow_rules(account: Account, size: int) -> None:
    add_listener_rules(account.session, account.platform, size)
    account.added["rules"] = size


def _grow_load_balancers(account: Account, size: int) -> None:
    have = account.added["load_balancers"]
    add_load_balancers(account.session, account.platform, size - have, start=have)
    account.added["load_balancers"] = size


def _grow_services(account: Account, size: int) -> None:
    have = account.added["services"]
    add_services(account.session, account.env, account.platform, size - have, start=have)
    account.added["services"] = size


def _grow_cloud_map(account: Account, size: int) -> None:
    have = account.added["cloud_map"]
    add_cloud_map_services(account.session, account.platform, size - have, start=have)
    account.added["cloud_map"] = size


def _grow_log_lines(account: Account, size: int) -> None:
    have = account.added["log_lines"]
    add_log_lines(account.session, account.env, size - have, seed=size)
    account.added["log_lines"] = size


def _grow_access_logs(account: Account, size: int) -> None:
    """One object a minute back from now (five nodes' worth): the window holds about 60
    whatever the total, as on a real bucket that keeps months of logs."""
    have = account.added["access_logs"]
    add_access_logs(
        account.session,
        account.env,
        account.platform,
        size - have,
        newest_s_ago=60 * (have + 1),
        every_s=60,
    )
    account.added["access_logs"] = size


@dataclass(frozen=True)
class Dimension:
    name: str
    full: int
    grow: Callable[[Account, int], None]


DIMENSIONS = (
    Dimension("rules", LISTENER_RULE_LIMIT, _grow_rules),
    Dimension("load_balancers", 50, _grow_load_balancers),
    Dimension("services", 300, _grow_services),
    Dimension("cloud_map", 200, _grow_cloud_map),
    Dimension("log_lines", 100_000, _grow_log_lines),
    Dimension("access_logs", 1_500, _grow_access_logs),
)


@contextlib.contextmanager
def _moto_process() -> Iterator[str]:
    """moto's server in a process of its own on 127.0.0.1, for every boto3 client made here."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        os.environ["AWS_ENDPOINT_URL"] = url
        yield url
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        server.terminate()
        server.wait(timeout=10)


# -- measuring one diagnose -------------------------------------------------------------------


class _PeakRss:
    """The highest resident set size seen while the block runs (sampled every 10 ms)."""

    def __enter__(self) -> _PeakRss:
        self.before = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Step:
    label: str
    sizes: dict[str, int]
    wall_s: float
    bot_cpu_s: float  # CPU of the process outside AWS calls: checks, runner, redaction
    aws_cpu_s: float  # CPU inside AWS calls: botocore (and moto with --moto in-process)
    slowest: list[tuple[int, str]]
    calls: Counter
    rss_peak_mb: float
    rss_growth_mb: float
    report_kb: float
    worst_budget: tuple[str, float]  # the check closest to its timeout, share of it used
    over_budget: list[str]


class _TimedCaller(AwsCaller):
    """An AwsCaller that adds up the CPU its calls cost in this process (botocore; moto too
    when it runs in-process, where it scans every item on every call), so the bot's own CPU
    can be told apart."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.aws_cpu_s = 0.0
        self._cpu_lock = threading.Lock()

    def _call_sync(self, service: str, operation: str, params: dict) -> object:
        start = time.thread_time()
        try:
            return super()._call_sync(service, operation, params)
        finally:
            with self._cpu_lock:
                self.aws_cpu_s += time.thread_time() - start


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _diagnose(env: Environment, latency: float) -> tuple[DiagnoseReport, _TimedCaller]:
    aws = _TimedCaller(read_only_session(env.region), latency=latency, max_workers=32)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(_answer)) as http:
            runner = Runner(env, aws=aws, http=http, secrets={}, http_latency=latency)
            return await runner.run(), aws
    finally:
        aws.close()


def measure(label: str, account: Account, latency: float, runs: int = 1) -> Step:
    """One step: the diagnose run ``runs`` times, the fastest wall kept (the machine is shared;
    the calls and the report are the same every run)."""
    done = []
    with _PeakRss() as rss:
        for _ in range(runs):
            start, cpu = time.perf_counter(), _cpu_s()
            report, aws = asyncio.run(_diagnose(account.env, latency))
            wall = time.perf_counter() - start
            done.append((wall, _cpu_s() - cpu - aws.aws_cpu_s, aws.aws_cpu_s, report, aws))
    wall, bot_cpu, aws_cpu, report, aws = min(done, key=lambda run: run[0])
    shares = {o.id: o.duration_ms / 1000 / REGISTRY[o.check_id].timeout for o in report.outcomes}
    worst = max(shares.items(), key=lambda kv: kv[1])
    over = [o.id for o in report.outcomes if o.status is Status.TIMEOUT or shares[o.id] > 1]
    return Step(
        label=label,
        sizes=dict(account.added),
        wall_s=wall,
        bot_cpu_s=bot_cpu,
        aws_cpu_s=aws_cpu,
        slowest=sorted(((o.duration_ms, o.id) for o in report.outcomes), reverse=True)[:2],
        calls=Counter(f"{c.service}:{c.operation}" for c in aws.calls),
        rss_peak_mb=rss.peak,
        rss_growth_mb=rss.peak - rss.before,
        report_kb=len(json.dumps(report.to_json(), default=str)) / 1024,
        worst_budget=worst,
        over_budget=over,
    )


# -- the growth law ---------------------------------------------------------------------------


def growth_law(before: Step, half: Step, full: Step, added: int) -> tuple[str, bool, str]:
    """How the calls grew with one dimension: (law, within the goal, the operations that grew).

    Judged on the second half of the growth (the margin): constant, no more calls at either
    size; bounded, more calls at first and then no more (a cap was reached); by pages, at
    most one more call per ``PAGE_ITEMS`` items; linear, more than that.
    """
    first = sum(half.calls.values()) - sum(before.calls.values())
    margin = sum(full.calls.values()) - sum(half.calls.values())
    ops = ", ".join(
        f"{op} {before.calls[op]}→{half.calls[op]}→{full.calls[op]}"
        for op in sorted(set(before.calls) | set(half.calls) | set(full.calls))
        if not before.calls[op] == half.calls[op] == full.calls[op]
    )
    steps = f"{first:+d} then {margin:+d} calls for +{added:,} items"
    if first <= 0 and margin <= 0:
        return "constant", True, ops
    if margin <= 0:
        return f"bounded ({steps})", True, ops
    if margin <= math.ceil(added / 2 / PAGE_ITEMS):
        return f"by pages ({steps})", True, ops
    return f"linear ({steps})", False, ops


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per AWS/HTTP call")
    parser.add_argument("--scenario", default="healthy")
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="grow every dimension to this share"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of the baseline and the largest step (best kept)"
    )
    parser.add_argument(
        "--moto",
        choices=("process", "in-process"),
        default="process",
        help="where the AWS stand-in runs: its own process (like AWS, its work is not the "
        "bot's) or this one (mock_aws: its scans count against the bot's CPU and GIL)",
    )
    args = parser.parse_args(argv)

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    seed = load_config(REPO / "hokusai.yml").environment()
    steps: list[Step] = []
    laws: list[tuple[str, str, bool, str]] = []
    aws_side = _moto_process() if args.moto == "process" else mock_aws()
    with DnsServer({seed.public.hostname: ["127.0.0.1"]}) as dns_server, aws_side:
        env = seed.model_copy(
            update={"dns": DnsSettings(nameservers=[dns_server.address]), "mlflow": None}
        )
        session = boto3.Session(region_name=env.region)
        account = Account(session, env, build_platform(session, env, scenario=args.scenario))
        account.added["rules"] = len(account.platform.rules)
        asyncio.run(_diagnose(env, 0.0))  # warm up: clients, models, imports
        baseline = measure("baseline", account, args.latency, runs=args.runs)
        steps.append(baseline)
        _print_step(baseline)
        for dim in DIMENSIONS:
            start_size = account.added[dim.name]
            full = max(start_size + 2, int(dim.full * args.fraction))
            before = steps[-1]
            measured = []
            for label, size in (("half", (start_size + full) // 2), ("full", full)):
                t0 = time.perf_counter()
                dim.grow(account, size)
                grown_s = time.perf_counter() - t0
                largest = dim is DIMENSIONS[-1] and label == "full"
                runs = args.runs if largest else 1
                step = measure(f"{dim.name} {label}: {size:,}", account, args.latency, runs)
                steps.append(step)
                measured.append(step)
                _print_step(step, grown_s)
            law, ok, ops = growth_law(before, *measured, full - start_size)
            laws.append((dim.name, law, ok, ops))

    last = steps[-1]
    ratio = last.wall_s / baseline.wall_s
    over = sorted({cid for s in steps for cid in s.over_budget})
    print()
    print("growth law per dimension (calls when it grew):")
    for name, law, ok, ops in laws:
        print(f"  {name:<15} {law}{'' if ok else '  <- over goal'}" + (f"  [{ops}]" if ops else ""))
    print()
    print(f"wall at the largest step: {last.wall_s:.2f} s = {ratio:.2f} x baseline (goal <= 1.5)")
    print(
        f"CPU at the largest step: bot {last.bot_cpu_s:.2f} s = "
        f"{last.bot_cpu_s / baseline.bot_cpu_s:.2f} x baseline; inside AWS calls "
        f"{baseline.aws_cpu_s:.2f} → {last.aws_cpu_s:.2f} s"
    )
    print(f"checks over budget in any step: {', '.join(over) or 'none'}")
    print(
        f"peak RSS {min(s.rss_peak_mb for s in steps):.0f}–{max(s.rss_peak_mb for s in steps):.0f}"
        f" MB{' (moto account included)' if args.moto == 'in-process' else ''}; "
        f"report {baseline.report_kb:.1f} KB → "
        f"{last.report_kb:.1f} KB"
    )
    ok = ratio <= 1.5 and not over and all(law_ok for _, _, law_ok, _ in laws)
    print("goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


def _print_step(step: Step, built_s: float | None = None) -> None:
    total = sum(step.calls.values())
    top = ", ".join(f"{op} {n}" for op, n in step.calls.most_common(6))
    worst_id, worst_share = step.worst_budget
    build = f" (grown in {built_s:.1f} s)" if built_s is not None else ""
    print(f"{step.label}{build}")
    print(
        f"  wall {step.wall_s:5.2f} s · {total} AWS calls · peak RSS {step.rss_peak_mb:.0f} MB "
        f"(+{step.rss_growth_mb:.0f} during the run) · report {step.report_kb:.1f} KB · "
        f"slowest check {worst_id} at {worst_share:.0%} of its budget"
    )
    print(
        f"  CPU: bot {step.bot_cpu_s:.2f} s, inside AWS calls {step.aws_cpu_s:.2f} s · slowest: "
        + ", ".join(f"{cid} {ms / 1000:.1f} s" for ms, cid in step.slowest)
    )
    print(f"  calls: {top}")


if __name__ == "__main__":
    raise SystemExit(main())
