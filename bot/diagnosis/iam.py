"""The read-only IAM policy the checks need, built from their declared ``reads``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.diagnosis.aws import IAM_PREFIX, is_read
from bot.diagnosis.aws import iam_action as _operation_action
from bot.diagnosis.checks.base import Check


def iam_action(read: str) -> str:
    """The IAM action for a declared read; ``elbv2:DescribeRules`` and
    ``elasticloadbalancing:DescribeRules`` both give the latter."""
    prefix, _, operation = read.partition(":")
    # S3 operations are authorised by differently named actions (ListObjectsV2 -> ListBucket).
    return (
        _operation_action(prefix, operation)
        if prefix == "s3"
        else (f"{IAM_PREFIX.get(prefix, prefix)}:{operation}")
    )


def iam_actions(checks: Iterable[Check]) -> list[str]:
    """Every IAM action the checks read, sorted and without duplicates."""
    return sorted({iam_action(read) for check in checks for read in check.reads})


def iam_policy(checks: Iterable[Check]) -> dict[str, Any]:
    """An IAM policy document allowing exactly the checks' reads.

    Raises:
        ValueError: a check declares an action that is not a read.
    """
    actions = iam_actions(checks)
    writes = [a for a in actions if not is_read(a.partition(":")[2])]
    if writes:
        raise ValueError(f"checks declare actions that are not reads: {', '.join(writes)}")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "HokusaiDiagnoseReadOnly",
                "Effect": "Allow",
                "Action": actions,
                "Resource": "*",
            }
        ],
    }
