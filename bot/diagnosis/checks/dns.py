"""DNS hop: the public hostname resolves, and its Route 53 record aliases a configured ALB."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from bot.diagnosis.checks.base import CheckContext, CheckResult, Classification, check
from bot.diagnosis.checks.edge import configured_load_balancers

_RESOLVER_LIFETIME = 4.0


def _resolver(ctx: CheckContext) -> tuple[dns.asyncresolver.Resolver, list[str]]:
    servers = ctx.env.dns.parsed()
    if not servers:
        resolver = dns.asyncresolver.Resolver()
        return resolver, [str(ns) for ns in resolver.nameservers] or ["system resolver"]
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    return resolver, [f"{host}:{port}" for host, port in servers]


@check(
    id="dns.resolve",
    layer="dns",
    description="The public hostname resolves (honours dns.nameservers) to public addresses.",
    timeout=6,
)
async def resolve(ctx: CheckContext) -> CheckResult:
    hostname = ctx.env.public.hostname
    resolver, used = _resolver(ctx)
    resolver.timeout = 2.0
    resolver.lifetime = _RESOLVER_LIFETIME
    try:
        answer = await resolver.resolve(hostname, "A")
    except dns.resolver.NXDOMAIN:
        return CheckResult.failed(
            f"{hostname} does not exist in DNS (NXDOMAIN from {', '.join(used)})",
            Classification.CONFIGURATION,
            hint=f"create the record for {hostname} in its hosted zone",
            hostname=hostname,
            nameservers=used,
            answer="NXDOMAIN",
        )
    except dns.resolver.NoAnswer:
        return CheckResult.failed(
            f"{hostname} exists but has no A record (empty answer from {', '.join(used)})",
            Classification.CONFIGURATION,
            hint="the record may alias a load balancer that no longer exists",
            hostname=hostname,
            nameservers=used,
            answer="NOERROR, no A records",
        )
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        return CheckResult.failed(
            f"no resolver answered for {hostname} ({type(exc).__name__} from {', '.join(used)})",
            Classification.INFRASTRUCTURE,
            hint="check the resolvers in dns.nameservers and the zone's name servers",
            hostname=hostname,
            nameservers=used,
            answer=type(exc).__name__,
        )
    addresses = sorted(r.to_text() for r in answer)
    canonical = answer.canonical_name.to_text().rstrip(".")
    evidence = {
        "hostname": hostname,
        "addresses": addresses,
        "canonical_name": canonical,
        "nameservers": used,
    }
    private = [a for a in addresses if not ipaddress.ip_address(a).is_global]
    if private:
        result = CheckResult.failed(
            f"{hostname} resolves to {', '.join(private)}: not public addresses, so the "
            "internet cannot reach it (an internal load balancer or a private zone answers)",
            Classification.CONFIGURATION,
            hint="dns.route53-alias says which load balancer the record aliases; a public "
            "name must alias an internet-facing one",
            private_addresses=private,
            **evidence,
        )
        result.data["addresses"] = addresses
        return result
    result = CheckResult.passed(f"{hostname} resolves to {', '.join(addresses)}", **evidence)
    result.data["addresses"] = addresses
    return result


def _alias_fix(zone_id: str, record: str, lb: dict[str, Any]) -> str:
    """The AWS CLI command that points ``record`` at ``lb`` (for a person to run, never run)."""
    change = {
        "Changes": [
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": record,
                    "Type": "A",
                    "AliasTarget": {
                        "HostedZoneId": lb.get("CanonicalHostedZoneId", ""),
                        "DNSName": f"dualstack.{lb['DNSName']}.",
                        "EvaluateTargetHealth": True,
                    },
                },
            }
        ]
    }
    return (
        f"aws route53 change-resource-record-sets --hosted-zone-id {zone_id} "
        f"--change-batch '{json.dumps(change, separators=(',', ':'))}'"
    )


def normalise_dns_name(name: str) -> str:
    """ALB alias targets carry ``dualstack.`` and a trailing dot; DNSName has neither."""
    name = name.strip().rstrip(".").lower()
    return name.removeprefix("dualstack.")


# The most ELBv2's Describe* calls return at once (the default page is far smaller): a region's
# load balancers, or a listener's rules up to its limit of 100, in one round trip.
ELBV2_PAGE = 400


async def all_load_balancers(ctx: CheckContext) -> list[dict[str, Any]]:
    """Every load balancer in the region (configured names may not exist: no ``Names``)."""
    found, marker = [], None
    while True:
        params: dict[str, Any] = {"PageSize": ELBV2_PAGE}
        if marker:
            params["Marker"] = marker
        page = await ctx.aws("elbv2", "describe_load_balancers", **params)
        found.extend(page.get("LoadBalancers", []))
        marker = page.get("NextMarker")
        if not marker:
            return found


async def _find_zone(ctx: CheckContext, zone_name: str) -> dict[str, Any] | None:
    page = await ctx.aws("route53", "list_hosted_zones_by_name", DNSName=zone_name, MaxItems="20")
    # The name is a starting point, not a filter; Cloud Map also makes `...local-hz` zones.
    zones = [z for z in page.get("HostedZones", []) if z["Name"].rstrip(".") == zone_name]
    public = [z for z in zones if not z.get("Config", {}).get("PrivateZone")]
    return (public or zones or [None])[0]


async def _find_records(ctx: CheckContext, zone_id: str, hostname: str) -> list[dict[str, Any]]:
    page = await ctx.aws(
        "route53",
        "list_resource_record_sets",
        HostedZoneId=zone_id,
        StartRecordName=hostname,
        MaxItems="20",
    )
    return [
        r
        for r in page.get("ResourceRecordSets", [])
        if r["Name"].rstrip(".").lower() == hostname.lower() and r["Type"] in ("A", "AAAA", "CNAME")
    ]


@check(
    id="dns.route53-alias",
    layer="dns",
    description="The hostname's Route 53 record aliases one of the configured load balancers, "
    "an internet-facing one.",
    reads=[
        "route53:ListHostedZonesByName",
        "route53:ListResourceRecordSets",
        "elasticloadbalancing:DescribeLoadBalancers",
    ],
    timeout=10,
)
async def route53_alias(ctx: CheckContext) -> CheckResult:
    public = ctx.env.public
    hostname = public.hostname.rstrip(".")
    zone_name = (public.hosted_zone or hostname.split(".", 1)[-1]).rstrip(".")
    zone = await _find_zone(ctx, zone_name)
    if zone is None:
        return CheckResult.failed(
            f"no Route 53 hosted zone named {zone_name}",
            Classification.CONFIGURATION,
            hint="check public.hosted_zone in hokusai.yml, or the account/region the bot reads",
            zone=zone_name,
        )
    zone_id = zone["Id"].rsplit("/", 1)[-1]
    records = await _find_records(ctx, zone_id, hostname)
    if not records:
        return CheckResult.failed(
            f"zone {zone_name} has no A/AAAA/CNAME record for {hostname}",
            Classification.CONFIGURATION,
            hint=f"create an alias A record {hostname} -> the registry load balancer",
            zone=zone_name,
            zone_id=zone_id,
        )
    record = next((r for r in records if r["Type"] == "A"), records[0])
    if "AliasTarget" in record:
        target = record["AliasTarget"]["DNSName"]
    elif record["Type"] == "CNAME":
        target = record["ResourceRecords"][0]["Value"]
    else:
        values = [r["Value"] for r in record.get("ResourceRecords", [])]
        return CheckResult.failed(
            f"{hostname} is a plain {record['Type']} record ({', '.join(values)}), not an alias "
            "to a load balancer; ALB addresses change",
            Classification.CONFIGURATION,
            hint="replace it with an alias A record to the registry load balancer",
            record={"name": record["Name"], "type": record["Type"], "values": values},
        )
    wanted = normalise_dns_name(target)
    # The configured load balancers first (read by name, and shared with the edge and network
    # checks): the alias is almost always one of them. Only when it is not is every load
    # balancer in the region listed, to tell another one from a deleted one.
    lbs = await configured_load_balancers(ctx)
    if wanted not in {normalise_dns_name(lb["DNSName"]) for lb in lbs}:
        lbs = await all_load_balancers(ctx)
    by_dns = {normalise_dns_name(lb["DNSName"]): lb for lb in lbs}
    configured = set(ctx.env.load_balancers)
    evidence = {
        "zone": zone_name,
        "zone_id": zone_id,
        "record": {"name": record["Name"], "type": record["Type"], "target": target},
        "configured_load_balancers": sorted(configured),
    }
    lb = by_dns.get(wanted)
    if lb is None:
        return CheckResult.failed(
            f"{hostname} aliases {wanted}, which no load balancer has: a stale record for a "
            "deleted load balancer",
            Classification.CONFIGURATION,
            hint="point the alias at the registry load balancer ("
            + ", ".join(sorted(configured))
            + ")",
            **evidence,
        )
    evidence["load_balancer"] = {
        "name": lb["LoadBalancerName"],
        "arn": lb["LoadBalancerArn"],
        "scheme": lb.get("Scheme"),
    }
    if lb.get("Scheme") == "internal" and not zone.get("Config", {}).get("PrivateZone"):
        facing = [
            x
            for x in lbs
            if x.get("Scheme") == "internet-facing" and x["LoadBalancerName"] in configured
        ]
        fix = _alias_fix(zone_id, record["Name"], facing[0]) if facing else None
        return CheckResult.failed(
            f"{hostname} aliases {lb['LoadBalancerName']}, an internal load balancer: the "
            "internet cannot reach it (a public name must alias an internet-facing one)",
            Classification.CONFIGURATION,
            hint=(
                f"point the alias at {facing[0]['LoadBalancerName']} (internet-facing)"
                if facing
                else "point the alias at an internet-facing load balancer"
            ),
            fix=fix,
            internet_facing=[x["LoadBalancerName"] for x in facing],
            **evidence,
        )
    if lb["LoadBalancerName"] not in configured:
        return CheckResult.failed(
            f"{hostname} aliases load balancer {lb['LoadBalancerName']}, which is not one of the "
            f"configured ones ({', '.join(sorted(configured))})",
            Classification.CONFIGURATION,
            hint="point the alias at the right load balancer, or add it to hokusai.yml",
            **evidence,
        )
    result = CheckResult.passed(f"{hostname} is an alias to {lb['LoadBalancerName']}", **evidence)
    result.data.update(
        load_balancer_name=lb["LoadBalancerName"],
        load_balancer_arn=lb["LoadBalancerArn"],
        dns_name=lb["DNSName"],
    )
    return result
