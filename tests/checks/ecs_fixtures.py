"""Moto platforms for the compute, network, logs and changes check tests.

``build_world(scenario)`` builds the whole seed topology in a fresh ``mock_aws`` and returns a
``World``: the environment, the sandbox's ECS half, and an ``AwsCaller`` on a read-only
session — what the runner gives real checks. The network half comes from
``bot.sandbox.platform.build_platform`` when it exists, else from the small stand-in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from bot.aws import AwsCaller, read_only_session
from bot.checks.base import REGISTRY, CheckContext, CheckResult
from bot.config import Environment, load_config
from bot.runner import DiagnoseReport, Runner
from bot.sandbox.platform_ecs import EcsPlatform, build_ecs

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


@dataclass
class World:
    env: Environment
    session: boto3.Session  # the writable one that built the platform
    ecs: EcsPlatform
    aws: AwsCaller
    platform: Any = None


def seed_environment() -> Environment:
    return load_config(REPO / "hokusai.yml").environment("development")


def _stand_in_network(session: boto3.Session, env: Environment) -> dict[str, Any]:
    """VPC, security groups, ALB with path rules, target groups and RDS, as aws1's build does."""
    ec2 = session.client("ec2")
    elbv2 = session.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")[
            "Subnet"
        ]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    groups = {
        role: ec2.create_security_group(
            GroupName=f"hokusai-{role}-development", Description=role, VpcId=vpc
        )["GroupId"]
        for role in ("alb", "api", "mlflow", "db")
    }
    ec2.authorize_security_group_ingress(
        GroupId=groups["alb"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    target_groups = {}
    for service in env.ecs.services:
        target_groups[service.name] = elbv2.create_target_group(
            Name=service.name,
            Protocol="HTTP",
            Port=service.port,
            VpcId=vpc,
            TargetType="ip",
            HealthCheckPath="/health",
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.register_targets(
            TargetGroupArn=target_groups[service.name],
            Targets=[{"Id": "10.0.1.40", "Port": service.port}],
        )
    lbs = []
    for name in env.load_balancers:
        lb = elbv2.create_load_balancer(
            Name=name, Subnets=subnets, SecurityGroups=[groups["alb"]], Scheme="internet-facing"
        )["LoadBalancers"][0]
        lbs.append(lb["LoadBalancerArn"])
    listener = elbv2.create_listener(
        LoadBalancerArn=lbs[0],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"},
            }
        ],
    )["Listeners"][0]["ListenerArn"]
    for priority, route in enumerate(env.routes, start=10):
        elbv2.create_rule(
            ListenerArn=listener,
            Priority=priority,
            Conditions=[{"Field": "path-pattern", "Values": [route.path]}],
            Actions=[{"Type": "forward", "TargetGroupArn": target_groups[route.service]}],
        )
    rds = session.client("rds")
    rds.create_db_subnet_group(
        DBSubnetGroupName="hokusai-development", DBSubnetGroupDescription="db", SubnetIds=subnets
    )
    rds.create_db_instance(
        DBInstanceIdentifier=env.database.rds_instance,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="mlflow",
        MasterUserPassword="x" * 12,
        DBSubnetGroupName="hokusai-development",
        VpcSecurityGroupIds=[groups["db"]],
        Port=5432,
    )
    return {
        "vpc_id": vpc,
        "subnet_ids": subnets,
        "security_groups": groups,
        "target_groups": target_groups,
        "load_balancers": lbs,
    }


def _aws1_platform_available() -> bool:
    return importlib.util.find_spec("bot.sandbox.platform") is not None


def build_world(scenario: str | None = None) -> World:
    """Build the platform inside the active ``mock_aws`` and return what tests need."""
    env = seed_environment()
    session = boto3.Session(region_name=REGION)
    if _aws1_platform_available():
        from bot.sandbox.platform import build_platform

        platform = build_platform(session, env, scenario=scenario)
        ecs = getattr(platform, "ecs", None)
        if not isinstance(ecs, EcsPlatform):
            ecs = build_ecs(session, env, platform, scenario)
    else:
        platform = _stand_in_network(session, env)
        ecs = build_ecs(session, env, platform, scenario)
    aws = AwsCaller(read_only_session(REGION))
    return World(env=env, session=session, ecs=ecs, aws=aws, platform=platform)


@contextlib.contextmanager
def world(scenario: str | None = None):
    """A fresh moto account with the platform built for ``scenario``."""
    with mock_aws():
        built = build_world(scenario)
        try:
            yield built
        finally:
            built.aws.close()


def run_check(w: World, check_id: str, subject: str | None = None) -> CheckResult:
    """Run one registered check the way the runner would, without its neighbours."""
    check = REGISTRY[check_id]
    ctx = CheckContext(w.env, subject=subject, aws_call=w.aws.call)
    return asyncio.run(check.run(ctx))


def diagnose(
    w: World, check_ids: list[str] | None = None, scopes: list[str] = ()
) -> DiagnoseReport:
    """A runner over ``check_ids`` (default: every registered check) against this world."""
    checks = dict(REGISTRY) if check_ids is None else {c: REGISTRY[c] for c in check_ids}
    runner = Runner(w.env, aws=w.aws, checks=checks, http=None)
    return asyncio.run(runner.run(list(scopes)))
