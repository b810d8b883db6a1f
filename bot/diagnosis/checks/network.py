"""Network check: security groups (and subnet network ACLs) let each hop reach the next.

The paths checked, from the platform's own facts rather than the sandbox's names: each load
balancer that forwards to a service (through the service's target groups) -> the service's
port; every non-MLflow service -> MLflow's port; MLflow -> the RDS endpoint's port.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check
from bot.diagnosis.checks.edge import configured_load_balancers


@dataclass(frozen=True)
class NetworkPath:
    """One hop that must be open: ``source`` groups -> ``dest`` groups on tcp ``port``."""

    source: str
    source_groups: tuple[str, ...]
    dest: str
    dest_groups: tuple[str, ...]
    port: int
    dest_subnets: tuple[str, ...] = ()


def _port_covered(permission: dict[str, Any], port: int) -> bool:
    proto = str(permission.get("IpProtocol"))
    if proto == "-1":
        return True
    if proto not in ("tcp", "6"):
        return False
    return int(permission.get("FromPort", -1)) <= port <= int(permission.get("ToPort", -1))


def _cidr_covers(cidr: str, networks: list[ipaddress.IPv4Network]) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return any(n.subnet_of(net) for n in networks if n.version == net.version)


def _admits(
    permissions: list[dict[str, Any]],
    peer_groups: tuple[str, ...],
    port: int,
    vpc_cidrs: list[ipaddress.IPv4Network],
) -> bool:
    """Whether any rule admits traffic between ``peer_groups`` and this group on ``port``."""
    for permission in permissions:
        if not _port_covered(permission, port):
            continue
        if any(p.get("GroupId") in peer_groups for p in permission.get("UserIdGroupPairs", [])):
            return True
        if any(
            _cidr_covers(r.get("CidrIp", ""), vpc_cidrs) for r in permission.get("IpRanges", [])
        ):
            return True
    return False


def _nacl_verdict(acl: dict[str, Any], port: int, vpc_cidrs: list[ipaddress.IPv4Network]) -> dict:
    """The first inbound NACL entry (by rule number) matching traffic from the VPC on ``port``."""
    entries = sorted(
        (e for e in acl.get("Entries", []) if not e.get("Egress")), key=lambda e: e["RuleNumber"]
    )
    for entry in entries:
        proto = str(entry.get("Protocol"))
        if proto not in ("-1", "6"):
            continue
        ports = entry.get("PortRange")
        if proto == "6" and ports and not (ports["From"] <= port <= ports["To"]):
            continue
        cidr = entry.get("CidrBlock")
        if not cidr:
            continue
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if any(v.overlaps(net) for v in vpc_cidrs):
            return {"action": entry["RuleAction"], "rule": entry["RuleNumber"]}
    return {"action": "deny", "rule": "*"}


async def _load_balancer_groups(ctx: CheckContext) -> dict[str, list[str]]:
    """Load balancer ARN -> its security groups, for the configured load balancers found."""
    return {
        lb["LoadBalancerArn"]: list(lb.get("SecurityGroups", []))
        for lb in await configured_load_balancers(ctx)
    }


async def _paths(ctx: CheckContext) -> tuple[list[NetworkPath], list[str]]:
    """The hops to check, and notes on those that could not be worked out.

    Independent reads go together (load balancers with services; target groups with the
    database): the chain of AWS round trips is what a large account would otherwise lengthen.
    """
    notes: list[str] = []
    specs = ctx.env.ecs.services if ctx.env.ecs else []

    async def describe_services() -> dict[str, Any]:
        if not specs:
            return {}
        return await ctx.aws(
            "ecs",
            "describe_services",
            cluster=ctx.env.ecs.cluster,
            services=[s.name for s in specs],
        )

    lb_groups, resp = await asyncio.gather(_load_balancer_groups(ctx), describe_services())
    services: dict[str, dict[str, Any]] = {
        s["serviceName"]: s for s in resp.get("services", []) if s.get("status") != "INACTIVE"
    }
    groups_of: dict[str, tuple[str, ...]] = {}
    subnets_of: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        svc = services.get(spec.name)
        if svc is None:
            notes.append(f"{spec.name} not found: its paths are not checked")
            continue
        vpc = (svc.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        groups_of[spec.name] = tuple(vpc.get("securityGroups", []))
        subnets_of[spec.name] = tuple(vpc.get("subnets", []))
    mlflow = next((s for s in specs if s.is_mlflow and groups_of.get(s.name)), None)

    async def load_balancers_of(spec: Any) -> set[str]:
        svc = services.get(spec.name) or {}
        tg_arns = [
            lb["targetGroupArn"] for lb in svc.get("loadBalancers", []) if "targetGroupArn" in lb
        ]
        if not tg_arns or not groups_of.get(spec.name):
            return set()
        tgs = await ctx.aws("elbv2", "describe_target_groups", TargetGroupArns=tg_arns)
        return {arn for tg in tgs.get("TargetGroups", []) for arn in tg.get("LoadBalancerArns", [])}

    async def database() -> dict[str, Any] | None:
        if not (mlflow and ctx.env.database):
            return None
        try:
            db = await ctx.aws(
                "rds", "describe_db_instances", DBInstanceIdentifier=ctx.env.database.rds_instance
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "DBInstanceNotFound":
                raise
            notes.append(f"RDS {ctx.env.database.rds_instance} not found (see data.rds)")
            return None
        return db["DBInstances"][0]

    *lbs_of, instance = await asyncio.gather(*(load_balancers_of(s) for s in specs), database())
    paths: list[NetworkPath] = []
    for spec, lbs in zip(specs, lbs_of, strict=True):
        for lb_arn in sorted(lbs):
            if lb_arn not in lb_groups:
                continue
            lb_name = lb_arn.split("/")[-2] if lb_arn.count("/") >= 2 else lb_arn
            paths.append(
                NetworkPath(
                    f"load balancer {lb_name}",
                    tuple(lb_groups[lb_arn]),
                    spec.name,
                    groups_of[spec.name],
                    spec.port,
                    subnets_of[spec.name],
                )
            )
    if mlflow:
        for spec in specs:
            if spec is not mlflow and groups_of.get(spec.name):
                paths.append(
                    NetworkPath(
                        spec.name,
                        groups_of[spec.name],
                        mlflow.name,
                        groups_of[mlflow.name],
                        mlflow.port,
                        subnets_of[mlflow.name],
                    )
                )
        if ctx.env.database and instance is not None:
            db_groups = tuple(
                g["VpcSecurityGroupId"] for g in instance.get("VpcSecurityGroups", [])
            )
            db_port = int(
                ctx.env.database.port or (instance.get("Endpoint") or {}).get("Port") or 5432
            )
            subnets = tuple(
                s["SubnetIdentifier"]
                for s in (instance.get("DBSubnetGroup") or {}).get("Subnets", [])
            )
            paths.append(
                NetworkPath(
                    mlflow.name,
                    groups_of[mlflow.name],
                    f"RDS {ctx.env.database.rds_instance}",
                    db_groups,
                    db_port,
                    subnets,
                )
            )
    return paths, notes


@check(
    id="network.security-groups",
    layer="network",
    timeout=15,
    reads=[
        "elbv2:DescribeLoadBalancers",
        "elbv2:DescribeTargetGroups",
        "ecs:DescribeServices",
        "rds:DescribeDBInstances",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
        "ec2:DescribeNetworkAcls",
    ],
    description="Security groups let the load balancer reach each service port, the API reach "
    "MLflow and MLflow reach the database; subnet network ACLs as a warning.",
)
async def security_groups(ctx: CheckContext) -> CheckResult:
    if ctx.env.ecs is None:
        return CheckResult.skipped("no ECS settings for this environment")
    paths, notes = await _paths(ctx)
    if not paths:
        return CheckResult.skipped("no network paths could be worked out", notes=notes)
    ids = sorted({g for p in paths for g in (*p.source_groups, *p.dest_groups)})

    async def groups_and_vpcs() -> tuple[dict[str, Any], list[ipaddress.IPv4Network]]:
        answer = await ctx.aws("ec2", "describe_security_groups", GroupIds=ids)
        groups = {g["GroupId"]: g for g in answer.get("SecurityGroups", [])}
        vpc_ids = sorted({g["VpcId"] for g in groups.values() if g.get("VpcId")})
        cidrs: list[ipaddress.IPv4Network] = []
        if vpc_ids:
            for vpc in (await ctx.aws("ec2", "describe_vpcs", VpcIds=vpc_ids)).get("Vpcs", []):
                for assoc in vpc.get("CidrBlockAssociationSet", []) or [
                    {"CidrBlock": vpc["CidrBlock"]}
                ]:
                    cidrs.append(ipaddress.ip_network(assoc["CidrBlock"], strict=False))
        return groups, cidrs

    (groups, vpc_cidrs), acls = await asyncio.gather(groups_and_vpcs(), _network_acls(ctx, paths))
    results, blocked = [], []
    for path in paths:
        inbound = any(
            _admits(
                groups.get(g, {}).get("IpPermissions", []), path.source_groups, path.port, vpc_cidrs
            )
            for g in path.dest_groups
        )
        outbound = any(
            _admits(
                groups.get(g, {}).get("IpPermissionsEgress", []),
                path.dest_groups,
                path.port,
                vpc_cidrs,
            )
            for g in path.source_groups
        )
        row = {
            "from": path.source,
            "from_groups": list(path.source_groups),
            "to": path.dest,
            "to_groups": list(path.dest_groups),
            "port": path.port,
            "inbound_allowed": inbound,
            "outbound_allowed": outbound,
        }
        results.append(row)
        if not (inbound and outbound):
            blocked.append(row)
    acl_warnings = _nacl_warnings(acls, paths, vpc_cidrs)
    evidence = {"paths": results, "network_acls": acl_warnings, "notes": notes}
    if blocked:
        first = blocked[0]
        if not first["inbound_allowed"]:
            why = (
                f"{', '.join(first['to_groups'])} ({first['to']}) does not admit "
                f"{', '.join(first['from_groups'])} ({first['from']}) on tcp/{first['port']}"
            )
        else:
            why = (
                f"{', '.join(first['from_groups'])} ({first['from']}) has no egress to "
                f"{', '.join(first['to_groups'])} ({first['to']}) on tcp/{first['port']}"
            )
        more = f" (+{len(blocked) - 1} more blocked)" if len(blocked) > 1 else ""
        if not first["inbound_allowed"]:
            hint = f"add an ingress rule for tcp/{first['port']} from the source security group"
        else:
            hint = f"add an egress rule for tcp/{first['port']} to the destination security group"
        return CheckResult.failed(
            f"{first['from']} cannot reach {first['to']}: {why}{more}",
            Classification.INFRASTRUCTURE,
            hint=hint,
            fix=_rule_fix(first, ctx.env.region),
            **evidence,
        )
    if acl_warnings:
        return CheckResult.warned(
            f"security groups allow all {len(results)} paths, but {acl_warnings[0]['message']}",
            hint="check the subnet's network ACL entries",
            **evidence,
        )
    hops = ", ".join(f"{r['from']} -> {r['to']}:{r['port']}" for r in results)
    return CheckResult.passed(
        f"security groups allow all {len(results)} paths ({hops})",
        **evidence,
    )


def _rule_fix(path: dict[str, Any], region: str) -> str:
    """The AWS CLI command that opens ``path`` (for a person to review and run, never run):
    an ingress rule on the destination's first group from the source's first group, or the
    egress rule the source lacks."""
    port, source, dest = path["port"], path["from_groups"][0], path["to_groups"][0]
    if not path["inbound_allowed"]:
        verb, group, peer = "ingress", dest, source
    else:
        verb, group, peer = "egress", source, dest
    return (
        f"aws ec2 authorize-security-group-{verb} --region {region} --group-id {group} "
        f"--ip-permissions 'IpProtocol=tcp,FromPort={port},ToPort={port},"
        f"UserIdGroupPairs=[{{GroupId={peer}}}]'"
    )


async def _network_acls(ctx: CheckContext, paths: list[NetworkPath]) -> list[dict[str, Any]]:
    """The network ACLs of the subnets the paths lead into (read while the groups are)."""
    subnets = sorted({s for p in paths for s in p.dest_subnets})
    if not subnets:
        return []
    answer = await ctx.aws(
        "ec2",
        "describe_network_acls",
        Filters=[{"Name": "association.subnet-id", "Values": subnets}],
    )
    return list(answer.get("NetworkAcls", []))


def _nacl_warnings(
    acls: list[dict[str, Any]], paths: list[NetworkPath], vpc_cidrs: list[ipaddress.IPv4Network]
) -> list[dict[str, Any]]:
    if not acls or not vpc_cidrs:
        return []
    by_subnet = {
        a["SubnetId"]: acl for acl in acls for a in acl.get("Associations", []) if "SubnetId" in a
    }
    out = []
    for path in paths:
        for subnet in path.dest_subnets:
            acl = by_subnet.get(subnet)
            if acl is None:
                continue
            verdict = _nacl_verdict(acl, path.port, vpc_cidrs)
            if verdict["action"] != "allow":
                out.append(
                    {
                        "network_acl": acl["NetworkAclId"],
                        "subnet": subnet,
                        "port": path.port,
                        "rule": verdict["rule"],
                        "message": f"network ACL {acl['NetworkAclId']} on {subnet} denies "
                        f"tcp/{path.port} to {path.dest} (rule {verdict['rule']})",
                    }
                )
    return out
