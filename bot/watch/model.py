"""What a watch remembers about each check, and the one state a person reads first.

A watch runs its checks once per tick; HTTP probes run a small burst per tick, so each tick
adds one or more *samples* to a check's track. From the tracks comes the headline:

- **failing**: every recent result fails;
- **intermittent**: results flip between passing and failing (with the rate and the pattern);
- **recovered**: every check passed ``recover_after`` ticks in a row (default 3);
- **regressed**: failing again after a recovery;
- **watching**: nothing has failed yet and the passes are not yet enough to call it.

Everything here is plain data and pure functions: the tracks round-trip through JSON in the
incident log, so a restarted process carries on where the last one stopped.

Example::

    track = CheckTrack("app.route-probe[mlflow-direct]")
    track.add_tick(["fail", "fail"], answers=["404 by FastAPI"] * 2, at=now, summary="...")
    state = assess(Headline(), [track], recover_after=3, at=now)
    state.name  # "failing"
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

PASS, FAIL, TIMEOUT, SKIPPED = "pass", "fail", "timeout", "skipped"
SYMBOLS: dict[str, str] = {PASS: "✅", FAIL: "❌", TIMEOUT: "⏱", SKIPPED: "➖"}

FAILING, INTERMITTENT, RECOVERED, REGRESSED, WATCHING = (
    "failing",
    "intermittent",
    "recovered",
    "regressed",
    "watching",
)
# States a person is told about (a thread line) when the watch enters them.
ANNOUNCED: frozenset[str] = frozenset({RECOVERED, REGRESSED})

MAX_SAMPLES = 60  # samples kept per check: the strip shows the newest of them
MAX_TICKS = 60  # tick verdicts kept per check
RECENT_TICKS = 10  # the window the headline's rate and pattern are measured over


def sample_of(status: str) -> str:
    """A check status as a watch sample: warnings pass, errors fail, skips prove nothing."""
    status = str(status)
    if status in ("pass", "warn"):
        return PASS
    if status == "timeout":
        return TIMEOUT
    if status == "skipped":
        return SKIPPED
    return FAIL


def is_failure(sample: str) -> bool:
    return sample in (FAIL, TIMEOUT)


def tick_verdict(samples: Sequence[str]) -> str:
    """One tick of one check: ``pass`` when every sample passed, ``fail`` when every sample
    failed, ``mixed`` otherwise (``skipped`` when nothing ran)."""
    ran = [s for s in samples if s != SKIPPED]
    if not ran:
        return SKIPPED
    if all(s == PASS for s in ran):
        return PASS
    if all(is_failure(s) for s in ran):
        return FAIL
    return "mixed"


@dataclass
class CheckTrack:
    """One watched check: its recent samples and tick verdicts, counts and failure times.

    ``answers`` holds, per recent tick, who answered each HTTP sample and with what
    (``"404 by FastAPI"``), so "2 of 5 answered 404 by FastAPI" can be said.
    """

    id: str
    samples: list[str] = field(default_factory=list)
    ticks: list[str] = field(default_factory=list)
    tick_at: list[str] = field(default_factory=list)
    tick_samples: list[list[str]] = field(default_factory=list)
    answers: list[list[str]] = field(default_factory=list)
    total: int = 0
    passed: int = 0
    first_failure_at: str | None = None
    last_failure_at: str | None = None
    summary: str = ""

    def add_tick(
        self,
        samples: Sequence[str],
        *,
        at: datetime,
        answers: Sequence[str] = (),
        summary: str = "",
    ) -> None:
        """Record one tick's samples (oldest first) and what answered them."""
        when = _iso(at)
        self.samples = (self.samples + list(samples))[-MAX_SAMPLES:]
        self.ticks = (self.ticks + [tick_verdict(samples)])[-MAX_TICKS:]
        self.tick_at = (self.tick_at + [when])[-MAX_TICKS:]
        self.tick_samples = (self.tick_samples + [list(samples)])[-RECENT_TICKS:]
        self.answers = (self.answers + [list(answers)])[-RECENT_TICKS:]
        self.total += sum(1 for s in samples if s != SKIPPED)
        self.passed += sum(1 for s in samples if s == PASS)
        if any(is_failure(s) for s in samples):
            self.first_failure_at = self.first_failure_at or when
            self.last_failure_at = when
        if summary:
            self.summary = summary

    @property
    def rate(self) -> float | None:
        """Share of samples that passed over the whole watch (None before any ran)."""
        return self.passed / self.total if self.total else None

    def recent_samples(self) -> list[str]:
        return [s for tick in self.tick_samples for s in tick if s != SKIPPED]

    def recent_rate(self) -> float | None:
        recent = self.recent_samples()
        return sum(1 for s in recent if s == PASS) / len(recent) if recent else None

    def passing_streak(self) -> int:
        """How many of the newest ticks passed in a row."""
        streak = 0
        for verdict in reversed(self.ticks):
            if verdict != PASS:
                break
            streak += 1
        return streak

    def streak_started(self) -> str | None:
        """When the current passing streak began (None when the newest tick did not pass)."""
        streak = self.passing_streak()
        if not streak or len(self.tick_at) < streak:
            return None
        return self.tick_at[-streak]

    def flips(self) -> int:
        """How often the recent samples change between passing and failing."""
        recent = [s == PASS for s in self.recent_samples()]
        return sum(1 for a, b in pairwise(recent) if a != b)

    def kind(self) -> str:
        """``failing``, ``intermittent``, ``recovering`` (failed, then only passes since),
        ``passing`` or ``watching`` (nothing ran yet), over the recent window."""
        recent = self.recent_samples()
        if not recent:
            return WATCHING
        if all(s == PASS for s in recent):
            return "passing"
        if all(is_failure(s) for s in recent):
            return FAILING
        flips = self.flips()
        if flips == 1 and recent[-1] == PASS:
            return "recovering"
        if flips == 1:
            return FAILING  # passed, then broke and stayed broken
        return INTERMITTENT

    def answer_counts(self) -> list[tuple[str, int]]:
        """Who answered the recent samples and how, most frequent first."""
        counts: dict[str, int] = {}
        for tick in self.answers:
            for answer in tick:
                counts[answer] = counts.get(answer, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckTrack:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Headline:
    """The watch's state, since when, and what made it so (one line a person reads)."""

    name: str = WATCHING
    since: str | None = None
    detail: str = ""
    recovered_at: str | None = None  # the last time the watch reached recovered

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Headline:
        if not data:
            return cls()
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def assess(
    previous: Headline, tracks: Sequence[CheckTrack], *, recover_after: int, at: datetime
) -> Headline:
    """The headline after a tick, from the previous one and every check's track.

    Recovered needs every check to have passed ``recover_after`` ticks in a row; after a
    recovery any failure is a regression, and it stays one until the checks recover again.
    """
    when = _iso(at)
    streak = min((t.passing_streak() for t in tracks), default=0)
    ever_failed = any(t.first_failure_at for t in tracks)
    latest_failed = any(t.ticks and t.ticks[-1] not in (PASS, SKIPPED) for t in tracks)
    recovered_before = previous.recovered_at is not None

    if tracks and streak >= recover_after:
        name = RECOVERED
        started = max((t.streak_started() or when for t in tracks), default=when)
        detail = f"{streak} consecutive passes since {clock(started)}"
    elif recovered_before and (latest_failed or previous.name == REGRESSED):
        name = REGRESSED
        detail = f"failing again after recovering at {clock(previous.recovered_at)}"
    elif not ever_failed:
        name = WATCHING
        detail = f"passing so far ({streak} of {recover_after} passes needed)"
    elif any(t.kind() == INTERMITTENT for t in tracks):
        name = INTERMITTENT
        detail = intermittent_detail(tracks)
    else:
        name = FAILING
        if streak or any(t.kind() == "recovering" for t in tracks):
            detail = f"passing again: {streak} of {recover_after} clean ticks so far"
        else:
            detail = "every recent result fails"
    return Headline(
        name=name,
        since=previous.since if name == previous.name and previous.since else when,
        detail=detail,
        recovered_at=when
        if name == RECOVERED and previous.name != RECOVERED
        else previous.recovered_at,
    )


def intermittent_detail(tracks: Iterable[CheckTrack]) -> str:
    """``"48% of 25 recent requests succeed, alternating; 13 of 25 answered 404 by FastAPI"``."""
    flaky = [t for t in tracks if t.kind() == INTERMITTENT]
    samples = [s for t in flaky for s in t.recent_samples()]
    passed = sum(1 for s in samples if s == PASS)
    rate = round(100 * passed / len(samples)) if samples else 0
    parts = [f"{rate}% of {len(samples)} recent results pass, {pattern_of(flaky)}"]
    for track in flaky[:2]:
        counted = track.answer_counts()
        total = sum(n for _, n in counted)
        failing = [(a, n) for a, n in counted if not a.startswith("2")]
        if failing and total:
            answer, n = failing[0]
            parts.append(f"{n} of {total} answered {answer}")
    return "; ".join(parts)


def pattern_of(tracks: Iterable[CheckTrack]) -> str:
    """How the failures come: alternating, in runs, or now and then."""
    tracks = list(tracks)
    samples = sum(len(t.recent_samples()) for t in tracks)
    flips = sum(t.flips() for t in tracks)
    if samples < 2:
        return "too few results to tell a pattern"
    share = flips / max(samples - len(tracks), 1)
    if share >= 0.6:
        return "alternating request by request"
    if share >= 0.25:
        return "failing now and then"
    return "failing in runs"


def strip(track: CheckTrack, width: int = 20) -> str:
    """The newest ``width`` samples as symbols, oldest first: ``✅❌✅✅``."""
    return "".join(SYMBOLS.get(s, "?") for s in track.samples[-width:])


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def clock(value: str | None) -> str:
    """``09:14:03`` from an ISO timestamp (UTC)."""
    if not value:
        return "?"
    return value.split("T", 1)[-1].rstrip("Z")[:8]
