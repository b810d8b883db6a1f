"""Data hop: the RDS instance behind MLflow is available, and MLflow can use it.

``data.rds`` reads the instance from RDS. ``data.backend-store`` reads what MLflow itself says
about its database: the error answers the app checks got in this run (MLflow answers 503
``TEMPORARILY_UNAVAILABLE`` with the driver's text while ``/health`` stays 200) and the
``OperationalError`` lines in its log group (a task that dies at start-up answers nothing).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from bot.config import EcsService
from bot.diagnosis.checks.auth import auth_headers
from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check
from bot.diagnosis.probe import Budget, Responder, probe
from bot.redaction import default_redactor

# Statuses that pass on their own; a short wait is all they need.
_TRANSITIONAL = frozenset(
    {
        "backing-up",
        "configuring-enhanced-monitoring",
        "configuring-log-exports",
        "maintenance",
        "modifying",
        "renaming",
        "resetting-master-credentials",
        "upgrading",
        "storage-optimization",
    }
)


@check(
    id="data.rds",
    layer="data",
    description="The RDS instance is available; its endpoint and port.",
    reads=["rds:DescribeDBInstances"],
    timeout=10,
)
async def rds(ctx: CheckContext) -> CheckResult:
    settings = ctx.env.database
    if settings is None:
        return CheckResult.skipped("no database configured in hokusai.yml")
    name = settings.rds_instance
    try:
        found = await ctx.aws("rds", "describe_db_instances", DBInstanceIdentifier=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "DBInstanceNotFound":
            raise
        return CheckResult.failed(
            f"RDS instance {name} does not exist in {ctx.env.region}",
            Classification.CONFIGURATION,
            hint="check database.rds_instance in hokusai.yml and the backend store URI",
            rds_instance=name,
        )
    db = found["DBInstances"][0]
    status = db.get("DBInstanceStatus", "unknown")
    endpoint = db.get("Endpoint") or {}
    address, port = endpoint.get("Address"), endpoint.get("Port")
    evidence = {
        "rds_instance": name,
        "status": status,
        "engine": f"{db.get('Engine')} {db.get('EngineVersion', '')}".strip(),
        "endpoint": address,
        "port": port,
        "multi_az": db.get("MultiAZ"),
        "security_groups": [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])],
    }
    if status in _TRANSITIONAL:
        result = CheckResult.warned(
            f"{name} is {status} ({address}:{port})", hint="wait for it to finish", **evidence
        )
    elif status != "available":
        return CheckResult.failed(
            f"RDS instance {name} is {status}, not available",
            Classification.INFRASTRUCTURE,
            hint="start it or see its recent RDS events",
            **evidence,
        )
    elif settings.port and port and int(port) != settings.port:
        return CheckResult.failed(
            f"{name} listens on port {port}, not {settings.port} as configured",
            Classification.CONFIGURATION,
            hint="align database.port, the security groups and the backend store URI",
            **evidence,
        )
    else:
        result = CheckResult.passed(f"{name} is available at {address}:{port}", **evidence)
    result.data.update(endpoint=address, port=port)
    return result


# -- data.backend-store ---------------------------------------------------------------------

# MLflow logs this (SQLAlchemy's OperationalError) when a database call fails; real
# CloudWatch and moto both take a plain term.
BACKEND_ERROR_TERM = "OperationalError"
BACKEND_WINDOW_MINUTES = 60
# The driver's error as SQLAlchemy words it: "(psycopg2.OperationalError) connection to ...".
_DRIVER_ERROR = re.compile(r"\(?[\w.]*OperationalError\)?:?\s*(.*)", re.S)


@dataclass(frozen=True)
class BackendError:
    """What a database error text says went wrong, in words and as a class of problem."""

    summary: str
    classification: Classification
    hint: str


def explain_backend_error(text: str, database: str) -> BackendError:
    """Read a driver error (psycopg2 OperationalError text) the way a DBA would."""
    reason = _driver_reason(text)
    lowered = reason.lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return BackendError(
            f"MLflow's database login is rejected ({reason})",
            Classification.CONFIGURATION,
            f"the password MLflow's task is given does not match the database user's on "
            f"{database}: compare the secret its task definition names with the user's "
            "password (rotate one to match, then force a new deployment)",
        )
    if "does not exist" in lowered and "database" in lowered:
        return BackendError(
            f"MLflow's backend store names a database that does not exist ({reason})",
            Classification.CONFIGURATION,
            "fix the database name in MLflow's --backend-store-uri",
        )
    if any(w in lowered for w in ("timeout", "timed out")):
        why = "its connections time out"
    elif any(w in lowered for w in ("refused", "is the server running", "could not connect")):
        why = "nothing accepts its connections"
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        why = "the database host name does not resolve"
    elif "shutting down" in lowered or "starting up" in lowered or "recovery" in lowered:
        why = "the database is not accepting connections"
    else:
        why = "its database calls fail"
    return BackendError(
        f"MLflow cannot use its database {database}: {why} ({reason})",
        Classification.INFRASTRUCTURE,
        f"data.rds says whether {database} is running; network.security-groups whether "
        "MLflow's tasks may reach it",
    )


def _driver_reason(text: str) -> str:
    """The driver's own words, shortened: ``FATAL: password authentication failed for ...``."""
    match = _DRIVER_ERROR.search(text)
    reason = match.group(1) if match else text
    reason = reason.split("(Background on this error", 1)[0]
    if " failed: " in reason:
        reason = reason.split(" failed: ", 1)[1]
    reason = " ".join(reason.replace("\\n", " ").replace('\\"', '"').split())
    return reason[:160].rstrip(" .")


def _mlflow_service(ctx: CheckContext) -> EcsService | None:
    services = ctx.env.ecs.services if ctx.env.ecs else []
    return next((s for s in services if s.is_mlflow), None)


@dataclass
class _MlflowAnswer:
    """What MLflow said to one registry read: ok, or its error message (or nothing)."""

    ok: bool = False
    error: str | None = None


async def _ask_mlflow(ctx: CheckContext) -> _MlflowAnswer:
    """One registry read through the tracking URI, the way clients make it."""
    if ctx.env.mlflow is None or ctx.http is None:
        return _MlflowAnswer()
    headers, secrets = auth_headers(ctx)
    uri = ctx.env.mlflow.tracking_uri.rstrip("/")
    result = await probe(
        ctx.http,
        "GET",
        f"{uri}/api/2.0/mlflow/experiments/search?max_results=1",
        headers=headers,
        timeout=Budget(5.0, deadline=ctx.deadline).next_timeout(5.0),
        secrets=secrets,
    )
    if result.answered_by != Responder.MLFLOW:
        return _MlflowAnswer()  # MLflow was not reached: its answer says nothing here
    return _MlflowAnswer(ok=result.ok, error=result.mlflow_error())


def _names_database(message: str | None) -> bool:
    lowered = (message or "").lower()
    return any(m in lowered for m in ("operationalerror", "psycopg", "could not connect"))


@check(
    id="data.backend-store",
    layer="data",
    timeout=12,
    reads=["logs:FilterLogEvents"],
    description="MLflow can log in to and use its backend database: what MLflow answers a "
    "registry read, and OperationalError lines in its log group.",
)
async def backend_store(ctx: CheckContext) -> CheckResult:
    spec = _mlflow_service(ctx)
    if spec is None:
        return CheckResult.skipped("no MLflow service configured")
    database = ctx.env.database.rds_instance if ctx.env.database else "its database"
    evidence: dict[str, Any] = {"service": spec.name, "database": database}
    answer = await _ask_mlflow(ctx)
    if _names_database(answer.error):
        found = explain_backend_error(answer.error or "", database)
        evidence.update(source="answers", error=redact_text((answer.error or "")[:400]))
        return CheckResult.failed(found.summary, found.classification, found.hint, **evidence)
    if not spec.log_group:
        if answer.ok:
            return CheckResult.passed(f"MLflow reads its registry from {database}", **evidence)
        return CheckResult.skipped("MLflow was not reached and has no log_group to read")
    try:
        resp = await ctx.aws(
            "logs",
            "filter_log_events",
            logGroupName=spec.log_group,
            startTime=int((time.time() - BACKEND_WINDOW_MINUTES * 60) * 1000),
            filterPattern=BACKEND_ERROR_TERM,
            limit=50,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return CheckResult.skipped(f"log group {spec.log_group} does not exist", **evidence)
    events = sorted(resp.get("events", []), key=lambda e: e.get("timestamp", 0))
    evidence.update(log_group=spec.log_group, window_minutes=BACKEND_WINDOW_MINUTES)
    if not events:
        reads = "; it reads its registry" if answer.ok else ""
        return CheckResult.passed(
            f"no database errors from MLflow in the last {BACKEND_WINDOW_MINUTES} min{reads}",
            **evidence,
        )
    newest = events[-1]
    evidence.update(
        source="logs",
        error=redact_text(newest.get("message", ""))[:400],
        at=_iso(newest.get("timestamp", 0)),
    )
    if answer.ok:
        return CheckResult.warned(
            f"MLflow logged a database error at {evidence['at']}, but reads its registry now",
            hint=f"see logs.errors[{spec.name}] if it recurs",
            **evidence,
        )
    found = explain_backend_error(newest.get("message", ""), database)
    return CheckResult.failed(found.summary, found.classification, found.hint, **evidence)


def redact_text(text: str) -> str:
    return default_redactor().redact_text(text)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
