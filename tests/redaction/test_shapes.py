"""Shapes outside text gives secrets (issue 13): each is redacted, and its look-alikes are not.

Every secret is made at run time; AWS's documented example keys are assembled from parts.
"""

from __future__ import annotations

import base64
import json
import random
import string
from urllib.parse import quote

import pytest

from bot.redaction import Redactor, placeholder_kind, shown_placeholder
from tests.redaction import make_secret

ALNUM = string.ascii_letters + string.digits
rng = random.Random(13)


def pick(alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def password() -> str:
    return pick(ALNUM, 14) + "7q!"


def aws_secret() -> str:
    return pick(ALNUM, 19) + "/" + pick(ALNUM, 18) + "+Z"


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


# -- one stream, many parts ------------------------------------------------------------------


def test_a_private_key_logged_one_line_per_event_is_redacted(redactor: Redactor) -> None:
    body = [pick(ALNUM + "+/", 64) for _ in range(6)]
    events = [
        "2026-11-26T04:00:00Z ERROR could not load the signing key:",
        "-----BEGIN " + "RSA PRIVATE KEY-----",
        *body,
        "-----END RSA PRIVATE KEY-----",
        "2026-11-26T04:00:01Z INFO retrying",
    ]
    out = redactor.redact_parts(events)
    assert len(out) == len(events)
    assert out[0] == events[0] and out[-1] == events[-1]
    assert not any(line in "\n".join(out) for line in body)
    assert all(part == "[redacted:private-key]" for part in out[1:-1])


@pytest.mark.parametrize("cut", [11, 14, 20, 36])
def test_a_key_split_across_two_events_is_redacted_in_both(redactor: Redactor, cut: int) -> None:
    key = make_secret("hokusai-api-key", cut)
    line = f"probe sent X-API-Key {key} and got 401"
    at = line.index(key) + cut
    out = redactor.redact_parts([line[:at], line[at:], "next event"])
    assert key[:cut] not in out[0] and key[cut:] not in out[1]
    assert out[0].startswith("probe sent X-API-Key ") and out[1].endswith(" and got 401")
    assert out[2] == "next event"


@pytest.mark.parametrize("kind", ["hokusai-api-key", "slack-token", "github-token", "jwt"])
def test_the_start_of_a_key_ending_an_event_is_redacted_without_its_rest(
    redactor: Redactor, kind: str
) -> None:
    """A filtered log read may return the event with the key's start and not the next one."""
    key = make_secret(kind, 8)
    line = f"2026-11-26T04:00:00Z ERROR probe sent {key}"
    out = redactor.redact_parts([line[:-12], "2026-11-26T04:00:09Z INFO unrelated"])
    assert key[:-12] not in out[0] and out[0].startswith("2026-11-26T04:00:00Z ERROR probe sent ")
    assert out[1] == "2026-11-26T04:00:09Z INFO unrelated"


def test_a_url_password_cut_by_the_end_of_an_event(redactor: Redactor) -> None:
    secret = password()
    out = redactor.redact_parts([f"ERROR connect postgresql://mlflow:{secret[:9]}"])
    assert out == ["ERROR connect postgresql://mlflow:[redacted:url-password]"]


def test_pagination_tokens_ending_an_event_stay(redactor: Redactor) -> None:
    cursor = b64(json.dumps({"v": 1, "c": pick(ALNUM, 24)}))
    parts = [f"DEBUG paginating nextToken={cursor}", "DEBUG next page"]
    assert redactor.redact_parts(parts) == parts


def test_a_value_judged_by_its_key_split_across_events_is_redacted(redactor: Redactor) -> None:
    secret = password()
    parts = [f"connecting with DB_PASSWORD={secret[:8]}", f"{secret[8:]} to db.internal"]
    out = redactor.redact_parts(parts)
    assert secret[:8] not in out[0] and secret[8:] not in out[1]
    assert out[1].endswith(" to db.internal")


def test_parts_keep_their_own_lines(redactor: Redactor) -> None:
    key = make_secret("github-token", 1)
    parts = ["first\nsecond", f"token {key}\nthird\n", "", "last"]
    out = redactor.redact_parts(parts)
    assert out == ["first\nsecond", "token [redacted:github-token]\nthird\n", "", "last"]


def test_lists_of_strings_in_structured_data_are_one_text(redactor: Redactor) -> None:
    body = [pick(ALNUM + "+/", 64) for _ in range(3)]
    pem = ["-----BEGIN " + "PRIVATE KEY-----", *body, "-----END PRIVATE KEY-----"]
    out = redactor.redact({"first_lines": pem, "count": 5})
    assert not any(line in json.dumps(out) for line in body)
    assert out["count"] == 5 and len(out["first_lines"]) == len(pem)


# -- command lines and CLI output ------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "mysql -u root -p{} -h db.internal mlflow",
        "mysqldump --single-transaction -uroot -p{} mlflow > dump.sql",
        "mariadb -h db -p'{}' -e 'select 1'",
        "mysql --user=root --password={} mlflow",
        "PGPASSWORD={} psql -h db.internal -U mlflow",
    ],
)
def test_passwords_glued_to_flags(redactor: Redactor, line: str) -> None:
    secret = password()
    out = redactor.redact_text(line.format(secret))
    assert secret not in out and "[redacted:password-field]" in out
    assert out.split()[-1] == line.split()[-1]


@pytest.mark.parametrize(
    "line",
    [
        "ssh -p2222 deploy@bastion",
        "mkdir -p /var/lib/mlflow",
        "gcc -pthread -o probe probe.c",
        "find . -path ./node_modules -prune -o -print",
        "docker run -p8080:8080 hokusai/api",
    ],
)
def test_flags_that_are_no_password(redactor: Redactor, line: str) -> None:
    assert redactor.redact_text(line) == line


def test_aws_cli_text_output(redactor: Redactor) -> None:
    key_id, secret = make_secret("aws-access-key-id", 3), aws_secret()
    line = f"ACCESSKEY\t{key_id}\t2026-11-26T04:00:00+00:00\t{secret}\tActive\thokusai-deployer"
    out = redactor.redact_text(line)
    assert key_id not in out and secret not in out
    assert out.endswith("\tActive\thokusai-deployer")


@pytest.mark.parametrize(
    "template",
    [
        "{id}={secret}",
        "{id}/{secret}",
        '"{id}","{secret}"',
        "{id} | {secret}",
        "{id}\t{secret}",
        "| {id} | 2026-11-26 | {secret} |",
    ],
)
def test_aws_secret_after_its_key_id(redactor: Redactor, template: str) -> None:
    key_id, secret = make_secret("aws-access-key-id", 4), aws_secret()
    out = redactor.redact_text(template.format(id=key_id, secret=secret))
    assert key_id not in out and secret not in out


def test_aws_cli_table_output(redactor: Redactor) -> None:
    secret = aws_secret()
    table = (
        "|                 CreateAccessKey                 |\n"
        f"||  SecretAccessKey |  {secret}  ||\n"
        "||  Status          |  Active                     ||\n"
    )
    out = redactor.redact_text(table)
    assert secret not in out and "Active" in out


# -- YAML, cookies, escaping, glued keys -----------------------------------------------------


def test_yaml_value_on_the_next_line(redactor: Redactor) -> None:
    secret = password()
    text = f"database:\n  password:\n    {secret}\n  host: db.internal\n"
    out = redactor.redact_text(text)
    assert secret not in out
    assert out == "database:\n  password:\n    [redacted:password-field]\n  host: db.internal\n"


def test_yaml_block_scalar(redactor: Redactor) -> None:
    lines = [pick(ALNUM, 40) for _ in range(3)]
    text = "api_key: |\n" + "".join(f"  {line}\n" for line in lines) + "region: us-east-1\n"
    out = redactor.redact_text(text)
    assert not any(line in out for line in lines)
    assert out.endswith("region: us-east-1\n") and out.count("\n") == text.count("\n")


def test_yaml_nested_mapping_under_a_secret_word_is_judged_by_its_own_keys(
    redactor: Redactor,
) -> None:
    secret = password()
    text = f"credentials:\n  user: mlflow\n  password: {secret}\n"
    out = redactor.redact_text(text)
    assert "user: mlflow" in out and secret not in out


@pytest.mark.parametrize(
    "template",
    [
        "Cookie: session={a}; csrftoken={b}",
        "Set-Cookie: sessionid={a}; Path=/; HttpOnly; csrftoken={b}",
        '{{"headers": {{"Cookie": "session={a}; csrftoken={b}"}}}}',
        "curl -H 'cookie: _hokusai_session={a};remember={b}' https://registry.hokus.ai",
    ],
)
def test_cookie_values(redactor: Redactor, template: str) -> None:
    a, b = password(), password()
    out = redactor.redact_text(template.format(a=a, b=b))
    assert a not in out and b not in out and "[redacted:cookie]" in out
    assert ("Path=/" in out) == ("Path=/" in template)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_nested_json_escaping_to_any_depth(redactor: Redactor, depth: int) -> None:
    secret = password()
    text = json.dumps({"password": secret, "user": "mlflow"})
    for _ in range(depth):
        text = json.dumps({"log": text})
    out = redactor.redact_text(text)
    assert secret not in out and json.dumps(secret)[1:-1] not in out
    assert "mlflow" in out
    inner = json.loads(out)
    for _ in range(depth):
        inner = json.loads(inner["log"])
    assert inner == {"password": "[redacted:password-field]", "user": "mlflow"}


def test_url_encoded_twice(redactor: Redactor) -> None:
    secret = password()
    inner = quote(f"https://x/cb?password={secret}&ok=1", safe="")
    out = redactor.redact_text(f"GET /login?next={quote(inner, safe='')} HTTP/1.1")
    assert secret not in out and quote(secret, safe="") not in out
    assert quote(quote(secret, safe=""), safe="") not in out


@pytest.mark.parametrize(
    ("kind", "glue"),
    [
        ("hokusai-api-key", "key"),
        ("slack-token", "token"),
        ("github-token", "auth"),
        ("aws-access-key-id", "id"),
        ("jwt", "bearer"),
    ],
)
def test_keys_glued_to_words(redactor: Redactor, kind: str, glue: str) -> None:
    secret = make_secret(kind, 5)
    out = redactor.redact_text(f"sent {glue}{secret} upstream")
    assert secret not in out and out.startswith(f"sent {glue}[redacted:")


# -- placeholders and values ---------------------------------------------------------------


def aws_example_keys() -> tuple[str, str]:
    """AWS's documented example key pair, assembled so no file holds it whole."""
    return "AKIA" + "IOSFODNN7" + "EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"


@pytest.mark.parametrize(
    "line",
    [
        "DB_PASSWORD=changeme",
        '{"name": "API_KEY", "value": "changeme"}',
        "HOKUSAI_API_KEY=hk_live_" + "x" * 32,
        "HOKUSAI_API_KEY=hk_live_xxxxxxxx…",
        "aws_access_key_id = {id}",
        "aws_secret_access_key = {secret}",
        "{id}\t{secret}",
        "API_KEY=<your api key>",
        "password: ${DB_PASSWORD}",
        "token=$(cat /run/secrets/token)",
        "client_secret={{ client_secret }}",
        "SLACK_BOT_TOKEN=xoxb-your-bot-token",
        "password: ****",
    ],
)
def test_placeholders_are_shown_as_they_are(redactor: Redactor, line: str) -> None:
    key_id, secret = aws_example_keys()
    line = line.replace("{id}", key_id).replace("{secret}", secret)
    assert redactor.redact_text(line) == line


@pytest.mark.parametrize("value", ["QWERTYUIOP", "HUNTER_2_PROD", "myexamplepw-9f8a7c", "admin"])
def test_values_that_only_look_like_placeholders_are_secrets(
    redactor: Redactor, value: str
) -> None:
    assert redactor.redact_text(f"DB_PASSWORD={value}") == "DB_PASSWORD=[redacted:password-field]"
    assert redactor.redact({"name": "DB_PASSWORD", "value": value})["value"] != value


def test_a_generated_key_of_one_repeated_digit_is_a_secret(redactor: Redactor) -> None:
    key = "hk_" + "live_" + "0" * 32
    assert redactor.redact_text(f"key {key}") == "key [redacted:hokusai-api-key]"
    assert redactor.redact_text(f"token {'ghp_' + 'a' * 36}") == "token [redacted:github-token]"


def test_which_placeholders_a_config_check_reports() -> None:
    key_id, _ = aws_example_keys()
    assert placeholder_kind("changeme") == "word"
    for value in ("changeme", "xxxxxxxx", "<your key>", key_id, "YOUR_API_KEY"):
        assert shown_placeholder(value), value
    for value in ("", "${API_KEY}", "arn:aws:secretsmanager:us-east-1:1:secret:x", "s3cr3t!x"):
        assert not shown_placeholder(value), value


@pytest.mark.parametrize(
    ("template", "survives"),
    [
        ("PGPASSWORD={v}&3xyz psql", " psql"),
        ("export DB_PASSWORD={v};rm -rf /tmp/x", ""),
        ("GET /login?user=admin&password={v}&next=/home HTTP/1.1", "&next=/home HTTP/1.1"),
        ("Server=db.internal;Password={v};Database=mlflow", ";Database=mlflow"),
        ("Password={v};Server=db.internal", ";Server=db.internal"),
        ("password={v}&remember=1&next=%2F", "&remember=1&next=%2F"),
    ],
)
def test_value_boundaries_by_format(redactor: Redactor, template: str, survives: str) -> None:
    secret = password()
    out = redactor.redact_text(template.format(v=secret))
    assert secret not in out
    assert "&3xyz" not in out and ";rm" not in out
    assert out.endswith(survives)


# -- base64 ---------------------------------------------------------------------------------


def b64(text: str, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode()).decode()


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: v1\nkind: Secret\ndata:\n  DATABASE_URL: {url}\n",
        "DEBUG body={blob}",
        'DEBUG {{"payload": "{blob_url}"}}',
        "Authorization: Basic {basic}",
    ],
)
def test_secrets_inside_base64(redactor: Redactor, text: str) -> None:
    secret = password()
    values = {
        "url": b64(f"postgresql://mlflow:{secret}@db.internal:5432/mlflow"),
        "blob": b64(json.dumps({"user": "mlflow", "password": secret})),
        "blob_url": b64(json.dumps({"api_key": secret, "n": 1}), urlsafe=True),
        "basic": b64(f"admin:{secret}"),
    }
    text = text.format(**values)
    out = redactor.redact_text(text)
    assert not any(value in out for value in values.values())
    assert out.count("\n") == text.count("\n") and "[redacted:" in out


def test_base64_without_a_secret_is_left_alone(redactor: Redactor) -> None:
    blob = b64(
        json.dumps({"model": "lscor", "accuracy": 0.93, "run": pick("0123456789abcdef", 32)})
    )
    cursor = b64(json.dumps({"v": 1, "c": pick(ALNUM, 24), "o": 7}))
    text = f"DEBUG body={blob} nextToken={cursor} digest={pick(ALNUM, 44)}"
    assert redactor.redact_text(text) == text
