"""ECS checks: services running as desired, Cloud Map instances, and task-definition config.

``compute.task-config`` reads the containers' command and environment the way the processes
will: MLflow's ``--static-prefix`` and ``--allowed-hosts`` against the routes and the public
hostname, its backend store host against the RDS endpoint, and the API's MLflow URL against
the Cloud Map names that have instances.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from bot.config import EcsService, Environment
from bot.diagnosis import cloud_map as cloud_map_reads
from bot.diagnosis.aws_cache import gather_bounded
from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check
from bot.redaction import default_redactor, secret_key_kind, shown_placeholder

_STOPPED_TASKS_SHOWN = 5
# Stopped reasons that mean the application itself exited (not capacity, image or network).
_APP_EXIT_MARKERS = ("Essential container in task exited", "OutOfMemoryError")
_MLFLOW_URL_NAMES = ("MLFLOW_TRACKING_URI", "MLFLOW_SERVER_URL", "MLFLOW_URL", "MLFLOW_UPSTREAM")
# Paths MLflow serves at the root of its static prefix.
_MLFLOW_PATH_PREFIXES = (
    "/api/2.0/",
    "/ajax-api/",
    "/static-files",
    "/health",
    "/version",
    "/graphql",
)


# -- reading ECS ----------------------------------------------------------------------------


async def describe_service(ctx: CheckContext, name: str) -> dict[str, Any] | None:
    """The ECS service ``name`` in the environment's cluster, or None when missing/inactive."""
    resp = await ctx.aws("ecs", "describe_services", cluster=ctx.env.ecs.cluster, services=[name])
    for service in resp.get("services", []):
        if service.get("status") != "INACTIVE":
            return service
    return None


async def describe_task_definition(ctx: CheckContext, arn: str) -> dict[str, Any]:
    resp = await ctx.aws("ecs", "describe_task_definition", taskDefinition=arn)
    return resp["taskDefinition"]


def env_var_names(container: dict[str, Any]) -> list[dict[str, str]]:
    """The variable names a container sets; secrets are marked, values never included."""
    names = [{"name": e["name"], "source": "environment"} for e in container.get("environment", [])]
    names += [
        {"name": s["name"], "source": "secret", "value_from": s.get("valueFrom", "")}
        for s in container.get("secrets", [])
    ]
    return sorted(names, key=lambda n: n["name"])


def container_argv(container: dict[str, Any]) -> list[str]:
    """The command as the process sees it, with ``sh -c "..."`` unwrapped."""
    argv = list(container.get("entryPoint") or []) + list(container.get("command") or [])
    if len(argv) >= 3 and argv[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and argv[1] == "-c":
        try:
            return shlex.split(argv[2])
        except ValueError:
            return argv[2].split()
    if len(argv) == 1 and " " in argv[0]:
        return argv[0].split()
    return argv


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of ``--flag value`` or ``--flag=value``; None when absent."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("environment", [])}


def main_container(td: dict[str, Any], service: EcsService) -> dict[str, Any]:
    """The container that serves ``service.port`` (else the first essential one)."""
    containers = td.get("containerDefinitions", [])
    for c in containers:
        if any(p.get("containerPort") == service.port for p in c.get("portMappings", [])):
            return c
    return next((c for c in containers if c.get("essential", True)), containers[0])


# -- compute.ecs-service --------------------------------------------------------------------


async def _stopped_tasks(ctx: CheckContext, service_name: str) -> list[dict[str, Any]]:
    cluster = ctx.env.ecs.cluster
    resp = await ctx.aws(
        "ecs", "list_tasks", cluster=cluster, serviceName=service_name, desiredStatus="STOPPED"
    )
    arns = resp.get("taskArns", [])[:100]
    if not arns:
        return []
    tasks = (await ctx.aws("ecs", "describe_tasks", cluster=cluster, tasks=arns)).get("tasks", [])
    # ECS's own filter: a service's tasks carry its group (moto ignores serviceName).
    tasks = [t for t in tasks if t.get("group") in (None, f"service:{service_name}")]
    tasks.sort(key=lambda t: str(t.get("stoppedAt") or t.get("createdAt") or ""), reverse=True)
    out = []
    for task in tasks[:_STOPPED_TASKS_SHOWN]:
        out.append(
            {
                "task": task["taskArn"].rsplit("/", 1)[-1],
                "stopped_reason": task.get("stoppedReason") or "",
                "stop_code": task.get("stopCode"),
                "stopped_at": str(task["stoppedAt"]) if task.get("stoppedAt") else None,
                "task_definition": task.get("taskDefinitionArn", "").rsplit("/", 1)[-1],
                "containers": [
                    {
                        "name": c.get("name"),
                        "exit_code": c.get("exitCode"),
                        "reason": c.get("reason"),
                    }
                    for c in task.get("containers", [])
                ],
            }
        )
    return out


def _crash_evidence(stopped: list[dict[str, Any]]) -> bool:
    for task in stopped:
        if any(marker in task["stopped_reason"] for marker in _APP_EXIT_MARKERS):
            return True
        if any((c.get("exit_code") or 0) != 0 for c in task["containers"]):
            return True
    return False


def _describe_stop(task: dict[str, Any]) -> str:
    codes = [str(c["exit_code"]) for c in task["containers"] if c.get("exit_code") is not None]
    code = f" (exit code {', '.join(codes)})" if codes else ""
    return f"{task['stopped_reason'] or 'no reason given'}{code}"


@check(
    id="compute.ecs-service",
    layer="compute",
    per="service",
    timeout=10,
    reads=[
        "ecs:DescribeServices",
        "ecs:ListTasks",
        "ecs:DescribeTasks",
        "ecs:DescribeTaskDefinition",
    ],
    description="The ECS service runs its desired tasks, its deployment is complete; "
    "recent stopped tasks and why, task-definition revision and env var names.",
)
async def ecs_service(ctx: CheckContext) -> CheckResult:
    spec = ctx.service
    if ctx.env.ecs is None or spec is None:
        return CheckResult.skipped("no ECS settings for this environment")
    service = await describe_service(ctx, spec.name)
    cluster = ctx.env.ecs.cluster
    if service is None:
        return CheckResult.failed(
            f"{spec.name} does not exist in cluster {cluster}",
            Classification.CONFIGURATION,
            hint="check ecs.cluster and the service name in hokusai.yml against the ECS console",
            cluster=cluster,
        )
    td = await describe_task_definition(ctx, service["taskDefinition"])
    container = main_container(td, spec)
    desired, running = service.get("desiredCount", 0), service.get("runningCount", 0)
    deployments = [
        {
            "status": d.get("status"),
            "rollout_state": d.get("rolloutState"),
            "task_definition": str(d.get("taskDefinition", "")).rsplit("/", 1)[-1],
            "running": d.get("runningCount"),
            "desired": d.get("desiredCount"),
            "failed_tasks": d.get("failedTasks"),
            "created_at": str(d.get("createdAt")) if d.get("createdAt") else None,
        }
        for d in service.get("deployments", [])
    ]
    stopped = await _stopped_tasks(ctx, spec.name)
    evidence = {
        "cluster": cluster,
        "desired": desired,
        "running": running,
        "pending": service.get("pendingCount", 0),
        "task_definition": f"{td['family']}:{td['revision']}",
        "image": container.get("image"),
        "env_vars": env_var_names(container),
        # The target groups its tasks register in: how a target group's health is tied to it.
        "target_groups": sorted(
            lb["targetGroupArn"].split(":targetgroup/", 1)[-1].split("/", 1)[0]
            for lb in service.get("loadBalancers", [])
            if lb.get("targetGroupArn")
        ),
        "deployments": deployments,
        "stopped_tasks": stopped,
        "events": [
            default_redactor().redact_text(e.get("message", ""))
            for e in service.get("events", [])[:5]
        ],
    }
    revision = f"{td['family']}:{td['revision']}"
    if desired == 0:
        return CheckResult.failed(
            f"{spec.name} has desired count 0: nothing serves port {spec.port}",
            Classification.CONFIGURATION,
            hint="scale the service up (desired count) or fix what scaled it to zero",
            **evidence,
        )
    if running < desired:
        crash = _crash_evidence(stopped)
        why = f"; newest stopped task: {_describe_stop(stopped[0])}" if stopped else ""
        return CheckResult.failed(
            f"{spec.name}: {running} of {desired} tasks running ({revision}){why}",
            Classification.APPLICATION if crash else Classification.INFRASTRUCTURE,
            hint=(
                f"the container exits at start-up: read the newest stream in {spec.log_group}"
                if crash
                else "tasks are not being placed: check capacity, image pulls and subnets"
            ),
            **evidence,
        )
    primary = [d for d in deployments if d["status"] == "PRIMARY"]
    rollout = primary[0]["rollout_state"] if primary else None
    if len(deployments) > 1 or rollout not in (None, "COMPLETED"):
        return CheckResult.warned(
            f"{spec.name}: {running}/{desired} running but the deployment of {revision} is "
            f"{(rollout or 'in progress').lower().replace('_', ' ')} "
            f"({len(deployments)} deployments active)",
            hint="wait for the rollout or look at its failed tasks",
            **evidence,
        )
    return CheckResult.passed(
        f"{spec.name}: {running}/{desired} tasks running {revision}, deployment complete",
        **evidence,
    )


# -- Cloud Map ------------------------------------------------------------------------------


# What the evidence lists of a namespace's other services, at most.
_OTHER_NAMES_SHOWN = 10
_CLOUD_MAP_READS = list(cloud_map_reads.READS)


@check(
    id="compute.cloud-map",
    layer="compute",
    per="service",
    timeout=10,
    reads=_CLOUD_MAP_READS,
    description="Cloud Map has registered instances for the service's `discovery` name.",
)
async def cloud_map(ctx: CheckContext) -> CheckResult:
    spec = ctx.service
    if spec is None or not spec.discovery:
        return CheckResult.skipped("no discovery name configured for this service")
    namespace = spec.discovery.split(".", 1)[1] if "." in spec.discovery else spec.discovery
    entry = await cloud_map_reads.resolve(ctx.aws, spec.discovery)
    if entry.namespace != namespace:
        return CheckResult.failed(
            f"Cloud Map namespace {namespace} does not exist, so {spec.discovery} cannot resolve",
            Classification.INFRASTRUCTURE,
            hint="the private DNS namespace was not created (or was lost in a migration)",
            discovery=spec.discovery,
        )
    if not entry.exists:
        others = [f"{name}.{namespace}" for name in entry.other_services]
        shown = others[:_OTHER_NAMES_SHOWN]
        more = len(others) - len(shown)
        return CheckResult.failed(
            f"Cloud Map has no service {spec.discovery.split('.', 1)[0]} in {namespace}",
            Classification.INFRASTRUCTURE,
            hint="the ECS service's serviceRegistries must point at a Cloud Map service",
            discovery=spec.discovery,
            known_names=shown + ([f"and {more} more"] if more else []),
        )
    if not entry.instances:
        return CheckResult.failed(
            f"{spec.discovery} has no registered instances: nothing answers that name",
            Classification.INFRASTRUCTURE,
            hint=f"no healthy {spec.name} task is registered; see compute.ecs-service",
            discovery=spec.discovery,
            service_id=entry.service_id,
        )
    return CheckResult.passed(
        f"{spec.discovery}: {len(entry.instances)} instance(s) registered",
        discovery=spec.discovery,
        service_id=entry.service_id,
        instances=entry.instances,
    )


# -- compute.task-config --------------------------------------------------------------------


@dataclass
class ConfigFinding:
    """One setting checked against what the platform needs."""

    setting: str
    status: str  # pass, warn, fail
    message: str
    found: str | None = None
    expected: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _route_prefix(path: str) -> str:
    return path.rstrip("*").rstrip("/")


def static_prefix_findings(
    env: Environment, spec: EcsService, argv: list[str]
) -> list[ConfigFinding]:
    """``--static-prefix`` against the routes that send traffic straight to MLflow."""
    prefix = flag_value(argv, "--static-prefix") or ""
    out = []
    for route in env.routes:
        if route.service != spec.name:
            continue
        probe = route.probe.split("?", 1)[0]
        route_path = _route_prefix(route.path)
        if prefix and not probe.startswith(prefix + "/"):
            out.append(
                ConfigFinding(
                    "--static-prefix",
                    "fail",
                    f"--static-prefix {prefix} moves every MLflow path under {prefix}/, but route "
                    f"{route.name} sends {route.path} to MLflow unchanged, so MLflow answers 404",
                    found=prefix,
                    expected=_needed_prefix(probe) or "(no --static-prefix)",
                )
            )
            continue
        rest = probe[len(prefix) :] if prefix else probe
        if not rest.startswith(_MLFLOW_PATH_PREFIXES):
            needed = _needed_prefix(probe)
            out.append(
                ConfigFinding(
                    "--static-prefix",
                    "fail",
                    f"route {route.name} sends {route.path} straight to MLflow, which serves "
                    f"/api/2.0/mlflow/... at {prefix or 'its root'}; requests get MLflow's 404",
                    found=prefix or "(none)",
                    expected=needed or f"a route that strips {route_path}",
                )
            )
        else:
            out.append(
                ConfigFinding(
                    "--static-prefix",
                    "pass",
                    f"route {route.name} ({route.path}) matches MLflow's paths "
                    f"{'under ' + prefix if prefix else 'at the root'}",
                    found=prefix or "(none)",
                )
            )
    return out


def _needed_prefix(probe: str) -> str | None:
    for marker in _MLFLOW_PATH_PREFIXES:
        index = probe.find(marker)
        if index > 0:
            return probe[:index]
        if index == 0:
            return None
    return None


def _allowed_hosts(argv: list[str], env_vars: dict[str, str]) -> list[str] | None:
    value = flag_value(argv, "--allowed-hosts") or env_vars.get("MLFLOW_SERVER_ALLOWED_HOSTS")
    if not value:
        return None
    return [h.strip() for h in value.split(",") if h.strip()]


def host_allowed(allowed: list[str], host: str) -> bool:
    """MLflow's own rule: exact match, or fnmatch when the entry holds ``*``."""
    import fnmatch

    if "*" in allowed:
        return True
    return any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed)


def allowed_hosts_findings(
    argv: list[str], env_vars: dict[str, str], reaching: list[tuple[str, str]]
) -> list[ConfigFinding]:
    """``--allowed-hosts`` / MLFLOW_SERVER_ALLOWED_HOSTS against the Host headers that reach
    MLflow (``reaching``: host and why it reaches MLflow, see :func:`hosts_reaching`).

    A host that never reaches MLflow is not checked: a public name only the proxy serves
    needs no place in MLflow's list.
    """
    allowed = _allowed_hosts(argv, env_vars)
    where = (
        "--allowed-hosts" if flag_value(argv, "--allowed-hosts") else "MLFLOW_SERVER_ALLOWED_HOSTS"
    )
    hosts = [host for host, _ in reaching]
    if allowed is None:
        wanted = [h for h in hosts if not _private_or_local(h)]
        if not wanted:
            return []
        return [
            ConfigFinding(
                "--allowed-hosts",
                "fail",
                "neither --allowed-hosts nor MLFLOW_SERVER_ALLOWED_HOSTS is set: MLflow only "
                f"accepts localhost and private addresses, so requests for {wanted[0]} get 403 "
                "Invalid Host header while health checks pass",
                found="(unset)",
                expected=",".join(wanted),
            )
        ]
    out = []
    for host, why in reaching:
        ok = host_allowed(allowed, host)
        out.append(
            ConfigFinding(
                where,
                "pass" if ok else "fail",
                f"{host} is allowed ({why})"
                if ok
                else f"{where} does not include {host} ({why}): requests with Host {host} get "
                "403 Invalid Host header while health checks pass",
                found=",".join(allowed),
                expected=None if ok else ",".join([*allowed, host]),
            )
        )
    return out


def _private_or_local(host: str) -> bool:
    import ipaddress

    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name in ("localhost",):
        return True
    try:
        return not ipaddress.ip_address(name).is_global
    except ValueError:
        return False


def _backend_store_uri(argv: list[str], env_vars: dict[str, str]) -> str | None:
    return flag_value(argv, "--backend-store-uri") or env_vars.get("MLFLOW_BACKEND_STORE_URI")


async def backend_store_findings(
    ctx: CheckContext, argv: list[str], env_vars: dict[str, str]
) -> list[ConfigFinding]:
    """The backend store URI's host and port against the RDS instance's endpoint."""
    uri = _backend_store_uri(argv, env_vars)
    if not uri:
        return [
            ConfigFinding(
                "--backend-store-uri",
                "warn",
                "no backend store URI: MLflow keeps its registry inside the container",
            )
        ]
    parts = urlsplit(uri)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = parts.hostname, None
    found = f"{parts.scheme}://{host}:{port or ''}".rstrip(":")
    if ctx.env.database is None or not host:
        return [
            ConfigFinding("--backend-store-uri", "pass", f"backend store at {found}", found=found)
        ]
    try:
        resp = await ctx.aws(
            "rds", "describe_db_instances", DBInstanceIdentifier=ctx.env.database.rds_instance
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
            return [
                ConfigFinding(
                    "--backend-store-uri",
                    "warn",
                    f"RDS instance {ctx.env.database.rds_instance} not found; cannot compare "
                    "(see data.rds)",
                    found=found,
                )
            ]
        raise
    endpoint = resp["DBInstances"][0].get("Endpoint") or {}
    expected_host, expected_port = endpoint.get("Address"), endpoint.get("Port")
    if host != expected_host or (port and expected_port and port != expected_port):
        return [
            ConfigFinding(
                "--backend-store-uri",
                "fail",
                f"the backend store URI points at {host}:{port or 5432}, but RDS instance "
                f"{ctx.env.database.rds_instance} is at {expected_host}:{expected_port}",
                found=f"{host}:{port or ''}".rstrip(":"),
                expected=f"{expected_host}:{expected_port}",
            )
        ]
    return [
        ConfigFinding(
            "--backend-store-uri",
            "pass",
            f"backend store is RDS {ctx.env.database.rds_instance} "
            f"({expected_host}:{expected_port})",
            found=f"{host}:{port}",
        )
    ]


@dataclass(frozen=True)
class Upstream:
    """A URL in a service's environment that reaches another part of the platform.

    ``service`` is the configured service it reaches (None when nothing backs the host);
    ``matched_by`` says how that was decided: never by the word "mlflow" in a name.
    """

    variable: str
    shown: str  # the URL, redacted
    host: str
    port: int | None
    netloc: str  # host[:port] as sent in the Host header
    service: EcsService | None
    matched_by: str
    cloud_map: cloud_map_reads.CloudMapName | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "host": self.host,
            "port": self.port,
            "service": self.service.name if self.service else None,
            "matched_by": self.matched_by,
        }


def _url_parts(value: str) -> tuple[str, int | None, str]:
    parts = urlsplit(value)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return parts.hostname or "", port, parts.netloc.rsplit("@", 1)[-1]


def find_upstreams(
    env: Environment,
    spec: EcsService,
    env_vars: dict[str, str],
    names: dict[str, cloud_map_reads.CloudMapName],
    registered_by: dict[str, str],
) -> list[Upstream]:
    """The URLs in ``spec``'s environment that reach the platform's other parts.

    A URL is an upstream when its host is a configured service's ``discovery`` name, a Cloud
    Map name an ECS service registers in (``registered_by``: name -> service), a name in one
    of the Cloud Map namespaces (which then backs nothing: stale), the public hostname (a
    loop through the load balancer), a variable ``hokusai.yml`` names in ``dependencies``, or
    a variable whose name says it holds MLflow's URL.
    """
    namespaces = {e.namespace for e in names.values() if e.namespace}
    stated = {d.via: d.target for d in env.dependencies if d.source == spec.name and d.via}
    redact = default_redactor().redact_text
    found = []
    for variable, value in sorted(env_vars.items()):
        if not value.startswith(("http://", "https://")):
            continue
        host, port, netloc = _url_parts(value)
        target, how = _match_host(env, host, registered_by, stated.get(variable))
        in_namespace = any(host.endswith("." + ns) for ns in namespaces)
        legacy_name = variable in _MLFLOW_URL_NAMES or (
            "MLFLOW" in variable and ("URL" in variable or "URI" in variable)
        )
        if target is None and not (in_namespace or legacy_name or host == env.public.hostname):
            continue
        if target is None:
            how = "a Cloud Map namespace" if in_namespace else "its name"
        if target is not None and target.name == spec.name:
            continue  # a service's own URL (a callback), not an upstream
        found.append(
            Upstream(variable, redact(value), host, port, netloc, target, how, names.get(host))
        )
    return found


def _match_host(
    env: Environment, host: str, registered_by: dict[str, str], stated: str | None
) -> tuple[EcsService | None, str]:
    if stated and env.service(stated):
        return env.service(stated), "hokusai.yml dependencies"
    for service in env.ecs.services if env.ecs else []:
        if service.discovery and host == service.discovery:
            return service, "its discovery name in hokusai.yml"
    if host in registered_by and env.service(registered_by[host]):
        return env.service(registered_by[host]), f"Cloud Map (registered by {registered_by[host]})"
    return None, ""


def _service_in_namespace(env: Environment, host: str) -> EcsService | None:
    """The one configured service with a discovery name in ``host``'s namespace, if one."""
    namespace = host.split(".", 1)[-1]
    found = [
        s
        for s in (env.ecs.services if env.ecs else [])
        if s.discovery and s.discovery.split(".", 1)[-1] == namespace
    ]
    return found[0] if len(found) == 1 else None


def judge_upstream(
    env: Environment, up: Upstream, names: dict[str, cloud_map_reads.CloudMapName]
) -> ConfigFinding:
    """One upstream URL against the service it should reach."""
    target = up.service
    # What it should say: its target's discovery URL, or the one service in its namespace.
    meant = target or _service_in_namespace(env, up.host)
    expected = f"http://{meant.discovery}:{meant.port}" if meant and meant.discovery else None

    def finding(status: str, message: str, want: str | None = expected) -> ConfigFinding:
        return ConfigFinding(up.variable, status, message, found=up.shown, expected=want)

    if up.host == env.public.hostname:
        return finding(
            "warn",
            f"{up.variable} sends the API's traffic back out through the public load "
            f"balancer ({up.host}) instead of Cloud Map",
        )
    if target is None:
        live = sorted(n for n, e in names.items() if e.exists and e.instances)
        if up.cloud_map is not None and up.cloud_map.namespace:
            what = (
                "has no registered instances"
                if up.cloud_map is not None and up.cloud_map.exists
                else "is not a Cloud Map service"
            )
            alternative = f"; {', '.join(live)} has instances" if live else ""
            return finding("fail", f"{up.variable} points at {up.host}, which {what}{alternative}")
        return finding(
            "warn",
            f"{up.variable} points at {up.host}, not a Cloud Map name: it breaks when that "
            "address moves",
        )
    if up.port != target.port:
        return finding(
            "fail", f"{up.variable} uses port {up.port}, but {target.name} listens on {target.port}"
        )
    if up.cloud_map is not None and up.cloud_map.namespace and not up.cloud_map.instances:
        return finding(
            "warn",
            f"{up.variable} names {up.host} ({target.name}), but it has no instances now "
            "(see compute.cloud-map)",
            None,
        )
    return finding(
        "pass",
        f"{up.variable} reaches {target.name} at {up.host}:{up.port} ({up.matched_by})",
        None,
    )


async def _cloud_map_names(
    ctx: CheckContext, containers: dict[str, dict[str, Any]]
) -> dict[str, cloud_map_reads.CloudMapName]:
    """What Cloud Map says of the hosts the services' URLs name and of the configured
    discovery names: only those (a large account has thousands of others)."""
    hosts = {
        urlsplit(value).hostname
        for container in containers.values()
        for value in container_env(container).values()
        if value.startswith(("http://", "https://"))
    }
    hosts |= {s.discovery for s in ctx.env.ecs.services if s.discovery}
    return await cloud_map_reads.resolve_all(ctx.aws, [h for h in hosts if h])


def placeholder_findings(container: dict[str, Any]) -> list[ConfigFinding]:
    """Secret variables still holding a placeholder (``changeme``, ``xxxx``, ``<your key>``,
    an AWS example key): the service runs with a value nobody meant to deploy."""
    revision = container.get("_revision", "the task definition")
    out = []
    for entry in container.get("environment", []):
        name, value = entry.get("name", ""), entry.get("value", "")
        if secret_key_kind(name) and shown_placeholder(value):
            out.append(
                ConfigFinding(
                    name,
                    "fail",
                    f"{name} in {revision} is the placeholder `{value}`",
                    found=value,
                    expected="the real secret, from Secrets Manager (`secrets` / `valueFrom`)",
                )
            )
    return out


async def _service_containers(ctx: CheckContext) -> dict[str, dict[str, Any]]:
    """Each configured service's main container (services that exist), with the Cloud Map
    services its tasks register in (``_registries``: Cloud Map service ids)."""

    async def one(spec: Any) -> dict[str, Any] | None:
        service = await describe_service(ctx, spec.name)
        if service is None:
            return None
        td = await describe_task_definition(ctx, service["taskDefinition"])
        return {
            **main_container(td, spec),
            "_revision": f"{td['family']}:{td['revision']}",
            "_registries": [
                r["registryArn"].rsplit("/", 1)[-1]
                for r in service.get("serviceRegistries", [])
                if r.get("registryArn")
            ],
        }

    # The services are read together: one after another, each was two round trips more.
    specs = list(ctx.env.ecs.services)
    found = await gather_bounded(one(spec) for spec in specs)
    return {spec.name: c for spec, c in zip(specs, found, strict=True) if c is not None}


def _registered_by(
    containers: dict[str, dict[str, Any]], names: dict[str, cloud_map_reads.CloudMapName]
) -> dict[str, str]:
    """Cloud Map name -> the ECS service whose tasks register in it."""
    by_id = {e.service_id: name for name, e in names.items() if e.service_id}
    return {
        by_id[registry]: service
        for service, container in containers.items()
        for registry in container.get("_registries", [])
        if registry in by_id
    }


def hosts_reaching(
    env: Environment, spec: EcsService, upstreams_of_others: list[Upstream]
) -> list[tuple[str, str]]:
    """The Host headers that reach MLflow ``spec``, each with how: the public name when a
    route (or the tracking URI's route) sends public traffic to it, and each proxy's upstream
    ``host:port`` that reaches it on its port. Health checks use the task's IP, which MLflow
    always admits."""
    out: list[tuple[str, str]] = []
    direct = [r.name for r in env.routes if r.service == spec.name]
    if direct:
        out.append((env.public.hostname, f"route {direct[0]} forwards public traffic to it"))
    for up in upstreams_of_others:
        if up.service is not None and up.service.name == spec.name and up.port == spec.port:
            out.append((up.netloc, f"{up.variable} of a proxy"))
    seen: set[str] = set()
    return [(h, why) for h, why in out if not (h in seen or seen.add(h))]


@check(
    id="compute.task-config",
    layer="compute",
    per="service",
    timeout=15,
    reads=[
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "rds:DescribeDBInstances",
        *_CLOUD_MAP_READS,
    ],
    description="Task-definition settings public access needs: MLflow --static-prefix, "
    "--allowed-hosts, backend store host; the API's MLflow URL against Cloud Map; secret "
    "variables still set to a placeholder.",
)
async def task_config(ctx: CheckContext) -> CheckResult:
    spec = ctx.service
    if ctx.env.ecs is None or spec is None:
        return CheckResult.skipped("no ECS settings for this environment")
    containers = await _service_containers(ctx)
    container = containers.get(spec.name)
    if container is None:
        return CheckResult.skipped(f"{spec.name} does not exist (see compute.ecs-service)")
    env_vars = container_env(container)
    names = await _cloud_map_names(ctx, containers)
    registered_by = _registered_by(containers, names)
    upstreams = {
        name: find_upstreams(ctx.env, ctx.env.service(name), container_env(c), names, registered_by)
        for name, c in containers.items()
        if ctx.env.service(name) is not None
    }
    mine = upstreams.get(spec.name, [])
    findings: list[ConfigFinding] = placeholder_findings(container)
    if spec.is_mlflow:
        argv = container_argv(container)
        others = [u for name, ups in upstreams.items() if name != spec.name for u in ups]
        findings += static_prefix_findings(ctx.env, spec, argv)
        findings += allowed_hosts_findings(argv, env_vars, hosts_reaching(ctx.env, spec, others))
        findings += await backend_store_findings(ctx, argv, env_vars)
    findings += [judge_upstream(ctx.env, up, names) for up in mine]
    if not findings:
        return CheckResult.skipped(
            f"{spec.name} sets no URL of another part of the platform (matched against Cloud "
            "Map, the configured services and hokusai.yml dependencies)",
            revision=container["_revision"],
        )
    evidence = {
        "revision": container["_revision"],
        "container": container.get("name"),
        "findings": [f.to_json() for f in findings],
    }
    result = _task_config_result(spec, container["_revision"], findings, evidence)
    # The upstream edges this service's URLs reveal, for the dependency model.
    result.data["upstreams"] = [u.to_data() for u in mine]
    return result


def _task_config_result(
    spec: EcsService, revision: str, findings: list[ConfigFinding], evidence: dict[str, Any]
) -> CheckResult:
    failed = [f for f in findings if f.status == "fail"]
    warned = [f for f in findings if f.status == "warn"]
    if failed:
        first = failed[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        expected = f"; expected {first.expected}" if first.expected else ""
        where = "" if revision in first.message else f"{revision}: "
        return CheckResult.failed(
            f"{where}{first.message}{expected}{more}",
            Classification.CONFIGURATION,
            hint=f"fix {first.setting} in the {spec.name} task definition and redeploy",
            **evidence,
        )
    if warned:
        return CheckResult.warned(f"{spec.name}: {warned[0].message}", **evidence)
    checked = sorted({f.setting for f in findings})
    return CheckResult.passed(
        f"{revision}: {', '.join(checked)} fit the platform",
        **evidence,
    )
