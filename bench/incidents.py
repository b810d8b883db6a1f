"""The incident log under load: 10,000 findings across 100 runs in one incident.

Prints insert throughput, then the time to build a summary and a Markdown export of that
incident next to the same work on an empty incident in the same database, and the ratios.
Goal: a summary of 10,000 findings in under 100 ms.

    .venv/bin/python bench/incidents.py [--runs 100] [--checks 100] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.diagnosis.checks.base import HOP_LAYERS  # noqa: E402
from bot.incident.export import export_markdown  # noqa: E402
from bot.incident.store import IncidentStore  # noqa: E402
from bot.incident.summaries import build_summary  # noqa: E402

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LAYERS = (*HOP_LAYERS, "logs", "changes")


def report(run: int, checks: int) -> dict:
    rows = []
    for n in range(checks):
        layer = LAYERS[n % len(LAYERS)]
        # A few checks flip between runs so "what changed" has work to do.
        failing = (n % 7 == 0) != (run % 10 == 0 and n % 21 == 0)
        rows.append(
            {
                "id": f"{layer}.check-{n}[svc-{n % 4}]",
                "layer": layer,
                "status": "fail" if failing else ("warn" if n % 5 == 0 else "pass"),
                "summary": f"{layer} check {n}: target group tg-{n} has 0 healthy targets of 2",
                "classification": "infrastructure" if failing else None,
                "hint": "Look at the target group's health check path" if failing else None,
                "evidence": {
                    "target_group_arn": f"arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                    f"targetgroup/tg-{n}/0123456789abcdef",
                    "targets": [
                        {
                            "id": f"10.0.{n % 250}.{k}",
                            "state": "unhealthy",
                            "reason": "Target.ResponseCodeMismatch",
                        }
                        for k in range(2)
                    ],
                },
                "duration_ms": 40 + n % 30,
            }
        )
    return {
        "env": "development",
        "scopes": [],
        "started_at": T0.isoformat(),
        "duration_ms": 2100,
        "checks": rows,
        "first_failure": None,
        "verdict": "Target groups fail first.",
    }


def timed(fn, repeat: int) -> float:
    """Median milliseconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--checks", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = IncidentStore(Path(tmp) / "bench.db")
        big = store.declare_incident(
            "Registry returns 404", severity=1, channel_id="CBIG", commander="U1", now=T0
        )
        empty = store.declare_incident(
            "Quiet incident", severity=4, channel_id="CEMPTY", commander="U1", now=T0
        )
        reports = [report(r, args.checks) for r in range(args.runs)]
        start = time.perf_counter()
        for r, rep in enumerate(reports):
            store.record_run(
                rep,
                incident_id=big.id,
                channel="CBIG",
                requested_by="U1",
                now=T0 + timedelta(minutes=r),
            )
            if r == args.runs // 2:
                store.mark_summary_posted(big.id, T0 + timedelta(minutes=r, seconds=30))
        elapsed = time.perf_counter() - start
        findings = args.runs * args.checks
        now = T0 + timedelta(hours=3)
        print(
            f"insert: {findings} findings in {args.runs} runs: {elapsed:.2f} s "
            f"({findings / elapsed:,.0f} findings/s, {args.runs / elapsed:.1f} runs/s)"
        )
        results = {}
        for label, incident in (("empty", empty), ("10k", big)):
            results[label] = (
                timed(lambda i=incident: build_summary(store, i.id, now), args.repeat),
                timed(lambda i=incident: export_markdown(store, i.id, now), args.repeat),
            )
        (s0, e0), (s1, e1) = results["empty"], results["10k"]
        print(
            f"summary: empty incident {s0:.1f} ms, {findings} findings {s1:.1f} ms "
            f"(x{s1 / s0:.1f}) — goal < 100 ms: {'met' if s1 < 100 else 'MISSED'}"
        )
        print(
            f"export:  empty incident {e0:.1f} ms, {findings} findings {e1:.1f} ms (x{e1 / e0:.1f})"
        )
        summary = build_summary(store, big.id, now)
        print(
            f"summary blocks: {len(summary.blocks())}, latest states: {len(summary.states)}, "
            f"export: {len(export_markdown(store, big.id, now)):,} characters"
        )


if __name__ == "__main__":
    main()
