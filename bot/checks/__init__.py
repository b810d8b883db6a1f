"""The check registry. Every built-in check module is imported here, like datasette's
DEFAULT_PLUGINS: importing ``bot.checks`` registers them all in ``REGISTRY``."""

import importlib

from bot.checks.base import REGISTRY, Check, CheckContext, CheckResult, Classification, Status

# Modules that register checks, in request-path order. A module missing here is not run.
CHECK_MODULES: tuple[str, ...] = ()

for _name in CHECK_MODULES:
    importlib.import_module(f"bot.checks.{_name}")

__all__ = ["CHECK_MODULES", "REGISTRY", "Check", "CheckContext", "CheckResult", "Classification", "Status"]
