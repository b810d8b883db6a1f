"""``hokusai demo``: the seed outage on one laptop, end to end.

Builds the sandbox (moto, DNS, the edge, the API service, a real MLflow), starts the real bot
in HTTP mode against the Slack stand-in, plays what a responder would type and click, and
prints the channel as a person would see it, then the verdict.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from bot.diagnosis.checks.base import HOP_TITLES
from bot.errors import HokusaiError
from bot.outbound import echo
from bot.sandbox import controls
from bot.sandbox.conversation import Conversation
from bot.sandbox.slack import DEFAULT_CHANNEL_ID
from bot.sandbox.transcript import render_channel
from bot.sandbox.world import Sandbox, describe, expected_first_failure, scenario_names
from bot.watch.limits import WatchLimits

TITLE = "Model registration failing: registry.hokus.ai answers 404"
# The demo's bot takes 2-second watch ticks so the fix shows within seconds; people get
# 10 s to 10 min (only code that builds the app can shorten them).
DEMO_WATCH = WatchLimits(min_every=1.0, lease_margin=5.0, adopt_every=1.0, ticket_every=2.0)
DEMO_EVERY = "2s"


class _Narrator:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.started = time.monotonic()

    def line(self, text: str = "") -> None:
        echo(text, self.out)

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        echo(f"[{elapsed:5.1f}s] {text}", self.out)


def run_demo(scenario: str = "seed-outage", keep: bool = False, out: IO[str] | None = None) -> int:
    """Run the demo; returns the exit code (0 when the bot named the expected hop)."""
    import sys

    out = out or sys.stdout
    if scenario not in scenario_names():
        raise HokusaiError(
            f"hokusai demo: unknown scenario {scenario!r}; known: {', '.join(scenario_names())}"
        )
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        os.environ.pop(var, None)  # everything here is loopback
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.basicConfig(level=logging.WARNING)
    previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _run(scenario, keep, out)
    except _Terminated:
        echo("hokusai demo: terminated; everything it started is stopped", sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous_term)


def _run(scenario: str, keep: bool, out: IO[str]) -> int:
    narrator = _Narrator(out)
    narrator.line(f"Hokusai demo — scenario {scenario}: {describe(scenario)}")
    narrator.line("Everything runs on 127.0.0.1: no Slack, AWS or tracker account is used.\n")
    with tempfile.TemporaryDirectory(prefix="hokusai-demo-") as tmp:
        workdir = Path(tmp)
        narrator.step("Starting the sandbox: moto, DNS, the load-balancer edge, the API, MLflow …")
        with Sandbox(scenario, workdir=workdir / "sandbox") as sandbox:
            narrator.step(
                f"Sandbox up: edge {sandbox.edge.url}, DNS {sandbox.dns.address}, "
                f"MLflow {sandbox.mlflow.url}, moto {sandbox.moto.url}"
            )
            with Conversation(
                sandbox.config_path,
                workdir / "hokusai.db",
                app_overrides={"watch_limits": DEMO_WATCH},
            ) as chat:
                narrator.step(f"Bot listening on {chat.server.events_url}\n")
                incident_channel = _play(chat, narrator)
                _watch_the_fix(chat, sandbox, incident_channel, narrator)
                narrator.line()
                _print_channels(chat, incident_channel, narrator)
                verdict = _verdict(chat, narrator, scenario)
                if keep:
                    _keep_running(sandbox, chat, narrator)
        narrator.step("Stopped everything.")
    return verdict


def _play(chat: Conversation, narrator: _Narrator) -> str:
    def typed(text: str, channel: str = DEFAULT_CHANNEL_ID) -> None:
        narrator.step(f"@oncall types in #{_name(chat, channel)}: /hokusai {text}")
        ack = chat.command(text, channel_id=channel)
        if ack.text:
            narrator.line("         (only you can see this) " + ack.text.splitlines()[0])

    typed(f'incident declare "{TITLE}" sev=1')
    try:
        channel = chat.channel_named("inc-")["id"]
    except LookupError:
        channel = DEFAULT_CHANNEL_ID
    typed("diagnose", channel)
    typed("runbook start registry-unreachable", channel)
    walkthrough = chat.last_message(channel, containing="runbook_")
    for label in ("Run", "Run"):
        try:
            chat.click(walkthrough, label, channel_id=channel)
        except LookupError:
            break
        narrator.step(f"@oncall clicks [ {label} ] on the runbook")
        walkthrough = chat.last_message(channel, containing="runbook_")
    typed(f"ticket create {_ticket_title(chat)}", channel)
    typed("incident summary", channel)
    return channel


def _watch_the_fix(chat: Conversation, sandbox: Sandbox, channel: str, narrator: _Narrator) -> None:
    """Start a watch, apply the scenario's fix in (moto's) AWS, wait for it to say recovered."""
    if sandbox.scenario not in controls.FIXES:
        return
    narrator.step(f"@oncall types in #{_name(chat, channel)}: /hokusai watch every={DEMO_EVERY}")
    chat.command(f"watch every={DEMO_EVERY} for=10m", channel_id=channel)
    narrator.line("         (the demo's bot takes 2 s ticks; in Slack a tick is 10 s to 10 min)")
    _wait_for_watch(chat, channel, ("failing", "intermittent"))
    narrator.step(f"The platform team applies the fix: {sandbox.fix()}")
    message = _wait_for_watch(chat, channel, ("recovered",))
    narrator.step("The watch message turns to: " + message)
    recovery = chat.last_message(channel, containing="Move incident to monitoring")
    chat.click(recovery, "Move incident to monitoring", channel_id=channel)
    narrator.step("@oncall clicks [ Move incident to monitoring ]")
    chat.command("watch stop", channel_id=channel)
    narrator.step(f"@oncall types in #{_name(chat, channel)}: /hokusai watch stop")


def _wait_for_watch(
    chat: Conversation, channel: str, states: tuple[str, ...], timeout: float = 60.0
) -> str:
    """Wait until the channel's watch is in one of ``states``; its message text."""
    store = chat.server.app.hokusai_services.store()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = store.active_watch(channel)
        if row is not None and row.state.get("headline", {}).get("name") in states:
            message = chat.last_message(channel, containing=f"Watch #{row.id}")
            if any(state in message["text"] for state in states):
                return message["text"]
        time.sleep(0.2)
    raise HokusaiError(f"hokusai demo: the watch did not turn {' or '.join(states)} in time")


def _ticket_title(chat: Conversation) -> str:
    """What the responder would title the fix, from what the bot found."""
    runs = chat.server.app.hokusai_services.store().runs(limit=1, people_only=True)
    if runs and runs[0].first_failure_id:
        hop = HOP_TITLES.get(runs[0].first_failure_layer or "", "the request path")
        return f"Fix {hop.lower()}: {runs[0].first_failure_id} fails"
    return "Follow up: registry checks pass, confirm with the reporters"


def _name(chat: Conversation, channel_id: str) -> str:
    channel = chat.slack.channel(channel_id) or {}
    return channel.get("name") or channel_id


def _print_channels(chat: Conversation, incident_channel: str, narrator: _Narrator) -> None:
    seen = [DEFAULT_CHANNEL_ID] + (
        [incident_channel] if incident_channel != DEFAULT_CHANNEL_ID else []
    )
    for channel_id in seen:
        names = {c["id"]: c["name"] for c in chat.slack.channels if c.get("name")}
        narrator.line(
            render_channel(
                chat.messages(channel_id), name=_name(chat, channel_id), channel_names=names
            )
        )
    if chat.tracker is not None and chat.tracker.issues:
        narrator.line("━━━ tracker (local Linear stand-in) " + "━" * 60)
        for key, issue in chat.tracker.issues.items():
            narrator.line(f"  {key}  {issue.title}  [{issue.status}]")
        narrator.line()


def _verdict(chat: Conversation, narrator: _Narrator, scenario: str) -> int:
    """Print the verdict; 0 when the bot named the hop this scenario breaks, 1 otherwise."""
    store = chat.server.app.hokusai_services.store()
    runs = store.runs(limit=1, people_only=True)
    if not runs:
        narrator.line("No diagnose run was recorded.")
        return 1
    run = runs[0]
    narrator.line("Verdict: " + (run.verdict or "(none)"))
    expected, _ = expected_first_failure(scenario)
    if run.first_failure_layer != expected:
        narrator.line(
            f"(expected the first failing hop to be {expected or 'none'}, "
            f"the bot said {run.first_failure_layer or 'none'})"
        )
        return 1
    return 0


def _keep_running(sandbox: Sandbox, chat: Conversation, narrator: _Narrator) -> None:
    # The variables go in a file to source: printing them would print the probe key (and
    # the redactor, rightly, would not let it through).
    env_file = sandbox.workdir / "sandbox.env"
    env_file.write_text(
        f"export AWS_ENDPOINT_URL={sandbox.moto.url}\n"
        "export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_REGION=us-east-1\n"
        f"export HOKUSAI_API_KEY={sandbox.api_key}\n"
        f"export HOKUSAI_CONFIG={sandbox.config_path}\n"
        f"export HOKUSAI_DB={chat.db_path}\n"
        "export NO_PROXY=127.0.0.1,localhost\n"
    )
    env_file.chmod(0o600)
    incidents = chat.server.app.hokusai_services.store().list_incidents(limit=1)
    show = f"  .venv/bin/hokusai incident show {incidents[0].id}\n" if incidents else ""
    control = controls.ControlServer(sandbox).start()
    narrator.line(
        "\nThe sandbox keeps running. In another terminal, from this directory:\n"
        f"  source {env_file}\n"
        "  .venv/bin/hokusai diagnose\n"
        "  .venv/bin/hokusai incident list\n"
        f"{show}"
        f"  curl -s '{sandbox.edge.url}/api/2.0/mlflow/experiments/search?max_results=1'\n"
        f"  dig @127.0.0.1 -p {sandbox.dns.address.rsplit(':', 1)[1]} registry.hokus.ai\n"
        "  .venv/bin/hokusai watch --scope mlflow-direct --every 10 --for 600\n"
        "Break the platform again, or fix it, while a watch runs:\n"
        f"  curl -s -X POST {control.url}/break\n"
        f"  curl -s -X POST {control.url}/fix\n"
        f"The bot takes signed Slack requests at {chat.server.events_url}.\n"
        "Press Ctrl-C to stop everything."
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        signal.signal(signal.SIGINT, previous)
        control.stop()


class _Terminated(Exception):
    """SIGTERM (a supervisor, `timeout`): unwind like Ctrl-C so everything is stopped."""


def _raise_terminated(*_: object) -> None:
    raise _Terminated
