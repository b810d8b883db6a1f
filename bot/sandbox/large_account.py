"""Grow the sandbox account around the platform: what a large, shared AWS account holds.

Each function adds one kind of thing other teams own (or the platform's own history) to the
moto account that :func:`bot.sandbox.platform.build_platform` built, so tests and
``bench/scale.py`` can check that a diagnose costs the same whether the account holds ten
resources or ten thousand. Every function takes a writable session (never the diagnostics'
read-only one) and returns how many it added.

Example::

    platform = build_platform(session, env)
    add_cloud_map_services(session, platform, 200)
    add_log_lines(session, env, 30_000)
"""

from __future__ import annotations

import gzip
import io
import random
import time
from typing import Any

import boto3

from bot.config import Environment
from bot.diagnosis.alb_logs import format_line
from bot.sandbox import fakes

LISTENER_RULE_LIMIT = 100  # ALB's default quota of rules per listener (the default not counted)


def _platform_ecs(platform: Any) -> Any:
    if platform.ecs is None:
        raise ValueError("the platform was built without its ECS half (ecs=False)")
    return platform.ecs


def add_listener_rules(session: boto3.Session, platform: Any, upto: int) -> int:
    """Path rules for other teams on the registry's HTTPS listener until it holds ``upto``."""
    elbv2 = session.client("elbv2")
    listener = platform.registry_lb.listeners[443]
    existing = [
        rule
        for page in elbv2.get_paginator("describe_rules").paginate(ListenerArn=listener)
        for rule in page["Rules"]
    ]
    used = {int(r["Priority"]) for r in existing if not r.get("IsDefault")}
    have, added, priority = len(used), 0, 1000
    target_group = next(iter(platform.target_groups.values()))
    while have < upto:
        priority += 1
        if priority in used:
            continue
        elbv2.create_rule(
            ListenerArn=listener,
            Priority=priority,
            Conditions=[
                {"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/team-{priority}/*"]}}
            ],
            Actions=[{"Type": "forward", "TargetGroupArn": target_group}],
        )
        have, added = have + 1, added + 1
    return added


def add_load_balancers(session: boto3.Session, platform: Any, count: int, start: int = 0) -> int:
    """Other teams' load balancers, each with a listener."""
    elbv2 = session.client("elbv2")
    for n in range(start, start + count):
        arn = elbv2.create_load_balancer(
            Name=f"other-team-{n}",
            Subnets=platform.public_subnet_ids,
            SecurityGroups=[platform.security_groups["alb"]],
            Scheme="internet-facing",
            Type="application",
        )["LoadBalancers"][0]["LoadBalancerArn"]
        elbv2.create_listener(
            LoadBalancerArn=arn,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[
                {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}
            ],
        )
    return count


def add_services(
    session: boto3.Session, env: Environment, platform: Any, count: int, start: int = 0
) -> int:
    """Other teams' target groups, each with an ECS service in the platform's cluster."""
    elbv2, ecs = session.client("elbv2"), session.client("ecs")
    task_definition = ecs.register_task_definition(
        family="other-team",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": "busybox", "essential": True}],
    )["taskDefinition"]["taskDefinitionArn"]
    for n in range(start, start + count):
        target_group = elbv2.create_target_group(
            Name=f"other-team-{n}-tg",
            Protocol="HTTP",
            Port=8080,
            VpcId=platform.vpc_id,
            TargetType="ip",
        )["TargetGroups"][0]["TargetGroupArn"]
        ecs.create_service(
            cluster=env.ecs.cluster,
            serviceName=f"other-team-{n}",
            taskDefinition=task_definition,
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": platform.private_subnet_ids,
                    "securityGroups": [platform.security_groups["api"]],
                }
            },
            loadBalancers=[
                {"targetGroupArn": target_group, "containerName": "app", "containerPort": 8080}
            ],
        )
    return count


def add_cloud_map_services(
    session: boto3.Session, platform: Any, count: int, start: int = 0
) -> int:
    """Other services in the platform's Cloud Map namespace, one registered instance each."""
    sd = session.client("servicediscovery")
    namespace_id = _platform_ecs(platform).namespace_id
    for n in range(start, start + count):
        service_id = sd.create_service(
            Name=f"other-team-{n}",
            NamespaceId=namespace_id,
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
        )["Service"]["Id"]
        sd.register_instance(
            ServiceId=service_id,
            InstanceId=f"other-team-task-{n}",
            Attributes={"AWS_INSTANCE_IPV4": f"10.0.{20 + n // 250}.{n % 250}"},
        )
    return count


# Busy services log like this: access lines, errors that carry ids, numbers and secrets.
_LINES = (
    'INFO:     10.0.1.{n}:4{n} - "GET /api/2.0/mlflow/experiments/search HTTP/1.1" 200 OK',
    "ERROR:    api.proxy: upstream request {n} failed after {ms} ms: Authorization: Bearer {key}",
    'psycopg2.OperationalError: connection to server at "10.0.3.{n}", port 5432 failed: '
    "timeout expired after {ms} ms",
    "WARNING:  slow request req-{n}{ms} took {ms} ms",
)


def add_log_lines(
    session: boto3.Session,
    env: Environment,
    count: int,
    *,
    older_than_s: float = 60,
    seed: int = 18,
) -> int:
    """``count`` lines in new task streams of the services' log groups, spread over the hour
    before ``older_than_s`` seconds ago; about half are error lines, each carrying a
    different API key."""
    logs = session.client("logs")
    groups = [s.log_group for s in env.ecs.services if s.log_group]
    rng = random.Random(seed)
    newest_ms = int((time.time() - older_than_s) * 1000)
    oldest_ms = int((time.time() - 59 * 60) * 1000)
    written = 0
    while written < count:
        batch = min(10_000, count - written)  # PutLogEvents takes at most 10,000 events
        group = groups[(written // 10_000) % len(groups)]
        stream = f"ecs/other/{rng.getrandbits(64):016x}"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        stamps = sorted(rng.randint(oldest_ms, newest_ms) for _ in range(batch))
        events = [
            {
                "timestamp": ts,
                "message": _LINES[i % len(_LINES)].format(
                    n=i % 250, ms=rng.randint(1, 9999), key=fakes.hokusai_key()
                ),
            }
            for i, ts in enumerate(stamps)
        ]
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        written += batch
    return written


def put_log_line(session: boto3.Session, group: str, message: str, at: float) -> None:
    """One line in a stream of its own, at epoch second ``at``."""
    logs = session.client("logs")
    stream = f"ecs/planted/{int(at * 1000)}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": int(at * 1000), "message": message}],
    )


def access_log_key(load_balancer_arn: str, prefix: str, at: float, node: str, tail: str) -> str:
    """The key ALB gives the object whose five minutes end at epoch second ``at``."""
    region, account = load_balancer_arn.split(":")[3:5]
    name, lb_id = load_balancer_arn.split(":loadbalancer/app/", 1)[1].split("/")
    head = prefix.strip("/") + "/" if prefix.strip("/") else ""
    stamp = time.gmtime(at)
    return (
        f"{head}AWSLogs/{account}/elasticloadbalancing/{region}/"
        f"{time.strftime('%Y/%m/%d', stamp)}/"
        f"{account}_elasticloadbalancing_{region}_app.{name}.{lb_id}_"
        f"{time.strftime('%Y%m%dT%H%MZ', stamp)}_{node}_{tail}.log.gz"
    )


def put_access_log(
    session: boto3.Session,
    platform: Any,
    lines: list[str],
    at: float,
    node: str = "10.0.0.10",
    *,
    s3: Any = None,
) -> str:
    """One gzipped access-log object for the logging load balancer; returns its key."""
    built = _platform_ecs(platform)
    s3 = s3 or session.client("s3")
    prefix = built.access_log_load_balancer.split(":loadbalancer/app/", 1)[1].split("/")[0]
    key = access_log_key(
        built.access_log_load_balancer, prefix, at, node, f"{random.getrandbits(32):08x}"
    )
    body = io.BytesIO()
    with gzip.GzipFile(fileobj=body, mode="wb") as fh:
        fh.write(("\n".join(lines) + "\n").encode())
    s3.put_object(Bucket=built.access_log_bucket, Key=key, Body=body.getvalue())
    return key


def access_log_line(env: Environment, platform: Any, at: float, **fields: Any) -> str:
    """A 200 for the first route's probe at epoch second ``at``; ``fields`` override."""
    built = _platform_ecs(platform)
    elb = "app/" + built.access_log_load_balancer.split(":loadbalancer/app/", 1)[1]
    route = env.routes[0]
    values: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(at)),
        "elb": elb,
        "client": "203.0.113.9:50000",
        "target": "10.0.10.20:8001",
        "elb_status": 200,
        "target_status": 200,
        "method": "GET",
        "url": f"https://{env.public.hostname}:443{route.probe}",
        "user_agent": "mlflow-python-client/3.3.2",
        "target_group_arn": platform.target_groups.get(route.service),
        "trace_id": "Root=1-00000000-000000000000000000000000",
        "domain_name": env.public.hostname,
        "matched_rule_priority": "100",
    }
    values.update(fields)
    return format_line(**values)


def add_access_logs(
    session: boto3.Session,
    env: Environment,
    platform: Any,
    count: int,
    *,
    newest_s_ago: float,
    every_s: float,
) -> int:
    """``count`` access-log objects, one per ``every_s`` seconds back from ``newest_s_ago``
    seconds ago, spread over three load balancer nodes; each holds one 200."""
    now = time.time()
    s3 = session.client("s3")
    for n in range(count):
        at = now - newest_s_ago - n * every_s
        line = access_log_line(env, platform, at - 60)
        put_access_log(session, platform, [line], at, node=f"10.0.0.{10 + n % 3}", s3=s3)
    return count
