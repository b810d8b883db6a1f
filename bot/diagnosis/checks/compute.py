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
    env: Environment, argv: list[str], env_vars: dict[str, str], proxy_hosts: list[str]
) -> list[ConfigFinding]:
    """``--allowed-hosts`` / MLFLOW_SERVER_ALLOWED_HOSTS against the Host headers it gets."""
    allowed = _allowed_hosts(argv, env_vars)
    where = (
        "--allowed-hosts" if flag_value(argv, "--allowed-hosts") else "MLFLOW_SERVER_ALLOWED_HOSTS"
    )
    hostname = env.public.hostname
    if allowed is None:
        return [
            ConfigFinding(
                "--allowed-hosts",
                "fail",
                f"neither --allowed-hosts nor MLFLOW_SERVER_ALLOWED_HOSTS is set: MLflow only "
                f"accepts localhost and private addresses, so requests for {hostname} get 403 "
                "Invalid Host header while health checks pass",
                found="(unset)",
                expected=",".join([hostname, *proxy_hosts]),
            )
        ]
    out = []
    for host in [hostname, *proxy_hosts]:
        ok = host_allowed(allowed, host)
        out.append(
            ConfigFinding(
                where,
                "pass" if ok else "fail",
                f"{host} is allowed"
                if ok
                else f"{where} does not include {host}: requests with Host {host} get 403 "
                "Invalid Host header while health checks pass",
                found=",".join(allowed),
                expected=None if ok else ",".join([*allowed, host]),
            )
        )
    return out


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


def mlflow_urls(env_vars: dict[str, str]) -> dict[str, str]:
    """Variables that hold an MLflow URL: by name, or any http(s) value mentioning mlflow."""
    out = {}
    for name, value in env_vars.items():
        if not value.startswith(("http://", "https://")):
            continue
        if (
            name in _MLFLOW_URL_NAMES
            or ("MLFLOW" in name and ("URL" in name or "URI" in name))
            or "mlflow" in value.lower()
        ):
            out[name] = value
    return out


def upstream_findings(
    env: Environment, urls: dict[str, str], names: dict[str, cloud_map_reads.CloudMapName]
) -> list[ConfigFinding]:
    """An MLflow URL against the Cloud Map names that have instances."""
    mlflow = next((s for s in env.ecs.services if s.is_mlflow), None) if env.ecs else None
    namespaces = {e.namespace for e in names.values() if e.namespace}
    live = sorted(n for n, e in names.items() if e.exists and e.instances)
    redact = default_redactor().redact_text
    expected_url = (
        f"http://{mlflow.discovery}:{mlflow.port}" if mlflow and mlflow.discovery else None
    )
    out = []
    for var, value in urls.items():
        parts = urlsplit(value)
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = None
        shown = redact(value)
        configured = mlflow is not None and host == mlflow.discovery
        in_cloud_map = any(host.endswith("." + ns) for ns in namespaces)
        entry = names.get(host)
        if entry is not None and not entry.exists:
            entry = None  # a name in a namespace, but no service by that name
        if host == env.public.hostname:
            out.append(
                ConfigFinding(
                    var,
                    "warn",
                    f"{var} sends the API's MLflow traffic back out through the public "
                    f"load balancer ({host}) instead of Cloud Map",
                    found=shown,
                    expected=expected_url,
                )
            )
        elif configured:
            if mlflow and port != mlflow.port:
                out.append(
                    ConfigFinding(
                        var,
                        "fail",
                        f"{var} uses port {port}, but {mlflow.name} listens on {mlflow.port}",
                        found=shown,
                        expected=expected_url,
                    )
                )
            elif entry is not None and not entry.instances:
                out.append(
                    ConfigFinding(
                        var,
                        "warn",
                        f"{var} names {host} as configured, but it has no instances now "
                        "(see compute.cloud-map)",
                        found=shown,
                    )
                )
            else:
                out.append(
                    ConfigFinding(var, "pass", f"{var} points at {host}:{port}", found=shown)
                )
        elif in_cloud_map and (entry is None or not entry.instances):
            what = "has no registered instances" if entry else "is not a Cloud Map service"
            alternative = f"; {', '.join(live)} has instances" if live else ""
            out.append(
                ConfigFinding(
                    var,
                    "fail",
                    f"{var} points at {host}, which {what}{alternative}",
                    found=shown,
                    expected=expected_url,
                )
            )
        elif in_cloud_map:
            out.append(
                ConfigFinding(
                    var,
                    "warn",
                    f"{var} points at {host}, which has instances but is not the configured "
                    f"discovery name {mlflow.discovery if mlflow else '(none)'}",
                    found=shown,
                    expected=expected_url,
                )
            )
        else:
            out.append(
                ConfigFinding(
                    var,
                    "warn",
                    f"{var} points at {host}, not a Cloud Map name: "
                    "it breaks when that address moves",
                    found=shown,
                    expected=expected_url,
                )
            )
    return out


async def _cloud_map_names(
    ctx: CheckContext, urls: dict[str, str]
) -> dict[str, cloud_map_reads.CloudMapName]:
    """The Cloud Map names the URLs point at, and the configured MLflow name: only those."""
    mlflow = next((s for s in ctx.env.ecs.services if s.is_mlflow), None)
    hosts = {urlsplit(url).hostname for url in urls.values()}
    hosts.add(mlflow.discovery if mlflow else None)
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
    """Each configured service's main container (services that exist)."""
    out = {}
    for spec in ctx.env.ecs.services:
        service = await describe_service(ctx, spec.name)
        if service is not None:
            td = await describe_task_definition(ctx, service["taskDefinition"])
            out[spec.name] = {
                **main_container(td, spec),
                "_revision": f"{td['family']}:{td['revision']}",
            }
    return out


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
    findings: list[ConfigFinding] = placeholder_findings(container)
    if spec.is_mlflow:
        argv = container_argv(container)
        proxy_hosts = []
        for other, c in containers.items():
            if other == spec.name:
                continue
            for url in mlflow_urls(container_env(c)).values():
                parts = urlsplit(url)
                if parts.hostname and parts.hostname == spec.discovery:
                    proxy_hosts.append(parts.netloc.rsplit("@", 1)[-1])
        findings += static_prefix_findings(ctx.env, spec, argv)
        findings += allowed_hosts_findings(ctx.env, argv, env_vars, sorted(set(proxy_hosts)))
        findings += await backend_store_findings(ctx, argv, env_vars)
    else:
        urls = mlflow_urls(env_vars)
        if not urls and not findings:
            return CheckResult.skipped(
                f"{spec.name} sets no MLflow URL (looked for {', '.join(_MLFLOW_URL_NAMES)})",
                revision=container["_revision"],
            )
        findings += upstream_findings(ctx.env, urls, await _cloud_map_names(ctx, urls))
    evidence = {
        "revision": container["_revision"],
        "container": container.get("name"),
        "findings": [f.to_json() for f in findings],
    }
    failed = [f for f in findings if f.status == "fail"]
    warned = [f for f in findings if f.status == "warn"]
    if failed:
        first = failed[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        expected = f"; expected {first.expected}" if first.expected else ""
        where = "" if container["_revision"] in first.message else f"{container['_revision']}: "
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
        f"{container['_revision']}: {', '.join(checked)} fit the platform",
        **evidence,
    )
