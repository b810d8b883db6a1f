"""Requests Slack did not sign cost `hokusai serve` almost nothing and say nothing in its log.

Driven over real HTTP (and a raw socket where httpx would send the whole body anyway) against
`hokusai serve` in a subprocess.
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from bot.sandbox import signing
from bot.slack.gate import MAX_BODY_BYTES
from tests.slack.processes import start_serve, stop

MARKER = "UNSIGNED-MARKER-7f3a"


@pytest.fixture
def served(bot_env, tmp_path):
    """`hokusai serve` in a subprocess: its events URL and its log file."""
    log = tmp_path / "serve.log"
    proc, url = start_serve({**os.environ, **bot_env}, log)
    try:
        yield url, log
    finally:
        stop(proc)


def _headers(timestamp: str, signature: str = "v0=" + "0" * 64) -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }


def _still_answers(url: str, secret: str) -> None:
    request = signing.slash_command(secret, "help")
    reply = httpx.post(url, content=request.body, headers=request.headers, timeout=10)
    assert reply.status_code == 200 and "diagnose" in reply.json()["text"]


def test_an_oversized_body_is_refused_before_it_is_sent(served, slack_secrets):
    url, log = served
    parts = urlsplit(url)
    # Announce 10 MB, send 1 KB and wait: a server that read the whole body first would hang.
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Slack-Request-Timestamp: {int(time.time())}\r\n"
            f"X-Slack-Signature: v0={'0' * 64}\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n"
        )
        conn.sendall(head.encode() + MARKER.encode() * 50)
        answer = conn.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:80]
    _still_answers(url, slack_secrets["signing_secret"])
    text = log.read_text()
    assert "body larger than Slack sends (10485760 bytes)" in text
    assert MARKER not in text


def test_a_chunked_body_is_cut_off_at_the_cap(served, slack_secrets):
    url, log = served

    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 4):
            yield (MARKER * 4096)[:65536].encode()

    reply = httpx.post(url, content=chunks(), headers=_headers(str(int(time.time()))), timeout=10)
    assert reply.status_code == 413
    assert MARKER not in log.read_text()
    _still_answers(url, slack_secrets["signing_secret"])


def test_an_unsigned_body_is_refused_and_only_its_size_logged(served, slack_secrets):
    url, log = served
    body = f"command=/hokusai&text=diagnose&token={MARKER}".encode() + b"x" * 200_000
    reply = httpx.post(url, content=body, headers=_headers(str(int(time.time()))), timeout=10)
    assert reply.status_code == 401
    _still_answers(url, slack_secrets["signing_secret"])
    text = log.read_text()
    assert f"bad signature ({len(body)} bytes)" in text
    assert MARKER not in text


@pytest.mark.parametrize("timestamp", ["", "abc", "12e5", "-1", "1.5", "９９", "9" * 400, "0x10"])
def test_a_malformed_timestamp_is_refused_not_a_crash(served, slack_secrets, timestamp):
    url, log = served
    body = b"command=%2Fhokusai&text=help"
    headers = _headers("0")
    headers["X-Slack-Request-Timestamp"] = timestamp
    reply = httpx.post(
        url, content=body, headers={k: v.encode() for k, v in headers.items()}, timeout=10
    )
    assert reply.status_code == 401
    assert "Traceback" not in log.read_text()


def test_a_body_that_is_not_utf8_is_401_unsigned_and_400_signed(served, slack_secrets):
    url, log = served
    secret = slack_secrets["signing_secret"]
    body = b"command=%2Fhokusai&text=\xff\xfe\xfa"
    unsigned = httpx.post(url, content=body, headers=_headers(str(int(time.time()))), timeout=10)
    assert unsigned.status_code == 401
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **signing.sign(secret, body, int(time.time())),
    }
    signed = httpx.post(url, content=body, headers=headers, timeout=10)
    assert signed.status_code == 400
    assert "Traceback" not in log.read_text()
    _still_answers(url, secret)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"type": "event_callback", "event": '),
        ("application/x-www-form-urlencoded", b"payload=%7B%22type%22%3A"),
    ],
)
def test_a_signed_but_broken_body_is_400(served, slack_secrets, content_type, body):
    url, log = served
    headers = {
        "Content-Type": content_type,
        **signing.sign(slack_secrets["signing_secret"], body, int(time.time())),
    }
    assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 400
    assert "Traceback" not in log.read_text()


def test_other_paths_and_methods_are_refused_plainly(served):
    url, _ = served
    base = url.removesuffix("/slack/events")
    assert httpx.get(url, timeout=10).status_code == 405
    assert httpx.post(base + "/slack/other", content=b"x", timeout=10).status_code == 404
