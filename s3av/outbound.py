"""Requests the server makes to a URL a tenant gave (webhooks, IdP metadata): the SSRF guard.

``check_url`` resolves the host once and refuses anything that would reach s3av's own network;
``connect`` then talks to exactly the address that was vetted (no second lookup: DNS rebinding), with
an https certificate still checked against the URL's host name. Below every app: the notifications
and SSO both fetch through it.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeUrl(ValueError):
    """A URL s3av refuses to call (SSRF guard); the message is for the tenant."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the vetted address we connect to (no second lookup: DNS rebinding)


def _allow_local() -> bool:
    return bool(settings.ALLOW_HTTP_WEBHOOKS)


# IPv6 ranges that carry an IPv4 address a gateway will reach: NAT64 (RFC 6052, RFC 8215).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, if any (mapped, compatible, 6to4, Teredo, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in network for network in _NAT64) or (int(ip) >> 32 == 0 and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # NAT64 and IPv4-compatible ::a.b.c.d
    return None


def _address_allowed(text: str, allow_loopback: bool) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
        ip = inner
    if ip.is_loopback:
        return allow_loopback
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_url(url: str) -> Target:
    """Resolve a URL and refuse what would reach s3av's own network (SSRF).

    https only; http and loopback only where S3AV_ALLOW_HTTP_WEBHOOKS is on (tests, the demo).
    Callers check at create time and again, with a fresh lookup, at every request.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("Not a valid URL.") from None
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise UnsafeUrl("Use an https:// URL.")
    if parts.username or parts.password:
        raise UnsafeUrl("Put no credentials in the URL; verify the request's signature instead.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeUrl(f"The host {parts.hostname!r} does not resolve.") from None
    addresses = [str(info[4][0]) for info in infos]
    allow_local = _allow_local()
    if not addresses or not all(_address_allowed(a, allow_local) for a in addresses):
        raise UnsafeUrl(
            "The URL points to a private, loopback, link-local or reserved address; use a public host."
        )
    loopback = all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)
    if parts.scheme != "https" and not (allow_local and loopback):
        raise UnsafeUrl("Use an https:// URL.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the vetted address, with the certificate checked against the URL's host name."""

    def __init__(self, target: Target, timeout: float):
        self._ssl_context = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._ssl_context)
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


def connect(target: Target, timeout: float) -> http.client.HTTPConnection:
    """A connection (not opened yet) to the target's vetted address; the caller closes it."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    return connection_class(target, timeout)
