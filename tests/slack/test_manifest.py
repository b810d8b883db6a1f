"""The Slack app manifest and `hokusai manifest`."""

from __future__ import annotations

import yaml

from bot.cli import main
from bot.slack.manifest import load_manifest


def test_manifest_declares_the_command_interactivity_and_home():
    manifest = load_manifest()
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/hokusai"]
    assert commands[0]["usage_hint"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "channels:manage", "files:write"} <= scopes
    assert not any(s.endswith(":history") or s.startswith("admin") for s in scopes)


def test_manifest_url_is_filled_in(capsys):
    assert main(["manifest", "--url", "https://bot.example.com"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    url = "https://bot.example.com/slack/events"
    assert printed["features"]["slash_commands"][0]["url"] == url
    assert printed["settings"]["interactivity"]["request_url"] == url
    assert printed["settings"]["event_subscriptions"]["request_url"] == url


def test_manifest_for_socket_mode_has_no_urls(capsys):
    assert main(["manifest", "--socket"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["settings"]["socket_mode_enabled"] is True
    assert "url" not in printed["features"]["slash_commands"][0]


def test_manifest_refuses_plain_http(capsys):
    assert main(["manifest", "--url", "http://bot.example.com"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
