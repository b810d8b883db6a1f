"""DNS hop: the public name resolves and its Route 53 record aliases a configured ALB."""

from __future__ import annotations

from bot.diagnosis.checks.base import Status


async def test_healthy_name_resolves_and_aliases_the_registry_load_balancer(sandbox):
    report = await sandbox("healthy").diagnose(["dns"])
    resolve = report.outcome("dns.resolve")
    alias = report.outcome("dns.route53-alias")
    assert resolve.status is Status.PASS, resolve.result.summary
    assert resolve.result.evidence["addresses"] == ["52.44.61.20"]
    assert alias.status is Status.PASS, alias.result.summary
    assert alias.result.summary == "registry.hokus.ai is an alias to hokusai-registry-development"
    assert report.first_failure is None


async def test_a_missing_name_is_the_first_failing_hop(sandbox, public_dns):
    world = sandbox("healthy")
    public_dns.remove("registry.hokus.ai")
    report = await world.diagnose()
    first = report.first_failure
    assert first.id == "dns.resolve"
    assert first.layer == "dns"
    assert str(first.result.classification) == "configuration"
    assert "NXDOMAIN" in first.result.summary
    assert report.verdict.startswith("The request path first breaks at DNS: registry.hokus.ai")


async def test_a_record_aliasing_a_deleted_load_balancer_is_named_stale(sandbox):
    report = await sandbox("dns-stale").diagnose()
    first = report.first_failure
    assert first.id == "dns.route53-alias"
    assert str(first.result.classification) == "configuration"
    summary = first.result.summary
    assert "hokusai-registry-legacy" in summary
    assert "no load balancer has" in summary and "deleted" in summary
    assert first.result.hint and "hokusai-registry-development" in first.result.hint
    # The lookup itself still answers (cached/other records): the alias is what is wrong.
    assert report.outcome("dns.resolve").status is Status.PASS


async def test_a_record_for_a_load_balancer_outside_the_config_fails(sandbox, env):
    world = sandbox("healthy")
    world.env = env.model_copy(update={"load_balancers": ["hokusai-main-development"]})
    report = await world.diagnose(["dns"])
    alias = report.outcome("dns.route53-alias")
    assert alias.status is Status.FAIL
    assert "hokusai-registry-development, which is not one of the configured" in (
        alias.result.summary
    )


async def test_resolve_follows_a_cname_to_the_load_balancer_name(sandbox, public_dns):
    world = sandbox("healthy")
    lb_name = world.platform.registry_lb.dns_name
    public_dns.set("registry.hokus.ai", [lb_name])
    public_dns.set(lb_name, ["52.44.61.20", "52.44.61.21"])
    report = await world.diagnose(["dns.resolve"])
    outcome = report.outcome("dns.resolve")
    assert outcome.result.summary == "registry.hokus.ai resolves to 52.44.61.20, 52.44.61.21"
    assert outcome.result.evidence["canonical_name"] == lb_name


async def test_a_public_name_resolving_to_private_addresses_fails(sandbox, public_dns):
    world = sandbox("healthy")
    public_dns.set("registry.hokus.ai", ["10.0.0.41", "10.0.1.77"])
    report = await world.diagnose(["dns.resolve"])
    outcome = report.outcome("dns.resolve")
    assert outcome.status is Status.FAIL
    assert "10.0.0.41, 10.0.1.77: not public addresses" in outcome.result.summary


async def test_an_alias_to_an_internal_load_balancer_fails_and_names_the_right_one(sandbox):
    """Both load balancers configured, the name aliased to the internal one (issue class 3)."""
    world = sandbox("dns-internal")
    report = await world.diagnose(["dns", "routing"])
    alias = report.outcome("dns.route53-alias")
    assert alias.status is Status.FAIL
    assert "aliases hokusai-main-development, an internal load balancer" in alias.result.summary
    assert "hokusai-registry-development (internet-facing)" in alias.result.hint
    assert alias.result.evidence["fix"].startswith("aws route53 change-resource-record-sets")
    # The listener rules are judged on the load balancers that route, not on the internal one.
    assert report.outcome("routing.listener-rules[mlflow-direct]").status is Status.PASS
    assert report.cause.id == "dns.route53-alias"
