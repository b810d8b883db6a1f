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
