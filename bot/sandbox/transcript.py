"""Render Slack messages as a person sees them in the channel, for the terminal.

Block Kit becomes indented text: headers in capitals, sections as paragraphs, fields side by
side, context in grey, buttons as ``[ Label ]``. Emoji codes become their characters.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from typing import Any

from bot.diagnosis.render import BOLD

EMOJI = {
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":warning:": "⚠️ ",
    ":exclamation:": "❗",
    ":hourglass:": "⌛",
    ":hourglass_flowing_sand:": "⏳",
    ":white_circle:": "⚪",
    ":mag:": "🔎",
    ":rotating_light:": "🚨",
    ":no_entry:": "⛔",
    ":large_green_circle:": "🟢",
    ":large_yellow_circle:": "🟡",
    ":red_circle:": "🔴",
    ":arrow_right:": "➡️ ",
    ":memo:": "📝",
    ":ticket:": "🎫",
    ":clipboard:": "📋",
    ":fire:": "🔥",
    ":bar_chart:": "📊",
    ":spiral_note_pad:": "🗒️ ",
    ":heavy_check_mark:": "✔️ ",
    ":fast_forward:": "⏩",
    ":point_right:": "👉",
    ":question:": "❓",
    ":runner:": "🏃",
    ":books:": "📚",
    ":link:": "🔗",
    ":white_large_square:": "⬜",
    ":grey_question:": "❔",
    ":black_square_button:": "🔲",
    ":arrow_forward:": "▶️ ",
    ":lock:": "🔒",
    ":tada:": "🎉",
    ":pushpin:": "📌",
}
_EMOJI_RE = re.compile(r":[a-z0-9_+-]+:")
_LINK_RE = re.compile(r"<([^|>]+)\|([^>]+)>")
_BARE_LINK_RE = re.compile(r"<((?:https?|mailto):[^>]+)>")
_USER_RE = re.compile(r"<@([A-Z0-9]+)>")
_CHANNEL_RE = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]+))?>")
WIDTH = 100


def mrkdwn(text: str, names: Mapping[str, str] | None = None) -> str:
    """Slack mrkdwn to plain terminal text."""
    text = _LINK_RE.sub(r"\2 (\1)", text)
    text = _BARE_LINK_RE.sub(r"\1", text)
    text = _USER_RE.sub(r"@\1", text)
    text = _CHANNEL_RE.sub(
        lambda m: "#" + (m.group(2) or (names or {}).get(m.group(1)) or m.group(1)), text
    )
    text = _EMOJI_RE.sub(lambda m: EMOJI.get(m.group(0), m.group(0)), text)
    text = text.replace("```", "")
    text = BOLD.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _wrap(text: str, indent: str, names: Mapping[str, str] | None = None) -> list[str]:
    lines = []
    for raw in mrkdwn(text, names).splitlines() or [""]:
        lines += textwrap.wrap(
            raw, WIDTH, initial_indent=indent, subsequent_indent=indent + "  "
        ) or [indent]
    return lines


def _element_text(element: dict[str, Any]) -> str:
    text = element.get("text")
    if isinstance(text, dict):
        return text.get("text", "")
    return text or ""


def render_blocks(
    blocks: list[dict[str, Any]], indent: str = "  ", names: Mapping[str, str] | None = None
) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(indent + mrkdwn(_element_text(block), names).upper())
        elif kind == "section":
            if block.get("text"):
                lines += _wrap(_element_text(block), indent, names)
            for field in block.get("fields", []):
                lines += _wrap(field.get("text", ""), indent + "  ", names)
            accessory = block.get("accessory")
            if accessory and accessory.get("type") == "button":
                lines.append(f"{indent}  [ {mrkdwn(_element_text(accessory))} ]")
        elif kind == "context":
            parts = [mrkdwn(_element_text(e), names) for e in block.get("elements", [])]
            lines += _wrap("  ".join(p for p in parts if p), indent + "· ")
        elif kind == "actions":
            buttons = [
                f"[ {mrkdwn(_element_text(e))} ]"
                for e in block.get("elements", [])
                if e.get("type") == "button"
            ]
            for e in block.get("elements", []):
                if e.get("type") in ("static_select", "radio_buttons"):
                    options = " / ".join(_element_text(o) for o in e.get("options", []))
                    buttons.append(f"[ {options} ▾ ]")
            if buttons:
                lines.append(indent + "  ".join(buttons))
        elif kind == "divider":
            lines.append(indent + "─" * 40)
        elif kind == "rich_text":
            lines.append(indent + "(rich text)")
    return lines


def render_message(
    message: dict[str, Any],
    *,
    who: str = "hokusai",
    thread: bool = False,
    names: Mapping[str, str] | None = None,
) -> str:
    """One message as the channel shows it: author line, then its blocks or text."""
    prefix = "    ↳ " if thread else ""
    indent = "      " if thread else "  "
    head = f"{prefix}{who}" + ("  (edited)" if message.get("updated") else "")
    body = (
        render_blocks(message["blocks"], indent, names)
        if message.get("blocks")
        else _wrap(message.get("text", ""), indent, names)
    )
    for f in message.get("files") or []:
        body.append(f"{indent}📎 {f.get('title') or f.get('name')}")
    return "\n".join([head, *body])


def render_channel(
    messages: list[dict[str, Any]], *, name: str, channel_names: dict[str, str] | None = None
) -> str:
    """Every message of a channel in order, thread replies under their parent."""
    top = [m for m in messages if not m.get("thread_ts") or m.get("thread_ts") == m.get("ts")]
    replies: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        if m.get("thread_ts") and m.get("thread_ts") != m.get("ts"):
            replies.setdefault(m["thread_ts"], []).append(m)
    out = [f"━━━ #{name} " + "━" * max(0, WIDTH - len(name) - 6)]
    for message in top:
        out.append(render_message(message, names=channel_names))
        for reply in replies.get(message.get("ts", ""), []):
            out.append(render_message(reply, thread=True, names=channel_names))
        out.append("")
    return "\n".join(out)
