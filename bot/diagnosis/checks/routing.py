"""Routing hop: evaluate the listener rules for each route's probe the way an ALB does.

Rules are tried in priority order (lowest number first, the default rule last); within a rule
every condition must match, and within a condition any value. ``path-pattern`` is
case-sensitive and sees the path only (no query string); ``host-header`` and header values are
case-insensitive; ``*`` matches any run of characters and ``?`` exactly one. The first matching
rule's action is where the request goes. A route fails when that is another service's target
group, a fixed response, a redirect away, or nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from botocore.exceptions import ClientError

from bot.diagnosis.checks.base import (
    CheckContext,
    CheckOutcome,
    CheckResult,
    Classification,
    Status,
    check,
)
from bot.diagnosis.checks.dns import ELBV2_PAGE, all_load_balancers

_TERMINAL = ("forward", "fixed-response", "redirect")
_UNFINISHED = (Status.ERROR, Status.TIMEOUT)


# -- the ALB's matching rules ------------------------------------------------------------------


@lru_cache(maxsize=512)
def _wildcard(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    """ALB wildcard matching: ``*`` any characters, ``?`` one; nothing else is special."""
    return bool(_wildcard(pattern, case_sensitive).match(value))


@dataclass(frozen=True)
class Probe:
    """The request a route's probe makes, as the load balancer sees it."""

    host: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def for_route(cls, hostname: str, probe: str, auth_header: str | None = None) -> Probe:
        parts = urlsplit(probe)
        headers = [("host", hostname)]
        if auth_header:
            headers.append((auth_header.lower(), "<api key>"))
        return cls(
            host=hostname,
            path=parts.path or "/",
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            headers=tuple(headers),
        )

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


def _values(condition: dict[str, Any], config_key: str) -> list[Any]:
    return condition.get(config_key, {}).get("Values") or condition.get("Values") or []


def condition_matches(condition: dict[str, Any], probe: Probe) -> bool:
    """Whether one rule condition matches ``probe`` (values are OR'd)."""
    kind = condition.get("Field")
    if kind == "path-pattern":
        values = _values(condition, "PathPatternConfig")
        return any(wildcard_match(v, probe.path, case_sensitive=True) for v in values)
    if kind == "host-header":
        values = _values(condition, "HostHeaderConfig")
        return any(wildcard_match(v, probe.host, case_sensitive=False) for v in values)
    if kind == "http-request-method":
        return probe.method in _values(condition, "HttpRequestMethodConfig")
    if kind == "query-string":
        for pair in condition.get("QueryStringConfig", {}).get("Values", []):
            key, value = pair.get("Key"), pair.get("Value", "")
            for k, v in probe.query:
                key_ok = key is None or wildcard_match(key, k, case_sensitive=False)
                if key_ok and wildcard_match(value, v, case_sensitive=False):
                    return True
        return False
    if kind == "http-header":
        config = condition.get("HttpHeaderConfig", {})
        value = probe.header(config.get("HttpHeaderName", ""))
        return value is not None and any(
            wildcard_match(v, value, case_sensitive=False) for v in config.get("Values", [])
        )
    # source-ip depends on who calls; assume the caller is allowed (stated in the evidence).
    return kind == "source-ip"


def describe_condition(condition: dict[str, Any]) -> str:
    kind = condition.get("Field", "?")
    if kind == "path-pattern":
        return "path " + " | ".join(_values(condition, "PathPatternConfig"))
    if kind == "host-header":
        return "host " + " | ".join(_values(condition, "HostHeaderConfig"))
    if kind == "http-request-method":
        return "method " + " | ".join(_values(condition, "HttpRequestMethodConfig"))
    if kind == "query-string":
        pairs = condition.get("QueryStringConfig", {}).get("Values", [])
        return "query " + " | ".join(f"{p.get('Key') or '*'}={p.get('Value')}" for p in pairs)
    if kind == "http-header":
        config = condition.get("HttpHeaderConfig", {})
        return f"header {config.get('HttpHeaderName')}: " + " | ".join(config.get("Values", []))
    if kind == "source-ip":
        return "source " + " | ".join(_values(condition, "SourceIpConfig"))
    return kind


def target_group_name(arn: str) -> str:
    """``arn:...:targetgroup/NAME/ID`` -> NAME."""
    return arn.split(":targetgroup/", 1)[-1].split("/", 1)[0]


@dataclass(frozen=True)
class Forward:
    target_group_arn: str
    weight: int

    @property
    def name(self) -> str:
        return target_group_name(self.target_group_arn)


@dataclass
class ListenerRule:
    """One listener rule as the ALB evaluates it."""

    arn: str
    priority: int | None  # None: the default rule
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> ListenerRule:
        default = raw.get("IsDefault") or raw.get("Priority") == "default"
        return cls(
            arn=raw.get("RuleArn", ""),
            priority=None if default else int(raw["Priority"]),
            conditions=list(raw.get("Conditions", [])),
            actions=sorted(raw.get("Actions", []), key=lambda a: a.get("Order", 0)),
        )

    @property
    def label(self) -> str:
        return "the default rule" if self.priority is None else f"rule {self.priority}"

    def matches(self, probe: Probe) -> bool:
        return all(condition_matches(c, probe) for c in self.conditions)

    def describe_conditions(self) -> str:
        if self.priority is None:
            return "anything no other rule matched"
        return ", ".join(describe_condition(c) for c in self.conditions) or "no conditions"

    @property
    def action(self) -> dict[str, Any]:
        """The action that answers the request (authenticate-* actions come before it)."""
        return next((a for a in self.actions if a.get("Type") in _TERMINAL), {})

    @property
    def forwards(self) -> list[Forward]:
        action = self.action
        if action.get("Type") != "forward":
            return []
        groups = action.get("ForwardConfig", {}).get("TargetGroups")
        if groups:
            return [Forward(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups]
        return [Forward(action["TargetGroupArn"], 1)] if action.get("TargetGroupArn") else []

    def describe_action(self) -> str:
        action = self.action
        kind = action.get("Type")
        if kind == "forward":
            forwards = self.forwards
            if len(forwards) == 1:
                return f"forward to {forwards[0].name}"
            return "forward to " + ", ".join(f"{f.name} (weight {f.weight})" for f in forwards)
        if kind == "fixed-response":
            config = action.get("FixedResponseConfig", {})
            body = config.get("MessageBody")
            return f"fixed response {config.get('StatusCode')}" + (f" {body!r}" if body else "")
        if kind == "redirect":
            config = action.get("RedirectConfig", {})
            where = "{}://{}:{}{}".format(
                config.get("Protocol", "#{protocol}"),
                config.get("Host", "#{host}"),
                config.get("Port", "#{port}"),
                config.get("Path", "/#{path}"),
            )
            return f"redirect {config.get('StatusCode', '')} to {where}".replace("  ", " ")
        return f"{kind or 'no'} action"

    def to_evidence(self) -> dict[str, Any]:
        return {
            "priority": "default" if self.priority is None else self.priority,
            "conditions": self.describe_conditions(),
            "action": self.describe_action(),
            "arn": self.arn,
        }


def sort_rules(rules: list[ListenerRule]) -> list[ListenerRule]:
    """Priority order, the default rule last (describe_rules does not promise an order)."""
    return sorted(rules, key=lambda r: (r.priority is None, r.priority or 0))


def evaluate(rules: list[ListenerRule], probe: Probe) -> ListenerRule | None:
    """The rule that answers ``probe``: the first match in priority order."""
    return next((r for r in sort_rules(rules) if r.matches(probe)), None)


# -- who owns a target group -------------------------------------------------------------------


async def target_group_owners(ctx: CheckContext, arns: set[str]) -> dict[str, str]:
    """Target group ARN -> ECS service name: the services' own load-balancer settings first,
    then the naming convention (``<service>-tg``)."""
    env = ctx.env
    services = [s.name for s in env.ecs.services] if env.ecs else []
    owners: dict[str, str] = {}
    if env.ecs and services:
        try:
            found = await ctx.aws(
                "ecs", "describe_services", cluster=env.ecs.cluster, services=services
            )
            for service in found.get("services", []):
                for lb in service.get("loadBalancers", []):
                    if lb.get("targetGroupArn"):
                        owners[lb["targetGroupArn"]] = service["serviceName"]
        except ClientError:
            pass  # no cluster yet or not readable: the names still tell
    for arn in arns - owners.keys():
        name = target_group_name(arn)
        for service in sorted(services, key=len, reverse=True):
            if name == service or name.startswith(service + "-") or f"{service}-tg"[:32] == name:
                owners[arn] = service
                break
    return owners


# -- the check ---------------------------------------------------------------------------------


@dataclass
class _LoadBalancerRef:
    name: str
    arn: str
    listeners: dict[int, str] = field(default_factory=dict)


def _upstream_pass(outcome: CheckOutcome | None) -> bool:
    return outcome is not None and outcome.status in (Status.PASS, Status.WARN)


async def _candidate_load_balancers(ctx: CheckContext) -> tuple[list[_LoadBalancerRef], str]:
    """The load balancer the public name aliases, else every configured one that exists."""
    edges = {o.subject: o for o in ctx.upstream_all("edge.load-balancer")}
    alias = ctx.upstream("dns.route53-alias")
    if _upstream_pass(alias) and alias.result.data.get("load_balancer_arn"):
        data = alias.result.data
        edge = edges.get(data["load_balancer_name"])
        listeners = edge.result.data.get("listeners", {}) if edge else {}
        ref = _LoadBalancerRef(data["load_balancer_name"], data["load_balancer_arn"], listeners)
        return [ref], "the Route 53 alias"
    refs = []
    for name in ctx.env.load_balancers:
        edge = edges.get(name)
        if edge is not None and edge.result.data.get("load_balancer_arn"):
            data = edge.result.data
            refs.append(_LoadBalancerRef(name, data["load_balancer_arn"], data["listeners"]))
    if not refs and not edges:
        refs = [
            _LoadBalancerRef(lb["LoadBalancerName"], lb["LoadBalancerArn"])
            for lb in await all_load_balancers(ctx)
            if lb["LoadBalancerName"] in ctx.env.load_balancers
        ]
    return refs, "the configured load balancers"


async def _listeners(ctx: CheckContext, lb: _LoadBalancerRef) -> dict[int, str]:
    if lb.listeners:
        return {int(port): arn for port, arn in lb.listeners.items()}
    found = await ctx.aws("elbv2", "describe_listeners", LoadBalancerArn=lb.arn)
    return {int(listener["Port"]): listener["ListenerArn"] for listener in found["Listeners"]}


async def _rules(ctx: CheckContext, listener_arn: str) -> list[ListenerRule]:
    found, marker = [], None
    while True:
        params: dict[str, Any] = {"PageSize": ELBV2_PAGE}
        if marker:
            params["Marker"] = marker
        page = await ctx.aws("elbv2", "describe_rules", ListenerArn=listener_arn, **params)
        found.extend(ListenerRule.from_api(r) for r in page.get("Rules", []))
        marker = page.get("NextMarker")
        if not marker:
            return found


@dataclass
class _Evaluation:
    load_balancer: str
    port: int
    matched: ListenerRule | None
    rules: list[ListenerRule]
    hops: list[str] = field(default_factory=list)  # e.g. "80: redirect to 443"
    redirect_loop: bool = False  # the listeners redirect to each other and never answer


async def _evaluate_on(
    ctx: CheckContext, lb: _LoadBalancerRef, port: int, probe: Probe
) -> _Evaluation:
    listeners = await _listeners(ctx, lb)
    hops = []
    for _ in range(2):  # at most one redirect, HTTP -> HTTPS
        if port not in listeners:
            return _Evaluation(lb.name, port, None, [], hops)
        rules = await _rules(ctx, listeners[port])
        matched = evaluate(rules, probe)
        action = matched.action if matched else {}
        redirect_port = action.get("RedirectConfig", {}).get("Port")
        same_place = action.get("RedirectConfig", {}).get("Host", "#{host}") == "#{host}"
        if action.get("Type") == "redirect" and same_place and redirect_port:
            target = int(redirect_port) if redirect_port.isdigit() else port
            if target != port:
                hops.append(f"{port}: {matched.describe_action()}")
                port = target
                continue
        return _Evaluation(lb.name, port, matched, rules, hops)
    return _Evaluation(lb.name, port, None, [], hops, redirect_loop=True)


def _shadowed(
    ev: _Evaluation, probe: Probe, expected: set[str]
) -> tuple[ListenerRule | None, bool]:
    """The rule that would have sent the probe to the right service, and whether it matches."""
    wanted = [
        r for r in sort_rules(ev.rules) if {f.target_group_arn for f in r.forwards} & expected
    ]
    for rule in wanted:
        if rule.matches(probe):
            return rule, True
    return (wanted[0], False) if wanted else (None, False)


# Up to this many rules, the evidence lists them all; past it, the ones that explain the answer.
RULES_SHOWN = 12
_NEIGHBOURS = 1  # rules either side (by priority) of the matching and the wanted rule


def rules_shown(
    rules: list[ListenerRule], matched: ListenerRule | None, wanted: ListenerRule | None
) -> dict[str, Any]:
    """The listener's rules for the evidence, bounded whatever the listener holds.

    A short list is shown whole. A long one keeps the rule that matched, the rule that should
    have, their neighbours by priority and the default rule, in priority order, and says how
    many it left out: ``{"rules_in_order": [...], "more_rules": "and 95 more of ..."}``.
    """
    ordered = sort_rules(rules)
    if len(ordered) <= RULES_SHOWN:
        return {"rules_in_order": [r.to_evidence() for r in ordered]}
    keep = {len(ordered) - 1}  # the default rule (its action answers what nothing matched)
    for rule in (matched, wanted):
        if rule is not None and rule in ordered:
            at = ordered.index(rule)
            keep.update(range(max(0, at - _NEIGHBOURS), min(len(ordered), at + _NEIGHBOURS + 1)))
    if len(keep) == 1:
        keep.update(range(min(len(ordered) - 1, RULES_SHOWN - 1)))  # nothing matched: the top
    shown = [ordered[i] for i in sorted(keep)]
    left_out = len(ordered) - len(shown)
    return {
        "rules_in_order": [r.to_evidence() for r in shown],
        "more_rules": f"and {left_out} more of the listener's {len(ordered)} rules",
    }


@check(
    id="routing.listener-rules",
    layer="routing",
    description="Listener rules send each route's probe path to the route's service.",
    reads=[
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "ecs:DescribeServices",
    ],
    timeout=15,
    needs=["dns.route53-alias", "edge.load-balancer"],
    per="route",
)
async def listener_rules(ctx: CheckContext) -> CheckResult:
    route = ctx.route
    env = ctx.env
    auth_header = env.auth.header if env.auth else None
    probe = Probe.for_route(env.public.hostname, route.probe, auth_header)
    port = env.public.port
    lbs, source = await _candidate_load_balancers(ctx)
    unread = [o.id for o in ctx.upstream_all("edge.load-balancer") if o.status in _UNFINISHED]
    if not lbs and unread:
        # The load balancers could not be read: that says nothing about whether they exist.
        return CheckResult.skipped(
            f"not checked: {route.path}: the load balancers could not be read "
            f"({', '.join(unread)} did not finish)",
            route=route.name,
        )
    if not lbs:
        return CheckResult.failed(
            f"{route.path}: none of the configured load balancers exists to route it",
            Classification.INFRASTRUCTURE,
            hint="see the edge checks",
            route=route.name,
        )
    evaluations = [await _evaluate_on(ctx, lb, port, probe) for lb in lbs]
    loops = [ev for ev in evaluations if ev.redirect_loop]
    if loops and len(loops) == len(evaluations):
        ev = loops[0]
        return CheckResult.failed(
            f"{route.path}: {ev.load_balancer}'s listeners redirect to each other "
            f"({'; '.join(ev.hops)}), so the request never reaches a target",
            Classification.CONFIGURATION,
            hint="make one listener forward instead of redirecting back",
            route=route.name,
            load_balancer=ev.load_balancer,
            redirects=ev.hops,
        )
    evaluations = [ev for ev in evaluations if not ev.redirect_loop]
    arns = {f.target_group_arn for ev in evaluations for r in ev.rules for f in r.forwards}
    owners = await target_group_owners(ctx, arns)
    expected = {arn for arn, service in owners.items() if service == route.service}
    results = [_judge(ctx, ev, probe, owners, expected, source) for ev in evaluations]
    good = next((r for r in results if r.status is Status.PASS), None)
    return good or next((r for r in results if r.status is Status.WARN), results[0])


def _judge(
    ctx: CheckContext,
    ev: _Evaluation,
    probe: Probe,
    owners: dict[str, str],
    expected: set[str],
    source: str,
) -> CheckResult:
    route = ctx.route
    where = f"{ev.load_balancer}:{ev.port}"
    evidence: dict[str, Any] = {
        "route": route.name,
        "probe": {"method": probe.method, "host": probe.host, "path": probe.path},
        "load_balancer": ev.load_balancer,
        "load_balancer_from": source,
        "listener_port": ev.port,
        "expected_service": route.service,
        "expected_target_groups": sorted(target_group_name(a) for a in expected),
        **rules_shown(ev.rules, ev.matched, _shadowed(ev, probe, expected)[0]),
    }
    if ev.hops:
        evidence["redirects"] = ev.hops
    if any(c.get("Field") == "source-ip" for r in ev.rules for c in r.conditions):
        evidence["assumed"] = "source-ip conditions were taken to match the caller"
    matched = ev.matched
    if matched is None:
        return CheckResult.failed(
            f"{route.path}: {ev.load_balancer} has no listener on port {ev.port}, so nothing "
            "answers it",
            Classification.CONFIGURATION,
            hint=f"add a listener on {ev.port} to {ev.load_balancer}",
            **evidence,
        )
    evidence["matched_rule"] = matched.to_evidence()
    forwards = matched.forwards
    data = {
        "target_group_arns": [f.target_group_arn for f in forwards if f.weight > 0],
        "expected_target_group_arns": sorted(expected),
        "load_balancer": ev.load_balancer,
        "matched_priority": matched.priority,
    }
    rule_text = f"{matched.label} ({matched.describe_conditions()})"
    if not forwards:
        answer = matched.describe_action()
        result = CheckResult.failed(
            f"{route.path} is answered by {where} itself: {rule_text} -> {answer}; "
            f"{_no_route_reason(ev, probe, expected, route.service)}",
            Classification.CONFIGURATION,
            hint=f"add or fix the rule that forwards {route.path} to {route.service}",
            **evidence,
        )
        result.data.update(data)
        return result
    live = [f for f in forwards if f.weight > 0] or forwards
    landing = {f.target_group_arn: owners.get(f.target_group_arn) for f in live}
    right = [a for a, service in landing.items() if service == route.service]
    names = ", ".join(
        f"{target_group_name(a)} ({s or 'no known service'})" for a, s in landing.items()
    )
    if right and len(right) == len(landing):
        result = CheckResult.passed(
            f"{route.path} -> {names} via {rule_text} on {where}", **evidence
        )
    elif right:
        wrong = [target_group_name(a) for a in landing if a not in right]
        result = CheckResult.warned(
            f"{route.path} is split: part goes to {route.service}, part to {', '.join(wrong)} "
            f"via {rule_text}",
            hint="check the forward weights of the rule",
            **evidence,
        )
    else:
        result = CheckResult.failed(
            f"{route.path} is sent to {names} by {rule_text} on {where}, not to {route.service}"
            f"{_shadow_text(ev, probe, expected, matched)}",
            Classification.CONFIGURATION,
            hint=_wrong_service_hint(ev, probe, expected, matched, route.service),
            **evidence,
        )
    result.data.update(data)
    return result


def _shadow_text(ev: _Evaluation, probe: Probe, expected: set[str], matched: ListenerRule) -> str:
    rule, matches = _shadowed(ev, probe, expected)
    if rule is None:
        return "; no rule forwards to its target group"
    if matches:
        return f"; {rule.label} ({rule.describe_conditions()}) is shadowed by it"
    return f"; {rule.label} forwards there but its conditions ({rule.describe_conditions()}) miss"


def _no_route_reason(ev: _Evaluation, probe: Probe, expected: set[str], service: str) -> str:
    rule, _ = _shadowed(ev, probe, expected)
    if ev.matched is not None and ev.matched.priority is None:
        # The default action answers: no rule matches at all. A rule that forwards to the
        # service for other paths (a /healthz check) is not the one that went wrong.
        missing = f"; no rule forwards to {service}" if rule is None else ""
        return "no rule matches; the listener's default action answers" + missing
    if rule is None:
        return f"no rule forwards to {service}"
    return (
        f"{rule.label} forwards to {service} but its conditions ({rule.describe_conditions()}) miss"
    )


def _wrong_service_hint(
    ev: _Evaluation, probe: Probe, expected: set[str], matched: ListenerRule, service: str
) -> str:
    rule, matches = _shadowed(ev, probe, expected)
    if rule is not None and matches:
        return (
            f"give {rule.label} a better (lower) priority than {matched.priority}, or narrow "
            f"{matched.label}'s conditions so they no longer catch these paths"
        )
    return f"add a rule forwarding this path to {service}'s target group above {matched.label}"
