"""Read-only AWS sessions and the caller the checks use.

The session the checks get is an allow list: its clients can call only the operations the
checks declare in their ``reads`` (exactly the actions of the generated IAM policy, see
``bot.diagnosis.iam``). Anything else, another service's client included, is refused with
``ReadOnlyViolation`` before its parameters are built and again just before the request is
signed. The refusal is built into the session's event emitter rather than registered on it, so
``session.events.unregister`` (or ``client.meta.events.unregister``) cannot take it away.

Reads that would bring a secret into the process (``secretsmanager:GetSecretValue``,
``ecr:GetAuthorizationToken``, ...) can never be declared: the policy and the session refuse
a check that asks for one.

Example::

    aws = AwsCaller(read_only_session("us-east-1"))  # the registered checks' reads
    rules = await aws.call("elbv2", "describe_rules", ListenerArn=arn)
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.hooks import HierarchicalEmitter

from bot import metrics

READ_PREFIXES: tuple[str, ...] = ("Describe", "List", "Get")

# Reads whose names do not start with a read prefix.
READ_OPERATIONS: frozenset[str] = frozenset(
    {
        "FilterLogEvents",  # logs
        "LookupEvents",  # cloudtrail
        "DiscoverInstances",  # servicediscovery
        "TestDNSAnswer",  # route53
        "HeadObject",  # s3
        "HeadBucket",  # s3
        "SimulatePrincipalPolicy",  # iam: evaluates a policy, changes nothing
    }
)

# Operations that look like reads but hand out secrets or credentials: never allowed.
DENIED_OPERATIONS: frozenset[str] = frozenset(
    {
        "GetSecretValue",  # secretsmanager
        "BatchGetSecretValue",  # secretsmanager
        "GetRandomPassword",  # secretsmanager
        "GetParameter",  # ssm: SecureString values with WithDecryption
        "GetParameters",
        "GetParametersByPath",
        "GetParameterHistory",
        "GetSessionToken",  # sts
        "GetFederationToken",  # sts
        "GetAuthorizationToken",  # ecr, codeartifact
        "GetDownloadUrlForLayer",  # ecr: a presigned URL
        "GetPasswordData",  # ec2: Windows administrator password
        "GetRoleCredentials",  # sso
        "GetCredentialsForIdentity",  # cognito-identity
        "GetOpenIdToken",
        "GetOpenIdTokenForDeveloperIdentity",
        "GetClusterCredentials",  # redshift
        "GetClusterCredentialsWithIAM",
        "GetApiKey",  # apigateway (includeValue)
        "GetApiKeys",
        "Decrypt",  # kms (not a Get, listed so the reason is explicit)
        "GenerateDataKey",
    }
)

# boto3 service names whose IAM action prefix differs.
IAM_PREFIX: dict[str, str] = {
    "elbv2": "elasticloadbalancing",
    "elb": "elasticloadbalancing",
    "monitoring": "cloudwatch",
    "cloudwatch": "cloudwatch",
}
# S3 operations authorised by a differently named IAM action.
_S3_ACTIONS: dict[str, str] = {
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "HeadObject": "GetObject",
    "HeadBucket": "ListBucket",
}

_ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "AuthorizationError",
        "NotAuthorized",
    }
)

# The check the current task runs for; the runner sets it so recorded calls name their check.
current_check: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_check", default=None
)


class ReadOnlyViolation(PermissionError):
    """A check (or anyone holding the session) tried an operation no check declares."""

    def __init__(self, service: str, operation: str, outside: str | None = None) -> None:
        self.service = service
        self.operation = operation
        self.outside = outside
        where = f" outside {outside}" if outside else ""
        super().__init__(
            f"refused {service}:{operation}{where}: the diagnostics session may only make the "
            "reads the checks declare (the generated IAM policy); nothing was sent"
        )


class AwsNotChecked(Exception):
    """AWS did not answer a read the way a finding needs: a fact about the bot's access or
    the AWS endpoint, never evidence that a resource is missing.

    ``reason`` reads after "not checked: ", e.g. ``AccessDenied on rds:DescribeDBInstances``.
    """

    def __init__(self, action: str, reason: str, detail: str = "") -> None:
        self.action = action
        self.reason = reason
        self.detail = detail
        super().__init__(f"not checked: {reason}" + (f" ({detail})" if detail else ""))


class AwsAccessDenied(AwsNotChecked, PermissionError):
    """AWS refused a read; ``permission`` is the IAM action the bot's role lacks."""

    def __init__(self, permission: str, message: str = "") -> None:
        self.permission = permission
        super().__init__(permission, f"AccessDenied on {permission}", message)


class AwsThrottled(AwsNotChecked):
    """AWS throttled a read (after botocore's own retries)."""

    def __init__(self, action: str, code: str) -> None:
        super().__init__(action, f"AWS throttled {action} ({code})")


class AwsUnreachable(AwsNotChecked):
    """The AWS endpoint did not answer (connection refused, timed out, DNS)."""

    def __init__(self, action: str, detail: str) -> None:
        super().__init__(action, "the AWS endpoint is unreachable", detail)


_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)


def iam_action(service: str, operation: str) -> str:
    """The IAM action that authorises an operation: ``elasticloadbalancing:DescribeRules``."""
    if service == "s3":
        operation = _S3_ACTIONS.get(operation, operation)
    return f"{IAM_PREFIX.get(service, service)}:{operation}"


def is_read(operation: str) -> bool:
    """Whether an API operation name (``DescribeRules``) is a harmless read."""
    if operation in DENIED_OPERATIONS:
        return False
    return operation in READ_OPERATIONS or operation.startswith(READ_PREFIXES)


# Declared reads that are further limited to some resources, with the IAM resource that says
# the same in the policy. S3 objects may hold anything: the checks only read the load
# balancer's access logs, so only keys in AWS's access-log layout can be read.
RESOURCE_SCOPES: dict[str, tuple[re.Pattern[str], str]] = {
    "s3:GetObject": (
        re.compile(r"(^|/)AWSLogs/\d{12}/elasticloadbalancing/"),
        "arn:aws:s3:::*/AWSLogs/*/elasticloadbalancing/*",
    ),
}


def declared_action(read: str) -> str:
    """The IAM action of a check's declared read: ``elbv2:DescribeRules`` and
    ``elasticloadbalancing:DescribeRules`` both give the latter; ``s3:ListObjectsV2`` gives
    ``s3:ListBucket``."""
    prefix, _, operation = read.partition(":")
    return iam_action(prefix, operation)


def allowed_actions(checks: Iterable[Any] | None = None) -> frozenset[str]:
    """The IAM actions ``checks`` declare (default: every registered check).

    Raises:
        ValueError: a check declares something that is not a read, or reads a secret.
    """
    if checks is None:
        from bot.diagnosis.checks import REGISTRY  # registers the built-in checks

        checks = REGISTRY.values()
    actions = frozenset(declared_action(read) for check in checks for read in check.reads)
    bad = sorted(a for a in actions if not is_read(a.partition(":")[2]))
    if bad:
        raise ValueError(f"checks declare actions that are not reads: {', '.join(bad)}")
    return actions


def _refuse_unless_allowed(
    model: Any, params: Any, allowed: frozenset[str], *, check_resource: bool
) -> None:
    if model is None:
        raise ReadOnlyViolation("?", "?")
    service = model.service_model.service_name
    action = iam_action(service, model.name)
    if not is_read(model.name) or action not in allowed:
        raise ReadOnlyViolation(service, model.name)
    scope = RESOURCE_SCOPES.get(action)
    if scope and check_resource:
        key = params.get("Key") if isinstance(params, dict) else None
        if not isinstance(key, str) or not scope[0].search(key):
            raise ReadOnlyViolation(service, model.name, outside=scope[1])


_GUARDED_EVENTS = ("before-parameter-build.", "before-call.")


class _GuardedEmitter(HierarchicalEmitter):
    """botocore's event emitter with the allow list built in: it runs before any handler on
    the two events every operation passes through, and no ``unregister`` can remove it."""

    def __init__(self, allowed: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self._allowed = frozenset(allowed)

    def _emit(self, event_name: str, kwargs: dict[str, Any], stop_on_response: bool = False):  # type: ignore[override]
        if event_name.startswith(_GUARDED_EVENTS):
            # The API parameters (the S3 key) are only there before they are built.
            _refuse_unless_allowed(
                kwargs.get("model"),
                kwargs.get("params"),
                self._allowed,
                check_resource=event_name.startswith("before-parameter-build."),
            )
        return super()._emit(event_name, kwargs, stop_on_response)

    # HierarchicalEmitter.__copy__ (each client gets a copy) keeps the class and __dict__,
    # so every client of the session carries the same allow list.


class ReadOnlySession(boto3.Session):
    """A boto3 session whose clients can make only the ``allowed`` IAM actions.

    Credentials, profile and endpoint come from boto3's own chain (``AWS_PROFILE``,
    ``AWS_REGION``, ``AWS_ENDPOINT_URL``).
    """

    def __init__(
        self,
        *,
        allowed: Iterable[str],
        region_name: str | None = None,
        profile_name: str | None = None,
    ) -> None:
        self._allowed = frozenset(allowed)
        core = botocore.session.Session(event_hooks=_GuardedEmitter(self._allowed))
        super().__init__(botocore_session=core, region_name=region_name, profile_name=profile_name)

    @property
    def allowed(self) -> frozenset[str]:
        """The IAM actions this session's clients may call."""
        return self._allowed

    def _service_allowed(self, service_name: str) -> None:
        prefix = IAM_PREFIX.get(service_name, service_name) + ":"
        if not any(action.startswith(prefix) for action in self._allowed):
            raise ReadOnlyViolation(service_name, "*")

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """A client for a service some check reads; any other service is refused here."""
        self._service_allowed(service_name)
        return super().client(service_name, *args, **kwargs)

    def resource(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self._service_allowed(service_name)
        return super().resource(service_name, *args, **kwargs)


def read_only_session(
    region: str | None = None,
    *,
    allowed: Iterable[str] | None = None,
    profile: str | None = None,
) -> ReadOnlySession:
    """A session whose clients can only make ``allowed`` (default: the registered checks'
    declared reads, the same actions as the generated IAM policy).

    ``region`` wins over ``AWS_REGION`` when given.
    """
    actions = allowed_actions() if allowed is None else frozenset(allowed)
    return ReadOnlySession(allowed=actions, region_name=region, profile_name=profile)


def guard_session(session: boto3.Session, allowed: Iterable[str] | None = None) -> ReadOnlySession:
    """``session`` as a read-only session: itself if it already is one, else a new
    :class:`ReadOnlySession` with its region and profile (credentials from the same chain)."""
    if isinstance(session, ReadOnlySession) and allowed is None:
        return session
    profile = session.profile_name if session.profile_name != "default" else None
    return read_only_session(session.region_name, allowed=allowed, profile=profile)


CLIENT_CONFIG = Config(
    # Cloud Map's DiscoverInstances prepends "data-" to the host, which breaks custom endpoints.
    inject_host_prefix=False,
    retries={"max_attempts": 2, "mode": "standard"},
    connect_timeout=5,
    read_timeout=10,
)


@dataclass(frozen=True)
class AwsCall:
    """One AWS call a check made: ``("elbv2", "DescribeRules", "routing.listener-rules")``."""

    service: str
    operation: str
    check_id: str | None

    @property
    def iam_action(self) -> str:
        return iam_action(self.service, self.operation)


class AwsCaller:
    """Runs read-only boto3 calls off the event loop, with clients cached per service.

    Args:
        session: a session from :func:`read_only_session`; any other is replaced by a
            read-only one with its region and profile (:func:`guard_session`).
        latency: seconds added to every call, in the calling thread (benchmarks).
        max_workers: threads for AWS calls; its own pool so slow AWS calls do not starve
            other ``asyncio.to_thread`` users.
    """

    def __init__(
        self,
        session: boto3.Session,
        *,
        latency: float = 0.0,
        max_workers: int = 16,
        config: Config | None = None,
    ) -> None:
        self.session = guard_session(session)
        self.latency = latency
        # The latest calls (for tests and the IAM check); bounded, as one caller serves a
        # process's diagnoses for as long as it runs.
        self.calls: deque[AwsCall] = deque(maxlen=10_000)
        self._config = config or CLIENT_CONFIG
        self._clients: dict[str, Any] = {}
        self._client_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aws")

    def client(self, service: str) -> Any:
        """The cached client for ``service``, made on first use under a lock.

        boto3 sessions are not thread-safe, so clients are created one at a time.
        """
        with self._client_lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, config=self._config)
            return self._clients[service]

    def _call_sync(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        client = self.client(service)
        api_name = client.meta.method_to_api_mapping.get(operation)
        if api_name is None:
            raise AttributeError(f"{service} has no operation {operation!r}")
        self.calls.append(AwsCall(service, api_name, current_check.get()))
        if self.latency:
            time.sleep(self.latency)
        action = iam_action(service, api_name)
        try:
            return getattr(client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code")
            metrics.ERRORS.labels("aws", metrics.error_kind(code or "unknown")).inc()
            if code in _ACCESS_DENIED_CODES:
                raise AwsAccessDenied(action, _one_line(error.get("Message", ""))) from None
            if code in _THROTTLING_CODES:
                raise AwsThrottled(action, code) from None
            raise
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
            raise AwsUnreachable(action, _one_line(str(exc))) from None

    async def call(self, service: str, operation: str, **params: Any) -> Any:
        """Call ``operation`` (the boto3 method name, ``describe_rules``) on ``service``."""
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, ctx.run, self._call_sync, service, operation, params
        )

    def close(self) -> None:
        """Stop the thread pool (running calls finish in the background)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong with an AWS call, for a check's ``error`` summary."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        op = exc.operation_name
        return _one_line(f"{op} failed: {error.get('Code', '?')}: {error.get('Message', '')}")
    if isinstance(exc, BotoCoreError):
        return _one_line(f"AWS call failed: {exc}")
    return _one_line(f"{type(exc).__name__}: {exc}")
