"""The documented IAM policy: the checks' reads, nothing else."""

from __future__ import annotations

import pytest

import bot.diagnosis.checks
from bot.diagnosis.aws import is_read
from bot.diagnosis.checks.base import Check, CheckResult
from bot.diagnosis.iam import iam_policy


async def _noop(ctx):
    return CheckResult.passed("ok")


def _check(check_id: str, *reads: str) -> Check:
    return Check(id=check_id, layer="edge", description=check_id, run=_noop, reads=reads)


def test_policy_lists_each_read_once_sorted_with_iam_prefixes():
    policy = iam_policy(
        [
            _check("edge.a", "elbv2:DescribeRules", "elbv2:DescribeLoadBalancers"),
            _check("edge.b", "elasticloadbalancing:DescribeRules", "route53:ListHostedZones"),
            _check("logs.c", "s3:ListObjectsV2", "s3:GetObject"),
        ]
    )
    everywhere, objects = policy["Statement"]
    assert everywhere["Effect"] == "Allow" and everywhere["Resource"] == "*"
    assert everywhere["Action"] == [
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeRules",
        "route53:ListHostedZones",
        "s3:ListBucket",
    ]
    # Objects are read only where load balancers write their access logs.
    assert objects["Action"] == ["s3:GetObject"]
    assert objects["Resource"] == "arn:aws:s3:::*/AWSLogs/*/elasticloadbalancing/*"


def test_a_check_declaring_a_write_is_refused():
    with pytest.raises(ValueError, match="elasticloadbalancing:ModifyRule"):
        iam_policy([_check("edge.a", "elbv2:ModifyRule")])


def test_the_registered_checks_policy_is_read_only():
    policy = iam_policy(bot.diagnosis.checks.REGISTRY.values())
    actions = [a for statement in policy["Statement"] for a in statement["Action"]]
    assert actions[: len(policy["Statement"][0]["Action"])] == sorted(
        set(policy["Statement"][0]["Action"])
    )
    assert len(actions) == len(set(actions))
    assert all(is_read(action.split(":", 1)[1]) for action in actions)
    assert not any(a.endswith(("GetSecretValue", "Decrypt")) for a in actions)
