"""The *Declare an incident* form: what it asks, and what a submission means.

``/hokusai incident declare`` with no title and the *Declare incident* button open it with
``views.open``. It asks for a title, a severity (each with its meaning), public or private, and
a commander. A submission is checked here; the declare itself is ``commands.incident``'s.

Example::

    view = declare_view(DeclareContext(origin_channel_id="C1"), title="", commander="U1")
    form, errors = parse_submission(body["view"])     # errors: block_id -> message
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from bot.incident.store import SEVERITIES, SEVERITY_MEANINGS

CALLBACK_ID = "incident_declare_form"
MAX_TITLE = 150
_TITLE, _SEVERITY, _VISIBILITY, _COMMANDER = "title", "severity", "visibility", "commander"
_VALUE = "value"


@dataclass(frozen=True)
class DeclareContext:
    """Where the form was opened from; carried through Slack in ``private_metadata``."""

    origin_channel_id: str
    run_id: int | None = None
    response_url: str = ""
    origin_channel_name: str = ""

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> DeclareContext:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        run_id = data.get("run_id")
        return cls(
            origin_channel_id=str(data.get("origin_channel_id") or ""),
            run_id=int(run_id) if isinstance(run_id, int) or str(run_id).isdigit() else None,
            response_url=str(data.get("response_url") or ""),
            origin_channel_name=str(data.get("origin_channel_name") or ""),
        )


@dataclass(frozen=True)
class DeclareForm:
    """A valid submission. ``title`` is escaped as Slack escapes typed text (no pings)."""

    title: str
    severity: int
    private: bool
    commander: str


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _severity_option(severity: int) -> dict[str, Any]:
    label, _, meaning = SEVERITY_MEANINGS[severity].partition(": ")
    return {
        "text": _plain(f"SEV{severity} · {label}"),
        "description": _plain(meaning[:75]),
        "value": str(severity),
    }


_VISIBILITY_OPTIONS = {
    "public": {
        "text": _plain("Public channel"),
        "description": _plain("Anyone in the workspace can follow it"),
        "value": "public",
    },
    "private": {
        "text": _plain("Private channel"),
        "description": _plain("Only people invited see it; not announced"),
        "value": "private",
    },
}


def declare_view(
    context: DeclareContext, *, title: str = "", severity: int = 2, commander: str = ""
) -> dict[str, Any]:
    """The modal for ``views.open``, pre-filled with what is already known."""
    title_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": _VALUE,
        "max_length": MAX_TITLE,
        "placeholder": _plain("What is broken, for whom"),
    }
    if title:
        title_input["initial_value"] = title[:MAX_TITLE]
    commander_select: dict[str, Any] = {"type": "users_select", "action_id": _VALUE}
    if commander:
        commander_select["initial_user"] = commander
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _plain("Declare an incident"),
        "submit": _plain("Declare"),
        "close": _plain("Cancel"),
        "private_metadata": context.encode(),
        "blocks": [
            {"type": "input", "block_id": _TITLE, "label": _plain("Title"), "element": title_input},
            {
                "type": "input",
                "block_id": _SEVERITY,
                "label": _plain("Severity"),
                "element": {
                    "type": "static_select",
                    "action_id": _VALUE,
                    "options": [_severity_option(s) for s in SEVERITIES],
                    "initial_option": _severity_option(severity),
                },
            },
            {
                "type": "input",
                "block_id": _VISIBILITY,
                "label": _plain("Channel"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": _VALUE,
                    "options": list(_VISIBILITY_OPTIONS.values()),
                    "initial_option": _VISIBILITY_OPTIONS["public"],
                },
            },
            {
                "type": "input",
                "block_id": _COMMANDER,
                "label": _plain("Commander"),
                "hint": _plain("Leads the response; hand over later with /hokusai incident role"),
                "element": commander_select,
            },
        ],
    }


def parse_submission(view: dict[str, Any]) -> tuple[DeclareForm | None, dict[str, str]]:
    """The form's values, or the errors to show beside its fields (``response_action``)."""
    values = (view.get("state") or {}).get("values") or {}

    def field(block: str) -> dict[str, Any]:
        return (values.get(block) or {}).get(_VALUE) or {}

    errors: dict[str, str] = {}
    title = " ".join(str(field(_TITLE).get("value") or "").split())
    if not title:
        errors[_TITLE] = "Give the incident a title"
    severity_text = str((field(_SEVERITY).get("selected_option") or {}).get("value") or "")
    if not severity_text.isdigit() or int(severity_text) not in SEVERITIES:
        errors[_SEVERITY] = "Pick a severity"
    visibility = (field(_VISIBILITY).get("selected_option") or {}).get("value") or "public"
    commander = str(field(_COMMANDER).get("selected_user") or "")
    if not commander:
        errors[_COMMANDER] = "Pick who leads the response"
    if errors:
        return None, errors
    return (
        DeclareForm(
            title=escape(title),
            severity=int(severity_text),
            private=visibility == "private",
            commander=commander,
        ),
        {},
    )


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack does in slash-command text: a typed
    ``<!channel>`` stays text when the bot posts the title back."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
