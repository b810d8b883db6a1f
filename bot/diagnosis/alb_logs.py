"""Parse Application Load Balancer access-log lines into ``AlbLogEntry`` records.

The format is AWS's (space-separated, some fields double-quoted, ``-`` for "none"):

    https 2025-08-19T13:57:01.123456Z app/hokusai-main-development/50dc6c495c0c9188
    203.0.113.7:51234 10.0.1.12:8001 0.001 0.004 0.000 404 404 312 190
    "GET https://registry.hokus.ai:443/api/mlflow/api/2.0/mlflow/experiments/search HTTP/1.1"
    "python-requests/2.32.3" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2
    arn:aws:elasticloadbalancing:...:targetgroup/hokusai-api-development/73e2d6bc24d8a067
    "Root=1-58337262-36d228ad5d99923122bbe354" "registry.hokus.ai" "arn:..." 10 ...

A target status of ``-`` means no target answered: the load balancer produced the response
itself (a fixed-response rule, a redirect, or no healthy target).

Where the objects are: one per load balancer node every five minutes, named after the end of
its interval, under a prefix per UTC day (:func:`day_prefix`). :func:`list_window` lists only
the days a time window touches, starting after the window's first interval, so the cost
follows the window, not the bucket.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

AwsCall = Callable[..., Awaitable[Any]]

# Field names in the order ALB writes them; later AWS releases append fields, kept in `extra`.
FIELDS: tuple[str, ...] = (
    "type",
    "time",
    "elb",
    "client",
    "target",
    "request_processing_time",
    "target_processing_time",
    "response_processing_time",
    "elb_status_code",
    "target_status_code",
    "received_bytes",
    "sent_bytes",
    "request",
    "user_agent",
    "ssl_cipher",
    "ssl_protocol",
    "target_group_arn",
    "trace_id",
    "domain_name",
    "chosen_cert_arn",
    "matched_rule_priority",
    "request_creation_time",
    "actions_executed",
    "redirect_url",
    "error_reason",
    "target_port_list",
    "target_status_code_list",
    "classification",
    "classification_reason",
    "conn_trace_id",
)
_MIN_FIELDS = 13  # up to and including "request": anything shorter is not an access-log line
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


class AlbLogParseError(ValueError):
    """The line is not an ALB access-log line."""


@dataclass(frozen=True)
class AlbLogEntry:
    """One request as the load balancer recorded it. ``-`` fields become ``None``."""

    type: str
    time: str
    elb: str
    client: str | None
    target: str | None
    elb_status_code: int | None
    target_status_code: int | None
    method: str | None
    url: str | None
    protocol: str | None
    user_agent: str | None
    target_group_arn: str | None
    trace_id: str | None
    domain_name: str | None
    matched_rule_priority: str | None
    actions_executed: str | None
    error_reason: str | None
    fields: dict[str, str | None] = field(default_factory=dict, repr=False)
    extra: tuple[str, ...] = ()

    @property
    def path(self) -> str | None:
        """The request path without the query string, e.g. ``/api/mlflow/api/2.0/...``."""
        if not self.url:
            return None
        return urlsplit(self.url).path or "/"

    @property
    def host(self) -> str | None:
        return urlsplit(self.url).hostname if self.url else None

    @property
    def answered_by_load_balancer(self) -> bool:
        """True when no target produced the response (target status ``-``)."""
        return self.target_status_code is None


def _none(value: str | None) -> str | None:
    return None if value in (None, "-", "") else value


def _status(value: str | None) -> int | None:
    value = _none(value)
    return int(value) if value and value.isdigit() else None


def _tokens(line: str) -> list[str]:
    out = []
    for match in _TOKEN.finditer(line):
        quoted, bare = match.groups()
        out.append(quoted.replace('\\"', '"') if quoted is not None else bare)
    return out


def parse_line(line: str) -> AlbLogEntry:
    """Parse one access-log line.

    Raises:
        AlbLogParseError: the line has too few fields or a malformed status code.
    """
    tokens = _tokens(line.strip())
    if len(tokens) < _MIN_FIELDS:
        raise AlbLogParseError(f"expected at least {_MIN_FIELDS} fields, got {len(tokens)}")
    named = dict(zip(FIELDS, tokens, strict=False))
    extra = tuple(tokens[len(FIELDS) :])
    for key in ("elb_status_code", "target_status_code"):
        value = named.get(key)
        if value not in ("-", None) and not (value.isdigit() and len(value) == 3):
            raise AlbLogParseError(f"{key} is not a status code: {value!r}")
    method = url = protocol = None
    request = _none(named.get("request"))
    if request:
        parts = request.split(" ")
        if len(parts) == 3:
            method, url, protocol = parts
        else:
            url = request
    return AlbLogEntry(
        type=named["type"],
        time=named["time"],
        elb=named["elb"],
        client=_none(named.get("client")),
        target=_none(named.get("target")),
        elb_status_code=_status(named.get("elb_status_code")),
        target_status_code=_status(named.get("target_status_code")),
        method=_none(method),
        url=_none(url),
        protocol=_none(protocol),
        user_agent=_none(named.get("user_agent")),
        target_group_arn=_none(named.get("target_group_arn")),
        trace_id=_none(named.get("trace_id")),
        domain_name=_none(named.get("domain_name")),
        matched_rule_priority=_none(named.get("matched_rule_priority")),
        actions_executed=_none(named.get("actions_executed")),
        error_reason=_none(named.get("error_reason")),
        fields={k: _none(v) for k, v in named.items()},
        extra=extra,
    )


def parse_lines(lines: list[str] | str) -> tuple[list[AlbLogEntry], int]:
    """Parse many lines; returns the entries and the number of lines that did not parse."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    entries, bad = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            entries.append(parse_line(line))
        except AlbLogParseError:
            bad += 1
    return entries, bad


def format_line(
    *,
    time: str,
    elb: str,
    client: str,
    target: str | None,
    elb_status: int,
    target_status: int | None,
    method: str,
    url: str,
    user_agent: str,
    target_group_arn: str | None,
    trace_id: str,
    domain_name: str,
    matched_rule_priority: str,
    actions: str = "forward",
) -> str:
    """Write one line in the ALB format (the sandbox uses it to seed logs in S3)."""
    dash = "-"
    parts = [
        "https",
        time,
        elb,
        client,
        target or dash,
        "0.001",
        "0.004" if target else "-1",
        "0.000" if target else "-1",
        str(elb_status),
        str(target_status) if target_status is not None else dash,
        "312",
        "190",
        f'"{method} {url} HTTP/1.1"',
        f'"{user_agent}"',
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLSv1.2",
        target_group_arn or dash,
        f'"{trace_id}"',
        f'"{domain_name}"',
        '"-"',
        matched_rule_priority,
        time,
        f'"{actions}"',
        '"-"',
        '"-"',
        f'"{target or dash}"',
        f'"{target_status if target_status is not None else dash}"',
        '"-"',
        '"-"',
        dash,
    ]
    return " ".join(parts)


# -- where the load balancer writes its logs ----------------------------------------------------

# ALB names each object after the end of the five minutes it covers: ..._20250819T1340Z_...
_KEY_TIME = re.compile(r"_(\d{8}T\d{4}Z)_")
_INTERVAL_S = 5 * 60


@dataclass(frozen=True)
class LogObject:
    """One access-log object in S3 and the time its name gives (the end of its interval)."""

    key: str
    size: int
    ends_at: float  # epoch seconds

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "size": self.size, "ends_at": _iso(self.ends_at)}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def key_time(key: str) -> float | None:
    """The interval end an ALB log object's name carries, in epoch seconds; None if none."""
    match = _KEY_TIME.search(key.rsplit("/", 1)[-1])
    if not match:
        return None
    return float(calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%MZ")))


def day_prefix(load_balancer_arn: str, bucket_prefix: str, day: float) -> str:
    """The key prefix of one load balancer's objects for one UTC day.

    ``{prefix}/AWSLogs/{account}/elasticloadbalancing/{region}/{yyyy/mm/dd}/``
    ``{account}_elasticloadbalancing_{region}_app.{name}.{id}_`` — everything up to the time.
    """
    parts = load_balancer_arn.split(":")
    region, account = parts[3], parts[4]
    name, lb_id = load_balancer_arn.split(":loadbalancer/", 1)[1].split("/")[1:3]
    head = bucket_prefix.strip("/") + "/" if bucket_prefix.strip("/") else ""
    date = time.strftime("%Y/%m/%d", time.gmtime(day))
    return (
        f"{head}AWSLogs/{account}/elasticloadbalancing/{region}/{date}/"
        f"{account}_elasticloadbalancing_{region}_app.{name}.{lb_id}_"
    )


@dataclass
class WindowListing:
    """The log objects of a time window, newest first, and what listing them cost."""

    objects: list[LogObject] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    calls: int = 0


async def list_window(
    aws: AwsCall,
    bucket: str,
    bucket_prefix: str,
    load_balancer_arn: str,
    start: float,
    end: float,
) -> WindowListing:
    """The load balancer's log objects whose interval overlaps ``[start, end]``, newest first.

    Only the window's keys are listed: one prefix per UTC day the window touches (newest day
    first), starting after the window's first interval, every page followed to the end.
    """
    listing = WindowListing()
    first_day = start - start % 86400
    day = end - end % 86400
    while day >= first_day:
        prefix = day_prefix(load_balancer_arn, bucket_prefix, day)
        params: dict[str, object] = {"Bucket": bucket, "Prefix": prefix}
        if day == first_day:
            # Keys sort by the time in their name: skip the day before the window.
            params["StartAfter"] = prefix + time.strftime("%Y%m%dT%H%MZ", time.gmtime(start))
        listing.prefixes.append(prefix)
        token = None
        while True:
            page = await aws(
                "s3", "list_objects_v2", **params, **({"ContinuationToken": token} if token else {})
            )
            listing.calls += 1
            for item in page.get("Contents", []):
                ends_at = key_time(item["Key"])
                if ends_at is not None and start <= ends_at <= end + _INTERVAL_S:
                    listing.objects.append(
                        LogObject(item["Key"], int(item.get("Size", 0)), ends_at)
                    )
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if not token:
                break
        day -= 86400
    listing.objects.sort(key=lambda o: (o.ends_at, o.key), reverse=True)
    return listing
