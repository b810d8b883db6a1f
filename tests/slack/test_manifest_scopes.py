"""Every scope manifest.yml asks for is needed by a Web API call the code makes, and every call
the code makes has its scope: workspace admins review the manifest, and the stand-in answers
``missing_scope`` for a call without one."""

from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack import METHOD_SCOPES
from bot.slack.manifest import load_manifest

REPO = Path(__file__).resolve().parents[2]
# The bot's code; bot/sandbox is the stand-ins' side of the wire, not the app's.
SOURCES = [
    p
    for root in ("bot", "commands")
    for p in sorted((REPO / root).rglob("*.py"))
    if "sandbox" not in p.relative_to(REPO).parts
]
# Posting in a public channel nobody invited the bot to (a slash command's answer there) is
# chat.postMessage with chat:write.public; test_incident_here_... below shows it is needed.
PUBLIC_POSTING = "chat:write.public"


@cache
def _client_methods() -> frozenset[str]:
    return frozenset(
        name
        for name, _ in inspect.getmembers(AsyncWebClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    )


@cache
def api_methods_of(client_method: str) -> frozenset[str]:
    """The Web API methods one slack_sdk client method calls (``files_upload_v2`` calls two)."""
    source = inspect.getsource(getattr(AsyncWebClient, client_method))
    found = set(re.findall(r'api_call\(\s*"([\w.]+)"', source))
    for callee in re.findall(r"self\.(\w+)\(", source):
        if callee in _client_methods() and callee not in (client_method, "api_call"):
            found |= api_methods_of(callee)
    return frozenset(found)


def calls_in_code() -> dict[str, list[str]]:
    """Web API method -> where the code calls it (``path:line``)."""
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if name == "api_call":
                methods = {
                    a.value
                    for a in [*node.args[:1], *(k.value for k in node.keywords)]
                    if isinstance(a, ast.Constant) and isinstance(a.value, str) and "." in a.value
                }
            elif name in _client_methods():
                methods = set(api_methods_of(name))
            else:
                continue
            for method in methods:
                found.setdefault(method, []).append(where)
    return found


def creates_private_channels() -> bool:
    """Whether any conversations.create call can ask for a private channel."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "conversations_create"
                and any(k.arg == "is_private" for k in node.keywords)
            ):
                return True
    return False


def needed_scopes() -> dict[str, str]:
    """Scope -> the reason it is needed (a call and where it is made)."""
    private = creates_private_channels()
    needed: dict[str, str] = {}
    for method, places in sorted(calls_in_code().items()):
        assert method in METHOD_SCOPES, (
            f"{method} (called at {places[0]}) is not in bot.sandbox.slack.METHOD_SCOPES: "
            "add it with the scopes Slack's method reference lists, and to the stand-in"
        )
        scopes = METHOD_SCOPES[method]
        if method.startswith("conversations.") and scopes:
            scopes = scopes if private else scopes[:1]
        for scope in scopes:
            needed.setdefault(scope, f"{method} at {places[0]}")
    if "chat.postMessage" in calls_in_code():
        needed.setdefault(PUBLIC_POSTING, "chat.postMessage in public channels not joined")
    if load_manifest()["features"].get("slash_commands"):
        needed.setdefault("commands", "the /hokusai slash command")
    return needed


def manifest_scopes() -> set[str]:
    return set(load_manifest()["oauth_config"]["scopes"]["bot"])


def test_the_scan_finds_the_calls_the_bot_makes() -> None:
    calls = calls_in_code()

    # files_upload_v2 is two Web API calls; both need files:write.
    assert {"files.getUploadURLExternal", "files.completeUploadExternal"} <= calls.keys()
    assert {"chat.postMessage", "chat.update", "views.publish"} <= calls.keys()
    assert all(place.startswith(("bot/", "commands/")) for p in calls.values() for place in p)


def test_no_scope_is_asked_for_that_no_call_needs() -> None:
    unused = manifest_scopes() - needed_scopes().keys()

    assert not unused, f"manifest.yml asks for {sorted(unused)} but no call needs them"


def test_every_call_has_its_scope_in_the_manifest() -> None:
    needed = needed_scopes()
    missing = {scope: needed[scope] for scope in needed.keys() - manifest_scopes()}

    assert not missing, f"manifest.yml lacks scopes calls need: {missing}"


def test_a_manifest_scope_says_why_it_is_there() -> None:
    text = (REPO / "manifest.yml").read_text()
    for scope in manifest_scopes():
        (line,) = re.findall(rf"^\s+- {re.escape(scope)}(?=\s|$).*$", text, re.MULTILINE)
        assert "#" in line, f"manifest.yml: say why {scope} is needed: {line.strip()}"
