"""HTTP probes that record what was asked and work out who really answered.

A probe never raises: connection errors and timeouts come back as a ``ProbeResult`` whose
``error_kind`` says what went wrong. ``who_answered`` reads the status, headers and body shape
of an answer and names the kind of server that produced it (the load balancer itself, a
FastAPI service, MLflow, nginx), with the reason in words, because a bare 404 says nothing
about which hop refused the request.

Example::

    result = await probe(http, "GET", "https://registry.hokus.ai/api/2.0/mlflow/...",
                         headers={"Authorization": f"Bearer {key}"}, timeout=5)
    result.answered_by   # Responder.FASTAPI
    result.reason        # 'JSON body {"detail": ...}, the shape of a FastAPI/Starlette error'
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from bot.redaction import default_redactor

if TYPE_CHECKING:
    from bot.config import EcsService

EXCERPT_CHARS = 300
# Enough of a body to parse the JSON of a search answer; more is never needed for a verdict.
BODY_KEEP_CHARS = 65_536
MASK = "[redacted]"

# Headers whose whole value is a credential, masked whatever the redactor thinks of them.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"}
)
# Query parameters that carry a key when a service takes it in the URL.
CREDENTIAL_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token"})
# Response headers that say something about who answered.
HEADERS_OF_INTEREST = (
    "server",
    "content-type",
    "via",
    "x-frame-options",
    "vary",
    "www-authenticate",
    "x-cache",
    "x-amz-cf-id",
    "cf-ray",
)

MLFLOW_INVALID_HOST = "Invalid Host header - possible DNS rebinding attack detected"
# Werkzeug's 404 page, which MLflow's Flask app serves for any path it does not know.
_WERKZEUG_404 = "The requested URL was not found on the server"
_WERKZEUG_405 = "The method is not allowed for the requested URL"
_ELB_STATUSES = frozenset({502, 503, 504})
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class Responder(StrEnum):
    """The kind of server that produced an answer."""

    LOAD_BALANCER = "load-balancer"
    FASTAPI = "fastapi"
    MLFLOW = "mlflow"
    NGINX = "nginx"
    CDN = "cdn"
    UNKNOWN = "unknown"


RESPONDER_TITLES: dict[Responder, str] = {
    Responder.LOAD_BALANCER: "the load balancer",
    Responder.FASTAPI: "a FastAPI service",
    Responder.MLFLOW: "MLflow",
    Responder.NGINX: "nginx",
    Responder.CDN: "a CDN",
    Responder.UNKNOWN: "an unknown server",
}


@dataclass(frozen=True)
class Attribution:
    """Who answered and why we think so."""

    responder: Responder
    reason: str


def who_answered(status: int, headers: Mapping[str, str], body: str) -> Attribution:
    """Name the kind of server behind an answer from its status, headers and body shape.

    Args:
        status: the HTTP status code.
        headers: response headers (any case).
        body: the response body as text (a prefix is enough).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    server = lower.get("server", "").lower()
    content_type = lower.get("content-type", "").lower()
    text = body.strip()
    payload = _json_object(text)

    if server.startswith("awselb") or "<center>awselb" in text.lower():
        if status in _ELB_STATUSES and "<html" in text.lower():
            return Attribution(
                Responder.LOAD_BALANCER,
                f"server header {server or 'awselb'} and the ELB's own {status} error page",
            )
        return Attribution(
            Responder.LOAD_BALANCER,
            f"server header {server or 'awselb'} and a fixed-response body",
        )
    cdn = _cdn_error(server, lower, text, status)
    if cdn is not None:
        return cdn
    if MLFLOW_INVALID_HOST in text:
        return Attribution(
            Responder.MLFLOW,
            f"{status} '{MLFLOW_INVALID_HOST}': MLflow's Host-header check (--allowed-hosts)",
        )
    if payload is not None:
        if "error_code" in payload:
            return Attribution(
                Responder.MLFLOW,
                f"JSON body with error_code {payload.get('error_code')!r}, MLflow's error shape",
            )
        if "detail" in payload:
            return Attribution(
                Responder.FASTAPI,
                'JSON body {"detail": ...}, the shape of a FastAPI/Starlette error',
            )
    if _WERKZEUG_404 in text or _WERKZEUG_405 in text:
        return Attribution(
            Responder.MLFLOW,
            f"the HTML {status} page of MLflow's Flask app (Werkzeug)",
        )
    if server.startswith("nginx") or "<center>nginx" in text.lower():
        return Attribution(
            Responder.NGINX, f"server header {server or 'nginx'} or nginx error page"
        )
    if payload is not None and _looks_like_mlflow_result(payload):
        return Attribution(Responder.MLFLOW, "JSON body in the shape of an MLflow REST answer")
    if status == 200 and text == "OK" and "text/plain" in content_type:
        return Attribution(Responder.MLFLOW, "plain-text 'OK', MLflow's /health answer")
    hint = f"server {server!r}" if server else "no server header"
    return Attribution(Responder.UNKNOWN, f"{hint}, {content_type or 'no content-type'}")


# CloudFront's own error page; Cloudflare's and Fastly's error pages name themselves.
_CDN_PAGES = ("the request could not be satisfied", "cloudflare", "fastly error")


def _cdn_error(
    server: str, headers: Mapping[str, str], text: str, status: int
) -> Attribution | None:
    """A CDN's own error page (not an origin's answer passed through the CDN)."""
    via_cdn = (
        "cloudfront" in server
        or "cloudflare" in server
        or "x-amz-cf-id" in headers
        or "cf-ray" in headers
        or "cloudfront" in headers.get("via", "").lower()
    )
    if via_cdn and status >= 400 and any(p in text.lower() for p in _CDN_PAGES):
        return Attribution(Responder.CDN, f"the CDN's own {status} error page ({server or 'via'})")
    return None


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _looks_like_mlflow_result(payload: dict[str, Any]) -> bool:
    keys = set(payload)
    return bool(keys & {"experiments", "registered_models", "runs", "model_versions"})


def responder_for_service(service: EcsService | None) -> Responder:
    """The kind of server a service is: its ``kind``, else MLflow by name, else FastAPI."""
    if service is None:
        return Responder.UNKNOWN
    kind = (service.kind or "").lower()
    if kind in {"nginx"}:
        return Responder.NGINX
    if service.is_mlflow:
        return Responder.MLFLOW
    return Responder.FASTAPI


@dataclass
class ProbeResult:
    """One request made and what came back, safe to show: secrets are already masked."""

    method: str
    url: str
    path: str
    request_headers: dict[str, str]
    status: int | None = None
    latency_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    excerpt: str = ""
    answered_by: Responder = Responder.UNKNOWN
    reason: str = ""
    error: str | None = None
    error_kind: str | None = None  # "timeout", "connect" or "other"
    body: str = field(default="", repr=False)  # redacted, for parsing; never in evidence

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON, or None."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def mlflow_error(self) -> str | None:
        """MLflow's error as ``CODE: message`` when the body is MLflow's error JSON."""
        payload = self.json()
        if not isinstance(payload, dict) or "error_code" not in payload:
            return None
        return f"{payload.get('error_code')}: {str(payload.get('message', ''))[:1000]}"

    def describe_answer(self) -> str:
        """``404 {"detail": "Not Found"}`` or ``no answer within 4.0 s``: for summaries."""
        if self.status is None:
            return self.error or "no answer"
        title = _TITLE.search(self.body)
        if title and "<html" in self.body[:200].lower():
            return f'{self.status} HTML page "{" ".join(title.group(1).split())}"'
        snippet = " ".join(self.excerpt.split())[:80]
        return f"{self.status} {snippet}".strip()

    def evidence(self) -> dict[str, Any]:
        """The request made and a short excerpt of the answer, for a finding's evidence."""
        out: dict[str, Any] = {
            "request": {
                "method": self.method,
                "path": self.path,
                "headers": self.request_headers,
            },
            "latency_ms": self.latency_ms,
        }
        if self.status is None:
            out["error"] = self.error
            out["error_kind"] = self.error_kind
        else:
            out["response"] = {
                "status": self.status,
                "headers": self.headers,
                "excerpt": self.excerpt,
            }
            out["answered_by"] = str(self.answered_by)
            out["reason"] = self.reason
        return out


def mask_headers(headers: Mapping[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    """Headers as they may be shown: credential headers keep only their scheme."""
    shown = {}
    for name, value in headers.items():
        if name.lower() in CREDENTIAL_HEADERS:
            scheme, _, rest = value.partition(" ")
            shown[name] = f"{scheme} {MASK}" if rest and scheme.isalpha() else MASK
        else:
            shown[name] = redact(value, secrets)
    return shown


def mask_path(url: str, secrets: Iterable[str] = ()) -> str:
    """Path and query of ``url``, with credential query parameters masked."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() in CREDENTIAL_PARAMS for k, _ in query):
        masked = [(k, MASK if k.lower() in CREDENTIAL_PARAMS else v) for k, v in query]
        qs = urlencode(masked, safe="[]")
    else:
        qs = parts.query
    path = (parts.path or "/") + (f"?{qs}" if qs else "")
    return redact(path, secrets)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The shared redactor, plus exact values this caller holds (the probe key)."""
    for value in secrets:
        if value:
            text = text.replace(value, MASK)
    return default_redactor().redact_text(text)


async def probe(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    secrets: Iterable[str] = (),
) -> ProbeResult:
    """Make one request and record it; never raises.

    Args:
        http: the run's shared client.
        method / url: what to request.
        headers: request headers; credential headers are masked in the record.
        timeout: seconds for the whole exchange, connect to last byte.
        secrets: exact values to mask wherever they appear (the probe key).
    """
    secrets = tuple(s for s in secrets if s)
    sent = dict(headers or {})
    parts = urlsplit(url)
    result = ProbeResult(
        method=method.upper(),
        url=redact(f"{parts.scheme}://{parts.netloc}", secrets) + mask_path(url, secrets),
        path=mask_path(url, secrets),
        request_headers=mask_headers(sent, secrets),
    )
    started = time.monotonic()
    try:
        # asyncio.timeout bounds the whole exchange: httpx's timeouts are per read, and a
        # server that trickles bytes would otherwise hold the check past its budget.
        async with asyncio.timeout(timeout):
            response = await http.request(
                method, url, headers=sent, timeout=httpx.Timeout(timeout), follow_redirects=False
            )
    except (TimeoutError, httpx.TimeoutException):
        result.error = f"no answer within {timeout:.1f} s"
        result.error_kind = "timeout"
    except httpx.ConnectError as exc:
        result.error = f"connection failed: {_short(exc) or 'refused'}"
        result.error_kind = "connect"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {_short(exc)}"
        result.error_kind = "other"
    else:
        text = response.text[:BODY_KEEP_CHARS]
        attribution = who_answered(response.status_code, response.headers, text)
        result.status = response.status_code
        result.headers = {
            k: redact(v, secrets)
            for k, v in response.headers.items()
            if k.lower() in HEADERS_OF_INTEREST or k.lower().startswith("x-amzn-")
        }
        result.body = redact(text, secrets)
        result.excerpt = result.body[:EXCERPT_CHARS]
        result.answered_by = attribution.responder
        result.reason = attribution.reason
    result.latency_ms = int((time.monotonic() - started) * 1000)
    if result.error:
        result.error = redact(result.error, secrets)
    return result


def _short(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip()[:200]


class Budget:
    """A check's time budget: what is left, and a timeout for the next request within it.

    The margin leaves time to build the finding before the runner's own timeout fires.
    """

    def __init__(self, seconds: float, *, deadline: float | None = None, margin: float = 0.5):
        end = time.monotonic() + max(seconds - margin, 0.1)
        if deadline is not None:
            end = min(end, deadline - margin)
        self._end = end

    def remaining(self) -> float:
        return max(self._end - time.monotonic(), 0.0)

    def next_timeout(self, cap: float | None = None) -> float:
        left = max(self.remaining(), 0.05)
        return min(left, cap) if cap else left

    @property
    def exhausted(self) -> bool:
        return self.remaining() <= 0.05
