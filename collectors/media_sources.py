"""Where attachment bytes may come from: Discord's CDN, the configured API base, hosts the user names.

A message (or an export) names the URL its attachment is fetched from, so a hostile one could
point the downloader at a cloud metadata service, a router's admin page or `file:///etc/passwd`.
The rule, checked for every request including each redirect hop:

- the scheme is `http` or `https`;
- the host (and port) is one of Discord's attachment CDN hosts (`cdn.discordapp.com` for attachment
  `url`s, `media.discordapp.net` for their `proxy_url`s: see the Attachment object and "Image
  Formatting" in Discord's developer docs, https://discord.com/developers/docs/resources/message
  and https://discord.com/developers/docs/reference#image-formatting), the configured API base's
  host (the emulator in tests and demos), or a host the user named in `media_hosts`
  (`host` or `host:port`; without a port, the scheme's default port);
- a host *name* must resolve to public addresses only: loopback, private, link-local, shared,
  reserved, unspecified and multicast addresses are refused. The check runs in the resolver the
  connection uses, so the addresses checked are the ones connected to (no second lookup an
  attacker's DNS could answer differently). The configured API base's host is exempt — the user
  pointed midshard at it — and so is a `media_hosts` entry written as an address (naming an address
  trusts it); IP literals never reach a resolver, so they must be named to be allowed at all.

A refused link is recorded with a reason code (`scheme_not_allowed`, `host_not_allowed`,
`private_address`, `redirect_not_allowed`, `too_many_redirects`), never fetched.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from midshard.settings import Settings

DISCORD_CDN_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECTS = 5


class PrivateAddressError(OSError):
    """A host name resolved to an address that is not public; aiohttp reports it as a DNS error."""


def _host(url_host: str | None) -> str:
    """A host as compared here: lower case (yarl's already), no trailing root dot."""
    return (url_host or "").rstrip(".")


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 judged as its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class MediaSources:
    """The allowed origins of one run, and the hosts whose addresses are not checked."""

    origins: frozenset[tuple[str, int | None]]  # (host, port); None = the scheme's default port
    trusted: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaSources:
        base = URL(settings.api_base)
        named = [URL(f"//{entry}") for entry in settings.media_hosts]
        origins = {(host, None) for host in DISCORD_CDN_HOSTS}
        origins.add((_host(base.raw_host), base.port))
        origins.update((_host(url.raw_host), url.explicit_port) for url in named)
        trusted = {_host(base.raw_host)} | {
            _host(url.raw_host) for url in named if _is_address(_host(url.raw_host))
        }
        return cls(frozenset(origins), frozenset(trusted))

    def refusal(self, url: URL) -> str | None:
        """None if `url` may be requested, else why not (a reason code)."""
        if url.scheme not in SCHEMES or not url.raw_host:
            return "scheme_not_allowed"
        host = _host(url.raw_host)
        port = url.port
        if (host, port) in self.origins:
            return None
        if port == DEFAULT_PORTS[url.scheme] and (host, None) in self.origins:
            return None
        return "host_not_allowed"

    def resolver(self) -> PublicAddressResolver:
        return PublicAddressResolver(self.trusted)


class PublicAddressResolver(AbstractResolver):
    """aiohttp's default resolver, refusing any untrusted name that has a non-public address."""

    def __init__(self, trusted: frozenset[str]) -> None:
        self._trusted = trusted
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if _host(host) not in self._trusted:
            refused = [r["host"] for r in results if not is_public(r["host"])]
            if refused:
                raise PrivateAddressError(f"{host} resolves to non-public {', '.join(refused)}")
        return results

    async def close(self) -> None:
        await self._resolver.close()
