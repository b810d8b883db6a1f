"""Structured data: task definitions, JSON bodies, env files, YAML, query strings, log records."""

from __future__ import annotations

import io
import json
import logging
from collections import namedtuple

import pytest

from bot.redaction import RedactingFilter, Redactor
from tests.redaction import make_secret

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hokusai/dev/db-AbCdEf"


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


def test_ecs_task_definition(redactor: Redactor) -> None:
    password = make_secret("password-field", 1)
    api_key = make_secret("hokusai-api-key", 1)
    database_url = f"postgresql://mlflow:{password}@db.internal:5432/mlflow"
    task_definition = {
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/api:42",
        "containerDefinitions": [
            {
                "name": "api",
                "image": "1.dkr.ecr.us-east-1.amazonaws.com/api@sha256:" + "ab" * 32,
                "environment": [
                    {"name": "DB_PASSWORD", "value": password},
                    {"name": "HOKUSAI_API_KEY", "value": api_key},
                    {"name": "DATABASE_URL", "value": database_url},
                    {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.local:5000"},
                    {"name": "DB_PASSWORD_SECRET_ARN", "value": SECRET_ARN},
                    {"name": "NEXT_TOKEN_TTL", "value": "3600"},
                ],
                "secrets": [{"name": "DB_PASSWORD", "valueFrom": SECRET_ARN}],
            }
        ],
    }
    out = redactor.redact(task_definition)
    env = {e["name"]: e["value"] for e in out["containerDefinitions"][0]["environment"]}
    assert env["DB_PASSWORD"] == "[redacted:password-field]"
    assert env["HOKUSAI_API_KEY"] == "[redacted:hokusai-api-key]"
    assert (
        env["DATABASE_URL"] == "postgresql://mlflow:[redacted:url-password]@db.internal:5432/mlflow"
    )
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.local:5000"
    assert env["DB_PASSWORD_SECRET_ARN"] == SECRET_ARN
    assert env["NEXT_TOKEN_TTL"] == "3600"
    assert out["containerDefinitions"][0]["secrets"] == [
        {"name": "DB_PASSWORD", "valueFrom": SECRET_ARN}
    ]
    assert out["containerDefinitions"][0]["image"].endswith("ab" * 32)
    assert out["taskDefinitionArn"] == task_definition["taskDefinitionArn"]
    assert password not in json.dumps(out) and api_key not in json.dumps(out)


def test_ecs_environment_printed_as_json_text(redactor: Redactor) -> None:
    password = make_secret("password-field", 2)
    text = json.dumps(
        [{"name": "POSTGRES_PASSWORD", "value": password}, {"name": "A", "value": "b"}]
    )
    out = redactor.redact_text(text)
    assert password not in out
    assert json.loads(out)[0]["value"] == "[redacted:password-field]"
    assert json.loads(out)[1] == {"name": "A", "value": "b"}


def test_json_body_keys(redactor: Redactor) -> None:
    body = {
        "access_token": make_secret("jwt", 3),
        "token_type": "Bearer",
        "expires_in": 3600,
        "nextToken": "eyJ2IjoxfQ==",
        "NextToken": "AAMA-EFRSURBSGg",
        "SecretArn": SECRET_ARN,
        "password_length": 16,
        "password": 123456,
        "api_key": None,
        "secret": True,
        "credentials": {"user": "mlflow", "password": "hunter2!x"},
        "headers": {"Authorization": "Bearer abc.def.ghi", "Accept": "application/json"},
        "items": ("a", "DB_PASSWORD=s3cr3t-value"),
    }
    out = redactor.redact(body)
    assert out["access_token"] == "[redacted:jwt]"  # its own format names it
    assert out["password"] == "[redacted:password-field]"
    assert out["credentials"] == {"user": "mlflow", "password": "[redacted:password-field]"}
    assert out["headers"] == {
        "Authorization": "[redacted:authorization]",
        "Accept": "application/json",
    }
    assert out["items"] == ("a", "DB_PASSWORD=[redacted:password-field]")
    for key in ("token_type", "expires_in", "nextToken", "NextToken", "SecretArn"):
        assert out[key] == body[key]
    assert out["password_length"] == 16 and out["api_key"] is None and out["secret"] is True


def test_named_tuples_and_other_values_pass(redactor: Redactor) -> None:
    Pair = namedtuple("Pair", "name value")
    out = redactor.redact([Pair("x", "key " + make_secret("hokusai-api-key", 4)), 3, 2.5, None])
    assert out == [Pair("x", "key [redacted:hokusai-api-key]"), 3, 2.5, None]


def test_env_file(redactor: Redactor) -> None:
    password, token = make_secret("password-field", 5), make_secret("slack-token", 5)
    text = (
        "# hokusai .env\n"
        f"DB_PASSWORD={password}\n"
        f'export SLACK_BOT_TOKEN="{token}"\n'
        "DB_HOST=db.internal\n"
        "DB_PASSWORD_FILE=/run/secrets/db\n"
        "EMPTY_PASSWORD=\n"
    )
    assert redactor.redact_text(text) == (
        "# hokusai .env\n"
        "DB_PASSWORD=[redacted:password-field]\n"
        'export SLACK_BOT_TOKEN="[redacted:slack-token]"\n'
        "DB_HOST=db.internal\n"
        "DB_PASSWORD_FILE=/run/secrets/db\n"
        "EMPTY_PASSWORD=\n"
    )


def test_yaml(redactor: Redactor) -> None:
    password = make_secret("password-field", 6)
    text = (
        "database:\n"
        "  host: db.internal\n"
        f"  password: {password}\n"
        f"  api_key: '{password}x'\n"
        "  password_length: 16\n"
        "  secret_arn: " + SECRET_ARN + "\n"
    )
    out = redactor.redact_text(text)
    assert password not in out
    assert "  password: [redacted:password-field]\n" in out
    assert "  api_key: '[redacted:password-field]'\n" in out
    assert "  password_length: 16\n" in out and SECRET_ARN in out


def test_query_string_and_form_body(redactor: Redactor) -> None:
    key = make_secret("google-api-key", 7)
    password = make_secret("password-field", 7)
    url = f"https://maps.example.com/geocode?address=x&key={key}&api_key={password}&page=2"
    out = redactor.redact_text(url)
    assert key not in out and password not in out
    assert out.endswith("&page=2")
    form = f"grant_type=password&username=admin&password={password}&client_id=bot"
    assert redactor.redact_text(form) == (
        "grant_type=password&username=admin&password=[redacted:password-field]&client_id=bot"
    )


def test_known_values_are_redacted_wherever_they_are(redactor: Redactor) -> None:
    signing_secret = "0123abcd" * 4
    own = Redactor(known_secrets=[signing_secret])
    assert own.redact({"note": f"secret is {signing_secret}"}) == {
        "note": "secret is [redacted:known-secret]"
    }
    own.add_known("short")  # too short to be told apart from ordinary text
    assert own.redact_text("a short note") == "a short note"


def _logger(redactor: Redactor) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test-redaction-{id(stream)}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_logging_filter_redacts_messages_args_and_tracebacks(redactor: Redactor) -> None:
    token = make_secret("slack-token", 8)
    key = make_secret("hokusai-api-key", 8)
    logger, stream = _logger(redactor)
    logger.info("calling with %s and %r", token, {"api_key": key})
    try:
        raise RuntimeError(f"probe failed with key {key}")
    except RuntimeError:
        logger.exception("probe %d failed", 3)
    logged = stream.getvalue()
    assert token not in logged and key not in logged
    assert "INFO calling with [redacted:slack-token] and" in logged
    assert "ERROR probe 3 failed" in logged
    assert "RuntimeError: probe failed with key [redacted:hokusai-api-key]" in logged


def test_logging_filter_survives_a_bad_format_string(redactor: Redactor) -> None:
    key = make_secret("hokusai-api-key", 9)
    logger, stream = _logger(redactor)
    logger.warning("two args %s %s", key)
    assert key not in stream.getvalue()
    assert "two args" in stream.getvalue()
