"""Property tests of the redactor: planted secrets never survive, identifiers always do."""

from __future__ import annotations

import base64
import io
import json
import random
import string
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.corpus import FORMATS, Identifiers, render_template
from bot.cli.redact import main
from bot.redaction import Redactor

REDACTOR = Redactor()
HEX = "0123456789abcdef"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Surrounding text: log-ish words and punctuation, any line breaks, some unicode.
noise = st.text(
    alphabet=st.sampled_from(
        list(string.ascii_letters + string.digits + " .,;:=/-_\"'{}[]()\n\tüé→")
    ),
    max_size=120,
)
separators = st.sampled_from([" ", "\n", "\t", " | ", '", "', "\n\n"])


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str]:
    """A line of some format and template, with a secret generated from a drawn seed."""
    _, make, templates = draw(st.sampled_from(FORMATS))
    template = draw(st.sampled_from(templates))
    ids = Identifiers(random.Random(draw(st.integers(0, 2**32))))
    secret = make(ids)
    return render_template(ids, template, secret), secret


@SETTINGS
@given(planted(), noise, noise, separators, separators)
def test_planted_secrets_never_survive(
    line_and_secret: tuple[str, str], before: str, after: str, left: str, right: str
) -> None:
    line, secret = line_and_secret
    text = before + left + line + right + after
    out = REDACTOR.redact_text(text)
    assert secret not in out
    assert out.count("\n") == text.count("\n")


@SETTINGS
@given(planted(), st.integers(0, 10**6))
def test_secrets_in_structured_data_never_survive(
    line_and_secret: tuple[str, str], seed: int
) -> None:
    line, secret = line_and_secret
    rnd = random.Random(seed)
    shapes = [
        {"message": line},
        {"events": [{"timestamp": 1, "message": line}], "nextForwardToken": "f/1/s"},
        {"headers": {"X-Debug": line}, "body": json.dumps({"log": line})},
        {"environment": [{"name": "LOG_LINE", "value": line}]},
        ["error", (line, 3)],
    ]
    out = REDACTOR.redact(rnd.choice(shapes))
    assert secret not in json.dumps(out, default=str)
    assert json.dumps(secret)[1:-1] not in json.dumps(out, default=str)


@st.composite
def look_alike(draw: st.DrawFn) -> str:
    rnd = random.Random(draw(st.integers(0, 2**32)))

    def pick(alphabet: str, n: int) -> str:
        return "".join(rnd.choices(alphabet, k=n))

    account = pick(string.digits, 12)
    name = pick(string.ascii_lowercase + "-/", rnd.randint(3, 20)).strip("/-") or "db"
    payload = json.dumps({"v": 1, "c": pick(string.ascii_letters, 16), "o": rnd.randint(0, 999)})
    choices = [
        f"arn:aws:secretsmanager:us-east-1:{account}:secret:{name}-{pick(string.ascii_letters, 6)}",
        f"arn:aws:ecs:us-east-1:{account}:task/hokusai-development/{pick(HEX, 32)}",
        str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
        pick(HEX, 40),
        "sha256:" + pick(HEX, 64),
        pick(HEX, 32),
        f"Root=1-{pick(HEX, 8)}-{pick(HEX, 24)}",
        base64.b64encode(payload.encode()).decode(),
        f"f/3{pick(string.digits, 55)}/s",
        f"ip-10-0-{rnd.randint(0, 255)}-{rnd.randint(0, 255)}.ec2.internal",
        f"2025-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T{rnd.randint(0, 23):02d}:"
        f"{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}.{rnd.randint(0, 999999):06d}Z",
        "${" + pick(string.ascii_uppercase + "_", 8) + "}",
        "*" * rnd.randint(3, 12),
        "hk_live_<redacted>",
    ]
    return rnd.choice(choices)


words = st.text(alphabet=st.sampled_from(list(string.ascii_lowercase + " .,")), max_size=60)


@SETTINGS
@given(look_alike(), words, words, separators, separators)
def test_look_alike_identifiers_always_survive(
    identifier: str, before: str, after: str, left: str, right: str
) -> None:
    text = before + left + identifier + right + after
    assert identifier in REDACTOR.redact_text(text)


@SETTINGS
@given(st.lists(st.one_of(noise, planted().map(lambda pair: pair[0])), max_size=12), st.booleans())
def test_the_cli_keeps_the_line_count(pieces: list[str], crlf: bool) -> None:
    text = "\n".join(pieces)
    if crlf:
        text = text.replace("\n", "\r\n")
    stdout = io.StringIO()
    code = main([], io.BytesIO(text.encode("utf-8")), stdout, io.StringIO(), environ={})
    out = stdout.getvalue()
    assert code == 0
    assert out.count("\n") == text.count("\n")
    assert out.count("\r\n") == text.count("\r\n")
    assert out.endswith("\n") == text.endswith("\n")
