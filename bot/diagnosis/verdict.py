"""The verdict: the one sentence a person reads first.

It leads with the cause and names the symptom ("Cause: the RDS instance is stopped (Database,
infrastructure). It explains 4 failing checks; first visible at Application: ..."). It never
says more than the run saw: checks that could not run are named with their reason ("not
checked: AccessDenied on rds:DescribeDBInstances"), a scoped run names its scope and the hops
it did not look at, and a scoped run never calls the request path healthy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.diagnosis.cause import unfinished_reasons
from bot.diagnosis.checks.base import HOP_LAYERS, HOP_TITLES, CheckOutcome, Status

if TYPE_CHECKING:
    from bot.diagnosis.cause import Cause

_UNFINISHED = (Status.ERROR, Status.TIMEOUT)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _title(layer: str | None) -> str:
    return HOP_TITLES.get(layer or "", layer or "?")


def _plain(summary: str) -> str:
    return summary.rstrip(". ")


def build_verdict(
    outcomes: Sequence[CheckOutcome],
    first: CheckOutcome | None,
    cause: Cause | None = None,
    *,
    scopes: Sequence[str] = (),
) -> str:
    """Where the path breaks, what broke it, and what the run could not see."""
    if not outcomes:
        return "No checks ran."
    if first is not None:
        parts = [_failure_sentence(first, cause)]
        reasons = unfinished_reasons(outcomes)
        if reasons and not (cause is not None and cause.confidence == "inconclusive"):
            parts.append("Not checked: " + _reason_list(reasons) + ".")
    elif scopes:
        parts = [_scoped_no_failure(outcomes, scopes)]
    else:
        parts = [_no_failure_sentence(outcomes)]
    if scopes:
        parts.append(scope_sentence(outcomes, scopes))
    return " ".join(parts)


def _failure_sentence(first: CheckOutcome, cause: Cause | None) -> str:
    where = (
        f"The request path first breaks at {_title(first.layer)}: {_plain(first.result.summary)}"
    )
    if cause is not None and cause.confidence == "inconclusive":
        return f"{where}. The cause is not established: {_plain(cause.summary)}."
    if cause is None or cause.id == first.id:
        kind = first.result.classification
        tail = f" — {_article(kind)} {kind} problem." if kind else "."
        if cause is not None and cause.confidence == "likely":
            tail = tail.rstrip(".") + "; nothing the run checked further down explains it."
        return where + tail
    lead = "Cause" if cause.confidence == "confirmed" else "Likely cause"
    kind = f", {cause.classification}" if cause.classification else ""
    explained = len(cause.explains)
    plural = "check" if explained == 1 else "checks"
    return (
        f"{lead}: {_plain(cause.summary)} ({_title(cause.layer)}{kind}). It explains "
        f"{explained} failing {plural}; first visible at {_title(first.layer)}: "
        f"{_plain(first.result.summary)}."
    )


def _no_failure_sentence(outcomes: Sequence[CheckOutcome]) -> str:
    unfinished = [o for o in outcomes if o.status in _UNFINISHED]
    if unfinished:
        reasons = unfinished_reasons(outcomes)
        reason, ids = reasons[0]
        if len(ids) >= 3 and len(ids) * 2 > len(unfinished):
            return (
                f"No hop failed, but {len(ids)} of {len(unfinished)} unfinished check(s) could "
                f"not run: {reason}. Fix that first; the path is not proven healthy."
            )
        return (
            "No hop failed, but not everything was checked — "
            f"{_reason_list(reasons)}; the path is not proven healthy."
        )
    context_fail = [o.id for o in outcomes if o.status is Status.FAIL]
    warned = [o.id for o in outcomes if o.status is Status.WARN]
    if context_fail:
        return f"Every hop answered; context checks found problems ({', '.join(context_fail[:5])})."
    if warned:
        return f"Every hop answered, with {len(warned)} warning(s) ({', '.join(warned[:5])})."
    passed = sum(1 for o in outcomes if o.status is Status.PASS)
    plural = "check" if passed == 1 else "checks"
    return f"Every hop on the request path answered as configured ({passed} {plural} passed)."


def _scoped_no_failure(outcomes: Sequence[CheckOutcome], scopes: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[str(outcome.status)] = counts.get(str(outcome.status), 0) + 1
    shown = ", ".join(f"{n} {status}" for status, n in counts.items())
    sentence = f"Nothing failed within the scope {', '.join(scopes)} ({shown})."
    reasons = unfinished_reasons(outcomes)
    if reasons:
        sentence += " Not checked: " + _reason_list(reasons) + "."
    return sentence


def scope_sentence(outcomes: Iterable[CheckOutcome], scopes: Sequence[str]) -> str:
    """What a scoped run did not look at."""
    seen = {o.layer for o in outcomes}
    missing = [_title(layer) for layer in HOP_LAYERS if layer not in seen]
    if not missing:
        return f"Scope: {', '.join(scopes)}."
    return (
        f"Scope: {', '.join(scopes)}; not looked at: {', '.join(missing)} — this run does not "
        "show the rest of the path is healthy."
    )


def _reason_list(reasons: list[tuple[str, list[str]]], limit: int = 3) -> str:
    parts = []
    for reason, ids in reasons[:limit]:
        more = f" +{len(ids) - 2} more" if len(ids) > 2 else ""
        parts.append(f"{reason} ({', '.join(ids[:2])}{more})")
    if len(reasons) > limit:
        parts.append(f"and {len(reasons) - limit} other reason(s)")
    return "; ".join(parts)


def recent_full_run_note(runs: Iterable[Any], *, channel: str, now: datetime) -> str | None:
    """What a full run in ``channel`` found in the last two hours, for a scoped verdict.

    ``runs`` are recorded runs (newest first) with ``channel``, ``scopes``, ``started_at``,
    ``first_failure_id`` and ``first_failure_layer``.
    """
    for run in runs:
        if run.channel != channel or run.scopes:
            continue
        started = run.started_at
        if started.tzinfo is None or (now - started).total_seconds() > 2 * 3600:
            return None
        if not run.first_failure_id:
            return None
        return (
            f"A full run here at {started:%H:%M} UTC found {_title(run.first_failure_layer)} "
            f"failing ({run.first_failure_id})."
        )
    return None
