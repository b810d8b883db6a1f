"""The terminal has no thread: what the CLI's report leaves out points at --json instead."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.config import load_config
from bot.diagnosis.checks.base import Check, CheckResult, Classification
from bot.diagnosis.render import report_blocks, terminal_report
from bot.diagnosis.runner import Runner
from tests.doubles import REPO


class _NoAws:
    async def call(self, service: str, operation: str, **params: Any) -> Any:
        raise AssertionError(f"unexpected AWS call {service}.{operation}")

    def close(self) -> None:
        return None


def _report():
    async def rules(ctx: Any) -> CheckResult:
        evidence = {f"field_{n}": f"value {n}" for n in range(12)}
        return CheckResult.failed(
            "no listener rule sends /api/mlflow/* to the API",
            Classification.CONFIGURATION,
            **evidence,
        )

    checks = {"routing.listener-rules": Check("routing.listener-rules", "routing", "r", rules)}
    env = load_config(REPO / "hokusai.yml").environment()
    return asyncio.run(Runner(env, aws=_NoAws(), checks=checks).run())


def test_the_cli_report_never_mentions_a_thread() -> None:
    report = _report()

    printed = terminal_report(report)
    _, blocks, _ = report_blocks(report, target="registry.hokus.ai")

    assert "thread" not in printed.lower()
    assert "(4 more evidence field(s) in hokusai diagnose --json)" in printed
    assert "in the thread" in str(blocks)  # Slack's view does have one
