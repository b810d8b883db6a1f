"""Edge hop: each configured load balancer exists, is active and listens on 80 and 443."""

from __future__ import annotations

from bot.diagnosis.checks.base import Status


async def test_healthy_load_balancers_are_active_with_both_listeners(sandbox):
    report = await sandbox("healthy").diagnose(["edge"])
    for name in ("hokusai-main-development", "hokusai-registry-development"):
        outcome = report.outcome(f"edge.load-balancer[{name}]")
        assert outcome.status is Status.PASS, outcome.result.summary
        assert outcome.result.summary == (
            f"{name} is active (internet-facing), listening on 80/HTTP, 443/HTTPS"
        )


async def test_a_missing_listener_is_the_first_failing_hop(sandbox):
    report = await sandbox("no-listener").diagnose()
    first = report.first_failure
    assert first.id == "edge.load-balancer[hokusai-main-development]"
    assert first.layer == "edge"
    assert str(first.result.classification) == "configuration"
    assert "no listener on port 443" in first.result.summary
    assert report.outcome("edge.load-balancer[hokusai-registry-development]").status is Status.PASS


async def test_a_deleted_load_balancer_is_an_infrastructure_failure(sandbox):
    report = await sandbox("lb-missing").diagnose()
    first = report.first_failure
    assert first.id == "edge.load-balancer[hokusai-main-development]"
    assert str(first.result.classification) == "infrastructure"
    assert (
        first.result.summary == "load balancer hokusai-main-development does not exist in us-east-1"
    )
    # The registry's path does not use it: its routes still route.
    assert report.outcome("routing.listener-rules[mlflow-direct]").status is Status.PASS
