"""How a watch looks: one Slack message updated in place, its thread lines, a terminal table.

Presentation lives on the state (icon, title), not in the code that runs the ticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot import mrkdwn
from bot.watch.limits import format_duration
from bot.watch.model import (
    FAILING,
    INTERMITTENT,
    RECOVERED,
    REGRESSED,
    WATCHING,
    CheckTrack,
    Headline,
    clock,
    strip,
)

ICONS: dict[str, str] = {
    FAILING: ":red_circle:",
    INTERMITTENT: ":large_yellow_circle:",
    RECOVERED: ":large_green_circle:",
    REGRESSED: ":rotating_light:",
    WATCHING: ":mag:",
}
TITLES: dict[str, str] = {
    FAILING: "Failing",
    INTERMITTENT: "Intermittent",
    RECOVERED: "Recovered",
    REGRESSED: "Regressed",
    WATCHING: "Watching",
}
MONITORING_ACTION = "watch_monitoring"
MAX_CHECKS_SHOWN = 40  # Slack allows 50 blocks a message; the rest is the frame
MAX_SUMMARY = 240


@dataclass
class WatchView:
    """Everything the watch message shows."""

    watch_id: int
    env: str
    every: float
    ends_at: datetime
    tracks: Sequence[CheckTrack]
    headline: Headline
    tick: int = 0
    ended: str | None = None  # None while live; "ended" (time ran out) or "stopped"
    stopped_by: str | None = None
    offer_monitoring: bool = False
    notes: list[str] = field(default_factory=list)


def rate_text(track: CheckTrack) -> str:
    rate = track.rate
    if rate is None:
        return "skipped every time" if track.samples else "no results yet"
    return f"{round(rate * 100)}% pass of {track.total}"


def failure_times(track: CheckTrack) -> str:
    if not track.first_failure_at:
        return "no failures"
    first, last = clock(track.first_failure_at), clock(track.last_failure_at)
    return f"failed first {first}, last {last}" if first != last else f"failed at {first}"


def answers_text(track: CheckTrack) -> str:
    """``"3 × 200 by MLflow, 2 × 404 by FastAPI"`` over the recent ticks."""
    return ", ".join(f"{n} × {answer}" for answer, n in track.answer_counts())


def headline_text(view: WatchView) -> str:
    head = view.headline
    title = f"{ICONS[head.name]} *{TITLES[head.name]}*"
    if view.ended == "stopped":
        who = f" by {mrkdwn.user(view.stopped_by)}" if view.stopped_by else ""
        title = f"Watch stopped{who} · final state {title}"
    elif view.ended:
        title = f"Watch ended · final state {title}"
    since = f" since {clock(head.since)}" if head.since and head.name != RECOVERED else ""
    return f"{title}{since} — {head.detail}" if head.detail else title + since


def message(view: WatchView) -> tuple[str, list[dict[str, Any]]]:
    """The watch message: headline, a line per check, when it updates, maybe a button."""
    checks = len(view.tracks)
    frame = (
        f":mag: *Watch #{view.watch_id}* of {checks} check{'s' if checks != 1 else ''} in "
        f"`{view.env}`, every {format_duration(view.every)} until "
        f"{view.ends_at.strftime('%H:%M')} UTC"
    )
    headline = headline_text(view)
    blocks: list[dict[str, Any]] = [
        _section(frame),
        _section(headline),
    ]
    for note in view.notes[-3:]:
        blocks.append(_section(note))
    for track in view.tracks[:MAX_CHECKS_SHOWN]:
        blocks.append(_section(_check_line(track)))
    if len(view.tracks) > MAX_CHECKS_SHOWN:
        blocks.append(_context(f"…and {len(view.tracks) - MAX_CHECKS_SHOWN} more checks"))
    footer = f"Tick {view.tick}"
    if view.ended is None:
        footer += " · updates once a tick · stop it with `/hokusai watch stop`"
    blocks.append(_context(footer))
    if view.offer_monitoring:
        blocks.append(monitoring_actions(view.watch_id))
    text = f"Watch #{view.watch_id} ({view.env}): {TITLES[view.headline.name].lower()}"
    if view.headline.detail:
        text += f" — {view.headline.detail}"
    return text, blocks


def _check_line(track: CheckTrack) -> str:
    line = f"`{track.id}`  {strip(track) or '…'}\n{rate_text(track)} · {failure_times(track)}"
    answers = answers_text(track)
    if answers:
        line += f"\n_{answers}_"
    if track.ticks and track.ticks[-1] != "pass" and track.summary:
        summary = track.summary
        if len(summary) > MAX_SUMMARY:
            summary = summary[: MAX_SUMMARY - 1] + "…"
        line += f"\n{summary}"
    return line


def monitoring_actions(watch_id: int) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": f"watch-{watch_id}-actions",
        "elements": [
            {
                "type": "button",
                "action_id": MONITORING_ACTION,
                "text": {"type": "plain_text", "text": "Move incident to monitoring"},
                "value": str(watch_id),
                "style": "primary",
            }
        ],
    }


def transition_line(view: WatchView, offer_monitoring: bool) -> tuple[str, list[dict[str, Any]]]:
    """The one thread line a recovery or a regression gets."""
    head = view.headline
    if head.name == RECOVERED:
        text = f":large_green_circle: Recovered: {head.detail}."
    else:
        text = f":rotating_light: Regressed: {head.detail}."
    blocks = [_section(text)]
    if offer_monitoring:
        blocks.append(monitoring_actions(view.watch_id))
    return text, blocks


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def plain_headline(headline: Headline) -> str:
    """The headline for a terminal: ``FAILING since 09:14:03 — every recent result fails``."""
    since = f" since {clock(headline.since)}" if headline.since else ""
    detail = f" — {headline.detail}" if headline.detail else ""
    return f"{TITLES[headline.name].upper()}{since}{detail}"
