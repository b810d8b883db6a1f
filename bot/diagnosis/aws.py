"""Read-only AWS sessions and the caller the checks use.

Every client made from :func:`read_only_session` carries a botocore hook that refuses any
operation that is not a read, before its parameters are even built and again just before the
request is sent. Reads are an allow-list (``Describe*``, ``List*``, ``Get*`` and a few named
operations) minus a deny-list of reads that would bring a secret into the process
(``secretsmanager:GetSecretValue``, ``ecr:GetAuthorizationToken``, ...).

Example::

    aws = AwsCaller(read_only_session("us-east-1"))
    rules = await aws.call("elbv2", "describe_rules", ListenerArn=arn)
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
    """A check (or anyone holding the session) tried an operation that is not a read."""

    def __init__(self, service: str, operation: str) -> None:
        self.service = service
        self.operation = operation
        super().__init__(
            f"refused {service}:{operation}: the diagnostics session is read-only "
            "(only Describe*, List*, Get* and named reads; never secrets)"
        )


class AwsAccessDenied(PermissionError):
    """AWS refused a read; the message names the IAM permission that is missing."""

    def __init__(self, permission: str, message: str = "") -> None:
        self.permission = permission
        detail = f" ({message})" if message else ""
        super().__init__(f"access denied: missing permission {permission}{detail}")


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


def _guard(model: Any = None, **_: Any) -> None:
    """botocore hook: refuse anything that is not a read, before it is sent."""
    if model is None or not is_read(model.name):
        service = model.service_model.service_name if model is not None else "?"
        raise ReadOnlyViolation(service, model.name if model is not None else "?")


def guard_session(session: boto3.Session) -> boto3.Session:
    """Install the read-only guard on ``session``; clients made afterwards carry it."""
    # Both events: before-parameter-build fires before parameter validation (so the refusal
    # is the error a caller sees), before-call is the last stop before the request is signed.
    session.events.register("before-parameter-build", _guard, unique_id="hokusai-read-only-1")
    session.events.register("before-call", _guard, unique_id="hokusai-read-only-2")
    return session


def read_only_session(region: str | None = None, *, profile: str | None = None) -> boto3.Session:
    """A boto3 session whose clients can only read.

    Credentials, profile and endpoint come from boto3's own chain (``AWS_PROFILE``,
    ``AWS_REGION``, ``AWS_ENDPOINT_URL``); ``region`` wins over ``AWS_REGION`` when given.
    """
    return guard_session(boto3.Session(region_name=region, profile_name=profile))


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
        session: a session from :func:`read_only_session` (the guard is installed if missing).
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
        self.calls: list[AwsCall] = []
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
        try:
            return getattr(client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            metrics.ERRORS.labels("aws", metrics.error_kind(error.get("Code", "unknown"))).inc()
            if error.get("Code") in _ACCESS_DENIED_CODES:
                raise AwsAccessDenied(
                    iam_action(service, api_name), _one_line(error.get("Message", ""))
                ) from None
            raise

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
