"""Benchmark: one diagnose while the account around the platform grows, step by step.

Builds the sandbox platform in moto (its own processes; ``--moto in-process`` for mock_aws),
then grows the account one dimension at a time, to half and then to full size, keeping what
earlier steps added:

    listener rules     up to the listener limit (100) on the registry's HTTPS listener
    load balancers     +50 (each with its listeners)
    target groups      +300, each with an ECS service in the cluster
    Cloud Map          +200 services in the platform's namespace, one instance each
    log lines          +100,000 across the services' log groups, over the last hour
    access-log objects +1,500 in the access-log bucket, one a minute back from now

After each step a diagnose runs ``--runs`` times (every check, a fixed latency L added to
every AWS call and HTTP request; the fastest run is kept) with one AWS caller for the whole
bench, as one serves a whole ``hokusai serve`` process. Per step: wall time, the AWS calls by
operation, the CPU of the bot, of botocore inside the calls and of the AWS stand-in, how long
answers took beyond L, the peak RSS, the size of the ``--json`` report and how close the
slowest check came to its timeout. At the end, the growth law of each dimension: how the calls
grew when it did, and the wall time before, at half and at full size.

The stand-in is made to cost what AWS costs, no more: logs, CloudTrail and S3 get a moto
server each (AWS answers services independently; one moto process answers under one lock),
and moto's FilterLogEvents reads the time range asked for rather than the whole group.

Goals: every dimension constant in calls, bounded (it reaches a cap), or growing by pages
only (at most one call per 100 items added); no check over its timeout budget; wall at the
largest step <= 1.5 x baseline.

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


# The moto servers' pids while they run in processes of their own: their CPU is the
# stand-in's, not ours.
_STAND_IN: dict[str, int] = {}

# Services with a moto server of their own (botocore's per-service endpoint variable). AWS
# answers every service, indeed every call, independently; one moto process answers under one
# interpreter lock, so its linear scan of 100,000 log events held up a Route 53 lookup for
# 300 ms, a queue AWS does not have. The services that check each other's resources (EC2,
# ELBv2, ECS, RDS, Cloud Map, Route 53) stay together in the main one.
_OWN_SERVER = {"logs": "CLOUDWATCH_LOGS", "cloudtrail": "CLOUDTRAIL", "s3": "S3"}


def _stand_in_cpu_s() -> float:
    total = 0.0
    for pid in _STAND_IN.values():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# moto's FilterLogEvents scans every event of every stream on every call, and parses the
# filter pattern again for each event it looks at: with 50,000 events in a group, a call for
# the newest minute costs as much as one for the whole hour. CloudWatch partitions events by
# time, so a call costs what its time range holds; our reader asks for narrow slices precisely
# for that. The launcher gives moto the same cost shape: each stream's events (kept in time
# order, as PutLogEvents requires) are cut to the range by bisection and the pattern is parsed
# once. Same events, same order, same answers.
_MOTO_LAUNCHER = """
import bisect
import sys

from moto.logs import models, utils
from moto.server import main

scan = models.LogStream.filter_log_events


def filter_log_events(self, start_time, end_time, filter_pattern):
    stamps = [e.timestamp for e in self.events]
    if stamps != sorted(stamps):
        return scan(self, start_time, end_time, filter_pattern)
    lo = bisect.bisect_left(stamps, start_time) if start_time else 0
    hi = bisect.bisect_right(stamps, end_time) if end_time else len(stamps)
    matches = utils.EventMessageFilter(filter_pattern).matches
    return [
        {**e.to_filter_dict(), "logStreamName": self.log_stream_name}
        for e in self.events[lo:hi]
        if matches(e.message)
    ]


models.LogStream.filter_log_events = filter_log_events
main(sys.argv[1:])
"""


def _start_moto(name: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-c", _MOTO_LAUNCHER, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _STAND_IN[name] = server.pid
    return server, f"http://127.0.0.1:{port}"


def _wait_ready(server: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)


@contextlib.contextmanager
def _moto_process() -> Iterator[str]:
    """moto's servers in processes of their own on 127.0.0.1 (the main one, and one per service
    in ``_OWN_SERVER``), for every boto3 client made here."""
    servers = {"main": _start_moto("main")}
    servers.update({service: _start_moto(service) for service in _OWN_SERVER})
    variables = ["AWS_ENDPOINT_URL", *(f"AWS_ENDPOINT_URL_{v}" for v in _OWN_SERVER.values())]
    try:
        for server, url in servers.values():
            _wait_ready(server, url)
        os.environ["AWS_ENDPOINT_URL"] = servers["main"][1]
        for service, variable in _OWN_SERVER.items():
            os.environ[f"AWS_ENDPOINT_URL_{variable}"] = servers[service][1]
        yield servers["main"][1]
    finally:
        _STAND_IN.clear()
        for variable in variables:
            os.environ.pop(variable, None)
        for server, _ in servers.values():
            server.terminate()
        for server, _ in servers.values():
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
    stand_in_cpu_s: float  # CPU of the moto server process during the run
    slowest_answers: list[tuple[float, str]]  # (mean seconds beyond the latency, operation)
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

    def reset(self) -> None:
        """Forget the counted calls and CPU (the clients stay, as in a serving process)."""
        self.calls.clear()
        self.aws_cpu_s = 0.0
        self.answer_s: dict[str, list[float]] = {}

    def _call_sync(self, service: str, operation: str, params: dict) -> object:
        start, wall = time.thread_time(), time.perf_counter()
        try:
            return super()._call_sync(service, operation, params)
        finally:
            # How long the answer took beyond the fixed latency: the stand-in's work, and
            # ours, parsing it.
            took = time.perf_counter() - wall - self.latency
            with self._cpu_lock:
                self.aws_cpu_s += time.thread_time() - start
                self.answer_s.setdefault(f"{service}:{operation}", []).append(took)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _diagnose(
    env: Environment, latency: float, aws: _TimedCaller
) -> tuple[DiagnoseReport, _TimedCaller]:
    aws.reset()
    aws.latency = latency
    async with httpx.AsyncClient(transport=httpx.MockTransport(_answer)) as http:
        runner = Runner(env, aws=aws, http=http, secrets={}, http_latency=latency)
        return await runner.run(), aws


def measure(label: str, account: Account, latency: float, aws: _TimedCaller, runs: int = 1) -> Step:
    """One step: the diagnose run ``runs`` times, the fastest wall kept (the machine is shared;
    the calls and the report are the same every run). ``aws`` is the process's one caller,
    as in ``hokusai serve``: its clients are built once, not per diagnose."""
    done = []
    with _PeakRss() as rss:
        for _ in range(runs):
            start, cpu, side = time.perf_counter(), _cpu_s(), _stand_in_cpu_s()
            report, aws = asyncio.run(_diagnose(account.env, latency, aws))
            wall = time.perf_counter() - start
            stand_in = _stand_in_cpu_s() - side
            calls = list(aws.calls)
            answers = sorted(
                ((sum(v) / len(v), op) for op, v in aws.answer_s.items()), reverse=True
            )[:3]
            done.append(
                (
                    wall,
                    _cpu_s() - cpu - aws.aws_cpu_s,
                    aws.aws_cpu_s,
                    stand_in,
                    report,
                    calls,
                    answers,
                )
            )
    wall, bot_cpu, aws_cpu, stand_in_cpu, report, calls, answers = min(done, key=lambda r: r[0])
    shares = {o.id: o.duration_ms / 1000 / REGISTRY[o.check_id].timeout for o in report.outcomes}
    worst = max(shares.items(), key=lambda kv: kv[1])
    over = [o.id for o in report.outcomes if o.status is Status.TIMEOUT or shares[o.id] > 1]
    return Step(
        label=label,
        sizes=dict(account.added),
        wall_s=wall,
        bot_cpu_s=bot_cpu,
        aws_cpu_s=aws_cpu,
        stand_in_cpu_s=stand_in_cpu,
        slowest_answers=answers,
        slowest=sorted(((o.duration_ms, o.id) for o in report.outcomes), reverse=True)[:2],
        calls=Counter(f"{c.service}:{c.operation}" for c in calls),
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
        "--runs", type=int, default=3, help="runs of every step (the fastest is kept)"
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
    for variable in _OWN_SERVER.values():
        os.environ.pop(f"AWS_ENDPOINT_URL_{variable}", None)
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
        # One caller for the whole bench, as one serves a whole `hokusai serve` process; the
        # warm-up builds its clients (service models) and imports, which no step pays for.
        aws = _TimedCaller(read_only_session(env.region), max_workers=32)
        asyncio.run(_diagnose(env, 0.0, aws))
        baseline = measure("baseline", account, args.latency, aws, runs=args.runs)
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
                step = measure(
                    f"{dim.name} {label}: {size:,}", account, args.latency, aws, args.runs
                )
                steps.append(step)
                measured.append(step)
                _print_step(step, grown_s)
            law, ok, ops = growth_law(before, *measured, full - start_size)
            walls = "→".join(f"{s.wall_s:.2f}" for s in (before, *measured))
            laws.append((dim.name, law, ok, f"{ops}; wall {walls} s".lstrip("; ")))

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
        f"  CPU: bot {step.bot_cpu_s:.2f} s, inside AWS calls {step.aws_cpu_s:.2f} s, "
        f"the AWS stand-in {step.stand_in_cpu_s:.2f} s · slowest: "
        + ", ".join(f"{cid} {ms / 1000:.1f} s" for ms, cid in step.slowest)
    )
    print(f"  calls: {top}")
    print(
        "  slowest answers beyond the latency (mean): "
        + ", ".join(f"{op} {s * 1000:.0f} ms" for s, op in step.slowest_answers)
    )


if __name__ == "__main__":
    raise SystemExit(main())
