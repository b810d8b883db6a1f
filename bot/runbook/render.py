"""Block Kit for a walkthrough: one message with the steps, the current step and its buttons.

Every button's value names the session, the step and the state version it was drawn from
(:class:`ButtonRef`), so a click on an out-of-date or tampered message is recognised and
refused instead of moving the walkthrough. Everything is kept within Slack's limits: 50
blocks, 3000 characters of section text, 150 of header, 75 of button text, 2000 of button
value, 255 of action and block ids, 25 elements an actions block.

Example::

    text, blocks = walkthrough_blocks(runbook, state, session_id=12)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.diagnosis.checks.base import Status
from bot.mrkdwn import link, user
from bot.runbook.model import Runbook, Step
from bot.runbook.walkthrough import CheckLine, InvalidAction, StepRecord, StepState, WalkState

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_VALUE = 2000
MAX_ID = 255
MAX_ACTIONS = 25
MAX_CONTEXT = 2000
# Sections of instructions shown for one step before the rest is cut.
MAX_BODY_SECTIONS = 4
MAX_RESULT_LINES = 15
MAX_NOTES_SHOWN = 5

ACTION_PREFIX = "runbook_"
RUN, DONE, SKIP, NOTE, CHOICE = "run", "done", "skip", "note", "choice"
NOTE_MODAL_CALLBACK = "runbook_note_modal"
NOTE_BLOCK, NOTE_INPUT = "note", "text"

STATE_EMOJI: dict[StepState, str] = {
    StepState.PENDING: ":white_large_square:",
    StepState.RUNNING: ":hourglass_flowing_sand:",
    StepState.PASSED: ":white_check_mark:",
    StepState.FAILED: ":x:",
    StepState.DONE: ":ballot_box_with_check:",
    StepState.SKIPPED: ":fast_forward:",
    StepState.ANSWERED: ":speech_balloon:",
    StepState.INTERRUPTED: ":warning:",
}
CURRENT_EMOJI = ":point_right:"


def _result_emoji(status: str) -> str:
    try:
        return Status(status).emoji
    except ValueError:
        return ":grey_question:"


@dataclass(frozen=True)
class ButtonRef:
    """What a walkthrough button carries: session, step, state version, and a choice index."""

    session_id: int
    step_id: str
    version: int
    choice: int | None = None

    def encode(self) -> str:
        data: dict[str, Any] = {"s": self.session_id, "p": self.step_id, "v": self.version}
        if self.choice is not None:
            data["c"] = self.choice
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: Any) -> ButtonRef:
        """Parse a button value or modal metadata; :class:`InvalidAction` if it is not one."""
        try:
            data = json.loads(raw)
            ref = cls(
                session_id=data["s"],
                step_id=data["p"],
                version=data["v"],
                choice=data.get("c"),
            )
        except (TypeError, ValueError, KeyError):
            raise InvalidAction("that button's value is not one I made") from None
        types_ok = (
            type(ref.session_id) is int
            and isinstance(ref.step_id, str)
            and type(ref.version) is int
            and (ref.choice is None or type(ref.choice) is int)
        )
        if not types_ok:
            raise InvalidAction("that button's value is not one I made")
        return ref


def action_id(kind: str, choice: int | None = None) -> str:
    """``runbook_run``, ``runbook_choice_2``: the action ids the command listens for."""
    return f"{ACTION_PREFIX}{kind}" + (f"_{choice}" if choice is not None else "")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int = MAX_BUTTON_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}}


def _context(*texts: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _cut(t, MAX_CONTEXT)} for t in texts[:10]],
    }


def _button(
    text: str, kind: str, ref: ButtonRef, style: str | None = None, choice: int | None = None
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id(kind, choice),
        "text": _plain(text),
        "value": ref.encode()[:MAX_VALUE],
    }
    if style:
        button["style"] = style
    return button


def _chunks(text: str, limit: int = MAX_SECTION - 100) -> list[str]:
    """Split long text at line (else word) boundaries into pieces under ``limit``."""
    pieces: list[str] = []
    current = ""
    for line in text.splitlines() or [""]:
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            pieces.append((current + "\n" if current else "") + line[:cut])
            current, line = "", line[cut:].lstrip()
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def _step_line(n: int, step: Step, record: StepRecord, current: bool, title_limit: int) -> str:
    emoji = CURRENT_EMOJI if current else STATE_EMOJI[record.state]
    title = _cut(step.title, title_limit)
    line = f"{emoji} {n}. *{title}*" if current else f"{emoji} {n}. {title}"
    if record.answer:
        line += f" — _{_cut(record.answer, 60)}_"
    elif record.state is StepState.RUNNING:
        line += " — _running…_"
    elif record.state is StepState.INTERRUPTED:
        line += " — _interrupted; run it again_"
    return line


def _steps_overview(runbook: Runbook, state: WalkState) -> str:
    """All steps with their state, shortened until they fit one section."""
    for title_limit in (150, 80, 50, 30, 15):
        lines = [
            _step_line(
                n, s, state.steps.get(s.id, StepRecord()), s.id == state.current, title_limit
            )
            for n, s in enumerate(runbook.steps, 1)
        ]
        text = "\n".join(lines)
        if len(text) <= MAX_SECTION:
            return text
    return _cut(text, MAX_SECTION)


def _result_lines(results: list[CheckLine]) -> str:
    ordered = sorted(results, key=lambda r: r.passing)  # failures first
    lines = []
    for line in ordered[:MAX_RESULT_LINES]:
        emoji = _result_emoji(line.status)
        text = f"{emoji} `{_cut(line.id, 80)}` {_cut(line.summary, 300)}"
        if not line.passing and line.hint:
            text += f"\n      _{_cut(line.hint, 200)}_"
        lines.append(text)
    if len(ordered) > MAX_RESULT_LINES:
        lines.append(f"…and {len(ordered) - MAX_RESULT_LINES} more")
    return "\n".join(lines)


def _last_results(runbook: Runbook, state: WalkState) -> tuple[Step, StepRecord] | None:
    """The most recent automated step with results, to show why the walk branched."""
    for step_id in reversed(state.path):
        record = state.steps.get(step_id)
        step = runbook.step(step_id)
        if step is not None and record is not None and record.results:
            return step, record
    return None


def _step_body(step: Step) -> str:
    if step.manual:
        body = step.manual.instructions.strip()
        if step.manual.link:
            body += "\n" + link(step.manual.link, "Open the reference")
        return body
    if step.automated:
        checks = ", ".join(f"`{c}`" for c in step.automated.checks)
        return f"Runs {checks}. Press *Run* to run them now; the results appear here."
    assert step.question is not None
    return step.question.prompt.strip()


def _buttons(step: Step, record: StepRecord, ref: ButtonRef) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = []
    if step.automated and record.state is not StepState.RUNNING:
        buttons.append(_button("Run", RUN, ref, "primary"))
    if step.manual:
        buttons.append(_button("Done", DONE, ref, "primary"))
    for i, choice in enumerate(step.question.choices if step.question else []):
        choice_ref = ButtonRef(ref.session_id, ref.step_id, ref.version, i)
        buttons.append(_button(choice.label, CHOICE, choice_ref, choice=i))
    buttons.append(_button("Skip", SKIP, ref))
    buttons.append(_button("Add note", NOTE, ref))
    return buttons


def _actions_blocks(buttons: list[dict[str, Any]], ref: ButtonRef) -> list[dict[str, Any]]:
    blocks = []
    for i in range(0, len(buttons), MAX_ACTIONS):
        block_id = f"runbook:{ref.session_id}:{ref.step_id}:{ref.version}:{i // MAX_ACTIONS}"
        blocks.append(
            {
                "type": "actions",
                "block_id": block_id[:MAX_ID],
                "elements": buttons[i : i + MAX_ACTIONS],
            }
        )
    return blocks


def walkthrough_blocks(
    runbook: Runbook, state: WalkState, session_id: int
) -> tuple[str, list[dict[str, Any]]]:
    """The walkthrough message: fallback text and blocks, within Slack's limits."""
    total = len(runbook.steps)
    step = runbook.step(state.current) if state.current else None
    meta = [f"Runbook `{runbook.id}`"]
    if state.env:
        meta.append(f"env `{state.env}`")
    if state.started_by:
        meta.append(f"started by {user(state.started_by)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"Runbook: {runbook.title}", MAX_HEADER)},
        _context(" · ".join(meta)),
        _section(_steps_overview(runbook, state)),
        {"type": "divider"},
    ]
    if step is None:
        if state.conclusion:
            text = f":checkered_flag: *Conclusion*\n{state.conclusion}"
        else:
            text = ":checkered_flag: *Finished*: every step on the way has been walked."
        blocks.append(_section(text))
        fallback = f"Runbook {runbook.title}: finished. {state.conclusion or ''}".strip()
    else:
        n = [s.id for s in runbook.steps].index(step.id) + 1
        record = state.steps.get(step.id, StepRecord())
        body = _chunks(f"*Step {n} of {total}: {step.title}*\n{_step_body(step)}")
        if len(body) > MAX_BODY_SECTIONS:
            body = [*body[: MAX_BODY_SECTIONS - 1], body[MAX_BODY_SECTIONS - 1] + "\n…"]
        blocks.extend(_section(piece) for piece in body)
        if record.state is StepState.RUNNING:
            who = f" (started by {user(record.by)})" if record.by else ""
            blocks.append(_context(f":hourglass_flowing_sand: Running the checks…{who}"))
        elif record.state is StepState.INTERRUPTED:
            blocks.append(
                _context(
                    ":warning: The bot stopped before these checks reported back; "
                    "nothing was recorded. Press *Run* to run them again."
                )
            )
        fallback = f"Runbook {runbook.title}: step {n} of {total}: {step.title}"
    last = _last_results(runbook, state)
    if last is not None:
        done_step, done_record = last
        verdict = "passed" if done_record.state is StepState.PASSED else "failed"
        title = f"*Results of “{done_step.title}”: {verdict}*"
        blocks.append(_section(f"{title}\n{_result_lines(done_record.results)}"))
    notes = sorted(
        (note for record in state.steps.values() for note in record.notes), key=lambda n: n.at
    )
    if notes:
        shown = notes[-MAX_NOTES_SHOWN:]
        lines = [f":memo: {user(note.actor)}: {_cut(note.text, 300)}" for note in shown]
        blocks.append(_context("\n".join(lines)))
    if step is not None:
        record = state.steps.get(step.id, StepRecord())
        ref = ButtonRef(session_id, step.id, state.version)
        blocks.extend(_actions_blocks(_buttons(step, record, ref), ref))
    done = sum(
        1 for r in state.steps.values() if str(r.state) not in ("pending", "running", "interrupted")
    )
    blocks.append(
        _context(f"walkthrough #{session_id} · {done} of {len(runbook.steps)} steps handled")
    )
    return _cut(fallback, 3000), _fit_count(blocks)


def _fit_count(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the buttons and the footer when something pushes past 50 blocks."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    tail = [b for b in blocks if b["type"] == "actions"] + blocks[-1:]
    head = [b for b in blocks[:-1] if b["type"] != "actions"]
    return head[: MAX_BLOCKS - len(tail)] + tail


def note_modal(ref: ButtonRef, step_title: str) -> dict[str, Any]:
    """The Add note modal; its metadata carries the button's reference."""
    return {
        "type": "modal",
        "callback_id": NOTE_MODAL_CALLBACK,
        "private_metadata": ref.encode(),
        "title": _plain("Add a note", 24),
        "submit": _plain("Add note", 24),
        "close": _plain("Cancel", 24),
        "blocks": [
            _context(f"Step: *{_cut(step_title, 150)}*"),
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "label": _plain("Note", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTE_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                    "placeholder": _plain("What did you find or try?", 150),
                },
            },
        ],
    }


def runbook_list_blocks(runbooks: list[Runbook]) -> tuple[str, list[dict[str, Any]]]:
    """The ``/hokusai runbook list`` answer."""
    if not runbooks:
        text = "No runbooks are installed (or none lints clean: run `hokusai runbook lint`)."
        return text, [_section(text)]
    lines = [
        f"• `{r.id}` — *{_cut(r.title, 100)}*\n    {_cut(' '.join(r.description.split()), 300)}"
        for r in runbooks
    ]
    blocks = [_section(piece) for piece in _chunks("\n".join(lines))][: MAX_BLOCKS - 1]
    blocks.append(_context("Start one with `/hokusai runbook start NAME`."))
    return f"{len(runbooks)} runbooks: " + ", ".join(r.id for r in runbooks), blocks
