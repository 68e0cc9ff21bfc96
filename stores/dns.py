"""The only module that asks DNS (dnspython). Used to prove control of a custom domain and to see whether a
name points at the platform again: TXT records and addresses, read from the resolvers DNS_RESOLVERS names
(`ip` or `ip:port`; the machine's own resolver when empty; 127.0.0.1:8053, pebble-challtestsrv, in tests).

A name that does not exist, or has no record of the type, is an empty answer; a resolver that does not answer
or fails (SERVFAIL, time-out) is DnsLookupError, so a caller never mistakes an outage for "not proven"."""

from dataclasses import dataclass

import dns.exception
import dns.resolver
from django.conf import settings


class DnsLookupError(Exception):
    """The resolvers gave no usable answer (time-out, SERVFAIL, refused)."""


@dataclass(frozen=True)
class NameRecords:
    name: str
    txt: tuple[str, ...]
    addresses: frozenset[str]  # A and AAAA, after any CNAME


def _resolver() -> dns.resolver.Resolver:
    configured = [entry.strip() for entry in settings.DNS_RESOLVERS if entry.strip()]
    if not configured:
        resolver = dns.resolver.Resolver()  # /etc/resolv.conf
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = []
        for entry in configured:
            address, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            resolver.nameservers.append(address)
            if port:
                resolver.nameserver_ports[address] = int(port)
    resolver.lifetime = settings.DNS_TIMEOUT
    resolver.cache = None  # a merchant who just created the record must see it on "check now"
    return resolver


def _answers(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> list:
    try:
        return list(resolver.resolve(name, rdtype, search=False))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.YXDOMAIN) as exc:
        raise DnsLookupError(f"DNS did not answer for {name} ({rdtype}): {exc}") from exc
    except dns.exception.DNSException as exc:
        raise DnsLookupError(f"DNS lookup of {name} ({rdtype}) failed: {exc}") from exc


def txt_values(name: str) -> tuple[str, ...]:
    """The TXT strings at `name` (each record's parts joined, as RFC 7208 reads them)."""
    resolver = _resolver()
    return tuple(b"".join(rdata.strings).decode("utf-8", errors="replace") for rdata in _answers(resolver, name, "TXT"))


def addresses(name: str) -> frozenset[str]:
    """The IPv4 and IPv6 addresses `name` resolves to (CNAMEs followed by the resolver)."""
    resolver = _resolver()
    return frozenset(rdata.address for rdtype in ("A", "AAAA") for rdata in _answers(resolver, name, rdtype))


def name_records(*, name: str, txt_name: str) -> NameRecords:
    """What proof needs in one call: the TXT strings at `txt_name` and the addresses of `name`."""
    return NameRecords(name=name, txt=txt_values(txt_name), addresses=addresses(name))
