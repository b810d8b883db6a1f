"""Incident summaries built from the stored rows (never from chat text).

A summary says where the incident stands: severity, status, how long it has run, the first
failing hop and its classification, what changed since the last summary, findings by status,
runbook progress, tickets and their states, and what to do next. The store aggregates the
findings in SQL, so a summary over 10,000 findings costs a few indexed queries.

Example::

    summary = build_summary(store, incident_id, now=services.clock(), reason="scheduled")
    await services.outbound.post(channel, summary.text(), summary.blocks())
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.diagnosis.checks.base import HOP_LAYERS, HOP_TITLES, Status, first_failing_hop
from bot.incident.store import (
    ROLES,
    CheckState,
    Incident,
    IncidentStore,
    RunbookSession,
    TicketLink,
    TimelineEntry,
)
from bot.mrkdwn import user

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_LISTED = 8

STATUS_ORDER = tuple(s.value for s in sorted(Status, key=lambda s: s.rank))
INCIDENT_STATUS_EMOJI = {
    "investigating": ":mag:",
    "identified": ":bulb:",
    "mitigated": ":adhesive_bandage:",
    "monitoring": ":eyes:",
    "resolved": ":white_check_mark:",
    "cancelled": ":heavy_multiplication_x:",
}
# A person in a role hand-over's text (the log keeps them as @U123).
_PERSON = re.compile(r"@([UW][A-Z0-9]{2,})\b")
# Timeline kinds that change the incident's state: listed under "What changed".
STATE_CHANGES = ("status", "resolved", "cancelled", "severity", "role")


def _emoji(status: str) -> str:
    try:
        return Status(status).emoji
    except ValueError:  # a row written by a newer version
        return ""


REASONS = {
    "scheduled": "Scheduled summary",
    "status": "Status changed",
    "resolved": "Incident resolved",
    "cancelled": "Incident cancelled",
    "severity": "Severity changed",
    "role": "Role handed over",
    "requested": "Summary",
    "declared": "Incident declared",
}


@dataclass(frozen=True)
class Changes:
    """What is different since the last summary (``since`` None: since the declaration)."""

    since: datetime | None
    new_failures: list[CheckState]
    recovered: list[CheckState]
    status_changes: list[TimelineEntry]
    new_tickets: list[TicketLink]
    notes: list[TimelineEntry]
    runs: int

    @property
    def empty(self) -> bool:
        return not (
            self.new_failures
            or self.recovered
            or self.status_changes
            or self.new_tickets
            or self.notes
            or self.runs
        )


@dataclass(frozen=True)
class RunbookProgress:
    """How far a runbook session has got, read from its stored state."""

    runbook_id: str
    steps_done: int
    current: str | None
    conclusion: str | None

    @property
    def finished(self) -> bool:
        return self.conclusion is not None

    def describe(self) -> str:
        if self.finished:
            return f"`{self.runbook_id}` finished: {self.conclusion}"
        at = f", at step `{self.current}`" if self.current else ""
        plural = "" if self.steps_done == 1 else "s"
        return f"`{self.runbook_id}`: {self.steps_done} step{plural} done{at}"


@dataclass(frozen=True)
class Summary:
    """Everything a summary post says, as data; ``blocks()`` and ``text()`` render it."""

    incident: Incident
    now: datetime
    reason: str
    states: list[CheckState]
    by_status: dict[str, int]
    total_findings: int
    run_count: int
    first_failure: CheckState | None
    changes: Changes
    runbooks: list[RunbookProgress]
    tickets: list[TicketLink]
    next_steps: list[str]

    @property
    def duration(self) -> timedelta:
        return self.incident.duration(self.now)

    @property
    def failing(self) -> list[CheckState]:
        return [s for s in self.states if s.failing]

    @property
    def also_failing(self) -> list[CheckState]:
        """Failing checks other than the first failure (which has its own line)."""
        first = self.first_failure.check_id if self.first_failure else None
        return [s for s in self.failing if s.check_id != first]

    # -- rendering ---------------------------------------------------------------------------

    def headline(self) -> str:
        inc = self.incident
        return (
            f"{REASONS.get(self.reason, 'Summary')}: #{inc.id} {inc.title} — SEV{inc.severity}, "
            f"{inc.status}, {format_duration(self.duration)}"
        )

    def first_failure_line(self, markdown: bool = True) -> str:
        first = self.first_failure
        if first is None:
            if not self.states:
                return "No diagnose run recorded yet."
            return "No hop of the request path fails in the latest findings."
        title = HOP_TITLES.get(first.layer, first.layer)
        check = f"`{first.check_id}`" if markdown else first.check_id
        star = "*" if markdown else ""
        return (
            f"First failing hop: {star}{title}{star} ({check}, "
            f"{first.classification or 'unclassified'}): {first.summary}"
        )

    def changes_lines(self) -> list[str]:
        ch = self.changes
        since = f"since {format_time(ch.since)}" if ch.since else "since it was declared"
        if ch.empty:
            return [f"Nothing changed {since}."]
        lines = [f"Since {format_time(ch.since)}:" if ch.since else "Since it was declared:"]
        for entry in ch.status_changes:
            text = (
                _PERSON.sub(lambda m: user(m[1]), entry.text)
                if entry.kind == "role"
                else entry.text
            )
            lines.append(f"• {text} ({_who(entry.actor)})")
        if ch.runs:
            lines.append(f"• {ch.runs} diagnose run{'s' if ch.runs != 1 else ''}")
        # Ids only: what each failure says is listed once, under the findings.
        for state in ch.new_failures[:MAX_LISTED]:
            lines.append(f"• newly failing: {state.check_id}")
        _more(lines, ch.new_failures, "newly failing")
        for state in ch.recovered[:MAX_LISTED]:
            lines.append(f"• recovered: {state.check_id} now {state.status}")
        _more(lines, ch.recovered, "recovered")
        for ticket in ch.new_tickets:
            lines.append(f"• ticket linked: {ticket.key} {ticket.title or ''}".rstrip())
        if ch.notes:
            lines.append(f"• {len(ch.notes)} note{'s' if len(ch.notes) != 1 else ''}")
        return lines

    def findings_line(self) -> str:
        if not self.states:
            return "Findings: none yet."
        parts = [f"{self.by_status[s]} {s}" for s in STATUS_ORDER if self.by_status.get(s)]
        return (
            f"Findings (latest per check): {', '.join(parts)} — "
            f"{self.total_findings} recorded over {self.run_count} "
            f"run{'s' if self.run_count != 1 else ''}"
        )

    def ticket_lines(self) -> list[str]:
        if not self.tickets:
            return ["Tickets: none linked."]
        lines = ["Tickets:"]
        for t in self.tickets[:MAX_LISTED]:
            state = t.status or ("done" if t.done else "open")
            lines.append(f"• {t.key} ({t.provider}, {state}) {t.title or ''}".rstrip())
        _more(lines, self.tickets, "tickets")
        return lines

    def text(self) -> str:
        """The summary as plain text (notifications, the CLI, the export)."""
        lines = [self.headline(), self.first_failure_line(markdown=False), ""]
        lines += self.changes_lines()
        lines += ["", self.findings_line()]
        for state in self.also_failing[:MAX_LISTED]:
            lines.append(f"  {state.status.upper():8} {state.check_id}: {state.summary}")
        if len(self.also_failing) > MAX_LISTED:
            lines.append(f"  …and {len(self.also_failing) - MAX_LISTED} more failing checks")
        if self.runbooks:
            lines.append("Runbooks: " + "; ".join(r.describe() for r in self.runbooks))
        lines += self.ticket_lines()
        if self.next_steps:
            lines.append("Next steps:")
            lines += [f"{i}. {step}" for i, step in enumerate(self.next_steps, 1)]
        return "\n".join(lines)

    def blocks(self) -> list[dict[str, Any]]:
        """Block Kit: at most 50 blocks, every section under 3000 characters."""
        inc = self.incident
        emoji = INCIDENT_STATUS_EMOJI.get(inc.status, "")
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _cut(f"#{inc.id} {inc.title}", 150),
                    "emoji": True,
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{REASONS.get(self.reason, 'Summary')} · SEV{inc.severity} · "
                        f"{emoji} *{inc.status}* · {format_duration(self.duration)} since "
                        f"{format_time(inc.started_at)}"
                        + "".join(
                            f" · {role} {user(inc.role(role))}" for role in ROLES if inc.role(role)
                        ),
                    }
                ],
            },
            _section(
                (
                    ":rotating_light: "
                    if self.first_failure
                    # A green tick only once something was checked and passed.
                    else ":white_check_mark: "
                    if self.states
                    else ":grey_question: "
                )
                + self.first_failure_line()
            ),
            _section("*What changed*\n" + "\n".join(self.changes_lines())),
        ]
        # The first failure is the verdict line above; the findings list the others.
        findings = [self.findings_line()]
        for state in self.also_failing[:MAX_LISTED]:
            findings.append(f"{_emoji(state.status)} `{state.check_id}` {state.summary}")
        _more(findings, self.also_failing, "failing checks")
        blocks.append(_section("\n".join(findings)))
        if self.runbooks:
            blocks.append(
                _section("*Runbooks*\n" + "\n".join(f"• {r.describe()}" for r in self.runbooks))
            )
        tickets = self.ticket_lines()
        tickets[0] = f"*{tickets[0]}*" if len(tickets) > 1 else tickets[0]
        blocks.append(_section("\n".join(tickets)))
        if self.next_steps:
            steps = "\n".join(f"{i}. {s}" for i, s in enumerate(self.next_steps, 1))
            blocks.append(_section("*Next steps*\n" + steps))
        return blocks[:MAX_BLOCKS]


def build_summary(
    store: IncidentStore,
    incident_id: int,
    now: datetime,
    *,
    reason: str = "requested",
    since_last_summary: bool = True,
) -> Summary:
    """Read the incident's rows and assemble its summary as of ``now``.

    "What changed" runs from the last posted summary, or from the declaration when
    ``since_last_summary`` is False (a view outside the channel, such as ``incident show``).
    """
    with store.session():
        incident = store.incident(incident_id)
        states = _path_order(store.check_states(incident_id))
        since = incident.last_summary_at if since_last_summary else None
        before = (
            {s.check_id: s for s in store.check_states(incident_id, as_of=since)} if since else {}
        )
        counts = store.finding_counts(incident_id)
        run_count = store.run_count(incident_id)
        timeline = store.timeline(incident_id, since=since)
        tickets = store.tickets(incident_id)
        sessions = store.runbook_sessions(incident_id)
    by_status: dict[str, int] = {}
    for state in states:
        by_status[state.status] = by_status.get(state.status, 0) + 1
    changes = Changes(
        since=since,
        new_failures=[
            s for s in states if s.failing and not (before.get(s.check_id) or _PASSING).failing
        ],
        recovered=[
            s
            for s in states
            if not s.failing and s.check_id in before and before[s.check_id].failing
        ],
        status_changes=[e for e in timeline if e.kind in STATE_CHANGES],
        new_tickets=[t for t in tickets if since is None or t.linked_at > since],
        notes=[e for e in timeline if e.kind == "note"],
        runs=sum(1 for e in timeline if e.kind == "diagnose"),
    )
    first = first_failing_hop(states)
    return Summary(
        incident=incident,
        now=now,
        reason=reason,
        states=states,
        by_status=by_status,
        total_findings=sum(counts.values()),
        run_count=run_count,
        first_failure=first,
        changes=changes,
        runbooks=[runbook_progress(s) for s in sessions],
        tickets=tickets,
        next_steps=next_steps(incident, states, first, tickets),
    )


_PASSING = CheckState("", "", "pass", None, "", None, 0, datetime.min)


def next_steps(
    incident: Incident,
    states: Sequence[CheckState],
    first: CheckState | None,
    tickets: Sequence[TicketLink],
) -> list[str]:
    """What to do next, from the first failure's hint, the failing checks and the tickets."""
    if not incident.is_open:
        return [f"Write up the post-incident report: `hokusai incident export {incident.id}`"]
    if not states:
        return ["Run `/hokusai diagnose` in this channel to find the first failing hop."]
    steps: list[str] = []
    failing = [s for s in states if s.failing]
    if first and first.hint:
        steps.append(f"{first.check_id}: {first.hint}")
    elif first:
        # What it says is the verdict line already: point at it, do not repeat it.
        steps.append(f"Look at {HOP_TITLES.get(first.layer, first.layer)} ({first.check_id})")
    for state in failing:
        if state is first or len(steps) >= 4:
            continue
        if state.hint:
            steps.append(f"{state.check_id}: {state.hint}")
    done_but_failing = [
        t for t in tickets if t.done and set(t.check_ids) & {s.check_id for s in failing}
    ]
    if done_but_failing:
        keys = ", ".join(t.key for t in done_but_failing)
        steps.append(f"{keys} marked done while its checks still fail: `/hokusai ticket verify`")
    if failing and not tickets:
        steps.append("Track the fix: `/hokusai ticket create TITLE` or `/hokusai ticket link KEY`")
    if not failing:
        if incident.status in ("investigating", "identified", "mitigated"):
            steps.append("Every check passes: `/hokusai incident status monitoring`")
        elif incident.status == "monitoring":
            steps.append("Still passing? `/hokusai incident resolve`")
    return steps[:5]


def runbook_progress(session: RunbookSession) -> RunbookProgress:
    """Read progress from a runbook session's state (``bot.runbook.walkthrough.WalkState`` JSON)."""
    state = session.state or {}
    steps = state.get("steps")
    if isinstance(steps, dict):
        done = sum(
            1
            for record in steps.values()
            if isinstance(record, dict) and record.get("state") in _STEP_DONE
        )
    elif isinstance(steps, list):
        done = sum(1 for s in steps if isinstance(s, dict) and s.get("state") in _STEP_DONE)
    else:
        done = len(state.get("path") or [])
    conclusion = state.get("conclusion") or ("finished" if state.get("finished") else None)
    current = state.get("current")
    return RunbookProgress(
        runbook_id=session.runbook_id,
        steps_done=done,
        current=str(current) if current and not conclusion else None,
        conclusion=str(conclusion) if conclusion else None,
    )


_STEP_DONE = frozenset({"passed", "failed", "done", "skipped", "answered"})


def _path_order(states: list[CheckState]) -> list[CheckState]:
    layers = {layer: i for i, layer in enumerate(HOP_LAYERS)}
    return sorted(states, key=lambda s: (layers.get(s.layer, len(layers)), s.run_id))


def format_duration(delta: timedelta) -> str:
    """``2h 05m``, ``12m``, ``45s``."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def format_time(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else "-"


def _who(actor: str | None) -> str:
    if not actor:
        return "hokusai"
    return user(actor)


def _more(lines: list[str], items: Sequence[Any], what: str) -> None:
    if len(items) > MAX_LISTED:
        lines.append(f"• …and {len(items) - MAX_LISTED} more {what}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}}
