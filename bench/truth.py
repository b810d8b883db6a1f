"""The scenario truth table: for every sandbox scenario, the cause a diagnosis must name and
the cause it named, graded.

Grades: exact 100; one hop short 65 (it named a failure the expected cause explains);
right area, wrong diagnosis 35 (same layer or same subject); wrong 0. A scenario where
nothing may fail scores 100 only when the run names no failure and no cause.

Each scenario gets a fresh sandbox (moto, the edge, the API stand-in, DNS) sharing one real
MLflow server; the diagnosis is the real runner with every check, as ``hokusai diagnose``
runs it. Both platform shapes by default.

    .venv/bin/python bench/truth.py [--shape hokusai|compact] [--scenario NAME]...
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bot.diagnosis.cause import links  # noqa: E402
from bot.diagnosis.runner import DiagnoseReport, Runner  # noqa: E402
from bot.sandbox.mlflow_database import (  # noqa: E402
    DATABASE_SCENARIOS,
    DatabaseBackedMlflow,
    postgres_available,
)
from bot.sandbox.mlflow_server import MlflowServer  # noqa: E402
from bot.sandbox.world import Sandbox, expected_cause, scenario_names  # noqa: E402

EXACT, ONE_HOP_SHORT, RIGHT_AREA, WRONG = 100, 65, 35, 0


@dataclass
class Row:
    """One scenario's line of the table."""

    scenario: str
    shape: str
    expected: str | None
    got: str | None
    confidence: str | None
    first_failure: str | None
    grade: int
    verdict: str


def _base(check_id: str | None) -> tuple[str, str | None]:
    if not check_id:
        return "", None
    name, _, subject = check_id.partition("[")
    return name, subject.rstrip("]") or None


def grade(expected: str | None, report: DiagnoseReport) -> int:
    """How close the report's cause is to ``expected`` (see the module docstring)."""
    cause = report.cause
    got = cause.id if cause is not None else None
    if expected is None:
        return EXACT if report.first_failure is None and cause is None else WRONG
    if got is None:
        return WRONG
    if got == expected:
        return EXACT
    joined = links(report.outcomes, report.dependencies)
    if any(link.cause == expected and link.effect == got for link in joined):
        return ONE_HOP_SHORT
    expected_outcome, got_outcome = report.outcome(expected), report.outcome(got)
    same_layer = expected_outcome is not None and expected_outcome.layer == cause.layer
    same_subject = _base(expected)[1] is not None and _base(expected)[1] == _base(got)[1]
    return RIGHT_AREA if same_layer or same_subject or got_outcome is None else WRONG


def run_scenario(
    scenario: str,
    shape: str,
    mlflow: MlflowServer,
    workdir: Path,
    database_mlflow: DatabaseBackedMlflow | None = None,
) -> tuple[Row, DiagnoseReport]:
    """Build ``scenario`` on ``shape``, diagnose it with every check, grade the cause."""
    with Sandbox(
        scenario, shape=shape, mlflow=mlflow, database_mlflow=database_mlflow, workdir=workdir
    ) as sandbox:
        report = asyncio.run(Runner(sandbox.env).run())
    expected = expected_cause(scenario, shape)
    row = Row(
        scenario=scenario,
        shape=shape,
        expected=expected,
        got=report.cause.id if report.cause else None,
        confidence=report.cause.confidence if report.cause else None,
        first_failure=report.first_failure.id if report.first_failure else None,
        grade=grade(expected, report),
        verdict=report.verdict,
    )
    return row, report


def table(rows: list[Row]) -> str:
    """The table as printed: scenario → expected cause → got, with the grade and total."""
    lines = [f"{'scenario':<28} {'shape':<8} {'expected cause':<48} {'got':<48} grade"]
    for row in rows:
        got = row.got or "(none)"
        if row.confidence and row.confidence != "confirmed":
            got += f" ({row.confidence})"
        lines.append(
            f"{row.scenario:<28} {row.shape:<8} {row.expected or '(none)':<48} {got:<48} "
            f"{row.grade:>5}"
        )
    total = sum(r.grade for r in rows)
    lines.append(f"total: {total} / {EXACT * len(rows)} ({len(rows)} scenarios)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", choices=["hokusai", "compact"])
    parser.add_argument("--scenario", action="append")
    parser.add_argument("--verbose", action="store_true", help="print each verdict too")
    args = parser.parse_args(argv)
    from bot.sandbox.world import shape_scenarios

    shapes = args.shape or ["hokusai", "compact"]
    rows: list[Row] = []
    plan = [(shape, s) for shape in shapes for s in args.scenario or shape_scenarios(shape)]
    for _, scenario in plan:
        if scenario not in scenario_names():
            parser.error(f"unknown scenario {scenario}")
    with tempfile.TemporaryDirectory(prefix="hokusai-truth-") as tmp:
        mlflow = MlflowServer(Path(tmp) / "mlflow", allowed_hosts=Sandbox.mlflow_hosts()).start()
        database_mlflow = None
        try:
            mlflow.seed()
            if postgres_available() and any(s in DATABASE_SCENARIOS for _, s in plan):
                database_mlflow = DatabaseBackedMlflow(
                    Path(tmp) / "mlflow-pg", allowed_hosts=Sandbox.mlflow_hosts()
                ).start()
            for shape, scenario in plan:
                started = time.monotonic()
                row, _ = run_scenario(
                    scenario, shape, mlflow, Path(tmp) / scenario / shape, database_mlflow
                )
                rows.append(row)
                took = time.monotonic() - started
                print(f"  {shape}/{scenario}: {row.grade} ({took:.1f} s)", file=sys.stderr)
                if args.verbose or row.grade != EXACT:
                    print(f"    {row.verdict}", file=sys.stderr)
        finally:
            mlflow.stop()
            if database_mlflow is not None:
                database_mlflow.stop()
    print(table(rows))
    return 0 if all(r.grade == EXACT for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
