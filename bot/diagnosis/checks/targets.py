"""Targets hop: the target group a route lands on has healthy targets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, Status, check
from bot.diagnosis.checks.routing import target_group_name


@dataclass(frozen=True)
class TargetHealth:
    """One registered target and what the load balancer thinks of it."""

    id: str
    port: int | None
    state: str
    reason: str | None = None
    description: str | None = None

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> TargetHealth:
        health = raw.get("TargetHealth", {})
        return cls(
            id=raw["Target"]["Id"],
            port=raw["Target"].get("Port"),
            state=health.get("State", "unknown"),
            reason=health.get("Reason"),
            description=health.get("Description"),
        )

    def to_evidence(self) -> dict[str, Any]:
        return {
            "target": f"{self.id}:{self.port}" if self.port else self.id,
            "state": self.state,
            "reason": self.reason,
            "description": self.description,
        }


def summarise_health(targets: list[TargetHealth]) -> tuple[Status, str]:
    """pass when all are healthy, warn when some are, fail when none (or none registered)."""
    if not targets:
        return Status.FAIL, "no registered targets"
    healthy = [t for t in targets if t.state == "healthy"]
    others = [t for t in targets if t.state != "healthy"]
    reasons = Counter(f"{t.state} {t.reason}" if t.reason else t.state for t in others)
    detail = ", ".join(f"{n} {what}" for what, n in reasons.most_common())
    if not others:
        return Status.PASS, f"{len(healthy)} of {len(targets)} targets healthy"
    status = Status.WARN if healthy else Status.FAIL
    return status, f"{len(healthy)} of {len(targets)} targets healthy ({detail})"


@check(
    id="targets.health",
    layer="targets",
    description="The target group behind the route has healthy targets; reason codes if not.",
    reads=["elasticloadbalancing:DescribeTargetHealth"],
    timeout=10,
    needs=["routing.listener-rules"],
    per="route",
)
async def health(ctx: CheckContext) -> CheckResult:
    route = ctx.route
    routing = ctx.upstream("routing.listener-rules", route.name)
    if routing is None:
        return CheckResult.skipped(f"{route.path}: the routing check did not run")
    arns = routing.result.data.get("target_group_arns") or []
    which = "where the route lands"
    if not arns:
        # The route lands on no target group: look at the one it should reach.
        arns = routing.result.data.get("expected_target_group_arns") or []
        which = f"{route.service}'s (the route reaches no target group)"
    if not arns:
        return CheckResult.skipped(
            f"{route.path}: no target group to look at ({routing.result.summary})"
        )
    worst: tuple[Status, str, str] | None = None
    groups = []
    for arn in arns:
        found = await ctx.aws("elbv2", "describe_target_health", TargetGroupArn=arn)
        targets = [TargetHealth.from_api(t) for t in found.get("TargetHealthDescriptions", [])]
        status, text = summarise_health(targets)
        name = target_group_name(arn)
        groups.append(
            {"target_group": name, "arn": arn, "targets": [t.to_evidence() for t in targets]}
        )
        rank = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}
        if worst is None or rank[status] > rank[worst[0]]:
            worst = (status, name, text)
    status, name, text = worst
    evidence = {"route": route.name, "checked": which, "target_groups": groups}
    summary = f"{name}: {text}"
    if status is Status.FAIL:
        return CheckResult.failed(
            summary,
            Classification.INFRASTRUCTURE,
            hint=(
                f"see {route.service}'s ECS tasks (stopped reasons) and its health check path"
                if "no registered" not in text
                else f"no tasks of {route.service} are registered: see its ECS service"
            ),
            **evidence,
        )
    if status is Status.WARN:
        return CheckResult.warned(summary, hint="some targets fail health checks", **evidence)
    return CheckResult.passed(summary, **evidence)
