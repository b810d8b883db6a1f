"""The ECS, Cloud Map and CloudWatch Logs half of the sandbox platform, built in moto.

``build_platform`` (bot/sandbox/platform.py) builds the network, load balancers, Route 53 and
RDS, then calls :func:`build_ecs` for the rest: the cluster, two task-definition revisions per
service, the services behind the platform's target groups, the Cloud Map namespace, the log
groups with realistic lines, and ALB access logs in S3. ``scenario`` breaks it one of the ways
listed in :data:`ECS_SCENARIOS`.

Secrets planted in logs (a database URL with its password, a Bearer API key) are made at run
time and returned in ``EcsPlatform.planted_secrets`` so tests can prove they never leak.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import random
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from bot.config import EcsService, Environment
from bot.diagnosis.alb_logs import format_line
from bot.sandbox.target_health import set_target_health

MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow:v3.3.2"
MLFLOW_PREVIOUS_IMAGE = "ghcr.io/mlflow/mlflow:v3.1.0"
API_IMAGE = "932100697590.dkr.ecr.us-east-1.amazonaws.com/hokusai-api:8f3c2d1"
API_PREVIOUS_IMAGE = "932100697590.dkr.ecr.us-east-1.amazonaws.com/hokusai-api:41be07a"
ARTIFACT_ROOT = "s3://hokusai-mlflow-artifacts-development/artifacts"
ACCESS_LOG_BUCKET = "hokusai-alb-logs-development"
DB_PORT = 5432
# The Cloud Map name the API pointed at before the infrastructure migration.
STALE_DISCOVERY_SERVICE = "mlflow-server"


@dataclass(frozen=True)
class EcsScenario:
    """A way to break the ECS side, and what a diagnosis must then say first and name as the
    cause (``cause_check`` may name shape roles, see ``bot.sandbox.shapes``)."""

    name: str
    description: str
    first_failing_layer: str | None
    classification: str | None
    first_failing_check: str | None
    cause_check: str | None = None


ECS_SCENARIOS: dict[str, EcsScenario] = {
    s.name: s
    for s in (
        EcsScenario(
            "mlflow-down",
            "MLflow tasks crash at start-up (database password rejected): 0 of 1 running, "
            "its targets deregistered, no Cloud Map instance",
            "targets",
            "infrastructure",
            "targets.health[mlflow-direct]",
            "data.backend-store",
        ),
        EcsScenario(
            "crash-loop",
            "MLflow's container is killed for memory (exit code 137) again and again: ECS "
            "replaces each task, its targets are draining, the proxy gets refused",
            "targets",
            "infrastructure",
            "targets.health[mlflow-direct]",
            "compute.ecs-service[{mlflow_service}]",
        ),
        EcsScenario(
            "db-password-rejected",
            "The database rejects MLflow's password (rotated in one place only): MLflow keeps "
            "running, /health answers 200, registry calls get 503 TEMPORARILY_UNAVAILABLE",
            "data",
            "configuration",
            "data.backend-store",
            "data.backend-store",
        ),
        EcsScenario(
            "bad-allowed-hosts",
            "MLflow's --allowed-hosts leaves out a Host header that reaches it: health checks "
            "pass, real requests get 403 Invalid Host header",
            "compute",
            "configuration",
            "compute.task-config[hokusai-mlflow-development]",
            "compute.task-config[{mlflow_service}]",
        ),
        EcsScenario(
            "stale-discovery",
            "The API's MLflow URL names a Cloud Map service left from before the migration, "
            "which has no instances",
            "compute",
            "configuration",
            "compute.task-config[hokusai-api-development]",
            "compute.task-config[{api_service}]",
        ),
        EcsScenario(
            "proxy-upstream-wrong-port",
            "The API's MLflow URL names MLflow's Cloud Map name on the wrong port: the proxy "
            "answers 502",
            "compute",
            "configuration",
            "compute.task-config[hokusai-api-development]",
            "compute.task-config[{api_service}]",
        ),
        EcsScenario(
            "sg-blocked",
            "MLflow's security group no longer admits the API's on MLflow's port",
            "network",
            "infrastructure",
            "network.security-groups",
            "network.security-groups",
        ),
        EcsScenario(
            "red-herring",
            "Healthy, with distractions: old database errors in MLflow's logs from hours ago, "
            "an old deployment, one unrelated recent error line in the API's logs",
            None,
            None,
            None,
        ),
        EcsScenario(
            "aws-access-denied",
            "Healthy, but the bot's role lacks elasticloadbalancing:DescribeRules: the run "
            "must say what it could not check, never that something is missing",
            None,
            None,
            None,
        ),
    )
}

# Scenarios in which MLflow's tasks are not running.
MLFLOW_DOWN = frozenset({"mlflow-down", "crash-loop"})


@dataclass
class EcsPlatform:
    """What :func:`build_ecs` made, for tests and the demo."""

    cluster_arn: str
    services: dict[str, str] = field(default_factory=dict)  # service name -> ARN
    task_definitions: dict[str, list[str]] = field(default_factory=dict)  # family -> ARNs
    namespace_id: str | None = None
    discovery_services: dict[str, str] = field(default_factory=dict)  # name -> Cloud Map id
    log_groups: list[str] = field(default_factory=list)
    access_log_bucket: str | None = None
    access_log_load_balancer: str | None = None
    security_groups: dict[str, str] = field(default_factory=dict)  # role -> group id
    planted_secrets: dict[str, str] = field(default_factory=dict)
    api_upstream: str | None = None
    scenario: str | None = None


# moto reads MOTO_ECS_SERVICE_RUNNING from the process environment while it creates a service.
_RUNNING_ENV_LOCK = threading.Lock()


def _random_token(k: int) -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=k))


def _task_id() -> str:
    return secrets.token_hex(16)


def _first(value: Any, *names: str) -> Any:
    """The first attribute or key of ``value`` among ``names`` that is set (the Platform's)."""
    for name in names:
        found = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
        if found:
            return found
    return None


class _Facts:
    """What build_ecs needs from the network half: read from the Platform, else from AWS."""

    def __init__(self, session: Any, env: Environment, platform: Any) -> None:
        self.session = session
        self.env = env
        self.platform = platform
        self.ec2 = session.client("ec2")
        self.elbv2 = session.client("elbv2")

    def vpc_id(self) -> str:
        found = _first(self.platform, "vpc_id", "vpc")
        if isinstance(found, str):
            return found
        vpcs = self.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["false"]}])
        if not vpcs["Vpcs"]:
            vpcs = self.ec2.describe_vpcs()
        return vpcs["Vpcs"][0]["VpcId"]

    def subnet_ids(self, vpc_id: str) -> list[str]:
        found = _first(self.platform, "private_subnet_ids", "subnet_ids", "subnets")
        if isinstance(found, (list, tuple)) and found and isinstance(found[0], str):
            return list(found)
        subnets = self.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        return [s["SubnetId"] for s in subnets["Subnets"]]

    def security_groups(self, vpc_id: str) -> dict[str, str]:
        """Role (alb, api, mlflow, db) -> group id, matched by name or Name tag."""
        found = _first(self.platform, "security_groups", "security_group_ids")
        roles: dict[str, str] = dict(found) if isinstance(found, dict) else {}
        groups = self.ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
        )["SecurityGroups"]
        keywords = {"alb": ("alb", "lb"), "api": ("api",), "mlflow": ("mlflow",)}
        keywords["db"] = ("db", "rds", "database", "postgres")
        for role, words in keywords.items():
            if role in roles:
                continue
            for group in groups:
                tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
                label = f"{group['GroupName']} {tags.get('Name', '')} {tags.get('role', '')}"
                tokens = set(label.lower().replace("_", "-").replace(" ", "-").split("-"))
                if group["GroupName"] != "default" and tokens & set(words):
                    roles[role] = group["GroupId"]
                    break
        return roles

    def target_group_arn(self, service: EcsService) -> str | None:
        found = _first(self.platform, "target_groups", "target_group_arns")
        if isinstance(found, dict):
            for key in (service.name, "mlflow" if service.is_mlflow else "api"):
                value = found.get(key)
                if isinstance(value, str):
                    return value
        groups = self.elbv2.describe_target_groups()["TargetGroups"]
        by_port = [g for g in groups if g.get("Port") == service.port]
        named = [g for g in groups if g["TargetGroupName"] in service.name]
        kind = "mlflow" if service.is_mlflow else "api"
        kinded = [g for g in by_port if kind in g["TargetGroupName"]]
        for choice in (kinded, named, by_port):
            if choice:
                return choice[0]["TargetGroupArn"]
        return None

    def rds_endpoint(self) -> tuple[str, int]:
        if self.env.database:
            try:
                rds = self.session.client("rds")
                db = rds.describe_db_instances(DBInstanceIdentifier=self.env.database.rds_instance)
                endpoint = db["DBInstances"][0].get("Endpoint") or {}
                if endpoint.get("Address"):
                    return endpoint["Address"], int(endpoint.get("Port") or DB_PORT)
            except ClientError:
                pass
        name = self.env.database.rds_instance if self.env.database else "hokusai-mlflow"
        return f"{name}.c9akciq32.{self.env.region}.rds.amazonaws.com", DB_PORT

    def load_balancers(self) -> list[dict[str, Any]]:
        if not self.env.load_balancers:
            return []
        try:
            return self.elbv2.describe_load_balancers(Names=self.env.load_balancers)[
                "LoadBalancers"
            ]
        except ClientError:
            return []


def _mlflow_command(db_host: str, db_port: int, allowed_hosts: list[str]) -> list[str]:
    # The password comes from the `secrets` entry; the shell expands it at start-up.
    backend = f"postgresql://mlflow:${{DB_PASSWORD}}@{db_host}:{db_port}/mlflow"
    parts = [
        "mlflow server",
        "--host 0.0.0.0",
        "--port 5000",
        f"--backend-store-uri {backend}",
        f"--default-artifact-root {ARTIFACT_ROOT}",
        "--serve-artifacts",
        f"--allowed-hosts {','.join(allowed_hosts)}",
    ]
    return ["sh", "-c", " ".join(parts)]


def _log_configuration(group: str, region: str, prefix: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": group,
            "awslogs-region": region,
            "awslogs-stream-prefix": prefix,
        },
    }


def _secret_arn(region: str, account: str, name: str) -> str:
    # Secrets Manager appends six characters to a secret's name; stable per name here.
    suffix = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}"


def _env(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs.items()]


def build_ecs(
    session: Any,
    env: Environment,
    platform: Any = None,
    scenario: str | None = None,
    *,
    upstream_variables: tuple[str, ...] = ("MLFLOW_SERVER_URL", "MLFLOW_TRACKING_URI"),
) -> EcsPlatform:
    """Build the ECS side of ``env`` in the AWS that ``session`` talks to (moto).

    Args:
        session: a boto3 session that may write (the sandbox's, never the diagnostics').
        env: the environment from hokusai.yml (cluster, services, log groups, discovery).
        platform: the network half from ``build_platform``; missing facts are read from AWS.
        scenario: one of :data:`ECS_SCENARIOS`, any other name (healthy ECS side), or None.
        upstream_variables: the API task definition's variables that hold MLflow's URL.
    """
    if env.ecs is None:
        raise ValueError(f"environment {env.name!r} has no ecs section")
    facts = _Facts(session, env, platform)
    ecs = session.client("ecs")
    account = session.client("sts").get_caller_identity()["Account"]
    region = env.region
    vpc_id = facts.vpc_id()
    # Fargate tasks in moto need DNS hostnames on the VPC (real ECS + Cloud Map need them too).
    facts.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    facts.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    subnets = facts.subnet_ids(vpc_id)
    groups = facts.security_groups(vpc_id)
    db_host, db_port = facts.rds_endpoint()

    built = EcsPlatform(
        cluster_arn=ecs.create_cluster(clusterName=env.ecs.cluster)["cluster"]["clusterArn"],
        scenario=scenario,
        security_groups=groups,
    )
    namespace = _build_discovery(session, env, vpc_id, built)
    mlflow = next((s for s in env.ecs.services if s.is_mlflow), None)
    upstream = f"http://{mlflow.discovery}:{mlflow.port}" if mlflow and mlflow.discovery else None
    if scenario == "stale-discovery" and namespace:
        mlflow_port = mlflow.port if mlflow else 5000
        upstream = f"http://{STALE_DISCOVERY_SERVICE}.{namespace}:{mlflow_port}"
    if scenario == "proxy-upstream-wrong-port" and mlflow and mlflow.discovery:
        upstream = f"http://{mlflow.discovery}:{mlflow.port + 1}"
    built.api_upstream = upstream
    discovery_name = mlflow.discovery.split(".", 1)[0] if mlflow and mlflow.discovery else None

    for service in env.ecs.services:
        family = service.name
        if service.is_mlflow:
            revisions = _mlflow_revisions(env, service, db_host, db_port, scenario)
        else:
            revisions = _api_revisions(env, service, upstream, upstream_variables)
        arns = []
        for container in revisions:
            td = ecs.register_task_definition(
                family=family,
                networkMode="awsvpc",
                requiresCompatibilities=["FARGATE"],
                cpu="512",
                memory="1024",
                executionRoleArn=f"arn:aws:iam::{account}:role/{family}-execution",
                containerDefinitions=[
                    {
                        **container,
                        "secrets": [
                            {"name": s["name"], "valueFrom": _secret_arn(region, account, s["ref"])}
                            for s in container["secrets"]
                        ],
                        "logConfiguration": _log_configuration(
                            service.log_group or f"/ecs/{family}",
                            region,
                            "ecs",
                        ),
                    }
                ],
            )
            arns.append(td["taskDefinition"]["taskDefinitionArn"])
        built.task_definitions[family] = arns
        role = "mlflow" if service.is_mlflow else "api"
        network = {
            "awsvpcConfiguration": {
                "subnets": subnets,
                "securityGroups": [groups[role]] if role in groups else [],
                "assignPublicIp": "DISABLED",
            }
        }
        if not network["awsvpcConfiguration"]["securityGroups"]:
            # moto (like ECS) needs at least one group: make the service's own.
            gid = facts.ec2.create_security_group(
                GroupName=f"{family}-tasks", Description=f"{family} tasks", VpcId=vpc_id
            )["GroupId"]
            groups[role] = gid
            network["awsvpcConfiguration"]["securityGroups"] = [gid]
        down = scenario in MLFLOW_DOWN and service.is_mlflow
        desired = 1 if service.is_mlflow else 2
        built.services[service.name] = _create_service(
            ecs,
            env,
            service,
            task_definition=arns[-1],
            desired=desired,
            running=0 if down else desired,
            network=network,
            target_group=facts.target_group_arn(service),
            registry=built.discovery_services.get(discovery_name) if service.is_mlflow else None,
        )
        if down:
            _stopped_tasks(ecs, env, service, arns[-1], network, account, scenario)
            if scenario == "crash-loop":
                _drain_targets(session, env, facts.target_group_arn(service))
            else:
                _deregister_targets(facts.elbv2, facts.target_group_arn(service))

    _ensure_security_group_rules(facts.ec2, env, groups, db_port, scenario)
    _register_discovery_instances(session, built, scenario, discovery_name)
    _write_logs(session, env, built, db_host, db_port, scenario)
    _write_access_logs(session, env, facts, built, account, scenario)
    return built


def _mlflow_revisions(
    env: Environment, service: EcsService, db_host: str, db_port: int, scenario: str | None
) -> list[dict[str, Any]]:
    hostname = env.public.hostname
    good_hosts = [hostname, f"{service.discovery}:{service.port}", service.discovery or ""]
    good_hosts = [h for h in good_hosts if h]
    current_hosts = good_hosts
    if scenario == "bad-allowed-hosts":
        # Leave out a Host header that really reaches MLflow: the public name when a route
        # sends public traffic to it, else the proxy's upstream name.
        direct = any(r.service == service.name for r in env.routes)
        dropped = {hostname} if direct else {f"{service.discovery}:{service.port}"}
        current_hosts = [h for h in good_hosts if h not in dropped] + ["localhost:*"]
    base = {
        "name": "mlflow",
        "essential": True,
        "cpu": 512,
        "memory": 1024,
        "portMappings": [{"containerPort": service.port, "protocol": "tcp"}],
        "environment": _env(
            {
                "AWS_DEFAULT_REGION": env.region,
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "GUNICORN_CMD_ARGS": "--timeout 120 --workers 2",
            }
        ),
        "secrets": [{"name": "DB_PASSWORD", "ref": "hokusai/mlflow/db-password"}],
    }
    previous = {
        **base,
        "image": MLFLOW_PREVIOUS_IMAGE,
        "command": _mlflow_command(db_host, db_port, good_hosts),
        "environment": _env({"AWS_DEFAULT_REGION": env.region}),
    }
    current = {
        **base,
        "image": MLFLOW_IMAGE,
        "command": _mlflow_command(db_host, db_port, current_hosts),
    }
    return [previous, current]


def _api_revisions(
    env: Environment,
    service: EcsService,
    upstream: str | None,
    variables: tuple[str, ...] = ("MLFLOW_SERVER_URL", "MLFLOW_TRACKING_URI"),
) -> list[dict[str, Any]]:
    plain = {
        "ENVIRONMENT": env.name or "development",
        "PORT": str(service.port),
        "REDIS_URL": "redis://hokusai-redis-development.cache.amazonaws.com:6379/0",
    }
    base = {
        "name": "api",
        "essential": True,
        "cpu": 256,
        "memory": 512,
        "portMappings": [{"containerPort": service.port, "protocol": "tcp"}],
        "secrets": [
            {"name": "DATABASE_URL", "ref": "hokusai/api/database-url"},
            {"name": "HOKUSAI_SIGNING_KEY", "ref": "hokusai/api/signing-key"},
        ],
        "command": ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", str(service.port)],
    }
    current_env = dict(plain)
    if upstream:
        current_env.update({name: upstream for name in variables})
    previous_env = {**plain, variables[0]: "http://10.0.1.88:5000"}
    return [
        {**base, "image": API_PREVIOUS_IMAGE, "environment": _env(previous_env)},
        {**base, "image": API_IMAGE, "environment": _env(current_env)},
    ]


def _create_service(
    ecs: Any,
    env: Environment,
    service: EcsService,
    *,
    task_definition: str,
    desired: int,
    running: int,
    network: dict[str, Any],
    target_group: str | None,
    registry: str | None,
) -> str:
    container = "mlflow" if service.is_mlflow else "api"
    params: dict[str, Any] = {
        "cluster": env.ecs.cluster,
        "serviceName": service.name,
        "taskDefinition": task_definition,
        "desiredCount": desired,
        "launchType": "FARGATE",
        "networkConfiguration": network,
    }
    if target_group:
        params["loadBalancers"] = [
            {
                "targetGroupArn": target_group,
                "containerName": container,
                "containerPort": service.port,
            }
        ]
    if registry:
        params["serviceRegistries"] = [{"registryArn": registry}]
    with _RUNNING_ENV_LOCK:
        before = os.environ.get("MOTO_ECS_SERVICE_RUNNING")
        os.environ["MOTO_ECS_SERVICE_RUNNING"] = str(running)
        try:
            created = ecs.create_service(**params)["service"]
        finally:
            if before is None:
                os.environ.pop("MOTO_ECS_SERVICE_RUNNING", None)
            else:
                os.environ["MOTO_ECS_SERVICE_RUNNING"] = before
    if created.get("runningCount") != running and running == desired:
        # moto runs in another process: an update makes its running count the desired one.
        ecs.update_service(cluster=env.ecs.cluster, service=service.name, desiredCount=desired)
    return created["serviceArn"]


def _stopped_tasks(
    ecs: Any,
    env: Environment,
    service: EcsService,
    task_definition: str,
    network: dict[str, Any],
    account: str,
    scenario: str | None,
) -> None:
    """Three tasks that started and died, as ECS leaves them after a crash loop: exit code 1
    when the process gives up at start-up, 137 when it is killed for memory."""
    killed = scenario == "crash-loop"
    reason = (
        "Essential container in task exited: OutOfMemoryError: Container killed due to memory usage"
        if killed
        else "Essential container in task exited"
    )
    arns = []
    for _ in range(3):
        task = ecs.run_task(
            cluster=env.ecs.cluster,
            taskDefinition=task_definition,
            launchType="FARGATE",
            networkConfiguration=network,
            group=f"service:{service.name}",
            startedBy="ecs-svc/3427836219850311337",
        )["tasks"][0]
        ecs.stop_task(
            cluster=env.ecs.cluster,
            task=task["taskArn"],
            reason=reason,
        )
        arns.append(task["taskArn"])
    _set_exit_code(account, env, arns, 137 if killed else 1)


def _set_exit_code(account: str, env: Environment, task_arns: list[str], code: int) -> None:
    """Give the stopped tasks' containers an exit code (moto has no API for it).

    Works when moto runs in this process (``mock_aws`` or ``ThreadedMotoServer``); elsewhere
    the tasks keep exit code 0 and only the stopped reason tells the story.
    """
    with contextlib.suppress(Exception):
        from moto.ecs.models import ecs_backends

        tasks = ecs_backends[account][env.region].tasks.get(env.ecs.cluster, {})
        for arn in task_arns:
            if arn in tasks:
                for container in tasks[arn].containers:
                    container.exitCode = code


def _drain_targets(session: Any, env: Environment, target_group: str | None) -> None:
    """A crash loop: ECS deregisters each dying task, whose target drains."""
    if not target_group:
        return
    set_target_health(
        session.client("sts"),
        env.region,
        target_group,
        "draining",
        "Target.DeregistrationInProgress",
        "Target deregistration is in progress",
    )


def _deregister_targets(elbv2: Any, target_group: str | None) -> None:
    if not target_group:
        return
    health = elbv2.describe_target_health(TargetGroupArn=target_group)
    targets = [d["Target"] for d in health.get("TargetHealthDescriptions", [])]
    if targets:
        elbv2.deregister_targets(TargetGroupArn=target_group, Targets=targets)


def _build_discovery(session: Any, env: Environment, vpc_id: str, built: EcsPlatform) -> str | None:
    """The private DNS namespace and its services (instances come later)."""
    names = [s.discovery for s in env.ecs.services if s.discovery]
    if not names:
        return None
    namespace = names[0].split(".", 1)[1]
    sd = session.client("servicediscovery")
    sd.create_private_dns_namespace(Name=namespace, Vpc=vpc_id)
    ns_id = next(n["Id"] for n in sd.list_namespaces()["Namespaces"] if n["Name"] == namespace)
    built.namespace_id = ns_id
    wanted = [n.split(".", 1)[0] for n in names if n.endswith("." + namespace)]
    for name in [*wanted, STALE_DISCOVERY_SERVICE]:
        created = sd.create_service(
            Name=name,
            NamespaceId=ns_id,
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
        )["Service"]
        built.discovery_services[name] = created["Arn"]
    return namespace


def _register_discovery_instances(
    session: Any, built: EcsPlatform, scenario: str | None, mlflow_name: str | None
) -> None:
    """Running tasks register themselves; a crashed MLflow leaves its service empty."""
    sd = session.client("servicediscovery")
    for name, arn in built.discovery_services.items():
        if name == STALE_DISCOVERY_SERVICE or (scenario in MLFLOW_DOWN and name == mlflow_name):
            continue
        sd.register_instance(
            ServiceId=arn.rsplit("/", 1)[-1],
            InstanceId=_task_id(),
            Attributes={"AWS_INSTANCE_IPV4": "10.0.1.57", "AWS_INSTANCE_PORT": "5000"},
        )


def _ensure_security_group_rules(
    ec2: Any, env: Environment, groups: dict[str, str], db_port: int, scenario: str | None
) -> None:
    """The rules the ECS side needs: ALB -> each service, API -> MLflow, MLflow -> DB."""
    wanted: list[tuple[str, str, int]] = []
    for service in env.ecs.services:
        role = "mlflow" if service.is_mlflow else "api"
        wanted.append(("alb", role, service.port))
    mlflow = next((s for s in env.ecs.services if s.is_mlflow), None)
    if mlflow:
        wanted.append(("api", "mlflow", mlflow.port))
    wanted.append(("mlflow", "db", db_port))
    for source, dest, port in wanted:
        if source not in groups or dest not in groups:
            continue
        permission = {
            "IpProtocol": "tcp",
            "FromPort": port,
            "ToPort": port,
            "UserIdGroupPairs": [{"GroupId": groups[source]}],
        }
        blocked = scenario == "sg-blocked" and (source, dest) == ("api", "mlflow")
        if blocked:
            with contextlib.suppress(ClientError):
                ec2.revoke_security_group_ingress(GroupId=groups[dest], IpPermissions=[permission])
            continue
        with contextlib.suppress(ClientError):  # InvalidPermission.Duplicate: already there
            ec2.authorize_security_group_ingress(GroupId=groups[dest], IpPermissions=[permission])


def _ms(dt: float) -> int:
    return int(dt * 1000)


def _stamp(ts: float, fmt: str) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def _mlflow_lines(
    start: float, db_host: str, db_port: int, password: str, failing: bool
) -> list[tuple[float, str]]:
    g = "[%Y-%m-%d %H:%M:%S +0000]"
    lines = [
        (start, f"{_stamp(start, g)} [1] [INFO] Starting gunicorn 23.0.0"),
        (start + 0.1, f"{_stamp(start, g)} [1] [INFO] Listening at: http://0.0.0.0:5000 (1)"),
        (start + 0.2, f"{_stamp(start, g)} [1] [INFO] Using worker: sync"),
        (start + 0.3, f"{_stamp(start, g)} [27] [INFO] Booting worker with pid: 27"),
        # Real services log their own connection string now and then; the redactor must catch it.
        (
            start + 0.4,
            f"{_stamp(start, '%Y/%m/%d %H:%M:%S')} INFO mlflow.store.db.utils: Connecting to "
            f"postgresql://mlflow:{password}@{db_host}:{db_port}/mlflow",
        ),
    ]
    if not failing:
        lines.append(
            (
                start + 1,
                f"{_stamp(start, '%Y/%m/%d %H:%M:%S')} INFO mlflow.store.db.utils: "
                "Updating database tables",
            )
        )
        return lines
    ts = start + 1
    d = _stamp(ts, "%Y/%m/%d %H:%M:%S")
    reason = (
        f'connection to server at "{db_host}" (10.0.2.15), port {db_port} failed: '
        'FATAL:  password authentication failed for user "mlflow"'
    )
    lines += [
        (ts, f"{d} ERROR mlflow.cli: Error initializing backend store"),
        (ts + 0.01, "Traceback (most recent call last):"),
        (
            ts + 0.02,
            '  File "/usr/local/lib/python3.11/site-packages/sqlalchemy/engine/base.py", '
            "line 145, in __init__",
        ),
        (ts + 0.03, "    self._dbapi_connection = engine.raw_connection()"),
        (ts + 0.04, f"psycopg2.OperationalError: {reason}"),
        (
            ts + 0.05,
            f"sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) {reason} "
            f"(url: postgresql://mlflow:{password}@{db_host}:{db_port}/mlflow)",
        ),
        (ts + 0.06, "(Background on this error at: https://sqlalche.me/e/20/e3q8)"),
        (ts + 0.1, f"{_stamp(ts, g)} [27] [INFO] Worker exiting (pid: 27)"),
        (ts + 0.2, f"{_stamp(ts, g)} [1] [ERROR] Worker (pid:27) exited with code 3"),
        (ts + 0.3, f"{_stamp(ts, g)} [1] [ERROR] Shutting down: Master"),
        (ts + 0.4, f"{_stamp(ts, g)} [1] [ERROR] Reason: Worker failed to boot."),
    ]
    return lines


def _mlflow_incident_lines(
    now: float, db_host: str, db_port: int, scenario: str | None
) -> list[tuple[float, str]]:
    """What a running MLflow logs while its scenario happens (appended to its newest stream).

    A stopped or password-rejecting database: SQLAlchemy's OperationalError on every registry
    call (MLflow answers them 503). A crash loop: the kernel's OOM kill. red-herring: a
    database error from hours ago, outside any window a diagnosis reads.
    """
    stamp = "%Y/%m/%d %H:%M:%S"
    at = f'connection to server at "{db_host}" (10.0.2.15), port {db_port} failed'
    reasons = {
        "db-stopped": f"{at}: Connection refused\n\tIs the server running on that host and "
        "accepting TCP/IP connections?",
        "db-password-rejected": f'{at}: FATAL:  password authentication failed for user "mlflow"',
    }
    if scenario in reasons:
        return [
            (
                now - 120 + i * 20,
                f"{_stamp(now - 120 + i * 20, stamp)} ERROR mlflow.store.db.utils: SQLAlchemy "
                "database error. The following exception is caught.\n(psycopg2.OperationalError) "
                f"{reasons[scenario]}\n(Background on this error at: https://sqlalche.me/e/20/e3q8)",
            )
            for i in range(5)
        ]
    if scenario == "crash-loop":
        g = "[%Y-%m-%d %H:%M:%S +0000]"
        return [
            (
                now - 90,
                f"{_stamp(now - 90, g)} [1] [ERROR] Worker (pid:27) was sent SIGKILL! "
                "Perhaps out of memory?",
            ),
            (now - 89, f"{_stamp(now - 89, g)} [1] [INFO] Shutting down: Master"),
        ]
    if scenario == "red-herring":
        old = now - 3 * 3600
        return [
            (
                old,
                f"{_stamp(old, stamp)} ERROR mlflow.store.db.utils: SQLAlchemy database error. "
                f"(psycopg2.OperationalError) {at}: the database system is shutting down",
            )
        ]
    return []


def _api_lines(
    start: float, api_key: str, upstream_404: bool, upstream_host: str, key_refused: bool = False
) -> list[tuple[float, str]]:
    lines = [
        (start, "INFO:     Started server process [1]"),
        (start + 0.1, "INFO:     Waiting for application startup."),
        (start + 0.2, "INFO:     Application startup complete."),
        (start + 0.3, "INFO:     Uvicorn running on http://0.0.0.0:8001 (Press CTRL+C to quit)"),
    ]
    ts = start + 5
    for i in range(12):
        client = f"10.0.1.{20 + i % 5}:{41000 + i * 7}"
        lines.append((ts + i, f'INFO:     {client} - "GET /health HTTP/1.1" 200 OK'))
        if upstream_404:
            path = "/api/mlflow/api/2.0/mlflow/experiments/search?max_results=1"
            if i % 3 == 0:
                path = "/api/mlflow/api/2.0/mlflow/registered-models/create"
            method = "POST" if "create" in path else "GET"
            lines.append(
                (ts + i + 0.5, f'INFO:     {client} - "{method} {path} HTTP/1.1" 404 Not Found')
            )
        elif key_refused:
            # The key arrives as Authorization: Bearer; this build only reads X-API-Key.
            path = "/api/mlflow/api/2.0/mlflow/experiments/search?max_results=1"
            lines.append((ts + i + 0.4, "WARNING:  api.auth: API key required (no X-API-Key)"))
            lines.append(
                (ts + i + 0.5, f'INFO:     {client} - "GET {path} HTTP/1.1" 401 Unauthorized')
            )
        else:
            path = "/api/mlflow/api/2.0/mlflow/experiments/search?max_results=1"
            lines.append((ts + i + 0.5, f'INFO:     {client} - "GET {path} HTTP/1.1" 200 OK'))
    if upstream_host:
        ts += 20
        lines += [
            (
                ts,
                f"ERROR:    api.proxy: upstream request failed: GET http://{upstream_host}/api/2.0/"
                f"mlflow/experiments/search headers={{'authorization': 'Bearer {api_key}'}}",
            ),
            (ts + 0.01, "Traceback (most recent call last):"),
            (ts + 0.02, '  File "/app/app/proxy.py", line 88, in forward'),
            (ts + 0.03, "    response = await client.send(request)"),
            (
                ts + 0.04,
                f"httpx.ConnectError: [Errno -2] Name or service not known: {upstream_host}",
            ),
        ]
    return lines


def _write_logs(
    session: Any,
    env: Environment,
    built: EcsPlatform,
    db_host: str,
    db_port: int,
    scenario: str | None,
) -> None:
    logs = session.client("logs")
    now = time.time()
    password = _random_token(20) + "!x"
    api_key = "hk_" + "live_" + _random_token(32)
    built.planted_secrets = {"db_password": password, "api_key": api_key}
    stale = scenario == "stale-discovery" and built.api_upstream
    upstream_host = urlsplit(built.api_upstream).netloc if stale else ""
    for service in env.ecs.services:
        group = service.log_group or f"/ecs/{service.name}"
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        built.log_groups.append(group)
        container = "mlflow" if service.is_mlflow else "api"
        failing = scenario == "mlflow-down" and service.is_mlflow
        # Several task streams, oldest first: a crash loop leaves one stream per attempt.
        attempts = 4 if failing or (scenario == "crash-loop" and service.is_mlflow) else 2
        for n in range(attempts):
            start = now - 50 * 60 + n * 10 * 60
            stream = f"ecs/{container}/{_task_id()}"
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            if service.is_mlflow:
                lines = _mlflow_lines(start, db_host, db_port, password, failing)
                if n == attempts - 1:
                    lines += _mlflow_incident_lines(now, db_host, db_port, scenario)
            else:
                lines = _api_lines(
                    start,
                    api_key,
                    upstream_404=scenario == "seed-outage",
                    upstream_host=upstream_host,
                    key_refused=scenario == "auth-header",
                )
                if n == attempts - 1 and scenario == "red-herring":
                    lines.append(
                        (
                            now - 7 * 60,
                            "ERROR:    api.billing: webhook signature check failed for event "
                            "evt_3Q8xk2 from 203.0.113.7 (ignored)",
                        )
                    )
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": _ms(ts), "message": msg} for ts, msg in sorted(lines)],
            )


def _serving_load_balancer(elbv2: Any, lbs: list[dict[str, Any]], env: Environment) -> dict | None:
    """The configured load balancer whose rules mention a route path (else the first)."""
    paths = {r.path for r in env.routes}
    for lb in lbs:
        for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])[
            "Listeners"
        ]:
            for rule in elbv2.describe_rules(ListenerArn=listener["ListenerArn"], PageSize=400)[
                "Rules"
            ]:
                for cond in rule.get("Conditions", []):
                    values = cond.get("Values") or cond.get("PathPatternConfig", {}).get(
                        "Values", []
                    )
                    if paths & set(values):
                        return lb
    return lbs[0] if lbs else None


def _access_log_lines(
    env: Environment, facts: _Facts, elb_field: str, scenario: str | None
) -> list[str]:
    """Requests for each route's probe in the last 20 minutes, as the scenario answers them.

    seed-outage: the /api/* catch-all sends every route to the API service, whose FastAPI
    answers 404 (a target's 404, not the load balancer's); mlflow-down: MLflow's routes get
    the load balancer's own 503 (no target).
    """
    api = next((s for s in env.ecs.services if not s.is_mlflow), None)
    known_ips = _first(facts.platform, "targets") or {}
    now = time.time()
    host = env.public.hostname
    lines = []
    for i, route in enumerate(env.routes * 6):
        service = env.service(route.service)
        priority = str(100 * (env.routes.index(route) + 1))
        elb_status, target_status = 200, 200
        if scenario == "seed-outage" and api is not None:
            service, priority, elb_status, target_status = api, "10", 404, 404
        if scenario == "auth-header" and service is not None and not service.is_mlflow:
            elb_status, target_status = 401, 401  # the API refuses the key it was sent
        down = scenario == "mlflow-down" and service is not None and service.is_mlflow
        tg = facts.target_group_arn(service) if service and not down else None
        if down:
            elb_status, target_status = 503, None
        ips = known_ips.get(service.name) if service else None
        ip = ips[i % len(ips)] if ips else f"10.0.10.{30 + i % 4}"
        target = None if down else f"{ip}:{service.port if service else 80}"
        ts = now - 20 * 60 + i * 7
        lines.append(
            format_line(
                time=_stamp(ts, "%Y-%m-%dT%H:%M:%S.%fZ"),
                elb=elb_field,
                client=f"203.0.113.{10 + i}:{50000 + i}",
                target=target,
                elb_status=elb_status,
                target_status=target_status,
                method="GET",
                url=f"https://{host}:443{route.probe}",
                user_agent="mlflow-python-client/3.3.2",
                target_group_arn=tg,
                trace_id=f"Root=1-{int(ts):x}-{secrets.token_hex(12)}",
                domain_name=host,
                matched_rule_priority="-" if down else priority,
                actions="forward",
            )
        )
    return lines


def _write_access_logs(
    session: Any,
    env: Environment,
    facts: _Facts,
    built: EcsPlatform,
    account: str,
    scenario: str | None,
) -> None:
    """Turn on access logs for the serving load balancer and write one recent log object."""
    registry = getattr(facts.platform, "registry_lb", None)
    if registry is not None:
        lb = {"LoadBalancerArn": registry.arn, "LoadBalancerName": registry.name}
    else:
        lb = _serving_load_balancer(facts.elbv2, facts.load_balancers(), env)
    if lb is None:
        return
    s3 = session.client("s3")
    # Outside us-east-1 S3 wants the region named (as real S3 does).
    where = (
        {}
        if env.region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": env.region}}
    )
    with contextlib.suppress(ClientError):
        s3.create_bucket(Bucket=ACCESS_LOG_BUCKET, **where)
    prefix = lb["LoadBalancerName"]
    facts.elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Attributes=[
            {"Key": "access_logs.s3.enabled", "Value": "true"},
            {"Key": "access_logs.s3.bucket", "Value": ACCESS_LOG_BUCKET},
            {"Key": "access_logs.s3.prefix", "Value": prefix},
        ],
    )
    built.access_log_bucket = ACCESS_LOG_BUCKET
    built.access_log_load_balancer = lb["LoadBalancerArn"]
    elb_field = "app/" + lb["LoadBalancerArn"].split(":loadbalancer/app/", 1)[-1]
    lines = _access_log_lines(env, facts, elb_field, scenario)
    now = time.time()
    day = _stamp(now, "%Y/%m/%d")
    lb_id = lb["LoadBalancerArn"].rsplit("/", 1)[-1]
    key = (
        f"{prefix}/AWSLogs/{account}/elasticloadbalancing/{env.region}/{day}/"
        f"{account}_elasticloadbalancing_{env.region}_app.{lb['LoadBalancerName']}.{lb_id}_"
        f"{_stamp(now, '%Y%m%dT%H%MZ')}_10.0.0.10_{_random_token(8).lower()}.log.gz"
    )
    body = io.BytesIO()
    with gzip.GzipFile(fileobj=body, mode="wb") as fh:
        fh.write(("\n".join(lines) + "\n").encode())
    s3.put_object(Bucket=ACCESS_LOG_BUCKET, Key=key, Body=body.getvalue())
