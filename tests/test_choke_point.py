"""Only bot/outbound.py talks to Slack; only the store writes the incident log.

Walks the source tree, so a new module that posts or writes directly fails here, not in an
incident channel with a token in it.
"""

from __future__ import annotations

import ast

from tests.doubles import REPO

SOURCES = sorted(
    p
    for folder in ("bot", "commands")
    for p in (REPO / folder).rglob("*.py")
    if "sandbox" not in p.parts  # the stand-ins are Slack and the trackers, not the bot
)

# Web API methods that send something somewhere.
SENDING_METHODS = {
    "chat_postMessage",
    "chat_update",
    "chat_postEphemeral",
    "chat_delete",
    "views_open",
    "views_update",
    "views_push",
    "views_publish",
    "files_upload_v2",
    "files_upload",
    "conversations_create",
    "conversations_invite",
    "api_call",
}
# Bolt's own senders, handed to listeners.
BOLT_SENDERS = {"say", "respond"}
# Writes to SQLite.
STORE_WRITES = {"insert", "insert_all", "upsert", "upsert_all", "update", "delete_where"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def test_only_outbound_calls_slack():
    offenders = []
    for path in SOURCES:
        if path.name == "outbound.py":
            continue
        tree = ast.parse(path.read_text())
        for call in _calls(tree):
            name = _name(call.func)
            bolt_sender = isinstance(call.func, ast.Name) and name in BOLT_SENDERS
            if bolt_sender or (isinstance(call.func, ast.Attribute) and name in SENDING_METHODS):
                offenders.append(f"{path.relative_to(REPO)}:{call.lineno} {name}()")
    assert not offenders, "send through bot.outbound instead:\n" + "\n".join(offenders)


def test_listeners_take_no_say_or_respond():
    """A listener that asks Bolt for `say`/`respond` is one edit away from bypassing redaction."""
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                names = {a.arg for a in node.args.args + node.args.kwonlyargs}
                if names & BOLT_SENDERS and path.name != "outbound.py":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not offenders, "\n".join(offenders)


def test_only_the_store_writes_the_incident_log():
    offenders = []
    for path in SOURCES:
        if path.relative_to(REPO).as_posix() in (
            "bot/incident/store.py",
            "bot/incident/migrations.py",
            "bot/incident/engine.py",  # the store's PostgreSQL driver, called only by the store
            "bot/sandbox/postgres.py",  # the test server's CREATE DATABASE, not the incident log
        ):
            continue
        source = path.read_text()
        tree = ast.parse(source)
        for call in _calls(tree):
            name = _name(call.func)
            if name == "execute" or (name in STORE_WRITES and "sqlite" in source):
                offenders.append(f"{path.relative_to(REPO)}:{call.lineno} {name}()")
        if "sqlite3.connect" in source or "sqlite_utils" in source:
            offenders.append(f"{path.relative_to(REPO)} opens the database itself")
    assert not offenders, "write through bot.incident.store.IncidentStore:\n" + "\n".join(offenders)


def test_the_store_redacts_every_write():
    """Inside the store, SQL runs through one place, and that place scrubs its parameters."""
    tree = ast.parse((REPO / "bot" / "incident" / "store.py").read_text())
    writers = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for call in _calls(node):
                if _name(call.func) == "execute" and node.name != "_write":
                    # Reads and transaction control are fine; writes must not be here.
                    sql = call.args[0] if call.args else None
                    text = sql.value if isinstance(sql, ast.Constant) else ""
                    if any(word in str(text).upper() for word in ("INSERT", "UPDATE", "DELETE")):
                        writers[node.name] = call.lineno
    assert not writers, f"SQL writes outside _write: {writers}"
    write = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_write")
    assert "_scrub" in ast.unparse(write)
