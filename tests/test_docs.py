"""The README says what the code does: generated parts are current, nothing is undocumented."""

from __future__ import annotations

from bot import docs
from bot.cli import build_parser
from bot.settings import Settings
from commands import COMMANDS

README = docs.README.read_text()


def test_generated_sections_are_current():
    assert docs.render(README) == README, "run: .venv/bin/python -m bot.docs"


def test_every_setting_is_documented():
    missing = [n.upper() for n in Settings.model_fields if n.upper() not in README]
    assert not missing, f"README.md does not mention {missing}"


def test_every_cli_subcommand_is_documented():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = [name for name in sub.choices if f"hokusai {name}" not in README]
    assert not missing, f"README.md does not show {missing}"


def test_every_slack_subcommand_has_help():
    for module in COMMANDS.values():
        assert module.SUMMARY and module.USAGE, module.NAME
        assert f"/hokusai {module.NAME}" in README


def test_every_check_is_described():
    import bot.diagnosis.checks

    for check in bot.diagnosis.checks.REGISTRY.values():
        assert len(check.description) > 20, check.id
        assert f"`{check.id}`" in README
