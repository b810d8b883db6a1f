"""Target health in moto, which has no API for it: set on its backend object, in process."""

from __future__ import annotations

import contextlib
from typing import Any


def set_target_health(
    sts: Any, region: str, arn: str, state: str, reason: str, description: str
) -> bool:
    """Make every registered target of ``arn`` report ``state`` with ``reason``.

    moto reports every registered IP target ``healthy`` and has no switch for it; in the same
    process (``mock_aws`` or ``ThreadedMotoServer``) the target group's health is set on moto's
    backend object. Returns False against a moto in another process (the caller falls back).
    """
    try:
        from moto.elbv2.models import FakeHealthStatus, elbv2_backends
    except ImportError:
        return False
    account = sts.get_caller_identity()["Account"]
    with contextlib.suppress(KeyError):
        group = elbv2_backends[account][region].target_groups[arn]

        def health(target: dict[str, Any], ec2_backend: Any) -> Any:
            registered = group.targets.get(target["Id"])
            if registered is None:
                return type(group).health_for(group, target, ec2_backend)
            return FakeHealthStatus(
                registered["Id"],
                registered["Port"],
                group.health_check_port,
                state,
                reason,
                description,
            )

        group.health_for = health
        return True
    return False
