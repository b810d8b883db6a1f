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

DEMO_ENTRY = "bot.sandbox.demo"  # what `hokusai demo` imports, and everything it imports
# Modules of an extra for a feature the demo never uses, imported only inside the functions
# that need them (psycopg: only when HOKUSAI_DB is a postgresql:// URL).
ON_DEMAND = {"psycopg": "postgres"}


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


def _module_path(name: str):
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _third_party_imports() -> set[str]:
    """Third-party top-level modules the demo reaches, following the project's own imports.

    A module in ON_DEMAND counts only where it is imported at a module's top level.
    """
    found: set[str] = set()
    seen: set[str] = set()
    todo = [DEMO_ENTRY]
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for imported in names:
                top = imported.split(".")[0]
                if top in ("bot", "commands"):
                    todo.append(imported)
                elif top in ON_DEMAND and id(node) not in top_level:
                    continue
                elif top not in sys.stdlib_module_names:
                    found.add(top)
    return found


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
