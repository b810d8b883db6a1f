"""Each sandbox scenario, diagnosed from Slack through the real bot, names the right hop.

The responder declares an incident and runs `/hokusai diagnose` in its channel over signed
HTTP; the test then reads what a person would: the final message, the incident log, the CLI
report. No planted secret may appear in any of them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from bot.diagnosis.checks.base import HOP_TITLES
from bot.diagnosis.render import terminal_report
from bot.diagnosis.runner import Runner
from bot.sandbox.conversation import Conversation
from bot.sandbox.world import Sandbox, expected_cause, expected_first_failure

SCENARIOS = ["healthy", "seed-outage", "mlflow-down", "auth-header", "dns-stale", "shadowed-rule"]


def _diagnose_in_incident(chat: Conversation) -> dict:
    chat.command('incident declare "Registry answers 404" sev=2 channel=here')
    chat.command("diagnose")
    return chat.last_message(containing="Diagnose:")


def _everything_sent(chat: Conversation) -> str:
    return json.dumps([(c.method, c.args) for c in chat.slack.calls])


def _everything_stored(db_path) -> str:
    conn = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return json.dumps([list(conn.execute(f"SELECT * FROM [{t}]")) for t in tables])
    finally:
        conn.close()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_names_its_first_failing_hop_without_leaking(scenario, shared_mlflow, tmp_path):
    layer, classification = expected_first_failure(scenario)
    with (
        Sandbox(scenario, mlflow=shared_mlflow, workdir=tmp_path / "sandbox") as sandbox,
        Conversation(sandbox.config_path, tmp_path / "hokusai.db") as chat,
    ):
        final = _diagnose_in_incident(chat)
        shown = json.dumps(final["blocks"])
        run = chat.server.app.hokusai_services.store().runs(limit=1)[0]
        if layer is None:
            assert "No hop of the request path fails" in shown
            assert run.first_failure_layer is None
        else:
            assert f"First failing hop: *{HOP_TITLES[layer]}* ({classification})" in shown
            assert run.first_failure_layer == layer
            assert run.classification == classification
        # The CLI's view of the same platform agrees, and names the cause.
        report = asyncio.run(Runner(sandbox.env).run())
        assert (report.first_failure.layer if report.first_failure else None) == layer
        cause = expected_cause(scenario)
        assert (report.cause.id if report.cause else None) == cause, report.verdict
        if cause is not None and cause != report.first_failure.id:
            # The message leads with the cause and still names where it shows.
            assert f"Cause: *{HOP_TITLES[report.cause.layer]}*" in shown
            assert f"`{cause}`" in shown
            assert run.verdict.startswith("Cause: ")
        printed = terminal_report(report) + json.dumps(report.to_json())

        sent, stored = _everything_sent(chat), _everything_stored(tmp_path / "hokusai.db")
        planted = sandbox.planted_secrets()
        assert len(planted) >= 2
        for secret in planted:
            assert secret not in sent, f"a planted secret reached Slack in {scenario}"
            assert secret not in stored, f"a planted secret reached the incident log in {scenario}"
            assert secret not in printed, f"a planted secret reached the CLI output in {scenario}"


def test_seed_outage_says_where_the_path_goes_wrong_and_why(shared_mlflow, tmp_path):
    with (
        Sandbox("seed-outage", mlflow=shared_mlflow, workdir=tmp_path / "sandbox") as sandbox,
        Conversation(sandbox.config_path, tmp_path / "hokusai.db") as chat,
    ):
        chat.command("diagnose")
        final = json.dumps(chat.last_message(containing="Diagnose:")["blocks"])
        first_post = chat.slack.calls_to("chat.postMessage")[0].args
        updates = chat.slack.calls_to("chat.update")
    # One message: posted as progress, then updated into the final view.
    assert first_post["text"].startswith("Diagnosing development")
    assert updates and all(u.args["ts"] == updates[-1].args["ts"] for u in updates)
    # Where: the rule that catches the MLflow paths (wildcards in code spans, so Slack does not
    # read their stars as bold). Why: it forwards them to the API service, whose FastAPI app
    # answers {"detail": "Not Found"} (the seed's error message).
    assert "`/api/2.0/mlflow/*`" in final and "rule 10 (path `/api/*`)" in final
    assert "hokusai-api-development-tg" in final
    assert "FastAPI" in final and "Not Found" in final
    assert "Start runbook" in final


def test_changing_a_listener_rule_changes_the_traffic(shared_mlflow, tmp_path):
    """The edge routes by moto's rules: fix the shadowing rule and MLflow answers again."""
    import boto3
    import httpx

    with Sandbox("seed-outage", mlflow=shared_mlflow, workdir=tmp_path / "sb") as sandbox:
        url = sandbox.edge.url + "/api/2.0/mlflow/experiments/search?max_results=1"
        before = httpx.get(url, timeout=10)
        assert before.json() == {"detail": "Not Found"}
        elbv2 = boto3.client("elbv2", endpoint_url=sandbox.moto.url)
        listener = sandbox.platform.registry_lb.listeners[443]
        rules = elbv2.describe_rules(ListenerArn=listener)["Rules"]
        broad = next(r for r in rules if r["Priority"] == "10")
        elbv2.set_rule_priorities(RulePriorities=[{"RuleArn": broad["RuleArn"], "Priority": 900}])
        deadline = time.monotonic() + 5  # the edge re-reads the rules every RULES_TTL
        while True:
            after = httpx.get(url, timeout=10)
            if after.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert after.status_code == 200 and "experiments" in after.json()


def test_a_scoped_run_never_reads_as_healthy_and_recalls_the_full_run(shared_mlflow, tmp_path):
    """During mlflow-down, `/hokusai diagnose routing` passes within its scope; it says so,
    names what it did not look at, and recalls what the full run in the channel found."""
    with (
        Sandbox("mlflow-down", mlflow=shared_mlflow, workdir=tmp_path / "sandbox") as sandbox,
        Conversation(sandbox.config_path, tmp_path / "hokusai.db") as chat,
    ):
        chat.command("diagnose")
        chat.command("diagnose routing")
        final = json.dumps(chat.last_message(containing="Diagnose:")["blocks"])
        runs = chat.server.app.hokusai_services.store().runs(limit=2)
    scoped = runs[0]
    assert scoped.scopes == ["routing"] and scoped.first_failure_id is None
    assert "Every hop" not in scoped.verdict and "healthy (" not in scoped.verdict
    assert scoped.verdict.startswith("Nothing failed within the scope routing")
    assert "not looked at: Target groups, ECS, Network, Application, Auth, Database" in (
        scoped.verdict
    )
    assert "does not show the rest of the path is healthy" in scoped.verdict
    assert "found Target groups failing (targets.health[mlflow-direct])" in scoped.verdict
    assert "Nothing failed within the scope routing" in final
    assert "No hop of the request path fails" not in final
