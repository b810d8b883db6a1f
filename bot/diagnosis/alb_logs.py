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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

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
