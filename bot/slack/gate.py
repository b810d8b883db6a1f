"""The door of ``POST /slack/events``: refuse what Slack would never send, cheaply, before Bolt.

An unsigned request must cost almost nothing: the body is refused by its declared size before
it is read, read with a cap when it declares none, and its signature is checked on the raw
bytes before anything parses or logs it. Only its size and the reason it was refused are ever
logged. Signed but malformed bodies (not UTF-8, broken JSON) get 400, never a traceback.

Example::

    gate = RequestGate(signing_secret)
    verdict = await gate.admit(scope, receive)
    if verdict.refused:
        ...answer verdict.status
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.request.internals import parse_body

log = logging.getLogger(__name__)

# Slack's largest payloads are interactions carrying a whole message or modal (50 or 100
# blocks of at most 3,000 characters, form-encoded): well under 1 MiB. Anything bigger is not
# from Slack.
MAX_BODY_BYTES = 1024 * 1024
# Slack signs with the current time; Bolt and Slack's docs refuse anything 5 minutes off.
MAX_CLOCK_SKEW = 5 * 60


@dataclass(frozen=True)
class Verdict:
    """What the gate decided: the body to hand on, or a status and the reason to log."""

    body: bytes = b""
    status: int = 200
    reason: str = ""

    @property
    def refused(self) -> bool:
        return self.status != 200


class RequestGate:
    """Checks size, timestamp, signature and encoding of one request, in that order."""

    def __init__(
        self,
        signing_secret: str,
        *,
        max_body: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = signing_secret.encode()
        self.max_body = max_body
        self._clock = clock

    async def admit(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]]
    ) -> Verdict:
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return self._refuse(400, "malformed Content-Length", 0)
            if int(declared) > self.max_body:
                return self._refuse(413, "body larger than Slack sends", int(declared))
        timestamp = headers.get(b"x-slack-request-timestamp", b"")
        signature = headers.get(b"x-slack-signature", b"")
        size = int(declared) if declared is not None else 0
        if not timestamp.isdigit() or len(timestamp) > 12:
            return self._refuse(401, "missing or malformed timestamp", size)
        if abs(self._clock() - int(timestamp)) > MAX_CLOCK_SKEW:
            return self._refuse(401, "timestamp more than 5 minutes off", size)
        if not signature.startswith(b"v0=") or len(signature) != 67:
            return self._refuse(401, "missing or malformed signature", size)
        body = await self._read(receive)
        if body is None:
            return self._refuse(413, "body larger than Slack sends", self.max_body + 1)
        expected = hmac.new(
            self._secret, b"v0:" + timestamp + b":" + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature[3:]):
            return self._refuse(401, "bad signature", len(body))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(400, "signed body is not UTF-8", len(body))
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0]
        try:
            parse_body(text, content_type.strip() or None)
        except ValueError:
            return self._refuse(400, "signed body is not valid JSON or form data", len(body))
        return Verdict(body=body)

    async def _read(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes | None:
        """The whole body, or None as soon as it grows past the cap."""
        chunks = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return bytes(chunks)  # the client went away; what came is what there is
            chunks += message.get("body", b"")
            if len(chunks) > self.max_body:
                return None
            if not message.get("more_body", False):
                return bytes(chunks)

    @staticmethod
    def _refuse(status: int, reason: str, size: int) -> Verdict:
        # Never the body, its headers or anything else the sender chose: size and reason only.
        log.info(
            "refused a request to /slack/events: %s (%d bytes), answered %d", reason, size, status
        )
        return Verdict(status=status, reason=reason)
