"""Guarded image downloads: only allowed hosts, only acceptable addresses, bounded size and time.

Rules, checked for the first URL and again for every redirect hop:

* scheme ``http`` or ``https``; no ``user:password@`` in the URL;
* the host is not one of the server's own *internal* services (the configured ComfyUI URLs and S3/MinIO
  endpoint): they are never downloaded from, neither directly nor through a redirect from an allowed host (an
  agent must not reach ComfyUI's API or the store's objects through the server; store objects are read through
  the store, with the bucket rules, as ``s3://`` or endpoint URLs);
* the host matches the allowlist (``example.com`` exact, ``*.example.com`` any subdomain, ``host:port`` that
  port only, ``*`` any host);
* the host name is resolved once and **every** address it resolves to is checked: link-local and cloud
  metadata addresses are always refused; loopback, private, shared (CGNAT), ULA and other non-global
  addresses are refused unless ``allow_private_networks`` is set; multicast and
  unspecified addresses are always refused. IPv4 embedded in IPv6 (mapped, 6to4, NAT64) is checked as IPv4;
* the connection goes to the address that was checked (the URL's host is kept for the ``Host`` header and
  TLS SNI/certificate checks), so a DNS answer that changes between the check and the connection
  (DNS rebinding) cannot redirect the request;
* environment proxies are ignored (they would bypass the address check);
* the body is streamed with a byte cap (``Content-Length`` is checked first when present) and the whole
  download, redirects included, has one time limit.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import anyio
import httpx

from mcp_server.errors import ImageSourceError, SourceRefusedError
from mcp_server.hostpatterns import parse_host_pattern

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: cloud metadata endpoints (AWS/GCP/Azure/OpenStack, AWS ECS, AWS IPv6, Alibaba): never reachable
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.169.253", "fd00:ec2::254", "100.100.100.200")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def human_bytes(n: int) -> str:
    """12_345_678 → '12.3 MB', 20_000 → '20 KB'."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} MB"
    if n >= 1_000:
        return f"{n / 1e3:.0f} KB"
    return f"{n} bytes"


def redact_url(url: str) -> str:
    """The URL without credentials, query or fragment, its path cut at 80 characters and unprintable
    characters escaped: safe to show in errors and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    path = parts.path if len(parts.path) <= 80 else parts.path[:80] + "…"
    shown = f"{parts.scheme}://{host}{port}{path}" + ("?…" if parts.query else "")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else "?" for ch in shown[:300])


_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (credentials, query strings: presigned signatures, tokens)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why ``ip`` may not be contacted, or None when it may."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return address_problem(inner, allow_private=allow_private)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return None if allow_private else "a loopback address"
    if not ip.is_global:
        return None if allow_private else "a private or reserved address"
    return None


def _host_matches(pattern: str, host: str, port: int) -> bool:
    if pattern.strip() == "*":
        return True
    try:
        want_host, want_port = parse_host_pattern(pattern)
    except ValueError:
        return False
    if want_port is not None and want_port != port:
        return False
    if want_host.startswith("*."):
        return host.endswith(want_host[1:]) and host != want_host[2:]
    return host == want_host


@dataclass
class UrlPolicy:
    """Which URLs may be fetched, and limits on fetching them."""

    allowlist: list[str] = field(default_factory=list)
    internal_hosts: list[str] = field(default_factory=list)
    """``host`` or ``host:port`` of the server's own services (ComfyUI, the S3 endpoint): never downloaded from."""
    allow_private_networks: bool = False
    max_bytes: int = 32 * 1024 * 1024
    timeout_seconds: float = 20.0
    max_redirects: int = 3

    def check_url(self, url: str) -> tuple[str, int, bool]:
        """(host, port, trusted) for an acceptable URL; raises :class:`SourceRefusedError` naming the rule.
        ``trusted`` is always False now (kept for callers of the old triple)."""
        shown = redact_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ImageSourceError(f"image URL {shown} is malformed: {exc}") from exc
        if parts.scheme not in ("http", "https"):
            raise SourceRefusedError(f"image URL {shown}: only http and https URLs can be downloaded")
        if parts.username is not None or parts.password is not None:
            raise SourceRefusedError(
                f"image URL {shown}: URLs with credentials (user:password@) are not accepted; "
                "use a presigned or public URL"
            )
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise ImageSourceError(f"image URL {shown} has no host")
        port = port or (443 if parts.scheme == "https" else 80)
        if self.is_internal(host, port):
            raise SourceRefusedError(
                f"image URL {shown}: {host}:{port} is one of this server's own services (ComfyUI or the object "
                "store); images are not downloaded from it (pass s3:// URLs of the store's images instead)"
            )
        trusted = False
        if not any(_host_matches(p, host, port) for p in self.allowlist):
            raise SourceRefusedError(
                f"image URL {shown}: host {host!r} is not in the server's URL allowlist "
                "(COMFY_QUALITY_MCP_URL_ALLOWLIST); ask the server's operator to add it, or pass the image as "
                "base64 / a local path under the configured roots"
            )
        return host, port, trusted

    def is_internal(self, host: str, port: int) -> bool:
        """True for the server's own services, by name or by literal address (``localhost`` and ``127.0.0.1``
        are the same service)."""
        names = {host}
        if host in ("localhost", "localhost.localdomain"):
            names |= {"127.0.0.1", "::1"}
        elif host in ("127.0.0.1", "::1"):
            names |= {"localhost"}
        return any(_host_matches(t, name, port) for t in self.internal_hosts for name in names)

    async def resolve(self, host: str, port: int, *, trusted: bool, shown: str) -> list[IPAddress]:
        """Every address ``host`` resolves to, each checked; raises when any is refused or none resolves."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ImageSourceError(f"image URL {shown}: host {host!r} cannot be resolved ({exc})") from exc
            addresses = []
            for info in infos:
                ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
                if ip not in addresses:
                    addresses.append(ip)
            if not addresses:
                raise ImageSourceError(f"image URL {shown}: host {host!r} resolves to no address")
        for ip in addresses:
            problem = address_problem(ip, allow_private=self.allow_private_networks or trusted)
            if problem is not None:
                raise SourceRefusedError(
                    f"image URL {shown}: host {host!r} resolves to {ip}, {problem}; such addresses are not "
                    "contacted"
                    + (
                        ""
                        if "metadata" in problem or "link-local" in problem
                        else " (COMFY_QUALITY_MCP_ALLOW_PRIVATE_NETWORKS=1 allows private ones)"
                    )
                )
        return addresses

    async def fetch(self, url: str) -> bytes:
        """Download ``url`` under the rules above; raises :class:`ImageSourceError` subclasses."""
        shown = redact_url(url)
        try:
            with anyio.fail_after(self.timeout_seconds):
                return await self._fetch(url)
        except TimeoutError as exc:
            raise ImageSourceError(
                f"image URL {shown}: the download took longer than {self.timeout_seconds:g} s "
                "(COMFY_QUALITY_MCP_DOWNLOAD_TIMEOUT_SECONDS)"
            ) from exc

    async def _fetch(self, url: str) -> bytes:
        timeout = httpx.Timeout(self.timeout_seconds)
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=timeout) as client:
            for _hop in range(self.max_redirects + 1):
                shown = redact_url(url)
                host, port, trusted = self.check_url(url)
                addresses = await self.resolve(host, port, trusted=trusted, shown=shown)
                if any(self.is_internal(str(ip), port) for ip in addresses):
                    raise SourceRefusedError(
                        f"image URL {shown}: host {host!r} resolves to one of this server's own services; images "
                        "are not downloaded from it"
                    )
                target = httpx.URL(url).copy_with(host=str(addresses[0]))
                host_header = host if ":" not in host else f"[{host}]"
                default = 443 if target.scheme == "https" else 80
                if port != default:
                    host_header += f":{port}"
                request = client.build_request(
                    "GET",
                    target,
                    headers={"Host": host_header, "Accept": "image/*"},
                    extensions={"sni_hostname": host},
                )
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise ImageSourceError(f"image URL {shown}: download failed ({type(exc).__name__})") from exc
                try:
                    if response.status_code in REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise ImageSourceError(f"image URL {shown}: redirect without a Location header")
                        url = urljoin(url, location)
                        continue
                    if response.status_code != 200:
                        raise ImageSourceError(f"image URL {shown}: the server answered HTTP {response.status_code}")
                    return await self._read_body(response, shown)
                finally:
                    await response.aclose()
            raise SourceRefusedError(f"image URL {redact_url(url)}: more than {self.max_redirects} redirects")

    async def _read_body(self, response: httpx.Response, shown: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise ImageSourceError(self._too_large(shown, int(declared)))
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > self.max_bytes:
                    raise ImageSourceError(self._too_large(shown, total, at_least=True))
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ImageSourceError(f"image URL {shown}: download failed ({type(exc).__name__})") from exc
        return b"".join(chunks)

    def _too_large(self, shown: str, size: int, *, at_least: bool = False) -> str:
        return (
            f"image URL {shown}: the image is {'over ' if at_least else ''}{human_bytes(size)}, above the "
            f"{human_bytes(self.max_bytes)} download limit (COMFY_QUALITY_MCP_DOWNLOAD_MAX_BYTES)"
        )
