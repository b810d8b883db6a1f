"""Who may use Hokusai where: ``access.channels`` and ``access.environments``, in one place.

Every command and button that runs checks or reads an environment's findings asks here
(``require_channel``, ``require_environment``) and raises ``AccessRefused`` with the one text a
person sees; the command router and the button handlers turn it into an ephemeral reply.

User groups in ``access.environments.*.usergroups`` (ids ``S…`` or handles ``@oncall``) are
resolved with Slack's ``usergroups.list`` / ``usergroups.users.list`` and cached for
``ttl`` seconds. When Slack cannot say who is in a group, the group lets nobody in (closed,
not open) and the refusal says why.

Example::

    await services.access.require_environment("production", req.user_id)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.config import Access

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0


class AccessRefused(Exception):
    """The person may not do this here; ``str(exc)`` is what they are told."""


def channel_refusal() -> str:
    """What someone typing /hokusai in a channel outside ``access.channels`` is told."""
    return "Hokusai is not enabled in this channel (see `access.channels` in hokusai.yml)."


def environment_refusal(env: str, why: str = "") -> str:
    """What someone outside ``access.environments.ENV`` is told."""
    because = f" ({why})" if why else ""
    return (
        f":no_entry: `{env}` may only be used by the people listed under "
        f"`access.environments.{env}` in hokusai.yml{because}. Ask one of them, or an admin "
        "to add you."
    )


def incident_environments(store: Any, incident_id: int) -> list[str]:
    """The environments an incident's findings come from: its runs' and walkthroughs'."""
    envs = {run.env for run in store.runs(incident_id, limit=100_000) if run.env}
    for session in store.runbook_sessions(incident_id):
        env = (session.state or {}).get("env") if isinstance(session.state, dict) else None
        if env:
            envs.add(env)
    return sorted(envs)


class AccessControl:
    """The access rules of one app, with a cache of user-group members.

    Args:
        access: the ``access`` section of hokusai.yml.
        outbound: the Slack choke point (``usergroup_members``, ``usergroup_ids``).
        ttl: seconds a group's member list is trusted.
    """

    def __init__(
        self,
        access: Access,
        outbound: Any,
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = access
        self._outbound = outbound
        self._ttl = ttl
        self._clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._handles: tuple[float, dict[str, str]] | None = None
        self._lock = asyncio.Lock()

    def channel_allowed(self, channel_id: str, channel_name: str | None) -> bool:
        return self.rules.channel_allowed(channel_id, channel_name)

    def require_channel(self, channel_id: str, channel_name: str | None) -> None:
        """Raises ``AccessRefused`` outside ``access.channels``."""
        if channel_id and not self.rules.channel_allowed(channel_id, channel_name):
            raise AccessRefused(channel_refusal())

    async def require_environment(self, env: str | None, user_id: str) -> None:
        """Raises ``AccessRefused`` unless ``user_id`` may use ``env`` (None: no environment)."""
        if env is None:
            return
        rule = self.rules.environments.get(env)
        if rule is None or user_id in rule.users:
            return
        groups, problem = await self._groups_of(user_id, rule.usergroups)
        if not self.rules.environment_allowed(env, user_id, groups):
            raise AccessRefused(environment_refusal(env, problem))

    async def environment_allowed(self, env: str, user_id: str) -> bool:
        try:
            await self.require_environment(env, user_id)
        except AccessRefused:
            return False
        return True

    async def hidden_environments(self, user_id: str) -> frozenset[str]:
        """The environments whose findings ``user_id`` may not see (App Home leaves them out)."""
        return frozenset(
            [
                env
                for env in self.rules.environments
                if not await self.environment_allowed(env, user_id)
            ]
        )

    async def require(
        self,
        user_id: str,
        channel_id: str,
        channel_name: str | None,
        envs: list[str | None] | tuple[str | None, ...] = (),
    ) -> None:
        """The channel rule, then each environment's rule."""
        self.require_channel(channel_id, channel_name)
        for env in dict.fromkeys(envs):
            await self.require_environment(env, user_id)

    async def require_incident(self, store: Any, incident_id: int, user_id: str) -> None:
        """Raises ``AccessRefused`` unless ``user_id`` may use every environment whose
        findings the incident holds (its diagnose runs and walkthroughs)."""
        envs = await asyncio.to_thread(incident_environments, store, incident_id)
        for env in envs:
            await self.require_environment(env, user_id)

    async def _groups_of(self, user_id: str, wanted: list[str]) -> tuple[set[str], str]:
        """The groups of ``wanted`` that ``user_id`` is in, and a problem to tell if any
        group could not be read."""
        found: set[str] = set()
        problems: list[str] = []
        for group in wanted:
            try:
                members = await self._members_of(group)
            except (SlackApiError, LookupError) as exc:
                reason = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
                log.warning("could not read user group %s: %s", group, reason)
                problems.append(f"I could not read user group {group}: {reason}")
                continue
            if user_id in members:
                found.add(group)
        return found, "; ".join(problems)

    async def _members_of(self, group: str) -> frozenset[str]:
        async with self._lock:
            group_id = await self._group_id(group)
            cached = self._members.get(group_id)
            now = self._clock()
            if cached and now - cached[0] < self._ttl:
                return cached[1]
            members = frozenset(await self._outbound.usergroup_members(group_id))
            self._members[group_id] = (now, members)
            return members

    async def _group_id(self, group: str) -> str:
        if not group.startswith("@") and group[:1] == "S" and group[1:].isalnum():
            return group
        handle = group.lstrip("@")
        now = self._clock()
        if self._handles is None or now - self._handles[0] >= self._ttl:
            self._handles = (now, await self._outbound.usergroup_ids())
        try:
            return self._handles[1][handle]
        except KeyError:
            raise LookupError("no such user group handle") from None
