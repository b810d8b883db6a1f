"""Context checks over logs: recent error lines per service, and the ALB's access logs.

``logs.errors`` asks CloudWatch Logs for lines that look like trouble (one OR filter pattern,
which real CloudWatch applies server-side), newest first and up to a budget (see
``bot.diagnosis.log_window``), then classifies them again in Python — moto ignores OR
patterns, and the grouping needs the text anyway. Lines are redacted before they are grouped,
so a secret never makes a kind of its own; counts are exact when the whole window was read and
marked ``≥`` when it was not.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.diagnosis.alb_logs import list_window, parse_lines
from bot.diagnosis.aws_cache import gather_bounded
from bot.diagnosis.checks.base import CheckContext, CheckResult, check
from bot.diagnosis.checks.edge import configured_load_balancers
from bot.diagnosis.log_window import WindowRead, read_newest
from bot.offload import offload
from bot.redaction import default_redactor

WINDOW_MINUTES = 60
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
    # Request, trace and task ids: long words that mix letters and digits.
    (re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]{10,}\b", re.I), "<id>"),
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


def redacted_messages(events: list[dict[str, Any]]) -> list[str]:
    """Each event's message, redacted together with the other events of its stream in time
    order: a secret written across events (a private key one line per event, a long line the
    log driver split) is caught in every piece, and a key's start ending an event is hidden
    even when the event with its rest was not read."""
    streams: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        streams.setdefault(event.get("logStreamName", ""), []).append(index)
    out = [""] * len(events)
    for indexes in streams.values():
        indexes.sort(key=lambda i: int(events[i].get("timestamp", 0)))
        parts = [events[i].get("message", "") for i in indexes]
        for i, message in zip(indexes, default_redactor().redact_parts(parts), strict=True):
            out[i] = message
    return out


def group_lines(events: list[dict[str, Any]]) -> tuple[list[LineGroup], int]:
    """Group events into kinds, newest group first; also count tracebacks. Only redacted
    text (``redacted_messages``) is classified, grouped and kept."""
    groups: dict[tuple[str, str], LineGroup] = {}
    tracebacks = 0
    # Secrets are folded before grouping: each line carrying a different one is the same kind.
    for event, message in zip(events, redacted_messages(events), strict=True):
        if message.strip().startswith(_TRACEBACK):
            tracebacks += 1
        kind = classify(message)
        if kind is None:
            continue
        group = groups.setdefault(kind, LineGroup(kind[0], kind[1]))
        group.count += 1
        group.streams.add(event.get("logStreamName", ""))
        ts = int(event.get("timestamp", 0))
        if ts >= group.newest_ts:
            group.newest_ts = ts
            group.newest = message.strip()
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
    lines = default_redactor().redact_parts([e.get("message", "") for e in head.get("events", [])])
    return {
        "stream": newest["logStreamName"],
        "created_at": _iso(newest.get("creationTime", 0)),
        "first_lines": [line[:_SAMPLE_CHARS] for line in lines],
    }


def _what_was_read(read: WindowRead) -> str:
    """``; read the newest 2,000 lines (since 10:42 UTC)`` when the window was not read whole."""
    if read.complete:
        return ""
    since = time.strftime("%H:%M", time.gmtime(read.read_from_ms / 1000))
    return f"; read the newest {len(read.events):,} lines (since {since} UTC)"


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
    end_ms = int(time.time() * 1000)

    async def grouped() -> tuple[WindowRead, tuple[list[LineGroup], int]]:
        read = await read_newest(
            ctx.aws, spec.log_group, end_ms - minutes * 60_000, end_ms, pattern=FILTER_PATTERN
        )
        # Up to thousands of lines to redact and fold: in the CPU pool, off the event loop.
        return read, await offload(group_lines, read.events)

    (read, (groups, tracebacks)), head = await asyncio.gather(
        grouped(), _newest_stream_head(ctx, spec.log_group)
    )
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
        "lines_read": len(read.events),
        "read_since": _iso(read.read_from_ms),
        # Counts are exact when the whole window was read, lower bounds otherwise.
        "truncated": not read.complete,
        "newest_stream": head,
    }
    if not groups:
        return CheckResult.passed(
            f"no error lines in {spec.log_group} in the last {minutes} min{_what_was_read(read)}",
            **evidence,
        )
    at_least = "" if read.complete else "≥ "
    parts = []
    if n_errors:
        parts.append(
            f"{at_least}{n_errors:,} error line(s) in {spec.log_group} in the last {minutes} min "
            f"({len(error_groups)} kinds), newest: {_headline(error_groups)}"
        )
    if n_http:
        top = max(http_groups, key=lambda g: g.count)
        parts.append(
            f"{at_least}{n_http:,} request(s) answered 4xx/5xx, most: {top.signature} ×{top.count}"
        )
    return CheckResult.warned(
        "; ".join(parts) + _what_was_read(read),
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


async def _read_object(ctx: CheckContext, bucket: str, key: str) -> str:
    body = await ctx.aws("s3", "get_object", Bucket=bucket, Key=key)
    raw = body["Body"].read()
    return (gzip.decompress(raw) if key.endswith(".gz") else raw).decode("utf-8", "replace")


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
    found = await configured_load_balancers(ctx)
    every = await gather_bounded(_access_log_settings(ctx, lb["LoadBalancerArn"]) for lb in found)
    for lb, settings in zip(found, every, strict=True):
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
    end = time.time()
    start = end - WINDOW_MINUTES * 60
    listings = await gather_bounded(
        list_window(
            ctx.aws,
            settings["access_logs.s3.bucket"],
            settings.get("access_logs.s3.prefix", ""),
            lb["LoadBalancerArn"],
            start,
            end,
        )
        for lb, settings in lbs
    )
    # The newest objects of every load balancer together, newest first, within the budget.
    in_window = sorted(
        (
            (obj, settings["access_logs.s3.bucket"])
            for (_, settings), listing in zip(lbs, listings, strict=True)
            for obj in listing.objects
        ),
        key=lambda pair: pair[0].ends_at,
        reverse=True,
    )
    chosen = [(o, b) for o, b in in_window if o.size <= _MAX_BYTES][:_MAX_OBJECTS]
    texts = await gather_bounded(_read_object(ctx, bucket, o.key) for o, bucket in chosen)
    entries = []
    bad_lines = 0
    for text in texts:
        parsed, bad = parse_lines(text)
        entries.extend(parsed)
        bad_lines += bad
    read_objects = [f"s3://{bucket}/{o.key}" for o, bucket in chosen]
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
    evidence = {
        "objects": read_objects,
        "objects_in_window": len(in_window),
        "window_minutes": WINDOW_MINUTES,
        "unparsed_lines": bad_lines,
        "routes": routes,
    }
    if not entries:
        return CheckResult.skipped(
            f"access logging is on but no log objects were written in the last "
            f"{WINDOW_MINUTES} min",
            **evidence,
        )
    read = (
        f"; read the newest {len(chosen)} of {len(in_window)} log objects of the last "
        f"{WINDOW_MINUTES} min"
        if len(chosen) < len(in_window)
        else ""
    )
    if findings:
        return CheckResult.warned("; ".join(findings) + read, **evidence)
    counted = sum(r["requests"] for r in routes)
    return CheckResult.passed(
        f"{counted} recent request(s) for the routes' paths, none answered 4xx/5xx{read}",
        **evidence,
    )
