"""Edge hop: each configured load balancer exists, is active, and listens on the expected ports."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from bot.diagnosis.aws_cache import gather_bounded
from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check


@check(
    id="edge.load-balancer",
    layer="edge",
    description="The load balancer exists, is active and has listeners on the expected ports.",
    reads=[
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeListeners",
    ],
    timeout=10,
    per="load_balancer",
)
async def load_balancer(ctx: CheckContext) -> CheckResult:
    name = ctx.subject
    try:
        found = await ctx.aws("elbv2", "describe_load_balancers", Names=[name])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "LoadBalancerNotFound":
            raise
        return CheckResult.failed(
            f"load balancer {name} does not exist in {ctx.env.region}",
            Classification.INFRASTRUCTURE,
            hint="was it deleted or renamed in the migration? compare hokusai.yml load_balancers",
            load_balancer=name,
            region=ctx.env.region,
        )
    lb = found["LoadBalancers"][0]
    arn = lb["LoadBalancerArn"]
    state = lb.get("State", {}).get("Code", "unknown")
    listeners = (await ctx.aws("elbv2", "describe_listeners", LoadBalancerArn=arn))["Listeners"]
    by_port = {int(listener["Port"]): listener for listener in listeners}
    evidence = {
        "load_balancer": name,
        "arn": arn,
        "dns_name": lb.get("DNSName"),
        "scheme": lb.get("Scheme"),
        "type": lb.get("Type"),
        "state": state,
        "listeners": [
            {"port": port, "protocol": listener.get("Protocol")}
            for port, listener in sorted(by_port.items())
        ],
    }
    data = {
        "load_balancer_name": name,
        "load_balancer_arn": arn,
        "dns_name": lb.get("DNSName"),
        "listeners": {port: listener["ListenerArn"] for port, listener in by_port.items()},
    }
    if state != "active":
        result = CheckResult.failed(
            f"load balancer {name} is {state}, not active",
            Classification.INFRASTRUCTURE,
            hint=lb.get("State", {}).get("Reason") or "see the load balancer's state reason",
            **evidence,
        )
        result.data.update(data)
        return result
    missing = [p for p in ctx.env.listener_ports if p not in by_port]
    if missing:
        ports = ", ".join(str(p) for p in missing)
        result = CheckResult.failed(
            f"load balancer {name} has no listener on port {ports} "
            f"(listens on {', '.join(str(p) for p in sorted(by_port)) or 'nothing'})",
            Classification.CONFIGURATION,
            hint="restore the listener in the infrastructure code",
            missing_ports=missing,
            **evidence,
        )
        result.data.update(data)
        return result
    result = CheckResult.passed(
        f"{name} is active ({lb.get('Scheme')}), listening on "
        + ", ".join(f"{p}/{by_port[p].get('Protocol')}" for p in sorted(by_port)),
        **evidence,
    )
    result.data.update(data)
    return result


async def configured_load_balancers(ctx: CheckContext) -> list[dict[str, Any]]:
    """The configured load balancers that exist (``describe_load_balancers`` entries).

    A missing one is left out: ``edge.load-balancer`` is the check that reports it.
    """

    async def one(name: str) -> list[dict[str, Any]]:
        try:
            resp = await ctx.aws("elbv2", "describe_load_balancers", Names=[name])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "LoadBalancerNotFound":
                return []
            raise
        return list(resp.get("LoadBalancers", []))

    answers = await gather_bounded(one(name) for name in ctx.env.load_balancers)
    return [lb for found in answers for lb in found]
