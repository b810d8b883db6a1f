"""Secrets that arrive URL-encoded, JSON-escaped or soft-wrapped across two lines."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

import pytest

from bot.redaction import Redactor
from tests.redaction import FORMAT_KINDS, make_secret, planted_lines

MARKER = re.compile(r"\[redacted:[a-z-]+\]")


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize("kind", FORMAT_KINDS)
def test_url_encoded_lines(redactor: Redactor, kind: str) -> None:
    for line, secret in planted_lines(kind, 21):
        encoded = f"GET /oauth/callback?state=abc&next={quote(line, safe='')} HTTP/1.1"
        out = redactor.redact_text(encoded)
        assert secret not in out and quote(secret, safe="") not in out, out
        assert out.startswith("GET /oauth/callback?state=abc&next=")


@pytest.mark.parametrize("kind", FORMAT_KINDS)
def test_json_escaped_lines(redactor: Redactor, kind: str) -> None:
    for line, secret in planted_lines(kind, 22):
        escaped = json.dumps({"log": line, "stream": "stderr"})
        escaped_slashes = escaped.replace("/", "\\/")
        for text in (escaped, escaped_slashes):
            out = redactor.redact_text(text)
            assert json.dumps(secret)[1:-1] not in out, out
            assert json.dumps(secret)[1:-1].replace("/", "\\/") not in out, out
            assert '"stream": "stderr"' in out


def test_escaped_mapping_keeps_the_text_around_it(redactor: Redactor) -> None:
    password = 'Sup3r"se\\cret!'
    text = "body=" + json.dumps(json.dumps({"user": "mlflow", "password": password}))
    out = redactor.redact_text(text)
    assert "Sup3r" not in out and "cret!" not in out
    assert out.startswith('body="{\\"user\\": \\"mlflow\\", \\"password\\": \\"[redacted:')


def test_form_body_with_encoded_password(redactor: Redactor) -> None:
    password = "p@ss w0rd&!"
    out = redactor.redact_text(f"username=admin&password={quote_plus(password)}&remember=1")
    assert out == "username=admin&password=[redacted:password-field]&remember=1"


def soft_wrap(line: str, secret: str, keep: int) -> tuple[str, int]:
    """``line`` as a terminal prints it when the wrap falls ``keep`` characters into ``secret``.

    Returns the two-line text and the terminal width.
    """
    prefix = "2025-08-19T13:57:01.123Z api "
    lead = len(prefix) + line.index(secret) + keep
    width = min([w for w in (80, 100, 120, 160, 200, 250) if w >= lead] or [lead])
    full = prefix + " " * (width - lead) + line
    return full[:width] + "\n" + full[width:] + "\n", width


@pytest.mark.parametrize("kind", FORMAT_KINDS)
def test_soft_wrapped_secret_is_redacted_on_both_lines(redactor: Redactor, kind: str) -> None:
    for line, secret in planted_lines(kind, 23):
        # a terminal is at most 250 columns wide: a longer secret wraps over more lines
        longest = 250 - len("2025-08-19T13:57:01.123Z api ") - line.index(secret)
        for keep in sorted({4, len(secret) // 2, len(secret) - 4}):
            keep = min(keep, longest)
            wrapped, _ = soft_wrap(line, secret, keep)
            out = redactor.redact_text(wrapped)
            first, second, rest = MARKER.sub("", out).split("\n")
            assert not rest
            assert secret[:keep] not in first, (kind, wrapped, out)
            assert secret[keep:] not in second, (kind, wrapped, out)


def test_wrap_does_not_join_a_complete_key_to_the_next_record(redactor: Redactor) -> None:
    key = make_secret("github-token", 3)
    text = f"GITHUB_TOKEN={key}\nListObjectsV2 ContinuationToken=abc MaxKeys=1000\n"
    out = redactor.redact_text(text)
    assert out.split("\n")[1] == "ListObjectsV2 ContinuationToken=abc MaxKeys=1000"


def test_wrapped_clean_line_survives(redactor: Redactor) -> None:
    record = '{"nextForwardToken": "f/37' + "1" * 50 + '/s", "nextBackwardToken": "b/37' + "2" * 50
    text = record[:80] + "\n" + record[80:] + "\n"
    assert redactor.redact_text(text) == text


@pytest.mark.parametrize(
    "form",
    [
        lambda v: v,
        lambda v: quote(v, safe=""),
        lambda v: quote(v, safe="").lower(),
        lambda v: quote_plus(v),
        lambda v: json.dumps(v)[1:-1],
        lambda v: json.dumps(v)[1:-1].replace("/", "\\/"),
    ],
)
def test_known_secret_in_any_form(form) -> None:  # type: ignore[no-untyped-def]
    secret = "probe/" + make_secret("password-field", 4) + '"x'
    redactor = Redactor(known_secrets=[secret])
    out = redactor.redact_text(f"sent {form(secret)} to the proxy")
    assert out == "sent [redacted:known-secret] to the proxy"


def test_known_secret_soft_wrapped() -> None:
    secret = make_secret("password-field", 5) + "Zz9"
    redactor = Redactor(known_secrets=[secret])
    line = "x" * (80 - 5) + secret
    text = line[:80] + "\n" + line[80:] + " done\n"
    first, second, _ = redactor.redact_text(text).split("\n")
    assert secret[:5] not in first and secret[5:] not in second
    assert second.endswith(" done")
