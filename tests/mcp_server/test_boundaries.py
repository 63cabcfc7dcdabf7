"""Boundaries through the MCP tool (in-memory client, real HTTP servers): the server's own services are internal
for downloads, also behind a redirect from an allowed host; s3:// images only from the allowed buckets."""

from __future__ import annotations

from tests.mcp_server.conftest import components_for, connect, make_settings, png_bytes, text
from tests.mcp_server.fakes import DirStore
from tests.mcp_server.httpfixture import Route, scripted_http


async def test_a_redirect_to_comfyui_is_refused_through_score_image(offline_scorer, tmp_path):
    with scripted_http() as comfy, scripted_http() as public:
        comfy.routes["/view"] = Route(body=png_bytes(), headers={"Content-Type": "image/png"})
        public.routes["/img.png"] = Route(body=png_bytes(), headers={"Content-Type": "image/png"})
        public.routes["/to-comfy"] = Route(status=302, headers={"Location": comfy.url("/view?filename=a.png")})
        settings = make_settings(url_allowlist=["127.0.0.1:*"], allow_private_networks=True)
        components = components_for(offline_scorer, trusted_hosts=[f"127.0.0.1:{comfy.port}"])
        async with connect(settings, components) as (client, _):
            good = await client.call_tool("score_image", {"image": public.url("/img.png")})
            redirected = await client.call_tool("score_image", {"image": public.url("/to-comfy")})
            direct = await client.call_tool("score_image", {"image": comfy.url("/view?filename=a.png")})
    assert not good.is_error, good.content
    for result in (redirected, direct):
        assert result.is_error and "one of this server's own services" in text(result), text(result)
    assert comfy.seen_hosts == []  # ComfyUI was never contacted


async def test_s3_images_from_other_buckets_get_one_answer_through_score_image(offline_scorer, tmp_path):
    store = DirStore(tmp_path / "s")
    url = store.put("in/x.png", png_bytes())
    async with connect(make_settings(), components_for(offline_scorer, store=store)) as (client, _):
        ok = await client.call_tool("score_image", {"image": url})
        other = await client.call_tool("score_image", {"image": "s3://private-other/img.png"})
        missing = await client.call_tool("score_image", {"image": "s3://test-bucket/in/none.png"})
    assert not ok.is_error, ok.content
    assert other.is_error and missing.is_error
    assert text(other).replace("private-other/img.png", "X") == text(missing).replace("test-bucket/in/none.png", "X")
    assert "s3://private-other/img.png" not in store.reads
