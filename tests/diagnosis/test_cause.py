"""Cause attribution through the real runner: a symptom upstream, its cause further down.

The checks here are small stand-ins that return what the real checks return in each world
(their evidence has the real shapes: a probe's record, a target group's targets, a blocked
security-group path); the sandbox tests (tests/e2e) run the real checks against real cascades.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import load_config
from bot.diagnosis.aws import AwsAccessDenied
from bot.diagnosis.cause import links as cause_links_of
from bot.diagnosis.checks.base import Check, CheckContext, CheckResult, Classification, Status
from bot.diagnosis.render import report_blocks, terminal_report
from bot.diagnosis.runner import Runner

ROOT = Path(__file__).resolve().parents[2]
MLFLOW = "hokusai-mlflow-development"
API = "hokusai-api-development"
PSYCOPG = (
    '{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "(psycopg2.OperationalError) '
    'connection to server at \\"10.0.2.15\\", port 5432 failed: Connection refused"}'
)


@pytest.fixture
def env():
    return load_config(ROOT / "hokusai.yml").environment()


def answer(status, who, excerpt="", path="/api/2.0/mlflow/experiments/search"):
    return {
        "request": {"method": "GET", "path": path, "headers": {}},
        "latency_ms": 3,
        "response": {"status": status, "headers": {}, "excerpt": excerpt},
        "answered_by": who,
        "reason": "test",
    }


def fixed(check_id, layer, result, *, per=None, subject_filter=None):
    async def run(ctx: CheckContext) -> CheckResult:
        if subject_filter is not None and ctx.subject != subject_filter:
            return CheckResult.passed(f"{check_id}[{ctx.subject}] fine")
        return result() if callable(result) else result

    return Check(id=check_id, layer=layer, description=check_id, run=run, per=per)


def cause_links(report):
    return cause_links_of(report.outcomes, report.dependencies)


def registry(*checks):
    return {c.id: c for c in checks}


def passing(check_id, layer, per=None):
    return fixed(check_id, layer, CheckResult.passed(f"{check_id} fine"), per=per)


async def test_a_stopped_database_is_the_cause_of_mlflow_503s(env):
    probe = fixed(
        "app.route-probe",
        "app",
        lambda: CheckResult.failed(
            f"{MLFLOW} answered 503 TEMPORARILY_UNAVAILABLE for /api/2.0/mlflow/experiments/search",
            Classification.APPLICATION,
            **answer(503, "mlflow", PSYCOPG),
        ),
        per="route",
        subject_filter="mlflow-direct",
    )
    rds = fixed(
        "data.rds",
        "data",
        CheckResult.failed(
            f"RDS instance {MLFLOW} is stopped, not available",
            Classification.INFRASTRUCTURE,
            status="stopped",
        ),
    )
    checks = registry(passing("dns.resolve", "dns"), probe, rds)
    report = await Runner(env, checks=checks, secrets={}).run()

    assert report.first_failure.id == "app.route-probe[mlflow-direct]"
    cause = report.to_json()["cause"]
    assert cause["id"] == "data.rds"
    assert cause["layer"] == "data" and cause["classification"] == "infrastructure"
    assert cause["confidence"] == "confirmed"
    assert cause["explains"] == ["app.route-probe[mlflow-direct]"]
    assert cause["observations"] == ["the answer names the database error"]
    # The verdict leads with the cause and names where it first shows.
    assert report.verdict.startswith(
        f"Cause: RDS instance {MLFLOW} is stopped, not available (Database, infrastructure)."
    )
    assert "first visible at Application" in report.verdict
    _, blocks, _ = report_blocks(report, target="registry.hokus.ai")
    shown = json.dumps(blocks)
    assert "Cause: *Database* (infrastructure)" in shown
    assert "First failing hop: *Application*" in shown
    assert terminal_report(report).splitlines()[1].startswith("Cause: Database")


def _targets(reason):
    return CheckResult.failed(
        "hokusai-mlflow-development-tg: 0 of 1 targets healthy",
        Classification.INFRASTRUCTURE,
        route="mlflow-direct",
        target_groups=[
            {
                "target_group": "hokusai-mlflow-development-tg",
                "arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/1",
                "targets": [{"target": "10.0.10.30:5000", "state": "unhealthy", "reason": reason}],
            }
        ],
    )


async def test_crashing_tasks_explain_unhealthy_targets(env):
    targets = fixed(
        "targets.health",
        "targets",
        lambda: _targets("Target.FailedHealthChecks"),
        per="route",
        subject_filter="mlflow-direct",
    )
    ecs = fixed(
        "compute.ecs-service",
        "compute",
        lambda: CheckResult.failed(
            f"{MLFLOW}: 0 of 1 tasks running; newest stopped task: Essential container in "
            "task exited (exit code 137)",
            Classification.APPLICATION,
            target_groups=["hokusai-mlflow-development-tg"],
        ),
        per="service",
        subject_filter=MLFLOW,
    )
    report = await Runner(env, checks=registry(targets, ecs), secrets={}).run()
    assert report.first_failure.id == "targets.health[mlflow-direct]"
    assert report.cause.id == f"compute.ecs-service[{MLFLOW}]"
    assert report.cause.confidence == "confirmed"
    assert report.cause.observations == [
        "the target group's tasks are hokusai-mlflow-development's"
    ]


async def test_a_security_group_dropping_the_load_balancer_explains_timeouts(env):
    targets = fixed(
        "targets.health",
        "targets",
        lambda: _targets("Target.Timeout"),
        per="route",
        subject_filter="mlflow-direct",
    )
    blocked = {
        "from": "load balancer hokusai-registry-development",
        "from_groups": ["sg-alb"],
        "to": MLFLOW,
        "to_groups": ["sg-mlflow"],
        "port": 5000,
        "inbound_allowed": False,
        "outbound_allowed": True,
    }
    network = fixed(
        "network.security-groups",
        "network",
        CheckResult.failed(
            f"load balancer hokusai-registry-development cannot reach {MLFLOW}",
            Classification.INFRASTRUCTURE,
            paths=[blocked],
        ),
    )
    report = await Runner(env, checks=registry(targets, network), secrets={}).run()
    assert report.first_failure.layer == "targets"
    assert report.cause.id == "network.security-groups"
    assert "sg-mlflow" in report.cause.observations[0]
    assert report.verdict.startswith("Cause: load balancer hokusai-registry-development")


async def test_abstains_when_what_could_explain_the_symptom_was_not_checked(env):
    probe = fixed(
        "app.route-probe",
        "app",
        lambda: CheckResult.failed(
            f"{MLFLOW} answered 500 for /api/2.0/mlflow/experiments/search",
            Classification.APPLICATION,
            **answer(500, "mlflow", '{"error_code": "INTERNAL_ERROR"}'),
        ),
        per="route",
        subject_filter="mlflow-direct",
    )

    async def denied(ctx):
        raise AwsAccessDenied("rds:DescribeDBInstances", "not authorized")

    rds = Check(id="data.rds", layer="data", description="rds", run=denied)
    report = await Runner(env, checks=registry(probe, rds), secrets={}).run()
    data = report.to_json()
    assert data["first_failure"]["id"] == "app.route-probe[mlflow-direct]"
    assert data["cause"]["confidence"] == "inconclusive"
    assert data["cause"]["id"] is None
    assert "not established" in report.verdict
    assert "AccessDenied on rds:DescribeDBInstances" in report.verdict


async def test_an_unexplained_application_error_is_only_likely_its_own_cause(env):
    probe = fixed(
        "app.route-probe",
        "app",
        lambda: CheckResult.failed(
            f"{MLFLOW} answered 500 for /api/2.0/mlflow/experiments/search",
            Classification.APPLICATION,
            **answer(500, "mlflow", '{"error_code": "INTERNAL_ERROR"}'),
        ),
        per="route",
        subject_filter="mlflow-direct",
    )
    report = await Runner(
        env, checks=registry(probe, passing("data.rds", "data")), secrets={}
    ).run()
    assert report.cause.id == "app.route-probe[mlflow-direct]"
    assert report.cause.confidence == "likely"
    assert "nothing the run checked further down explains it" in report.verdict


async def test_a_stated_dependency_links_a_proxy_error_to_its_upstream(env):
    """hokusai.yml states an edge the bot cannot see: the API needs a search service."""
    data = load_config(ROOT / "hokusai.yml").model_dump(by_alias=True)
    dev = data["environments"]["development"]
    dev["ecs"]["services"].append({"name": "hokusai-search-development", "port": 9200})
    dev["dependencies"] = [{"from": API, "to": "hokusai-search-development", "via": "SEARCH_URL"}]
    from bot.config import parse_config

    stated = parse_config(data).environment()
    probe = fixed(
        "app.route-probe",
        "app",
        lambda: CheckResult.failed(
            f"{API} answered 502 for /api/mlflow/...",
            Classification.INFRASTRUCTURE,
            **answer(502, "fastapi", '{"detail": "upstream unavailable"}'),
        ),
        per="route",
        subject_filter="mlflow-proxy",
    )
    ecs = fixed(
        "compute.ecs-service",
        "compute",
        lambda: CheckResult.failed(
            "hokusai-search-development: 0 of 2 tasks running", Classification.INFRASTRUCTURE
        ),
        per="service",
        subject_filter="hokusai-search-development",
    )
    report = await Runner(stated, checks=registry(probe, ecs), secrets={}).run()
    # The stopped service is read from ECS (a fact); the proxy's 502 is linked to it only
    # through the stated edge, so the link itself is "likely".
    assert report.cause.id == "compute.ecs-service[hokusai-search-development]"
    assert report.cause.explains == ["app.route-probe[mlflow-proxy]"]
    links = {(lk.cause, lk.effect): lk.confidence for lk in cause_links(report)}
    assert links[report.cause.id, "app.route-probe[mlflow-proxy]"] == "likely"
    edges = report.to_json()["dependencies"]
    assert {
        "from": API,
        "to": "hokusai-search-development",
        "kind": "stated",
        "via": "SEARCH_URL",
    } in edges


def test_a_stated_dependency_must_name_a_known_service():
    from bot.config import ConfigError, parse_config

    data = load_config(ROOT / "hokusai.yml").model_dump(by_alias=True)
    data["environments"]["development"]["dependencies"] = [{"from": API, "to": "nope"}]
    with pytest.raises(ConfigError, match=r"dependencies\.0\.to: 'nope' is not one of"):
        parse_config(data)


async def test_two_unrelated_failures_keep_the_first_as_its_own_cause(env):
    rules = fixed(
        "routing.listener-rules",
        "routing",
        CheckResult.failed("/api/2.0/mlflow/* reaches the API", Classification.CONFIGURATION),
        per="route",
        subject_filter="mlflow-direct",
    )
    rds = fixed(
        "data.rds",
        "data",
        CheckResult.failed("RDS instance is stopped", Classification.INFRASTRUCTURE),
    )
    report = await Runner(env, checks=registry(rules, rds), secrets={}).run()
    assert report.cause.id == "routing.listener-rules[mlflow-direct]"
    assert report.cause.explains == []
    assert report.outcome("data.rds").status is Status.FAIL
