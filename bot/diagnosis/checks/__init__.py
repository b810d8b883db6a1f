"""The check registry. Every built-in check module is imported here, like datasette's
DEFAULT_PLUGINS: importing ``bot.diagnosis.checks`` registers them all in ``REGISTRY``."""

import importlib

from bot.diagnosis.checks.base import (
    REGISTRY,
    Check,
    CheckContext,
    CheckResult,
    Classification,
    Status,
)

# Modules that register checks, in request-path order.
CHECK_MODULES: tuple[str, ...] = (
    "dns",
    "edge",
    "routing",
    "targets",
    "compute",
    "network",
    "app",
    "auth",
    "mlflow",
    "data",
    "logs",
    "changes",
)

# Every module must import: a renamed file must fail loudly, not drop a layer of checks
# (which would silently move the first failing hop).
for _name in CHECK_MODULES:
    importlib.import_module(f"bot.diagnosis.checks.{_name}")

__all__ = [
    "CHECK_MODULES",
    "REGISTRY",
    "Check",
    "CheckContext",
    "CheckResult",
    "Classification",
    "Status",
]
