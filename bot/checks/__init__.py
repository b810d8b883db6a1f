"""The check registry. Every built-in check module is imported here, like datasette's
DEFAULT_PLUGINS: importing ``bot.checks`` registers them all in ``REGISTRY``."""

import importlib

from bot.checks.base import REGISTRY, Check, CheckContext, CheckResult, Classification, Status

# Modules that register checks, in request-path order. A module missing here is not run.
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

for _name in CHECK_MODULES:
    try:
        importlib.import_module(f"bot.checks.{_name}")
    except ModuleNotFoundError as exc:
        # Modules are written by different people; one not written yet is skipped, but a
        # missing dependency inside an existing module must still fail loudly.
        if exc.name != f"bot.checks.{_name}":
            raise

__all__ = [
    "CHECK_MODULES",
    "REGISTRY",
    "Check",
    "CheckContext",
    "CheckResult",
    "Classification",
    "Status",
]
