"""Summaries, the Markdown export, App Home and the incident CLI, read as a person would."""

from __future__ import annotations

import io
import random
import string
from datetime import UTC, datetime, timedelta

import pytest

from bot.cli.incident import main as incident_cli
from bot.incident.export import export_filename, export_markdown
from bot.incident.store import IncidentStore
from bot.incident.summaries import build_summary
from bot.settings import Settings
from bot.slack.home import home_view

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def run(*checks: tuple[str, str, str], hint: str | None = None) -> dict:
    rows = [
        {
            "id": cid,
            "layer": layer,
            "status": status,
            "summary": f"{cid} is {status}",
            "classification": "configuration" if status == "fail" else None,
            "hint": hint if status == "fail" else None,
            "evidence": {"rule": "/api/mlflow/*", "target_group": "tg-api"},
            "duration_ms": 5,
        }
        for cid, layer, status in checks
    ]
    return {
        "env": "development",
        "scopes": [],
        "started_at": T0.isoformat(),
        "duration_ms": 900,
        "checks": rows,
        "first_failure": None,
        "verdict": "Listener rules fail first.",
    }


@pytest.fixture
def store(tmp_path) -> IncidentStore:
    return IncidentStore(tmp_path / "hokusai.db")


@pytest.fixture
def incident(store):
    inc = store.declare_incident(
        "Registry returns 404", severity=1, channel_id="CINC", commander="U1", now=T0
    )
    store.record_run(
        run(
            ("dns.resolve", "dns", "pass"),
            ("routing.listener-rules", "routing", "fail"),
            ("targets.health", "targets", "fail"),
            hint="Add a rule for /api/mlflow/*",
        ),
        incident_id=inc.id,
        requested_by="U1",
        now=T0 + timedelta(minutes=2),
    )
    store.mark_summary_posted(inc.id, T0 + timedelta(minutes=3))
    store.record_run(
        run(("targets.health", "targets", "pass"), ("app.route-probe", "app", "fail")),
        incident_id=inc.id,
        requested_by="U2",
        now=T0 + timedelta(minutes=10),
    )
    store.set_status(inc.id, "identified", actor="U1", now=T0 + timedelta(minutes=12))
    store.link_ticket(
        inc.id,
        provider="linear",
        key="HOK-1",
        title="Add ALB rule",
        status="In Progress",
        now=T0 + timedelta(minutes=13),
    )
    store.add_note(
        inc.id, "API task definition changed at 08:55", actor="U2", now=T0 + timedelta(minutes=14)
    )
    return inc


def test_summary_says_where_the_incident_stands(store, incident):
    summary = build_summary(store, incident.id, T0 + timedelta(minutes=45), reason="scheduled")
    text = summary.text()
    assert "#1 Registry returns 404 — SEV1, identified, 45m" in text
    assert "First failing hop: Listener rules (routing.listener-rules, configuration)" in text
    assert "Status investigating → identified" in text
    assert "newly failing: app.route-probe" in text
    assert "recovered: targets.health now pass" in text
    assert "ticket linked: HOK-1 Add ALB rule" in text
    assert "1 note" in text
    assert "2 fail, 2 pass" in text and "5 recorded over 2 runs" in text
    assert "HOK-1 (linear, In Progress)" in text
    assert "routing.listener-rules: Add a rule for /api/mlflow/*" in summary.next_steps[0]


def test_summary_with_nothing_new_says_so(store, incident):
    store.mark_summary_posted(incident.id, T0 + timedelta(minutes=20))
    text = build_summary(store, incident.id, T0 + timedelta(minutes=50)).text()
    assert "Nothing changed since 2026-03-01 09:20 UTC." in text


def test_summary_blocks_stay_within_slack_limits(store):
    inc = store.declare_incident("x" * 400, channel_id="CBIG", commander="U1", now=T0)
    checks = [(f"logs.errors[svc-{n}]", "app", "fail") for n in range(300)]
    report = run(*checks)
    for row in report["checks"]:
        row["summary"] = "upstream connect error " * 40
        row["hint"] = "look at the task logs " * 20
    store.record_run(report, incident_id=inc.id, now=T0)
    for n in range(30):
        store.link_ticket(inc.id, provider="jira", key=f"OPS-{n}", title="t" * 300, now=T0)
    blocks = build_summary(store, inc.id, T0 + timedelta(hours=1)).blocks()
    assert len(blocks) <= 50
    for block in blocks:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= (150 if block["type"] == "header" else 3000)


def test_export_reads_as_a_post_incident_report(store, incident):
    store.remember_people({"U1": "Ona Call", "U2": "Dana Ops"}, now=T0)
    store.resolve(incident.id, actor="U1", now=T0 + timedelta(hours=2))
    report = export_markdown(store, incident.id, T0 + timedelta(hours=3))
    assert report.startswith("# Incident #1: Registry returns 404\n")
    facts = report.splitlines()[2]
    assert "**SEV1**" in facts and "**resolved**" in facts and "2h 00m" in facts
    assert "commander Ona Call" in facts
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Summary",
        "## Impact",
        "## Root cause",
        "## Detection",
        "## Timeline",
        "## Resolution",
        "## Action items",
        "## Appendix: evidence",
    ]
    impact = report.split("## Impact")[1].split("## Root cause")[0]
    assert "**Duration:** 2h 00m" in impact
    assert "`routing.listener-rules`" in impact and "`app.route-probe`" in impact
    assert "Critical" in impact  # what SEV1 means, for whom
    cause = report.split("## Root cause")[1].split("## Detection")[0]
    assert "*Listener rules* (`routing.listener-rules`, configuration)" in cause
    assert "Suggested fix: Add a rule for /api/mlflow/*" in cause
    assert "target_group: `tg-api`" in cause
    timeline = report.split("## Timeline")[1].split("## Resolution")[0]
    rows = [line for line in timeline.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[2].split(":")[0].rstrip(" |") for r in rows[1:]] == [
        "Declared SEV1",
        "Diagnose",
        "Status investigating → identified",
        "Linked linear ticket HOK-1 “Add ALB rule” (checks",
        "Note",
        "Status identified → resolved",
    ]
    # People by name, never by Slack id, before the appendix.
    assert "U1" not in report.split("## Appendix")[0] and "Dana Ops" in timeline
    items = report.split("## Action items")[1].split("## Appendix")[0]
    assert "| HOK-1 | Add ALB rule | - | In Progress | not yet (ticket open) |" in items
    appendix = report.split("## Appendix: evidence")[1]
    assert appendix.index("routing.listener-rules") < appendix.index("dns.resolve")
    assert '"target_group": "tg-api"' in appendix
    assert "Hint: Add a rule for /api/mlflow/*" in appendix
    assert export_filename(store.incident(incident.id)) == "incident-1-registry-returns-404.md"


def test_export_never_shows_a_secret(store, incident):
    secret = "hk_" + "live_" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
    store.add_note(incident.id, f"curl -H 'Authorization: Bearer {secret}'", actor="U1")
    assert secret not in export_markdown(store, incident.id, T0 + timedelta(hours=1))


def test_home_lists_open_incidents_with_first_failing_hop(store, incident):
    view = home_view(store, T0 + timedelta(hours=1))
    text = "\n".join(b.get("text", {}).get("text", "") for b in view["blocks"])
    assert "#1 Registry returns 404" in text and "*identified*" in text
    assert "first failing hop *Listener rules*" in text
    assert "Last summary: 2026-03-01 09:03 UTC" in text
    runs = [b for b in view["blocks"] if b["type"] == "context"]
    assert len(runs) == 2 and "incident #1" in runs[0]["elements"][0]["text"]
    assert len(view["blocks"]) <= 100


def test_cli_lists_shows_and_exports(tmp_path, store, incident):
    settings = Settings(hokusai_db=tmp_path / "hokusai.db")
    out, err = io.StringIO(), io.StringIO()
    assert incident_cli(["list"], settings, out, err) == 0
    assert "Registry returns 404" in out.getvalue() and "identified" in out.getvalue()
    out = io.StringIO()
    assert incident_cli(["export", "1"], settings, out, err) == 0
    assert out.getvalue().startswith("# Incident #1")
    out = io.StringIO()
    assert incident_cli(["show", "#1"], settings, out, err) == 0
    assert "First failing hop" in out.getvalue()
    for bad in (["show", "99"], ["show", "abc"], ["export"], ["frobnicate"]):
        err = io.StringIO()
        assert incident_cli(bad, settings, io.StringIO(), err) == 2
        assert len(err.getvalue().strip().splitlines()) == 1
