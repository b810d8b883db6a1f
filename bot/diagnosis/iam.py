"""The read-only IAM policy the checks need, built from their declared ``reads``.

The diagnostics session (``bot.diagnosis.aws.read_only_session``) allows exactly these
actions and refuses every other call before sending it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.diagnosis.aws import RESOURCE_SCOPES, allowed_actions, declared_action
from bot.diagnosis.checks.base import Check


def iam_action(read: str) -> str:
    """The IAM action for a declared read; ``elbv2:DescribeRules`` and
    ``elasticloadbalancing:DescribeRules`` both give the latter."""
    return declared_action(read)


def iam_actions(checks: Iterable[Check]) -> list[str]:
    """Every IAM action the checks read, sorted and without duplicates.

    Raises:
        ValueError: a check declares an action that is not a read.
    """
    return sorted(allowed_actions(list(checks)))


def iam_policy(checks: Iterable[Check]) -> dict[str, Any]:
    """An IAM policy document allowing exactly the checks' reads.

    Raises:
        ValueError: a check declares an action that is not a read.
    """
    actions = iam_actions(checks)
    anywhere = [a for a in actions if a not in RESOURCE_SCOPES]
    statements: list[dict[str, Any]] = [
        {"Sid": "HokusaiDiagnoseReadOnly", "Effect": "Allow", "Action": anywhere, "Resource": "*"}
    ]
    for action in actions:
        if action in RESOURCE_SCOPES:
            statements.append(
                {
                    "Sid": "HokusaiReadOnly" + action.replace(":", ""),
                    "Effect": "Allow",
                    "Action": [action],
                    "Resource": RESOURCE_SCOPES[action][1],
                }
            )
    return {"Version": "2012-10-17", "Statement": statements}
