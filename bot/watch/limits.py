"""How often and how long a watch may run, and the durations people type (``30s``, ``2m``).

``WatchLimits`` holds the bounds people get (every 10 s to 10 min, for up to 3 h) and the
knobs of the machinery. Tests and the sandbox demo build one with shorter ticks and hand it to
the app (``build_app(..., watch_limits=...)``); nobody can lower the bounds from Slack, the
command line or the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


class DurationError(ValueError):
    """A duration that cannot be read; the message says what was typed."""


# How each front end spells the options, for messages the person can act on as typed.
SLACK_OPTIONS = {"every": "`every=`", "for": "`for=`"}
CLI_OPTIONS = {"every": "--every", "for": "--for"}


def parse_duration(text: str, option: str | None = None) -> float:
    """Seconds in ``30``, ``30s``, ``2m``, ``1h30m`` or ``1.5s``; ``option`` is how the
    person typed the option it came with (``every=``, ``--every``), named in the error.

    Raises:
        DurationError: anything else, or zero.
    """
    value = text.strip().lower()
    pos, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        if option:
            raise DurationError(f"{option} takes a duration like 30s, 2m or 1h, not `{text}`")
        raise DurationError(f"`{text}` is not a duration (try 30s, 2m or 1h)")
    if total <= 0:
        raise DurationError(f"{option + ': ' if option else ''}`{text}` is not a positive duration")
    return total


def format_duration(seconds: float) -> str:
    """``30 s``, ``2 min``, ``1 h 30 min``; below a second, ``0.3 s``."""
    if seconds < 1:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if secs or not parts:
        parts.append(f"{secs} s")
    return " ".join(parts)


@dataclass(frozen=True)
class WatchLimits:
    """Bounds and knobs of watches.

    Attributes:
        min_every / max_every: the allowed tick interval, seconds.
        max_for: the longest watch, seconds.
        default_every / default_for: what a watch gets when not told.
        burst: HTTP requests per tick for probe checks.
        recover_after: consecutive passing ticks that make a recovery.
        lease_margin: seconds a lease outlives the tick it was renewed for; a process that
            dies holding a watch gives it up this long after its last tick.
        adopt_every: how often a process looks for watches nobody runs (after a restart).
        ticket_every: the least time between two looks at the linked tickets.
        updates_per_minute: chat.update calls all watches of a process may make (Slack's
            Tier 3 is about 50 a minute; bursts may reach 7/6 of this in one minute).
    """

    min_every: float = 10.0
    max_every: float = 600.0
    max_for: float = 3 * 3600.0
    default_every: float = 30.0
    default_for: float = 30 * 60.0
    burst: int = 5
    recover_after: int = 3
    lease_margin: float = 30.0
    adopt_every: float = 15.0
    ticket_every: float = 60.0
    updates_per_minute: int = 40

    def check_every(self, seconds: float, names: dict[str, str] = SLACK_OPTIONS) -> None:
        """Raise ``DurationError`` when ``seconds`` is outside the allowed interval; ``names``
        spells the options as the person types them."""
        if not self.min_every <= seconds <= self.max_every:
            raise DurationError(
                f"{names['every']} must be between {format_duration(self.min_every)} and "
                f"{format_duration(self.max_every)}"
            )

    def check_for(
        self, seconds: float, every: float, names: dict[str, str] = SLACK_OPTIONS
    ) -> None:
        if seconds > self.max_for:
            raise DurationError(f"{names['for']} can be at most {format_duration(self.max_for)}")
        if seconds < every:
            raise DurationError(f"{names['for']} must be at least one tick ({names['every']}) long")

    def lease_ttl(self, every: float) -> float:
        """How long one renewal of a watch's lease holds: a tick and a margin."""
        return every + self.lease_margin


DEFAULT_LIMITS = WatchLimits()
