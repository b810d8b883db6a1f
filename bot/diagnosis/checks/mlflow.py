"""MLflow checks: health behind the public paths, and a read-only registry round trip.

The round trip runs twice: over plain HTTP (so the answer can be attributed to a server),
and with the real ``MlflowClient`` as data scientists use it, whose errors hide what happened
(a JSON 404 from a FastAPI service reaches it as ``INTERNAL_ERROR`` with status 500). Both stay
inside the check's budget: MLflow's own retry defaults would keep a caller for minutes.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.config import Environment, Route
from bot.diagnosis.checks.app import blocked_by_auth, judge_route_answer
from bot.diagnosis.checks.auth import api_key, auth_headers
from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check
from bot.diagnosis.probe import (
    MLFLOW_INVALID_HOST,
    RESPONDER_TITLES,
    Budget,
    ProbeResult,
    Responder,
    probe,
    redact,
    responder_for_service,
    who_answered,
)

MLFLOW_API = "/api/2.0/mlflow"
PROBE_TIMEOUT_CAP = 5.0
REGISTRY_CALLS = (
    ("registered-models/search", "registered_models"),
    ("experiments/search", "experiments"),
)


@dataclass(frozen=True)
class MlflowPrefix:
    """A public URL prefix under which MLflow's own paths should be reachable."""

    label: str
    url: str


def mlflow_prefixes(env: Environment) -> list[MlflowPrefix]:
    """Where MLflow should answer: the direct route's prefix, the proxy's, the tracking URI."""
    found: dict[str, MlflowPrefix] = {}
    for route in env.routes:
        service = env.service(route.service)
        source = route.path if service is not None and service.is_mlflow else route.probe
        if MLFLOW_API not in source:
            continue
        prefix = source.split(MLFLOW_API, 1)[0].rstrip("/")
        kind = "direct" if service is not None and service.is_mlflow else "proxy"
        url = env.public.base_url + prefix
        found.setdefault(url, MlflowPrefix(f"{kind} route {route.name} ({prefix or '/'})", url))
    if env.mlflow is not None:
        url = env.mlflow.tracking_uri.rstrip("/")
        found.setdefault(url, MlflowPrefix(f"tracking URI ({urlsplit(url).path or '/'})", url))
    return list(found.values())


def route_for_url(env: Environment, url: str) -> Route:
    """The configured route that serves ``url``'s path (longest prefix), or a stand-in."""
    path = urlsplit(url).path or "/"
    best: Route | None = None
    for route in env.routes:
        prefix = route.path.rstrip("*").rstrip("/")
        if (path == prefix or path.startswith(prefix + "/")) and (
            best is None or len(prefix) > len(best.path.rstrip("*").rstrip("/"))
        ):
            best = route
    if best is not None:
        return best
    mlflow = next((s.name for s in (env.ecs.services if env.ecs else []) if s.is_mlflow), "MLflow")
    return Route(name="tracking-uri", path=path + "/*", service=mlflow, probe=path or "/")


# ---------------------------------------------------------------- app.mlflow-health


@check(
    id="app.mlflow-health",
    layer="app",
    timeout=8.0,
    description="MLflow's /health and /version behind the public paths, where reachable.",
)
async def mlflow_health(ctx: CheckContext) -> CheckResult:
    prefixes = mlflow_prefixes(ctx.env)
    if not prefixes:
        return CheckResult.skipped("no MLflow route or tracking URI configured")
    budget = Budget(mlflow_health.timeout, deadline=ctx.deadline)
    headers, secrets = auth_headers(ctx)
    timeout = budget.next_timeout(PROBE_TIMEOUT_CAP)

    async def ask(prefix: MlflowPrefix, endpoint: str) -> ProbeResult:
        return await probe(
            ctx.http,
            "GET",
            prefix.url + endpoint,
            headers=headers,
            timeout=timeout,
            secrets=secrets,
        )

    asked = await asyncio.gather(*(ask(p, e) for p in prefixes for e in ("/health", "/version")))
    answers = dict(
        zip(((p.label, e) for p in prefixes for e in ("health", "version")), asked, strict=True)
    )
    evidence: dict[str, Any] = {
        "prefixes": [
            {
                "where": p.label,
                "health": answers[p.label, "health"].evidence(),
                "version": answers[p.label, "version"].evidence(),
            }
            for p in prefixes
        ]
    }
    healthy = [p for p in prefixes if _is_mlflow_health(answers[p.label, "health"])]
    lines = [f"{p.label}: /health {answers[p.label, 'health'].describe_answer()}" for p in prefixes]
    if healthy:
        version = next(
            (
                answers[p.label, "version"].body.strip()
                for p in healthy
                if answers[p.label, "version"].ok
                and re.fullmatch(r"\d+\.\d+[\w.]*", answers[p.label, "version"].body.strip())
            ),
            None,
        )
        evidence["version"] = version
        where = ", ".join(p.label for p in healthy)
        others = [line for p, line in zip(prefixes, lines, strict=True) if p not in healthy]
        summary = f"MLflow {version or ''} is healthy behind {where}".replace("  ", " ")
        if others:
            summary += f"; not via {'; '.join(others)}"
        return CheckResult.passed(summary, **evidence)
    refused = [
        p.label
        for p in prefixes
        if answers[p.label, "health"].status in (401, 403)
        and MLFLOW_INVALID_HOST not in answers[p.label, "health"].body
    ]
    if refused:
        return CheckResult.skipped(
            "blocked by auth: MLflow's /health is behind a key check that refused the "
            "configured key: " + "; ".join(lines) + " (auth.api-key says why)",
            blocked_by="auth",
            **evidence,
        )
    errors_only = all(answers[p.label, "health"].status is None for p in prefixes)
    lb_5xx = any(
        answers[p.label, "health"].answered_by == Responder.LOAD_BALANCER
        and (answers[p.label, "health"].status or 0) >= 500
        for p in prefixes
    )
    return CheckResult.failed(
        "MLflow's /health answered nowhere: " + "; ".join(lines),
        Classification.INFRASTRUCTURE if errors_only or lb_5xx else Classification.CONFIGURATION,
        hint="app.route-probe names who answers the MLflow paths instead",
        **evidence,
    )


def _is_mlflow_health(result: ProbeResult) -> bool:
    return result.ok and result.body.strip() == "OK"


# ---------------------------------------------------------------- app.mlflow-registry


@check(
    id="app.mlflow-registry",
    layer="app",
    timeout=10.0,
    description="A read-only registry round trip (registered-models/search, "
    "experiments/search) over HTTP through the public tracking URI.",
)
async def mlflow_registry(ctx: CheckContext) -> CheckResult:
    env = ctx.env
    if env.mlflow is None:
        return CheckResult.skipped("no mlflow.tracking_uri in hokusai.yml")
    tracking_uri = env.mlflow.tracking_uri.rstrip("/")
    budget = Budget(mlflow_registry.timeout, deadline=ctx.deadline)
    headers, secrets = auth_headers(ctx)
    timeout = budget.next_timeout(PROBE_TIMEOUT_CAP)
    route = route_for_url(env, tracking_uri)
    expected = responder_for_service(env.service(route.service))
    if env.service(route.service) is None:
        expected = Responder.MLFLOW

    results = await asyncio.gather(
        *(
            probe(
                ctx.http,
                "GET",
                f"{tracking_uri}{MLFLOW_API}/{endpoint}?max_results=10",
                headers=headers,
                timeout=timeout,
                secrets=secrets,
            )
            for endpoint, _ in REGISTRY_CALLS
        )
    )
    evidence: dict[str, Any] = {"tracking_uri": redact(tracking_uri, secrets), "calls": []}
    counts: dict[str, int] = {}
    for (endpoint, field), result in zip(REGISTRY_CALLS, results, strict=True):
        evidence["calls"].append(result.evidence() | {"endpoint": endpoint})
        payload = result.json()
        if result.ok and isinstance(payload, dict):
            # An empty registered-models/search answers {} rather than an empty list.
            counts[field] = len(payload.get(field) or [])
            continue
        return _registry_failure(result, endpoint, route, expected, env, evidence)
    evidence["counts"] = counts
    return CheckResult.passed(
        f"registry round trip through {urlsplit(tracking_uri).path or '/'} works: "
        f"{counts['registered_models']} registered model(s), "
        f"{counts['experiments']} experiment(s) in the first page",
        **evidence,
    )


def _registry_failure(
    result: ProbeResult,
    endpoint: str,
    route: Route,
    expected: Responder,
    env: Environment,
    evidence: dict[str, Any],
) -> CheckResult:
    where = f"{MLFLOW_API}/{endpoint}"
    if result.ok:
        return CheckResult.failed(
            f"{where} answered {result.status} but not with MLflow's JSON "
            f"({result.describe_answer()})",
            Classification.CONFIGURATION,
            hint="the tracking URI reaches a web page, not MLflow's REST API",
            **evidence,
        )
    if result.status in (401, 403) and MLFLOW_INVALID_HOST not in result.body:
        # The path reaches a service that checks keys: the auth hop, not this one, fails.
        return blocked_by_auth(result, route.service, where, evidence)
    judged = judge_route_answer(
        result,
        route,
        expected,
        hostname=env.public.hostname,
        path=result.path.split("?", 1)[0],
    )
    judged.summary = f"registry round trip failed at {endpoint}: {judged.summary}"
    judged.evidence = evidence | {"answered_by": str(result.answered_by), "reason": result.reason}
    return judged


# ---------------------------------------------------------------- app.mlflow-client

# os.environ is process-wide: one MlflowClient call at a time may set MLflow's variables
# (retries and timeouts only; the key never goes there, see _ProbeKeyHeader).
_MLFLOW_ENV_LOCK = threading.Lock()
CLIENT_RETRIES = 1
# MlflowClient blocks; it gets threads of its own so a hung tracking server cannot use up the
# default pool that the bot's other work (acks' database claims) runs in.
_MLFLOW_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlflow-client")
_probe_headers = threading.local()


class _ProbeKeyHeader:
    """MLflow request-header provider: the probe key for the calls of this thread only.

    MLflow asks every registered provider for headers on each request; this one answers
    only inside ``_client_round_trip``, so the key never sits in ``os.environ`` where a
    subprocess started meanwhile would inherit it.
    """

    def in_context(self) -> bool:
        return bool(getattr(_probe_headers, "value", None))

    def request_headers(self) -> dict[str, str]:
        return dict(getattr(_probe_headers, "value", None) or {})


_registered = False


def _register_header_provider() -> None:
    global _registered
    if not _registered:
        from mlflow.tracking.request_header.registry import _request_header_provider_registry

        _request_header_provider_registry.register(_ProbeKeyHeader)
        _registered = True


@contextmanager
def _mlflow_environment(values: dict[str, str | None], wait: float) -> Iterator[None]:
    """Set MLflow's request variables for one call, then put back what was there."""
    if not _MLFLOW_ENV_LOCK.acquire(timeout=wait):
        raise TimeoutError("another MlflowClient call still holds the client settings")
    try:
        saved = {name: os.environ.get(name) for name in values}
        try:
            for name, value in values.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    finally:
        _MLFLOW_ENV_LOCK.release()


def _client_round_trip(
    tracking_uri: str, auth: dict[str, str], request_timeout: int, retries: int
) -> dict[str, int]:
    """Search experiments and registered models with MlflowClient (runs in a thread)."""
    from mlflow.tracking import MlflowClient

    _register_header_provider()
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(request_timeout),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_TRACKING_TOKEN": None,
        # The key is the only credential the client may send.
        "MLFLOW_TRACKING_USERNAME": None,
        "MLFLOW_TRACKING_PASSWORD": None,
        # A diagnostics bot must not phone home.
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    _probe_headers.value = auth
    try:
        with _mlflow_environment(settings, wait=request_timeout):
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            experiments = client.search_experiments(max_results=10)
            models = client.search_registered_models(max_results=10)
    finally:
        _probe_headers.value = None
    return {"experiments": len(experiments), "registered_models": len(models)}


@dataclass(frozen=True)
class ClientFinding:
    """What an MlflowClient error really means."""

    summary: str
    classification: Classification
    hint: str | None = None
    # The key was refused: the application answered, the auth hop is what fails.
    auth_refusal: bool = False


_AUTH_WORDS = ("api key", "unauthorized", "unauthenticated", "not authenticated", "forbidden")


def _is_auth_refusal_detail(detail: object) -> bool:
    return any(word in str(detail).lower() for word in _AUTH_WORDS)


def explain_client_error(exc: BaseException, attempts: int) -> ClientFinding:
    """Translate an MlflowException/RestException into what happened on the wire."""
    from mlflow.exceptions import RestException

    message = " ".join(str(exc).split())
    code = getattr(exc, "error_code", None)
    if isinstance(exc, RestException):
        payload = exc.json if isinstance(exc.json, dict) else {}
        if "detail" in payload and "error_code" not in payload:
            detail = payload["detail"]
            if str(detail).lower() == "not found":
                return ClientFinding(
                    f"MlflowClient reports {code} with status 500, but the body "
                    f"{{'detail': {detail!r}}} is a FastAPI service's 404: the request reached "
                    "a FastAPI service, not MLflow",
                    Classification.CONFIGURATION,
                    "app.route-probe says which service answers the tracking URI",
                )
            refusal = _is_auth_refusal_detail(detail)
            return ClientFinding(
                f"MlflowClient reports {code} with status 500, but the body "
                f"{{'detail': {detail!r}}} comes from a FastAPI service "
                + ("refusing the key" if refusal else "(an error in front of MLflow)"),
                Classification.CONFIGURATION,
                "auth.api-key says whether the key is accepted",
                auth_refusal=refusal,
            )
        return ClientFinding(
            f"MLflow answered {code}: {payload.get('message', message)[:200]}",
            Classification.APPLICATION,
        )
    lowered = message.lower()
    if MLFLOW_INVALID_HOST.lower() in lowered:
        return ClientFinding(
            f"MLflow refused the Host header ({MLFLOW_INVALID_HOST}): its --allowed-hosts "
            "does not include the public name",
            Classification.CONFIGURATION,
            "add the public hostname to --allowed-hosts / MLFLOW_SERVER_ALLOWED_HOSTS",
        )
    if "too many" in lowered and "error responses" in lowered:
        status = re.search(r"too many (\d{3}) error responses", lowered)
        shown = status.group(1) if status else "5xx"
        return ClientFinding(
            f"MlflowClient gave up after {attempts} attempts: every one was answered {shown} "
            "(retries exhausted, like 'Failed to create MLflow client after 3 attempts')",
            Classification.INFRASTRUCTURE,
            "app.mlflow-registry says who answered them",
        )
    if "timeout" in lowered or "timed out" in lowered:
        return ClientFinding(
            "MlflowClient got no answer in time from the tracking URI",
            Classification.INFRASTRUCTURE,
        )
    if "connection refused" in lowered or "failed to establish" in lowered:
        return ClientFinding(
            f"MlflowClient could not connect to the tracking URI ({_first_cause(message)})",
            Classification.INFRASTRUCTURE,
        )
    status_match = re.search(r"failed with error code (\d{3})", message)
    if status_match:
        status = int(status_match.group(1))
        body = message.split("Response body: ", 1)[-1].strip("'")
        who = who_answered(status, {}, body)
        if status in (401, 403):
            return ClientFinding(
                f"MlflowClient was refused: {code_name(exc)} ({status} {body[:80]})",
                Classification.CONFIGURATION,
                "auth.api-key says which way the key is accepted",
                auth_refusal=True,
            )
        return ClientFinding(
            f"MlflowClient got {status} {body[:80]!r}, answered by {who.responder} ({who.reason})",
            Classification.CONFIGURATION if status == 404 else Classification.APPLICATION,
            "app.route-probe says which service answers the tracking URI",
        )
    return ClientFinding(f"MlflowClient failed: {message[:240]}", Classification.APPLICATION)


def _with_wire(finding: ClientFinding, wire: ProbeResult) -> tuple[str, Classification]:
    """The client's finding, with who really answered on the wire deciding the class."""
    if wire.status is None:
        return finding.summary, finding.classification
    who = RESPONDER_TITLES[wire.answered_by]
    summary = f"{finding.summary} (on the wire: {wire.describe_answer()} from {who})"
    if wire.answered_by in (Responder.LOAD_BALANCER, Responder.CDN) and wire.status >= 500:
        return summary, Classification.INFRASTRUCTURE
    if wire.answered_by == Responder.MLFLOW and wire.status >= 500:
        return summary, Classification.APPLICATION
    return summary, finding.classification


def code_name(exc: BaseException) -> str:
    """MLflow's error code name (UNAUTHENTICATED, PERMISSION_DENIED, ...) of an exception."""
    from mlflow.protos.databricks_pb2 import ErrorCode

    code = getattr(exc, "error_code", None)
    if isinstance(code, str):
        return code
    try:
        return ErrorCode.Name(code)
    except (ValueError, TypeError):
        return "UNKNOWN"


def _first_cause(message: str) -> str:
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", message)
    return match.group(1).strip() if match else "connection failed"


@check(
    id="app.mlflow-client",
    layer="app",
    timeout=15.0,
    description="The registry round trip with the real MlflowClient, retries bounded by the "
    "check's budget.",
)
async def mlflow_client(ctx: CheckContext) -> CheckResult:
    env = ctx.env
    if env.mlflow is None:
        return CheckResult.skipped("no mlflow.tracking_uri in hokusai.yml")
    key = api_key(ctx)
    secrets = (key,) if key else ()
    tracking_uri = env.mlflow.tracking_uri.rstrip("/")
    budget = Budget(mlflow_client.timeout, deadline=ctx.deadline)
    attempts = CLIENT_RETRIES + 1
    # Two calls, each up to `attempts` tries, must fit in what is left of the budget.
    request_timeout = max(1, int(budget.remaining() / (len(REGISTRY_CALLS) * attempts)))
    evidence: dict[str, Any] = {
        "tracking_uri": redact(tracking_uri, secrets),
        "credentials": "the probe key, sent the configured way" if key else "none",
        "max_retries": CLIENT_RETRIES,
        "request_timeout_s": request_timeout,
    }
    try:
        counts = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(
                _MLFLOW_EXECUTOR,
                _client_round_trip,
                tracking_uri,
                auth_headers(ctx)[0],
                request_timeout,
                CLIENT_RETRIES,
            ),
            timeout=budget.remaining(),
        )
    except TimeoutError:
        return CheckResult.failed(
            f"MlflowClient did not finish within {mlflow_client.timeout:g} s",
            Classification.INFRASTRUCTURE,
            hint="the tracking URI accepts connections but does not answer",
            **evidence,
        )
    except Exception as exc:
        finding = explain_client_error(exc, attempts)
        evidence["error"] = redact(" ".join(str(exc).split())[:300], secrets)
        evidence["error_type"] = type(exc).__name__
        # MlflowClient loses the real status (a JSON 401 becomes INTERNAL_ERROR 500): ask the
        # wire once, the way the client did, and let who answered decide.
        wire = await probe(
            ctx.http,
            "GET",
            f"{tracking_uri}{MLFLOW_API}/experiments/search?max_results=1",
            headers=auth_headers(ctx)[0],
            timeout=max(budget.next_timeout(PROBE_TIMEOUT_CAP), 0.5),
            secrets=secrets,
        )
        evidence["wire"] = wire.evidence()
        refused = wire.status in (401, 403) and MLFLOW_INVALID_HOST not in wire.body
        if finding.auth_refusal or refused:
            # MLflow's path is reachable; whether the key is accepted is the auth hop's finding.
            return CheckResult.skipped(
                f"blocked by auth: {redact(finding.summary, secrets)}; on the wire "
                f"{RESPONDER_TITLES[wire.answered_by]} answered {wire.describe_answer()} "
                "(auth.api-key says why)",
                blocked_by="auth",
                **evidence,
            )
        summary, classification = _with_wire(finding, wire)
        outcome = CheckResult.failed(
            redact(summary, secrets), classification, finding.hint, **evidence
        )
        if wire.mlflow_error():
            outcome.data["mlflow_errors"] = [wire.mlflow_error()]
        return outcome
    evidence["counts"] = counts
    return CheckResult.passed(
        f"MlflowClient read the registry through {urlsplit(tracking_uri).path or '/'}: "
        f"{counts['registered_models']} registered model(s), "
        f"{counts['experiments']} experiment(s)",
        **evidence,
    )
