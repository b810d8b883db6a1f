"""The one root of the errors a person can act on.

A ``HokusaiError``'s message is the sentence the user sees: in Slack as a short reply (mapped in
``commands._run``), on the command line as ``hokusai <sub>: message`` with ``exit_code``
(mapped in ``bot.cli.main``). Anything else that escapes is a bug: the user gets a short
"failed" line and the traceback goes to the log only.
"""

from __future__ import annotations


class HokusaiError(Exception):
    """An error with a message fit to show the person who asked."""

    exit_code = 2  # bad usage or config, on the command line

    @property
    def message(self) -> str:
        return str(self) or type(self).__name__
