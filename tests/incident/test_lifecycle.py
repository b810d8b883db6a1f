"""Declaring, moving and closing an incident as responders do, through the Slack stand-in.

Every request is signed as Slack signs it and goes through the real Bolt app; the assertions
are what the people in the channels would see and what the incident log keeps.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from slack_sdk.models.views import View

from bot.sandbox import signing
from bot.sandbox.trackers import TrackerStandIn
from bot.slack.scheduler import SummaryScheduler
from bot.tickets import LinearProvider
from tests.incident.chat import ORIGIN

FORM = {"title": "Registry returns 404", "severity": "1"}


def text_of(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def incident_channels(slack) -> list[dict]:
    return [c for c in slack.channels if c["name"].startswith("inc-")]


async def declare_by_form(chat, values=FORM, *, user="U0ONCALL"):
    await chat.command("incident declare", ORIGIN, user=user)
    form = chat.modals()[-1]
    return await chat.submit(form, values, user=user)


async def test_declare_form_asks_what_responders_expect(chat, slack):
    await chat.command("incident declare")
    (form,) = chat.modals()
    View(**form).validate_json()  # Slack's own limits, checked offline
    text = text_of(form)
    for asked in ("Title", "Severity", "Private channel", "Commander"):
        assert asked in text
    assert "SEV1 · Critical" in text and "the platform is down" in text
    commander = next(b for b in form["blocks"] if b["block_id"] == "commander")
    assert commander["element"]["initial_user"] == "U0ONCALL"

    ack = await chat.submit(form, {"title": "   "})
    assert ack["response_action"] == "errors" and "title" in ack["errors"]
    assert chat.services.store().list_incidents() == []

    await chat.submit(form, {**FORM, "visibility": "public"})
    (incident,) = chat.services.store().list_incidents()
    assert (incident.title, incident.severity, incident.commander) == (
        "Registry returns 404",
        1,
        "U0ONCALL",
    )
    channel = slack.channel(incident.channel_id)
    assert not channel["is_private"] and channel["name"].endswith("-registry-returns-404")
    assert channel["topic"]["value"] == "Investigating · SEV1 · Commander: Ona Call"
    assert f"follow it in <#{incident.channel_id}>" in slack.messages(ORIGIN)[-1]["text"]


async def test_a_double_declare_opens_one_incident(chat, slack):
    await declare_by_form(chat)
    # A colleague declares the same outage moments later, by form and by typing.
    slack.add_user("U0DANA", "dana", real_name="Dana Ops")
    await declare_by_form(chat, {**FORM, "title": "registry returns 404!"}, user="U0DANA")
    await chat.command('incident declare "Registry returns 404" sev=2', user="U0DANA")
    incidents = chat.services.store().list_incidents()
    assert len(incidents) == 1 and len(incident_channels(slack)) == 1
    links = [r for r in chat.replies() if "was declared" in r]
    assert len(links) == 2
    assert all(f"follow it in <#{incidents[0].channel_id}>" in r for r in links)
    # A different title, or the same one from another channel, is another incident.
    slack.add_channel("C0OTHER", "platform")
    await chat.command('incident declare "Registry returns 404"', "C0OTHER")
    assert len(chat.services.store().list_incidents()) == 2


async def test_an_expired_trigger_is_explained_not_silent(chat, slack):
    stale = signing.new_trigger_id(issued_at=time.time() - 10)
    await chat.command("incident declare", trigger=stale)
    assert len(slack.calls_to("views.open")) == 1  # Slack refused it
    assert "did not open (Slack: expired_trigger_id)" in chat.replies()[-1]
    assert "incident declare TITLE" in chat.replies()[-1]


async def test_declare_button_is_primary_and_opens_the_form_prefilled(chat, slack):
    await chat.command("diagnose")
    result = next(m for m in slack.messages(ORIGIN) if "Declare incident" in text_of(m))
    button = None
    for block in result["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == "incident_declare":
                button = element
    assert button is not None and button["style"] == "primary"
    await chat.click(result, "Declare incident", ORIGIN)
    form = chat.modals()[-1]
    title = next(b for b in form["blocks"] if b["block_id"] == "title")
    assert title["element"]["initial_value"] == "routing.listener-rules failing (development)"
    await chat.submit(form, {"severity": "2"})
    (incident,) = chat.services.store().list_incidents()
    assert chat.services.store().run_count(incident.id) == 1  # the diagnose result is attached
    # A second click on the same result links to the incident instead of opening a form.
    await chat.click(result, "Declare incident", ORIGIN, user="U0ONCALL")
    assert len(chat.modals()) == 1
    assert "already declared from this diagnose result" in chat.replies()[-1]


async def test_private_incident_gets_a_private_channel_and_no_announcement(chat, slack):
    before = len(slack.messages(ORIGIN))
    await declare_by_form(chat, {**FORM, "visibility": "private"})
    (incident,) = chat.services.store().list_incidents()
    assert incident.private
    (create,) = slack.calls_to("conversations.create")
    assert create.args["is_private"] in (True, "true", "1", 1)
    assert slack.channel(incident.channel_id)["is_private"]
    assert len(slack.messages(ORIGIN)) == before  # nothing said in the public channel
    assert "Private incident #1 is open" in chat.replies()[-1]


async def test_severity_and_roles_are_on_the_timeline_topic_and_summary(chat, slack):
    await declare_by_form(chat, {**FORM, "severity": "2"})
    (incident,) = chat.services.store().list_incidents()
    channel = incident.channel_id
    slack.add_user("U0DANA", "dana", real_name="Dana Ops")
    await chat.command("incident severity 1", channel)
    await chat.command("incident role commander <@U0DANA|dana>", channel)
    await chat.command("incident role comms <@U0ONCALL|oncall>", channel)
    posted = [m["text"] for m in slack.messages(channel)]
    assert any("from SEV2 to SEV1" in t for t in posted)
    assert any("<@U0DANA> is now commander" in t for t in posted)
    assert slack.channel(channel)["topic"]["value"] == (
        "Investigating · SEV1 · Commander: Dana Ops"
    )
    assert "U0DANA" in slack.channel(channel)["members"]
    store = chat.services.store()
    kinds = [e.kind for e in store.timeline(incident.id)]
    assert kinds == ["declared", "severity", "role", "role"]
    await chat.command("incident summary", channel)
    summary = slack.messages(channel)[-1]
    text = text_of(summary["blocks"])
    assert "Severity SEV2 → SEV1" in text and "Commander: <@U0DANA>" in text
    assert "commander <@U0DANA>" in text and "comms <@U0ONCALL>" in text
    # Bad input is answered in the ack, with the usage.
    ack = await chat.command("incident role boss <@U0DANA|dana>", channel)
    assert "is not a role" in ack.body
    ack = await chat.command("incident role comms dana", channel)
    assert "mention them with @" in ack.body


async def test_resolve_while_failing_asks_and_keep_open_keeps_it_open(chat, slack):
    await declare_by_form(chat)
    (incident,) = chat.services.store().list_incidents()
    channel = incident.channel_id
    await chat.command("diagnose", channel)
    await chat.command("incident resolve", channel)
    question = slack.messages(channel)[-1]
    assert "not fixed yet" in question["text"]
    blocks = text_of(question["blocks"])
    assert "routing.listener-rules" in blocks and "matched_rule=" in blocks  # the evidence
    await chat.click(question, "Keep open", channel)
    store = chat.services.store()
    assert store.incident(incident.id).status == "investigating"
    answered = (
        slack.messages(channel)[-1]
        if False
        else next(m for m in slack.messages(channel) if m["ts"] == question["ts"])
    )
    assert "Kept open by <@U0ONCALL>" in text_of(answered["blocks"])
    assert not any(b["type"] == "actions" for b in answered["blocks"])
    # A second press of the same question changes nothing.
    await chat.click(question, "Resolve anyway", channel)
    assert store.incident(incident.id).status == "investigating"
    assert "already answered" in chat.replies()[-1]

    await chat.command("incident resolve", channel)
    again = slack.messages(channel)[-1]
    await chat.click(again, "Resolve anyway", channel)
    assert store.incident(incident.id).status == "resolved"
    decisions = [e.text for e in store.timeline(incident.id) if e.kind == "decision"]
    assert decisions == [
        "Kept open",
        "Resolved anyway while still failing: routing.listener-rules",
    ]


async def test_cancelled_closes_and_frees_the_channel(chat, slack):
    await chat.command("incident declare Mistake channel=here")
    await chat.command("incident status cancelled")
    store = chat.services.store()
    (incident,) = store.list_incidents()
    assert incident.status == "cancelled" and not incident.is_open
    await chat.command("incident declare Real outage channel=here")
    assert store.open_incident_for_channel(ORIGIN).title == "Real outage"


async def test_closed_incident_channels_are_archived_after_the_configured_hours(chat, slack):
    services = chat.services
    assert services.config.incidents.archive_after_hours == 48  # hokusai.yml
    await chat.command('incident declare "Registry returns 404"')
    await chat.command("incident declare Kept here channel=here")
    store = services.store()
    own, here = sorted(store.list_incidents(), key=lambda i: i.id)
    assert here.channel_id == ORIGIN
    await chat.command("incident status cancelled", own.channel_id)
    await chat.command("incident status cancelled", ORIGIN)
    scheduler = SummaryScheduler(services)
    now = services.clock()
    assert await scheduler.archive(now + timedelta(hours=47)) == []
    assert await scheduler.archive(now + timedelta(hours=49)) == [own.id]
    assert slack.channel(own.channel_id)["is_archived"]
    assert not slack.channel(ORIGIN)["is_archived"]  # declared here: never archived
    assert await scheduler.archive(now + timedelta(hours=50)) == []
    assert store.timeline(own.id)[-1].text == "Channel archived"


async def test_a_ticket_turning_done_is_rechecked_without_asking(chat, slack):
    services = chat.services
    await chat.command('incident declare "Registry returns 404" sev=1')
    (incident,) = services.store().list_incidents()
    channel = incident.channel_id
    await chat.command("diagnose", channel)
    with TrackerStandIn() as trackers:
        services.overrides["tracker"] = LinearProvider(
            api_key="k" * 12, url=trackers.linear_url, timeout=2.0
        )
        issue = trackers.add_issue("linear", "Add ALB rule for /api/mlflow")
        await chat.command(f"ticket link {issue.key}", channel)
        assert f"Ticket: {issue.key}" in slack.channel(channel)["topic"]["value"]
        scheduler = SummaryScheduler(services)
        now = services.clock()
        assert await scheduler.poll_tickets(now + timedelta(minutes=6)) == []
        posts = len(slack.messages(channel))
        # Marked Done while the rule is still missing: Hokusai notices on its next poll.
        trackers.mark_done(issue.key)
        assert await scheduler.poll_tickets(now + timedelta(minutes=7)) == []  # polled 1 min ago
        assert await scheduler.poll_tickets(now + timedelta(minutes=12)) == [issue.key]
        said = [m["text"] for m in slack.messages(channel)[posts:]]
        assert any(f"Ticket {issue.key} is Done but the failure persists" in t for t in said)
        assert "when the tracker marked it Done" in said[-1]
        (comment,) = trackers.comments(issue.key)
        assert "routing.listener-rules" in comment and "matched_rule" in comment
        # Seen once: later polls leave a Done ticket alone.
        assert await scheduler.poll_tickets(now + timedelta(minutes=30)) == []
    link = services.store().tickets(incident.id)[0]
    assert (link.done, link.verified) == (True, "failing")
    entries = [e.text for e in services.store().timeline(incident.id) if e.kind == "verify"]
    assert entries == [f"{issue.key} is Done but the failure persists: routing.listener-rules fail"]


async def test_ticket_polls_pause_when_the_tracker_rate_limits(chat, slack):
    services = chat.services
    await chat.command("incident declare Registry down channel=here")
    with TrackerStandIn() as trackers:
        services.overrides["tracker"] = LinearProvider(
            api_key="k" * 12, url=trackers.linear_url, timeout=2.0
        )
        issue = trackers.add_issue("linear", "Fix it")
        await chat.command(f"ticket link {issue.key}")
        trackers.mark_done(issue.key)
        trackers.fail_next("linear", 429, retry_after=30)
        scheduler = SummaryScheduler(services)
        now = services.clock()
        assert await scheduler.poll_tickets(now + timedelta(minutes=10)) == []
        # Paused for a minute: no tracker call at all, then the poll goes through.
        assert await scheduler.poll_tickets(now + timedelta(minutes=10, seconds=30)) == []
        assert await scheduler.poll_tickets(now + timedelta(minutes=12)) == [issue.key]


async def test_short_incident_exports_a_report_people_use(chat, slack):
    """Declare, diagnose, note, ticket, resolve while failing, fix, resolve, export."""
    services = chat.services
    slack.add_user("U0DANA", "dana", real_name="Dana Ops")
    await declare_by_form(chat)
    await declare_by_form(chat, user="U0DANA")  # the double declare
    (incident,) = services.store().list_incidents()
    channel = incident.channel_id
    await chat.command("diagnose", channel)
    await chat.command("incident note API task definition changed at 08:55", channel, user="U0DANA")
    with TrackerStandIn() as trackers:
        services.overrides["tracker"] = LinearProvider(
            api_key="k" * 12, url=trackers.linear_url, timeout=2.0
        )
        await chat.command("ticket create Add ALB rule for /api/mlflow", channel)
        (key,) = trackers.issues
        await chat.command("incident resolve", channel)  # failing, ticket open: asks
        question = slack.messages(channel)[-1]
        assert f"|{key} “Add ALB rule for /api/mlflow”> is still" in text_of(question["blocks"])
        await chat.click(question, "Keep open", channel)
        chat.app.test_state["failing"] = False  # the fix lands
        trackers.mark_done(key)
        await chat.command("ticket verify", channel)
        await chat.command("incident resolve", channel)
    assert services.store().incident(incident.id).status == "resolved"
    await chat.command("incident export", channel)
    report = slack.files[-1].content.decode()
    assert slack.files[-1].name == "incident-1-registry-returns-404.md"
    assert len(report) < 20_000
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
    before_appendix = report.split("## Appendix")[0]
    assert len(before_appendix.splitlines()) <= 60  # one screen
    assert "U0ONCALL" not in before_appendix and "U0DANA" not in before_appendix
    assert "Ona Call" in before_appendix and "Dana Ops" in before_appendix
    assert "`routing.listener-rules`" in report.split("## Impact")[1].split("## Root")[0]
    cause = report.split("## Root cause")[1].split("## Detection")[0]
    assert "*Listener rules*" in cause and "matched_rule: `default`" in cause
    timeline = report.split("## Timeline")[1].split("## Resolution")[0]
    for moment in ("Declared SEV1", "API task definition changed", "Kept open", "resolved"):
        assert moment in timeline
    assert timeline.count("Diagnose:") == 2  # failing, then passing: not every run
    items = report.split("## Action items")[1].split("## Appendix")[0]
    assert f"| [{key}](" in items and "| Done | yes: its checks pass" in items
    assert '"matched_rule": "default"' in report.split("## Appendix")[1]
    assert len(services.store().list_incidents()) == 1
