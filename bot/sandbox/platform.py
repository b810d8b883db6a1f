"""The seed's AWS topology, built in moto, and the named ways to break it.

``build_platform`` makes what the seed incident describes: a VPC with public and private
subnets, security groups (load balancer -> API 8001 and MLflow 5000, API -> MLflow 5000,
MLflow -> Postgres 5432), two internet-facing ALBs with HTTP 80 (redirect) and HTTPS 443
listeners, the target groups of the two services with their task IPs registered, the
registry's path rules, the public Route 53 zone with ``registry.hokus.ai`` aliased to the
registry ALB, and the RDS Postgres instance. The ECS half (cluster, services, Cloud Map, logs)
comes from ``bot.sandbox.platform_ecs.build_ecs`` when that module is present.

A scenario then breaks it; :data:`SCENARIOS` lists each with the hop a diagnosis must name
first. Works in-process under ``moto.mock_aws()`` and against ``ThreadedMotoServer``
(pass ``endpoint_url``, or set ``AWS_ENDPOINT_URL``).

Example::

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        platform = build_platform(session, env, scenario="seed-outage")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from bot.config import Environment
from bot.sandbox.target_health import set_target_health

ACCOUNT_CERTIFICATE = "certificate/5b9f1f9e-hokusai-registry"
# The JSON FastAPI answers for an unknown path: what the seed's clients saw.
FASTAPI_NOT_FOUND = '{"detail":"Not Found"}'
DB_PORT = 5432


@dataclass(frozen=True)
class Scenario:
    """A way to break the platform, and what a diagnosis must then say first."""

    name: str
    description: str
    first_failing_layer: str | None
    classification: str | None = None
    first_failing_check: str | None = None
    # The check that names what broke, when it sits downstream of the first failing hop.
    cause_check: str | None = None

    @property
    def cause(self) -> str | None:
        """The check id a diagnosis must name as the cause (None: nothing may fail)."""
        return self.cause_check or self.first_failing_check


@dataclass
class LoadBalancer:
    name: str
    arn: str
    dns_name: str
    zone_id: str
    listeners: dict[int, str] = field(default_factory=dict)  # port -> listener ARN


@dataclass
class Platform:
    """Names, ARNs and ids of what :func:`build_platform` made."""

    scenario: str
    region: str
    vpc_id: str
    public_subnet_ids: list[str]
    private_subnet_ids: list[str]
    security_groups: dict[str, str]  # role (alb, api, mlflow, db) -> group id
    load_balancers: dict[str, LoadBalancer]  # name -> load balancer
    target_groups: dict[str, str]  # ECS service name -> target group ARN
    target_group_names: dict[str, str]  # ECS service name -> target group name
    targets: dict[str, list[str]]  # ECS service name -> registered task IPs
    rules: dict[str, str]  # route name -> rule ARN on the registry's HTTPS listener
    zone_id: str
    record_name: str
    rds_endpoint: str
    rds_port: int
    certificate_arn: str
    ecs: Any = None  # platform_ecs.EcsPlatform when the ECS half was built

    @property
    def subnet_ids(self) -> list[str]:
        return self.private_subnet_ids

    @property
    def registry_lb(self) -> LoadBalancer:
        return self.load_balancers[_registry_lb_name(self.load_balancers)]


def _registry_lb_name(names: Any) -> str:
    names = list(names)
    return next((n for n in names if "registry" in n), names[-1])


class _Clients:
    def __init__(self, session: boto3.Session, endpoint_url: str | None) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self._made: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._made:
            kwargs = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
            self._made[service] = self.session.client(service, **kwargs)
        return self._made[service]


# -- the healthy build -------------------------------------------------------------------------


def build_platform(
    session: boto3.Session,
    env: Environment,
    *,
    scenario: str = "healthy",
    endpoint_url: str | None = None,
    ecs: bool = True,
    runtime_scenarios: tuple[str, ...] = (),
    upstream_variables: tuple[str, ...] = ("MLFLOW_SERVER_URL", "MLFLOW_TRACKING_URI"),
) -> Platform:
    """Build the seed's topology for ``env`` in moto, then apply ``scenario``.

    Args:
        session: a writable boto3 session (the sandbox's, never the diagnostics' read-only one).
        env: the environment from hokusai.yml.
        scenario: a key of :data:`SCENARIOS`.
        endpoint_url: a moto server's URL; None uses boto3's own chain (``AWS_ENDPOINT_URL``).
        ecs: also build the ECS half (about half the build time); tests of the edge hops
            may leave it out.
        runtime_scenarios: scenarios that break the running services rather than AWS (the
            sandbox's); AWS is built healthy for them, with logs that tell their story.
        upstream_variables: where the API's task definition keeps MLflow's URL.

    Raises:
        KeyError: an unknown scenario (the message lists the known ones).
    """
    scenarios = [*all_scenarios(), *runtime_scenarios]
    if scenario not in scenarios:
        raise KeyError(f"unknown scenario {scenario!r}; known: {', '.join(scenarios)}")
    aws = _Clients(session, endpoint_url)
    platform = _build_healthy(aws, env, scenario)
    ecs_module = _ecs_module()
    if ecs and ecs_module is not None and env.ecs is not None:
        platform.ecs = ecs_module.build_ecs(
            _EndpointSession(session, endpoint_url),
            env,
            platform,
            scenario,
            upstream_variables=upstream_variables,
        )
    if scenario in _BREAKS:
        _BREAKS[scenario](aws, env, platform)
    return platform


class _EndpointSession:
    """A session whose clients go to ``endpoint_url``, for build_ecs (it takes a session)."""

    def __init__(self, session: boto3.Session, endpoint_url: str | None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url

    def client(self, service: str, **kwargs: Any) -> Any:
        if self._endpoint_url:
            kwargs.setdefault("endpoint_url", self._endpoint_url)
        return self._session.client(service, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _ecs_module() -> Any:
    try:
        return importlib.import_module("bot.sandbox.platform_ecs")
    except ModuleNotFoundError as exc:
        if exc.name != "bot.sandbox.platform_ecs":
            raise
        return None


def _build_healthy(aws: _Clients, env: Environment, scenario: str) -> Platform:
    region = env.region
    vpc_id = aws.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    _tag(aws, vpc_id, "hokusai-development")
    public, private = [], []
    for i, az in enumerate("ab"):
        public.append(_subnet(aws, vpc_id, f"10.0.{i}.0/24", f"{region}{az}", "public"))
        private.append(_subnet(aws, vpc_id, f"10.0.{10 + i}.0/24", f"{region}{az}", "private"))
    groups = _security_groups(aws, env, vpc_id)

    certificate_arn = _certificate(aws, env)
    target_groups, tg_names, targets = _target_groups(aws, env, vpc_id, private)
    internal = _internal_load_balancer(env, scenario)
    lbs = {
        name: _load_balancer(
            aws, name, public, groups["alb"], certificate_arn, internal=name == internal
        )
        for name in env.load_balancers
    }
    rules = _registry_rules(aws, env, lbs, target_groups) if lbs else {}
    zone_id, record = _dns_record(aws, env, lbs)
    endpoint, port = _database(aws, env, private, groups["db"])
    return Platform(
        scenario=scenario,
        region=region,
        vpc_id=vpc_id,
        public_subnet_ids=public,
        private_subnet_ids=private,
        security_groups=groups,
        load_balancers=lbs,
        target_groups=target_groups,
        target_group_names=tg_names,
        targets=targets,
        rules=rules,
        zone_id=zone_id,
        record_name=record,
        rds_endpoint=endpoint,
        rds_port=port,
        certificate_arn=certificate_arn,
    )


def _tag(aws: _Clients, resource: str, name: str) -> None:
    aws.ec2.create_tags(Resources=[resource], Tags=[{"Key": "Name", "Value": name}])


def _subnet(aws: _Clients, vpc_id: str, cidr: str, az: str, tier: str) -> str:
    subnet = aws.ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az)
    subnet_id = subnet["Subnet"]["SubnetId"]
    _tag(aws, subnet_id, f"hokusai-development-{tier}-{az[-1]}")
    return subnet_id


def _service_port(env: Environment, kind: str, default: int) -> int:
    for service in env.ecs.services if env.ecs else []:
        if service.is_mlflow == (kind == "mlflow"):
            return service.port
    return default


def _security_groups(aws: _Clients, env: Environment, vpc_id: str) -> dict[str, str]:
    """Groups by role, with the ingress the seed's path needs."""
    groups = {}
    for role in ("alb", "api", "mlflow", "db"):
        groups[role] = aws.ec2.create_security_group(
            GroupName=f"hokusai-{role}-development",
            Description=f"hokusai {role} (development)",
            VpcId=vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [
                        {"Key": "Name", "Value": f"hokusai-{role}-development"},
                        {"Key": "role", "Value": role},
                    ],
                }
            ],
        )["GroupId"]
    api_port = _service_port(env, "api", 8001)
    mlflow_port = _service_port(env, "mlflow", 5000)
    world = [{"CidrIp": "0.0.0.0/0", "Description": "the internet"}]

    def allow(dest: str, port: int, source: str | None = None) -> None:
        permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
        if source:
            permission["UserIdGroupPairs"] = [{"GroupId": groups[source]}]
        else:
            permission["IpRanges"] = world
        aws.ec2.authorize_security_group_ingress(GroupId=groups[dest], IpPermissions=[permission])

    allow("alb", 80)
    allow("alb", 443)
    allow("api", api_port, "alb")
    allow("mlflow", mlflow_port, "alb")
    allow("mlflow", mlflow_port, "api")
    allow("db", DB_PORT, "mlflow")
    return groups


def _certificate(aws: _Clients, env: Environment) -> str:
    """An ACM certificate for the public hostname (the HTTPS listeners need one)."""
    try:
        return aws.acm.request_certificate(
            DomainName=env.public.hostname,
            ValidationMethod="DNS",
            SubjectAlternativeNames=[f"*.{env.public.hosted_zone or env.public.hostname}"],
        )["CertificateArn"]
    except ClientError:
        account = aws.sts.get_caller_identity()["Account"]
        return f"arn:aws:acm:{env.region}:{account}:{ACCOUNT_CERTIFICATE}"


def _target_groups(
    aws: _Clients, env: Environment, vpc_id: str, private: list[str]
) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    arns, names, targets = {}, {}, {}
    routed = {r.service for r in env.routes}
    for index, service in enumerate(env.ecs.services if env.ecs else []):
        if service.name not in routed:
            continue  # reached only through another service (a proxy), not a load balancer
        name = f"{service.name}-tg"[:32]
        arn = aws.elbv2.create_target_group(
            Name=name,
            Protocol="HTTP",
            Port=service.port,
            VpcId=vpc_id,
            TargetType="ip",
            HealthCheckProtocol="HTTP",
            HealthCheckPath="/health",
            Matcher={"HttpCode": "200"},
        )["TargetGroups"][0]["TargetGroupArn"]
        # Fargate tasks in the private subnets: two for the API, one for MLflow.
        ips = [f"10.0.{10 + n}.{20 + index * 10 + n}" for n in range(1 if service.is_mlflow else 2)]
        aws.elbv2.register_targets(
            TargetGroupArn=arn, Targets=[{"Id": ip, "Port": service.port} for ip in ips]
        )
        arns[service.name], names[service.name], targets[service.name] = arn, name, ips
    return arns, names, targets


def _internal_load_balancer(env: Environment, scenario: str) -> str | None:
    """dns-internal with two load balancers: the one that is not the registry's is internal."""
    if scenario != "dns-internal" or len(env.load_balancers) < 2:
        return None
    registry = _registry_lb_name(env.load_balancers)
    return next(n for n in env.load_balancers if n != registry)


def _load_balancer(
    aws: _Clients,
    name: str,
    subnets: list[str],
    group: str,
    certificate_arn: str,
    *,
    internal: bool = False,
) -> LoadBalancer:
    lb = aws.elbv2.create_load_balancer(
        Name=name,
        Subnets=subnets,
        SecurityGroups=[group],
        Scheme="internal" if internal else "internet-facing",
        Type="application",
        IpAddressType="ipv4",
    )["LoadBalancers"][0]
    arn = lb["LoadBalancerArn"]
    redirect = {
        "Type": "redirect",
        "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
    }
    http = aws.elbv2.create_listener(
        LoadBalancerArn=arn, Protocol="HTTP", Port=80, DefaultActions=[redirect]
    )["Listeners"][0]["ListenerArn"]
    not_found = {
        "Type": "fixed-response",
        "FixedResponseConfig": {
            "StatusCode": "404",
            "ContentType": "text/plain",
            "MessageBody": "Not Found",
        },
    }
    https = aws.elbv2.create_listener(
        LoadBalancerArn=arn,
        Protocol="HTTPS",
        Port=443,
        SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
        Certificates=[{"CertificateArn": certificate_arn}],
        DefaultActions=[not_found],
    )["Listeners"][0]["ListenerArn"]
    return LoadBalancer(
        name=name,
        arn=arn,
        dns_name=lb["DNSName"],
        zone_id=lb["CanonicalHostedZoneId"],
        listeners={80: http, 443: https},
    )


def _forward(target_group_arn: str) -> list[dict[str, Any]]:
    return [{"Type": "forward", "TargetGroupArn": target_group_arn}]


def _registry_rules(
    aws: _Clients, env: Environment, lbs: dict[str, LoadBalancer], target_groups: dict[str, str]
) -> dict[str, str]:
    """Each configured route as a path rule on the registry's HTTPS listener (100, 200, ...)."""
    listener = lbs[_registry_lb_name(lbs)].listeners[443]
    rules = {}
    for n, route in enumerate(env.routes, start=1):
        if route.service not in target_groups:
            continue
        rules[route.name] = aws.elbv2.create_rule(
            ListenerArn=listener,
            Priority=100 * n,
            Conditions=[
                {"Field": "host-header", "HostHeaderConfig": {"Values": [env.public.hostname]}},
                {"Field": "path-pattern", "PathPatternConfig": {"Values": [route.path]}},
            ],
            Actions=_forward(target_groups[route.service]),
        )["Rules"][0]["RuleArn"]
    # The main load balancer sends everything to the API (api.hokus.ai in the real platform).
    api = next((s.name for s in env.ecs.services if not s.is_mlflow), None) if env.ecs else None
    for name, lb in lbs.items():
        if name != _registry_lb_name(lbs) and api in target_groups:
            aws.elbv2.modify_listener(
                ListenerArn=lb.listeners[443], DefaultActions=_forward(target_groups[api])
            )
    return rules


def _public_zone(aws: _Clients, zone_name: str) -> str:
    zone = aws.route53.create_hosted_zone(
        Name=zone_name,
        CallerReference=f"hokusai-{zone_name}",
        HostedZoneConfig={"Comment": "public zone", "PrivateZone": False},
    )
    return zone["HostedZone"]["Id"].rsplit("/", 1)[-1]


def _alias(aws: _Clients, zone_id: str, record: str, lb_dns: str, lb_zone: str) -> None:
    aws.route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": record,
                        "Type": "A",
                        "AliasTarget": {
                            "HostedZoneId": lb_zone,
                            "DNSName": f"dualstack.{lb_dns}.",
                            "EvaluateTargetHealth": True,
                        },
                    },
                }
            ]
        },
    )


def _dns_record(aws: _Clients, env: Environment, lbs: dict[str, LoadBalancer]) -> tuple[str, str]:
    zone_name = env.public.hosted_zone or env.public.hostname.split(".", 1)[-1]
    zone_id = _public_zone(aws, zone_name)
    record = env.public.hostname.rstrip(".") + "."
    if lbs:
        lb = lbs[_registry_lb_name(lbs)]
        _alias(aws, zone_id, record, lb.dns_name, lb.zone_id)
    return zone_id, record


def _database(aws: _Clients, env: Environment, subnets: list[str], group: str) -> tuple[str, int]:
    if env.database is None:
        return "", 0
    aws.rds.create_db_subnet_group(
        DBSubnetGroupName="hokusai-development",
        DBSubnetGroupDescription="hokusai development databases",
        SubnetIds=subnets,
    )
    db = aws.rds.create_db_instance(
        DBInstanceIdentifier=env.database.rds_instance,
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        EngineVersion="15.7",
        DBName="mlflow",
        MasterUsername="mlflow",
        # moto wants a password; a throwaway shape that no scanner mistakes for a secret.
        MasterUserPassword="sandbox-" + "placeholder",
        AllocatedStorage=20,
        DBSubnetGroupName="hokusai-development",
        VpcSecurityGroupIds=[group],
        Port=DB_PORT,
        PubliclyAccessible=False,
    )["DBInstance"]
    endpoint = db.get("Endpoint") or {}
    return endpoint.get("Address", ""), int(endpoint.get("Port", DB_PORT))


# -- the breaks ------------------------------------------------------------------------------


def _seed_outage(aws: _Clients, env: Environment, platform: Platform) -> None:
    """The migration's catch-all: /api/* to the API service at priority 10, above the MLflow
    rules, so /api/2.0/mlflow/* reaches FastAPI, which answers {"detail":"Not Found"}."""
    api = next(s.name for s in env.ecs.services if not s.is_mlflow)
    aws.elbv2.create_rule(
        ListenerArn=platform.registry_lb.listeners[443],
        Priority=10,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
        Actions=_forward(platform.target_groups[api]),
    )


def _shadowed_rule(aws: _Clients, env: Environment, platform: Platform) -> None:
    """A broad /api/* rule to MLflow at priority 10 shadows the API's /api/mlflow/* rule."""
    mlflow = next(s.name for s in env.ecs.services if s.is_mlflow)
    aws.elbv2.create_rule(
        ListenerArn=platform.registry_lb.listeners[443],
        Priority=10,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
        Actions=_forward(platform.target_groups[mlflow]),
    )


def _rule_missing(aws: _Clients, env: Environment, platform: Platform) -> None:
    """The rule of the route that reaches MLflow (directly if one does) is gone: the
    listener's fixed 404 answers those paths."""
    route = routed_mlflow_route(env)
    aws.elbv2.delete_rule(RuleArn=platform.rules.pop(route.name))


def routed_mlflow_route(env: Environment) -> Any:
    """The route that sends MLflow's paths to MLflow directly, else the first proxy route."""
    direct = [r for r in env.routes if getattr(env.service(r.service), "is_mlflow", False)]
    return (direct or list(env.routes))[0]


def _dns_stale(aws: _Clients, env: Environment, platform: Platform) -> None:
    """The record still aliases the load balancer the migration replaced and deleted."""
    old = aws.elbv2.create_load_balancer(
        Name="hokusai-registry-legacy",
        Subnets=platform.public_subnet_ids,
        SecurityGroups=[platform.security_groups["alb"]],
        Scheme="internet-facing",
    )["LoadBalancers"][0]
    _alias(
        aws, platform.zone_id, platform.record_name, old["DNSName"], old["CanonicalHostedZoneId"]
    )
    aws.elbv2.delete_load_balancer(LoadBalancerArn=old["LoadBalancerArn"])


def _no_listener(aws: _Clients, env: Environment, platform: Platform) -> None:
    """The main load balancer lost its HTTPS listener."""
    main = next(
        lb for name, lb in platform.load_balancers.items() if lb is not platform.registry_lb
    )
    aws.elbv2.delete_listener(ListenerArn=main.listeners.pop(443))


def _lb_missing(aws: _Clients, env: Environment, platform: Platform) -> None:
    """The main load balancer was deleted (the registry's record does not use it)."""
    main = next(lb for lb in platform.load_balancers.values() if lb is not platform.registry_lb)
    aws.elbv2.delete_load_balancer(LoadBalancerArn=main.arn)
    del platform.load_balancers[main.name]


def _unhealthy_targets(aws: _Clients, env: Environment, platform: Platform) -> None:
    """MLflow's target fails its health check (``/health`` answers 404)."""
    mlflow = next(s.name for s in env.ecs.services if s.is_mlflow)
    arn = platform.target_groups[mlflow]
    if not set_target_health(
        aws.sts,
        env.region,
        arn,
        "unhealthy",
        "Target.ResponseCodeMismatch",
        "Health checks failed with these codes: [404]",
    ):
        ips = platform.targets[mlflow]
        aws.elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": ip} for ip in ips])


def _dns_internal(aws: _Clients, env: Environment, platform: Platform) -> None:
    """The public name aliases an internal-scheme load balancer (the internet cannot reach
    it). With two configured load balancers the other one was built internal; with one, an
    unconfigured internal load balancer is made for the record to point at."""
    internal = _internal_load_balancer(env, "dns-internal")
    if internal is not None:
        target = platform.load_balancers[internal]
        _alias(aws, platform.zone_id, platform.record_name, target.dns_name, target.zone_id)
        return
    lb = aws.elbv2.create_load_balancer(
        Name=f"{env.load_balancers[0]}-int"[:32],
        Subnets=platform.private_subnet_ids,
        SecurityGroups=[platform.security_groups["alb"]],
        Scheme="internal",
    )["LoadBalancers"][0]
    _alias(aws, platform.zone_id, platform.record_name, lb["DNSName"], lb["CanonicalHostedZoneId"])


def _sg_alb_blocked(aws: _Clients, env: Environment, platform: Platform) -> None:
    """The security group of the service the MLflow route lands on no longer admits the load
    balancer: health checks time out (Target.Timeout), requests get the ALB's 504."""
    service = env.service(routed_mlflow_route(env).service)
    role = "mlflow" if service.is_mlflow else "api"
    aws.ec2.revoke_security_group_ingress(
        GroupId=platform.security_groups[role],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": service.port,
                "ToPort": service.port,
                "UserIdGroupPairs": [{"GroupId": platform.security_groups["alb"]}],
            }
        ],
    )
    arn = platform.target_groups.get(service.name)
    if arn:
        set_target_health(
            aws.sts,
            env.region,
            arn,
            "unhealthy",
            "Target.Timeout",
            "Request timed out",
        )


def _db_stopped(aws: _Clients, env: Environment, platform: Platform) -> None:
    """Someone stopped the database to save money."""
    aws.rds.stop_db_instance(DBInstanceIdentifier=env.database.rds_instance)


def _db_missing(aws: _Clients, env: Environment, platform: Platform) -> None:
    """The database hokusai.yml names does not exist (renamed in the migration)."""
    aws.rds.delete_db_instance(
        DBInstanceIdentifier=env.database.rds_instance, SkipFinalSnapshot=True
    )


_BREAKS: dict[str, Callable[[_Clients, Environment, Platform], None]] = {
    "seed-outage": _seed_outage,
    "shadowed-rule": _shadowed_rule,
    "rule-missing": _rule_missing,
    "dns-stale": _dns_stale,
    "no-listener": _no_listener,
    "lb-missing": _lb_missing,
    "unhealthy-targets": _unhealthy_targets,
    "db-stopped": _db_stopped,
    "dns-internal": _dns_internal,
    "sg-alb-blocked": _sg_alb_blocked,
    "db-missing": _db_missing,
}

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", "Everything as designed: every route reaches its service.", None),
        Scenario(
            "seed-outage",
            "The migration added /api/* -> the API service at priority 10 on the registry "
            "listener: /api/2.0/mlflow/* reaches FastAPI, which answers 404 "
            '{"detail":"Not Found"}.',
            "routing",
            "configuration",
            "routing.listener-rules[mlflow-direct]",
            "routing.listener-rules[{mlflow_route}]",
        ),
        Scenario(
            "shadowed-rule",
            "A broad /api/* -> MLflow rule at priority 10 shadows the API's /api/mlflow/* rule.",
            "routing",
            "configuration",
            "routing.listener-rules[mlflow-proxy]",
            "routing.listener-rules[{proxy_route}]",
        ),
        Scenario(
            "rule-missing",
            "The rule of the route that reaches MLflow is gone; the listener's fixed 404 "
            "answers those paths.",
            "routing",
            "configuration",
            "routing.listener-rules[mlflow-direct]",
            "routing.listener-rules[{routed_mlflow}]",
        ),
        Scenario(
            "dns-stale",
            "The public name still aliases a deleted load balancer.",
            "dns",
            "configuration",
            "dns.route53-alias",
            "dns.route53-alias",
        ),
        Scenario(
            "dns-internal",
            "The public name aliases an internal-scheme load balancer and resolves to private "
            "addresses: nobody on the internet reaches it.",
            "dns",
            "configuration",
            "dns.resolve",
            "dns.route53-alias",
        ),
        Scenario(
            "no-listener",
            "The main load balancer has no HTTPS listener.",
            "edge",
            "configuration",
            "edge.load-balancer[hokusai-main-development]",
            "edge.load-balancer[{main_lb}]",
        ),
        Scenario(
            "lb-missing",
            "The main load balancer was deleted.",
            "edge",
            "infrastructure",
            "edge.load-balancer[hokusai-main-development]",
            "edge.load-balancer[{main_lb}]",
        ),
        Scenario(
            "unhealthy-targets",
            "MLflow's target fails its health check (Target.ResponseCodeMismatch).",
            "targets",
            "infrastructure",
            "targets.health[mlflow-direct]",
            "targets.health[{mlflow_route}]",
        ),
        Scenario(
            "sg-alb-blocked",
            "The security group of the service the MLflow route lands on no longer admits the "
            "load balancer: targets time out (Target.Timeout), requests get the ALB's 504.",
            "targets",
            "infrastructure",
            "targets.health[mlflow-direct]",
            "network.security-groups",
        ),
        Scenario(
            "db-stopped",
            "The RDS instance is stopped; MLflow answers 503 TEMPORARILY_UNAVAILABLE.",
            "data",
            "infrastructure",
            "data.rds",
            "data.rds",
        ),
        Scenario(
            "db-missing",
            "The RDS instance hokusai.yml names does not exist.",
            "data",
            "configuration",
            "data.rds",
            "data.rds",
        ),
    )
}


def all_scenarios() -> dict[str, Scenario]:
    """These scenarios plus the ECS half's (``platform_ecs.ECS_SCENARIOS``) when present."""
    merged = dict(SCENARIOS)
    ecs_module = _ecs_module()
    for name, ecs_scenario in getattr(ecs_module, "ECS_SCENARIOS", {}).items():
        merged.setdefault(
            name,
            Scenario(
                name,
                ecs_scenario.description,
                ecs_scenario.first_failing_layer,
                getattr(ecs_scenario, "classification", None),
                getattr(ecs_scenario, "first_failing_check", None),
                getattr(ecs_scenario, "cause_check", None),
            ),
        )
    return merged
