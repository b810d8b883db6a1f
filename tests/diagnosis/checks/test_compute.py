"""compute.* on moto: healthy, and each ECS break named with its layer and classification."""

import json

import pytest

from bot.config import Route
from bot.diagnosis.checks.base import REGISTRY, Status
from bot.diagnosis.checks.compute import (
    allowed_hosts_findings,
    hosts_reaching,
    static_prefix_findings,
)
from bot.sandbox.platform_ecs import ECS_SCENARIOS
from tests.diagnosis.checks.ecs_fixtures import (
    ECS_CHECKS,
    run_check,
    scenario_run,
    seed_environment,
    world,
)

MLFLOW = "hokusai-mlflow-development"
API = "hokusai-api-development"


def test_healthy_platform_has_no_failing_compute_check():
    report = scenario_run("healthy").ours
    assert report.first_failure is None
    for service in (MLFLOW, API):
        outcome = report.outcome(f"compute.ecs-service[{service}]")
        assert outcome.status is Status.PASS, outcome.result.summary
        assert f"{service}:2" in outcome.result.summary
        assert report.outcome(f"compute.task-config[{service}]").status is Status.PASS
    assert report.outcome(f"compute.cloud-map[{MLFLOW}]").status is Status.PASS
    assert report.outcome(f"compute.cloud-map[{API}]").status is Status.SKIPPED


def test_env_var_names_are_listed_and_secrets_marked_without_values():
    outcome = scenario_run("healthy").ours.outcome(f"compute.ecs-service[{MLFLOW}]")
    names = {v["name"]: v for v in outcome.result.evidence["env_vars"]}
    assert names["DB_PASSWORD"]["source"] == "secret"
    assert names["DB_PASSWORD"]["value_from"].startswith("arn:aws:secretsmanager:")
    assert names["AWS_DEFAULT_REGION"]["source"] == "environment"
    assert all("value" not in v for v in names.values())


def test_mlflow_down_is_an_application_crash_with_the_stopped_reason():
    report = scenario_run("mlflow-down").ours
    first = report.first_failure
    assert (first.id, first.layer, str(first.result.classification)) == (
        f"compute.ecs-service[{MLFLOW}]",
        "compute",
        "application",
    )
    assert "0 of 1 tasks running" in first.result.summary
    assert "Essential container in task exited (exit code 1)" in first.result.summary
    cloud_map = report.outcome(f"compute.cloud-map[{MLFLOW}]")
    assert cloud_map.status is Status.FAIL
    assert str(cloud_map.result.classification) == "infrastructure"
    # The API's URL is right; its emptiness is Cloud Map's finding, not a config mistake.
    assert report.outcome(f"compute.task-config[{API}]").status is Status.WARN


def test_bad_allowed_hosts_names_the_flag_and_the_missing_hostname():
    first = scenario_run("bad-allowed-hosts").ours.first_failure
    assert first.id == f"compute.task-config[{MLFLOW}]"
    assert str(first.result.classification) == "configuration"
    assert "--allowed-hosts does not include registry.hokus.ai" in first.result.summary
    assert "403 Invalid Host header" in first.result.summary


def test_stale_discovery_names_the_variable_and_the_live_name():
    first = scenario_run("stale-discovery").ours.first_failure
    assert first.id == f"compute.task-config[{API}]"
    assert str(first.result.classification) == "configuration"
    summary = first.result.summary
    assert "MLFLOW_SERVER_URL points at mlflow-server.hokusai-development.local" in summary
    assert "expected http://mlflow.hokusai-development.local:5000" in summary


def test_a_missing_service_is_a_configuration_failure():
    with world("healthy") as w:
        ecs = w.session.client("ecs")
        ecs.delete_service(cluster="hokusai-development", service=API, force=True)
        result = run_check(w, "compute.ecs-service", API)
    assert result.status is Status.FAIL
    assert str(result.classification) == "configuration"
    assert "does not exist in cluster hokusai-development" in result.summary


def _mlflow_route(path, probe):
    return Route(name="r", path=path, service=MLFLOW, probe=probe)


@pytest.mark.parametrize(
    ("argv", "path", "probe", "status", "expected"),
    [
        ([], "/api/2.0/mlflow/*", "/api/2.0/mlflow/experiments/search", "pass", None),
        (
            ["--static-prefix", "/api/mlflow"],
            "/api/2.0/mlflow/*",
            "/api/2.0/mlflow/experiments/search",
            "fail",
            "(no --static-prefix)",
        ),
        (
            [],
            "/api/mlflow/*",
            "/api/mlflow/api/2.0/mlflow/experiments/search",
            "fail",
            "/api/mlflow",
        ),
        (
            ["--static-prefix=/api/mlflow"],
            "/api/mlflow/*",
            "/api/mlflow/api/2.0/mlflow/experiments/search",
            "pass",
            None,
        ),
    ],
)
def test_static_prefix_against_routes_served_by_mlflow(argv, path, probe, status, expected):
    env = seed_environment().model_copy(update={"routes": [_mlflow_route(path, probe)]})
    (finding,) = static_prefix_findings(env, env.service(MLFLOW), argv)
    assert finding.status == status, finding.message
    assert finding.expected == expected


PUBLIC = [("registry.hokus.ai", "route mlflow-direct forwards public traffic to it")]
PROXY = [("mlflow.hokusai-development.local:5000", "MLFLOW_SERVER_URL of a proxy")]


def test_allowed_hosts_unset_or_wildcard():
    (unset,) = allowed_hosts_findings([], {}, PUBLIC)
    assert unset.status == "fail" and unset.expected == "registry.hokus.ai"
    ok = allowed_hosts_findings([], {"MLFLOW_SERVER_ALLOWED_HOSTS": "*.hokus.ai"}, PUBLIC)
    assert [f.status for f in ok] == ["pass"]
    proxied = allowed_hosts_findings(["--allowed-hosts", "registry.hokus.ai"], {}, PUBLIC + PROXY)
    assert [f.status for f in proxied] == ["pass", "fail"]


def test_only_host_headers_that_reach_mlflow_are_checked():
    """A public name that no route sends to MLflow needs no place in --allowed-hosts."""
    env = seed_environment()
    mlflow = env.service(MLFLOW)
    assert [h for h, _ in hosts_reaching(env, mlflow, [])] == ["registry.hokus.ai"]
    proxy_only = env.model_copy(update={"routes": [r for r in env.routes if r.service != MLFLOW]})
    assert hosts_reaching(proxy_only, mlflow, []) == []
    only_proxy = allowed_hosts_findings(
        ["--allowed-hosts", "mlflow.hokusai-development.local:5000"], {}, PROXY
    )
    assert [(f.status, f.message.split(" (")[0]) for f in only_proxy] == [
        ("pass", "mlflow.hokusai-development.local:5000 is allowed")
    ]


@pytest.mark.parametrize("name", sorted(ECS_SCENARIOS))
def test_each_ecs_scenario_is_named_first_by_the_aws_checks(name):
    declared = ECS_SCENARIOS[name]
    report = scenario_run(name).aws_only
    first = report.first_failure
    if declared.first_failing_check is None:
        assert first is None, report.verdict  # a world where nothing may fail
        return
    assert declared.first_failing_check.split("[", 1)[0] in REGISTRY
    assert first is not None, report.verdict
    assert (first.id, first.layer, str(first.result.classification)) == (
        declared.first_failing_check,
        declared.first_failing_layer,
        declared.classification,
    ), first.result.summary


@pytest.mark.parametrize("scenario", ["healthy", "mlflow-down", "stale-discovery", "sg-blocked"])
def test_every_aws_call_is_declared_in_reads(scenario):
    run = scenario_run(scenario)
    undeclared = {
        (check_id, f"{service}:{operation}")
        for service, operation, check_id in run.calls
        if check_id in ECS_CHECKS and f"{service}:{operation}" not in REGISTRY[check_id].reads
    }
    assert not undeclared
    assert any(check_id in ECS_CHECKS for _, _, check_id in run.calls)


def test_reports_serialise_to_json():
    json.dumps(scenario_run("mlflow-down").ours.to_json())


def _redeploy_api_with(w, extra_env: dict[str, str]) -> str:
    """Register a new API revision with ``extra_env`` added and point the service at it."""
    ecs = w.session.client("ecs")
    service = ecs.describe_services(cluster="hokusai-development", services=[API])["services"][0]
    td = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    containers = td["containerDefinitions"]
    containers[0]["environment"] += [{"name": k, "value": v} for k, v in extra_env.items()]
    keep = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory")
    new = ecs.register_task_definition(
        containerDefinitions=containers, **{k: td[k] for k in keep if k in td}
    )["taskDefinition"]
    ecs.update_service(
        cluster="hokusai-development", service=API, taskDefinition=new["taskDefinitionArn"]
    )
    return f"{new['family']}:{new['revision']}"


def test_a_secret_variable_left_at_its_placeholder_is_a_configuration_failure():
    with world("healthy") as w:
        revision = _redeploy_api_with(
            w, {"HOKUSAI_API_KEY": "changeme", "DB_PASSWORD": "QWERTYUIOP", "LOG_LEVEL": "x"}
        )
        result = run_check(w, "compute.task-config", API)
    assert result.status is Status.FAIL
    assert str(result.classification) == "configuration"
    assert result.summary.startswith(
        f"HOKUSAI_API_KEY in {revision} is the placeholder `changeme`; expected the real secret"
    )
    reported = [f["setting"] for f in result.evidence["findings"] if f["status"] == "fail"]
    assert reported == ["HOKUSAI_API_KEY"]  # QWERTYUIOP is a password, not a placeholder
    assert "QWERTYUIOP" not in json.dumps(result.evidence)
