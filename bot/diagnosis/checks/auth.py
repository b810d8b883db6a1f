"""Auth checks: the probe key is accepted the configured way, and protected paths refuse strangers.

The key comes from the variable named by ``auth.api_key_env`` (the runner's ``ctx.secrets``
first, then the process environment). It is never shown: every recorded request masks
credential headers and query parameters, and the exact value is masked wherever it appears.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlencode

from bot.config import AuthSettings, Environment, Route
from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check
from bot.diagnosis.probe import (
    MLFLOW_INVALID_HOST,
    RESPONDER_TITLES,
    Budget,
    ProbeResult,
    Responder,
    probe,
    responder_for_service,
)

PROBE_TIMEOUT_CAP = 5.0
REFUSED = frozenset({401, 403})
# Words a service uses when no key reached it at all, as opposed to a wrong key.
_MISSING_KEY_WORDS = ("required", "missing", "not provided", "no api key", "not authenticated")


@dataclass(frozen=True)
class AuthWay:
    """One way of presenting a key: a header with an optional scheme, or a query parameter."""

    label: str
    header: str | None = None
    scheme: str | None = None
    query_param: str | None = None

    def headers(self, key: str) -> dict[str, str]:
        if not self.header:
            return {}
        return {self.header: f"{self.scheme} {key}" if self.scheme else key}

    def url(self, url: str, key: str) -> str:
        if not self.query_param:
            return url
        joiner = "&" if "?" in url else "?"
        return f"{url}{joiner}{urlencode({self.query_param: key})}"


BEARER = AuthWay("Authorization: Bearer", header="Authorization", scheme="Bearer")
TOKEN = AuthWay("Authorization: Token", header="Authorization", scheme="Token")
X_API_KEY = AuthWay("X-API-Key", header="X-API-Key")
API_KEY_HEADER = AuthWay("Api-Key", header="Api-Key")
QUERY = AuthWay("the api_key query parameter", query_param="api_key")
QUERY_APIKEY = AuthWay("the apikey query parameter", query_param="apikey")
USUAL_WAYS: tuple[AuthWay, ...] = (BEARER, TOKEN, X_API_KEY, API_KEY_HEADER, QUERY, QUERY_APIKEY)
# Challenge schemes that take a user and password, not a key: never sent the key.
_PASSWORD_SCHEMES = frozenset({"basic", "digest", "negotiate", "ntlm"})


def challenge(result: ProbeResult) -> str | None:
    """The ``WWW-Authenticate`` header of an answer, if any."""
    return next((v for k, v in result.headers.items() if k.lower() == "www-authenticate"), None)


def challenged_way(header: str | None) -> AuthWay | None:
    """The way a ``WWW-Authenticate: Token realm="api"`` challenge asks for the key."""
    if not header:
        return None
    scheme = header.strip().split(None, 1)[0].rstrip(",") if header.strip() else ""
    if not scheme.isalpha() or scheme.lower() in _PASSWORD_SCHEMES:
        return None
    return AuthWay(f"Authorization: {scheme}", header="Authorization", scheme=scheme)


def _same_way(a: AuthWay, b: AuthWay) -> bool:
    return (
        (a.header or "").lower() == (b.header or "").lower()
        and (a.scheme or "").lower() == (b.scheme or "").lower()
        and a.query_param == b.query_param
    )


def ways_to_try(configured: AuthWay, refusal: ProbeResult) -> list[AuthWay]:
    """Other ways to send the key, the one the refusal's challenge names first."""
    ordered = [w for w in (challenged_way(challenge(refusal)),) if w] + list(USUAL_WAYS)
    out: list[AuthWay] = []
    for way in ordered:
        if not _same_way(way, configured) and not any(_same_way(way, o) for o in out):
            out.append(way)
    return out


def challenge_says_invalid(result: ProbeResult) -> bool:
    """RFC 6750: ``error="invalid_token"`` means the key arrived the right way and is bad."""
    value = (challenge(result) or "").lower()
    return "invalid_token" in value or "invalid_key" in value


def configured_way(auth: AuthSettings) -> AuthWay:
    """The way hokusai.yml says the key is sent."""
    label = f"{auth.header}: {auth.scheme}" if auth.scheme else auth.header
    return AuthWay(label, header=auth.header, scheme=auth.scheme)


def api_key(ctx: CheckContext) -> str | None:
    """The probe key from ``ctx.secrets`` or the environment variable ``auth.api_key_env``."""
    auth = ctx.env.auth
    if auth is None:
        return None
    return ctx.secrets.get(auth.api_key_env) or os.environ.get(auth.api_key_env) or None


def auth_headers(ctx: CheckContext) -> tuple[dict[str, str], tuple[str, ...]]:
    """Headers that carry the configured key, and the secrets to mask; empty without a key."""
    key = api_key(ctx)
    if not key or ctx.env.auth is None:
        return {}, ()
    return configured_way(ctx.env.auth).headers(key), (key,)


def probe_url(env: Environment, route: Route) -> str:
    return env.public.base_url + route.probe


def short_path(route: Route) -> str:
    return route.probe.split("?", 1)[0]


def _budget(ctx: CheckContext, seconds: float) -> Budget:
    return Budget(seconds, deadline=ctx.deadline)


def _is_host_refusal(result: ProbeResult) -> bool:
    return result.status == 403 and MLFLOW_INVALID_HOST in result.body


def _refused(result: ProbeResult) -> bool:
    return result.status in REFUSED and not _is_host_refusal(result)


def _says_key_missing(result: ProbeResult) -> bool:
    body = result.body.lower()
    return any(word in body for word in _MISSING_KEY_WORDS)


def _reached_service(result: ProbeResult, expected: Responder) -> bool:
    """Whether the answer plausibly came from the route's own service (or through it)."""
    if result.answered_by in (expected, Responder.UNKNOWN):
        return True
    # An API service that proxies MLflow passes MLflow's answers through.
    return expected == Responder.FASTAPI and result.answered_by == Responder.MLFLOW


@check(
    id="auth.api-key",
    layer="auth",
    per="route",
    timeout=12.0,
    description="The configured API key is accepted the configured way; else which way works.",
)
async def api_key_accepted(ctx: CheckContext) -> CheckResult:
    route, auth = ctx.route, ctx.env.auth
    if route is None:
        return CheckResult.skipped(f"no route named {ctx.subject!r} in this environment")
    if auth is None:
        return CheckResult.skipped("no auth section in hokusai.yml for this environment")
    key = api_key(ctx)
    if not key:
        return CheckResult.skipped(
            f"{auth.api_key_env} is not set: no key to test",
            variable=auth.api_key_env,
        )
    budget = _budget(ctx, api_key_accepted.timeout)
    url = probe_url(ctx.env, route)
    svc = route.service
    expected = responder_for_service(ctx.env.service(svc))
    way = configured_way(auth)

    async def attempt(w: AuthWay) -> ProbeResult:
        return await probe(
            ctx.http,
            "GET",
            w.url(url, key),
            headers=w.headers(key),
            timeout=budget.next_timeout(PROBE_TIMEOUT_CAP),
            secrets=(key,),
        )

    first = await attempt(way)
    evidence = {
        "way": way.label,
        "variable": auth.api_key_env,
        "attempts": [first.evidence() | {"way": way.label}],
    }
    if first.status is None:
        return CheckResult.warned(
            f"cannot tell whether {svc} accepts the key: {first.error}",
            hint="app.route-probe says why the route does not answer",
            **evidence,
        )
    if _is_host_refusal(first):
        return CheckResult.warned(
            f"cannot tell: MLflow refused the Host header before looking at the key "
            f"({first.status} {MLFLOW_INVALID_HOST})",
            hint="add the public hostname to MLflow's --allowed-hosts",
            **evidence,
        )
    if not _refused(first):
        if first.ok or _reached_service(first, expected):
            return CheckResult.passed(
                f"{svc} accepts the key sent as {way.label} ({first.status})", **evidence
            )
        return CheckResult.warned(
            f"cannot tell whether {svc} accepts the key: the probe was answered by "
            f"{RESPONDER_TITLES[first.answered_by]} ({first.describe_answer()})",
            hint="app.route-probe names the wrong hop",
            **evidence,
        )

    accepted_by: AuthWay | None = None
    for other in ways_to_try(way, first):
        if budget.exhausted:
            break
        result = await attempt(other)
        evidence["attempts"].append(result.evidence() | {"way": other.label})
        answered = result.status is not None and not _refused(result)
        if (
            answered
            and not _is_host_refusal(result)
            and (result.ok or _reached_service(result, expected))
        ):
            accepted_by = other
            break
    asked_for = challenged_way(challenge(first))
    if asked_for is not None:
        evidence["challenge"] = challenge(first)
    if accepted_by is not None:
        named = (
            f" (its 401 says WWW-Authenticate: {challenge(first)})"
            if asked_for is not None and _same_way(asked_for, accepted_by)
            else ""
        )
        return CheckResult.failed(
            f"{svc} accepts the key as {accepted_by.label}, not {way.label} as configured{named}",
            Classification.CONFIGURATION,
            hint=f"set auth.header/auth.scheme in hokusai.yml (and the clients) to "
            f"{accepted_by.label}, or make {svc} accept {way.label}",
            accepted_way=accepted_by.label,
            **evidence,
        )
    tried = ", ".join(a["way"] for a in evidence["attempts"])
    if _says_key_missing(first) and not challenge_says_invalid(first):
        return CheckResult.failed(
            f"{svc} says no key arrived ({first.describe_answer()}) although the key was sent "
            f"as {way.label} (also tried: {tried}): something on the way (the load balancer "
            "or a proxy) strips it, or it expects another way",
            Classification.CONFIGURATION,
            hint=f"look for a hop that drops the {way.header or 'key'} header before {svc}",
            **evidence,
        )
    return CheckResult.failed(
        f"{svc} refuses the key in {auth.api_key_env} every way tried ({tried}; "
        f"{first.describe_answer()}): the key is wrong, expired or revoked",
        Classification.CONFIGURATION,
        hint=f"check that {auth.api_key_env} holds a current key for this environment",
        **evidence,
    )


@check(
    id="auth.unauthenticated",
    layer="auth",
    per="route",
    timeout=8.0,
    description="A protected path refuses a request without a key (an answer of 200 is a fail).",
)
async def unauthenticated_refused(ctx: CheckContext) -> CheckResult:
    route = ctx.route
    if route is None:
        return CheckResult.skipped(f"no route named {ctx.subject!r} in this environment")
    if not route.protected:
        return CheckResult.skipped(f"{route.name} is not marked protected in hokusai.yml")
    budget = _budget(ctx, unauthenticated_refused.timeout)
    result = await probe(
        ctx.http,
        "GET",
        probe_url(ctx.env, route),
        timeout=budget.next_timeout(PROBE_TIMEOUT_CAP),
    )
    evidence = result.evidence()
    path = short_path(route)
    if result.status is None:
        return CheckResult.warned(
            f"cannot tell whether {path} requires a key: {result.error}", **evidence
        )
    if _is_host_refusal(result):
        return CheckResult.warned(
            f"cannot tell whether {path} requires a key: MLflow refused the Host header first",
            **evidence,
        )
    if result.ok:
        return CheckResult.failed(
            f"{path} answered {result.status} without an API key: authentication is bypassed",
            Classification.SECURITY,
            hint=f"{route.service} must refuse requests without a key; restore its auth check",
            **evidence,
        )
    if result.status in REFUSED:
        return CheckResult.passed(
            f"{path} refuses a request without a key ({result.describe_answer()})", **evidence
        )
    return CheckResult.warned(
        f"cannot tell whether {path} requires a key: without one it answered "
        f"{result.describe_answer()} from {RESPONDER_TITLES[result.answered_by]}",
        hint="fix the route first (app.route-probe), then run this again",
        **evidence,
    )
