"""A loopback front for moto that refuses some reads the way AWS does: AccessDenied.

The bot's ``AWS_ENDPOINT_URL`` points here; everything passes to moto unchanged except the
IAM actions in ``deny``, which get the error AWS sends a role without that permission — in
the service's own protocol (query/XML for Elastic Load Balancing, RDS and EC2; JSON for ECS,
CloudWatch Logs and Cloud Map). The service comes from the request's SigV4 credential scope,
the action from the form body or the ``X-Amz-Target`` header, as AWS itself reads them.

(moto can enforce IAM itself, but in server mode it refuses every Route 53 signature, which a
real account never does.)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

from bot.sandbox.upstreams import HOP_BY_HOP, BackgroundServer

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
ACCOUNT = "123456789012"
ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/hokusai-diagnose/bot"


class AwsGateway(BackgroundServer):
    """Forwards to ``upstream`` (moto), answering AccessDenied for the actions in ``deny``.

    Args:
        upstream: moto's URL.
        deny: IAM actions to refuse, e.g. ``{"elasticloadbalancing:DescribeRules"}``.
    """

    name = "aws-gateway"

    def __init__(self, upstream: str, deny: Iterable[str]) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.deny = frozenset(deny)
        self.refused: list[str] = []

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        action = _action(request, body)
        if action in self.deny:
            self.refused.append(action)
            return _access_denied(request, action)
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self.session.request(
            request.method,
            self.upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as answer:
            payload = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, body=payload, headers=kept)


def _action(request: web.Request, body: bytes) -> str | None:
    """``service:Action`` of a signed AWS request, or None when it cannot be told."""
    scope = _SCOPE.search(request.headers.get("Authorization", ""))
    if scope is None:
        return None
    service = scope.group(1)
    target = request.headers.get("X-Amz-Target")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    form = parse_qs(body.decode(errors="replace")) if body else {}
    name = (form.get("Action") or request.query.getall("Action", []) or [None])[0]
    return f"{service}:{name}" if name else None


def _access_denied(request: web.Request, action: str) -> web.Response:
    message = (
        f"User: {ROLE} is not authorized to perform: {action} because no identity-based "
        f"policy allows the {action} action"
    )
    request_id = str(uuid.uuid4())
    if request.headers.get("X-Amz-Target"):
        return web.Response(
            status=400,
            text=json.dumps({"__type": "AccessDeniedException", "message": message}),
            content_type="application/x-amz-json-1.1",
            headers={"x-amzn-RequestId": request_id},
        )
    xml = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
        f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>"
    )
    return web.Response(status=403, text=xml, content_type="text/xml")
