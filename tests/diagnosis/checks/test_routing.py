"""Routing hop: listener rules evaluated like an ALB, and the seed outage named."""

from __future__ import annotations

import pytest

from bot.diagnosis.checks.base import Status
from bot.diagnosis.checks.routing import (
    ListenerRule,
    Probe,
    condition_matches,
    evaluate,
    wildcard_match,
)


def _rule(priority, *conditions, tg="arn:aws:elasticloadbalancing:r:1:targetgroup/tg/1"):
    return ListenerRule.from_api(
        {
            "RuleArn": f"rule-{priority}",
            "Priority": str(priority),
            "IsDefault": priority == "default",
            "Conditions": list(conditions),
            "Actions": [{"Type": "forward", "TargetGroupArn": tg}],
        }
    )


def _path(*values):
    return {"Field": "path-pattern", "PathPatternConfig": {"Values": list(values)}}


PROBE = Probe.for_route("registry.hokus.ai", "/api/2.0/mlflow/experiments/search?max_results=1")


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/api/*", "/api/2.0/mlflow/experiments/search", True),
        ("/api/2.0/mlflow/*", "/api/2.0/mlflow/experiments/search", True),
        ("/api/mlflow/*", "/api/2.0/mlflow/experiments/search", False),
        ("/API/*", "/api/x", False),  # path patterns are case-sensitive
        ("/api/?.0/*", "/api/2.0/x", True),
        ("/api/?.0/*", "/api/20.0/x", False),
        ("/api/[a]/*", "/api/a/x", False),  # brackets are literal, unlike fnmatch
        ("/api/mlflow", "/api/mlflow/", False),
    ],
)
def test_path_pattern_wildcards(pattern, path, expected):
    assert wildcard_match(pattern, path, case_sensitive=True) is expected


def test_path_pattern_ignores_the_query_string_and_host_is_case_insensitive():
    assert condition_matches(_path("/api/2.0/mlflow/experiments/search"), PROBE)
    host = {"Field": "host-header", "HostHeaderConfig": {"Values": ["*.HOKUS.ai"]}}
    assert condition_matches(host, PROBE)
    other = {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.hokus.ai"]}}
    assert not condition_matches(other, PROBE)


def test_query_method_and_header_conditions():
    query = {
        "Field": "query-string",
        "QueryStringConfig": {"Values": [{"Key": "max_*", "Value": "1"}]},
    }
    assert condition_matches(query, PROBE)
    query_miss = {"Field": "query-string", "QueryStringConfig": {"Values": [{"Value": "2"}]}}
    assert not condition_matches(query_miss, PROBE)
    post = {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}}
    assert not condition_matches(post, PROBE)
    header = {
        "Field": "http-header",
        "HttpHeaderConfig": {"HttpHeaderName": "X-Canary", "Values": ["*"]},
    }
    assert not condition_matches(header, PROBE)


def test_rules_are_tried_by_numeric_priority_with_the_default_last():
    rules = [
        _rule("default"),
        _rule(100, _path("/api/*")),
        _rule(9, _path("/api/2.0/*")),
        _rule(20, _path("/api/2.0/mlflow/*")),
    ]
    assert evaluate(rules, PROBE).priority == 9  # 9 < 20 < 100 as numbers, not strings
    assert evaluate(rules, Probe.for_route("registry.hokus.ai", "/")).priority is None


def test_all_conditions_of_a_rule_must_match():
    host = {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.hokus.ai"]}}
    rules = [_rule(1, host, _path("/api/*")), _rule(2, _path("/api/*")), _rule("default")]
    assert evaluate(rules, PROBE).priority == 2


async def test_healthy_routes_reach_their_services(sandbox):
    report = await sandbox("healthy").diagnose(["routing"])
    proxy = report.outcome("routing.listener-rules[mlflow-proxy]")
    direct = report.outcome("routing.listener-rules[mlflow-direct]")
    assert proxy.status is Status.PASS, proxy.result.summary
    assert direct.status is Status.PASS, direct.result.summary
    assert direct.result.summary == (
        "/api/2.0/mlflow/* -> hokusai-mlflow-development-tg (hokusai-mlflow-development) via "
        "rule 200 (host registry.hokus.ai, path /api/2.0/mlflow/*) on "
        "hokusai-registry-development:443"
    )
    assert direct.result.evidence["listener_port"] == 443


async def test_seed_outage_names_the_rule_that_sends_mlflow_paths_to_the_api(sandbox):
    # With the ECS half: the target groups' owners come from the services' own settings.
    report = await sandbox("seed-outage", ecs=True).diagnose()
    first = report.first_failure
    assert first.id == "routing.listener-rules[mlflow-direct]"
    assert first.layer == "routing"
    assert str(first.result.classification) == "configuration"
    assert first.result.summary == (
        "/api/2.0/mlflow/* is sent to hokusai-api-development-tg (hokusai-api-development) by "
        "rule 10 (path /api/*) on hokusai-registry-development:443, not to "
        "hokusai-mlflow-development; rule 200 (host registry.hokus.ai, path /api/2.0/mlflow/*) "
        "is shadowed by it"
    )
    assert "rule 200 a better (lower) priority than 10" in first.result.hint
    matched = first.result.evidence["matched_rule"]
    assert (
        matched["priority"] == 10 and matched["action"] == "forward to hokusai-api-development-tg"
    )
    assert report.verdict.startswith(
        "The request path first breaks at Listener rules: /api/2.0/mlflow/* is sent to "
        "hokusai-api-development-tg"
    )
    # The failure sentence, then the scope it was found in and what the run did not look at.
    _, scope = report.verdict.split("— a configuration problem. ", 1)
    assert scope.startswith("Scope: dns, edge, routing, targets, data; not looked at: ECS")
    assert scope.endswith("this run does not show the rest of the path is healthy.")
    # Hops before it are fine; the proxy route still reaches the API it is meant for.
    assert report.outcome("dns.route53-alias").status is Status.PASS
    assert report.outcome("routing.listener-rules[mlflow-proxy]").status is Status.PASS


async def test_a_broad_rule_shadowing_the_proxy_route(sandbox):
    report = await sandbox("shadowed-rule").diagnose()
    first = report.first_failure
    assert first.id == "routing.listener-rules[mlflow-proxy]"
    assert "sent to hokusai-mlflow-development-tg (hokusai-mlflow-development) by rule 10" in (
        first.result.summary
    )
    assert "not to hokusai-api-development; rule 100" in first.result.summary
    assert first.result.summary.endswith("is shadowed by it")


async def test_a_route_answered_by_the_listeners_fixed_404(sandbox):
    report = await sandbox("rule-missing").diagnose()
    first = report.first_failure
    assert first.id == "routing.listener-rules[mlflow-direct]"
    assert str(first.result.classification) == "configuration"
    assert first.result.summary == (
        "/api/2.0/mlflow/* is answered by hokusai-registry-development:443 itself: the default "
        "rule (anything no other rule matched) -> fixed response 404 'Not Found'; no rule "
        "matches; the listener's default action answers; no rule forwards to "
        "hokusai-mlflow-development"
    )


async def test_listeners_that_redirect_to_each_other_fail_as_configuration():
    from bot.config import load_config
    from bot.diagnosis.checks import routing
    from bot.diagnosis.checks.base import CheckContext, Classification, Status
    from tests.conftest import REPO

    env = load_config(REPO / "hokusai.yml").environment()

    def redirect_to(port: int) -> dict:
        action = {"Type": "redirect", "RedirectConfig": {"Port": str(port), "Protocol": "HTTPS"}}
        return {
            "Rules": [
                {
                    "RuleArn": "r",
                    "Priority": "default",
                    "IsDefault": True,
                    "Conditions": [],
                    "Actions": [action],
                }
            ]
        }

    async def aws(service: str, operation: str, **params):
        if operation == "describe_load_balancers":
            return {
                "LoadBalancers": [
                    {"LoadBalancerName": n, "LoadBalancerArn": "arn:" + n}
                    for n in env.load_balancers
                ]
            }
        if operation == "describe_listeners":
            return {
                "Listeners": [
                    {"Port": 80, "ListenerArn": "l80"},
                    {"Port": 443, "ListenerArn": "l443"},
                ]
            }
        if operation == "describe_rules":
            return redirect_to(443 if params["ListenerArn"] == "l80" else 80)
        return {"services": []}

    ctx = CheckContext(env, subject=env.routes[0].name, aws_call=aws, upstream={})
    result = await routing.listener_rules.run(ctx)
    assert result.status is Status.FAIL
    assert result.classification is Classification.CONFIGURATION
    assert "redirect to each other" in result.summary
