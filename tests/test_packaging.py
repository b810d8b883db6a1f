"""`pip install 'hokusai-incident-bot[demo]'` is enough for `hokusai demo`.

The demo runs the sandbox: every third-party module it imports must come from the package's
dependencies or its `demo` extra, never from `test` alone.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires

from tests.doubles import REPO

DEMO_CODE = [REPO / "bot" / "cli" / "demo.py", *(REPO / "bot" / "sandbox").rglob("*.py")]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _with_their_requirements(names: set[str]) -> set[str]:
    """The distributions and what they pull in (boto3 brings botocore)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            wanted = requires(name) or []
        except PackageNotFoundError:
            continue
        todo += [_name(r) for r in wanted if "extra ==" not in r]
    return seen


def _third_party_imports() -> set[str]:
    found = set()
    for path in DEMO_CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("bot", "commands")}


def test_the_demo_needs_nothing_from_the_test_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    allowed = {_name(r) for r in project["dependencies"]}
    allowed |= {_name(r) for r in project["optional-dependencies"]["demo"]}
    allowed = _with_their_requirements(allowed)
    providers = packages_distributions()
    missing = {
        module: providers.get(module, [module])
        for module in _third_party_imports()
        if not {_name(d) for d in providers.get(module, [module])} & allowed
    }
    assert missing == {}


def test_the_test_extra_includes_the_demo() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "hokusai-incident-bot[demo,postgres]" in extras["optional-dependencies"]["test"]
