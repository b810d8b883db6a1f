"""The checks against a real MLflow server behind the API stand-in and the load-balancer proxy.

Healthy, every check passes; each broken scenario is named by the check a person would read.
"""

from __future__ import annotations

import asyncio
import json
import time

from bot.diagnosis.checks.app import route_probe
from bot.diagnosis.checks.auth import api_key_accepted, unauthenticated_refused
from bot.diagnosis.checks.base import Classification, Status
from bot.diagnosis.checks.mlflow import mlflow_client, mlflow_health, mlflow_registry
from bot.diagnosis.runner import Runner

from .conftest import KEY_ENV, make_ctx, pointed_at, seed_environment

MY_CHECKS = (route_probe, api_key_accepted, unauthenticated_refused)
ONCE = (mlflow_health, mlflow_registry, mlflow_client)


async def run_all(stack, http):
    """Every app/auth/MLflow check instance, keyed like the runner reports them."""
    results = {}
    for check in MY_CHECKS:
        for route in stack.env.routes:
            ctx = make_ctx(stack.env, http, subject=route.name, key=stack.key)
            results[f"{check.id}[{route.name}]"] = await check.run(ctx)
    for check in ONCE:
        results[check.id] = await check.run(make_ctx(stack.env, http, key=stack.key))
    return results


def assert_key_never_shown(results, key):
    for result in results.values():
        assert key not in json.dumps(result.evidence, default=str)
        assert key not in result.summary


async def test_healthy_path_passes_every_check(stack, http):
    results = await run_all(stack, http)
    statuses = {name: (r.status, r.summary) for name, r in results.items()}
    expected_skips = {"auth.unauthenticated[mlflow-direct]"}
    for name, (status, summary) in statuses.items():
        wanted = Status.SKIPPED if name in expected_skips else Status.PASS
        assert status == wanted, f"{name}: {status} {summary}"
    assert "1 registered model(s)" in results["app.mlflow-registry"].summary
    assert "1 registered model(s)" in results["app.mlflow-client"].summary
    health = results["app.mlflow-health"]
    assert health.evidence["version"].startswith("3.")
    assert "proxy route mlflow-proxy" in health.summary
    assert_key_never_shown(results, stack.key)


async def test_misrouted_mlflow_paths_name_the_fastapi_service(stack, http):
    stack.lb.misroute("/api/2.0/mlflow/*", stack.api.url)
    ctx = make_ctx(stack.env, http, subject="mlflow-direct", key=stack.key)
    result = await route_probe.run(ctx)
    assert result.status == Status.FAIL
    assert result.classification == Classification.CONFIGURATION
    assert "answered by a FastAPI service" in result.summary
    assert "not MLflow (hokusai-mlflow-development)" in result.summary


async def test_api_without_mlflow_upstream_is_explained_through_mlflow_client(stack, http):
    stack.api.mlflow_url = None
    client = await mlflow_client.run(make_ctx(stack.env, http, key=stack.key))
    assert client.status == Status.FAIL
    assert "INTERNAL_ERROR with status 500" in client.summary
    assert "FastAPI service's 404" in client.summary
    registry = await mlflow_registry.run(make_ctx(stack.env, http, key=stack.key))
    assert registry.status == Status.FAIL
    assert "hokusai-api-development answered 404" in registry.summary
    assert stack.key not in json.dumps(client.evidence) + json.dumps(registry.evidence)


async def test_stripped_auth_header_is_named(stack, http):
    stack.lb.strip_auth = True
    ctx = make_ctx(stack.env, http, subject="mlflow-proxy", key=stack.key)
    probe_result = await route_probe.run(ctx)
    # The right service answered and refused the key: the route probe is blocked, not failing.
    assert probe_result.status == Status.SKIPPED
    assert probe_result.summary.startswith("blocked by auth: a FastAPI service refused")
    result = await api_key_accepted.run(ctx)
    assert result.status == Status.FAIL
    assert result.classification == Classification.CONFIGURATION
    assert "says no key arrived" in result.summary and "strips it" in result.summary
    arrived = [r["headers"] for r in stack.api.requests_seen]
    assert all("Authorization" not in names for names in arrived)


async def test_key_accepted_another_way_is_named(stack, http):
    stack.api.accept_auth = ("x-api-key",)
    ctx = make_ctx(stack.env, http, subject="mlflow-proxy", key=stack.key)
    result = await api_key_accepted.run(ctx)
    assert result.status == Status.FAIL
    assert "accepts the key as X-API-Key, not Authorization: Bearer as configured" in (
        result.summary
    )


async def test_auth_bypass_is_a_security_failure(stack, http):
    stack.api.require_auth = False
    ctx = make_ctx(stack.env, http, subject="mlflow-proxy", key=None)
    result = await unauthenticated_refused.run(ctx)
    assert result.status == Status.FAIL
    assert result.classification == Classification.SECURITY
    assert "answered 200 without an API key: authentication is bypassed" in result.summary


async def test_public_host_header_is_refused_by_mlflow_itself(stack, http):
    stack.lb.rewrite_host(stack.env.public.hostname)
    ctx = make_ctx(stack.env, http, subject="mlflow-direct", key=stack.key)
    result = await route_probe.run(ctx)
    assert result.status == Status.FAIL
    assert result.classification == Classification.CONFIGURATION
    assert "refused by MLflow's own Host-header check" in result.summary
    assert "registry.hokus.ai" in result.summary
    # /health is exempt from the Host check: health looks fine while real traffic is refused.
    health = await mlflow_health.run(make_ctx(stack.env, http, key=stack.key))
    assert health.status == Status.PASS


async def test_elb_503_exhausts_mlflow_client_retries_within_budget(stack, http):
    stack.lb.answer_elb_error(503)
    started = time.monotonic()
    result = await mlflow_client.run(make_ctx(stack.env, http, key=stack.key))
    assert time.monotonic() - started < mlflow_client.timeout
    assert result.status == Status.FAIL
    assert result.classification == Classification.INFRASTRUCTURE
    assert "gave up after 2 attempts" in result.summary and "503" in result.summary
    probe_result = await route_probe.run(
        make_ctx(stack.env, http, subject="mlflow-direct", key=stack.key)
    )
    assert "503 from the load balancer itself" in probe_result.summary


async def test_mlflow_client_leaves_the_environment_as_it_was(stack, http, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    result = await mlflow_client.run(make_ctx(stack.env, http, key=stack.key))
    assert result.status == Status.PASS
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ


async def test_a_silent_upstream_costs_its_timeout_and_no_more(silent_server, http, api_key):
    env = pointed_at(seed_environment(), silent_server.url)
    checks = [
        (route_probe, "mlflow-proxy"),
        (api_key_accepted, "mlflow-proxy"),
        (unauthenticated_refused, "mlflow-proxy"),
        (mlflow_health, None),
        (mlflow_registry, None),
        (mlflow_client, None),
    ]

    async def timed(check, subject):
        started = time.monotonic()
        result = await check.run(make_ctx(env, http, subject=subject, key=api_key))
        return check, result, time.monotonic() - started

    started = time.monotonic()
    outcomes = await asyncio.gather(*(timed(c, s) for c, s in checks))
    total = time.monotonic() - started
    for check, result, elapsed in outcomes:
        assert elapsed <= check.timeout, f"{check.id} took {elapsed:.1f}s of {check.timeout}s"
        assert result.status in (Status.FAIL, Status.WARN), f"{check.id}: {result.summary}"
    # Concurrent checks cost the slowest budget, not the sum.
    assert total <= max(c.timeout for c, _ in checks) + 1
    probe_result = next(r for c, r, _ in outcomes if c is route_probe)
    assert probe_result.classification == Classification.INFRASTRUCTURE
    assert "no answer within" in probe_result.summary


async def test_through_the_runner(stack, http):
    checks = {c.id: c for c in (*MY_CHECKS, *ONCE)}
    runner = Runner(stack.env, http=http, secrets={KEY_ENV: stack.key}, checks=checks)
    stack.lb.misroute("/api/2.0/mlflow/*", stack.api.url)
    report = await runner.run(["app", "auth"])
    first = report.first_failure
    assert first is not None
    assert first.id == "app.route-probe[mlflow-direct]"
    assert "answered by a FastAPI service" in first.result.summary
    assert stack.key not in json.dumps(report.to_json(), default=str)
