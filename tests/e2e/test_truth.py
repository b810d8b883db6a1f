"""The scenario truth table, and each class of mistake from the field on both platform shapes.

Every scenario of both shapes is built in a sandbox and diagnosed with every real check; the
cause named must be exactly the expected one (bench/truth.py prints the same table). The
class tests then read what a responder would: the cause, the verdict, who answered.
"""

from __future__ import annotations

import json

import pytest

from bench.truth import EXACT, grade
from bot.diagnosis.checks.base import Status
from bot.diagnosis.render import report_blocks, terminal_report
from bot.sandbox.world import expected_cause, shape_scenarios

SHAPES = ("hokusai", "compact")
CASES = [(shape, scenario) for shape in SHAPES for scenario in shape_scenarios(shape)]
NAMES = {
    "hokusai": {"mlflow": "hokusai-mlflow-development", "api": "hokusai-api-development",
                "route": "mlflow-proxy"},
    "compact": {"mlflow": "kumo-models-staging", "api": "kumo-gateway-staging",
                "route": "registry"},
}  # fmt: skip


def _needs_database(diagnosed, request, scenario):
    database = scenario in ("db-stopped", "db-password-rejected")
    if database and request.getfixturevalue("shared_database_mlflow") is None:
        pytest.skip("needs PostgreSQL (initdb, pg_ctl) and psycopg2 for the real cascade")


@pytest.mark.parametrize(("shape", "scenario"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_the_cause_named_is_exactly_the_expected_one(diagnosed, request, shape, scenario):
    _needs_database(diagnosed, request, scenario)
    report = diagnosed(scenario, shape)
    expected = expected_cause(scenario, shape)
    got = report.cause.id if report.cause else None
    assert grade(expected, report) == EXACT, (
        f"{shape}/{scenario}: expected {expected}, got {got} "
        f"({report.cause.confidence if report.cause else '-'}): {report.verdict}"
    )


# -- 1. symptom upstream, cause downstream ------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_a_stopped_database_is_named_behind_mlflows_503(diagnosed, request, shape):
    _needs_database(diagnosed, request, "db-stopped")
    report = diagnosed("db-stopped", shape)
    assert report.first_failure.layer == "app", report.verdict
    assert report.cause.id == "data.rds" and report.cause.confidence == "confirmed"
    assert report.first_failure.id in report.cause.explains
    assert report.verdict.startswith("Cause: RDS instance"), report.verdict
    assert "is stopped" in report.verdict and "first visible at Application" in report.verdict
    # MLflow's 503 is credited to MLflow, also when it comes through the proxy.
    proxied = report.outcome(f"app.route-probe[{NAMES[shape]['route']}]")
    assert proxied.result.summary.startswith("MLflow answered 503"), proxied.result.summary
    assert proxied.result.evidence["answered_by"] == "mlflow"
    assert "psycopg2" in json.dumps(proxied.result.evidence)


@pytest.mark.parametrize("shape", SHAPES)
def test_crashing_tasks_are_named_behind_what_the_proxy_and_targets_show(diagnosed, shape):
    report = diagnosed("crash-loop", shape)
    service = NAMES[shape]["mlflow"]
    assert report.cause.id == f"compute.ecs-service[{service}]", report.verdict
    assert "exit code 137" in report.cause.summary
    # hokusai: first visible at the target group; compact (no target group): the ECS hop is
    # the first failure itself, and it explains Cloud Map and the proxy's 502.
    if shape == "hokusai":
        assert report.first_failure.id in report.cause.explains
    else:
        assert report.first_failure.id == report.cause.id
        assert f"app.route-probe[{NAMES[shape]['route']}]" in report.cause.explains


@pytest.mark.parametrize("shape", SHAPES)
def test_a_security_group_dropping_the_load_balancer_explains_the_timeouts(diagnosed, shape):
    report = diagnosed("sg-alb-blocked", shape)
    assert report.first_failure.layer == "targets", report.verdict
    assert report.cause.id == "network.security-groups"
    assert report.cause.confidence == "confirmed"
    targets = report.first_failure.result.evidence["target_groups"][0]["targets"]
    assert {t["reason"] for t in targets} == {"Target.Timeout"}
    # The final view leads with the cause and the command that opens the path.
    _, blocks, _ = report_blocks(report, target="the registry")
    shown = json.dumps(blocks)
    assert "Fix (review it, then run it yourself: Hokusai only reads)" in shown
    assert "aws ec2 authorize-security-group-ingress --region" in shown
    assert "aws ec2 authorize-security-group-ingress" in terminal_report(report)


# -- 2. auth refusals belong to the auth hop ----------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_a_gateway_wanting_another_scheme_is_an_auth_finding(diagnosed, shape):
    report = diagnosed("auth-scheme", shape)
    route = NAMES[shape]["route"]
    auth = report.outcome(f"auth.api-key[{route}]")
    assert report.cause.id == auth.id, report.verdict
    assert "accepts the key as Authorization: Token" in auth.result.summary
    assert "WWW-Authenticate: Token" in auth.result.summary
    assert "wrong, expired or revoked" not in json.dumps(report.to_json())
    # What the key check blocks is not an application failure.
    for check_id in (f"app.route-probe[{route}]", "app.mlflow-client", "app.mlflow-registry"):
        blocked = report.outcome(check_id)
        assert blocked.status is Status.SKIPPED, (check_id, blocked.result.summary)
        assert blocked.result.summary.startswith("blocked by auth")


# -- 3. the public name must alias an internet-facing load balancer ----------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_an_internal_load_balancer_behind_the_public_name_is_the_cause(diagnosed, shape):
    report = diagnosed("dns-internal", shape)
    assert report.cause.id == "dns.route53-alias", report.verdict
    assert "an internal load balancer" in report.cause.summary
    assert report.outcome("dns.resolve").status is Status.FAIL
    # Its listener rules are not blamed: the rules of the load balancers that route pass.
    rules = [o for o in report.outcomes if o.check_id == "routing.listener-rules"]
    assert rules and all(o.status is Status.PASS for o in rules), [o.result.summary for o in rules]


# -- 4. no finding from an assumed topology ------------------------------------------------------


def test_allowed_hosts_are_judged_by_the_host_headers_that_reach_mlflow(diagnosed):
    """compact: the public name never reaches MLflow (only the gateway's upstream does)."""
    report = diagnosed("healthy", "compact")
    config = report.outcome("compute.task-config[kumo-models-staging]")
    assert config.status is Status.PASS, config.result.summary
    text = json.dumps(config.result.evidence)
    assert "models.svc.local:5000 is allowed" in text
    # The public name is not a Host header MLflow gets here: no finding checks it.
    messages = [f["message"] for f in config.result.evidence["findings"]]
    assert not any(m.startswith("models.kumo.example") for m in messages), messages
    gateway = report.outcome("compute.task-config[kumo-gateway-staging]")
    assert gateway.status is Status.PASS, gateway.result.summary
    assert "MODEL_STORE_URL reaches kumo-models-staging" in json.dumps(gateway.result.evidence)
    edges = report.to_json()["dependencies"]
    assert any(
        e["from"] == "kumo-gateway-staging"
        and e["to"] == "kumo-models-staging"
        and e["via"].startswith("MODEL_STORE_URL")
        for e in edges
    ), edges


@pytest.mark.parametrize("shape", SHAPES)
def test_an_upstream_on_the_wrong_port_is_found_by_its_host_not_its_name(diagnosed, shape):
    report = diagnosed("proxy-upstream-wrong-port", shape)
    api, mlflow = NAMES[shape]["api"], NAMES[shape]["mlflow"]
    assert report.cause.id == f"compute.task-config[{api}]", report.verdict
    assert f"uses port 5001, but {mlflow} listens on 5000" in report.cause.summary
    assert report.outcome(f"compute.task-config[{mlflow}]").status is Status.PASS


# -- 5. AWS failing is not infrastructure missing -----------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_access_denied_is_a_finding_about_access_never_a_missing_resource(diagnosed, shape):
    report = diagnosed("aws-access-denied", shape)
    assert report.first_failure is None and report.cause is None, report.verdict
    assert "AccessDenied on elasticloadbalancing:DescribeRules" in report.verdict
    assert "not proven healthy" in report.verdict
    denied = [o for o in report.outcomes if o.status is Status.ERROR]
    assert denied and all(
        o.result.summary == "not checked: AccessDenied on elasticloadbalancing:DescribeRules"
        for o in denied
    ), [o.result.summary for o in denied]
    assert "exists" not in report.verdict and "missing" not in report.verdict


# -- 6 and 7 are in test_scenarios.py (scoped runs through Slack) and below --------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_with_no_rule_matching_the_default_action_is_named(diagnosed, shape):
    report = diagnosed("rule-missing", shape)
    assert "no rule matches; the listener's default action answers" in report.cause.summary


def test_nothing_fails_in_the_red_herring_world(diagnosed):
    for shape in SHAPES:
        report = diagnosed("red-herring", shape)
        assert report.first_failure is None and report.cause is None, report.verdict
        warned = [o.id for o in report.outcomes if o.status is Status.WARN]
        assert len(warned) == 1, warned
