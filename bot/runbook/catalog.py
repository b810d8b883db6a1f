"""The installed runbooks: loaded from the runbooks directory, reloaded when a file changes."""

from __future__ import annotations

from typing import Any

from bot.runbook.model import Runbook, default_runbooks_dir, load_runbooks

_catalog_cache: dict[tuple[Any, ...], dict[str, Runbook]] = {}


def catalog() -> dict[str, Runbook]:
    """The installed runbooks that lint clean, reloaded when a file changes."""
    directory = default_runbooks_dir()
    files = sorted(directory.glob("*.y*ml")) if directory.is_dir() else []
    key = (str(directory), *((str(p), p.stat().st_mtime_ns) for p in files))
    if key not in _catalog_cache:
        _catalog_cache.clear()
        _catalog_cache[key] = load_runbooks(directory)
    return _catalog_cache[key]
