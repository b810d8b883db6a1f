"""Context checks: what changed recently — ECS deployments and listener-rule changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.diagnosis.checks.base import CheckContext, CheckResult, check
from bot.diagnosis.checks.compute import (
    container_argv,
    describe_service,
    describe_task_definition,
    flag_value,
    main_container,
)
from bot.redaction import default_redactor

RULE_EVENTS = ("CreateRule", "ModifyRule", "DeleteRule", "SetRulePriorities", "ModifyListener")
LOOKBACK_DAYS = 7
_MAX_EVENTS = 50
_MAX_PAGES = 3


def task_definition_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed between two containers: image, env var names, secrets, command.

    Values are never compared in the output, only names (a changed value is listed by name).
    """
    old_env = {e["name"]: e.get("value") for e in old.get("environment", [])}
    new_env = {e["name"]: e.get("value") for e in new.get("environment", [])}
    old_sec = {s["name"]: s.get("valueFrom") for s in old.get("secrets", [])}
    new_sec = {s["name"]: s.get("valueFrom") for s in new.get("secrets", [])}
    diff: dict[str, Any] = {}
    if old.get("image") != new.get("image"):
        diff["image"] = {"from": old.get("image"), "to": new.get("image")}
    for label, before, after in (("env", old_env, new_env), ("secrets", old_sec, new_sec)):
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        if added or removed or changed:
            diff[label] = {"added": added, "removed": removed, "changed": changed}
    old_cmd, new_cmd = container_argv(old), container_argv(new)
    if old_cmd != new_cmd:
        redact = default_redactor().redact_text
        diff["command"] = {
            "flags_added": sorted({a for a in new_cmd if a.startswith("--")} - set(old_cmd)),
            "flags_removed": sorted({a for a in old_cmd if a.startswith("--")} - set(new_cmd)),
            "flags_changed": sorted(
                a
                for a in {a for a in new_cmd if a.startswith("--")} & set(old_cmd)
                if flag_value(old_cmd, a) != flag_value(new_cmd, a)
            ),
            "to": redact(" ".join(new_cmd))[:500],
        }
    return diff


def describe_diff(diff: dict[str, Any]) -> str:
    """One line: ``image v3.1.0 -> v3.3.2; env +MLFLOW_X ~GUNICORN_CMD_ARGS; command changed``."""
    parts = []
    if "image" in diff:
        old = str(diff["image"]["from"]).rsplit(":", 1)[-1]
        new = str(diff["image"]["to"]).rsplit(":", 1)[-1]
        parts.append(f"image {old} -> {new}")
    for label in ("env", "secrets"):
        if label in diff:
            d = diff[label]
            names = [f"+{n}" for n in d["added"]] + [f"-{n}" for n in d["removed"]]
            names += [f"~{n}" for n in d["changed"]]
            parts.append(f"{label} {' '.join(names)}")
    if "command" in diff:
        cmd = diff["command"]
        flags = [f"+{f}" for f in cmd["flags_added"]] + [f"-{f}" for f in cmd["flags_removed"]]
        flags += [f"~{f}" for f in cmd["flags_changed"]]
        parts.append("command changed" + (f" ({', '.join(flags)})" if flags else ""))
    return "; ".join(parts) or "no differences in the main container"


def _previous_revision(arn: str) -> str | None:
    family_rev = arn.rsplit("/", 1)[-1]
    family, _, rev = family_rev.rpartition(":")
    if not rev.isdigit() or int(rev) <= 1:
        return None
    return f"{family}:{int(rev) - 1}"


@check(
    id="changes.deployments",
    layer="changes",
    per="service",
    timeout=10,
    reads=["ecs:DescribeServices", "ecs:DescribeTaskDefinition"],
    description="Recent ECS deployments and what changed between the last two task-definition "
    "revisions (image, env var names, command).",
)
async def deployments(ctx: CheckContext) -> CheckResult:
    spec = ctx.service
    if ctx.env.ecs is None or spec is None:
        return CheckResult.skipped("no ECS settings for this environment")
    service = await describe_service(ctx, spec.name)
    if service is None:
        return CheckResult.skipped(f"{spec.name} does not exist (see compute.ecs-service)")
    rows = [
        {
            "status": d.get("status"),
            "rollout_state": d.get("rolloutState"),
            "task_definition": str(d.get("taskDefinition", "")).rsplit("/", 1)[-1],
            "created_at": d["createdAt"].isoformat() if d.get("createdAt") else None,
        }
        for d in service.get("deployments", [])
    ]
    current = await describe_task_definition(ctx, service["taskDefinition"])
    revision = f"{current['family']}:{current['revision']}"
    previous_name = _previous_revision(current["taskDefinitionArn"])
    evidence: dict[str, Any] = {"deployments": rows, "revision": revision}
    if previous_name is None:
        return CheckResult.passed(f"{revision} is the first revision", **evidence)
    try:
        previous = await describe_task_definition(ctx, previous_name)
    except ClientError:
        return CheckResult.passed(f"{revision} is deployed; {previous_name} is gone", **evidence)
    diff = task_definition_diff(main_container(previous, spec), main_container(current, spec))
    evidence.update(previous_revision=previous_name, diff=diff)
    newest = max((r["created_at"] for r in rows if r["created_at"]), default=None)
    when = f", deployed {newest[:16].replace('T', ' ')} UTC" if newest else ""
    return CheckResult.passed(
        f"{revision}{when}; since {previous_name.rsplit(':', 1)[-1]}: {describe_diff(diff)}",
        **evidence,
    )


def _skip_reason(exc: BaseException) -> str | None:
    """Why CloudTrail cannot be read here, or None when the error is something else."""
    if isinstance(exc, NotImplementedError):
        return "the AWS endpoint does not implement LookupEvents"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return "access denied (grant cloudtrail:LookupEvents)"
        if (status and status >= 500) or code in ("InternalFailure", "NotImplemented", "500"):
            return f"LookupEvents answered {status or code}"
    if isinstance(exc, PermissionError):  # the AwsCaller's AwsAccessDenied
        return str(exc)
    if isinstance(exc, BotoCoreError):
        return f"LookupEvents failed: {exc}"
    return None


@check(
    id="changes.listener-rules",
    layer="changes",
    timeout=8,
    reads=["cloudtrail:LookupEvents"],
    description="Load-balancer rule and listener changes in the last 7 days, from CloudTrail "
    "where it is readable.",
)
async def listener_rule_changes(ctx: CheckContext) -> CheckResult:
    start = datetime.now(UTC) - timedelta(days=LOOKBACK_DAYS)
    events: list[dict[str, Any]] = []
    token = None
    # One source filter, names matched here: LookupEvents allows about 2 calls a second.
    for _ in range(_MAX_PAGES):
        params: dict[str, Any] = {
            "LookupAttributes": [
                {
                    "AttributeKey": "EventSource",
                    "AttributeValue": "elasticloadbalancing.amazonaws.com",
                }
            ],
            "StartTime": start,
            "MaxResults": _MAX_EVENTS,
        }
        if token:
            params["NextToken"] = token
        try:
            resp = await ctx.aws("cloudtrail", "lookup_events", **params)
        except Exception as exc:
            reason = _skip_reason(exc)
            if reason is None:
                raise
            return CheckResult.skipped(f"CloudTrail is not readable here: {reason}")
        for event in resp.get("Events", []):
            if event.get("EventName") not in RULE_EVENTS:
                continue
            events.append(
                {
                    "event": event.get("EventName"),
                    "at": event["EventTime"].isoformat() if event.get("EventTime") else None,
                    "user": event.get("Username"),
                    "resources": [r.get("ResourceName") for r in event.get("Resources", [])],
                }
            )
        token = resp.get("NextToken")
        if not token:
            break
    events.sort(key=lambda e: e["at"] or "", reverse=True)
    if not events:
        return CheckResult.passed(
            f"no listener or rule changes in the last {LOOKBACK_DAYS} days", events=[]
        )
    newest = events[0]
    return CheckResult.warned(
        f"{len(events)} listener/rule change(s) in the last {LOOKBACK_DAYS} days, newest: "
        f"{newest['event']} by {newest['user'] or 'unknown'} at {(newest['at'] or '?')[:16]}",
        hint="compare the newest rule change with when the failures started",
        events=events[:_MAX_EVENTS],
    )
