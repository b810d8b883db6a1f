"""network.security-groups on moto: open paths pass, a revoked rule fails naming groups and port."""

from bot.diagnosis.checks.base import Status
from tests.diagnosis.checks.ecs_fixtures import run_check, scenario_run, world


def test_healthy_security_groups_allow_every_hop():
    outcome = scenario_run("healthy").ours.outcome("network.security-groups")
    assert outcome.status is Status.PASS, outcome.result.summary
    hops = {(p["from"], p["to"], p["port"]) for p in outcome.result.evidence["paths"]}
    assert ("hokusai-api-development", "hokusai-mlflow-development", 5000) in hops
    assert ("hokusai-mlflow-development", "RDS hokusai-mlflow-development", 5432) in hops
    assert any(src.startswith("load balancer") and port == 8001 for src, _, port in hops)


def test_blocked_api_to_mlflow_is_the_first_failing_hop():
    run = scenario_run("sg-blocked")
    first = run.ours.first_failure
    assert (first.id, first.layer, str(first.result.classification)) == (
        "network.security-groups",
        "network",
        "infrastructure",
    )
    groups = run.security_groups
    assert f"{groups['mlflow']} (hokusai-mlflow-development) does not admit" in first.result.summary
    assert f"{groups['api']} (hokusai-api-development) on tcp/5000" in first.result.summary


def test_a_network_acl_denying_the_port_is_a_warning():
    with world("healthy") as w:
        ec2 = w.session.client("ec2")
        subnet = w.platform.private_subnet_ids[0]
        acl = ec2.create_network_acl(VpcId=w.platform.vpc_id)["NetworkAcl"]["NetworkAclId"]
        ec2.create_network_acl_entry(
            NetworkAclId=acl,
            RuleNumber=100,
            Protocol="6",
            RuleAction="deny",
            Egress=False,
            CidrBlock="10.0.0.0/16",
            PortRange={"From": 5000, "To": 5000},
        )
        current = ec2.describe_network_acls(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
        )["NetworkAcls"][0]
        assoc = next(a for a in current["Associations"] if a["SubnetId"] == subnet)
        ec2.replace_network_acl_association(
            AssociationId=assoc["NetworkAclAssociationId"], NetworkAclId=acl
        )
        result = run_check(w, "network.security-groups")
    assert result.status is Status.WARN, result.summary
    assert f"network ACL {acl} on {subnet} denies tcp/5000" in result.summary


def test_a_blocked_path_comes_with_the_command_that_opens_it():
    """The fix names the destination group, the source group and the port; run (here through
    boto3, with the same arguments) it opens the path and the check passes."""
    import re

    with world("sg-blocked") as w:
        result = run_check(w, "network.security-groups")
        assert result.status is Status.FAIL
        fix = result.evidence["fix"]
        shape = re.fullmatch(
            r"aws ec2 authorize-security-group-ingress --region (\S+) --group-id (sg-\w+) "
            r"--ip-permissions 'IpProtocol=tcp,FromPort=(\d+),ToPort=\3,"
            r"UserIdGroupPairs=\[\{GroupId=(sg-\w+)\}\]'",
            fix,
        )
        assert shape, fix
        region, group, port, peer = shape.groups()
        assert (region, int(port)) == (w.env.region, 5000)
        assert f"{group} (hokusai-mlflow-development) does not admit {peer}" in result.summary
        w.session.client("ec2").authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": int(port),
                    "ToPort": int(port),
                    "UserIdGroupPairs": [{"GroupId": peer}],
                }
            ],
        )
        assert run_check(w, "network.security-groups").status is Status.PASS
