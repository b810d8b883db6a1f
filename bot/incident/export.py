"""The post-incident report in Markdown, written from the stored rows.

It follows the postmortem skeleton responders know: Summary, Impact, Root cause, Detection,
Timeline (people's actions and state changes, not every check), Resolution and Action items,
then an Appendix with the full evidence. People and channels appear by name, from the names
``bot.incident.people`` cached; a short incident reads on one screen before the appendix.

``hokusai incident export ID`` prints it; ``/hokusai incident export`` attaches it to the
channel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.diagnosis.checks.base import HOP_TITLES, first_failing_hop
from bot.incident.store import (
    SEVERITY_MEANINGS,
    DiagnoseRun,
    FailureSpan,
    Finding,
    Incident,
    IncidentStore,
    TicketLink,
    TimelineEntry,
)
from bot.incident.summaries import format_duration, format_time

MAX_EVIDENCE_CHARS = 4000
MAX_RUNS_LISTED = 50
MAX_CAUSE_EVIDENCE = 8
# A person in stored text: a Slack mention (<@U123|dana>) or the log's plain form (@U123).
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>|@([UW][A-Z0-9]{2,})\b")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
_VERIFIED = {
    "confirmed": "yes: its checks pass",
    "failing": "no: Done, but its checks still fail",
    "unchecked": "not re-checked",
}


@dataclass(frozen=True)
class ReportData:
    """Everything the report reads, gathered in one store session."""

    incident: Incident
    timeline: list[TimelineEntry]
    runs: list[DiagnoseRun]  # oldest first
    run_total: int
    spans: list[FailureSpan]
    latest: list[Finding]
    failures: list[Finding]
    cause_finding: Finding | None
    tickets: list[TicketLink]
    names: Mapping[str, str]
    channels: Mapping[str, str]

    @property
    def cause_run(self) -> DiagnoseRun | None:
        """The last run that named a cause: the diagnosis the team acted on."""
        named = [r for r in self.runs if r.first_failure_id or r.cause]
        return named[-1] if named else None


def export_filename(incident: Incident) -> str:
    """``incident-12-registry-404s.md``."""
    slug = re.sub(r"[^a-z0-9]+", "-", incident.title.lower()).strip("-")[:40].strip("-")
    return f"incident-{incident.id}-{slug or 'untitled'}.md"


def export_markdown(
    store: IncidentStore,
    incident_id: int,
    now: datetime,
    *,
    names: Mapping[str, str] | None = None,
    audience: str | None = None,
) -> str:
    """The whole report as one Markdown document.

    Args:
        names: Slack user id -> name, on top of the names the store has cached.
        audience: who the failing path serves (the environment's public URL), when known.
    """
    data = gather(store, incident_id, names)
    return "\n".join(_Report(data, now, audience).lines()) + "\n"


def gather(
    store: IncidentStore, incident_id: int, names: Mapping[str, str] | None = None
) -> ReportData:
    """Read the incident's rows for the report."""
    with store.session():
        incident = store.incident(incident_id)
        runs = sorted(store.runs(incident_id, limit=MAX_RUNS_LISTED), key=lambda r: r.id)
        # What a person's diagnose named: a watch's run covers only the checks it follows.
        named = [r for r in runs if (r.first_failure_id or r.cause) and not r.by_watch]
        failures = store.last_failures(incident_id)
        # The finding the last diagnosis named; runs that named none: the earliest failing hop.
        cause_finding = first_failing_hop(failures)
        if named and named[-1].first_failure_id:
            in_run = store.findings(incident_id, run_id=named[-1].id)
            cause_finding = next(
                (f for f in in_run if f.check_id == named[-1].first_failure_id), cause_finding
            )
        return ReportData(
            incident=incident,
            timeline=store.timeline(incident_id),
            runs=runs,
            run_total=store.run_count(incident_id),
            spans=store.failure_spans(incident_id),
            latest=store.findings(incident_id, latest_only=True),
            failures=failures,
            cause_finding=cause_finding,
            tickets=store.tickets(incident_id),
            names={**store.people(), **(names or {})},
            channels=store.channel_names(),
        )


def _person(match: re.Match[str], names: Mapping[str, str]) -> str:
    user_id = match[1] or match[3]
    return "@" + (names.get(user_id) or match[2] or user_id)


def _cause(run: DiagnoseRun | None) -> dict[str, Any]:
    """The diagnosis' ``cause`` of a run, as a dict (older runs have none)."""
    cause = run.cause if run is not None else None
    if isinstance(cause, str):
        return {"summary": cause}
    return cause if isinstance(cause, dict) and cause.get("summary") else {}


def _evidence_lines(evidence: Mapping[str, Any], limit: int) -> list[str]:
    lines = []
    for key, value in list(evidence.items())[:limit]:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        lines.append(f"- {key}: `{_short(text, 200).replace('`', chr(39))}`")
    if len(evidence) > limit:
        lines.append(f"- …{len(evidence) - limit} more in the appendix")
    return lines


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Report:
    """Renders one ``ReportData``; each section is a method returning its lines."""

    def __init__(self, data: ReportData, now: datetime, audience: str | None) -> None:
        self.data = data
        self.inc = data.incident
        self.now = now
        self.audience = audience

    def lines(self) -> list[str]:
        out = [f"# Incident #{self.inc.id}: {self.text(self.inc.title)}", "", self.facts(), ""]
        for section in (
            self.summary,
            self.impact,
            self.root_cause,
            self.detection,
            self.timeline,
            self.resolution,
            self.action_items,
            self.appendix,
        ):
            out += section()
        out.append(f"_Generated by Hokusai at {format_time(self.now)} from the incident log._")
        return out

    # -- helpers -----------------------------------------------------------------------------

    def who(self, user_id: str | None) -> str:
        if not user_id:
            return "Hokusai"
        return self.data.names.get(user_id) or user_id

    def text(self, value: str | None) -> str:
        """Stored text with mentions and channel links as names, on one line."""
        names, channels = self.data.names, self.data.channels
        value = _MENTION.sub(lambda m: _person(m, names), value or "")
        value = _CHANNEL.sub(lambda m: "#" + (m[2] or channels.get(m[1]) or m[1]), value)
        return " ".join(value.split())

    def cell(self, value: str | None) -> str:
        return self.text(value).replace("|", "\\|")

    def channel(self, channel_id: str | None = None) -> str:
        channel_id = channel_id or self.inc.channel_id
        if channel_id == self.inc.channel_id and self.inc.channel_name:
            return f"#{self.inc.channel_name}"
        if channel_id == self.inc.origin_channel_id and self.inc.origin_channel_name:
            return f"#{self.inc.origin_channel_name}"
        name = self.data.channels.get(channel_id)
        return f"#{name}" if name else channel_id

    def when(self, at: datetime | None) -> str:
        """``06:10`` on the day the incident started, the full date on later days."""
        if at is None:
            return "-"
        if at.date() == self.inc.started_at.date():
            return at.strftime("%H:%M")
        return at.strftime("%Y-%m-%d %H:%M")

    def entries(self, *kinds: str) -> list[TimelineEntry]:
        return [e for e in self.data.timeline if e.kind in kinds]

    def duration(self) -> str:
        return format_duration(self.inc.duration(self.now))

    # -- sections ----------------------------------------------------------------------------

    def facts(self) -> str:
        inc = self.inc
        span = format_time(inc.started_at)
        if inc.resolved_at:
            span = f"{span[:-4]} – {self.when(inc.resolved_at)} UTC"
        roles = [
            f"{role} {self.who(user)}"
            for role, user in (
                ("commander", inc.commander),
                ("comms", inc.comms),
                ("scribe", inc.scribe),
            )
            if user
        ]
        private = " (private)" if inc.private else ""
        return (
            f"**SEV{inc.severity}** · **{inc.status}** · {self.duration()} ({span}) · "
            f"{', '.join(roles) or 'no commander'} · {self.channel()}{private}"
        )

    def summary(self) -> list[str]:
        inc = self.inc
        declared = self.entries("declared")
        by = self.who(declared[0].actor if declared else inc.commander)
        text = f"Declared SEV{inc.severity} by {by} at {self.when(inc.started_at)}"
        closing = self.entries("resolved", "cancelled")
        if inc.status == "resolved":
            who = self.who(closing[-1].actor if closing else None)
            text += f"; resolved by {who} at {self.when(inc.resolved_at)}, after {self.duration()}."
        elif inc.status == "cancelled":
            text += f"; cancelled at {self.when(inc.resolved_at)}."
        else:
            text += f"; {inc.status} for {self.duration()} so far."
        cause = self.cause_text()
        if cause:
            text += f" Cause: {cause}."
        fixed = [t.key for t in self.data.tickets if t.verified == "confirmed"]
        if fixed:
            text += f" Fixed by {', '.join(fixed)}, confirmed by re-running its checks."
        anyway = [e for e in self.entries("decision") if e.ref == "resolve-anyway"]
        if anyway:
            text += " Resolved while checks still failed (see Resolution)."
        return ["## Summary", "", text, ""]

    def cause_text(self) -> str | None:
        cause = _cause(self.data.cause_run)
        if cause:
            return self.text(str(cause["summary"]))
        finding = self.data.cause_finding
        if finding is None:
            return None
        hop = HOP_TITLES.get(finding.layer, finding.layer)
        cls = finding.classification or "unclassified"
        return f"{hop} ({cls}) — {self.text(finding.summary)}"

    def impact(self) -> list[str]:
        inc = self.inc
        out = ["## Impact", ""]
        end = self.when(inc.resolved_at) if inc.resolved_at else "now"
        out.append(f"- **Duration:** {self.duration()} ({self.when(inc.started_at)} → {end})")
        spans = self.data.spans
        if spans:
            layers = {HOP_TITLES.get(s.layer, s.layer) for s in spans}
            out.append(
                f"- **What failed:** {len(spans)} check{'s' if len(spans) != 1 else ''} in "
                f"{len(layers)} part{'s' if len(layers) != 1 else ''} of the request path:"
            )
            for span in spans[:8]:
                still = " (still failing)" if span.still_failing else ""
                out.append(
                    f"  - {HOP_TITLES.get(span.layer, span.layer)} `{span.check_id}`: "
                    f"{self.text(span.summary)} — {self.when(span.first_at)}–"
                    f"{self.when(span.last_at)}{still}"
                )
            if len(spans) > 8:
                out.append(f"  - …and {len(spans) - 8} more (appendix)")
        else:
            out.append("- **What failed:** no check failed in the recorded diagnose runs.")
        meaning = SEVERITY_MEANINGS.get(inc.severity, "")
        whom = f"clients of {self.audience}" if self.audience else "users of the diagnosed path"
        out += [f"- **For whom:** {whom}. SEV{inc.severity} — {meaning}", ""]
        return out

    def root_cause(self) -> list[str]:
        out = ["## Root cause", ""]
        run = self.data.cause_run
        if run is None and self.data.cause_finding is None:
            return [*out, "No diagnose run found a failing hop.", ""]
        cause = _cause(run)
        finding = self.data.cause_finding
        evidence: Mapping[str, Any] = {}
        if cause:
            out += [self.text(str(cause["summary"])), ""]
            if isinstance(cause.get("evidence"), Mapping):
                evidence = cause["evidence"]
        if finding is not None:
            hop = HOP_TITLES.get(finding.layer, finding.layer)
            out.append(
                f"First failing hop: *{hop}* (`{finding.check_id}`, "
                f"{finding.classification or 'unclassified'}): {self.text(finding.summary)}"
            )
            if finding.hint:
                out.append(f"Suggested fix: {self.text(finding.hint)}")
            evidence = evidence or finding.evidence
        if evidence:
            out += ["", "Evidence:", *_evidence_lines(evidence, MAX_CAUSE_EVIDENCE)]
        return [*out, ""]

    def detection(self) -> list[str]:
        inc = self.inc
        out = ["## Detection", ""]
        before = [r for r in self.data.runs if r.started_at <= inc.started_at and not r.by_watch]
        declared = self.entries("declared")
        by = self.who(declared[0].actor if declared else inc.commander)
        where = self.channel(inc.origin_channel_id) if inc.origin_channel_id else "Slack"
        if before:
            run = before[0]
            out.append(
                f"`/hokusai diagnose` run by {self.who(run.requested_by)} at "
                f"{self.when(run.started_at)} found the failing hop; {by} declared the incident "
                f"from {where} at {self.when(inc.started_at)}."
            )
        else:
            out.append(f"{by} declared the incident from {where} at {self.when(inc.started_at)}.")
        first = next((r for r in self.data.runs if r.first_failure_id), None)
        if first is not None:
            hop = HOP_TITLES.get(first.first_failure_layer or "", first.first_failure_layer or "?")
            out.append(
                f"The first failing hop ({hop}, `{first.first_failure_id}`) was first recorded at "
                f"{self.when(first.started_at)}, run {first.id}."
            )
        return out + [""]

    def timeline(self) -> list[str]:
        out = ["## Timeline", "", "| Time (UTC) | Who | What |", "|---|---|---|"]
        last_hop: str | None = "unset"
        for entry in self.data.timeline:
            if entry.kind == "diagnose":
                hop = _run_hop(entry, self.data.runs)
                if hop == last_hop:
                    continue
                last_hop = hop
                what = (
                    f"Diagnose: first failing hop {HOP_TITLES.get(hop[0], hop[0])} (`{hop[1]}`)"
                    if hop
                    else "Diagnose: no failing hop"
                )
            elif entry.kind in ("summary",):
                continue
            else:
                what = _KIND_LABEL.get(entry.kind, "") + self.cell(entry.text)
            out.append(f"| {self.when(entry.at)} | {self.cell(self.who(entry.actor))} | {what} |")
        return out + [""]

    def resolution(self) -> list[str]:
        inc = self.inc
        out = ["## Resolution", ""]
        closing = self.entries("resolved", "cancelled")
        if not closing:
            return out + [f"Not resolved yet ({inc.status}).", ""]
        entry = closing[-1]
        _, _, why = entry.text.partition(": ")
        out.append(
            f"{self.who(entry.actor)} {entry.kind} the incident at {self.when(entry.at)}"
            + (f": {self.text(why)}." if why else ".")
        )
        for decision in self.entries("decision", "resolve-check"):
            out.append(
                f"- {self.when(decision.at)} {self.who(decision.actor)}: {self.text(decision.text)}"
            )
        failing = [f for f in self.data.latest if f.failing]
        passing = [f for f in self.data.latest if f.status == "pass"]
        out.append(
            f"Checks at the end: {len(passing)} pass, {len(failing)} fail"
            + (f" ({', '.join(f'`{f.check_id}`' for f in failing[:5])})" if failing else "")
            + "."
        )
        return out + [""]

    def action_items(self) -> list[str]:
        out = ["## Action items", ""]
        if not self.data.tickets:
            return out + ["No tickets were linked.", ""]
        out += ["| Ticket | Title | Linked by | State | Fix verified |", "|---|---|---|---|---|"]
        for t in self.data.tickets:
            key = f"[{t.key}]({t.url})" if t.url else t.key
            state = t.status or ("Done" if t.done else "open")
            verified = _VERIFIED.get(
                t.verified or "", "not yet (ticket open)" if not t.done else "not re-checked"
            )
            linked_by = self.cell(self.who(t.linked_by)) if t.linked_by else "-"
            if t.verified_at:
                verified += f" ({self.when(t.verified_at)})"
            out.append(
                f"| {key} | {self.cell(t.title or '')} | {linked_by} | {state} | {verified} |"
            )
        return out + [""]

    def appendix(self) -> list[str]:
        out = ["## Appendix: evidence", ""]
        latest = {f.check_id: f for f in self.data.latest}
        if not latest:
            out += ["_No diagnose run was recorded for this incident._", ""]
        failed = {f.check_id for f in self.data.failures}
        if self.data.failures:
            out += ["### What failed (each check's last failure)", ""]
        for finding in self.data.failures:
            now = latest.get(finding.check_id)
            out += _finding(finding, self.when, now.status if now else None)
        warnings = [f for f in latest.values() if f.status == "warn" and f.check_id not in failed]
        for finding in warnings:
            out += _finding(finding, self.when, None)
        passing = [f for f in latest.values() if f.status == "pass" and f.check_id not in failed]
        if passing:
            out += [f"### Passing throughout ({len(passing)})", ""]
            out += [f"- `{f.check_id}`: {self.text(f.summary)}" for f in passing]
            out.append("")
        out += ["### Diagnose runs", ""]
        if self.data.runs:
            out += ["| Run | Started | By | First failing hop | Verdict |", "|---|---|---|---|---|"]
            for run in self.data.runs:
                hop = (
                    f"{HOP_TITLES.get(run.first_failure_layer or '', run.first_failure_layer)} "
                    f"(`{run.first_failure_id}`)"
                    if run.first_failure_id
                    else "none"
                )
                who = self.cell(self.who(run.requested_by))
                out.append(
                    f"| {run.id} | {self.when(run.started_at)} | {who} | {hop} "
                    f"| {self.cell(run.verdict or '')} |"
                )
            if self.data.run_total > len(self.data.runs):
                out.append(
                    f"\n_{self.data.run_total - len(self.data.runs)} earlier runs not listed._"
                )
        else:
            out.append("_None._")
        return out + [""]


_KIND_LABEL = {
    "note": "Note: ",
    "severity": "",
    "role": "",
    "verify": "Ticket check: ",
    "decision": "",
}


def _run_hop(entry: TimelineEntry, runs: list[DiagnoseRun]) -> tuple[str, str] | None:
    ref = entry.ref or ""
    run_id = int(ref.split(":", 1)[1]) if ref.startswith("run:") and ref[4:].isdigit() else None
    run = next((r for r in runs if r.id == run_id), None)
    if run is None or not run.first_failure_id:
        return None
    return (run.first_failure_layer or "", run.first_failure_id)


def _finding(finding: Finding, when: Any, now: str | None) -> list[str]:
    title = HOP_TITLES.get(finding.layer, finding.layer)
    cls = f", {finding.classification}" if finding.classification else ""
    if now and now != finding.status:
        cls += f"; {now} at the end"
    lines = [
        f"#### `{finding.check_id}` — {finding.status.upper()} ({title}{cls})",
        "",
        finding.summary,
        "",
    ]
    if finding.hint:
        lines += [f"Hint: {finding.hint}", ""]
    if finding.evidence:
        text = json.dumps(finding.evidence, indent=2, sort_keys=True, default=str)
        if len(text) > MAX_EVIDENCE_CHARS:
            text = text[:MAX_EVIDENCE_CHARS] + "\n… (evidence truncated)"
        lines += ["```json", text.replace("```", "'''"), "```", ""]
    lines += [f"_Recorded {when(finding.at)}, run {finding.run_id}._", ""]
    return lines
