"""suggest_runbook: the runbook diagnose offers for the first failing hop."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.runbook.model import Runbook, load_runbook, suggest_runbook

SHIPPED = Path(__file__).resolve().parents[2] / "runbooks"


@pytest.fixture(scope="module")
def shipped() -> list[Runbook]:
    return [load_runbook(p) for p in sorted(SHIPPED.glob("*.yml"))]


@pytest.mark.parametrize(
    ("layer", "check_id", "subject", "expected"),
    [
        ("dns", "dns.resolve", None, "dns-misconfiguration"),
        ("dns", "dns.route53-alias", None, "dns-misconfiguration"),
        ("edge", "edge.load-balancer", "hokusai-registry-development", "registry-unreachable"),
        ("routing", "routing.listener-rules", "mlflow-direct", "registry-unreachable"),
        ("targets", "targets.health", "mlflow-proxy", "ecs-service-unhealthy"),
        ("compute", "compute.ecs-service", "hokusai-mlflow-development", "ecs-service-unhealthy"),
        ("network", "network.security-groups", None, "registry-unreachable"),
        ("app", "app.route-probe", "mlflow-proxy", "registry-unreachable"),
        ("app", "app.mlflow-client", None, "mlflow-auth-failures"),
        ("auth", "auth.api-key", "mlflow-proxy", "mlflow-auth-failures"),
        ("data", "data.rds", None, "rds-connectivity"),
    ],
)
def test_the_first_failing_hop_gets_the_runbook_that_fits(
    shipped, layer, check_id, subject, expected
):
    runbook = suggest_runbook(shipped, layer, check_id, subject)
    assert runbook is not None and runbook.id == expected


def test_nothing_fits_a_context_layer(shipped):
    assert suggest_runbook(shipped, "logs", "logs.errors", None) is None
    assert suggest_runbook(shipped, None, None, None) is None


def _runbook(rid: str, **applies) -> Runbook:
    return Runbook.model_validate(
        {
            "id": rid,
            "title": rid,
            "applies_to": applies,
            "steps": [{"id": "a", "title": "A", "manual": {"instructions": "x"}}],
        }
    )


def test_a_named_subject_beats_a_generic_runbook_and_a_named_check_beats_both():
    generic = _runbook("generic", layers=["compute"])
    mine = _runbook("mine", layers=["compute", "targets"], services=["svc-a"])
    exact = _runbook("exact", layers=["compute", "targets", "app"], checks=["compute.ecs-service"])
    assert suggest_runbook([generic, mine], "compute", "compute.x", "svc-a") is mine
    assert suggest_runbook([generic, mine], "compute", "compute.x", "svc-b") is generic
    assert (
        suggest_runbook([generic, mine, exact], "compute", "compute.ecs-service", "svc-a") is exact
    )
