"""Each secret format is redacted in every context it shows up in; look-alikes survive."""

from __future__ import annotations

import base64
import json
import random
import re
import string
import uuid

import pytest

from bot.redaction import Redactor, is_placeholder, secret_key_kind
from tests.redaction import FORMAT_KINDS, make_secret, planted_lines

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
rng = random.Random(5)


def pick(alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize("kind", FORMAT_KINDS)
def test_every_format_in_every_context_is_redacted(redactor: Redactor, kind: str) -> None:
    for seed in range(3):
        for line, secret in planted_lines(kind, seed):
            out = redactor.redact_text(line)
            assert secret not in out, f"{kind} survived in {out!r}"
            assert "[redacted:" in out


@pytest.mark.parametrize(
    ("kind", "line", "marker"),
    [
        ("hokusai-api-key", "key {}", "hokusai-api-key"),
        ("aws-access-key-id", "id={}", "aws-access-key-id"),
        ("aws-secret-key", "aws_secret_access_key = {}", "aws-secret-key"),
        ("aws-session-token", "token {}", "aws-session-token"),
        ("slack-token", "using {}", "slack-token"),
        ("slack-webhook", "posting to {} now", "slack-webhook"),
        ("github-token", "token {}", "github-token"),
        ("linear-api-key", "key {}", "linear-api-key"),
        ("stripe-key", "key {}", "stripe-key"),
        ("openai-api-key", "key {}", "openai-api-key"),
        ("anthropic-api-key", "key {}", "anthropic-api-key"),
        ("google-api-key", "key {}", "google-api-key"),
        ("huggingface-token", "token {}", "huggingface-token"),
        ("npm-token", "token {}", "npm-token"),
        ("pypi-token", "token {}", "pypi-token"),
        ("sendgrid-key", "key {}", "sendgrid-key"),
        ("databricks-token", "token {}", "databricks-token"),
        ("jwt", "jwt {}", "jwt"),
        ("datadog-key", "DD_API_KEY={}", "datadog-key"),
        ("url-password", "postgresql://mlflow:{}@db:5432/mlflow", "url-password"),
        ("password-field", "DB_PASSWORD={}", "password-field"),
    ],
)
def test_the_marker_says_what_was_redacted(
    redactor: Redactor, kind: str, line: str, marker: str
) -> None:
    secret = make_secret(kind, 11)
    assert redactor.redact_text(line.format(secret)) == line.format(f"[redacted:{marker}]")


def test_a_secret_bare_in_prose_is_redacted(redactor: Redactor) -> None:
    key = "hk_" + "live_" + pick(ALNUM, 32)
    out = redactor.redact_text(f"the key {key}, unquoted, in a sentence.")
    assert out == "the key [redacted:hokusai-api-key], unquoted, in a sentence."


def test_private_key_block_is_redacted_line_for_line(redactor: Redactor) -> None:
    body = [pick(ALNUM + "+/", 64) for _ in range(5)]
    block = "\n".join(
        ["-----BEGIN " + "RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----"]
    )
    text = f"before\n{block}\nafter\n"
    out = redactor.redact_text(text)
    assert out.count("\n") == text.count("\n")
    assert out.startswith("before\n") and out.endswith("\nafter\n")
    assert not any(line in out for line in body)
    assert out.count("[redacted:private-key]") == len(body) + 2


def test_private_key_escaped_in_json_is_redacted(redactor: Redactor) -> None:
    body = [pick(ALNUM + "+/", 64) for _ in range(3)]
    pem = "\n".join(["-----BEGIN " + "PRIVATE KEY-----", *body, "-----END PRIVATE KEY-----"])
    out = redactor.redact_text(json.dumps({"private_key": pem, "client_email": "a@b.iam"}))
    assert not any(line in out for line in body)
    assert "a@b.iam" in out


@pytest.mark.parametrize(
    "header",
    [
        "Authorization: Bearer {}",
        "authorization: bearer {}",
        "Authorization: token {}",
        "Authorization: {}",
        "Proxy-Authorization: Basic {}",
        '{{"Authorization": "Bearer {}"}}',
        "-H 'Authorization: Bearer {}'",
    ],
)
def test_authorization_headers(redactor: Redactor, header: str) -> None:
    credential = pick(ALNUM, 40)
    if "Basic" in header:
        credential = base64.b64encode(f"admin:{pick(ALNUM, 12)}".encode()).decode()
    out = redactor.redact_text(header.format(credential))
    assert credential not in out
    assert "[redacted:authorization]" in out


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://mlflow:{}@db.internal:5432/mlflow",
        "mysql+pymysql://admin:{}@db:3306/mlflow",
        "redis://:{}@cache.internal:6379/0",
        "https://admin:{}@registry.hokus.ai/api/mlflow",
        "https://deploy:{}@github.com/hokusai/infra.git",
        "mongodb+srv://app:{}@cluster0.abc.mongodb.net/db",
    ],
)
def test_url_passwords_keep_user_and_host(redactor: Redactor, url: str) -> None:
    password = pick(ALNUM + "!*#$^-_.~", 16)
    out = redactor.redact_text(f"connecting to {url.format(password)} ...")
    assert password not in out
    assert out == f"connecting to {url.format('[redacted:url-password]')} ..."


def test_url_password_with_at_sign_is_redacted_whole(redactor: Redactor) -> None:
    out = redactor.redact_text("postgresql://mlflow:p@ss!w0rd*@db.internal:5432/mlflow")
    assert out == "postgresql://mlflow:[redacted:url-password]@db.internal:5432/mlflow"


def _look_alikes() -> list[str]:
    account = "123456789012"
    run_id = uuid.UUID(int=rng.getrandbits(128)).hex
    next_token = base64.b64encode(json.dumps({"v": 1, "c": pick(ALNUM, 20)}).encode()).decode()
    return [
        f"arn:aws:secretsmanager:us-east-1:{account}:secret:hokusai/dev/db-password-"
        f"{pick(ALNUM, 6)}",
        f'{{"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:{account}:'
        f'secret:hokusai/dev/db-{pick(ALNUM, 6)}"}}',
        f"SecretId=arn:aws:secretsmanager:us-east-1:{account}:secret:mlflow/db-{pick(ALNUM, 6)}",
        f"arn:aws:ecs:us-east-1:{account}:task/hokusai-development/{pick(HEX, 32)}",
        f"arn:aws:elasticloadbalancing:us-east-1:{account}:targetgroup/mlflow/{pick(HEX, 16)}",
        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        f"commit {pick(HEX, 40)}",
        f"image: 1.dkr.ecr.us-east-1.amazonaws.com/api@sha256:{pick(HEX, 64)}",
        f"task {pick(HEX, 32)} run_id={run_id}",
        f"X-Amzn-Trace-Id: Root=1-{pick(HEX, 8)}-{pick(HEX, 24)}",
        f"nextToken={next_token}",
        f'"NextToken": "{next_token}"',
        f'{{"nextForwardToken": "f/3{pick(string.digits, 55)}/s"}}',
        f"next_token={next_token}&maxResults=50",
        "mlflow.hokusai-development.local ip-10-0-1-23.ec2.internal registry.hokus.ai",
        "2025-08-19T13:57:01.123456Z 2025/08/19 13:57:01 Aug 19 13:57:01",
        "DB_PASSWORD=${DB_PASSWORD}",
        'password: "********"',
        "--password <password>",
        "Authorization: Bearer <token>",
        "- API Key: `hk_live_<redacted>`",
        "api_key: hk_live_<redacted>",
        "SLACK_BOT_TOKEN=xoxb-your-bot-token",
        "token_type=Bearer password_length=16 max_tokens=512",
        '{"prompt_tokens": 34, "total_tokens": 154}',
        "Failed to refresh token: expired",
        'FATAL:  password authentication failed for user "mlflow"',
        "API key required",
        "Bearer token missing from request",
        f'"UserId": "AROA{pick(string.ascii_uppercase, 17)}:session-1"',
        "    secret = client.get_secret_value(SecretId=secret_arn)",
        "    token = self.refresh_token()",
        "pip install scikit-learn  # sk-learn",
        "https://registry.hokus.ai:443/api/mlflow/models:/lscor@champion",
        "secretsmanager:GetSecretValue on resource",
        f'"ETag": "\\"{pick(HEX, 32)}\\""',
        # source lines, as tracebacks print them
        "standin = SlackStandIn(bot_token=bot_token).start()",
        "provider = LinearProvider(api_key=key, url=trackers.linear_url)",
        '"HOKUSAI_API_KEY": self.api_key,',
        "slack_bot_token: SecretStr | None = Field(None)",
        "def _check_token(self, method: str, token: str | None) -> None:",
        'api_key = "hk_" + "live_" + _random_token(32)',
        'self.secret = secrets["signing_secret"]',
        'f"{url}?max_results=1&api_key={api_key}"',
        # runbooks and prose
        "on_pass: targets",
        '"pass": ":white_check_mark:",',
        "Credentials: the password MLflow uses does not match the database.",
        "`Authorization: Bearer KEY`; (Authorization: Bearer) gets 401",
    ]


@pytest.mark.parametrize("line", _look_alikes())
def test_look_alikes_survive_untouched(redactor: Redactor, line: str) -> None:
    assert redactor.redact_text(line) == line


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("DB_PASSWORD", "password-field"),
        ("password", "password-field"),
        ("api_key", "password-field"),
        ("apiKey", "password-field"),
        ("X-Api-Key", "password-field"),
        ("client_secret", "password-field"),
        ("private_key", "password-field"),
        ("credentials", "password-field"),
        ("access_token", "password-field"),
        ("DB_PASS", "password-field"),
        ("redis_pass", "password-field"),
        ("pass", None),
        ("on_pass", None),
        ("Authorization", "authorization"),
        ("aws_secret_access_key", "aws-secret-key"),
        ("SessionToken", "aws-session-token"),
        ("token_type", None),
        ("next_token", None),
        ("nextToken", None),
        ("NextToken", None),
        ("nextForwardToken", None),
        ("ContinuationToken", None),
        ("secret_arn", None),
        ("SecretArn", None),
        ("valueFrom", None),
        ("password_length", None),
        ("max_tokens", None),
        ("PWD", None),
        ("bypass", None),
        ("tokenizer", None),
    ],
)
def test_secret_key_names(key: str, kind: str | None) -> None:
    assert secret_key_kind(key) == kind


@pytest.mark.parametrize(
    "value",
    [
        "${DB_PASSWORD}",
        "<password>",
        "********",
        "***",
        "[redacted:x]",
        "null",
        "$TOKEN",
        # What a responder must see: the configured value was never set (issue 13).
        "changeme",
        "CHANGEME",
        "password",
        "dummy",
        "test",
        "your-api-key-here",
        "xxxxxxxxxxxx",
        "$(cat /run/secrets/db)",
        "{{ db_password }}",
    ],
)
def test_placeholders_are_not_secrets(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize(
    "value",
    [
        "hunter2!",
        "$ecret99",
        "S3cr3t*pw",
        # Upper case, UPPER_SNAKE and "example" inside a value used to pass as placeholders.
        "QWERTYUIOP",
        "HUNTER_2_PROD",
        "myexamplepw-9f8a7c",
        "admin",
    ],
)
def test_real_looking_values_are_secrets(value: str) -> None:
    assert not is_placeholder(value)


def test_every_rule_starts_with_its_keyword() -> None:
    """The speed contract: the engine's literal-prefix search does the keyword scan."""
    from bot.redaction.rules import RULES as _RULES

    for rule in _RULES:
        prefix = rule.keywords[0]
        for keyword in rule.keywords:
            while not keyword.startswith(prefix):
                prefix = prefix[:-1]
        assert prefix, rule.kind
        source = rule.pattern.pattern
        assert source.startswith((prefix, re.escape(prefix))), (rule.kind, source)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "docker run --password {} -e X=1",
            "docker run --password [redacted:password-field] -e X=1",
        ),
        (
            "mlflow-cli --api-key {} --verbose",
            "mlflow-cli --api-key [redacted:password-field] --verbose",
        ),
        (
            "curl -s -u admin:{} https://x/api",
            "curl -s -u admin:[redacted:password-field] https://x/api",
        ),
        (
            'curl --user "admin:{}" https://x',
            'curl --user "admin:[redacted:password-field]" https://x',
        ),
    ],
)
def test_command_lines(redactor: Redactor, line: str, expected: str) -> None:
    assert redactor.redact_text(line.format(make_secret("password-field", 12))) == expected


@pytest.mark.parametrize(
    "line", ["mkdir -p /tmp/x -u root", "grep --secret-file /x -r", "run --password --stdin"]
)
def test_command_lines_without_secrets(redactor: Redactor, line: str) -> None:
    assert redactor.redact_text(line) == line


@pytest.mark.parametrize(
    "line",
    [
        "DB_PASSWORD={}Passw0rd_2024",
        "password: {}secretkey123",
        "DB_PASSWORD={}my.secret.key",
        "api_key={}token_2024,",
        '{{"Authorization": "{}Bearer_secret_token_1"}}',
    ],
)
def test_passwords_that_contain_secret_words_are_still_secrets(
    redactor: Redactor, line: str
) -> None:
    out = redactor.redact_text(line.format(""))
    assert "[redacted:" in out
    for word in ("Passw0rd", "secretkey123", "my.secret.key", "token_2024", "secret_token_1"):
        assert word not in out
