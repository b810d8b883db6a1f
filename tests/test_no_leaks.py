"""Secrets planted in every kind of check output never reach Slack, the store or the log.

Hypothesis makes the secrets at run time and a check plants them where real checks meet
them: AWS responses, log events, HTTP headers and bodies, exception messages, task-definition
environments. The real bot runs `/hokusai diagnose` over signed HTTP against the Slack
stand-in; then everything Slack received, every row of the incident log and every log record
is searched for them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import string

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.diagnosis.checks.base import Check, CheckResult, Classification
from bot.sandbox import signing
from bot.slack.server import BotServer

ALNUM = string.ascii_letters + string.digits


def _chars(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=n)


hokusai_keys = st.builds(
    lambda s, live: f"hk_{'live' if live else 'test'}_{s}", _chars(ALNUM, 32), st.booleans()
)
aws_key_ids = st.builds(lambda s: "AKIA" + s, _chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
aws_secret_keys = _chars(ALNUM + "/+", 40).filter(lambda s: sum(c.isdigit() for c in s) > 2)
slack_tokens = st.builds(
    lambda a, b, c: f"xoxb-{a}-{b}-{c}",
    _chars(string.digits, 12),
    _chars(string.digits, 13),
    _chars(ALNUM, 24),
)
# Mixed letters and digits, as real passwords are; a bare word could equal text the report
# legitimately shows ("taskDefinition"), which would make the test, not the bot, wrong.
passwords = st.text(alphabet=ALNUM + "!*#%", min_size=12, max_size=28).filter(
    lambda s: len(set(s)) > 5 and any(c.isdigit() for c in s) and any(c.isalpha() for c in s)
)
github_tokens = st.builds(lambda s: "ghp_" + s, _chars(ALNUM, 36))

PLANT = {"values": {}}


def _aws_response(s: dict[str, str]) -> dict:
    return {
        "taskDefinition": {
            "family": "hokusai-mlflow-development",
            "containerDefinitions": [
                {
                    "name": "mlflow",
                    "command": [
                        "mlflow",
                        "server",
                        "--backend-store-uri",
                        f"postgresql://mlflow:{s['password']}@db.internal:5432/mlflow",
                    ],
                    "environment": [
                        {"name": "DB_PASSWORD", "value": s["env_password"]},
                        {"name": "AWS_ACCESS_KEY_ID", "value": s["aws_key_id"]},
                        {"name": "AWS_SECRET_ACCESS_KEY", "value": s["aws_secret"]},
                        {"name": "LOG_LEVEL", "value": "info"},
                    ],
                }
            ],
        },
        "ResponseMetadata": {"RequestId": "6f1c2f0e-9a55-4b0a-9b1e-0a4f5b2f9d11"},
    }


async def _planting_check(ctx) -> CheckResult:
    s = PLANT["values"]
    logging.getLogger("bot.diagnosis.checks.planted").warning(
        "probe sent Authorization: Bearer %s and got %s", s["hokusai"], s["slack"]
    )
    return CheckResult.failed(
        f"the API answered 401 for key {s['hokusai']}",
        Classification.CONFIGURATION,
        hint=f"try again with token {s['github']}",
        aws=_aws_response(s),
        log_events=[
            f"2026-11-26T04:00:00Z ERROR connect to postgresql://mlflow:{s['password']}@db:5432",
            f"2026-11-26T04:00:01Z INFO slack token {s['slack']} loaded",
        ],
        http={
            "request_headers": {"Authorization": f"Bearer {s['hokusai']}", "X-Request-Id": "r-1"},
            "body": json.dumps({"api_key": s["hokusai"], "detail": "API key required"}),
        },
    )


async def _raising_check(ctx) -> CheckResult:
    s = PLANT["values"]
    raise RuntimeError(
        f"boto3 said: invalid AWS_SECRET_ACCESS_KEY={s['aws_secret']} for {s['aws_key_id']}"
    )


CHECKS = {
    "app.planted": Check("app.planted", "app", "plants secrets", _planting_check),
    "auth.raises": Check("auth.raises", "auth", "raises with secrets", _raising_check),
}


@pytest.fixture(scope="module")
def leak_bot(tmp_path_factory):
    import os

    from bot.sandbox import fakes
    from bot.sandbox.slack import SlackStandIn
    from bot.settings import load_settings
    from bot.slack.app import build_app
    from tests.conftest import REPO

    tmp = tmp_path_factory.mktemp("leaks")
    token, secret = fakes.slack_bot_token(), fakes.signing_secret()
    with SlackStandIn(bot_token=token) as slack:
        saved = {k: os.environ.get(k) for k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")}
        settings_ = load_settings(
            slack_bot_token=token,
            slack_signing_secret=secret,
            slack_api_url=slack.api_url,
            hokusai_config=REPO / "hokusai.yml",
            hokusai_db=tmp / "hokusai.db",
        )
        app = build_app(settings_, checks=CHECKS)
        with BotServer(app) as server:
            yield slack, server, secret, tmp / "hokusai.db"
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


def _database_text(path) -> str:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return json.dumps([list(conn.execute(f"SELECT * FROM [{t}]")) for t in tables])
    finally:
        conn.close()


@settings(
    max_examples=25,
    phases=[Phase.explicit, Phase.generate],  # shrinking a bot round trip is slow
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    hokusai=hokusai_keys,
    aws_key_id=aws_key_ids,
    aws_secret=aws_secret_keys,
    slack_token=slack_tokens,
    password=passwords,
    env_password=passwords,
    github=github_tokens,
)
def test_planted_secrets_never_leave(
    leak_bot, caplog, hokusai, aws_key_id, aws_secret, slack_token, password, env_password, github
):
    import httpx

    slack, server, signing_secret, db_path = leak_bot
    slack.clear()
    PLANT["values"] = {
        "hokusai": hokusai,
        "aws_key_id": aws_key_id,
        "aws_secret": aws_secret,
        "slack": slack_token,
        "password": password,
        "env_password": env_password,
        "github": github,
    }
    caplog.clear()
    with caplog.at_level(logging.INFO):
        request = signing.slash_command(
            signing_secret, "diagnose", response_url=slack.response_url("leak")
        )
        resp = httpx.post(server.events_url, content=request.body, headers=request.headers)
        assert resp.status_code == 200
        server.drain(30)
    sent = json.dumps([(c.method, c.args) for c in slack.calls])
    assert "the API answered 401" in sent  # the finding itself did arrive
    stored = _database_text(db_path)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for name, value in PLANT["values"].items():
        assert value not in sent, f"{name} reached Slack"
        assert value not in stored, f"{name} reached the incident log"
        assert value not in logged, f"{name} reached a log record"
