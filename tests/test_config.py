"""hokusai.yml is strict: a typo or a broken file stops the bot with one line, never a default.

Each case is what an operator would see on start-up: the file, the field and what is wrong.
"""

from __future__ import annotations

import copy
import os

import pytest
import yaml

from bot.config import ConfigError, load_config
from tests.doubles import REPO
from tests.slack.processes import run_cli

BASE = yaml.safe_load((REPO / "hokusai.yml").read_text())


def _write(tmp_path, data) -> str:
    path = tmp_path / "hokusai.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _error(tmp_path, data) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def _with(**changes):
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return data


def test_a_misspelt_access_key_is_an_error_with_a_suggestion(tmp_path):
    data = copy.deepcopy(BASE)
    data["acess"] = {"environments": {"development": {"users": ["U0BOSS"]}}}
    del data["access"]
    assert _error(tmp_path, data) == "acess: unknown key; did you mean `access`?"


@pytest.mark.parametrize(
    ("where", "typo", "meant"),
    [
        ("access", "enviroments", "environments"),
        ("access", "chanels", "channels"),
        ("environments.development", "regoin", "region"),
        ("environments.development.public", "hostnme", "hostname"),
        ("environments.development.routes.0", "protectd", "protected"),
        ("incidents", "summary_every_minute", "summary_every_minutes"),
    ],
)
def test_unknown_keys_at_every_level_name_their_path(tmp_path, where, typo, meant):
    data = copy.deepcopy(BASE)
    node = data
    for part in where.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    node[typo] = node.pop(meant, True)
    assert _error(tmp_path, data) == f"{where}.{typo}: unknown key; did you mean `{meant}`?"


def test_a_misspelt_user_list_cannot_lock_everyone_out_silently(tmp_path):
    data = _with(access={"environments": {"development": {"user": ["U0BOSS"]}}})
    message = _error(tmp_path, data)
    assert message == "access.environments.development.user: unknown key; did you mean `users`?"


def test_annotation_keys_are_allowed(tmp_path):
    data = _with(**{"x-owner": "platform", "environments__development__x-runbook": "wiki"})
    config = load_config(_write(tmp_path, data))
    assert config.environment("development").region == "us-east-1"


def test_an_access_rule_for_an_unknown_environment_is_an_error(tmp_path):
    data = _with(access={"environments": {"developmnt": {"users": ["U0BOSS"]}}})
    assert _error(tmp_path, data) == (
        "access.environments.developmnt: no environment of that name; did you mean `development`?"
    )


def test_user_names_instead_of_member_ids_are_an_error(tmp_path):
    data = _with(access={"environments": {"development": {"users": ["alice"]}}})
    message = _error(tmp_path, data)
    assert message.startswith("access.environments.development.users: 'alice' is not")


def test_usergroups_take_ids_or_handles(tmp_path):
    data = _with(
        access={"environments": {"development": {"usergroups": ["S0ONCALL", "@platform"]}}}
    )
    access = load_config(_write(tmp_path, data)).access
    assert access.environment_allowed("development", "U0ANY", {"platform"})
    assert access.environment_allowed("development", "U0ANY", {"S0ONCALL"})
    assert not access.environment_allowed("development", "U0ANY", {"S0OTHER"})
    bad = _with(access={"environments": {"development": {"usergroups": ["On Call!"]}}})
    assert "is not a user group id" in _error(tmp_path, bad)


def _raw_error(tmp_path, raw: bytes) -> str:
    path = tmp_path / "hokusai.yml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_a_binary_file_is_one_line(tmp_path):
    assert _raw_error(tmp_path, b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))).startswith(
        "a binary file"
    )


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    assert _raw_error(tmp_path, b"default_env: caf\xe9\n") == "not UTF-8 text (byte 16)"


@pytest.mark.parametrize("text", ["[" * 100_000, "a: " + "{a: " * 100_000 + "}" * 100_000])
def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path, text):
    assert "nested more than 64 levels deep" in _raw_error(tmp_path, text.encode())


def test_a_file_over_one_megabyte_is_refused_unread(tmp_path):
    assert _raw_error(tmp_path, b"# padding\n" * 120_000) == "larger than 1 MB; not a config"


def test_aliases_cannot_expand_into_a_billion_values(tmp_path):
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    message = _raw_error(tmp_path, "\n".join(lines).encode())
    assert "once aliases are expanded" in message


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x01\x02",
        b"[" * 100_000,
        b"acess: {}\ndefault_env: development\n",
    ],
)
def test_the_bot_stops_with_one_line_and_exit_2(bot_env, tmp_path, raw):
    bad = tmp_path / "hokusai.yml"
    bad.write_bytes(raw)
    env = {**os.environ, **bot_env, "HOKUSAI_CONFIG": str(bad)}
    proc = run_cli("serve", "--port", "0", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
