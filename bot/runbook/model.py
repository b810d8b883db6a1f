"""Runbooks: the team's investigation strategy as data, its loader and its linter.

A runbook is a YAML file under ``runbooks/``: an id, a title, what it ``applies_to`` and a list
of steps. A step is ``manual`` (instructions to follow), ``automated`` (checks or scopes the
runner runs) or a ``question`` (choices that decide the branch). Where a step leads is a
*target*: a step id, ``next`` (the following step; the end after the last one) or
``{stop: {conclusion: "..."}}``.

Example::

    runbooks = load_runbooks()                      # the shipped ones, keyed by id
    problems = lint_paths(["runbooks/"])            # [] when every file is sound
    hit = suggest_runbook(runbooks.values(), "routing", "routing.listener-rules", "mlflow-proxy")
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from bot.diagnosis.checks.base import LAYERS
from bot.errors import HokusaiError

# A step id is used in button values and action ids: keep it short and plain.
STEP_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
RUNBOOK_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
NEXT = "next"
RUNBOOKS_ENV = "HOKUSAI_RUNBOOKS"


class RunbookError(HokusaiError):
    """A runbook file cannot be loaded; the message names the file and what is wrong."""


class _Model(BaseModel):
    # Extra keys are refused so that a typo (`on_fial`) is an error, not a silent default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conclusion(_Model):
    conclusion: str = Field(min_length=1, description="What was found and what to fix.")


class Stop(_Model):
    """End the walkthrough with a conclusion."""

    stop: Conclusion


def _target_kind(value: Any) -> str:
    return "stop-target" if isinstance(value, dict | Stop) else "step-id"


# A step id, "next", or a stop. The discriminator keeps errors to the member the input meant.
Target = Annotated[
    Annotated[str, Tag("step-id")] | Annotated[Stop, Tag("stop-target")],
    Discriminator(_target_kind),
]


class Manual(_Model):
    instructions: str = Field(min_length=1, description="What to do, in Slack mrkdwn.")
    link: str | None = Field(None, pattern=r"^https?://", description="A page to open.")


class Automated(_Model):
    checks: list[str] = Field(min_length=1, description="Check ids or scopes to run.")


class Choice(_Model):
    label: str = Field(min_length=1, max_length=75)
    next: Target = NEXT


class Question(_Model):
    prompt: str = Field(min_length=1)
    choices: list[Choice] = Field(min_length=1)


class Step(_Model):
    """One step. Exactly one of ``manual``, ``automated`` and ``question``.

    ``next`` is where Done and Skip lead. An automated step follows ``on_pass`` when every
    check passed (or warned), ``on_fail`` otherwise; both default to ``next``.
    """

    id: Annotated[str, Field(pattern=STEP_ID_PATTERN)]
    title: str = Field(min_length=1, max_length=150)
    manual: Manual | None = None
    automated: Automated | None = None
    question: Question | None = None
    next: Target = NEXT
    on_pass: Target | None = None
    on_fail: Target | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("manual", "automated", "question") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise ValueError(f"needs exactly one of manual, automated, question (found {found})")
        if self.automated is None and (self.on_pass is not None or self.on_fail is not None):
            raise ValueError("on_pass/on_fail only apply to automated steps")
        if self.id == NEXT:
            raise ValueError("'next' is reserved and cannot be a step id")
        return self

    @property
    def kind(self) -> str:
        return "manual" if self.manual else "automated" if self.automated else "question"

    @property
    def pass_target(self) -> Target:
        return self.on_pass if self.on_pass is not None else self.next

    @property
    def fail_target(self) -> Target:
        return self.on_fail if self.on_fail is not None else self.next

    def targets(self) -> Iterator[tuple[str, Target]]:
        """Every branch this step can take, named as lint reports it: ``("on_fail", "x")``."""
        yield "next", self.next
        if self.on_pass is not None:
            yield "on_pass", self.on_pass
        if self.on_fail is not None:
            yield "on_fail", self.on_fail
        for i, choice in enumerate(self.question.choices if self.question else []):
            yield f"choice {i + 1} ({choice.label!r})", choice.next


class AppliesTo(_Model):
    """Where the runbook helps: diagnose suggests it when the first failing hop matches."""

    routes: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    layers: list[str] = Field(default_factory=list)
    checks: list[str] = Field(default_factory=list, description="Check ids it suits best.")


class Runbook(_Model):
    id: Annotated[str, Field(pattern=RUNBOOK_ID_PATTERN)]
    title: str = Field(min_length=1, max_length=150)
    description: str = ""
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    steps: list[Step] = Field(min_length=1)

    @property
    def first_step(self) -> Step:
        return self.steps[0]

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def following(self, step_id: str) -> Step | None:
        """The step after ``step_id`` in file order, or None after the last one."""
        ids = [s.id for s in self.steps]
        i = ids.index(step_id)
        return self.steps[i + 1] if i + 1 < len(self.steps) else None

    def resolve(self, step_id: str, target: Target) -> Step | Stop | None:
        """Where ``target`` leads from ``step_id``: a step, a stop, or None (the end)."""
        if isinstance(target, Stop):
            return target
        if target == NEXT:
            return self.following(step_id)
        return self.step(target)


# ---------------------------------------------------------------- loading


def default_runbooks_dir() -> Path:
    """``$HOKUSAI_RUNBOOKS``, else the repository's ``runbooks/`` beside the ``bot`` package
    (a checkout or an editable install), else ``./runbooks`` (an installed package run from
    the project directory, as the Procfile does)."""
    override = os.environ.get(RUNBOOKS_ENV)
    if override:
        return Path(override)
    beside = Path(__file__).resolve().parents[2] / "runbooks"  # the repository, beside bot/
    return beside if beside.is_dir() else Path.cwd() / "runbooks"


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunbookError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None)
        detail = f" ({problem})" if problem else ""
        raise RunbookError(f"{path}: {where}not valid YAML{detail}") from None


def load_runbook(path: str | Path) -> Runbook:
    """Load one runbook file and validate its schema (not its graph: see :func:`lint_paths`).

    Raises:
        RunbookError: one line naming the file and the first problem.
    """
    path = Path(path)
    data = _read_yaml(path)
    try:
        return Runbook.model_validate(data)
    except ValidationError as exc:
        first = _schema_errors(path, data, exc)[0]
        raise RunbookError(str(first)) from None


def runbook_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories into their ``*.yml``/``*.yaml`` files, sorted."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yml"), *path.glob("*.yaml")]))
        else:
            files.append(path)
    return files


def load_runbooks(directory: str | Path | None = None) -> dict[str, Runbook]:
    """Every runbook in ``directory`` (default: :func:`default_runbooks_dir`) that lints clean.

    A broken file is left out rather than taking the others down; ``hokusai runbook lint``
    names its problems.
    """
    directory = Path(directory) if directory else default_runbooks_dir()
    if not directory.is_dir():
        return {}
    runbooks: dict[str, Runbook] = {}
    for path in runbook_files([directory]):
        try:
            runbook = load_runbook(path)
        except RunbookError:
            continue
        if not lint_runbook(runbook, str(path)) and runbook.id not in runbooks:
            runbooks[runbook.id] = runbook
    return runbooks


# ---------------------------------------------------------------- lint


@dataclass(frozen=True)
class LintError:
    """One problem: ``runbooks/x.yml: step 'foo': on_fail target 'bar' does not exist``."""

    file: str
    step: str | None
    problem: str

    def __str__(self) -> str:
        where = f"step {self.step!r}: " if self.step else ""
        return f"{self.file}: {where}{self.problem}"


def known_scopes() -> set[str]:
    """What an automated step may name: registered check ids and layer names."""
    from bot.diagnosis.checks import REGISTRY

    return set(REGISTRY) | set(LAYERS)


def _scope_known(scope: str, known: set[str]) -> bool:
    # `targets.health[mlflow-proxy]` runs one subject of a known check.
    match = re.fullmatch(r"([^\[\]]+)\[([^\[\]]+)\]", scope)
    return (match.group(1) if match else scope) in known


def _schema_errors(path: Path | str, data: Any, exc: ValidationError) -> list[LintError]:
    errors = []
    steps = data.get("steps") if isinstance(data, dict) else None
    for err in exc.errors():
        loc = list(err["loc"])
        step_name = None
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            raw = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
            step_name = (
                str(raw["id"]) if isinstance(raw, dict) and "id" in raw else f"#{loc[1] + 1}"
            )
            loc = loc[2:]
        # Drop the union tags from pydantic's paths; keep the field names.
        field = ".".join(
            str(p) for p in loc if p not in ("step-id", "stop-target", "function-after")
        )
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (typo?)"
        errors.append(LintError(str(path), step_name, f"{field}: {message}" if field else message))
    # A union target reports one error per member; say each thing once.
    return list(dict.fromkeys(errors))


def lint_runbook(runbook: Runbook, file: str, known: set[str] | None = None) -> list[LintError]:
    """Graph and reference problems of a schema-valid runbook."""
    known = known_scopes() if known is None else known
    errors: list[LintError] = []

    def err(step: str | None, problem: str) -> None:
        errors.append(LintError(file, step, problem))

    seen: set[str] = set()
    for step in runbook.steps:
        if step.id in seen:
            err(step.id, "duplicate step id")
        seen.add(step.id)

    for step in runbook.steps:
        for scope in step.automated.checks if step.automated else []:
            if not _scope_known(scope, known):
                err(step.id, f"unknown check or scope {scope!r}")
        for name, target in step.targets():
            if isinstance(target, str) and target != NEXT and target not in seen:
                err(step.id, f"{name} target {target!r} does not exist")
        if step.question:
            labels = [c.label for c in step.question.choices]
            for label in sorted({x for x in labels if labels.count(x) > 1}):
                err(step.id, f"choice {label!r} appears more than once")
    for name in runbook.applies_to.layers:
        if name not in LAYERS:
            err(None, f"applies_to.layers: unknown layer {name!r}")
    for name in runbook.applies_to.checks:
        if not _scope_known(name, known):
            err(None, f"applies_to.checks: unknown check {name!r}")
    if errors:
        # Graph checks on a graph with dangling or duplicate ids would only repeat the problem.
        return errors
    return _graph_errors(runbook, file)


def _edges(runbook: Runbook, step: Step) -> tuple[set[str], bool]:
    """The step ids ``step`` can lead to, and whether it can end the walkthrough."""
    successors: set[str] = set()
    ends = False
    for _, target in step.targets():
        where = runbook.resolve(step.id, target)
        if isinstance(where, Step):
            successors.add(where.id)
        else:
            ends = True
    return successors, ends


def _graph_errors(runbook: Runbook, file: str) -> list[LintError]:
    edges = {s.id: _edges(runbook, s) for s in runbook.steps}
    reachable = {runbook.first_step.id}
    frontier = [runbook.first_step.id]
    while frontier:
        for nxt in edges[frontier.pop()][0]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    errors = [
        LintError(file, s.id, f"unreachable from the first step {runbook.first_step.id!r}")
        for s in runbook.steps
        if s.id not in reachable
    ]
    # Steps from which a stop or the end can be reached; the rest are trapped in a cycle.
    can_finish = {sid for sid, (_, ends) in edges.items() if ends}
    changed = True
    while changed:
        changed = False
        for sid, (successors, _) in edges.items():
            if sid not in can_finish and successors & can_finish:
                can_finish.add(sid)
                changed = True
    for step in runbook.steps:
        if step.id in reachable and step.id not in can_finish:
            loop = " -> ".join(sorted(edges[step.id][0]))
            errors.append(
                LintError(
                    file,
                    step.id,
                    f"cycle without a way out: it only leads to {loop}, never to a stop or the end",
                )
            )
    return errors


def lint_paths(paths: Iterable[str | Path], known: set[str] | None = None) -> list[LintError]:
    """Lint runbook files and directories; an empty list means all is well.

    Checks the schema (with the field), unique step ids, that every check or scope exists in
    the check registry (or is a layer), that every branch target exists, that every step is
    reachable from the first, that no cycle lacks a way out, that question choices are
    unique, and that runbook ids are unique across files.
    """
    known = known_scopes() if known is None else known
    errors: list[LintError] = []
    ids: dict[str, str] = {}
    for path in runbook_files(paths):
        try:
            data = _read_yaml(path)
        except RunbookError as exc:
            errors.append(LintError(str(path), None, str(exc).removeprefix(f"{path}: ")))
            continue
        if not isinstance(data, dict):
            errors.append(LintError(str(path), None, "expected a mapping at the top level"))
            continue
        try:
            runbook = Runbook.model_validate(data)
        except ValidationError as exc:
            errors.extend(_schema_errors(path, data, exc))
            continue
        if runbook.id in ids:
            problem = f"runbook id {runbook.id!r} also used by {ids[runbook.id]}"
            errors.append(LintError(str(path), None, problem))
        ids.setdefault(runbook.id, str(path))
        errors.extend(lint_runbook(runbook, str(path), known))
    return errors


# ---------------------------------------------------------------- suggestion


def suggest_runbook(
    runbooks: Iterable[Runbook], layer: str | None, check_id: str | None, subject: str | None
) -> Runbook | None:
    """The runbook that best fits a first failing hop, or None.

    A runbook fits when it names the check in ``applies_to.checks`` or the layer in
    ``applies_to.layers``. Among fits, a named check beats a layer, a runbook naming the
    subject (the route or service the check ran for) in ``routes``/``services`` beats one
    that does not, and a narrower runbook (fewer layers) beats a broader one; ties go to the
    first given.
    """
    best: tuple[tuple[int, int, int], Runbook] | None = None
    for runbook in runbooks:
        applies = runbook.applies_to
        by_check = bool(check_id) and check_id in applies.checks
        by_layer = bool(layer) and layer in applies.layers
        if not (by_check or by_layer):
            continue
        by_subject = bool(subject) and subject in {*applies.routes, *applies.services}
        score = (int(by_check), int(by_subject), -len(applies.layers))
        if best is None or score > best[0]:
            best = (score, runbook)
    return best[1] if best else None
