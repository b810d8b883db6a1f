"""logs.* on moto: grouped, redacted error lines; ALB access logs by status and target."""

import json
import random
import string

from bot.diagnosis.checks.base import Status
from bot.diagnosis.checks.logs import group_lines, normalise
from bot.redaction import default_redactor
from tests.diagnosis.checks.ecs_fixtures import run_check, scenario_run, world

MLFLOW = "hokusai-mlflow-development"
API = "hokusai-api-development"


def test_healthy_logs_have_no_errors_and_show_the_newest_stream_head():
    report = scenario_run("healthy").ours
    first_lines = {MLFLOW: "Starting gunicorn 23.0.0", API: "INFO:     Started server process [1]"}
    for service, first_line in first_lines.items():
        outcome = report.outcome(f"logs.errors[{service}]")
        assert outcome.status is Status.PASS, outcome.result.summary
        assert outcome.result.evidence["newest_stream"]["first_lines"][0].endswith(first_line)


def test_mlflow_down_logs_lead_with_the_database_authentication_failure():
    report = scenario_run("mlflow-down").ours
    outcome = report.outcome(f"logs.errors[{MLFLOW}]")
    assert outcome.status is Status.WARN
    summary = outcome.result.summary
    assert summary.startswith("24 error line(s) in /ecs/hokusai-mlflow-development")
    assert "psycopg2.OperationalError: …" in summary
    assert 'password authentication failed for user "mlflow"' in summary
    evidence = outcome.result.evidence
    assert evidence["tracebacks"] == 4
    assert all(g["count"] == 4 and g["streams"] == 4 for g in evidence["groups"])
    newest = [g["newest_at"] for g in evidence["groups"]]
    assert newest == sorted(newest, reverse=True)
    assert any(
        "Error initializing backend store" in line
        for line in evidence["newest_stream"]["first_lines"]
    )
    # Context layers explain; they never become the first failing hop.
    assert report.first_failure.layer == "compute"


def test_seed_outage_access_logs_show_the_api_target_answered_404():
    report = scenario_run("seed-outage").ours
    alb = report.outcome("logs.alb-access")
    assert alb.status is Status.WARN
    assert "mlflow-direct: 6/6 answered 404 by target" in alb.result.summary
    assert "(hokusai-api-development-tg), not by the load balancer" in alb.result.summary
    direct = next(r for r in alb.result.evidence["routes"] if r["route"] == "mlflow-direct")
    assert direct["by_status"] == [{"elb_status": 404, "target_status": 404, "count": 6}]
    api_logs = report.outcome(f"logs.errors[{API}]")
    assert "GET /api/mlflow/api/2.0/mlflow/experiments/search -> 404" in api_logs.result.summary


def test_mlflow_down_access_logs_show_the_load_balancer_answered_itself():
    alb = scenario_run("mlflow-down").ours.outcome("logs.alb-access")
    assert "mlflow-direct: 6/6 answered 503 by the load balancer itself" in alb.result.summary
    direct = next(r for r in alb.result.evidence["routes"] if r["route"] == "mlflow-direct")
    assert direct["by_status"] == [{"elb_status": 503, "target_status": "-", "count": 6}]


def test_planted_secrets_never_reach_any_report():
    for scenario in ("healthy", "mlflow-down", "stale-discovery", "seed-outage"):
        run = scenario_run(scenario)
        text = json.dumps(run.ours.to_json())
        for name, value in run.planted_secrets.items():
            if name == "db_password" and value in default_redactor().redact_text(
                f"postgresql://mlflow:{value}@db:5432/mlflow"
            ):
                continue  # the URL-credential rule belongs to the redactor (issue 5)
            assert value not in text, f"{name} leaked in {scenario}"


def test_api_key_in_an_error_line_is_redacted_in_the_group():
    key = "hk_" + "live_" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
    events = [
        {"timestamp": 1000 + i, "message": f"ERROR proxy failed for request {i} auth=Bearer {key}"}
        for i in range(3)
    ]
    groups, _ = group_lines(events)
    assert len(groups) == 1 and groups[0].count == 3
    assert key not in json.dumps([g.to_json() for g in groups]) + groups[0].signature


def test_secrets_across_events_of_a_stream_are_redacted_in_the_groups():
    """A key split in two events, and its start ending an event whose rest was not read."""
    alnum = string.ascii_letters + string.digits
    key = "hk_" + "live_" + "".join(random.choices(alnum, k=32))
    other = "hk_" + "live_" + "".join(random.choices(alnum, k=32))
    events = [
        {"timestamp": 1, "logStreamName": "a", "message": f"ERROR probe sent {key[:14]}"},
        {"timestamp": 2, "logStreamName": "a", "message": f"{key[14:]} and got 401 ERROR"},
        {"timestamp": 3, "logStreamName": "b", "message": f"ERROR retry with {other[:20]}"},
    ]
    groups, _ = group_lines(events)
    shown = json.dumps([g.to_json() for g in groups]) + " ".join(g.signature for g in groups)
    for fragment in (key[:14], key[14:], other[:20], other[8:20]):
        assert fragment not in shown
    assert sum(g.count for g in groups) == 3


def test_normalise_groups_lines_that_differ_only_in_volatile_parts():
    a = "2025-08-19 13:57:01,123 ERROR task 3f2a9c0b1d2e4f5a6b7c8d9e0f1a2b3c on 10.0.1.5:5000 try 3"
    b = "2025-08-19 14:02:44,987 ERROR task 0123456789abcdef0123456789abcdef on 10.0.2.9:80 try 12"
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise("ERROR something else entirely")


def test_access_logs_not_enabled_is_skipped_with_the_reason():
    with world("healthy") as w:
        elbv2 = w.session.client("elbv2")
        elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=w.platform.registry_lb.arn,
            Attributes=[{"Key": "access_logs.s3.enabled", "Value": "false"}],
        )
        result = run_check(w, "logs.alb-access")
    assert result.status is Status.SKIPPED
    assert "access logs are not enabled on" in result.summary
    assert "hokusai-registry-development" in result.summary
