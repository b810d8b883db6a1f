"""Two replicas on one incident log: nothing done twice, summaries once, acks as fast as SQLite.

Starts the sandbox platform, the Slack stand-in and a PostgreSQL server on 127.0.0.1, then for
each engine (a SQLite file shared on one host, then PostgreSQL) runs two `hokusai serve`
processes, each in its own working directory, and sends them, split between the two:

- one incident declared in the bench channel (summaries every minute);
- N diagnoses at once (default 50), half to each process;
- M redeliveries (default 10) of some of those diagnoses, each to the *other* process, as a
  load balancer would route Slack's retry.

It prints, per engine: ack p50/p99, diagnose runs recorded (duplicates = recorded - N), the
summaries posted against the intervals that passed, and the PostgreSQL/SQLite ack p99 ratio.

    .venv/bin/python bench/replicas.py [--diagnoses 50] [--redeliveries 10] [--summary-wait 100]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.incident.store import IncidentStore  # noqa: E402
from bot.sandbox import fakes, signing  # noqa: E402
from bot.sandbox.postgres import PostgresServer  # noqa: E402
from bot.sandbox.processes import start_serve, stop  # noqa: E402
from bot.sandbox.slack import SlackStandIn  # noqa: E402
from bot.sandbox.world import Sandbox  # noqa: E402

# One channel per engine: the stand-in keeps a channel's messages across runs.
CHANNELS = {
    "sqlite": ("CBENCHSQL1", "inc-bench-sqlite"),
    "postgres": ("CBENCHPG01", "inc-bench-pg"),
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def replica(env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[str], str]:
    """One `hokusai serve` in its own working directory, as on its own host."""
    workdir.mkdir(parents=True, exist_ok=True)
    return start_serve(env, workdir / "serve.log", cwd=workdir)


def post(url: str, request: signing.SignedRequest) -> float:
    start = time.perf_counter()
    resp = httpx.post(url, content=request.body, headers=request.headers, timeout=30)
    elapsed = (time.perf_counter() - start) * 1000
    if resp.status_code != 200:
        raise SystemExit(f"{url} answered {resp.status_code}: {resp.text[:200]}")
    return elapsed


def run_engine(
    name: str, database: str, base_env: dict[str, str], slack: SlackStandIn, args, work: Path
) -> dict[str, float]:
    secret = base_env["SLACK_SIGNING_SECRET"]
    channel = CHANNELS[name]
    slack.add_channel(*channel)
    env = {**base_env, "HOKUSAI_DB": database}
    replicas = [replica(env, work / f"{name}-{side}") for side in ("a", "b")]
    urls = [url for _, url in replicas]
    slack.clear()
    try:
        declared_at = time.monotonic()
        post(
            urls[0],
            command(secret, slack, channel, "incident declare Bench outage sev=3 channel=here", 0),
        )
        requests = [
            command(secret, slack, channel, "diagnose", n + 1) for n in range(args.diagnoses)
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.diagnoses) as pool:
            acks = list(pool.map(lambda n: post(urls[n % 2], requests[n]), range(args.diagnoses)))
            retries = [
                signing.SignedRequest(
                    requests[n].body,
                    {
                        **signing.sign(secret, requests[n].body, int(time.time())),
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Slack-Retry-Num": "1",
                        "X-Slack-Retry-Reason": "http_timeout",
                    },
                )
                for n in range(args.redeliveries)
            ]
            acks += list(
                pool.map(lambda n: post(urls[(n + 1) % 2], retries[n]), range(args.redeliveries))
            )
        store = IncidentStore(database)
        deadline = time.monotonic() + args.timeout
        while len(store.runs(limit=10_000)) < args.diagnoses and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(3)  # a duplicate would arrive after the originals
        recorded = len(store.runs(limit=10_000))
        wait = args.summary_wait - (time.monotonic() - declared_at)
        if wait > 0:
            time.sleep(wait)
        elapsed = time.monotonic() - declared_at
        # A summary is due every minute; the scheduler looks every 30 s, so one may lag by 30 s.
        due_at_least, due_at_most = int((elapsed - 30) // 60), int(elapsed // 60)
        summaries = [
            m
            for m in slack.messages(channel[0])
            if str(m.get("text", "")).startswith("Scheduled summary")
        ]
    finally:
        for proc, _ in replicas:
            stop(proc)
    return {
        "p50": statistics.median(acks),
        "p99": percentile(acks, 99),
        "recorded": recorded,
        "duplicates": recorded - args.diagnoses,
        "summaries": len(summaries),
        "due_min": due_at_least,
        "due_max": due_at_most,
    }


_triggers = iter(range(10**6))


def command(
    secret: str, slack: SlackStandIn, channel: tuple[str, str], text: str, n: int
) -> signing.SignedRequest:
    return signing.slash_command(
        secret,
        text,
        channel_id=channel[0],
        channel_name=channel[1],
        response_url=slack.response_url(f"bench-{n}"),
        trigger_id=f"T{next(_triggers)}.bench",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diagnoses", type=int, default=50)
    parser.add_argument("--redeliveries", type=int, default=10)
    parser.add_argument("--summary-wait", type=float, default=100.0, help="seconds after declare")
    parser.add_argument("--timeout", type=float, default=600.0, help="for the diagnoses")
    args = parser.parse_args()
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    token, secret = fakes.slack_bot_token(), fakes.signing_secret()
    with (
        tempfile.TemporaryDirectory(prefix="hokusai-replicas-") as tmp,
        SlackStandIn(bot_token=token) as slack,
        Sandbox("healthy", workdir=Path(tmp) / "sandbox") as sandbox,
        PostgresServer() as pg,
    ):
        work = Path(tmp)
        config = yaml.safe_load(sandbox.config_path.read_text())
        config.setdefault("incidents", {})["summary_every_minutes"] = 1
        config_path = work / "hokusai.yml"
        config_path.write_text(yaml.safe_dump(config))
        base_env = {
            **os.environ,
            "SLACK_BOT_TOKEN": token,
            "SLACK_SIGNING_SECRET": secret,
            "SLACK_API_URL": slack.api_url,
            "HOKUSAI_CONFIG": str(config_path),
        }
        results = {
            "sqlite": run_engine("sqlite", str(work / "shared.db"), base_env, slack, args, work),
            "postgres": run_engine(
                "postgres", pg.create_database("bench"), base_env, slack, args, work
            ),
        }
    print(f"two replicas, {args.diagnoses} diagnoses + {args.redeliveries} redeliveries each run")
    print(
        f"{'engine':<10} {'ack p50':>9} {'ack p99':>9} {'runs':>6} {'dupes':>6} {'summaries':>10}"
    )
    for name, r in results.items():
        print(
            f"{name:<10} {r['p50']:>7.1f}ms {r['p99']:>7.1f}ms {r['recorded']:>6.0f}"
            f" {r['duplicates']:>6.0f} {r['summaries']:>4.0f}"
            f" (due {r['due_min']:.0f}-{r['due_max']:.0f})"
        )
    ratio = results["postgres"]["p99"] / results["sqlite"]["p99"]
    print(f"ack p99 PostgreSQL / SQLite: {ratio:.2f}x")
    failed = [
        name
        for name, r in results.items()
        if r["duplicates"] != 0 or not r["due_min"] <= r["summaries"] <= r["due_max"]
    ]
    if failed:
        raise SystemExit(f"not single across replicas: {', '.join(failed)}")


if __name__ == "__main__":
    main()
