"""A loopback DNS server (dnslib) that ``dns.nameservers`` can point at.

Answers A and CNAME records from a dict that may change while it runs, NXDOMAIN for names
it does not know. Listens on UDP and TCP on the same free port of 127.0.0.1.

Example::

    with DnsServer({"registry.hokus.ai": ["127.0.0.1"]}) as dns:
        env_dns = {"nameservers": [dns.address]}      # "127.0.0.1:PORT"
        dns.set("registry.hokus.ai", ["old-alb.example.com"])   # a CNAME now
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable

from dnslib import CNAME, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

_TTL = 5


def _key(name: str) -> str:
    return name.rstrip(".").lower()


def _is_address(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


class _Resolver(BaseResolver):
    def __init__(self, owner: DnsServer) -> None:
        self.owner = owner

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        qname = request.q.qname
        qtype = QTYPE[request.q.qtype]
        name = _key(str(qname))
        records = self.owner.snapshot()
        if name not in records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        # Follow CNAMEs inside our own records, as a recursive resolver would.
        seen: set[str] = set()
        while name in records and name not in seen:
            seen.add(name)
            values = records[name]
            aliases = [v for v in values if not _is_address(v)]
            if aliases:
                target = _key(aliases[0])
                reply.add_answer(RR(name + ".", QTYPE.CNAME, rdata=CNAME(target + "."), ttl=_TTL))
                if qtype == "CNAME":
                    return reply
                name = target
                continue
            if qtype in ("A", "ANY"):
                for value in values:
                    reply.add_answer(RR(name + ".", QTYPE.A, rdata=A(value), ttl=_TTL))
            break
        return reply


class DnsServer:
    """A UDP+TCP DNS server on 127.0.0.1 answering from mutable ``records``.

    Args:
        records: name -> values; an IPv4 address is an A record, anything else a CNAME.
        host: must be loopback.
        port: 0 picks a free port (UDP and TCP share it).
    """

    def __init__(
        self,
        records: dict[str, list[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the sandbox DNS server only binds loopback addresses")
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._records: dict[str, list[str]] = {}
        for name, values in (records or {}).items():
            self.set(name, values)
        self._servers: list[DNSServer] = []
        self.port: int | None = None

    @property
    def address(self) -> str:
        """``host:port``, the form ``dns.nameservers`` takes."""
        if self.port is None:
            raise RuntimeError("DNS server not started")
        return f"{self.host}:{self.port}"

    def set(self, name: str, values: Iterable[str]) -> None:
        """Answer ``name`` with ``values`` from now on."""
        with self._lock:
            self._records[_key(name)] = list(values)

    def remove(self, name: str) -> None:
        """Answer NXDOMAIN for ``name`` from now on."""
        with self._lock:
            self._records.pop(_key(name), None)

    def snapshot(self) -> dict[str, list[str]]:
        with self._lock:
            return {k: list(v) for k, v in self._records.items()}

    def start(self) -> DnsServer:
        resolver = _Resolver(self)
        quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data")
        for _attempt in range(10):
            udp = DNSServer(resolver, port=self._requested_port, address=self.host, logger=quiet)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(resolver, port=port, address=self.host, tcp=True, logger=quiet)
            except OSError:
                udp.server.server_close()
                if self._requested_port:
                    raise
                continue
            break
        else:
            raise OSError("no free port for the DNS server on both UDP and TCP")
        self._servers = [udp, tcp]
        self.port = port
        for server in self._servers:
            server.start_thread()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.server.shutdown()
            server.server.server_close()
        self._servers = []

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
