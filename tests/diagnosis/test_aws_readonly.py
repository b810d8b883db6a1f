"""The diagnostics session can only read: every mutating operation is refused before sending."""

from __future__ import annotations

import asyncio

import boto3
import pytest
from botocore.exceptions import ClientError

from bot.diagnosis.aws import (
    DENIED_OPERATIONS,
    RESOURCE_SCOPES,
    AwsAccessDenied,
    AwsCaller,
    ReadOnlyViolation,
    allowed_actions,
    iam_action,
    is_read,
    read_only_session,
)

# The services the checks use; services named in any registered check's reads are added.
BASE_SERVICES = (
    "ec2",
    "elbv2",
    "ecs",
    "rds",
    "route53",
    "logs",
    "servicediscovery",
    "s3",
    "cloudtrail",
)
_IAM_TO_BOTO = {"elasticloadbalancing": "elbv2", "cloudwatch": "cloudwatch"}


def _services_used() -> list[str]:
    import bot.diagnosis.checks  # noqa: F401  (registers the checks)
    from bot.diagnosis.checks.base import REGISTRY

    names = set(BASE_SERVICES)
    for check in REGISTRY.values():
        for read in check.reads:
            prefix = read.split(":", 1)[0]
            names.add(_IAM_TO_BOTO.get(prefix, prefix))
    return sorted(names)


class _Sent(Exception):
    """Raised by a before-send hook: the request would have left the process."""


@pytest.fixture
def fake_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def _offline_client(session: boto3.Session, service: str, sent: list[str]):
    client = session.client(service, endpoint_url="http://127.0.0.1:9")

    def record(request, **_):
        sent.append(request.url)
        raise _Sent()

    client.meta.events.register("before-send", record)
    return client


@pytest.mark.parametrize("service", _services_used())
def test_only_declared_operations_reach_the_wire(fake_credentials, service):
    """Every operation no check declares is refused before sending, reads included; every
    declared one (the generated IAM policy's actions) is sent."""
    session = read_only_session("us-east-1")
    allowed = allowed_actions()
    sent: list[str] = []
    client = _offline_client(session, service, sent)
    operations = session._session.get_service_model(service).operation_names
    python_names = {api: py for py, api in client.meta.method_to_api_mapping.items()}
    refused, reached, scoped = [], [], []
    for api_name in operations:
        method = getattr(client, python_names[api_name])
        before = len(sent)
        try:
            method()
        except ReadOnlyViolation as exc:
            assert exc.operation == api_name
            assert len(sent) == before, f"{api_name} was sent before being refused"
            (scoped if exc.outside else refused).append(api_name)
        except Exception:  # reached the wire (_Sent) or failed on its parameters
            reached.append(api_name)
    declared = sorted(op for op in operations if iam_action(service, op) in allowed)
    # Declared reads limited to some resources (S3 objects) refuse a call naming none.
    assert sorted(scoped) == [op for op in declared if iam_action(service, op) in RESOURCE_SCOPES]
    assert sorted(reached + scoped) == declared
    assert sorted(refused) == sorted(set(operations) - set(declared))
    # Writes are a subset of what is refused, whatever the checks declare.
    assert {op for op in operations if not is_read(op)} <= set(refused)
    assert declared, f"no check reads {service}, yet it is in the list of services used"


def test_a_read_reaches_the_wire(fake_credentials):
    sent: list[str] = []
    client = _offline_client(read_only_session("us-east-1"), "elbv2", sent)
    with pytest.raises(_Sent):
        client.describe_load_balancers()
    assert len(sent) == 1


def test_a_write_never_reaches_the_wire(fake_credentials):
    sent: list[str] = []
    client = _offline_client(read_only_session("us-east-1"), "elbv2", sent)
    with pytest.raises(ReadOnlyViolation, match="elbv2:DeleteLoadBalancer"):
        client.delete_load_balancer(LoadBalancerArn="arn:aws:elasticloadbalancing:x")
    assert sent == []


@pytest.mark.parametrize(
    ("service", "method", "params"),
    [
        ("secretsmanager", "get_secret_value", {"SecretId": "db"}),
        ("ssm", "get_parameter", {"Name": "/db/password", "WithDecryption": True}),
        ("ssm", "get_parameters_by_path", {"Path": "/db"}),
        ("kms", "decrypt", {"CiphertextBlob": b"x"}),
        ("kms", "generate_data_key", {"KeyId": "k"}),
        ("sts", "get_session_token", {}),
        ("sts", "get_federation_token", {"Name": "n"}),
        ("ecr", "get_authorization_token", {}),
        ("ec2", "get_password_data", {"InstanceId": "i-1"}),
    ],
)
def test_reads_that_would_fetch_a_secret_are_refused(fake_credentials, service, method, params):
    sent: list[str] = []
    session = read_only_session("us-east-1")
    with pytest.raises(ReadOnlyViolation):
        # No check reads these services: the client itself is refused.
        client = _offline_client(session, service, sent)
        getattr(client, method)(**params)
    assert sent == []
    # Even a session that allowed the action by mistake never sends a secret read.
    permissive = read_only_session("us-east-1", allowed=[iam_action(service, "Describe")])
    client = _offline_client(permissive, service, sent)
    with pytest.raises(ReadOnlyViolation):
        getattr(client, method)(**params)
    assert sent == []


@pytest.mark.parametrize(
    ("service", "method", "params"),
    [
        # Secret-bearing reads the old deny list did not know: no check declares them.
        ("s3", "get_object", {"Bucket": "app-config", "Key": "prod/.env"}),
        ("lambda", "get_function_configuration", {"FunctionName": "api"}),
        ("glue", "get_connection", {"Name": "warehouse"}),
        ("ec2", "describe_instance_attribute", {"InstanceId": "i-1", "Attribute": "userData"}),
        ("dynamodb", "get_item", {"TableName": "sessions", "Key": {"id": {"S": "1"}}}),
        ("iam", "list_access_keys", {}),
    ],
)
def test_undeclared_reads_are_refused_before_sending(fake_credentials, service, method, params):
    sent: list[str] = []
    session = read_only_session("us-east-1")
    with pytest.raises(ReadOnlyViolation):
        client = _offline_client(session, service, sent)
        getattr(client, method)(**params)
    assert sent == []


def test_s3_objects_are_readable_only_where_load_balancers_write_logs(fake_credentials):
    sent: list[str] = []
    client = _offline_client(read_only_session("us-east-1"), "s3", sent)
    with pytest.raises(ReadOnlyViolation, match="GetObject outside arn:aws:s3"):
        client.get_object(Bucket="hokusai-logs", Key="prod/secrets.env")
    assert sent == []
    log_key = "alb/AWSLogs/123456789012/elasticloadbalancing/us-east-1/2026/03/01/x.log.gz"
    with pytest.raises(_Sent):
        client.get_object(Bucket="hokusai-logs", Key=log_key)
    assert len(sent) == 1


def test_the_guard_cannot_be_unregistered(fake_credentials):
    """The allow list is part of the emitter, not a handler on it: unregistering every hook
    the session and the client have leaves it in place."""
    session = read_only_session("us-east-1")
    for event in ("before-parameter-build", "before-call"):
        session.events.unregister(event, unique_id="hokusai-read-only-1")
        session.events.unregister(event, unique_id="hokusai-read-only-2")
    sent: list[str] = []
    client = _offline_client(session, "elbv2", sent)
    for emitter in (session.events, client.meta.events):
        for event in ("before-parameter-build", "before-call"):
            handlers = list(emitter._emitter._handlers.prefix_search(event))
            for handler in handlers:
                emitter.unregister(event, handler)
    with pytest.raises(ReadOnlyViolation):
        client.delete_load_balancer(LoadBalancerArn="arn:aws:elasticloadbalancing:x")
    with pytest.raises(ReadOnlyViolation):
        client.describe_account_limits()  # a read, but no check declares it
    assert sent == []


def test_deny_list_names_only_real_operations():
    """A typo in the deny-list would silently allow the real operation."""
    session = boto3.Session(region_name="us-east-1")
    known = set()
    for service in ("secretsmanager", "ssm", "sts", "ecr", "ec2", "kms", "sso", "redshift"):
        known |= set(session._session.get_service_model(service).operation_names)
    for service in ("cognito-identity", "apigateway", "codeartifact"):
        known |= set(session._session.get_service_model(service).operation_names)
    assert known >= DENIED_OPERATIONS


def test_a_plain_session_handed_to_the_caller_becomes_read_only(fake_credentials):
    caller = AwsCaller(boto3.Session(region_name="us-east-1"))
    sent: list[str] = []
    client = _offline_client(caller.session, "ecs", sent)
    with pytest.raises(ReadOnlyViolation):
        client.update_service(cluster="c", service="s", desiredCount=0)
    with pytest.raises(ReadOnlyViolation):
        caller.session.client("secretsmanager")
    assert sent == []
    caller.close()


async def test_caller_records_calls_and_names_missing_permission(fake_credentials, monkeypatch):
    caller = AwsCaller(read_only_session("us-east-1"))
    client = caller.client("elbv2")

    def deny(**_):
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "User: x is not authorized"}},
            "DescribeRules",
        )

    monkeypatch.setattr(client, "describe_rules", deny)
    with pytest.raises(AwsAccessDenied, match=r"elasticloadbalancing:DescribeRules"):
        await caller.call("elbv2", "describe_rules", ListenerArn="arn")
    assert [(c.service, c.operation) for c in caller.calls] == [("elbv2", "DescribeRules")]
    caller.close()


async def test_caller_latency_is_paid_concurrently(fake_credentials, monkeypatch):
    caller = AwsCaller(read_only_session("us-east-1"), latency=0.2)
    client = caller.client("ecs")
    monkeypatch.setattr(client, "list_clusters", lambda **_: {"clusterArns": []})
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(caller.call("ecs", "list_clusters") for _ in range(8)))
    elapsed = loop.time() - start
    assert 0.2 <= elapsed < 0.6
    caller.close()


@pytest.mark.parametrize("scenario", ["seed-outage"])
async def test_every_aws_call_a_check_makes_is_declared_in_its_reads(fake_credentials, scenario):
    import httpx
    from moto import mock_aws

    import bot.diagnosis.checks
    from bot.config import load_config
    from bot.diagnosis.iam import iam_action as declared_action
    from bot.diagnosis.runner import Runner
    from bot.sandbox.dns_server import DnsServer
    from bot.sandbox.platform import build_platform

    env = load_config("hokusai.yml").environment()
    dns_server = DnsServer({env.public.hostname: ["52.44.61.20"]}).start()
    # No lookups leave the machine: a loopback resolver, and no MlflowClient round trip
    # (it uses requests, not the runner's HTTP client).
    env = env.model_copy(
        update={
            "dns": env.dns.model_copy(update={"nameservers": [dns_server.address]}),
            "mlflow": None,
        }
    )

    def offline(request):
        raise httpx.ConnectError("offline", request=request)

    with mock_aws():
        build_platform(boto3.Session(region_name=env.region), env, scenario=scenario)
        caller = AwsCaller(read_only_session(env.region))
        async with httpx.AsyncClient(transport=httpx.MockTransport(offline)) as http:
            await Runner(env, aws=caller, http=http, secrets={}).run()
        caller.close()
    dns_server.stop()
    assert caller.calls, "the checks made no AWS calls at all"
    undeclared = set()
    for call in caller.calls:
        check = bot.diagnosis.checks.REGISTRY[call.check_id]
        declared = {declared_action(read) for read in check.reads}
        if call.iam_action not in declared:
            undeclared.add(f"{call.check_id} calls {call.iam_action}")
    assert not undeclared, sorted(undeclared)


def test_on_moto_only_the_declared_reads_get_answers(fake_credentials):
    """Against a real (moto) S3 and Lambda: the access log is readable, the app's config file
    in the same account is not, and no client for Lambda can even be made."""
    from moto import mock_aws

    log_key = "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2026/03/01/a.log.gz"
    with mock_aws():
        admin = boto3.client("s3", region_name="us-east-1")
        for bucket, key in (("access-logs", log_key), ("app-config", "prod/.env")):
            admin.create_bucket(Bucket=bucket)
            admin.put_object(Bucket=bucket, Key=key, Body=b"contents")
        caller = AwsCaller(read_only_session("us-east-1"))
        s3 = caller.client("s3")
        assert s3.get_object(Bucket="access-logs", Key=log_key)["Body"].read() == b"contents"
        listed = s3.list_objects_v2(Bucket="app-config")["Contents"]
        assert [o["Key"] for o in listed] == ["prod/.env"]  # listing names is a declared read
        with pytest.raises(ReadOnlyViolation):
            s3.get_object(Bucket="app-config", Key="prod/.env")
        with pytest.raises(ReadOnlyViolation):
            s3.put_object(Bucket="access-logs", Key="x", Body=b"y")
        with pytest.raises(ReadOnlyViolation):
            caller.client("lambda")
        with pytest.raises(ReadOnlyViolation):
            asyncio.run(caller.call("s3", "list_buckets"))
        caller.close()
