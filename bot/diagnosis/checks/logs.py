"""Context checks over logs: recent error lines per service, and the ALB's access logs.

``logs.errors`` asks CloudWatch Logs once for lines that look like trouble (one OR filter
pattern, which real CloudWatch applies server-side), then classifies them again in Python —
moto ignores OR patterns, and the grouping needs the text anyway. Everything shown passes
through the redactor first.
"""

from __future__ import annotations

import gzip
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.diagnosis.alb_logs import parse_lines
from bot.diagnosis.checks.base import CheckContext, CheckResult, check
from bot.diagnosis.checks.edge import configured_load_balancers
from bot.redaction import default_redactor

WINDOW_MINUTES = 60
_MAX_PAGES = 5
_MAX_GROUPS = 10
_FIRST_LINES = 15
_SAMPLE_CHARS = 300
# CloudWatch filter syntax: ?term ORs terms; quoted terms may hold spaces.
FILTER_PATTERN = (
    '?ERROR ?CRITICAL ?FATAL ?Traceback ?Exception ?Error ?"authentication failed" ?refused '
    '?"timed out" ?" 404 " ?" 500 " ?" 502 " ?" 503 "'
)
_ERROR_LINE = re.compile(
    r"\b(ERROR|CRITICAL|FATAL)\b|\b[\w.]*(Error|Exception)\b:|authentication failed|"
    r"[Cc]onnection refused|timed out",
)
_ACCESS_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) HTTP/[\d.]+" (\d{3})')
_PATH_ID = re.compile(r"/(?:\d+|[0-9a-f]{16,}|[0-9a-f-]{36})(?=/|$)", re.I)
_EXCEPTION = re.compile(r"^([\w.]+(?:Error|Exception)): ")
_SUMMARY_CHARS = 160
_TRACEBACK = "Traceback (most recent call last)"
# Normalising a line into its kind: volatile parts become placeholders.
_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"^\[?\d{4}[-/]\d\d[-/]\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?: ?[+-]\d{4}|Z)?\]?\s*"
        ),
        "",
    ),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<id>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\?\S*"), "?<query>"),
    (re.compile(r"\b\d+\b"), "<n>"),
)


def normalise(line: str) -> str:
    """The kind of a line: timestamps, ids, addresses and numbers replaced."""
    text = line.strip()
    for pattern, replacement in _NORMALISERS:
        text = pattern.sub(replacement, text)
    return text[:200]


@dataclass
class LineGroup:
    """Similar log lines: how many, the newest one (redacted), and when."""

    kind: str  # "error" or "http"
    signature: str
    count: int = 0
    newest_ts: int = 0
    newest: str = ""
    streams: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "newest_at": _iso(self.newest_ts),
            "newest": self.newest[:_SAMPLE_CHARS],
            "streams": len(self.streams),
        }


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def classify(message: str) -> tuple[str, str] | None:
    """("error" | "http", signature) for a line worth reporting, else None."""
    text = message.strip()
    if not text or text.startswith(_TRACEBACK) or message[:1].isspace():
        return None  # a traceback's frames: its last line (the exception) is reported
    access = _ACCESS_LINE.search(text)
    if access:
        status = int(access.group(3))
        if status < 400:
            return None
        path = _PATH_ID.sub("/<id>", access.group(2).split("?", 1)[0])
        return "http", f"{access.group(1)} {path} -> {status}"
    if _ERROR_LINE.search(text):
        return "error", normalise(text)
    return None


def group_lines(events: list[dict[str, Any]]) -> tuple[list[LineGroup], int]:
    """Group events into kinds, newest group first; also count tracebacks."""
    redact = default_redactor().redact_text
    groups: dict[tuple[str, str], LineGroup] = {}
    tracebacks = 0
    for event in events:
        message = event.get("message", "")
        if message.strip().startswith(_TRACEBACK):
            tracebacks += 1
        kind = classify(message)
        if kind is None:
            continue
        group = groups.setdefault(kind, LineGroup(kind[0], redact(kind[1])))
        group.count += 1
        group.streams.add(event.get("logStreamName", ""))
        ts = int(event.get("timestamp", 0))
        if ts >= group.newest_ts:
            group.newest_ts = ts
            group.newest = redact(message.strip())
    ordered = sorted(groups.values(), key=lambda g: g.newest_ts, reverse=True)
    return ordered, tracebacks


def _headline(groups: list[LineGroup]) -> str:
    """The newest exception line (the cause, not the shutdown noise), shortened to its type
    and its end, where drivers put the reason."""
    candidates = [g for g in groups if _EXCEPTION.match(g.newest)] or groups
    newest = max(g.newest_ts for g in candidates)
    # A chained traceback logs its root cause first: within one burst, take the earliest line.
    burst = [g for g in candidates if newest - g.newest_ts <= 1000]
    line = min(burst, key=lambda g: g.newest_ts).newest
    if len(line) <= _SUMMARY_CHARS:
        return line
    match = _EXCEPTION.match(line)
    if not match:
        return line[: _SUMMARY_CHARS - 1] + "…"
    head = match.group(1)
    return f"{head}: …{line[-(_SUMMARY_CHARS - len(head) - 3) :].lstrip()}"


async def _filter_events(ctx: CheckContext, group: str, start_ms: int) -> tuple[list[dict], bool]:
    events: list[dict[str, Any]] = []
    token = None
    truncated = False
    for page in range(_MAX_PAGES):
        params: dict[str, Any] = {
            "logGroupName": group,
            "startTime": start_ms,
            "filterPattern": FILTER_PATTERN,
            "limit": 1000,
        }
        if token:
            params["nextToken"] = token
        resp = await ctx.aws("logs", "filter_log_events", **params)
        events.extend(resp.get("events", []))
        token = resp.get("nextToken")
        if not token:
            break
        if page == _MAX_PAGES - 1:
            truncated = True
    return events, truncated


async def _newest_stream_head(ctx: CheckContext, group: str) -> dict[str, Any] | None:
    """The first lines of the newest task's stream: where start-up failures show."""
    resp = await ctx.aws(
        "logs",
        "describe_log_streams",
        logGroupName=group,
        orderBy="LastEventTime",
        descending=True,
        limit=10,
    )
    streams = resp.get("logStreams", [])
    if not streams:
        return None
    newest = max(streams, key=lambda s: s.get("creationTime", 0))
    head = await ctx.aws(
        "logs",
        "get_log_events",
        logGroupName=group,
        logStreamName=newest["logStreamName"],
        startFromHead=True,
        limit=_FIRST_LINES,
    )
    redact = default_redactor().redact_text
    return {
        "stream": newest["logStreamName"],
        "created_at": _iso(newest.get("creationTime", 0)),
        "first_lines": [
            redact(e.get("message", ""))[:_SAMPLE_CHARS] for e in head.get("events", [])
        ],
    }


@check(
    id="logs.errors",
    layer="logs",
    per="service",
    timeout=15,
    reads=["logs:FilterLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents"],
    description="Recent error lines in the service's log group, grouped and counted, newest "
    "first, redacted; the first lines of the newest task's stream.",
)
async def errors(ctx: CheckContext) -> CheckResult:
    spec = ctx.service
    if spec is None or not spec.log_group:
        return CheckResult.skipped("no log_group configured for this service")
    minutes = int(getattr(spec, "log_window_minutes", None) or WINDOW_MINUTES)
    start_ms = int((time.time() - minutes * 60) * 1000)
    events, truncated = await _filter_events(ctx, spec.log_group, start_ms)
    groups, tracebacks = group_lines(events)
    head = await _newest_stream_head(ctx, spec.log_group)
    error_groups = [g for g in groups if g.kind == "error"]
    http_groups = [g for g in groups if g.kind == "http"]
    n_errors = sum(g.count for g in error_groups)
    n_http = sum(g.count for g in http_groups)
    evidence = {
        "log_group": spec.log_group,
        "window_minutes": minutes,
        "error_lines": n_errors,
        "http_error_responses": n_http,
        "tracebacks": tracebacks,
        "groups": [g.to_json() for g in groups[:_MAX_GROUPS]],
        "more_groups": max(0, len(groups) - _MAX_GROUPS),
        "truncated": truncated,
        "newest_stream": head,
    }
    if not groups:
        return CheckResult.passed(
            f"no error lines in {spec.log_group} in the last {minutes} min", **evidence
        )
    parts = []
    if n_errors:
        parts.append(
            f"{n_errors} error line(s) in {spec.log_group} ({len(error_groups)} kinds), "
            f"newest: {_headline(error_groups)}"
        )
    if n_http:
        top = max(http_groups, key=lambda g: g.count)
        parts.append(f"{n_http} request(s) answered 4xx/5xx, most: {top.signature} ×{top.count}")
    return CheckResult.warned(
        "; ".join(parts),
        hint=f"read the newest stream in {spec.log_group} from its first line",
        **evidence,
    )


# -- ALB access logs -------------------------------------------------------------------------

_MAX_OBJECTS = 5
_MAX_BYTES = 20 * 1024 * 1024


def _tg_name(arn: str | None) -> str:
    """``targetgroup/NAME/id`` -> NAME; ``-`` when no target group took the request."""
    if not arn or "/" not in arn:
        return "-"
    return arn.split("/")[-2]


def _route_matches(path: str, pattern: str) -> bool:
    regex = "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"
    return re.match(regex, path) is not None


async def _access_log_settings(ctx: CheckContext, lb_arn: str) -> dict[str, str]:
    attrs = await ctx.aws("elbv2", "describe_load_balancer_attributes", LoadBalancerArn=lb_arn)
    return {a["Key"]: a.get("Value", "") for a in attrs.get("Attributes", [])}


async def _newest_objects(ctx: CheckContext, bucket: str, prefix: str, lb: dict) -> list[dict]:
    account = lb["LoadBalancerArn"].split(":")[4]
    region = lb["LoadBalancerArn"].split(":")[3]
    head = prefix.strip("/") + "/" if prefix else ""
    base = f"{head}AWSLogs/{account}/elasticloadbalancing/{region}/"
    objects: list[dict[str, Any]] = []
    now = time.time()
    for days_back in (0, 1):
        day = time.strftime("%Y/%m/%d", time.gmtime(now - days_back * 86400))
        resp = await ctx.aws("s3", "list_objects_v2", Bucket=bucket, Prefix=f"{base}{day}/")
        objects.extend(resp.get("Contents", []))
        if objects:
            break
    name = lb["LoadBalancerName"]
    objects = [o for o in objects if f"app.{name}." in o["Key"]] or objects
    objects.sort(key=lambda o: o.get("LastModified") or 0, reverse=True)
    return objects[:_MAX_OBJECTS]


@check(
    id="logs.alb-access",
    layer="logs",
    timeout=20,
    reads=[
        "elbv2:DescribeLoadBalancers",
        "elbv2:DescribeLoadBalancerAttributes",
        "s3:ListObjectsV2",
        "s3:GetObject",
    ],
    description="ALB access logs from S3: for the routes' paths, counts by ELB status, target "
    "status and target, telling the load balancer's own answers from a target's.",
)
async def alb_access(ctx: CheckContext) -> CheckResult:
    if not ctx.env.load_balancers:
        return CheckResult.skipped("no load balancers configured")
    lbs = []
    disabled = []
    for lb in await configured_load_balancers(ctx):
        settings = await _access_log_settings(ctx, lb["LoadBalancerArn"])
        if settings.get("access_logs.s3.enabled") == "true" and settings.get(
            "access_logs.s3.bucket"
        ):
            lbs.append((lb, settings))
        else:
            disabled.append(lb["LoadBalancerName"])
    if not lbs:
        return CheckResult.skipped(
            "access logs are not enabled on "
            f"{', '.join(disabled) or 'any configured load balancer'} (access_logs.s3.enabled)",
            disabled=disabled,
        )
    entries = []
    read_objects = []
    bad_lines = 0
    for lb, settings in lbs:
        bucket, prefix = (
            settings["access_logs.s3.bucket"],
            settings.get("access_logs.s3.prefix", ""),
        )
        for obj in await _newest_objects(ctx, bucket, prefix, lb):
            if obj.get("Size", 0) > _MAX_BYTES:
                continue
            body = await ctx.aws("s3", "get_object", Bucket=bucket, Key=obj["Key"])
            raw = body["Body"].read()
            text = (gzip.decompress(raw) if obj["Key"].endswith(".gz") else raw).decode(
                "utf-8", "replace"
            )
            parsed, bad = parse_lines(text)
            entries.extend(parsed)
            bad_lines += bad
            read_objects.append(f"s3://{bucket}/{obj['Key']}")
    routes = []
    findings = []
    for route in ctx.env.routes:
        matched = [e for e in entries if e.path and _route_matches(e.path, route.path)]
        by_status = Counter(
            (e.elb_status_code, e.target_status_code if e.target_status_code else "-")
            for e in matched
        )
        by_target = Counter((e.target or "-", _tg_name(e.target_group_arn)) for e in matched)
        lb_answered = [
            e for e in matched if e.answered_by_load_balancer and (e.elb_status_code or 0) >= 400
        ]
        target_errors = [e for e in matched if (e.target_status_code or 0) >= 400]
        routes.append(
            {
                "route": route.name,
                "path": route.path,
                "requests": len(matched),
                "by_status": [
                    {"elb_status": s[0], "target_status": s[1], "count": n}
                    for s, n in by_status.most_common()
                ],
                "by_target": [
                    {"target": t[0], "target_group": t[1], "count": n}
                    for t, n in by_target.most_common()
                ],
            }
        )
        if target_errors:
            top = Counter((e.target_status_code, e.target) for e in target_errors).most_common(1)[0]
            tg = Counter(_tg_name(e.target_group_arn) for e in target_errors).most_common(1)[0][0]
            findings.append(
                f"{route.name}: {len(target_errors)}/{len(matched)} answered {top[0][0]} by target "
                f"{top[0][1]} ({tg}), not by the load balancer"
            )
        elif lb_answered:
            codes = Counter(e.elb_status_code for e in lb_answered).most_common(1)[0][0]
            findings.append(
                f"{route.name}: {len(lb_answered)}/{len(matched)} answered {codes} by the load "
                "balancer itself (no target)"
            )
    evidence = {"objects": read_objects, "unparsed_lines": bad_lines, "routes": routes}
    if not entries:
        return CheckResult.skipped(
            "access logging is on but no recent log objects were found", **evidence
        )
    if findings:
        return CheckResult.warned("; ".join(findings), **evidence)
    counted = sum(r["requests"] for r in routes)
    return CheckResult.passed(
        f"{counted} recent request(s) for the routes' paths, none answered 4xx/5xx", **evidence
    )
