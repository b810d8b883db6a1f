"""The Slack app manifest, with request URLs filled in for a deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.slack.server import EVENTS_PATH

_PLACEHOLDER = "https://REPLACE_ME/slack/events"


def manifest_path() -> Path:
    """manifest.yml at the repository root (installed in editable mode) or in the package."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "manifest.yml").exists():
            return candidate / "manifest.yml"
    raise FileNotFoundError("manifest.yml not found beside the bot package or here")


def load_manifest() -> dict[str, Any]:
    return yaml.safe_load(manifest_path().read_text())


def render_manifest(url: str | None = None, *, socket_mode: bool = False) -> str:
    """The manifest as YAML, pointed at ``url`` (``https://host``) or set for Socket Mode.

    Raises:
        ValueError: when ``url`` is not an https URL (Slack refuses plain http).
    """
    manifest = load_manifest()
    if socket_mode:
        manifest["settings"]["socket_mode_enabled"] = True
        for command in manifest["features"]["slash_commands"]:
            command.pop("url", None)
        manifest["settings"]["event_subscriptions"].pop("request_url", None)
        manifest["settings"]["interactivity"].pop("request_url", None)
    else:
        if not url or not url.startswith("https://"):
            raise ValueError("--url must be the https:// address Slack can reach the bot at")
        events = url.rstrip("/")
        if not events.endswith(EVENTS_PATH):
            events += EVENTS_PATH
        text = yaml.safe_dump(manifest, sort_keys=False)
        return text.replace(_PLACEHOLDER, events)
    return yaml.safe_dump(manifest, sort_keys=False)
