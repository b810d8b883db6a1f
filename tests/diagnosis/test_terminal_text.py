"""The terminal has no thread: what the CLI's report leaves out points at --json instead."""

from __future__ import annotations

import asyncio
import json
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
    assert "(4 more evidence fields in hokusai diagnose --json)" in printed
    assert "(4 more evidence fields kept in the incident log)" in str(blocks)


def test_the_slack_message_says_its_verdict_once() -> None:
    report = _report()

    fallback, blocks, _ = report_blocks(report, target="registry.hokus.ai")
    shown = json.dumps(blocks, ensure_ascii=False)

    assert shown.count("no listener rule sends /api/mlflow/* to the API") == 1
    assert shown.count("First failing hop") == 1
    assert "Verdict:" not in shown
    assert "no listener rule" in fallback  # the notification text carries it instead


def test_a_run_that_could_not_finish_does_not_wear_a_green_tick() -> None:
    async def unreachable(ctx: Any) -> CheckResult:
        raise ConnectionError("AWS endpoint unreachable")

    checks = {
        f"routing.c{n}": Check(f"routing.c{n}", "routing", "r", unreachable) for n in range(3)
    }
    env = load_config(REPO / "hokusai.yml").environment()
    report = asyncio.run(Runner(env, aws=_NoAws(), checks=checks).run())

    _, blocks, _ = report_blocks(report, target="registry.hokus.ai")
    top = blocks[1]["text"]["text"].splitlines()[0]

    assert top.startswith(":warning: ") and report.verdict in top
    assert ":white_check_mark:" not in json.dumps(blocks[:2])
