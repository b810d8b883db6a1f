"""Say things once: one verdict line per summary, a summary only when something changed, an
export with one line, and ``incident show`` that does not contradict the last summary."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from bot.cli.incident import main as incident_cli
from bot.incident.store import IncidentStore
from bot.incident.summaries import build_summary
from bot.settings import Settings
from bot.slack.app import services_of

from .test_scenario import send  # the app fixture with fake checks is in conftest.py

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LEAD = "no listener rule sends /api/mlflow/* to the API"


def _run(*checks: tuple[str, str, str, str]) -> dict:
    return {
        "env": "development",
        "scopes": [],
        "started_at": T0.isoformat(),
        "duration_ms": 900,
        "checks": [
            {
                "id": cid,
                "layer": layer,
                "status": status,
                "summary": summary,
                "classification": "configuration" if status == "fail" else None,
                "hint": None,
                "evidence": {},
                "duration_ms": 5,
            }
            for cid, layer, status, summary in checks
        ],
        "first_failure": None,
        "verdict": "Listener rules fail first.",
    }


def _incident(tmp_path) -> tuple[IncidentStore, int]:
    store = IncidentStore(tmp_path / "hokusai.db")
    inc = store.declare_incident(
        "Registry 404", severity=2, channel_id="CINC", commander="U1", now=T0
    )
    store.record_run(
        _run(
            ("dns.resolve", "dns", "pass", "resolves"),
            ("routing.listener-rules", "routing", "fail", LEAD),
            ("app.route-probe", "app", "fail", "the API answers 404 on /api/mlflow"),
        ),
        incident_id=inc.id,
        now=T0 + timedelta(minutes=2),
    )
    return store, inc.id


def test_a_summary_says_its_verdict_once(tmp_path) -> None:
    store, incident_id = _incident(tmp_path)
    summary = build_summary(store, incident_id, T0 + timedelta(minutes=5))

    shown = json.dumps(summary.blocks(), ensure_ascii=False)
    text = summary.text()

    assert shown.count(LEAD) == 1
    assert text.count(LEAD) == 1
    assert "First failing hop: Listener rules" in text
    # What changed names the new failures; the other failure's words appear once, listed.
    assert "newly failing: routing.listener-rules" in text
    assert text.count("the API answers 404 on /api/mlflow") == 1


def test_incident_show_after_a_summary_still_says_what_changed(tmp_path) -> None:
    store, incident_id = _incident(tmp_path)
    posted = build_summary(store, incident_id, T0 + timedelta(minutes=5))
    store.mark_summary_posted(incident_id, T0 + timedelta(minutes=5))
    out = io.StringIO()

    code = incident_cli(["show", str(incident_id)], Settings(hokusai_db=store.path), out, out)

    assert "newly failing: routing.listener-rules" in posted.text()
    assert code == 0
    assert "Nothing changed" not in out.getvalue()
    assert "newly failing: routing.listener-rules" in out.getvalue()


async def test_a_summary_asked_for_twice_posts_once(app, slack, slack_secrets) -> None:
    channel = "C0INCIDENT"
    await send(app, slack, slack_secrets, "incident declare Registry down channel=here", channel)
    await send(app, slack, slack_secrets, "diagnose", channel)

    await send(app, slack, slack_secrets, "incident summary", channel)
    await send(app, slack, slack_secrets, "incident summary", channel)

    summaries = [m for m in slack.messages(channel) if m["text"].startswith("Summary: #1")]
    assert len(summaries) == 1
    again = slack.responses()[-1]
    assert "nothing changed since the last summary" in again["text"]
    assert "only you see this" in again["blocks"][0]["elements"][0]["text"].lower()
    # A note is a change: the next request posts again.
    await send(app, slack, slack_secrets, "incident note rolled back the rule", channel)
    await send(app, slack, slack_secrets, "incident summary", channel)
    summaries = [m for m in slack.messages(channel) if m["text"].startswith("Summary: #1")]
    assert len(summaries) == 2 and "1 note" in summaries[-1]["text"]
    assert services_of(app).store().incident(1).last_summary_at is not None
