"""Application checks: each route's probe path, and whether the right service answered it.

A 404 alone says nothing; who sent it says where the request path breaks. The load balancer's
fixed 404 means no listener rule forwards the path; a FastAPI ``{"detail": "Not Found"}`` on
an MLflow path means the path reached the API service instead of MLflow.
"""

from __future__ import annotations

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

    Args:
        path: the path to name in the summary; the route's probe path by default.
    """
    svc = route.service
    path = path or short_path(route)
    evidence = result.evidence() | {"route": route.name, "service": svc}
    expected_title = f"{RESPONDER_TITLES[expected]} ({svc})"
    if expected == Responder.MLFLOW:
        expected_title = f"MLflow ({svc})"

    if result.status is None:
        return CheckResult.failed(
            f"{path}: {result.error}",
            Classification.INFRASTRUCTURE,
            hint="nothing answered: check DNS, the load balancer and its targets",
            **evidence,
        )
    answer = result.describe_answer()
    who = result.answered_by
    if who == Responder.LOAD_BALANCER:
        if result.status in _ELB_STATUSES:
            return CheckResult.failed(
                f"{path} got {result.status} from the load balancer itself: "
                f"it could not reach a healthy {svc} target",
                Classification.INFRASTRUCTURE,
                hint="targets.health and compute.ecs-service say whether any task is up",
                **evidence,
            )
        return CheckResult.failed(
            f"{path} was answered by the load balancer's fixed {result.status}, not {svc}",
            Classification.CONFIGURATION,
            hint=f"no listener rule forwards {route.path} to {svc}'s target group "
            "(routing.listener-rules)",
            **evidence,
        )
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
    reached = who in (expected, Responder.UNKNOWN) or (
        expected == Responder.FASTAPI
        and who == Responder.MLFLOW
        and (result.ok or _is_json(result))
    )
    if not reached:
        return CheckResult.failed(
            f"{path} was answered by {RESPONDER_TITLES[who]} ({answer}), not {expected_title}",
            Classification.CONFIGURATION,
            hint=_wrong_service_hint(route, expected, who),
            **evidence,
        )
    if result.ok:
        return CheckResult.passed(
            f"{path} answered {result.status} in {result.latency_ms} ms from {svc}", **evidence
        )
    if result.status in (401, 403):
        return CheckResult.passed(
            f"{path} reached {svc}, which refused the request ({answer}); the auth checks say why",
            **evidence,
        )
    if result.status >= 500:
        return CheckResult.failed(
            f"{svc} answered {answer} for {path}",
            Classification.APPLICATION,
            hint=f"logs.errors[{svc}] shows the error behind the {result.status}",
            **evidence,
        )
    if result.status == 404:
        return CheckResult.failed(
            f"{svc} answered {answer} for {path}: it does not serve this path",
            Classification.CONFIGURATION,
            hint=f"{svc} has no handler for {route.path}; for a proxy, check its upstream URL "
            "and prefix stripping (compute.task-config)",
            **evidence,
        )
    return CheckResult.failed(
        f"{svc} answered {answer} for {path}",
        Classification.APPLICATION,
        **evidence,
    )


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
