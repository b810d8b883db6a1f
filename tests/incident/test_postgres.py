"""HOKUSAI_DB as a postgresql:// URL: its password never shows, a bad one stops start-up in a line.

The store's own behaviour on PostgreSQL is tested with SQLite's, in test_store.py (the
``database`` fixture runs each test on both engines).
"""

from __future__ import annotations

import logging
import os

import pytest

from bot.incident.engine import display
from bot.settings import SettingsError, load_settings
from tests.slack.processes import run_cli


def test_the_password_is_known_to_the_redactor_and_hidden_from_messages(postgres_server):
    url = postgres_server.dsn("hokusai")
    settings = load_settings(hokusai_db=url)
    assert postgres_server.password in settings.secret_values()
    assert postgres_server.password not in display(url)
    assert display(url).startswith("postgresql://hokusai:***@127.0.0.1:")


def test_serve_with_a_wrong_password_stops_in_one_line(bot_env, postgres_server):
    wrong = postgres_server.dsn("postgres", password="pw-" + os.urandom(6).hex())
    proc = run_cli("serve", "--port", "0", env={**os.environ, **bot_env, "HOKUSAI_DB": wrong})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "password authentication failed" in proc.stderr
    assert wrong.split(":")[2].split("@")[0] not in proc.stderr + proc.stdout


def test_serve_with_an_unreachable_server_stops_in_one_line(bot_env, postgres_server):
    url = postgres_server.dsn("hokusai").replace(f":{postgres_server.port}/", ":1/")
    proc = run_cli("serve", "--port", "0", env={**os.environ, **bot_env, "HOKUSAI_DB": url})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("hokusai serve: HOKUSAI_DB (postgresql://hokusai:***@")
    assert postgres_server.password not in proc.stderr


@pytest.mark.parametrize(
    "value", ["mysql://u:p@db/x", "postgresql://127.0.0.1", "postgresql:///hokusai"]
)
def test_a_database_url_that_is_not_postgresql_or_lacks_parts_is_refused(value):
    with pytest.raises(SettingsError, match="HOKUSAI_DB is invalid"):
        load_settings(hokusai_db=value)


def test_the_password_is_scrubbed_from_log_lines(postgres_server, caplog):
    from bot.outbound import install_log_redaction
    from bot.slack.app import remember_process_secrets

    url = postgres_server.dsn("hokusai")
    remember_process_secrets(load_settings(hokusai_db=url), None)
    install_log_redaction()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("bot.test").warning("connecting with %s", postgres_server.password)
    assert postgres_server.password not in caplog.text
    assert "connecting with [redacted:" in caplog.text


def test_db_migrate_copies_a_sqlite_log_once_and_numbering_goes_on(tmp_path, postgres_server):
    from bot.incident.store import IncidentStore

    path = tmp_path / "hokusai.db"
    old = IncidentStore(path)
    first = old.declare_incident("Registry 404s", channel_id="C1", commander="U1")
    old.add_note(first.id, "rule 10 shadows rule 200", actor="U1")
    old.resolve(first.id, actor="U1")
    second = old.declare_incident("DNS stale", channel_id="C2", commander="U2")
    old.link_ticket(second.id, provider="linear", key="HOK-7", title="Fix alias")
    url = postgres_server.create_database("migrated")
    env = {**os.environ, "HOKUSAI_DB": str(path)}

    proc = run_cli("db", "migrate", "--from", str(path), "--to", url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert postgres_server.password not in proc.stdout + proc.stderr
    lines = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[:-1]}
    assert lines["incidents"] == "2" and lines["ticket_links"] == "1"

    again = run_cli("db", "migrate", "--from", str(path), "--to", url, env=env)
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1].startswith("0 rows copied")

    moved = IncidentStore(url)
    assert [i.title for i in moved.list_incidents()] == ["DNS stale", "Registry 404s"]
    assert "rule 10 shadows rule 200" in [e.text for e in moved.timeline(first.id)]
    assert [t.key for t in moved.tickets(second.id)] == ["HOK-7"]
    third = moved.declare_incident("After the move", channel_id="C3", commander="U3")
    assert third.id == second.id + 1


def test_db_migrate_refuses_a_target_that_is_not_postgresql(tmp_path):
    proc = run_cli(
        "db", "migrate", "--from", str(tmp_path / "x.db"), "--to", str(tmp_path / "y.db"),
        env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == "hokusai db migrate: --to must be a postgresql:// URL\n"
