"""Test doubles and paths shared by the suite: one place, so no test keeps its own copy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class RecordingOutbound:
    """Stands in for Outbound where a test needs no Slack at all: keeps what would be posted.

    Posts are ``(channel, text)`` pairs; values still pass the real redactor, as they would.
    """

    def __init__(self, posts: list[tuple[str, str]] | None = None, delay: float = 0.0) -> None:
        self.posts: list[tuple[str, str]] = [] if posts is None else posts
        self.delay = delay

    async def post(self, channel, text, blocks=None, thread_ts=None) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.posts.append((channel, text))
        return f"{len(self.posts)}.000"

    def scrub(self, value: Any) -> Any:
        from bot.outbound import scrub

        return scrub(value)
