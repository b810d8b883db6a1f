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

import boto3
import httpx
import yaml

from bot.config import Environment, HokusaiConfig, parse_config
from bot.diagnosis.checks.routing import ListenerRule, Probe, evaluate, sort_rules
from bot.sandbox import controls, fakes
from bot.sandbox.dns_server import DnsServer
from bot.sandbox.environ import EnvironPatch
from bot.sandbox.mlflow_server import MlflowServer
from bot.sandbox.platform import Platform, all_scenarios, build_platform
from bot.sandbox.proxy import FixedResponse, LoadBalancerProxy, ProxyRule
from bot.sandbox.upstreams import ApiService

REPO = Path(__file__).resolve().parent.parent.parent
PUBLIC_HOSTNAME = "registry.hokus.ai"
REGION = "us-east-1"
# The edge re-reads moto's rules at most this often: a changed rule takes effect within it.
RULES_TTL = 0.5


@dataclass(frozen=True)
class Runtime:
    """How a scenario changes the running stand-ins (the AWS side is ``build_platform``'s)."""

    accept_auth: str = "bearer"
    mlflow_reachable_from_api: bool = True
    allowed_hosts_include_public: bool = True
    # A task of the API service left registered in MLflow's target group: every other
    # request to MLflow's paths reaches FastAPI, which answers 404.
    stale_mlflow_target: bool = False


RUNTIMES: dict[str, Runtime] = {
    # The proxy reads the key from X-API-Key only: a valid key sent the documented way
    # (Authorization: Bearer) gets "API key required".
    "auth-header": Runtime(accept_auth="x-api-key"),
    "mlflow-down": Runtime(mlflow_reachable_from_api=False),
    "bad-allowed-hosts": Runtime(allowed_hosts_include_public=False),
    "stale-discovery": Runtime(mlflow_reachable_from_api=False),
    "intermittent": Runtime(stale_mlflow_target=True),
}

# Scenarios only the sandbox knows (no AWS change): name -> (description, layer, class, check).
SANDBOX_SCENARIOS: dict[str, tuple[str, str, str, str]] = {
    "intermittent": (
        "One of MLflow's two targets is a stale API task: the load balancer's round robin "
        'sends every other request for /api/2.0/mlflow/* there, and it answers 404 {"detail":'
        '"Not Found"}. A single diagnose can pass by luck.',
        "app",
        "configuration",
        "app.route-probe[mlflow-direct]",
    ),
    "auth-header": (
        "The API service reads the key from X-API-Key only: a valid key sent as "
        "Authorization: Bearer, as documented, gets 'API key required'.",
        "auth",
        "configuration",
        "auth.api-key[mlflow-proxy]",
    ),
}


def scenario_names() -> list[str]:
    return [*all_scenarios(), *SANDBOX_SCENARIOS]


def expected_first_failure(scenario: str) -> tuple[str | None, str | None]:
    """(layer, classification) a diagnosis must name first in ``scenario``."""
    if scenario in SANDBOX_SCENARIOS:
        _, layer, classification, _ = SANDBOX_SCENARIOS[scenario]
        return layer, classification
    known = all_scenarios()[scenario]
    return known.first_failing_layer, known.classification


def describe(scenario: str) -> str:
    if scenario in SANDBOX_SCENARIOS:
        return SANDBOX_SCENARIOS[scenario][0]
    return all_scenarios()[scenario].description


def environment_template() -> dict[str, Any]:
    """The development environment of the repository's hokusai.yml, as data."""
    return yaml.safe_load((REPO / "hokusai.yml").read_text())


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
    """Routes a request the way the registry load balancer's listener rules say, read from
    moto; a target group with no healthy target gets the ELB's own 503."""

    def __init__(self, session: boto3.Session, endpoint: str, platform: Platform) -> None:
        self._elbv2 = session.client("elbv2", endpoint_url=endpoint)
        self._platform = platform
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
                    raw = self._elbv2.describe_rules(ListenerArn=listener)["Rules"]
                    rules = sort_rules([ListenerRule.from_api(r) for r in raw])
                except self._elbv2.exceptions.ListenerNotFoundException:
                    rules = []
            healthy: dict[str, list[str]] = {}
            for arn in self._service_by_tg:
                try:
                    states = self._elbv2.describe_target_health(TargetGroupArn=arn)
                    healthy[arn] = [
                        d["Target"]["Id"]
                        for d in states["TargetHealthDescriptions"]
                        if d["TargetHealth"]["State"] == "healthy"
                    ]
                except Exception:
                    healthy[arn] = []
            self._cached = (now, rules, healthy)
            return rules, healthy

    def __call__(self, method: str, path: str) -> ProxyRule | None:
        rules, healthy = self._rules()
        rule = evaluate(rules, Probe(host=PUBLIC_HOSTNAME, path=path, method=method))
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
            if not healthy.get(forward.target_group_arn):
                return ProxyRule(path, fixed=_ELB_503, name=rule.label)
            if service and service in self.upstreams:
                targets = healthy[forward.target_group_arn]
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
        mlflow: a running MLflow server to share (tests start one per session); one is started
            otherwise.
        workdir: where the MLflow store, hokusai.yml and the bot's database go.
    """

    def __init__(
        self,
        scenario: str = "seed-outage",
        *,
        mlflow: MlflowServer | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        if scenario not in scenario_names():
            raise KeyError(f"unknown scenario {scenario!r}; known: {', '.join(scenario_names())}")
        self.scenario = scenario
        self.runtime = RUNTIMES.get(scenario, Runtime())
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hokusai-sandbox-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._shared_mlflow = mlflow
        self.mlflow: MlflowServer | None = mlflow
        self.api_key = fakes.hokusai_key()
        self.moto: MotoServer | None = None
        self.dns: DnsServer | None = None
        self.api: ApiService | None = None
        self.edge: LoadBalancerProxy | None = None
        self.platform: Platform | None = None
        self.config: HokusaiConfig | None = None
        self._environ = EnvironPatch()
        self._holds_lock = False

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
        if self.mlflow is None:
            hosts = ["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"]
            if self.runtime.allowed_hosts_include_public:
                hosts.insert(0, PUBLIC_HOSTNAME)
            self.mlflow = MlflowServer(self.workdir / "mlflow", allowed_hosts=hosts)
            (self.workdir / "mlflow").mkdir(parents=True, exist_ok=True)
            self.mlflow.start()
            self.mlflow.seed()
        self.moto = MotoServer().start()
        self._point_aws_at(self.moto.url)
        self.api = ApiService(
            api_keys=[self.api_key],
            accept_auth=self.runtime.accept_auth,
            mlflow_url=self.mlflow.url if self.runtime.mlflow_reachable_from_api else None,
        ).start()
        self.dns = DnsServer({PUBLIC_HOSTNAME: ["127.0.0.1"]}).start()
        self.edge = LoadBalancerProxy().start()
        # The load balancer keeps the client's Host; clients reach the edge by its loopback
        # address, so it presents the public name upstream as real traffic would.
        self.edge.rewrite_host(PUBLIC_HOSTNAME)
        self.config = self._build_config()
        session = boto3.Session(region_name=REGION)
        self.platform = build_platform(
            session,
            self.env,
            scenario=self.scenario,
            runtime_scenarios=tuple(SANDBOX_SCENARIOS),
            endpoint_url=self.moto.url,
        )
        router = EdgeRouter(session, self.moto.url, self.platform)
        for service in self.env.ecs.services if self.env.ecs else []:
            router.upstreams[service.name] = self.mlflow.url if service.is_mlflow else self.api.url
        if self.runtime.stale_mlflow_target:
            self._register_stale_target(router)
        self.edge.router = router
        (self.workdir / "hokusai.yml").write_text(
            yaml.safe_dump(self.config.model_dump(mode="json", exclude_none=True), sort_keys=False)
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

    def _point_aws_at(self, url: str) -> None:
        values = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "HOKUSAI_API_KEY": self.api_key,
        }
        self._environ.set(**values)
        self._environ.unset("AWS_PROFILE", "AWS_SESSION_TOKEN")

    def _build_config(self) -> HokusaiConfig:
        assert self.edge and self.dns
        data = environment_template()
        env = data["environments"][data["default_env"]]
        env["public"]["base_url"] = self.edge.url
        # Clients reach the edge on a loopback port; the load balancer sees its HTTPS listener.
        env["public"]["listener_port"] = 443
        env["dns"] = {"nameservers": [self.dns.address]}
        env["mlflow"] = {"tracking_uri": self.edge.url + "/api/mlflow"}
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
        if self.platform is not None and self.platform.ecs is not None:
            planted += list(self.platform.ecs.planted_secrets.values())
        return planted

    def stop(self) -> None:
        for part in (self.edge, self.api, self.dns):
            if part is not None:
                part.stop()
        if self.moto is not None:
            self.moto.stop()
        if self.mlflow is not None and self.mlflow is not self._shared_mlflow:
            self.mlflow.stop()
        self._environ.restore()
        self.edge = self.api = self.dns = self.moto = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._holds_lock:
            self._holds_lock = False
            _ONE_PER_PROCESS.release()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
