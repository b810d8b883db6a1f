"""The whole Hokusai platform on one machine, on loopback: ``Sandbox``.

- AWS in moto's threaded server (``build_platform``: VPC, load balancers and rules, target
  groups, ECS, Cloud Map, RDS, Route 53, CloudWatch Logs, ALB access logs);
- a DNS server answering ``registry.hokus.ai``;
- an "edge" standing in for the load balancer that routes every request by the listener rules
  it reads back from moto, so changing a rule changes the traffic;
- upstreams: the API service stand-in and a real MLflow server with a registered model.

A scenario breaks it one of the ways the seed outage describes. Everything binds 127.0.0.1 on
free ports and stops with ``stop()``; two sandboxes can run at once.

Example::

    with Sandbox("seed-outage") as sandbox:
        report = asyncio.run(Runner(sandbox.env).run())
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import yaml

from bot.config import Environment, HokusaiConfig, parse_config
from bot.diagnosis.checks.routing import ListenerRule, Probe, evaluate, sort_rules
from bot.sandbox import controls, fakes
from bot.sandbox.aws_gateway import AwsGateway
from bot.sandbox.dns_server import DnsServer
from bot.sandbox.environ import EnvironPatch
from bot.sandbox.mlflow_database import DATABASE_SCENARIOS, DatabaseBackedMlflow, postgres_available
from bot.sandbox.mlflow_server import MlflowServer
from bot.sandbox.platform import Platform, Scenario, all_scenarios, build_platform
from bot.sandbox.proxy import FixedResponse, LoadBalancerProxy, ProxyRule
from bot.sandbox.shapes import SHAPES, Shape
from bot.sandbox.upstreams import ApiService, Blackhole, closed_port_url

REPO = Path(__file__).resolve().parent.parent.parent
PUBLIC_HOSTNAME = "registry.hokus.ai"
REGION = "us-east-1"
# The edge re-reads moto's rules at most this often: a changed rule takes effect within it.
RULES_TTL = 0.5
# How long the edge and the API wait for an upstream that a security group silently drops.
# (An ALB's connect timeout is 10 s; shorter here so runs stay quick.)
EDGE_UPSTREAM_TIMEOUT = 3.0
API_UPSTREAM_TIMEOUT = 2.0
# aws-access-denied: the read the bot's role is not given.
DENIED_ACTION = "elasticloadbalancing:DescribeRules"


@dataclass(frozen=True)
class Runtime:
    """How a scenario changes the running stand-ins (the AWS side is ``build_platform``'s).

    ``api_upstream``: where the API's proxy really reaches MLflow — ``mlflow`` (it works),
    ``closed`` (nothing listens: connection refused, the proxy answers 502) or ``blackhole``
    (a security group drops the packets: the proxy times out). ``edge_to_routed``: the same
    for the load balancer's connection to the service the MLflow route lands on.
    """

    accept_auth: str | None = None  # None: the shape's way
    api_upstream: str = "mlflow"
    edge_to_routed: str = "open"
    api_upstream_timeout: float = 10.0
    allowed_hosts_include_public: bool = True
    # A task of the API service left registered in MLflow's target group: every other
    # request to MLflow's paths reaches FastAPI, which answers 404.
    stale_mlflow_target: bool = False


RUNTIMES: dict[str, Runtime] = {
    # The proxy reads the key from X-API-Key only: a valid key sent the documented way
    # (Authorization: Bearer) gets "API key required".
    "auth-header": Runtime(accept_auth="x-api-key"),
    # A gateway that takes the key only as "Authorization: Token ..." and says so.
    "auth-scheme": Runtime(accept_auth="token"),
    "mlflow-down": Runtime(api_upstream="closed"),
    "crash-loop": Runtime(api_upstream="closed"),
    "bad-allowed-hosts": Runtime(allowed_hosts_include_public=False),
    "stale-discovery": Runtime(api_upstream="closed"),
    "proxy-upstream-wrong-port": Runtime(api_upstream="closed"),
    "sg-blocked": Runtime(api_upstream="blackhole", api_upstream_timeout=API_UPSTREAM_TIMEOUT),
    "sg-alb-blocked": Runtime(edge_to_routed="blackhole"),
    "intermittent": Runtime(stale_mlflow_target=True),
}

# Scenarios only the sandbox knows (no AWS change; the running stand-ins break).
SANDBOX_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "intermittent",
            "One of MLflow's two targets is a stale API task: the load balancer's round robin "
            "sends every other request for /api/2.0/mlflow/* there, and it answers 404 "
            '{"detail":"Not Found"}. A single diagnose can pass by luck.',
            "app",
            "configuration",
            "app.route-probe[mlflow-direct]",
            "app.route-probe[{mlflow_route}]",
        ),
        Scenario(
            "auth-header",
            "The API service reads the key from X-API-Key only: a valid key sent as "
            "Authorization: Bearer, as documented, gets 'API key required'.",
            "auth",
            "configuration",
            "auth.api-key[mlflow-proxy]",
            "auth.api-key[{proxy_route}]",
        ),
        Scenario(
            "auth-scheme",
            "The API gateway takes the key only as 'Authorization: Token ...' and answers "
            "401 with WWW-Authenticate: Token otherwise.",
            "auth",
            "configuration",
            "auth.api-key[mlflow-proxy]",
            "auth.api-key[{proxy_route}]",
        ),
    )
}


def scenarios() -> dict[str, Scenario]:
    """Every scenario by name: the platform's, then the sandbox's own."""
    return {**all_scenarios(), **SANDBOX_SCENARIOS}


def scenario_names() -> list[str]:
    return list(scenarios())


def expected_first_failure(scenario: str) -> tuple[str | None, str | None]:
    """(layer, classification) a diagnosis must name first in ``scenario``."""
    known = scenarios()[scenario]
    return known.first_failing_layer, known.classification


def expected_cause(scenario: str, shape: str = "hokusai") -> str | None:
    """The check id a diagnosis must name as the cause in ``scenario`` (None: no failure)."""
    return SHAPES[shape].fill(scenarios()[scenario].cause)


def shape_scenarios(shape: str) -> list[str]:
    """The scenarios that make sense on ``shape``."""
    return [name for name in SHAPES[shape].scenarios if name in scenarios()]


def describe(scenario: str) -> str:
    return scenarios()[scenario].description


def environment_template(shape: str = "hokusai") -> dict[str, Any]:
    """The hokusai.yml of ``shape`` (the repository's own by default), as data."""
    return SHAPES[shape].config_data()


class MotoServer:
    """moto's threaded server on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> MotoServer:
        # moto's werkzeug logs every request, and a traceback for each unimplemented call
        # (CloudTrail): the checks report those themselves.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        # moto keeps its backends per process, not per server: start from an empty account.
        httpx.post(self.url + "/moto-api/reset", timeout=10).raise_for_status()
        return self

    def stop(self) -> None:
        self._server.stop()


class EdgeRouter:
    """Routes a request the way the serving load balancer's listener rules say, read from
    moto. Like an ALB: a target group with no registered target (or only draining ones)
    gets the ELB's own 503; one whose targets are all unhealthy *fails open* and still gets
    the traffic."""

    def __init__(
        self, session: boto3.Session, endpoint: str, platform: Platform, hostname: str
    ) -> None:
        self._elbv2 = session.client("elbv2", endpoint_url=endpoint)
        self._platform = platform
        self._hostname = hostname
        self.upstreams: dict[str, str] = {}  # ECS service name -> URL
        # Registered target -> URL, for a target that is not its service (a stale task).
        self.target_upstreams: dict[str, str] = {}
        self._turn = 0  # round robin across a target group's healthy targets
        self._service_by_tg = {arn: svc for svc, arn in platform.target_groups.items()}
        self._lock = threading.Lock()
        self._cached: tuple[float, list[ListenerRule], dict[str, list[str]]] | None = None

    def _rules(self) -> tuple[list[ListenerRule], dict[str, list[str]]]:
        with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < RULES_TTL:
                return self._cached[1], self._cached[2]
            lb = self._platform.registry_lb
            listener = lb.listeners.get(443) or next(iter(lb.listeners.values()), None)
            rules: list[ListenerRule] = []
            if listener:
                try:
                    raw = self._elbv2.describe_rules(ListenerArn=listener, PageSize=400)["Rules"]
                    rules = sort_rules([ListenerRule.from_api(r) for r in raw])
                except self._elbv2.exceptions.ListenerNotFoundException:
                    rules = []
            eligible = {arn: self._eligible_targets(arn) for arn in self._service_by_tg}
            self._cached = (now, rules, eligible)
            return rules, eligible

    def _eligible_targets(self, arn: str) -> list[str]:
        """The targets that get traffic: the healthy ones; when none is healthy, every one
        not draining (an ALB fails open)."""
        try:
            states = self._elbv2.describe_target_health(TargetGroupArn=arn)
        except Exception:
            return []
        found = states["TargetHealthDescriptions"]
        healthy = [d["Target"]["Id"] for d in found if d["TargetHealth"]["State"] == "healthy"]
        return healthy or [
            d["Target"]["Id"]
            for d in found
            if d["TargetHealth"]["State"] not in ("draining", "unused")
        ]

    def __call__(self, method: str, path: str) -> ProxyRule | None:
        rules, eligible = self._rules()
        rule = evaluate(rules, Probe(host=self._hostname, path=path, method=method))
        if rule is None:
            return None
        action = rule.action
        if action.get("Type") == "fixed-response":
            config = action.get("FixedResponseConfig", {})
            return ProxyRule(
                path,
                fixed=FixedResponse(
                    status=int(config.get("StatusCode", 404)),
                    body=config.get("MessageBody", ""),
                    content_type=config.get("ContentType", "text/plain"),
                ),
                name=rule.label,
            )
        for forward in rule.forwards:
            service = self._service_by_tg.get(forward.target_group_arn)
            if not eligible.get(forward.target_group_arn):
                return ProxyRule(path, fixed=_ELB_503, name=rule.label)
            if service and service in self.upstreams:
                targets = eligible[forward.target_group_arn]
                with self._lock:
                    self._turn += 1
                    target = targets[self._turn % len(targets)]
                upstream = self.target_upstreams.get(target, self.upstreams[service])
                return ProxyRule(path, upstream=upstream, name=rule.label)
        return ProxyRule(path, fixed=_ELB_503, name=rule.label)


_ELB_503 = FixedResponse(
    status=503,
    body="<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
    "<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
    content_type="text/html",
)


_ONE_PER_PROCESS = threading.Lock()


class Sandbox:
    """The platform, broken the way ``scenario`` says. Start, use ``env``/``config``, stop.

    Args:
        scenario: a name from :func:`scenario_names`.
        shape: ``hokusai`` (the repository's hokusai.yml) or ``compact`` (see
            ``bot.sandbox.shapes``).
        mlflow: a running MLflow server to share (tests start one per session); one is started
            otherwise.
        database_mlflow: a running MLflow on a real PostgreSQL to share, for the scenarios
            that break the database (``DATABASE_SCENARIOS``); one is started for them
            otherwise, when PostgreSQL is installed. It is restored on ``stop()``.
        workdir: where the MLflow store, hokusai.yml and the bot's database go.
    """

    def __init__(
        self,
        scenario: str = "seed-outage",
        *,
        shape: str = "hokusai",
        mlflow: MlflowServer | None = None,
        database_mlflow: DatabaseBackedMlflow | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        if scenario not in scenario_names():
            raise KeyError(f"unknown scenario {scenario!r}; known: {', '.join(scenario_names())}")
        if shape not in SHAPES:
            raise KeyError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
        self.scenario = scenario
        self.shape: Shape = SHAPES[shape]
        self.runtime = RUNTIMES.get(scenario, Runtime())
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hokusai-sandbox-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._shared_mlflow = mlflow
        self.mlflow: MlflowServer | None = mlflow
        self._shared_database_mlflow = database_mlflow
        self.database_mlflow: DatabaseBackedMlflow | None = None
        if scenario in DATABASE_SCENARIOS:
            self.database_mlflow = database_mlflow
        self.api_key = fakes.hokusai_key()
        self.moto: MotoServer | None = None
        self.dns: DnsServer | None = None
        self.api: ApiService | None = None
        self.edge: LoadBalancerProxy | None = None
        self.blackhole: Blackhole | None = None
        self.aws_gateway: AwsGateway | None = None
        self.platform: Platform | None = None
        self.config: HokusaiConfig | None = None
        self._environ = EnvironPatch()
        self._holds_lock = False

    @staticmethod
    def mlflow_hosts(*, include_public: bool = True) -> list[str]:
        """The ``--allowed-hosts`` a sandbox MLflow server gets (a shared one: every shape's)."""
        hosts = ["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"]
        if include_public:
            hosts = [PUBLIC_HOSTNAME, *hosts]
        return hosts

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Sandbox:
        # moto's state and the AWS variables are per process: one sandbox at a time in it
        # (separate processes each get their own, on their own free ports).
        if not _ONE_PER_PROCESS.acquire(blocking=False):
            raise RuntimeError("a sandbox is already running in this process")
        self._holds_lock = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if (
            self.scenario in DATABASE_SCENARIOS
            and self.database_mlflow is None
            and postgres_available()
        ):
            self.database_mlflow = DatabaseBackedMlflow(
                self.workdir / "mlflow-pg", allowed_hosts=self.mlflow_hosts()
            ).start()
        if self.database_mlflow is not None:
            # The scenario breaks MLflow's database: MLflow must really use one.
            self.mlflow = self.database_mlflow.mlflow
        if self.mlflow is None:
            hosts = self.mlflow_hosts(include_public=self.runtime.allowed_hosts_include_public)
            self.mlflow = MlflowServer(self.workdir / "mlflow", allowed_hosts=hosts)
            (self.workdir / "mlflow").mkdir(parents=True, exist_ok=True)
            self.mlflow.start()
            self.mlflow.seed()
        self.moto = MotoServer().start()
        self.blackhole = Blackhole().start()
        self.edge = LoadBalancerProxy(upstream_timeout=EDGE_UPSTREAM_TIMEOUT).start()
        self.dns = DnsServer({}).start()
        self.config = self._build_config()
        env = self.env
        self._point_aws_at(self.moto.url, env.region)
        self.api = ApiService(
            api_keys=[self.api_key],
            accept_auth=self.runtime.accept_auth or self.shape.accept_auth,
            mlflow_url=self._api_upstream_url(),
            proxy_prefix=self.shape.proxy_prefix,
            upstream_timeout=self.runtime.api_upstream_timeout,
        ).start()
        self.dns.set(env.public.hostname, self._public_addresses())
        # The load balancer keeps the client's Host; clients reach the edge by its loopback
        # address, so it presents the public name upstream as real traffic would.
        self.edge.rewrite_host(env.public.hostname)
        session = boto3.Session(region_name=env.region)
        self.platform = build_platform(
            session,
            env,
            scenario=self.scenario,
            runtime_scenarios=tuple(SANDBOX_SCENARIOS),
            endpoint_url=self.moto.url,
            upstream_variables=self.shape.upstream_variables,
        )
        if self.scenario == "aws-access-denied":
            self._restrict_bot_access()
        router = EdgeRouter(session, self.moto.url, self.platform, env.public.hostname)
        for service in env.ecs.services if env.ecs else []:
            router.upstreams[service.name] = self.mlflow.url if service.is_mlflow else self.api.url
        if self.runtime.stale_mlflow_target:
            self._register_stale_target(router)
        routed = self._routed_service()
        if self.runtime.edge_to_routed == "blackhole" and routed:
            router.upstreams[routed] = self.blackhole.url
        self.edge.router = router
        if self.database_mlflow is not None:
            self.database_mlflow.break_database(self.scenario)
        (self.workdir / "hokusai.yml").write_text(
            yaml.safe_dump(
                self.config.model_dump(mode="json", exclude_unset=True, by_alias=True),
                sort_keys=False,
            )
        )

    def _register_stale_target(self, router: EdgeRouter) -> None:
        assert self.api is not None
        router.target_upstreams[controls.STALE_TARGET] = self.api.url
        controls.break_again(self)

    def fix(self) -> str:
        """Undo the scenario's breakage while it runs (``bot.sandbox.controls``); says what."""
        return controls.fix(self)

    def break_again(self) -> str:
        """Put the scenario's breakage back after a fix; says what was done."""
        return controls.break_again(self)

    def _restrict_bot_access(self) -> None:
        """aws-access-denied: the bot reaches AWS through a gateway that answers
        AccessDenied for :data:`DENIED_ACTION`, as AWS does for a role without it; the
        sandbox's own parts keep talking to moto directly."""
        assert self.moto is not None
        self.aws_gateway = AwsGateway(self.moto.url, deny={DENIED_ACTION}).start()
        self._environ.set(AWS_ENDPOINT_URL=self.aws_gateway.url)

    def _api_upstream_url(self) -> str:
        assert self.mlflow is not None and self.blackhole is not None
        if self.runtime.api_upstream == "closed":
            return closed_port_url()
        if self.runtime.api_upstream == "blackhole":
            return self.blackhole.url
        return self.mlflow.url

    def _routed_service(self) -> str | None:
        route = self.shape.roles.get("routed_mlflow")
        found = next((r for r in self.env.routes if r.name == route), None)
        return found.service if found else None

    def _public_addresses(self) -> list[str]:
        if self.scenario == "dns-internal":
            # The record aliases an internal load balancer: its addresses are private.
            return ["10.0.0.41", "10.0.1.77"]
        return list(self.shape.public_addresses)

    def _point_aws_at(self, url: str, region: str) -> None:
        values = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "HOKUSAI_API_KEY": self.api_key,
        }
        self._environ.set(**values)
        self._environ.unset("AWS_PROFILE", "AWS_SESSION_TOKEN")

    def _build_config(self) -> HokusaiConfig:
        assert self.edge and self.dns
        data = environment_template(self.shape.name)
        env = data["environments"][data["default_env"]]
        tracking_path = urlsplit(env["mlflow"]["tracking_uri"]).path
        env["public"]["base_url"] = self.edge.url
        # Clients reach the edge on a loopback port; the load balancer sees its HTTPS listener.
        env["public"]["listener_port"] = 443
        env["dns"] = {"nameservers": [self.dns.address]}
        env["mlflow"] = {"tracking_uri": self.edge.url + tracking_path}
        data["environments"] = {data["default_env"]: env}
        return parse_config(data, source="sandbox hokusai.yml")

    @property
    def env(self) -> Environment:
        assert self.config is not None, "start() the sandbox first"
        return self.config.environment()

    @property
    def config_path(self) -> Path:
        return self.workdir / "hokusai.yml"

    def planted_secrets(self) -> list[str]:
        """Every secret the sandbox put where the bot will read it (logs, task definitions)."""
        planted = [self.api_key]
        if self.database_mlflow is not None:
            planted += self.database_mlflow.secrets()
        if self.platform is not None and self.platform.ecs is not None:
            planted += list(self.platform.ecs.planted_secrets.values())
        return planted

    def stop(self) -> None:
        for part in (self.edge, self.api, self.dns, self.blackhole, self.aws_gateway):
            if part is not None:
                part.stop()
        if self.moto is not None:
            self.moto.stop()
        if self.database_mlflow is not None:
            if self.database_mlflow is self._shared_database_mlflow:
                self.database_mlflow.restore()
            else:
                self.database_mlflow.stop()
            self.mlflow = self._shared_mlflow
        if self.mlflow is not None and self.mlflow is not self._shared_mlflow:
            self.mlflow.stop()
        self._environ.restore()
        self.edge = self.api = self.dns = self.moto = self.blackhole = self.aws_gateway = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._holds_lock:
            self._holds_lock = False
            _ONE_PER_PROCESS.release()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
