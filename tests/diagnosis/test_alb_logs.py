"""The ALB access-log parser on lines in AWS's own format."""

import pytest

from bot.diagnosis.alb_logs import AlbLogParseError, format_line, parse_line, parse_lines

# Shapes from the AWS documentation ("Access log entries" examples).
FORWARDED = (
    "https 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 "
    "192.168.131.39:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 "
    '"GET https://www.example.com:443/ HTTP/1.1" "curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 '
    "TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/"
    '73e2d6bc24d8a067 "Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" '
    '"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 '
    '2018-07-02T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-" '
    "TID_1234abcd"
)
FIXED_RESPONSE = (
    "https 2018-11-30T22:22:48.364000Z app/my-loadbalancer/50dc6c495c0c9188 "
    "192.168.131.39:2817 - 0.000 0.001 0.000 404 - 34 366 "
    '"GET https://www.example.com:443/api/mlflow/x?y=1 HTTP/1.1" "Mozilla/5.0 (X11; \\"quoted\\")" '
    'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 - "Root=1-58337364-23a8c76965a2ef7629b185e3" '
    '"www.example.com" "-" 0 2018-11-30T22:22:48.364000Z "fixed-response" "-" "-" "-" "-" "-" "-"'
)


def test_forwarded_request_names_target_and_both_status_codes():
    entry = parse_line(FORWARDED)
    assert entry.type == "https"
    assert entry.elb == "app/my-loadbalancer/50dc6c495c0c9188"
    assert entry.target == "10.0.0.1:80"
    assert (entry.elb_status_code, entry.target_status_code) == (200, 200)
    assert entry.method == "GET" and entry.path == "/" and entry.host == "www.example.com"
    assert entry.user_agent == "curl/7.46.0"
    assert entry.target_group_arn.endswith("targetgroup/my-targets/73e2d6bc24d8a067")
    assert entry.actions_executed == "authenticate,forward"
    assert entry.fields["conn_trace_id"] == "TID_1234abcd"
    assert not entry.answered_by_load_balancer


def test_fixed_response_has_no_target_status_and_keeps_escaped_quotes():
    entry = parse_line(FIXED_RESPONSE)
    assert entry.elb_status_code == 404
    assert entry.target_status_code is None and entry.target is None
    assert entry.answered_by_load_balancer
    assert entry.path == "/api/mlflow/x"
    assert entry.user_agent == 'Mozilla/5.0 (X11; "quoted")'
    assert entry.target_group_arn is None
    assert entry.actions_executed == "fixed-response"


def test_extra_trailing_fields_from_newer_formats_are_kept():
    entry = parse_line(FORWARDED + ' "new-field" 42')
    assert entry.extra == ("new-field", "42")


@pytest.mark.parametrize(
    "line",
    ["", "not an access log line", FORWARDED.replace(" 200 200 ", " 200 OK ")],
)
def test_garbage_is_refused(line):
    with pytest.raises(AlbLogParseError):
        parse_line(line)


def test_parse_lines_counts_bad_lines_and_round_trips_format_line():
    written = format_line(
        time="2025-08-19T13:57:01.000000Z",
        elb="app/hokusai-main-development/abc",
        client="203.0.113.7:51234",
        target="10.0.1.12:8001",
        elb_status=404,
        target_status=404,
        method="GET",
        url="https://registry.hokus.ai:443/api/mlflow/api/2.0/mlflow/experiments/search",
        user_agent="python-requests/2.32.3",
        target_group_arn="arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/api/1",
        trace_id="Root=1-1-1",
        domain_name="registry.hokus.ai",
        matched_rule_priority="10",
    )
    entries, bad = parse_lines([written, "junk", "", FIXED_RESPONSE])
    assert bad == 1 and len(entries) == 2
    assert entries[0].target_status_code == 404
    assert entries[0].path == "/api/mlflow/api/2.0/mlflow/experiments/search"
    assert entries[0].matched_rule_priority == "10"
