"""Read a CloudWatch Logs window from its end backwards, and say how much of it was read.

``FilterLogEvents`` returns the oldest matching events first, so reading "the first N" of a
busy hour reads its start, not the errors that matter. Here the window is read in time slices
from now backwards: each slice is sized from the density seen so far so that it fits one page,
a slice that overflows is narrowed and asked again, and reading stops at a budget of events or
calls. What was read is always the newest part of the window, and the result says whether it is
all of it (counts are exact) or not (counts are lower bounds).

Example::

    read = await read_newest(ctx.aws, "/ecs/api", start_ms, end_ms, pattern="?ERROR")
    read.events, read.complete, read.read_from_ms
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

AwsCall = Callable[..., Awaitable[Any]]

PAGE = 5000  # events asked per call (CloudWatch answers at most 10,000, or 1 MB)
# The newest this many matching lines are read, at most: enough for the kinds and the newest
# of each; redacting and folding them is the check's main cost.
MAX_EVENTS = 2000
MAX_CALLS = 8
_FIRST_SLICE = 1 / 16  # of the window: the newest few minutes first
_FILL = 0.7  # aim a slice at this share of a page, so a denser stretch still fits
# ...or, nearer the budget, at this share of what it still wants: every event read is parsed
# (botocore) and redacted, and what is past the budget is only trimmed again.
_WANT = 1.3


@dataclass
class WindowRead:
    """The newest part of a window: events (newest first) and how far back they reach."""

    events: list[dict[str, Any]] = field(default_factory=list)
    start_ms: int = 0
    end_ms: int = 0
    read_from_ms: int = 0  # everything in [read_from_ms, end_ms] was read
    calls: int = 0

    @property
    def complete(self) -> bool:
        """True when the whole window was read: counts over ``events`` are exact."""
        return self.read_from_ms <= self.start_ms


async def read_newest(
    aws: AwsCall,
    group: str,
    start_ms: int,
    end_ms: int,
    *,
    pattern: str | None = None,
    max_events: int = MAX_EVENTS,
    max_calls: int = MAX_CALLS,
    page: int = PAGE,
) -> WindowRead:
    """The newest matching events of ``group`` in ``[start_ms, end_ms]``, up to the budgets."""
    read = WindowRead(start_ms=start_ms, end_ms=end_ms, read_from_ms=end_ms + 1)
    span = max(1, int((end_ms - start_ms) * _FIRST_SLICE))
    end = end_ms
    # The complete older part of a slice that overflowed, oldest first: every event in
    # [held_lo, held_hi]. Read again it would be the same events; it is used once the slice
    # just after it has been read whole.
    held: list[dict[str, Any]] = []
    held_lo = held_hi = 0
    while end >= start_ms and read.calls < max_calls and len(read.events) < max_events:
        lo = max(start_ms, end - span + 1)
        if held and lo != held_hi + 1:
            held = []  # a gap between them: what is held is not next
        params: dict[str, Any] = {
            "logGroupName": group,
            "startTime": lo,
            "endTime": end,
            "limit": page,
            "interleaved": True,  # one time order across streams (what CloudWatch does now)
        }
        if pattern:
            params["filterPattern"] = pattern
        resp = await aws("logs", "filter_log_events", **params)
        read.calls += 1
        events = resp.get("events", [])
        token = resp.get("nextToken")
        if token and events and events[0]["timestamp"] != events[-1]["timestamp"]:
            # More than a page in this slice, and these are its oldest. Start the slice again
            # where a page would hold at the density just seen — and at least past what this
            # page covered, so a burst at the end is reached — and ask for its newest part.
            last = events[-1]["timestamp"]
            per_ms = len(events) / max(1, last - lo + 1)
            narrower = max(1, int(page * _FILL / per_ms))
            next_lo = max(end - narrower + 1, last)
            older = [e for e in events if e["timestamp"] < last]  # [lo, last - 1], whole
            if next_lo == last and older:
                # The newer part starts where this page's whole part ends: keep the page.
                held_lo = lo if not held else held_lo
                held, held_hi = held + older, last - 1
            else:
                held = []
            span = end - next_lo + 1
            continue
        if token:
            # A page within one millisecond (a burst), or one CloudWatch cut short: page
            # through the slice.
            while token and read.calls < max_calls:
                more = await aws("logs", "filter_log_events", **params, nextToken=token)
                read.calls += 1
                events += more.get("events", [])
                token = more.get("nextToken")
        read.events.extend(reversed(events))
        if token:
            # The budget ended inside this slice: these are not its newest, and everything
            # from read_from_ms on is still all that was read whole.
            return read
        read.read_from_ms = lo
        end = lo - 1
        if held and held_hi == end:
            read.events.extend(reversed(held))
            read.read_from_ms, end, held = held_lo, held_lo - 1, []
        # Grow the next slice towards what the budget still wants (within a page) at this
        # density.
        per_ms = len(events) / span
        wanted = min(page * _FILL, (max_events - len(read.events)) * _WANT)
        span = max(1, min(span * 8, int(wanted / per_ms))) if per_ms else span * 8
    if len(read.events) > max_events:
        # Keep the budget: drop the oldest millisecond(s) read, so what is kept is still
        # everything from read_from_ms on.
        cut = read.events[max_events - 1]["timestamp"]
        kept = [e for e in read.events if e["timestamp"] > cut]
        if kept:
            read.events, read.read_from_ms = kept, cut + 1
    return read
