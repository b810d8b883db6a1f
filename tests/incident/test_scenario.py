"""An incident from declare to resolve, through the real Bolt app and the Slack stand-in.

Requests are signed as Slack signs them; what reached the Web API and what the incident log
holds afterwards are what a person would check.
"""

from __future__ import annotations

import itertools
import json

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.incident.export import export_markdown
from bot.sandbox import signing
from bot.sandbox.trackers import TrackerStandIn
from bot.slack.app import services_of
from bot.tickets import LinearProvider

_requests = itertools.count(1)


async def send(
    app, slack, secrets, text: str, channel: str, *, retry: bool = False, trigger: str | None = None
):
    n = next(_requests)
    request = signing.slash_command(
        secrets["signing_secret"],
        text,
        channel_id=channel,
        response_url=slack.response_url(f"r{n}"),
        trigger_id=trigger or signing.new_trigger_id(),
        retry_num=1 if retry else None,
    )
    response = await app.async_dispatch(
        AsyncBoltRequest(body=request.text, headers=request.headers)
    )
    assert response.status == 200
    await services_of(app).drain()
    return response


def replies(slack) -> list[str]:
    return [c.args.get("text", "") for c in slack.calls_to("response_url")]


async def test_incident_from_declare_to_resolve(app, slack, slack_secrets):
    services = services_of(app)
    origin = "C0INCIDENT"
    await send(
        app,
        slack,
        slack_secrets,
        'incident declare "Registry returns 404" sev=1',
        origin,
        trigger="declare-1",
    )
    # Slack redelivers the same command: no second incident, no second channel.
    await send(
        app,
        slack,
        slack_secrets,
        'incident declare "Registry returns 404" sev=1',
        origin,
        retry=True,
        trigger="declare-1",
    )
    store = services.store()
    incidents = store.list_incidents()
    assert len(incidents) == 1
    inc = incidents[0]
    channel = slack.channel(inc.channel_id)
    assert channel["name"].startswith("inc-") and channel["name"].endswith("-registry-returns-404")
    assert "U0ONCALL" in channel["members"]
    assert "SEV1 incident #1: Registry returns 404" in slack.messages(inc.channel_id)[0]["text"]
    announcement = slack.messages(origin)[-1]["text"]
    assert "incident #1 declared" in announcement and inc.channel_id in announcement

    await send(app, slack, slack_secrets, "incident declare Another one", inc.channel_id)
    assert "already open in this channel" in replies(slack)[-1]

    await send(app, slack, slack_secrets, "diagnose", inc.channel_id)
    await send(
        app,
        slack,
        slack_secrets,
        "incident note API task definition changed at 08:55",
        inc.channel_id,
    )
    with TrackerStandIn() as trackers:
        issue = trackers.add_issue("linear", "Add ALB rule for /api/mlflow")
        services.overrides["tracker"] = LinearProvider(
            api_key="k" * 12, url=trackers.linear_url, timeout=2.0
        )
        await send(app, slack, slack_secrets, f"ticket link {issue.key}", inc.channel_id)
        trackers.mark_done(issue.key)
        await send(app, slack, slack_secrets, "ticket verify", inc.channel_id)
        assert any("failure persists" in c for c in trackers.comments(issue.key))
    await send(app, slack, slack_secrets, "incident status identified", inc.channel_id)
    # Resolving while the rule is still missing re-runs the check and asks instead.
    await send(app, slack, slack_secrets, "incident resolve", inc.channel_id)
    assert store.incident(inc.id).status == "identified"
    question = slack.messages(inc.channel_id)[-1]
    assert "is not fixed yet" in question["text"]
    assert "routing.listener-rules" in json.dumps(question["blocks"])
    # The fix lands; resolving again re-checks, finds it passing and resolves.
    app.test_state["failing"] = False
    await send(app, slack, slack_secrets, "incident resolve", inc.channel_id)

    kinds = [e.kind for e in store.timeline(inc.id)]
    assert kinds == [
        "declared",
        "diagnose",
        "note",
        "ticket",
        "diagnose",
        "verify",
        "status",
        "diagnose",
        "resolve-check",
        "diagnose",
        "resolved",
    ]
    assert store.incident(inc.id).status == "resolved"
    assert store.tickets(inc.id)[0].check_ids == ["routing.listener-rules"]
    assert store.run_count(inc.id) == 4
    posted = [m["text"] for m in slack.messages(inc.channel_id)]
    assert any("Ticket " + issue.key + " is Done but the failure persists" in t for t in posted)
    assert any(t.startswith("Status changed: #1 Registry returns 404") for t in posted)
    assert any(t.startswith("Incident resolved: #1") for t in posted)
    assert "is resolved" in slack.messages(origin)[-1]["text"]

    report = export_markdown(store, inc.id, services.clock())
    assert "First failing hop: *Listener rules* (`routing.listener-rules`, configuration)" in report
    assert "API task definition changed at 08:55" in report
    assert f"{issue.key} is Done but the failure persists" in report
    assert '"matched_rule": "default"' in report


async def test_commands_outside_an_incident_say_how_to_start_one(app, slack, slack_secrets):
    await send(app, slack, slack_secrets, "incident note hello", "C0INCIDENT")
    assert "No incident is open in this channel" in replies(slack)[-1]
    # Bad input is answered in the ack itself, with the usage.
    ack = await send(app, slack, slack_secrets, "incident role boss someone", "C0INCIDENT")
    assert "is not a role" in ack.body and "incident role commander|comms|scribe" in ack.body
    # No title: the declare form opens instead of a usage message.
    await send(app, slack, slack_secrets, "incident declare", "C0INCIDENT")
    (opened,) = slack.calls_to("views.open")
    assert opened.args["view"]["callback_id"] == "incident_declare_form"
    ack = await send(app, slack, slack_secrets, "incident declare Outage sev=7", "C0INCIDENT")
    assert "severity is 1 (worst) to 4" in ack.body
    assert services_of(app).store().list_incidents() == []


async def test_summary_export_attaches_the_report(app, slack, slack_secrets):
    await send(
        app, slack, slack_secrets, "incident declare Registry down channel=here", "C0INCIDENT"
    )
    await send(app, slack, slack_secrets, "incident summary export", "C0INCIDENT")
    files = slack.files
    assert files and files[-1].name == "incident-1-registry-down.md"
    assert files[-1].content.decode().startswith("# Incident #1: Registry down")
    assert files[-1].channel == "C0INCIDENT"
    # The file comes with one line, not a whole summary re-posted to carry it.
    (carrier,) = [m for m in slack.messages("C0INCIDENT") if m.get("files")]
    assert carrier["text"] == ":page_facing_up: Post-incident report of #1 Registry down"
    assert not any(m["text"].startswith("Summary: #1") for m in slack.messages("C0INCIDENT"))
