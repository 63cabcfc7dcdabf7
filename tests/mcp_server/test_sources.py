"""Image sources: root-confined paths (traversal, symlinks), base64 detection, data URLs, dispatch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_server.errors import ImageSourceError, NotConfiguredError, SourceRefusedError
from mcp_server.netguard import UrlPolicy
from mcp_server.sources import ImageSources
from tests.mcp_server.conftest import b64, png_bytes
from tests.mcp_server.fakes import DirStore


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "sub" / "in.png").write_bytes(png_bytes(seed=1))
    (outside / "secret.png").write_bytes(png_bytes(seed=2))
    (root / "link-out.png").symlink_to(outside / "secret.png")
    (root / "dir-out").symlink_to(outside)
    (root / "link-in.png").symlink_to(root / "sub" / "in.png")
    (root / "empty.png").write_bytes(b"")
    return {"root": root, "outside": outside}


async def test_paths_inside_the_roots_are_read(tree):
    sources = ImageSources(roots=[tree["root"]])
    assert (await sources.load("sub/in.png")).data == png_bytes(seed=1)
    assert (await sources.load(str(tree["root"] / "sub" / "in.png"))).kind == "path"
    assert (await sources.load("link-in.png")).data == png_bytes(seed=1)  # a symlink that stays inside
    assert (await sources.load("file://" + str(tree["root"] / "sub" / "in.png"))).data == png_bytes(seed=1)
    assert (await sources.load("sub/../sub/in.png")).data == png_bytes(seed=1)


@pytest.mark.parametrize(
    "path", ["../outside/secret.png", "sub/../../outside/secret.png", "link-out.png", "dir-out/secret.png"]
)
async def test_traversal_and_symlink_escapes_are_refused(tree, path):
    sources = ImageSources(roots=[tree["root"]])
    with pytest.raises(SourceRefusedError, match="outside the allowed folders"):
        await sources.load(path)


async def test_absolute_paths_outside_and_nonexistent_files_outside_get_the_same_answer(tree):
    sources = ImageSources(roots=[tree["root"]])
    for path in (tree["outside"] / "secret.png", tree["outside"] / "does-not-exist.png"):
        with pytest.raises(SourceRefusedError, match="outside the allowed folders"):
            await sources.load(str(path))  # existence outside the roots is never revealed


async def test_other_path_problems(tree):
    sources = ImageSources(roots=[tree["root"]], file_max_bytes=100)
    with pytest.raises(ImageSourceError, match="not found"):
        await sources.load("sub/nope.png")
    with pytest.raises(ImageSourceError, match="not a regular file"):
        await sources.load("sub")
    with pytest.raises(ImageSourceError, match="is empty"):
        await sources.load("empty.png")
    with pytest.raises(ImageSourceError, match="above the 100 bytes limit"):
        await sources.load("sub/in.png")
    with pytest.raises(SourceRefusedError, match="COMFY_QUALITY_MCP_ROOTS"):
        await ImageSources(roots=[]).load("sub/in.png")


async def test_base64_forms():
    data = png_bytes(seed=3)
    sources = ImageSources()
    assert (await sources.load(b64(data))).data == data
    assert (await sources.load(b64(data)[:40] + "\n" + b64(data)[40:])).data == data  # wrapped lines
    urlsafe = b64(data).replace("+", "-").replace("/", "_").rstrip("=")
    assert (await sources.load(urlsafe)).data == data
    assert (await sources.load("data:image/png;base64," + b64(data))).kind == "data_url"
    with pytest.raises(ImageSourceError, match=r"decoded, above the .* limit"):
        await ImageSources(base64_max_bytes=len(data) - 1000).load(b64(data))
    with pytest.raises(ImageSourceError, match=r"image argument is .* long"):
        await ImageSources(base64_max_bytes=100).load("x" * 5000)
    # base64 that is not an image is not guessed at: it is taken as a (refused) path
    with pytest.raises(SourceRefusedError):
        await sources.load(b64(b"just some text, long enough to look like base64"))


async def test_store_urls_go_to_the_store_and_s3_without_a_store_is_not_configured(tmp_path):
    store = DirStore(tmp_path / "s")
    url = store.put("a/b.png", png_bytes())
    assert (await ImageSources(store=store).load(url)).kind == "object"
    with pytest.raises(ImageSourceError, match=r"cannot be read from the object store: object .* larger"):
        await ImageSources(store=store, file_max_bytes=10).load(url)
    with pytest.raises(NotConfiguredError):
        await ImageSources().load(url)


async def test_http_urls_use_the_policy():
    sources = ImageSources(policy=UrlPolicy(allowlist=[]))
    with pytest.raises(SourceRefusedError, match="allowlist"):
        await sources.load("https://example.com/a.png")


def test_symlink_fixture_is_real(tree):
    assert os.path.islink(tree["root"] / "link-out.png")
