"""Resolve Cloud Map names (``mlflow.hokusai-development.local``) the way a task's DNS would.

Only what the question needs is read: the namespaces (a handful, listed once), the services
of the name's namespace until the name is found (pages of 100), the service itself, and its
instances. The cost does not grow with the other services in the namespace beyond their
pages, and the run's read cache makes every check that resolves the same name share the calls.

Example::

    found = await resolve(ctx.aws, "mlflow.hokusai-development.local")
    found.exists, found.instances       # the service is there; who answers the name
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.diagnosis.aws_cache import gather_bounded

AwsCall = Callable[..., Awaitable[Any]]

READS: tuple[str, ...] = (
    "servicediscovery:ListNamespaces",
    "servicediscovery:ListServices",
    "servicediscovery:GetService",
    "servicediscovery:ListInstances",
)
_PAGE = 100  # the most ListServices and ListInstances return at once


@dataclass
class CloudMapName:
    """A Cloud Map name and what backs it.

    ``namespace`` is None when no namespace holds the name; ``service_id`` is None when the
    namespace has no service of that name.
    """

    name: str
    namespace: str | None = None
    service_id: str | None = None
    instances: list[dict[str, Any]] = field(default_factory=list)
    # Services the namespace does hold, when the name was not among them (for the evidence).
    other_services: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.service_id is not None


async def _pages(
    aws: AwsCall, service: str, operation: str, key: str, **params: Any
) -> AsyncIterator[list[dict[str, Any]]]:
    token = None
    while True:
        page = await aws(service, operation, **params, **({"NextToken": token} if token else {}))
        yield page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


async def namespaces(aws: AwsCall) -> dict[str, str]:
    """Namespace name -> id, every page."""
    out: dict[str, str] = {}
    async for page in _pages(aws, "servicediscovery", "list_namespaces", "Namespaces"):
        out.update((ns["Name"], ns["Id"]) for ns in page)
    return out


def namespace_of(name: str, known: dict[str, str]) -> str | None:
    """The longest namespace ``name`` sits in: ``a.b.local`` is in ``b.local``."""
    labels = name.split(".")
    for i in range(1, len(labels)):
        candidate = ".".join(labels[i:])
        if candidate in known:
            return candidate
    return None


async def _service_id(aws: AwsCall, namespace_id: str, wanted: str) -> tuple[str | None, list[str]]:
    """The id of the service ``wanted`` in the namespace; else the names it does hold."""
    seen: list[str] = []
    namespace_filter = [{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
    async for page in _pages(
        aws,
        "servicediscovery",
        "list_services",
        "Services",
        Filters=namespace_filter,
        MaxResults=_PAGE,
    ):
        for summary in page:
            if summary["Name"] != wanted:
                seen.append(summary["Name"])
                continue
            # The summary does not say its namespace; the service does (and some stand-ins
            # ignore the namespace filter).
            service = (await aws("servicediscovery", "get_service", Id=summary["Id"]))["Service"]
            if service.get("NamespaceId") in (None, namespace_id):
                return summary["Id"], []
    return None, sorted(set(seen))


async def _instances(aws: AwsCall, service_id: str) -> list[dict[str, Any]]:
    out = []
    async for page in _pages(
        aws,
        "servicediscovery",
        "list_instances",
        "Instances",
        ServiceId=service_id,
        MaxResults=_PAGE,
    ):
        out += [
            {
                "id": i["Id"],
                "ipv4": i.get("Attributes", {}).get("AWS_INSTANCE_IPV4"),
                "port": i.get("Attributes", {}).get("AWS_INSTANCE_PORT"),
            }
            for i in page
        ]
    return out


async def resolve(aws: AwsCall, name: str, known: dict[str, str] | None = None) -> CloudMapName:
    """What ``name`` resolves to in Cloud Map: its namespace, service and instances.

    Args:
        aws: ``ctx.aws`` (the run's cached reads).
        name: a full name, ``service.namespace``.
        known: the namespaces from :func:`namespaces`, when the caller already has them.
    """
    known = known if known is not None else await namespaces(aws)
    namespace = namespace_of(name, known)
    if namespace is None:
        return CloudMapName(name)
    service_name = name[: -len(namespace) - 1]
    service_id, others = await _service_id(aws, known[namespace], service_name)
    if service_id is None:
        return CloudMapName(name, namespace, other_services=others)
    return CloudMapName(name, namespace, service_id, await _instances(aws, service_id))


async def resolve_all(aws: AwsCall, names: Iterable[str]) -> dict[str, CloudMapName]:
    """Resolve several names at once (the namespaces are listed once for all of them)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    known = await namespaces(aws)
    found = await gather_bounded(resolve(aws, name, known) for name in wanted)
    return dict(zip(wanted, found, strict=True))
