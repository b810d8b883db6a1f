"""Application checks: each route's probe path, and whether the right service answered it.

A 404 alone says nothing; who sent it says where the request path breaks. The load balancer's
fixed 404 means no listener rule forwards the path; a FastAPI ``{"detail": "Not Found"}`` on
an MLflow path means the path reached the API service instead of MLflow.
"""

from __future__ import annotations

from typing import Any

from bot.config import Route
from bot.diagnosis.checks.auth import auth_headers, probe_url, short_path
from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check
from bot.diagnosis.probe import (
    MLFLOW_INVALID_HOST,
    RESPONDER_TITLES,
    Budget,
    ProbeResult,
    Responder,
    probe,
    responder_for_service,
)

PROBE_TIMEOUT_CAP = 8.0
_ELB_STATUSES = frozenset({502, 503, 504})


def judge_route_answer(
    result: ProbeResult,
    route: Route,
    expected: Responder,
    *,
    hostname: str = "",
    path: str | None = None,
) -> CheckResult:
    """Turn one probe of ``route`` into a finding: who answered versus who should have.

    Who answered decides the class of problem: the load balancer's own 5xx is
    infrastructure (no target answered), its fixed response is configuration (no rule
    forwards), a 401/403 from a key check blocks this check (the auth hop's finding), MLflow's
    5xx is MLflow's (even through a proxy), a proxy's 502/504 means its upstream did not answer.

    Args:
        path: the path to name in the summary; the route's probe path by default.
    """
    svc = route.service
    path = path or short_path(route)
    evidence = result.evidence() | {"route": route.name, "service": svc}
    who = result.answered_by
    answer = result.describe_answer()

    if result.status is None:
        return CheckResult.failed(
            f"{path}: {result.error}",
            Classification.INFRASTRUCTURE,
            hint="nothing answered: check DNS, the load balancer and its targets",
            **evidence,
        )
    if who in (Responder.LOAD_BALANCER, Responder.CDN):
        return _edge_answer(result, route, who, path, evidence)
    if result.status == 403 and MLFLOW_INVALID_HOST in result.body:
        host = f" ({hostname})" if hostname else ""
        return CheckResult.failed(
            f"{path} was refused by MLflow's own Host-header check (403 {MLFLOW_INVALID_HOST}): "
            f"its --allowed-hosts does not include the public name{host}",
            Classification.CONFIGURATION,
            hint="add the public hostname to --allowed-hosts / MLFLOW_SERVER_ALLOWED_HOSTS; "
            "health checks still pass because /health is exempt",
            **evidence,
        )
    if result.status in (401, 403):
        return blocked_by_auth(result, svc, path, evidence)
    if not _reached(who, expected, result):
        return CheckResult.failed(
            f"{path} was answered by {RESPONDER_TITLES[who]} ({answer}), not "
            f"{_expected_title(expected, svc)}",
            Classification.CONFIGURATION,
            hint=_wrong_service_hint(route, expected, who),
            **evidence,
        )
    if result.ok:
        return CheckResult.passed(
            f"{path} answered {result.status} in {result.latency_ms} ms from {svc}", **evidence
        )
    if result.status >= 500:
        return _server_error(result, route, expected, path, evidence)
    if result.status == 404:
        return CheckResult.failed(
            f"{svc} answered {answer} for {path}: it does not serve this path",
            Classification.CONFIGURATION,
            hint=f"{svc} has no handler for {route.path}; for a proxy, check its upstream URL "
            "and prefix stripping (compute.task-config)",
            **evidence,
        )
    return CheckResult.failed(
        f"{svc} answered {answer} for {path}", Classification.APPLICATION, **evidence
    )


def blocked_by_auth(
    result: ProbeResult, service: str, path: str, evidence: dict[str, Any]
) -> CheckResult:
    """A 401/403 from a key check: this check could not look past it; it does not fail."""
    return CheckResult.skipped(
        f"blocked by auth: {RESPONDER_TITLES[result.answered_by]} refused the request for "
        f"{path} ({result.describe_answer()}); auth.api-key says whether the key or the way "
        "it is sent is wrong",
        blocked_by="auth",
        **evidence,
    )


def _edge_answer(
    result: ProbeResult, route: Route, who: Responder, path: str, evidence: dict[str, Any]
) -> CheckResult:
    svc = route.service
    if result.status in _ELB_STATUSES:
        what = {
            502: "its target closed or refused the connection",
            503: "it has no registered target to send it to",
            504: "its target did not answer in time",
        }
        return CheckResult.failed(
            f"{path} got {result.status} from {RESPONDER_TITLES[who]} itself: "
            f"{what.get(result.status, 'no target answered')} ({svc})",
            Classification.INFRASTRUCTURE,
            hint="targets.health, compute.ecs-service and network.security-groups say which",
            **evidence,
        )
    return CheckResult.failed(
        f"{path} was answered by {RESPONDER_TITLES[who]}'s fixed {result.status}, not {svc}",
        Classification.CONFIGURATION,
        hint=f"no listener rule forwards {route.path} to {svc}'s target group "
        "(routing.listener-rules)",
        **evidence,
    )


def _server_error(
    result: ProbeResult,
    route: Route,
    expected: Responder,
    path: str,
    evidence: dict[str, Any],
) -> CheckResult:
    svc, answer = route.service, result.describe_answer()
    mlflow_error = result.mlflow_error()
    if result.answered_by == Responder.MLFLOW:
        # Through a proxy the answer is still MLflow's, not the proxy's.
        who = (
            f"MLflow answered {answer} through {svc}"
            if expected != Responder.MLFLOW
            else (f"{svc} answered {answer}")
        )
        outcome = CheckResult.failed(
            f"{who} for {path}"
            + (": it cannot use its database" if is_database_error(mlflow_error) else ""),
            Classification.APPLICATION,
            hint="data.backend-store says whether MLflow can use its database; "
            f"logs.errors shows the error behind the {result.status}",
            **evidence,
        )
    elif expected == Responder.FASTAPI and result.status in (502, 503, 504):
        outcome = CheckResult.failed(
            f"{svc} answered {answer} for {path}: its upstream did not answer",
            Classification.INFRASTRUCTURE,
            hint=f"compute.task-config[{svc}] checks its upstream URL; the upstream's ECS "
            "service and the security group between them say why it does not answer",
            **evidence,
        )
    else:
        outcome = CheckResult.failed(
            f"{svc} answered {answer} for {path}",
            Classification.APPLICATION,
            hint=f"logs.errors[{svc}] shows the error behind the {result.status}",
            **evidence,
        )
    if mlflow_error:
        outcome.data["mlflow_errors"] = [mlflow_error]
    return outcome


def is_database_error(message: str | None) -> bool:
    lowered = (message or "").lower()
    return any(w in lowered for w in ("operationalerror", "psycopg", "database"))


def _reached(who: Responder, expected: Responder, result: ProbeResult) -> bool:
    """Whether the answer came from the route's own service (or an upstream it passes on)."""
    if who in (expected, Responder.UNKNOWN):
        return True
    # An API service that proxies MLflow passes MLflow's answers through.
    return (
        expected == Responder.FASTAPI
        and who == Responder.MLFLOW
        and (result.ok or _is_json(result))
    )


def _expected_title(expected: Responder, service: str) -> str:
    if expected == Responder.MLFLOW:
        return f"MLflow ({service})"
    return f"{RESPONDER_TITLES[expected]} ({service})"


def _is_json(result: ProbeResult) -> bool:
    return isinstance(result.json(), dict)


def _wrong_service_hint(route: Route, expected: Responder, who: Responder) -> str:
    if expected == Responder.MLFLOW and who == Responder.FASTAPI:
        return (
            f"the load balancer sends {route.path} to the API service; its listener rule "
            f"must forward to {route.service}'s target group (routing.listener-rules)"
        )
    if expected == Responder.FASTAPI and who == Responder.MLFLOW:
        return (
            f"{route.path} reaches MLflow directly, which does not know this prefix; "
            f"route it to {route.service} (routing.listener-rules) or set --static-prefix"
        )
    return f"the listener rule for {route.path} must forward to {route.service}"


@check(
    id="app.route-probe",
    layer="app",
    per="route",
    timeout=10.0,
    description="The route's probe path: status, latency, and who answered versus the "
    "configured service.",
)
async def route_probe(ctx: CheckContext) -> CheckResult:
    route = ctx.route
    if route is None:
        return CheckResult.skipped(f"no route named {ctx.subject!r} in this environment")
    budget = Budget(route_probe.timeout, deadline=ctx.deadline)
    headers, secrets = auth_headers(ctx)
    result = await probe(
        ctx.http,
        "GET",
        probe_url(ctx.env, route),
        headers=headers,
        timeout=budget.next_timeout(PROBE_TIMEOUT_CAP),
        secrets=secrets,
    )
    expected = responder_for_service(ctx.env.service(route.service))
    return judge_route_answer(result, route, expected, hostname=ctx.env.public.hostname)
