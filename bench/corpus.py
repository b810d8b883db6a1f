"""A labelled corpus of realistic log text with secrets planted among look-alike identifiers.

Shared by ``bench/redaction.py`` and the redaction tests. Every secret is generated at run
time (none is ever written to a file); each planted secret records the lines it sits on and
the fragments that must not survive there. Lines without a secret are "clean": a redactor
must leave them byte for byte.

Example::

    corpus = generate_corpus(size=1_000_000, seed=7)
    out = redact(corpus.text).split("\\n")
    missed = [s for s in corpus.secrets if not s.caught(out)]
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64_URL = ALNUM + "-_"
PASSWORD_CHARS = ALNUM + "!*#$^-_.~%"


@dataclass(frozen=True)
class PlantedSecret:
    """One secret in the corpus: where it is and what of it must be gone after redaction."""

    kind: str
    mangling: str  # "plain", or how it was mangled: "url", "json", "nested", "base64", "wrap"
    lines: tuple[int, ...]
    fragments: tuple[tuple[str, ...], ...]  # per line: any of these surviving is a leak

    def caught(self, out_lines: list[str]) -> bool:
        """True when no fragment of the secret survives on its lines of ``out_lines``."""
        return not any(
            fragment in out_lines[index]
            for index, fragments in zip(self.lines, self.fragments, strict=True)
            for fragment in fragments
        )


@dataclass
class Corpus:
    """Log lines (each ending in a newline) with their planted secrets and clean lines."""

    lines: list[str] = field(default_factory=list)
    secrets: list[PlantedSecret] = field(default_factory=list)
    clean: list[int] = field(default_factory=list)
    placeholders: list[int] = field(default_factory=list)  # stand-ins that must be shown as is

    @property
    def text(self) -> str:
        return "".join(self.lines)


# --- random identifiers ----------------------------------------------------------------------


class Identifiers:
    """Realistic identifiers: the evidence a redactor must leave readable."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def s(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def ts(self) -> str:
        r = self.rng
        return (
            f"2025-08-{r.randint(18, 19):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:"
            f"{r.randint(0, 59):02d}.{r.randint(0, 999999):06d}Z"
        )

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, n: int) -> str:
        return self.s(HEX, n)

    def account(self) -> str:
        return self.rng.choice(["123456789012", "932484729912", "210987654321"])

    def ip(self) -> str:
        return f"10.0.{self.rng.randint(0, 9)}.{self.rng.randint(2, 254)}"

    def trace(self) -> str:
        return f"Root=1-{self.hex(8)}-{self.hex(24)}"

    def secret_arn(self) -> str:
        name = self.rng.choice(["hokusai/dev/db-password", "hokusai/dev/api-key", "mlflow/db"])
        return f"arn:aws:secretsmanager:us-east-1:{self.account()}:secret:{name}-{self.s(ALNUM, 6)}"

    def task_arn(self) -> str:
        return f"arn:aws:ecs:us-east-1:{self.account()}:task/hokusai-development/{self.hex(32)}"

    def tg_arn(self) -> str:
        name = self.rng.choice(["hokusai-mlflow-dev", "hokusai-api-dev", "hokusai-reg-dev"])
        return (
            f"arn:aws:elasticloadbalancing:us-east-1:{self.account()}:targetgroup/{name}/"
            f"{self.hex(16)}"
        )

    def next_token(self) -> str:
        payload = json.dumps({"v": 1, "c": self.s(ALNUM, 24), "o": self.rng.randint(1, 9999)})
        return base64.b64encode(payload.encode()).decode()

    def level(self) -> str:
        return self.rng.choice(["INFO", "INFO", "INFO", "DEBUG", "WARNING", "ERROR"])

    def host(self) -> str:
        return self.rng.choice(
            [
                f"ip-10-0-{self.rng.randint(0, 9)}-{self.rng.randint(2, 254)}.ec2.internal",
                "mlflow.hokusai-development.local",
                "registry.hokus.ai",
                "hokusai-mlflow-development.cluster-c9x2.us-east-1.rds.amazonaws.com",
            ]
        )


# --- clean lines -------------------------------------------------------------------------------


def _alb(i: Identifiers) -> list[str]:
    path = i.rng.choice(
        [
            "/api/mlflow/api/2.0/mlflow/experiments/search?max_results=1",
            f"/api/2.0/mlflow/runs/get?run_id={i.hex(32)}",
            f"/api/mlflow/api/2.0/mlflow/registered-models/search?page_token={i.next_token()}",
            "/health",
            f"/api/models?filter=name%20LIKE%20%27lscor%25%27&nextToken={i.next_token()}",
        ]
    )
    status = i.rng.choice(["200", "404", "404", "502", "403"])
    return [
        f"https {i.ts()} app/hokusai-main-development/{i.hex(16)} "
        f"{i.ip()}:{i.rng.randint(1024, 65535)} {i.ip()}:5000 0.001 0.0{i.rng.randint(10, 99)} "
        f"0.000 {status} {status} 512 183 "
        f'"GET https://registry.hokus.ai:443{path} HTTP/1.1" "python-requests/2.31.0" '
        f'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 {i.tg_arn()} "{i.trace()}" '
        f'"registry.hokus.ai" "arn:aws:acm:us-east-1:{i.account()}:certificate/{i.uuid()}" 0 '
        f'{i.ts()} "forward" "-" "-" "{i.ip()}:5000" "{status}" "-" "-"'
    ]


def _ecs_json(i: Identifiers) -> list[str]:
    message = i.rng.choice(
        [
            "GET /api/2.0/mlflow/experiments/search 404",
            f"Created run {i.hex(32)} in experiment {i.rng.randint(1, 40)}",
            "API key required",
            "Failed to refresh token: expired",
            "Invalid API key",
            f"Rotating secret {i.secret_arn()}",
            "Bearer token missing from request",
            f'{{"detail": "Not Found", "etag": "\\"{i.hex(32)}\\""}}',
        ]
    )
    record = {
        "timestamp": i.ts(),
        "level": i.level(),
        "logger": i.rng.choice(["mlflow.server", "hokusai.api.proxy", "uvicorn.access"]),
        "message": message,
        "request_id": i.uuid(),
        "task_id": i.hex(32),
        "trace_id": i.trace(),
    }
    return [json.dumps(record)]


def _mlflow(i: Identifiers) -> list[str]:
    run = i.hex(32)
    return [
        i.rng.choice(
            [
                f"2025/08/19 13:57:{i.rng.randint(10, 59)} INFO mlflow.tracking.fluent: "
                f"Experiment with name 'lscor' does not exist. Creating a new experiment.",
                f"{i.ts()} INFO mlflow.store.artifact: uploading to s3://hokusai-mlflow-artifacts/"
                f"{i.rng.randint(1, 40)}/{run}/artifacts/model/MLmodel",
                f"{i.ts()} INFO registered model version models:/lscor/{i.rng.randint(1, 9)} "
                f"from runs:/{run}/model",
                "mlflow.exceptions.RestException: INTERNAL_ERROR: "
                "Response: {'detail': 'Not Found'}",
                f"{i.ts()} WARNING Failed to create MLflow client after 3 attempts ({i.host()})",
            ]
        )
    ]


def _traceback(i: Identifiers) -> list[str]:
    return [
        "Traceback (most recent call last):",
        '  File "/app/hokusai/auth/token.py", line 42, in refresh_token',
        "    secret = client.get_secret_value(SecretId=secret_arn)",
        '  File "/usr/local/lib/python3.11/site-packages/botocore/client.py", line 1021, '
        "in _make_api_call",
        "    raise error_class(parsed_response, operation_name)",
        "botocore.exceptions.ClientError: An error occurred (AccessDeniedException) when calling "
        f"the GetSecretValue operation: User: arn:aws:sts::{i.account()}:assumed-role/"
        f"hokusai-ecs-task/{i.hex(32)} is not authorized to perform: "
        "secretsmanager:GetSecretValue on resource: "
        f"{i.secret_arn()}",
    ]


def _task_definition(i: Identifiers) -> list[str]:
    image = f"{i.account()}.dkr.ecr.us-east-1.amazonaws.com/hokusai-api@sha256:{i.hex(64)}"
    return [
        f'  "taskArn": "{i.task_arn()}",',
        f'  "image": "{image}",',
        '  "environment": [{"name": "MLFLOW_TRACKING_URI", "value": '
        '"http://mlflow.hokusai-development.local:5000"}, {"name": "DB_PASSWORD_SECRET_ARN", '
        f'"value": "{i.secret_arn()}"}}, {{"name": "LOG_LEVEL", "value": "info"}}],',
        f'  "secrets": [{{"name": "DB_PASSWORD", "valueFrom": "{i.secret_arn()}"}}],',
        f'  "startedAt": "{i.ts()}", "gitSha": "{i.hex(40)}", "runId": "{i.hex(32)}"',
    ]


def _pagination(i: Identifiers) -> list[str]:
    return [
        i.rng.choice(
            [
                f'{{"nextForwardToken": "f/3{i.s(string.digits, 55)}/s", '
                f'"nextBackwardToken": "b/3{i.s(string.digits, 55)}/s"}}',
                f'"NextToken": "{i.next_token()}",',
                f"{i.ts()} DEBUG paginating describe_services nextToken={i.next_token()}",
                f'{{"next_token": "{i.next_token()}", "token_type": "Bearer", "expires_in": 3600}}',
                f"ListObjectsV2 ContinuationToken={i.next_token()} MaxKeys=1000",
            ]
        )
    ]


def _settings_and_placeholders(i: Identifiers) -> list[str]:
    return [
        i.rng.choice(
            [
                "password_length=16 token_type=Bearer max_tokens=512",
                '{"prompt_tokens": 34, "completion_tokens": 120, "total_tokens": 154}',
                f"token_expiry: {i.ts()}",
                "DB_PASSWORD=${DB_PASSWORD}",
                'password: "********"',
                "- API Key: `hk_live_<redacted>`",
                "Authorization: Bearer <token>",
                "SLACK_BOT_TOKEN=xoxb-your-bot-token",
                "mlflow server --backend-store-uri postgresql://mlflow:${DB_PASSWORD}@db:5432/mlflow",
                'FATAL:  password authentication failed for user "mlflow"',
                f'"UserId": "AROA{i.s(UPPER_DIGITS, 17)}:session-{i.rng.randint(1, 10**9)}"',
                f"git commit {i.hex(40)} (HEAD -> main, origin/main) Merge pull request #42",
                f"SecretId={i.secret_arn()} VersionStage=AWSCURRENT",
                f"{i.ts()} INFO resolved {i.host()} to {i.ip()} in 3 ms",
            ]
        )
    ]


def _commands(i: Identifiers) -> list[str]:
    return [
        i.rng.choice(
            [
                f"ssh -p2222 deploy@{i.ip()} 'docker ps'",
                "mkdir -p /var/lib/mlflow/artifacts && chown mlflow /var/lib/mlflow",
                "gcc -pthread -O2 -o probe probe.c",
                "docker run -p8080:8080 -e LOG_LEVEL=info hokusai/api:latest",
                "mysql -u root -p mlflow < schema.sql",
                f"{i.ts()} DEBUG cookie consent banner shown; theme=dark",
                f"{i.ts()} INFO Set-Cookie: theme=dark; Path=/; SameSite=Lax",
                f"aws iam list-access-keys --user-name hokusai-deployer --output text # {i.hex(8)}",
            ]
        )
    ]


def aws_example_keys() -> tuple[str, str]:
    """AWS's documented example key pair (assembled from parts: no file holds it whole)."""
    return "AK" + "IAIOSFODNN7" + "EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"


def _placeholders(i: Identifiers) -> list[str]:
    """Stand-ins for secrets that a responder needs to see as they are."""
    key_id, secret = aws_example_keys()
    return [
        i.rng.choice(
            [
                "DB_PASSWORD=changeme",
                '{"name": "API_KEY", "value": "changeme"}',
                "HOKUSAI_API_KEY=hk_" + "live_" + "x" * 32,
                "HOKUSAI_API_KEY=hk_" + "live_xxxxxxxx…",
                f"aws_access_key_id = {key_id}",
                f"aws_secret_access_key = {secret}",
                f"ACCESSKEY\t{key_id}\t{i.ts()}\t{secret}\tActive\texample-user",
                "password: <your password>",
                "token=$(cat /run/secrets/api-token)",
                "client_secret: {{ client_secret }}",
                "SLACK_BOT_TOKEN=xoxb-your-bot-token",
                "API_KEY=YOUR_API_KEY_HERE",
                "export DB_PASSWORD=${DB_PASSWORD}",
                "mysql -u root -p${MYSQL_ROOT_PASSWORD} mlflow",
                "  password:\n    <set me>",
                "DB_PASSWORD=dummy MLFLOW_TRACKING_TOKEN=test",
                'password: "********"',
            ]
        )
    ][0].split("\n")


def _body(i: Identifiers) -> list[str]:
    payload = json.dumps({"model": "lscor", "accuracy": 0.933, "run": i.hex(32), "n": i.uuid()})
    return [f'{i.ts()} DEBUG body="{base64.b64encode(payload.encode()).decode()}"']


_CLEAN: tuple[tuple[Callable[[Identifiers], list[str]], int], ...] = (
    (_alb, 6),
    (_ecs_json, 6),
    (_mlflow, 4),
    (_traceback, 1),
    (_task_definition, 1),
    (_pagination, 3),
    (_settings_and_placeholders, 4),
    (_body, 1),
    (_commands, 1),
    (_placeholders, 2),
)


# --- secrets ---------------------------------------------------------------------------------


def _jwt(i: Identifiers) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    head = part({"alg": "HS256", "typ": "JWT"})
    body = part({"sub": i.uuid(), "iat": i.rng.randint(1.7e9, 1.8e9), "scope": "mlflow"})
    return f"{head}.{body}.{i.s(B64_URL, 43)}"


def _pem(i: Identifiers) -> str:
    body = [i.s(B64, 64) for _ in range(i.rng.randint(8, 25))] + [i.s(B64, 24) + "=="]
    kind = i.rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY"])
    return "\n".join([f"-----BEGIN {kind}-----", *body, f"-----END {kind}-----"])


def _password(i: Identifiers) -> str:
    """Mostly random; some upper-case only, UPPER_SNAKE or holding a word like "example"."""
    shape = i.rng.random()
    if shape < 0.1:
        return i.s(string.ascii_uppercase, 10)
    if shape < 0.2:
        word = i.rng.choice(["HUNTER", "ORCA", "TIGER", "BLUE"])
        return f"{word}_{i.rng.randint(2, 99)}_{i.rng.choice(['PROD', 'DEV', 'OPS'])}"
    if shape < 0.3:
        return f"my{i.rng.choice(['example', 'sample', 'test'])}pw-{i.hex(6)}"
    return i.s(PASSWORD_CHARS, i.rng.randint(10, 24))


def _env_password(i: Identifiers) -> str:
    """A password holding the characters that end values in other formats."""
    return i.s(ALNUM, 5) + i.rng.choice("&;,") + i.s(ALNUM, 6) + i.rng.choice("&,") + i.s(ALNUM, 3)


def _base64_secret(i: Identifiers) -> str:
    """A base64 token whose decoded text holds a secret."""
    password = i.s(PASSWORD_CHARS, 14)
    text = i.rng.choice(
        [
            f"postgresql://mlflow:{password}@db.internal:5432/mlflow",
            json.dumps({"user": "mlflow", "password": password, "n": i.rng.randint(1, 99)}),
            f"api_key={password}&region=us-east-1",
        ]
    )
    if i.rng.random() < 0.3:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    return base64.b64encode(text.encode()).decode()


def _basic(i: Identifiers) -> str:
    return base64.b64encode(f"admin:{i.s(PASSWORD_CHARS, 14)}".encode()).decode()


# kind, maker, templates ({v} is the secret; {ts} a timestamp). Prefixes are built from parts
# so that this file holds nothing a scanner would take for a real key.
SecretMaker = Callable[[Identifiers], str]
FORMATS: tuple[tuple[str, SecretMaker, tuple[str, ...]], ...] = (
    (
        "hokusai-api-key",
        lambda i: "hk_" + i.rng.choice(["live", "test"]) + "_" + i.s(ALNUM, 32),
        (
            "{ts} INFO hokusai.probe probing https://registry.hokus.ai/api/mlflow with key {v}",
            "HOKUSAI_API_KEY={v}",
            "{ts} DEBUG headers={{'Authorization': 'Bearer {v}', 'User-Agent': 'hokusai/1.4'}}",
            "- API Key: `{v}`",
            'curl -s -H "X-API-Key: {v}" https://registry.hokus.ai/api/mlflow/health',
            "{ts} DEBUG header x-api-key{v} rejected",
        ),
    ),
    (
        "aws-access-key-id",
        lambda i: i.rng.choice(["AK", "AS"]) + "IA" + i.s(UPPER_DIGITS, 16),
        (
            "export AWS_ACCESS_KEY_ID={v}",
            "{ts} INFO botocore.credentials Found credentials in environment variables: {v}",
            '    "AccessKeyId": "{v}",',
            "aws_access_key_id = {v}",
        ),
    ),
    (
        "aws-secret-key",
        lambda i: i.s(B64, 40),
        (
            "aws_secret_access_key = {v}",
            '    "SecretAccessKey": "{v}",',
            "export AWS_SECRET_ACCESS_KEY={v}",
        ),
    ),
    (
        "aws-session-token",
        lambda i: "IQoJb3JpZ2lu" + "X2VjE" + i.s(B64, 280),
        ('    "SessionToken": "{v}",', "aws_session_token = {v}", "X-Amz-Security-Token: {v}"),
    ),
    (
        "slack-token",
        lambda i: i.rng.choice(
            [
                "xo"
                + "xb-"
                + i.s(string.digits, 12)
                + "-"
                + i.s(string.digits, 13)
                + "-"
                + i.s(ALNUM, 24),
                "xo" + "xp-" + "-".join(i.s(string.digits, 12) for _ in range(3)) + "-" + i.hex(32),
                "xa"
                + "pp-1-A0"
                + i.s(UPPER_DIGITS, 9)
                + "-"
                + i.s(string.digits, 13)
                + "-"
                + i.hex(64),
                "xo" + "xe.xoxp-1-" + i.s(ALNUM, 140),
            ]
        ),
        (
            "SLACK_BOT_TOKEN={v}",
            "{ts} WARNING socket mode connect with app token {v} failed",
            "{ts} DEBUG slack_sdk.web.base_client token={v} url=https://slack.com/api/auth.test",
        ),
    ),
    (
        "slack-webhook",
        lambda i: (
            "https://hooks.slack."
            + "com/services/T"
            + i.s(UPPER_DIGITS, 8)
            + "/B"
            + i.s(UPPER_DIGITS, 10)
            + "/"
            + i.s(ALNUM, 24)
        ),
        ("SLACK_WEBHOOK_URL={v}", '{{"alert_webhook": "{v}", "channel": "#inc"}}'),
    ),
    (
        "github-token",
        lambda i: i.rng.choice(
            [
                "gh" + i.rng.choice("pous") + "_" + i.s(ALNUM, 36),
                "github" + "_pat_" + i.s(UPPER_DIGITS, 22) + "_" + i.s(ALNUM, 59),
            ]
        ),
        (
            "GITHUB_TOKEN={v}",
            "{ts} DEBUG Authorization: token {v}",
            "{ts} INFO cloning with token {v} into /tmp/build",
        ),
    ),
    (
        "linear-api-key",
        lambda i: "lin_" + "api_" + i.s(ALNUM, 40),
        ("LINEAR_API_KEY={v}", "{ts} ERROR linear.client request with {v} returned 401"),
    ),
    (
        "stripe-key",
        lambda i: "sk_" + "live_" + i.s(ALNUM, 24),
        ("STRIPE_KEY={v}", "{ts} INFO billing client ready ({v})"),
    ),
    (
        "openai-api-key",
        lambda i: "sk-" + "proj-" + i.s(ALNUM, 20) + "T3" + i.s(ALNUM, 40),
        ("OPENAI_API_KEY={v}", "{ts} DEBUG openai client key {v}"),
    ),
    (
        "anthropic-api-key",
        lambda i: "sk-" + "ant-api03-" + i.s(B64_URL, 93) + "AA",
        ("ANTHROPIC_API_KEY={v}", "{ts} DEBUG anthropic client x-api-key {v}"),
    ),
    (
        "google-api-key",
        lambda i: "AI" + "za" + i.s(B64_URL, 35),
        ("{ts} GET https://maps.googleapis.com/maps/api/geocode/json?key={v}", "GOOGLE_KEY {v}"),
    ),
    (
        "huggingface-token",
        lambda i: "hf" + "_" + i.s(ALNUM, 34),
        ("HF_TOKEN={v}", "{ts} INFO huggingface_hub login {v}"),
    ),
    (
        "npm-token",
        lambda i: "npm" + "_" + i.s(ALNUM, 36),
        ("//registry.npmjs.org/:_authToken={v}", "{ts} npm publish with {v}"),
    ),
    (
        "pypi-token",
        lambda i: "pypi-" + "AgEIcHlwaS5vcmc" + i.s(B64_URL, 70),
        ("TWINE_PASSWORD={v}", "{ts} uploading with {v}"),
    ),
    (
        "sendgrid-key",
        lambda i: "SG" + "." + i.s(B64_URL, 22) + "." + i.s(B64_URL, 43),
        ("SENDGRID_API_KEY={v}", "{ts} mail client {v}"),
    ),
    (
        "datadog-key",
        lambda i: i.hex(32),
        ("DD_API_KEY={v}", '{{"dd_api_key": "{v}", "site": "datadoghq.com"}}'),
    ),
    (
        "sentry-dsn",
        lambda i: i.hex(32),
        ("SENTRY_DSN=https://{v}@o{ts_digits}.ingest.sentry.io/4504",),
    ),
    (
        "databricks-token",
        lambda i: "da" + "pi" + i.hex(32),
        ("DATABRICKS_TOKEN={v}", "{ts} INFO databricks sql connect token {v}"),
    ),
    (
        "jwt",
        _jwt,
        (
            "{ts} DEBUG Authorization: Bearer {v}",
            '{{"id_token": "{v}", "token_type": "Bearer"}}',
            "{ts} INFO mlflow tracking with {v}",
        ),
    ),
    (
        "url-password",
        lambda i: i.s(PASSWORD_CHARS, i.rng.randint(12, 20)),
        (
            "DATABASE_URL=postgresql://mlflow:{v}@hokusai-mlflow-development.cluster-c9x2.us-east-1"
            ".rds.amazonaws.com:5432/mlflow",
            "{ts} INFO mlflow.store.db.utils Creating SQLAlchemy engine for "
            "mysql+pymysql://admin:{v}@db.internal:3306/mlflow",
            "REDIS_URL=redis://:{v}@hokusai-redis.abc123.cache.amazonaws.com:6379/0",
            "MLFLOW_TRACKING_URI=https://admin:{v}@registry.hokus.ai/api/mlflow",
            "{ts} git fetch https://deploy:{v}@git.example.com/hokusai/infra.git",
        ),
    ),
    (
        "authorization",
        lambda i: i.rng.choice([_basic(i), i.s(ALNUM, 40)]),
        ("Authorization: {scheme} {v}", '{{"headers": {{"authorization": "{scheme} {v}"}}}}'),
    ),
    (
        "password-field",
        _password,
        (
            "DB_PASSWORD={v}",
            "  password: {v}",
            '{{"username": "mlflow", "password": "{v}"}}',
            "{ts} POST /login username=admin&password={v}&remember=1",
            '{{"name": "POSTGRES_PASSWORD", "value": "{v}"}},',
            "client_secret={v}",
            "'api_key': '{v}',",
            "mysql -u root -p{v} -h db.internal mlflow",
            "{ts} INFO running mysqldump -uadmin --password={v} mlflow",
            "Server=db.internal;Database=mlflow;User Id=mlflow;Password={v};Encrypt=true",
        ),
    ),
    (
        "env-password",
        _env_password,
        ("PGPASSWORD={v} psql -h db.internal -U mlflow", "export DB_PASSWORD={v}"),
    ),
    (
        "aws-cli-secret-key",
        lambda i: i.s(B64, 40),
        (
            "ACCESSKEY\t{akid}\t{ts}\t{v}\tActive\thokusai-deployer",
            "||  SecretAccessKey |  {v}  ||",
            '"{akid}","{v}"',
            "{akid} | {v}",
            "{akid}={v}",
        ),
    ),
    (
        "cookie",
        lambda i: i.s(B64_URL, 32),
        (
            "Cookie: _hokusai_session={v}; theme=dark",
            "{ts} DEBUG Set-Cookie: sessionid={v}; Path=/; HttpOnly; Secure",
            '{{"headers": {{"cookie": "csrftoken=1; session={v}"}}}}',
        ),
    ),
    (
        "base64",
        _base64_secret,
        ("{ts} DEBUG body={v}", "  DATABASE_URL: {v}", '{{"payload": "{v}", "v": 2}}'),
    ),
)
TERMINAL_WIDTHS = (80, 100, 120, 132, 160, 200, 250)
MANGLINGS = ("url", "json", "nested", "base64", "wrap")
_WRAP_PAD = "2025-08-19T13:57:01.123Z api/0f1e2d3c4b5a "


def render_template(i: Identifiers, template: str, value: str) -> str:
    scheme = "Basic" if value.endswith("=") or len(value) != 40 else "Bearer"
    return template.format(
        v=value,
        ts=i.ts(),
        scheme=scheme,
        ts_digits=i.rng.randint(100000, 999999),
        akid="AK" + "IA" + i.s(UPPER_DIGITS, 16),
    )


def leak_fragments(value: str) -> tuple[str, ...]:
    """What of ``value`` must not survive: itself, and any long piece a format boundary
    (``&``, ``;``, ``,``) could leave behind."""
    pieces = [p for p in re.split(r"[&;,]", value) if len(p) >= 3 and p != value]
    return (value, *pieces)


def _plant(i: Identifiers, corpus: Corpus, mangling: str) -> None:
    if mangling == "plain" and i.rng.random() < 0.03:
        _plant_block(i, corpus)
        return
    kind, make, templates = i.rng.choice(FORMATS)
    while mangling == "base64" and kind == "base64":  # base64 is decoded once, not twice
        kind, make, templates = i.rng.choice(FORMATS)
    value = make(i)
    line = render_template(i, i.rng.choice(templates), value)
    index = len(corpus.lines)
    fragments = leak_fragments(value)
    if mangling == "plain":
        corpus.lines.append(line + "\n")
    elif mangling == "url":
        encoded = quote(line, safe="")
        corpus.lines.append(f"{i.ts()} INFO GET /oauth/callback?state={i.hex(16)}&next={encoded}\n")
        fragments += (quote(value, safe=""),)
    elif mangling == "json":
        escaped = json.dumps(line)[1:-1].replace("/", "\\/")
        corpus.lines.append(f'{{"log": "{escaped}", "stream": "stderr", "time": "{i.ts()}"}}\n')
        escaped_value = json.dumps(value)[1:-1]
        fragments += (escaped_value, escaped_value.replace("/", "\\/"))
    elif mangling == "nested":
        # a JSON log line inside a JSON message inside a JSON record: escaped two or three times
        text = line
        for _ in range(i.rng.randint(2, 3)):
            text = json.dumps({"log": text, "time": i.ts()})
        corpus.lines.append(json.dumps({"message": text, "stream": "stdout"}) + "\n")
        fragments += tuple(json.dumps(v)[1:-1] for v in fragments)
    elif mangling == "base64":
        encoded = base64.b64encode(line.encode()).decode()
        corpus.lines.append(f"{i.ts()} DEBUG sqs message body={encoded}\n")
        fragments += (encoded,)
    else:
        # a terminal of some width wrapped the line inside the secret
        lead = len(_WRAP_PAD) + line.index(value)
        cut = i.rng.randint(4, max(4, min(len(value) - 4, TERMINAL_WIDTHS[-1] - lead)))
        width = min(w for w in TERMINAL_WIDTHS if w >= lead + cut)
        line = _WRAP_PAD + " " * (width - lead - cut) + line
        at = width
        first, second = value[:cut], value[cut:]
        corpus.lines.extend([line[:at] + "\n", line[at:] + "\n"])
        corpus.secrets.append(
            PlantedSecret(kind, "wrap", (index, index + 1), ((first,), (second,)))
        )
        return
    corpus.secrets.append(PlantedSecret(kind, mangling, (index,), (fragments,)))


def _plant_block(i: Identifiers, corpus: Corpus) -> None:
    """A secret over several lines: a private key, or a YAML value below its key."""
    start = len(corpus.lines)
    if i.rng.random() < 0.6:
        body = _pem(i).split("\n")
        prefix = i.rng.choice(["", "    "])
        corpus.lines.extend(prefix + line + "\n" for line in body)
        fragments = tuple((line,) for line in body[1:-1])
        lines = tuple(range(start + 1, start + len(body) - 1))
        corpus.secrets.append(PlantedSecret("private-key", "plain", lines, fragments))
        return
    value = _password(i)
    key = i.rng.choice(["password", "api_key", "client_secret"])
    corpus.lines.extend(["database:\n", f"  {key}:\n", f"    {value}\n", "  host: db.internal\n"])
    corpus.secrets.append(PlantedSecret("yaml-next-line", "plain", (start + 2,), ((value,),)))


def generate_corpus(
    size: int = 4_000_000,
    seed: int = 20250819,
    secret_every: int = 9,
    mangled_share: float = 0.15,
) -> Corpus:
    """Build about ``size`` characters of log text, one secret per ``secret_every`` lines.

    A ``mangled_share`` of the secrets is mangled one of the ``MANGLINGS`` ways: URL-encoded,
    JSON-escaped once or several times over, base64-encoded, or soft-wrapped by a terminal.
    """
    rng = random.Random(seed)
    ids = Identifiers(rng)
    corpus = Corpus()
    makers = [maker for maker, weight in _CLEAN for _ in range(weight)]
    length = 0
    while length < size:
        before = len(corpus.lines)
        if rng.randrange(secret_every) == 0:
            mangling = "plain"
            if rng.random() < mangled_share:
                mangling = rng.choice(MANGLINGS)
            _plant(ids, corpus, mangling)
        else:
            maker = rng.choice(makers)
            lines = maker(ids)
            if rng.random() < 0.03 and len(lines) == 1 and len(lines[0]) > 140:
                # a clean line soft-wrapped by a terminal: both halves must survive
                cut = rng.choice([w for w in TERMINAL_WIDTHS if w < len(lines[0]) - 10])
                lines = [lines[0][:cut], lines[0][cut:]]
            kept = corpus.placeholders if maker is _placeholders else corpus.clean
            kept.extend(range(before, before + len(lines)))
            corpus.lines.extend(line + "\n" for line in lines)
        length += sum(len(line) for line in corpus.lines[before:])
    return corpus
