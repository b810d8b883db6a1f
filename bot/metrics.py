"""What an operator graphs: ``GET /metrics`` in Prometheus' text format.

One registry per process (prometheus_client's own), so every replica reports its own numbers
and the scraper adds them up. Label values are closed sets (a status, an error code, a lease
name), never text from a request: nothing here can carry a secret or grow without bound.
"""

from __future__ import annotations

import re

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

ACKS = Histogram(
    "hokusai_ack_seconds",
    "Time from a Slack request arriving to its HTTP answer being written.",
    ["outcome"],  # acked | refused
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
)
DIAGNOSES = Histogram(
    "hokusai_diagnose_seconds",
    "Wall time of a diagnose run, from its first check to its report.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120),
)
DIAGNOSE_QUEUE = Gauge(
    "hokusai_diagnose_queue_depth", "Diagnose runs waiting for a free slot in this process."
)
CHECK_PROBLEMS = Counter(
    "hokusai_check_problems_total",
    "Checks that could not tell (error or timeout), by layer and kind.",
    ["layer", "status"],
)
ERRORS = Counter(
    "hokusai_errors_total",
    "Failed calls to the outside, by what was called and the error kind.",
    ["target", "kind"],  # target: slack | aws | tracker | store
)
LEASES = Gauge(
    "hokusai_lease_held",
    "1 while this process holds the named lease (summaries, watches), else 0.",
    ["lease"],
)

_KIND = re.compile(r"[^a-z0-9_]+")


def error_kind(text: str) -> str:
    """A short, bounded label for an error: Slack's code, an AWS code, an exception's name."""
    return _KIND.sub("_", text.lower()).strip("_")[:40] or "unknown"


def render() -> tuple[bytes, str]:
    """The metrics page and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
