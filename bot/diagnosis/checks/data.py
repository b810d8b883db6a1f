"""Data hop: the RDS instance behind MLflow is available; its endpoint and port."""

from __future__ import annotations

from botocore.exceptions import ClientError

from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check

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
