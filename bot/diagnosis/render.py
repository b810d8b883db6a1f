"""Rendering a diagnose run: Block Kit for Slack, plain lines for the terminal.

Presentation lives here and on the status (emoji, symbol), never in the checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from bot.diagnosis.checks.base import (
    CONTEXT_LAYERS,
    HOP_LAYERS,
    HOP_TITLES,
    CheckOutcome,
    Status,
)

# A path pattern with a wildcard (/api/mlflow/*): in mrkdwn its `*` would start bold text.
_WILDCARD_PATH = re.compile(r"(?<![\w`:/<|])(/[\w.\-/{}]*[/.]\*[\w.\-/*{}?]*)")
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
# *bold* as Slack reads it: the stars hug the words and stand at word boundaries.
BOLD = re.compile(r"(?<![\w*/])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_EMOJI_CODE = re.compile(r"(?<!\S):[a-z0-9_+-]+:(?!\S)")


def protect_wildcards(text: str) -> str:
    """Put wildcard paths in code spans, outside existing code, so Slack shows them as typed."""
    if "*" not in text:
        return text
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = _WILDCARD_PATH.sub(r"`\1`", parts[i])
    return "".join(parts)


def plain_text(mrkdwn: str) -> str:
    """Slack mrkdwn as plain text for a tracker comment: no bold stars or emoji codes."""
    text = BOLD.sub(r"\1", mrkdwn)
    text = _EMOJI_CODE.sub("", text).replace("  ", " ")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


# Worst first: the status a layer shows is the worst of its checks'.
_SEVERITY = sorted(Status, key=lambda s: s.rank)
PENDING_EMOJI = ":hourglass_flowing_sand:"
MAX_EVIDENCE_LINES = 12


def layer_status(outcomes: Iterable[CheckOutcome], layer: str) -> Status | None:
    statuses = {o.status for o in outcomes if o.layer == layer}
    for status in _SEVERITY:
        if status in statuses:
            return status
    return None


def hop_chain(
    outcomes: Sequence[CheckOutcome],
    layers: Sequence[str],
    *,
    first_failure: CheckOutcome | None = None,
    pending: Iterable[str] = (),
    markdown: bool = True,
) -> str:
    """``DNS ✅ → Load balancer ✅ → *Listener rules* ❌ …`` for the layers in the run."""
    pending = set(pending)
    parts = []
    for layer in layers:
        status = layer_status(outcomes, layer)
        if markdown:
            mark = status.emoji if status else PENDING_EMOJI if layer in pending else ""
        else:
            mark = status.symbol if status else "…" if layer in pending else ""
        title = HOP_TITLES[layer]
        if first_failure is not None and first_failure.layer == layer:
            title = f"*{title}*" if markdown else f"[{title}]"
        parts.append(f"{title} {mark}".strip())
    return " → ".join(parts)


def _value(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _record(item: dict[str, Any]) -> str:
    """One evidence record (a rule, a target, a request) as ``a · b · c``; ARNs left out of
    the line (they stay in the stored evidence and the JSON report)."""
    values = [
        _value(v, 120)
        for k, v in item.items()
        if v not in (None, "", [], {}) and not (isinstance(v, str) and v.startswith("arn:"))
    ]
    return " · ".join(values)


# Where the evidence a view leaves out can be read: Slack has the thread, the terminal --json.
# Where the evidence a view leaves out can be read: every run is recorded whole.
MORE_IN_LOG = "kept in the incident log"
MORE_IN_JSON = "in hokusai diagnose --json"


def evidence_lines(
    evidence: dict[str, Any], limit: int = MAX_EVIDENCE_LINES, *, more: str = MORE_IN_LOG
) -> list[str]:
    """Evidence as ``key: value`` lines, the most useful first, cut to ``limit`` lines.

    A list of records (listener rules, targets) becomes one indented line per record.
    """
    items: list[list[str]] = []  # one item per evidence key: a record list stays whole
    for key, value in evidence.items():
        if value in (None, "", [], {}) or key == "fix":
            continue  # empty, or the fix, which every view shows on its own line
        if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
            items.append([f"{key}: {', '.join(str(v) for v in value[:10])}"])
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            item = [f"{key}:", *(f"  - {_value(_record(v), 200)}" for v in value[:8])]
            if len(value) > 8:
                item.append(f"  - … and {len(value) - 8} more")
            items.append(item)
        else:
            items.append([f"{key}: {_value(value)}"])
    lines = [line for item in items[:limit] for line in item]
    if len(items) > limit:
        left = len(items) - limit
        lines.append(f"({left} more evidence field{'' if left == 1 else 's'} {more})")
    return lines


def _layers_of(outcomes: Sequence[CheckOutcome], planned: Iterable[str] = ()) -> list[str]:
    present = {o.layer for o in outcomes} | set(planned)
    return [layer for layer in HOP_LAYERS if layer in present]


def outcome_line(outcome: CheckOutcome, markdown: bool = True) -> str:
    if markdown:
        return f"{outcome.status.emoji} `{outcome.id}` {outcome.result.summary}"
    return (
        f"{outcome.status.symbol} {outcome.id:<38} {outcome.result.summary}"
        f"  ({outcome.duration_ms} ms)"
    )


def progress_blocks(
    env: str, target: str, done: Sequence[CheckOutcome], planned_layers: Sequence[str], total: int
) -> tuple[str, list[dict[str, Any]]]:
    """The message shown while checks run."""
    finished_layers = {o.layer for o in done}
    pending = [layer for layer in planned_layers if layer not in finished_layers]
    chain = hop_chain(done, _layers_of(done, planned_layers), pending=pending)
    text = f"Diagnosing {env} ({target}): {len(done)}/{total} checks done"
    failing = [o for o in done if o.status.is_problem]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":mag: *{text}*\n{chain}"}},
    ]
    if failing:
        lines = "\n".join(outcome_line(o) for o in failing[:8])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": lines}})
    return text, blocks


_PROBLEMS = (Status.FAIL, Status.ERROR, Status.TIMEOUT)
MAX_NOTES = 5


def report_blocks(
    report: Any,
    *,
    target: str,
    actions: list[dict[str, Any]] | None = None,
    max_failures: int = 6,
) -> tuple[str, list[dict[str, Any]], bool]:
    """The final diagnose message: the headline (cause, first failing hop or why nothing is
    proven), the lead finding with its evidence, the other problems one line each, warnings
    and context, then the buttons.

    Returns:
        (fallback text, blocks, whether some detail did not fit and belongs in a thread).
    """
    outcomes: list[CheckOutcome] = list(report.outcomes)
    # The cause leads with its evidence (what a responder acts on); without a failure, the
    # first check that could not run. The other problems follow one line each.
    problems = [o for o in outcomes if _is_hop_problem(o)]
    lead = lead_outcome(report) or (problems[0] if problems else None)
    others = [o for o in problems if o is not lead]
    warnings = [o for o in outcomes if o.layer in HOP_LAYERS and o.status == Status.WARN]
    context = [o for o in outcomes if o.layer in CONTEXT_LAYERS and o.status != Status.SKIPPED]
    chain = hop_chain(outcomes, _layers_of(outcomes), first_failure=report.first_failure)

    blocks = [
        _header(f"Diagnose: {report.env} — {target}"),
        # The verdict is said once: in the headline (see headline()).
        _section(f"{headline(report)}\n{chain}"),
    ]
    if lead is not None:
        blocks.append(_outcome_section(lead))
    if others:
        blocks.append(_listing("Also failing", others, max_failures, "more in the thread"))
    notes = warnings[:MAX_NOTES] + context[:MAX_NOTES]
    if notes:
        blocks.append(_listing("Also seen", notes, len(notes)))
    blocks.append(_footer(outcomes, report.duration_ms))
    if actions:
        blocks.append({"type": "actions", "elements": actions})
    overflow = bool(others) or len(warnings) > MAX_NOTES or len(context) > MAX_NOTES
    return f"Diagnose {report.env}: {report.verdict}", blocks, overflow


def lead_outcome(report: Any) -> CheckOutcome | None:
    """What a responder acts on first: the cause when one is named, else the first failure."""
    cause = getattr(report, "cause", None)
    if cause is not None and cause.id:
        found = report.outcome(cause.id)
        if found is not None:
            return found
    return report.first_failure


def headline(report: Any, *, markdown: bool = True) -> str:
    """``Cause: *Database* (infrastructure)`` over ``First failing hop: *Application*``."""

    def bold(text: str) -> str:
        return f"*{text}*" if markdown else text

    first, cause = report.first_failure, getattr(report, "cause", None)
    outcomes = list(report.outcomes)
    if first is None:
        unproven = not outcomes or any(o.status in (Status.ERROR, Status.TIMEOUT) for o in outcomes)
        if unproven:
            # Why the path is not proven healthy (the checks that could not run, and why).
            return (":warning: " if markdown else "") + report.verdict
        if getattr(report, "scopes", None):
            # The scope, what it did not look at, what a full run found: never "healthy".
            return (":white_check_mark: " if markdown else "") + report.verdict
        return (":white_check_mark: " if markdown else "") + "No hop of the request path fails"
    first_line = (
        f"First failing hop: {bold(HOP_TITLES[first.layer])}"
        f" ({first.result.classification or 'unclassified'})"
    )
    icon = ":rotating_light: " if markdown else ""
    if cause is None or cause.id == first.id:
        return icon + first_line
    if cause.confidence == "inconclusive":
        return f"{icon}{first_line} — cause not established: {cause.summary}"
    likely = " (likely)" if cause.confidence == "likely" else ""
    cause_line = (
        f"Cause{likely}: {bold(HOP_TITLES.get(cause.layer, cause.layer))} "
        f"({cause.classification or 'unclassified'}) — `{cause.id}`"
    )
    return f"{icon}{cause_line}\n{first_line}, where it shows"


def _is_hop_problem(outcome: CheckOutcome) -> bool:
    return outcome.layer in HOP_LAYERS and outcome.status in _PROBLEMS


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _listing(title: str, outcomes: Sequence[CheckOutcome], limit: int, rest: str = "") -> dict:
    lines = [outcome_line(o) for o in outcomes[:limit]]
    if len(outcomes) > limit:
        lines.append(f"… and {len(outcomes) - limit} {rest}".rstrip())
    return _section(f"*{title}:*\n" + "\n".join(lines))


def _footer(outcomes: Sequence[CheckOutcome], duration_ms: int) -> dict[str, Any]:
    n = len(outcomes)
    text = f"{_counts(outcomes)} · {n} check{'' if n == 1 else 's'} in {duration_ms} ms · read-only"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


FIX_NOTE = "review it, then run it yourself: Hokusai only reads"


def fix_command(result: Any) -> str | None:
    """The ready-to-run command a check offers for what it found, if any (``fix`` evidence)."""
    fix = (result.evidence or {}).get("fix")
    return fix if isinstance(fix, str) and fix else None


def _fix_lines(result: Any) -> list[str]:
    fix = fix_command(result)
    return [f"_Fix ({FIX_NOTE}):_", f"```{fix}```"] if fix else []


def _outcome_section(outcome: CheckOutcome) -> dict[str, Any]:
    result = outcome.result
    lines = [outcome_line(outcome)]
    if result.hint:
        lines.append(f"_Next:_ {result.hint}")
    lines += _fix_lines(result)
    evidence = evidence_lines(result.evidence, limit=8)
    if evidence:
        lines.append("```" + "\n".join(evidence) + "```")
    return _section("\n".join(lines))


def _counts(outcomes: Sequence[CheckOutcome]) -> str:
    parts = []
    for status in _SEVERITY:  # every status, so the counts add up to the checks
        n = sum(1 for o in outcomes if o.status == status)
        if n:
            parts.append(f"{n} {status}")
    return ", ".join(parts) or "no checks"


def detail_text(outcomes: Sequence[CheckOutcome]) -> str:
    """Every check with its evidence, for the thread under the report."""
    sections = []
    for outcome in outcomes:
        lines = [outcome_line(outcome)]
        if outcome.result.hint:
            lines.append(f"_Next:_ {outcome.result.hint}")
        lines += _fix_lines(outcome.result)
        evidence = evidence_lines(outcome.result.evidence, limit=6)
        if evidence:
            lines.append("```" + "\n".join(evidence) + "```")
        sections.append("\n".join(lines))
    return "\n".join(sections)


def detail_chunks(outcomes: Sequence[CheckOutcome], limit: int = 3500) -> list[str]:
    """``detail_text`` cut into messages that fit Slack's comfortable size."""
    chunks, current = [], ""
    for outcome in outcomes:
        piece = detail_text([outcome])
        if current and len(current) + len(piece) + 1 > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def terminal_report(report: Any, *, color: bool = False) -> str:
    """The final view on the command line."""
    outcomes = list(report.outcomes)
    first = report.first_failure
    lines = [
        f"hokusai diagnose {report.env}: {len(outcomes)} checks in {report.duration_ms} ms",
        *headline(report, markdown=False).replace("`", "").splitlines(),
        hop_chain(outcomes, _layers_of(outcomes), first_failure=first, markdown=False),
        "",
    ]
    for outcome in outcomes:
        lines.append(outcome_line(outcome, markdown=False))
        if outcome.status.is_problem:
            if outcome.result.hint:
                lines.append(f"    next: {outcome.result.hint}")
            fix = fix_command(outcome.result)
            if fix:
                lines.append(f"    fix ({FIX_NOTE}): {fix}")
            evidence = evidence_lines(outcome.result.evidence, 8, more=MORE_IN_JSON)
            lines += [f"    {line}" for line in evidence]
    lines += ["", f"Verdict: {report.verdict}"]
    return "\n".join(lines)
