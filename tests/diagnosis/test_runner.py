"""The runner: concurrency, timeouts, errors, dependencies, scopes and the first failing hop."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bot.config import load_config
from bot.diagnosis.checks.base import (
    LAYERS,
    Check,
    CheckContext,
    CheckOutcome,
    CheckResult,
    Classification,
    Status,
)
from bot.diagnosis.runner import DiagnoseReport, Runner, UnknownScope, first_failing_hop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env():
    return load_config(ROOT / "hokusai.yml").environment()


def make(check_id, layer, fn=None, *, timeout=2.0, needs=(), per=None, status=Status.PASS):
    async def default(ctx: CheckContext) -> CheckResult:
        return CheckResult(status, f"{check_id} {status}")

    return Check(
        id=check_id,
        layer=layer,
        description=check_id,
        run=fn or default,
        timeout=timeout,
        needs=tuple(needs),
        per=per,
    )


def registry(*checks: Check) -> dict[str, Check]:
    return {c.id: c for c in checks}


def sleeper(seconds: float):
    async def run(ctx: CheckContext) -> CheckResult:
        await asyncio.sleep(seconds)
        return CheckResult.passed("slept")

    return run


async def test_independent_checks_run_concurrently(env):
    checks = registry(*(make(f"app.c{i}", "app", sleeper(0.2)) for i in range(8)))
    start = time.monotonic()
    report = await Runner(env, checks=checks, secrets={}).run()
    elapsed = time.monotonic() - start
    assert [o.status for o in report.outcomes] == [Status.PASS] * 8
    assert elapsed < 0.6, f"8 checks of 0.2 s took {elapsed:.2f} s: not concurrent"


async def test_sequential_mode_runs_one_at_a_time(env):
    checks = registry(*(make(f"app.c{i}", "app", sleeper(0.1)) for i in range(4)))
    start = time.monotonic()
    await Runner(env, checks=checks, secrets={}, concurrency=1).run()
    assert time.monotonic() - start >= 0.4


async def test_a_hanging_check_costs_its_timeout_and_others_still_report(env):
    async def hang(ctx):
        await asyncio.Event().wait()

    checks = registry(
        make("edge.hangs", "edge", hang, timeout=0.3),
        make("dns.quick", "dns"),
        make("data.quick", "data", sleeper(0.1)),
    )
    start = time.monotonic()
    report = await Runner(env, checks=checks, secrets={}).run()
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 0.8
    hung = report.outcome("edge.hangs")
    assert hung.status is Status.TIMEOUT
    assert hung.result.summary == "did not answer within 0.3s"
    assert report.outcome("dns.quick").status is Status.PASS
    assert report.outcome("data.quick").status is Status.PASS


async def test_a_hung_dependency_costs_its_timeout_then_dependents_run(env):
    async def hang(ctx):
        await asyncio.sleep(60)

    seen = {}

    async def dependent(ctx):
        seen["upstream"] = ctx.upstream("dns.hangs")
        return CheckResult.skipped("no load balancer to look at")

    checks = registry(
        make("dns.hangs", "dns", hang, timeout=0.2),
        make("edge.after", "edge", dependent, needs=["dns.hangs"]),
    )
    start = time.monotonic()
    report = await Runner(env, checks=checks, secrets={}).run()
    assert time.monotonic() - start < 0.6
    assert seen["upstream"].status is Status.TIMEOUT
    assert report.outcome("edge.after").status is Status.SKIPPED


async def test_exceptions_become_errors_with_one_line(env):
    async def boom(ctx):
        raise KeyError("LoadBalancers")

    report = await Runner(env, checks=registry(make("edge.boom", "edge", boom)), secrets={}).run()
    outcome = report.outcome("edge.boom")
    assert outcome.status is Status.ERROR
    assert outcome.result.summary == "KeyError: 'LoadBalancers'"
    assert "\n" not in outcome.result.summary
    assert report.first_failure is None


async def test_dependencies_run_after_their_needs_and_see_their_data(env):
    order = []

    async def lb(ctx):
        order.append("edge")
        await asyncio.sleep(0.05)
        result = CheckResult.passed("lb found")
        result.data["lb_arn"] = "arn:lb"
        return result

    async def rules(ctx):
        order.append(f"routing[{ctx.subject}]")
        return CheckResult.passed(f"rules of {ctx.upstream('edge.lb').result.data['lb_arn']}")

    checks = registry(
        make("routing.rules", "routing", rules, needs=["edge.lb"], per="route"),
        make("edge.lb", "edge", lb),
    )
    report = await Runner(env, checks=checks, secrets={}).run()
    assert order[0] == "edge"
    assert sorted(order[1:]) == ["routing[mlflow-direct]", "routing[mlflow-proxy]"]
    assert report.outcome("routing.rules[mlflow-proxy]").result.summary == "rules of arn:lb"
    # Request-path order in the report regardless of registration order.
    assert [o.layer for o in report.outcomes] == ["edge", "routing", "routing"]


async def test_per_route_needs_bind_to_the_same_route(env):
    async def targets(ctx):
        up = ctx.upstream_all("routing.rules")
        return CheckResult.passed(",".join(o.subject for o in up))

    checks = registry(
        make("routing.rules", "routing", per="route"),
        make("targets.health", "targets", targets, needs=["routing.rules"], per="route"),
    )
    report = await Runner(env, checks=checks, secrets={}).run(["mlflow-direct"])
    assert report.outcome("targets.health[mlflow-direct]").result.summary == "mlflow-direct"
    assert report.outcome("targets.health[mlflow-proxy]") is None


@pytest.fixture
def layered():
    return registry(
        make("dns.resolve", "dns"),
        make("edge.load-balancer", "edge", per="load_balancer", needs=["dns.resolve"]),
        make("routing.listener-rules", "routing", per="route", needs=["edge.load-balancer"]),
        make("compute.ecs-service", "compute", per="service"),
        make("logs.errors", "logs", per="service"),
        make("data.rds", "data"),
    )


def ids(instances):
    return [i.id for i in instances]


def test_scope_by_layer_pulls_in_needs(env, layered):
    runner = Runner(env, checks=layered, secrets={})
    assert ids(runner.select(["routing"])) == [
        "dns.resolve",
        "edge.load-balancer[hokusai-main-development]",
        "edge.load-balancer[hokusai-registry-development]",
        "routing.listener-rules[mlflow-proxy]",
        "routing.listener-rules[mlflow-direct]",
    ]


def test_scope_by_check_id_and_instance_id(env, layered):
    runner = Runner(env, checks=layered, secrets={})
    assert ids(runner.select(["data.rds"])) == ["data.rds"]
    assert ids(runner.select(["compute.ecs-service[hokusai-api-development]"])) == [
        "compute.ecs-service[hokusai-api-development]"
    ]


def test_scope_by_route_walks_that_routes_path(env, layered):
    selected = ids(Runner(env, checks=layered, secrets={}).select(["mlflow-proxy"]))
    assert "routing.listener-rules[mlflow-proxy]" in selected
    assert "routing.listener-rules[mlflow-direct]" not in selected
    # mlflow-proxy is served by the API service: its service checks, not MLflow's.
    assert "compute.ecs-service[hokusai-api-development]" in selected
    assert "compute.ecs-service[hokusai-mlflow-development]" not in selected
    assert {"dns.resolve", "data.rds"} <= set(selected)


def test_scope_by_service(env, layered):
    selected = ids(Runner(env, checks=layered, secrets={}).select(["hokusai-mlflow-development"]))
    assert selected == [
        "compute.ecs-service[hokusai-mlflow-development]",
        "logs.errors[hokusai-mlflow-development]",
    ]


async def test_pulled_in_checks_are_reported_as_such(env, layered):
    report = await Runner(env, checks=layered, secrets={}).run(["edge"])
    assert report.pulled_in == ["dns.resolve"]
    assert report.outcome("dns.resolve").status is Status.PASS


def test_unknown_scope_lists_valid_scopes_on_one_line(env, layered):
    with pytest.raises(UnknownScope) as info:
        Runner(env, checks=layered, secrets={}).select(["routin"])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown scope 'routin'; valid scopes: dns, edge, routing")
    assert "mlflow-proxy" in message and "hokusai-api-development" in message


def _outcome(check_id, layer, status, classification=None):
    return CheckOutcome(
        check_id,
        check_id,
        layer,
        None,
        CheckResult(status, f"{check_id} said so", {}, classification),
        1,
    )


def test_first_failing_hop_ignores_context_layers_and_uses_path_order():
    outcomes = [
        _outcome("changes.deployments", "changes", Status.FAIL, Classification.CONFIGURATION),
        _outcome("logs.errors", "logs", Status.FAIL, Classification.APPLICATION),
        _outcome("data.rds", "data", Status.FAIL, Classification.INFRASTRUCTURE),
        _outcome("dns.resolve", "dns", Status.PASS),
        _outcome("routing.listener-rules", "routing", Status.FAIL, Classification.CONFIGURATION),
        _outcome("edge.load-balancer", "edge", Status.ERROR),
    ]
    assert first_failing_hop(outcomes).id == "routing.listener-rules"
    assert first_failing_hop(outcomes[:2]) is None


async def test_report_json_contract_and_verdict(env):
    async def rules(ctx):
        return CheckResult.failed(
            "/api/mlflow/* is sent to hokusai-mlflow-development-tg by rule 10",
            Classification.CONFIGURATION,
            hint="fix the rule",
            rule={"priority": "10"},
        )

    checks = registry(make("dns.resolve", "dns"), make("routing.listener-rules", "routing", rules))
    report = await Runner(env, checks=checks, secrets={}).run()
    assert isinstance(report, DiagnoseReport)
    data = json.loads(json.dumps(report.to_json()))
    assert list(data) == [
        "env",
        "scopes",
        "started_at",
        "duration_ms",
        "checks",
        "first_failure",
        "cause",
        "verdict",
        "dependencies",
    ]
    assert data["env"] == "development"
    assert data["started_at"].endswith("Z")
    assert list(data["checks"][1]) == [
        "id",
        "layer",
        "status",
        "summary",
        "classification",
        "evidence",
        "duration_ms",
        "hint",
    ]
    assert data["checks"][1]["hint"] == "fix the rule"
    assert data["first_failure"] == {
        "id": "routing.listener-rules",
        "layer": "routing",
        "classification": "configuration",
        "summary": "/api/mlflow/* is sent to hokusai-mlflow-development-tg by rule 10",
    }
    # Nothing explains the rule: it is its own cause, read straight from the listener.
    assert data["cause"] == {
        "id": "routing.listener-rules",
        "layer": "routing",
        "classification": "configuration",
        "summary": "/api/mlflow/* is sent to hokusai-mlflow-development-tg by rule 10",
        "explains": [],
        "confidence": "confirmed",
        "observations": [],
    }
    assert data["verdict"] == (
        "The request path first breaks at Listener rules: /api/mlflow/* is sent to "
        "hokusai-mlflow-development-tg by rule 10 — a configuration problem."
    )
    # The dependency model: the public name reaches each route's service.
    assert {
        "from": "public",
        "to": "hokusai-api-development",
        "kind": "route",
        "via": "route mlflow-proxy (/api/mlflow/*)",
    } in data["dependencies"]


async def test_on_outcome_is_called_as_each_finishes(env):
    # The slow check passes only if it hears of the fast one's result while it still runs:
    # progress reported at the end of the run would leave it waiting until its timeout.
    seen = []
    fast_reported = asyncio.Event()

    async def record(outcome):
        seen.append(outcome.id)
        if outcome.id == "dns.fast":
            fast_reported.set()

    async def slow(ctx: CheckContext) -> CheckResult:
        await fast_reported.wait()
        return CheckResult(Status.PASS, "heard of dns.fast while running")

    checks = registry(make("dns.fast", "dns"), make("data.slow", "data", slow, timeout=5.0))
    report = await Runner(env, checks=checks, secrets={}).run(on_outcome=record)
    assert seen == ["dns.fast", "data.slow"]
    assert report.outcome("data.slow").status is Status.PASS


async def test_a_broken_progress_callback_does_not_stop_the_run(env):
    def broken(outcome):
        raise RuntimeError("slack is down")

    report = await Runner(env, checks=registry(make("dns.a", "dns")), secrets={}).run(
        on_outcome=broken
    )
    assert report.outcome("dns.a").status is Status.PASS


async def test_healthy_run_verdict(env):
    report = await Runner(env, checks=registry(make("dns.a", "dns")), secrets={}).run()
    assert report.first_failure is None
    assert (
        report.verdict == "Every hop on the request path answered as configured (1 check passed)."
    )


async def test_access_denied_becomes_an_error_naming_the_permission(env):
    from bot.diagnosis.aws import AwsAccessDenied

    async def denied(ctx):
        raise AwsAccessDenied("elasticloadbalancing:DescribeRules", "not authorized")

    report = await Runner(
        env, checks=registry(make("routing.r", "routing", denied)), secrets={}
    ).run()
    outcome = report.outcome("routing.r")
    assert outcome.status is Status.ERROR
    # A permission gap is a finding about the bot's access, never a missing resource.
    assert (
        outcome.result.summary == "not checked: AccessDenied on elasticloadbalancing:DescribeRules"
    )
    assert report.verdict == (
        "No hop failed, but not everything was checked — AccessDenied on "
        "elasticloadbalancing:DescribeRules (routing.r); the path is not proven healthy."
    )
    assert "elasticloadbalancing:DescribeRules" in outcome.result.hint


def _scenarios():
    from bot.sandbox.platform import all_scenarios

    # Every other scenario has its own hop test in tests/diagnosis/checks (about 2 s of moto each).
    return [all_scenarios()[name] for name in ("healthy", "seed-outage")]


@pytest.mark.parametrize("scenario", _scenarios(), ids=lambda s: s.name)
async def test_all_hops_over_the_sandbox_healthy_and_seed_outage(scenario, monkeypatch):
    """Every check but the HTTP ones, over the whole platform: healthy passes, the seed fails
    at the hop SCENARIOS names."""
    import boto3
    import httpx
    from moto import mock_aws

    from bot.config import DnsSettings
    from bot.diagnosis.aws import AwsCaller, read_only_session
    from bot.sandbox.dns_server import DnsServer
    from bot.sandbox.platform import build_platform

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    seed = load_config(ROOT / "hokusai.yml").environment()
    # app and auth probe over HTTP and have their own end-to-end tests with real stand-ins.
    layers = [layer for layer in LAYERS if layer not in ("app", "auth")]

    def offline(request):
        raise httpx.ConnectError("offline", request=request)

    with DnsServer({seed.public.hostname: ["52.44.61.20"]}) as dns_server, mock_aws():
        env = seed.model_copy(update={"dns": DnsSettings(nameservers=[dns_server.address])})
        build_platform(boto3.Session(region_name=env.region), env, scenario=scenario.name)
        aws = AwsCaller(read_only_session(env.region))
        async with httpx.AsyncClient(transport=httpx.MockTransport(offline)) as http:
            report = await Runner(env, aws=aws, http=http, secrets={}).run(layers)
        aws.close()
    first = report.first_failure
    if scenario.first_failing_layer is None:
        assert first is None, report.verdict
        return
    assert first is not None, f"{scenario.name}: nothing failed; {report.verdict}"
    assert first.layer == scenario.first_failing_layer, report.verdict
    assert str(first.result.classification) == scenario.classification, report.verdict
    if scenario.first_failing_check:
        assert first.id == scenario.first_failing_check, report.verdict


async def test_verdict_names_the_cause_most_unfinished_checks_share(env):
    async def unreachable(ctx: CheckContext) -> CheckResult:
        raise ConnectionError('Could not connect to the endpoint URL: "http://127.0.0.1:9/"')

    checks = registry(
        make("edge.lb", "edge", unreachable),
        make("compute.svc", "compute", unreachable),
        make("data.db", "data", unreachable),
        make("dns.resolve", "dns"),
    )
    report = await Runner(env, checks=checks, secrets={}).run()
    assert report.first_failure is None
    assert "3 of 3 unfinished check(s) could not run" in report.verdict
    assert "Could not connect to the endpoint URL" in report.verdict
