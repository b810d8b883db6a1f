"""Does "Done" mean fixed? Re-run a Done ticket's checks and say so where it matters.

``/hokusai ticket verify`` verifies every linked ticket; the scheduler verifies a ticket it
sees turn Done; ``incident resolve`` re-runs the checks still failing. A ticket closed while
its checks still fail is called out in the incident channel, commented on in the tracker and
put on the timeline.

Example::

    result = await verify_ticket(services, incident, provider, link, actor="U1")
    if result.recheck and result.recheck.verdict == "failing": ...
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.diagnosis.render import plain_text
from bot.incident.store import FAILING_STATUSES, Incident, TicketLink
from bot.tickets import TicketProvider, TrackerError, provider_from_settings

if TYPE_CHECKING:
    from bot.slack.services import Services

MAX_EVIDENCE_CHARS = 1500
MANUAL = "`/hokusai ticket verify`"
POLLED = "when the tracker marked it Done"


@dataclass(frozen=True)
class Recheck:
    """What re-running some checks showed."""

    failing: list[dict[str, Any]]
    """The checks (as the report's JSON) that still fail."""
    unchecked: list[str]
    """Checks that did not run (skipped or absent): they prove nothing either way."""

    @property
    def verdict(self) -> str:
        """``failing``, ``unchecked`` or ``confirmed`` (every check ran and passed)."""
        if self.failing:
            return "failing"
        return "unchecked" if self.unchecked else "confirmed"


@dataclass(frozen=True)
class Verification:
    """What verifying one ticket found: its tracker state, and the re-check if it is Done."""

    link: TicketLink
    done: bool | None
    recheck: Recheck | None = None
    error: str | None = None
    comment_error: str | None = None
    """Why the tracker refused the comment on a Done ticket whose failure persists."""

    @property
    def still_failing(self) -> list[dict[str, Any]]:
        return self.recheck.failing if self.recheck else []


def tracker(services: Services) -> TicketProvider | None:
    """The configured tracker; tests and the sandbox may hand one in as ``overrides``."""
    given = services.overrides.get("tracker")
    return (
        given if given is not None else provider_from_settings(services.settings, services.config)
    )


async def rerun_checks(
    services: Services, check_ids: list[str], env: str | None = None, *, user_id: str | None = None
) -> Any:
    """Run exactly these check instances in ``env`` (``services.overrides["rerun"]`` replaces
    it), the environment the incident was diagnosed in, not whatever is the default.

    A person's request obeys ``access.environments``; the scheduler's (``user_id`` None) re-runs
    what someone with access already linked.

    Raises:
        AccessRefused: ``user_id`` may not use that environment.
    """
    environment = services.environment(env)
    if user_id is not None:
        await services.access.require_environment(environment.name, user_id)
    override = services.overrides.get("rerun")
    if override is not None:
        return await override(check_ids)
    return await services.run_checks(services.runner(environment), check_ids)


def classify(report: Any, wanted: list[str]) -> Recheck:
    """Sort the ``wanted`` checks of a report into still failing and not run."""
    data = report.to_json() if hasattr(report, "to_json") else report
    checks = [c for c in data.get("checks") or [] if c.get("id") in set(wanted)]
    failing = [c for c in checks if c.get("status") in FAILING_STATUSES]
    ran = {c.get("id") for c in checks if c.get("status") in ("pass", "warn")}
    ran |= {c.get("id") for c in failing}
    return Recheck(failing=failing, unchecked=sorted(set(wanted) - ran))


async def recheck(
    services: Services,
    incident: Incident,
    check_ids: list[str],
    *,
    actor: str | None,
    channel: str | None = None,
) -> Recheck:
    """Re-run ``check_ids`` where the incident was diagnosed and record the run in its log."""
    store = services.store()
    latest = await asyncio.to_thread(store.latest_run, incident.id)
    report = await rerun_checks(
        services, list(check_ids), latest.env if latest else None, user_id=actor
    )
    data = report.to_json() if hasattr(report, "to_json") else report
    await asyncio.to_thread(
        lambda: store.record_run(
            data,
            incident_id=incident.id,
            channel=channel or incident.channel_id,
            requested_by=actor,
            now=services.clock(),
        )
    )
    return classify(data, list(check_ids))


async def verify_ticket(
    services: Services,
    incident: Incident,
    provider: TicketProvider,
    link: TicketLink,
    *,
    actor: str | None,
    channel: str | None = None,
) -> Verification:
    """Ask the tracker about one linked ticket; if it is Done, re-check its checks."""
    if link.provider != provider.name:
        return Verification(link, None, error=f"linked in {link.provider}, not checked")
    try:
        ticket = await provider.get(link.key)
    except TrackerError as exc:
        return Verification(link, None, error=str(exc))
    await asyncio.to_thread(
        services.store().update_ticket_state,
        incident.id,
        link.provider,
        link.key,
        status=ticket.status,
        done=ticket.done,
    )
    if not ticket.done:
        return Verification(link, False)
    return await verify_done(services, incident, provider, link, actor=actor, channel=channel)


async def verify_done(
    services: Services,
    incident: Incident,
    provider: TicketProvider,
    link: TicketLink,
    *,
    actor: str | None,
    channel: str | None = None,
    trigger: str = MANUAL,
) -> Verification:
    """Re-check a Done ticket's checks, record the verdict and speak up if they still fail.

    ``trigger`` says in the call-out what made Hokusai look (a command, the tracker poll).
    """
    if not link.check_ids:
        return Verification(link, True)
    result = await recheck(services, incident, list(link.check_ids), actor=actor, channel=channel)
    comment_error = await record_verdict(
        services, incident, provider, link, result, actor=actor, trigger=trigger
    )
    error = None
    if result.verdict == "unchecked":
        error = f"{link.key} is Done, but {', '.join(result.unchecked)} could not be re-checked"
    return Verification(link, True, recheck=result, error=error, comment_error=comment_error)


async def record_verdict(
    services: Services,
    incident: Incident,
    provider: TicketProvider,
    link: TicketLink,
    result: Recheck,
    *,
    actor: str | None,
    trigger: str = MANUAL,
) -> str | None:
    """Store the verdict on the ticket and the timeline; a failing one goes to the channel
    and, as a comment, to the ticket. Returns why the comment failed, if it did."""
    store = services.store()
    now = services.clock()
    comment_error = None
    await asyncio.to_thread(
        lambda: store.set_ticket_verified(
            incident.id, link.provider, link.key, result.verdict, now=now
        )
    )
    if result.verdict == "confirmed":
        entry = f"{link.key} is Done and its checks pass: confirmed"
    elif result.verdict == "unchecked":
        entry = f"{link.key} is Done, but {', '.join(result.unchecked)} could not be re-checked"
    else:
        entry = f"{link.key} is Done but the failure persists: " + ", ".join(
            f"{c['id']} {c['status']}" for c in result.failing
        )
        comment_error = await _call_out(services, incident, provider, link, result, trigger)
        if comment_error:
            entry += f" (could not comment on it: {comment_error})"
    await asyncio.to_thread(
        lambda: store.add_timeline(incident.id, "verify", entry, actor=actor, ref=link.key, now=now)
    )
    return comment_error


async def _call_out(
    services: Services,
    incident: Incident,
    provider: TicketProvider,
    link: TicketLink,
    result: Recheck,
    trigger: str,
) -> str | None:
    """Post the persisting failure in the channel and on the ticket; why the comment could
    not be made, if it could not (the poller also says so in the channel: nobody asked)."""
    text = persists_text(link, result.failing, trigger=trigger)
    await services.outbound.post(incident.channel_id, text)
    try:
        await provider.comment(link.key, plain_text(text))
    except TrackerError as exc:
        if trigger == POLLED:
            await services.outbound.post(
                incident.channel_id,
                f":warning: I could not say so on {link.key}: {exc}. Reopen it by hand.",
            )
        return str(exc)
    return None


def persists_text(link: TicketLink, failing: list[dict[str, Any]], *, trigger: str = MANUAL) -> str:
    """The message (and tracker comment) for a Done ticket whose failure persists."""
    lines = [f":x: *Ticket {link.key} is Done but the failure persists.*"]
    for c in failing:
        lines.append(f"{c['status'].upper()} {c['id']}: {c.get('summary') or ''}")
        if c.get("evidence"):
            evidence = json.dumps(c["evidence"], sort_keys=True, default=str)
            lines.append(f"Evidence: {evidence[:MAX_EVIDENCE_CHARS]}")
    lines.append(f"Re-checked by Hokusai ({trigger}).")
    return "\n".join(lines)
