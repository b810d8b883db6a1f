"""One tick of a watch: run the watched checks, burst the HTTP probes, fold into the tracks.

The checks run through the diagnose ``Runner``, so a watch sees exactly what a diagnose would.
HTTP probe checks (application and auth layers, no AWS reads) are sampled ``burst`` times per
tick, spread over part of the tick, because one request can pass by luck when one of two
targets is bad. Each answer is counted by who sent it and with which status.

Example::

    engine = WatchEngine(env, ["app.route-probe[mlflow-direct]"], aws=aws, http=http)
    tick = await engine.tick(spread=10.0)
    engine.fold(tick)                      # tracks and headline updated
    engine.headline.name                   # "intermittent"
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.diagnosis.checks.base import CONTEXT_LAYERS, CheckInstance, CheckOutcome
from bot.diagnosis.runner import Runner
from bot.watch.model import CheckTrack, Headline, assess, sample_of

# Layers whose per-route checks are HTTP probes when they read nothing from AWS.
BURST_LAYERS: tuple[str, ...] = ("app", "auth")

_WHO = {
    "load-balancer": "the load balancer",
    "fastapi": "FastAPI",
    "mlflow": "MLflow",
    "nginx": "nginx",
    "unknown": "an unknown server",
}


def is_probe(instance: CheckInstance) -> bool:
    """Whether a check is a route's HTTP probe, worth sampling several times a tick."""
    check = instance.check
    return check.layer in BURST_LAYERS and check.per == "route" and not check.reads


def answer_of(outcome: CheckOutcome) -> str | None:
    """``"404 by FastAPI"`` from a probe's evidence; None when the check is no probe."""
    evidence = outcome.result.evidence or {}
    response = evidence.get("response")
    if isinstance(response, dict) and response.get("status") is not None:
        who = _WHO.get(str(evidence.get("answered_by", "unknown")), "an unknown server")
        return f"{response['status']} by {who}"
    if evidence.get("error_kind"):
        return "no answer" if evidence["error_kind"] != "timeout" else "no answer in time"
    return None


@dataclass
class Tick:
    """What one tick saw: per check, its samples oldest first, their answers, the summary."""

    at: datetime
    samples: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, CheckOutcome] = field(default_factory=dict)
    report: Any = None  # the tick's run of every watched check (recorded on a transition)

    def add(self, outcome: CheckOutcome) -> None:
        self.samples.setdefault(outcome.id, []).append(sample_of(outcome.status))
        answer = answer_of(outcome)
        if answer is not None:
            self.answers.setdefault(outcome.id, []).append(answer)
        if outcome.id not in self.summaries or outcome.status != "pass":
            self.summaries[outcome.id] = outcome.result.summary
        self.outcomes.setdefault(outcome.id, outcome)


def select_instances(runner: Runner, scopes: Sequence[str]) -> list[str]:
    """The instance ids a watch over ``scopes`` follows, in path order: the ones the scopes
    name (the checks they need run too, unshown), request-path layers only unless a scope
    names a context layer.

    Raises:
        UnknownScope: a scope names nothing known.
    """
    chosen = runner.requested(scopes)
    named_context = any(s in CONTEXT_LAYERS for s in scopes)
    return [i.id for i in chosen if named_context or i.layer not in CONTEXT_LAYERS]


class WatchEngine:
    """The checks of one watch and what they have shown so far.

    Args:
        runner: the diagnose runner for the watch's environment (its ``aws`` should be a
            :class:`~bot.watch.reads.TickReads`, shared by the watches ticking together).
        check_ids: the instance ids to follow.
        burst: samples per tick for HTTP probe checks (1: no burst).
        recover_after: consecutive passing ticks that make a recovery.
        tracks / headline: where a resumed watch left off.
        clock: the time each tick is stamped with.
    """

    def __init__(
        self,
        runner: Runner,
        check_ids: Sequence[str],
        *,
        burst: int = 5,
        recover_after: int = 3,
        tracks: dict[str, CheckTrack] | None = None,
        headline: Headline | None = None,
        clock: Any = None,
    ) -> None:
        self.runner = runner
        self.check_ids = list(check_ids)
        self.burst = max(1, burst)
        self.recover_after = recover_after
        self.tracks = {cid: (tracks or {}).get(cid) or CheckTrack(cid) for cid in self.check_ids}
        self.headline = headline or Headline()
        self._clock = clock or (lambda: datetime.now(UTC))
        by_id = {i.id: i for i in runner.instances()}
        self.probe_ids = [cid for cid in self.check_ids if cid in by_id and is_probe(by_id[cid])]

    async def tick(self, *, spread: float = 0.0) -> Tick:
        """Run every watched check once, then the probes ``burst - 1`` more times, spread
        evenly over ``spread`` seconds."""
        tick = Tick(at=self._clock())
        report = await self.runner.run(self.check_ids)
        tick.report = report
        for outcome in report.outcomes:
            if outcome.id in self.tracks:
                tick.add(outcome)
        extra = self.burst - 1 if self.probe_ids else 0
        for _ in range(extra):
            await asyncio.sleep(spread / extra)
            sample = await self.runner.run(self.probe_ids)
            for outcome in sample.outcomes:
                if outcome.id in self.probe_ids:
                    tick.add(outcome)
        return tick

    def fold(self, tick: Tick) -> tuple[Headline, Headline]:
        """Add a tick to the tracks and re-assess; returns (previous, new) headline."""
        for cid, track in self.tracks.items():
            track.add_tick(
                tick.samples.get(cid, ["skipped"]),
                at=tick.at,
                answers=tick.answers.get(cid, []),
                summary=tick.summaries.get(cid, ""),
            )
        previous = self.headline
        self.headline = assess(
            previous, list(self.tracks.values()), recover_after=self.recover_after, at=tick.at
        )
        return previous, self.headline

    def failing_now(self) -> list[str]:
        """Checks whose newest tick had a failure (all of it, or some of its samples)."""
        return [
            cid for cid, t in self.tracks.items() if t.ticks and t.ticks[-1] in ("fail", "mixed")
        ]
