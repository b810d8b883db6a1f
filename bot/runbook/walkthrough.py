"""The walkthrough: a runbook being walked, one action at a time.

The state machine is pure: :meth:`Walker.apply` takes a :class:`WalkState` and an
:class:`Action` and returns the next state and the line for the incident's timeline, or
raises :class:`ActionRejected` and changes nothing. Every action carries the state
``version`` it was made against; a click on an out-of-date message is a
:class:`StaleAction`, so two people clicking at once cannot advance a step twice (the store's
compare-and-swap on the same version number settles who was first).

An automated step takes two actions: ``run`` marks it running (so a second Run is stale),
then ``result`` records the checks' outcomes and follows ``on_pass`` or ``on_fail``; when the
process running them dies, ``interrupted`` (from start-up recovery) offers *Run* again.

Example::

    walker = Walker(runbook)
    state = walker.start(actor="U1")
    state, line = walker.apply(state, Action("done", state.current, state.version), "U1")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from bot.errors import HokusaiError
from bot.runbook.model import Runbook, Step, Stop

# A check result counts against the step unless it is one of these.
PASSING_STATUSES = frozenset({"pass", "warn", "skipped"})
# A Run whose result never came back (the bot restarted mid-run) may be run again after this.
RUN_STALE_AFTER = timedelta(minutes=5)
NOTE_MAX_CHARS = 2000


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    DONE = "done"
    SKIPPED = "skipped"
    ANSWERED = "answered"
    INTERRUPTED = "interrupted"  # its checks never reported back (the bot stopped): Run again


class ActionKind(StrEnum):
    RUN = "run"
    RESULT = "result"
    DONE = "done"
    SKIP = "skip"
    NOTE = "note"
    CHOICE = "choice"
    INTERRUPTED = "interrupted"


class ActionRejected(HokusaiError):
    """An action that cannot apply; ``str(exc)`` is the explanation shown to the user."""


class StaleAction(ActionRejected):
    """The action was made against an older state (another click got there first)."""


class InvalidAction(ActionRejected):
    """The action names a step, choice or kind the runbook does not have (a tampered value)."""


class CheckLine(BaseModel):
    """One check outcome as the walkthrough keeps it."""

    id: str
    status: str
    summary: str
    classification: str | None = None
    hint: str | None = None

    @property
    def passing(self) -> bool:
        return self.status in PASSING_STATUSES

    @classmethod
    def from_outcome(cls, outcome: Any) -> CheckLine:
        """From a runner ``CheckOutcome``."""
        result = outcome.result
        return cls(
            id=outcome.id,
            status=str(result.status),
            summary=result.summary,
            classification=str(result.classification) if result.classification else None,
            hint=result.hint,
        )


class Note(BaseModel):
    actor: str
    text: str
    at: str


class StepRecord(BaseModel):
    state: StepState = StepState.PENDING
    by: str | None = None
    started_at: str | None = None
    run_version: int | None = None
    answer: str | None = None
    results: list[CheckLine] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)


class WalkState(BaseModel):
    """A walkthrough's state; stored as JSON in the runbook session row."""

    runbook_id: str
    current: str | None
    steps: dict[str, StepRecord]
    path: list[str] = Field(default_factory=list)
    finished: bool = False
    conclusion: str | None = None
    version: int = 1
    started_by: str | None = None
    env: str | None = None

    def record(self, step_id: str) -> StepRecord:
        return self.steps.setdefault(step_id, StepRecord())

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int | None = None) -> WalkState:
        """Load a stored state; the store's version column is the authority on ``version``."""
        state = cls.model_validate(data)
        return state.model_copy(update={"version": version}) if version is not None else state


@dataclass(frozen=True)
class Action:
    """A click (or a run's result) against ``version`` of the state at ``step_id``.

    For ``result`` the version is the one the Run produced (``StepRecord.run_version``).
    """

    kind: ActionKind | str
    step_id: str
    version: int
    choice: int | None = None
    text: str | None = None
    results: tuple[CheckLine, ...] = ()


def _now_text(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="seconds")


def step_passed(results: Sequence[CheckLine]) -> bool:
    """An automated step passes when something ran and nothing failed, errored or timed out."""
    return bool(results) and all(line.passing for line in results)


class Walker:
    """Applies actions to the walkthrough of one runbook."""

    def __init__(self, runbook: Runbook) -> None:
        self.runbook = runbook

    def start(self, actor: str | None = None, env: str | None = None) -> WalkState:
        first = self.runbook.first_step.id
        return WalkState(
            runbook_id=self.runbook.id,
            current=first,
            steps={s.id: StepRecord() for s in self.runbook.steps},
            path=[first],
            started_by=actor,
            env=env,
        )

    def position(self, step_id: str) -> int:
        """1-based position of the step in the runbook."""
        return [s.id for s in self.runbook.steps].index(step_id) + 1

    def apply(
        self, state: WalkState, action: Action, actor: str, now: datetime | None = None
    ) -> tuple[WalkState, str]:
        """The state after ``action`` and the timeline line describing it.

        Raises:
            InvalidAction: unknown step, a kind the step does not offer, a choice out of range.
            StaleAction: the action was made against another version or step than the current.
        """
        kind = self._kind(action.kind)
        step = self.runbook.step(action.step_id)
        if step is None or state.runbook_id != self.runbook.id:
            raise InvalidAction("that button does not belong to this runbook")
        if action.version > state.version or action.version < 1:
            raise InvalidAction("that button carries a version this walkthrough never had")
        new = state.model_copy(deep=True)
        new.version = state.version + 1
        if kind is ActionKind.NOTE:
            # Notes attach to their step whatever happened since; they never move the walk.
            return new, self._note(new, step, action, actor, now)
        if kind is ActionKind.RESULT:
            # A result answers the Run that started it (a note added meanwhile does not matter).
            return new, self._result(new, step, action, actor)
        if kind is ActionKind.INTERRUPTED:
            return new, self._interrupted(new, step, action)
        if action.version != state.version or state.current != step.id or state.finished:
            raise StaleAction(self._stale_reason(state))
        record = new.record(step.id)
        if kind is ActionKind.RUN:
            return new, self._run(new, step, record, actor, now)
        if kind is ActionKind.DONE:
            if step.manual is None:
                raise InvalidAction(f"step {step.title!r} is not a manual step")
            record.state, record.by = StepState.DONE, actor
            return new, f"{self._label(step)}: done{self._enter(new, step, step.next)}"
        if kind is ActionKind.SKIP:
            record.state, record.by = StepState.SKIPPED, actor
            return new, f"{self._label(step)}: skipped{self._enter(new, step, step.next)}"
        return new, self._choose(new, step, record, action, actor)

    # -- transitions -----------------------------------------------------------------------

    @staticmethod
    def _kind(kind: ActionKind | str) -> ActionKind:
        try:
            return ActionKind(kind)
        except ValueError:
            raise InvalidAction(f"unknown action {kind!r}") from None

    def _label(self, step: Step) -> str:
        return f"{self.runbook.id} step {self.position(step.id)} '{step.title}'"

    def _stale_reason(self, state: WalkState) -> str:
        if state.finished:
            return "this walkthrough has already finished"
        current = self.runbook.step(state.current or "")
        where = (
            f" It is now at step {self.position(current.id)}: {current.title}." if current else ""
        )
        return f"someone else moved this walkthrough on before your click.{where}"

    def _note(
        self, state: WalkState, step: Step, action: Action, actor: str, now: datetime | None
    ) -> str:
        text = (action.text or "").strip()
        if not text:
            raise InvalidAction("a note needs some text")
        text = text[:NOTE_MAX_CHARS]
        state.record(step.id).notes.append(Note(actor=actor, text=text, at=_now_text(now)))
        return f"{self._label(step)}: note: {text}"

    def _run(
        self,
        state: WalkState,
        step: Step,
        record: StepRecord,
        actor: str,
        now: datetime | None,
    ) -> str:
        if step.automated is None:
            raise InvalidAction(f"step {step.title!r} has no checks to run")
        if record.state is StepState.RUNNING and not self._run_abandoned(record, now):
            raise StaleAction("that step is already running")
        record.state, record.by, record.started_at = StepState.RUNNING, actor, _now_text(now)
        record.run_version = state.version
        return f"{self._label(step)}: running {', '.join(step.automated.checks)}"

    @staticmethod
    def _run_abandoned(record: StepRecord, now: datetime | None) -> bool:
        if not record.started_at:
            return True
        started = datetime.fromisoformat(record.started_at)
        return (now or datetime.now(UTC)) - started > RUN_STALE_AFTER

    def _result(self, state: WalkState, step: Step, action: Action, actor: str) -> str:
        if step.automated is None:
            raise InvalidAction(f"step {step.title!r} has no checks to run")
        record = state.record(step.id)
        if (
            state.current != step.id
            or record.state is not StepState.RUNNING
            or record.run_version != action.version
        ):
            raise StaleAction("that run's step was skipped or run again meanwhile")
        record.results = list(action.results)
        passed = step_passed(record.results)
        record.state = StepState.PASSED if passed else StepState.FAILED
        record.by = actor
        failing = [line for line in record.results if not line.passing]
        if passed:
            what = f"passed ({len(record.results)} checks)"
        elif not record.results:
            what = "failed (no checks ran)"
        else:
            names = ", ".join(line.id for line in failing[:5])
            what = f"failed ({len(failing)} of {len(record.results)} checks: {names})"
        target = step.pass_target if passed else step.fail_target
        return f"{self._label(step)}: {what}{self._enter(state, step, target)}"

    def _interrupted(self, state: WalkState, step: Step, action: Action) -> str:
        """The Run ``action.version`` will never report back: the step may be run again."""
        record = state.record(step.id)
        if (
            state.current != step.id
            or record.state is not StepState.RUNNING
            or record.run_version != action.version
        ):
            raise StaleAction("that run's step was skipped or run again meanwhile")
        record.state = StepState.INTERRUPTED
        return f"{self._label(step)}: interrupted before its checks reported back; run it again"

    def _choose(
        self, state: WalkState, step: Step, record: StepRecord, action: Action, actor: str
    ) -> str:
        if step.question is None:
            raise InvalidAction(f"step {step.title!r} asks no question")
        choices = step.question.choices
        if action.choice is None or not 0 <= action.choice < len(choices):
            raise InvalidAction("that answer is not one of the step's choices")
        choice = choices[action.choice]
        record.state, record.by, record.answer = StepState.ANSWERED, actor, choice.label
        return (
            f"{self._label(step)}: answered {choice.label!r}{self._enter(state, step, choice.next)}"
        )

    def _enter(self, state: WalkState, origin: Step, target: Any) -> str:
        """Move to where ``target`` leads from ``origin``; the tail of the timeline line."""
        where = self.runbook.resolve(origin.id, target)
        if isinstance(where, Stop):
            state.current, state.finished = None, True
            state.conclusion = where.stop.conclusion
            return f" → stop: {where.stop.conclusion}"
        if where is None:
            state.current, state.finished = None, True
            return " → end of runbook"
        # Re-entering a step (a loop back) starts it afresh; its notes stay.
        notes = state.record(where.id).notes
        state.steps[where.id] = StepRecord(notes=notes)
        state.current = where.id
        state.path.append(where.id)
        return f" → step {self.position(where.id)} '{where.title}'"


# ---------------------------------------------------------------- persistence


class SessionRecord(Protocol):
    """What a stored session looks like (``bot.incident.store.RunbookSession`` is one)."""

    id: int
    incident_id: int | None
    runbook_id: str
    channel: str | None
    message_ts: str | None
    state: dict[str, Any]
    version: int


class SessionStore(Protocol):
    """Where walkthroughs live between clicks; ``save_if_version`` is a compare-and-swap."""

    def create(
        self,
        runbook_id: str,
        *,
        incident_id: int | None,
        channel: str | None,
        state: WalkState,
        actor: str | None,
    ) -> SessionRecord: ...

    def load(self, session_id: int) -> SessionRecord | None: ...

    def save_if_version(
        self,
        session_id: int,
        expected_version: int,
        new_state: WalkState,
        actor: str | None,
        message_ts: str | None = None,
    ) -> bool: ...


class IncidentSessionStore:
    """:class:`SessionStore` on ``bot.incident.store.IncidentStore``'s runbook_sessions table."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def create(
        self,
        runbook_id: str,
        *,
        incident_id: int | None,
        channel: str | None,
        state: WalkState,
        actor: str | None,
    ) -> SessionRecord:
        return self.store.start_runbook_session(
            runbook_id,
            incident_id=incident_id,
            channel=channel,
            state=state.to_json(),
            actor=actor,
        )

    def load(self, session_id: int) -> SessionRecord | None:
        from bot.incident.store import StoreError

        try:
            return self.store.runbook_session(session_id)
        except StoreError:
            return None

    def save_if_version(
        self,
        session_id: int,
        expected_version: int,
        new_state: WalkState,
        actor: str | None,
        message_ts: str | None = None,
    ) -> bool:
        from bot.incident.store import StaleSession

        try:
            self.store.update_runbook_session(
                session_id,
                state=new_state.to_json(),
                expected_version=expected_version,
                actor=actor,
                message_ts=message_ts,
            )
        except StaleSession:
            return False
        return True


def load_state(record: SessionRecord) -> WalkState:
    """The walk state of a stored session, at the session's version."""
    return WalkState.from_json(record.state, version=record.version)


def advance(
    store: SessionStore,
    walker: Walker,
    session_id: int,
    action: Action,
    actor: str,
    now: datetime | None = None,
    *,
    attempts: int = 5,
) -> tuple[WalkState, str]:
    """Load, apply, and save only if nobody saved in between; the loser gets StaleAction.

    Notes and run results do not depend on the latest version, so a lost race is retried on
    the newer state (up to ``attempts`` times); a click that moves the walk is not.
    """
    for _ in range(attempts):
        record = store.load(session_id)
        if record is None:
            raise InvalidAction("that walkthrough no longer exists")
        state = load_state(record)
        new, line = walker.apply(state, action, actor, now)
        if store.save_if_version(session_id, state.version, new, actor):
            return new, line
        if ActionKind(action.kind) not in (ActionKind.NOTE, ActionKind.RESULT):
            break
    raise StaleAction("someone else moved this walkthrough on at the same moment")
