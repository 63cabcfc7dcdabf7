"""Download guard: allowlist, address classes (after DNS resolution), redirects, size and time limits."""

from __future__ import annotations

import ipaddress
import re

import pytest

from mcp_server.errors import ImageSourceError, SourceRefusedError
from mcp_server.netguard import UrlPolicy, address_problem, redact_text, redact_url
from tests.mcp_server.conftest import png_bytes
from tests.mcp_server.httpfixture import Route, scripted_http


@pytest.mark.parametrize(
    ("address", "allow_private", "problem"),
    [
        ("8.8.8.8", False, None),
        ("2606:4700:4700::1111", False, None),
        ("127.0.0.1", False, "loopback"),
        ("127.0.0.1", True, None),
        ("10.1.2.3", False, "private"),
        ("192.168.0.10", True, None),
        ("100.64.0.1", False, "private"),  # shared address space (CGNAT)
        ("169.254.169.254", True, "metadata"),  # never, even when private networks are allowed
        ("100.100.100.200", True, "metadata"),
        ("fd00:ec2::254", True, "metadata"),
        ("169.254.10.10", True, "link-local"),
        ("fe80::1", True, "link-local"),
        ("::ffff:127.0.0.1", False, "loopback"),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", True, "metadata"),  # NAT64 of 169.254.169.254
        ("2002:a00:1::", False, "private"),  # 6to4 of 10.0.0.1
        ("224.0.0.1", True, "multicast"),
        ("0.0.0.0", True, "unspecified"),
        ("fc00::1", False, "private"),
    ],
)
def test_address_classes(address, allow_private, problem):
    found = address_problem(ipaddress.ip_address(address), allow_private=allow_private)
    assert (found is None) == (problem is None)
    if problem:
        assert problem in str(found)


@pytest.mark.parametrize(
    ("allowlist", "url", "ok"),
    [
        (["example.com"], "https://example.com/a.png", True),
        (["example.com"], "https://cdn.example.com/a.png", False),
        (["*.example.com"], "https://cdn.example.com/a.png", True),
        (["*.example.com"], "https://example.com/a.png", False),
        (["*.example.com"], "https://badexample.com/a.png", False),
        (["example.com:8443"], "https://example.com:8443/a.png", True),
        (["example.com:8443"], "https://example.com/a.png", False),
        (["*"], "http://anything.test/a.png", True),
        ([], "http://anything.test/a.png", False),
    ],
)
def test_allowlist(allowlist, url, ok):
    policy = UrlPolicy(allowlist=allowlist)
    if ok:
        assert policy.check_url(url)[0] in url
    else:
        with pytest.raises(SourceRefusedError, match="not in the server's URL allowlist"):
            policy.check_url(url)


def test_urls_with_credentials_or_other_schemes_are_refused_and_never_echoed():
    policy = UrlPolicy(allowlist=["*"])
    with pytest.raises(SourceRefusedError, match="credentials") as info:
        policy.check_url("https://alice:s3cret@example.com/a.png")
    assert "s3cret" not in str(info.value)
    with pytest.raises(SourceRefusedError, match="only http and https"):
        policy.check_url("gopher://example.com/a.png")
    assert redact_url("https://u:p@h.test:81/x.png?sig=abc#f") == "https://h.test:81/x.png?…"
    assert "abc" not in redact_text("failed to GET https://h.test/x?X-Amz-Signature=abc: 403")


async def test_download_from_loopback_is_refused_unless_allowed_and_dns_names_are_resolved():
    with scripted_http() as http:
        http.routes["/a.png"] = Route(body=png_bytes(), headers={"Content-Type": "image/png"})
        strict = UrlPolicy(allowlist=["127.0.0.1:*", "localhost"])
        with pytest.raises(SourceRefusedError, match="loopback address"):
            await strict.fetch(http.url("/a.png"))
        with pytest.raises(SourceRefusedError, match=r"'localhost' resolves to .*loopback"):
            await strict.fetch(http.url("/a.png", host="localhost"))  # the name is resolved, every address checked
        relaxed = UrlPolicy(allowlist=["localhost"], allow_private_networks=True)
        data = await relaxed.fetch(http.url("/a.png", host="localhost"))
        assert data == png_bytes()
    assert http.seen_hosts[0] == f"localhost:{http.port}"  # connected by IP, Host header kept


async def test_redirects_are_checked_at_every_hop():
    with scripted_http() as http:
        http.routes["/img.png"] = Route(body=png_bytes())
        http.routes["/ok"] = Route(status=302, headers={"Location": "/img.png"})
        http.routes["/meta"] = Route(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        http.routes["/away"] = Route(status=301, headers={"Location": "https://elsewhere.test/a.png"})
        http.routes["/loop"] = Route(status=307, headers={"Location": "/loop"})
        policy = UrlPolicy(allowlist=["127.0.0.1:*"], allow_private_networks=True, max_redirects=3)
        assert await policy.fetch(http.url("/ok")) == png_bytes()
        with pytest.raises(SourceRefusedError, match=r"169.254.169.254"):
            await policy.fetch(http.url("/meta"))
        with pytest.raises(SourceRefusedError, match=r"'elsewhere.test' is not in the server's URL allowlist"):
            await policy.fetch(http.url("/away"))
        with pytest.raises(SourceRefusedError, match="more than 3 redirects"):
            await policy.fetch(http.url("/loop"))


async def test_size_status_and_time_limits():
    with scripted_http() as http:
        big = b"\x89PNG" + b"\0" * 50_000
        http.routes["/declared"] = Route(body=big)
        http.routes["/chunked"] = Route(body=big, chunked=True)
        http.routes["/hang"] = Route(hang=True)
        policy = UrlPolicy(allowlist=["127.0.0.1:*"], allow_private_networks=True, max_bytes=20_000)
        with pytest.raises(
            ImageSourceError,
            match=re.escape("50 KB, above the 20 KB download limit (COMFY_QUALITY_MCP_DOWNLOAD_MAX_BYTES)"),
        ):
            await policy.fetch(http.url("/declared"))
        with pytest.raises(ImageSourceError, match="is over 20 KB, above the 20 KB"):
            await policy.fetch(http.url("/chunked"))
        with pytest.raises(ImageSourceError, match="answered HTTP 404"):
            await policy.fetch(http.url("/missing.png"))
        quick = UrlPolicy(allowlist=["127.0.0.1:*"], allow_private_networks=True, timeout_seconds=0.5)
        with pytest.raises(ImageSourceError, match=r"longer than 0.5 s"):
            await quick.fetch(http.url("/hang"))


async def test_unresolvable_host_is_a_clear_error():
    policy = UrlPolicy(allowlist=["*"])
    with pytest.raises(ImageSourceError, match="cannot be resolved"):
        await policy.fetch("http://no-such-host.invalid/a.png")


async def test_the_servers_own_services_are_never_downloaded_from_not_even_through_a_redirect():
    """ComfyUI and the S3 endpoint are internal: an allowlisted host redirecting to them is refused."""
    with scripted_http() as comfy, scripted_http() as public:
        comfy.routes["/view"] = Route(body=png_bytes())
        public.routes["/to-comfy"] = Route(status=302, headers={"Location": comfy.url("/view")})
        public.routes["/to-comfy-by-name"] = Route(
            status=302, headers={"Location": comfy.url("/view", host="localhost")}
        )
        open_policy = UrlPolicy(allowlist=["127.0.0.1:*", "localhost:*"], allow_private_networks=True)
        assert await open_policy.fetch(public.url("/to-comfy")) == png_bytes()  # what the rule prevents
        policy = UrlPolicy(
            allowlist=["127.0.0.1:*", "localhost:*"],
            allow_private_networks=True,
            internal_hosts=[f"127.0.0.1:{comfy.port}"],
        )
        for path in ("/to-comfy", "/to-comfy-by-name"):
            with pytest.raises(SourceRefusedError, match="one of this server's own services"):
                await policy.fetch(public.url(path))
        with pytest.raises(SourceRefusedError, match="one of this server's own services"):
            await policy.fetch(comfy.url("/view"))
        assert comfy.seen_hosts == [f"127.0.0.1:{comfy.port}"]  # only the unguarded fetch reached it
