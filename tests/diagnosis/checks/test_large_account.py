"""A large account gives the same answer: the newest evidence is read, every check in budget.

The account around the platform is grown with ``bot.sandbox.large_account`` (other teams'
Cloud Map services, log lines, access-log objects, listener rules) and the checks must still
name what the platform's own newest evidence says.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import boto3

from bot.diagnosis.aws import AwsCaller, read_only_session
from bot.diagnosis.checks.base import REGISTRY, Status
from bot.diagnosis.runner import Runner
from bot.sandbox.large_account import (
    LISTENER_RULE_LIMIT,
    access_log_line,
    add_access_logs,
    add_cloud_map_services,
    add_listener_rules,
    add_log_lines,
    put_access_log,
    put_log_line,
)
from tests.diagnosis.checks.ecs_fixtures import ECS_CHECKS, REGION, run_check, world

MLFLOW = "hokusai-mlflow-development"
API = "hokusai-api-development"
# What every AWS call costs in these runs: 200 Cloud Map services read one by one at this
# latency took compute.cloud-map past its 10 s budget.
LATENCY = 0.05


def test_200_cloud_map_services_every_check_finishes_within_its_budget():
    with world("stale-discovery") as w:
        add_cloud_map_services(w.session, w.platform, 200)
        aws = AwsCaller(read_only_session(REGION), latency=LATENCY, max_workers=32)
        try:
            checks = {c: REGISTRY[c] for c in ECS_CHECKS}
            report = asyncio.run(Runner(w.env, aws=aws, checks=checks, http=None).run())
        finally:
            aws.close()
    unfinished = {o.id: o.result.summary for o in report.outcomes if o.status is Status.TIMEOUT}
    assert not unfinished
    errors = {o.id: o.result.summary for o in report.outcomes if o.status is Status.ERROR}
    assert not errors
    cloud_map = report.outcome(f"compute.cloud-map[{MLFLOW}]")
    assert cloud_map.status is Status.PASS
    assert cloud_map.result.summary == (
        "mlflow.hokusai-development.local: 1 instance(s) registered"
    )
    # The stale name is still told apart from the live one among 200 others.
    first = report.first_failure
    assert first.id == f"compute.task-config[{API}]"
    assert "MLFLOW_SERVER_URL points at mlflow-server.hokusai-development.local" in (
        first.result.summary
    )
    # Each name is resolved once per run, whichever checks need it.
    calls = Counter(c.operation for c in aws.calls if c.service == "servicediscovery")
    assert calls["ListNamespaces"] == 1
    assert calls["ListInstances"] == 2  # mlflow (live) and mlflow-server (stale)


def test_a_cloud_map_name_missing_among_many_lists_a_bounded_few_of_the_others():
    with world("healthy") as w:
        add_cloud_map_services(w.session, w.platform, 40)
        sd = w.session.client("servicediscovery")
        mlflow_id = w.ecs.discovery_services["mlflow"].rsplit("/", 1)[-1]
        for instance in sd.list_instances(ServiceId=mlflow_id)["Instances"]:
            sd.deregister_instance(ServiceId=mlflow_id, InstanceId=instance["Id"])
        sd.delete_service(Id=mlflow_id)
        result = run_check(w, "compute.cloud-map", MLFLOW)
    assert result.status is Status.FAIL
    assert result.summary == "Cloud Map has no service mlflow in hokusai-development.local"
    known = result.evidence["known_names"]
    assert len(known) == 11 and known[-1].startswith("and ") and known[-1].endswith(" more")


def test_the_newest_error_line_of_a_busy_log_group_leads_and_counts_say_at_least():
    planted = "RuntimeError: planted newest failure in the registry proxy"
    with world("healthy") as w:
        add_log_lines(w.session, w.env, 40_000)  # every line matches in moto: 20,000 per group
        group = w.env.service(API).log_group
        put_log_line(w.session, group, planted, time.time() - 2)
        result = run_check(w, "logs.errors", API)
    assert result.status is Status.WARN
    summary = result.summary
    assert summary.startswith("≥ ")
    assert f"in {group} in the last 60 min" in summary
    assert f"newest: {planted}" in summary
    assert "; read the newest " in summary and " lines (since " in summary
    evidence = result.evidence
    assert evidence["truncated"] is True
    assert evidence["groups"][0]["newest"] == planted
    # Each error line carries a different API key: redacted first, they are one kind.
    assert evidence["more_groups"] == 0
    assert "hk_live_" not in json.dumps(evidence)


def test_the_newest_access_log_object_is_read_from_a_busy_bucket():
    with world("healthy") as w:
        # 1,050 objects in the last hour (more than one listing page) and 150 older ones.
        add_access_logs(w.session, w.env, w.platform, 1_050, newest_s_ago=150, every_s=3)
        add_access_logs(w.session, w.env, w.platform, 150, newest_s_ago=2 * 3600, every_s=60)
        direct = next(r for r in w.env.routes if r.name == "mlflow-direct")
        now = time.time()
        lines = [
            access_log_line(
                w.env,
                w.platform,
                now - 30 + i,
                url=f"https://{w.env.public.hostname}:443{direct.probe}",
                target="10.0.99.9:5000",
                elb_status=502,
                target_status=502,
                target_group_arn=w.platform.target_groups[direct.service],
            )
            for i in range(3)
        ]
        newest = put_access_log(w.session, w.platform, lines, now)
        result = run_check(w, "logs.alb-access")
    assert result.status is Status.WARN
    assert "mlflow-direct: 3/" in result.summary
    assert "answered 502 by target 10.0.99.9:5000" in result.summary
    evidence = result.evidence
    assert any(obj.endswith(newest) for obj in evidence["objects"])
    assert len(evidence["objects"]) == 5
    assert evidence["objects_in_window"] >= 1_050
    assert f"read the newest 5 of {evidence['objects_in_window']} log objects" in result.summary


def test_listener_rules_evidence_stays_bounded_at_the_listener_limit(sandbox):
    box = sandbox("seed-outage")
    add_listener_rules(boto3.Session(region_name=REGION), box.platform, LISTENER_RULE_LIMIT)
    report = asyncio.run(box.diagnose(["routing"]))
    outcome = report.outcome("routing.listener-rules[mlflow-direct]")
    assert outcome.status is Status.FAIL
    evidence = outcome.result.evidence
    shown = [r["priority"] for r in evidence["rules_in_order"]]
    # The catch-all that answered, the route's own rule it shadows, neighbours, the default.
    assert 10 in shown and 200 in shown and shown[-1] == "default"
    assert len(shown) <= 8
    assert evidence["more_rules"] == (
        f"and {LISTENER_RULE_LIMIT + 1 - len(shown)} more of the listener's "
        f"{LISTENER_RULE_LIMIT + 1} rules"
    )
    assert len(json.dumps(report.to_json())) < 40_000
