"""A loopback reverse proxy that stands in for the Application Load Balancer.

Requests are routed by path pattern (ALB globs such as ``/api/mlflow/*``) through a plain list
of ``ProxyRule``; the first match wins, like rule priorities. No match gets the ALB's fixed
404 with ``server: awselb/2.0``; an upstream that refuses or times out gets the ELB's own
502/504 page. Knobs break it the ways the seed outage describes: misroute a path to another
upstream, strip the Authorization header, rewrite the Host header to the public name (which
MLflow's ``--allowed-hosts`` then refuses), or answer everything with a 502/503.

The sandbox edge can plug in its own routing (moto's listener rules) through ``router``.

Example::

    lb = LoadBalancerProxy([ProxyRule("/api/mlflow/*", api.url), ProxyRule("/api/2.0/mlflow/*",
                            mlflow.url)]).start()
    lb.strip_auth = True
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from bot.sandbox.upstreams import HOP_BY_HOP, LOOPBACK, BackgroundServer

ELB_SERVER = "awselb/2.0"
ELB_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


@dataclass(frozen=True)
class FixedResponse:
    """An ALB fixed-response action."""

    status: int = 404
    body: str = "Not Found"
    content_type: str = "text/plain; charset=utf-8"


@dataclass
class ProxyRule:
    """Forward paths matching ``path_pattern`` to ``upstream``, or answer ``fixed``."""

    path_pattern: str
    upstream: str | None = None
    fixed: FixedResponse | None = None
    name: str = ""

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.path_pattern)


# What a router returns: a rule to apply, or None for the default action.
Router = Callable[[str, str], ProxyRule | None]


def elb_error_page(status: int) -> web.Response:
    """The HTML page the ELB writes itself when it cannot get an answer from a target."""
    title = f"{status} {ELB_REASONS.get(status, 'Error')}"
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return web.Response(
        status=status, text=body, content_type="text/html", headers={"Server": ELB_SERVER}
    )


@dataclass
class ProxyKnobs:
    """Scenario knobs, read on every request."""

    # path pattern -> upstream URL, checked before the rules (a misrouted listener rule).
    misroute: dict[str, str] = field(default_factory=dict)
    strip_auth: bool = False
    # Host header sent upstream instead of the client's (None: keep it, as an ALB does).
    host_header: str | None = None
    # Answer every request with this ELB status (502, 503, 504) instead of forwarding.
    elb_status: int | None = None


class LoadBalancerProxy(BackgroundServer):
    """The load balancer stand-in.

    Args:
        rules: routing table, in priority order; a plain list the caller may change.
        default: the default action when no rule matches (ALB fixed 404).
        router: replaces the rule lookup, e.g. one that evaluates moto's listener rules.
        upstream_timeout: seconds before the proxy gives up on a target (504).
    """

    name = "load-balancer"

    def __init__(
        self,
        rules: list[ProxyRule] | None = None,
        *,
        default: FixedResponse | None = None,
        router: Router | None = None,
        upstream_timeout: float = 10.0,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.rules: list[ProxyRule] = list(rules or [])
        self.default = default or FixedResponse()
        self.router = router
        self.upstream_timeout = upstream_timeout
        self.knobs = ProxyKnobs()

    # Knob shortcuts, so a scenario reads as one line.
    @property
    def strip_auth(self) -> bool:
        return self.knobs.strip_auth

    @strip_auth.setter
    def strip_auth(self, value: bool) -> None:
        self.knobs.strip_auth = value

    def misroute(self, path_pattern: str, upstream: str) -> None:
        """Send ``path_pattern`` to ``upstream`` whatever the rules say."""
        self.knobs.misroute[path_pattern] = upstream

    def rewrite_host(self, hostname: str | None) -> None:
        """Send ``hostname`` upstream as the Host header (None: the client's own)."""
        self.knobs.host_header = hostname

    def answer_elb_error(self, status: int | None) -> None:
        """Answer everything with the ELB's own ``status`` page (None: forward again)."""
        self.knobs.elb_status = status

    def reset(self) -> None:
        self.knobs = ProxyKnobs()

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def route_for(self, method: str, path: str) -> ProxyRule | None:
        for pattern, upstream in self.knobs.misroute.items():
            if fnmatch.fnmatchcase(path, pattern):
                return ProxyRule(pattern, upstream=upstream, name="misroute")
        if self.router is not None:
            return self.router(method, path)
        return next((rule for rule in self.rules if rule.matches(path)), None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.knobs.elb_status:
            return elb_error_page(self.knobs.elb_status)
        rule = self.route_for(request.method, request.path)
        if rule is None or (rule.upstream is None and rule.fixed is None):
            return _fixed(self.default)
        if rule.fixed is not None:
            return _fixed(rule.fixed)
        return await self._forward(request, rule.upstream or "")

    async def _forward(self, request: web.Request, upstream: str) -> web.StreamResponse:
        assert self.session is not None
        dropped = set(HOP_BY_HOP)
        if self.knobs.strip_auth:
            dropped.add("authorization")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        if self.knobs.host_header:
            headers["Host"] = self.knobs.host_header
        headers["X-Forwarded-For"] = request.remote or LOOPBACK
        headers["X-Forwarded-Proto"] = "https"
        target = upstream.rstrip("/") + request.rel_url.raw_path_qs
        body = await request.read()
        try:
            async with self.session.request(
                request.method,
                target,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.upstream_timeout),
            ) as answer:
                payload = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                return web.Response(status=answer.status, body=payload, headers=kept)
        except TimeoutError:
            return elb_error_page(504)
        except aiohttp.ClientError:
            return elb_error_page(502)


def _fixed(action: FixedResponse) -> web.Response:
    return web.Response(
        status=action.status,
        body=action.body.encode(),
        headers={"Content-Type": action.content_type, "Server": ELB_SERVER},
    )


def public_rules(api_url: str, mlflow_url: str) -> list[ProxyRule]:
    """The Hokusai registry's healthy routing: the proxy path to the API, the API path to MLflow."""
    return [
        ProxyRule("/api/mlflow/*", upstream=api_url, name="mlflow-proxy"),
        ProxyRule("/api/2.0/mlflow/*", upstream=mlflow_url, name="mlflow-direct"),
        ProxyRule("/health", upstream=api_url, name="health"),
    ]


__all__ = [
    "ELB_SERVER",
    "FixedResponse",
    "LoadBalancerProxy",
    "ProxyKnobs",
    "ProxyRule",
    "Router",
    "elb_error_page",
    "public_rules",
]
