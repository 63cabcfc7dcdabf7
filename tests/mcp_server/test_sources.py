"""Image sources: root-confined paths (traversal, symlinks), base64 detection, data URLs, dispatch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_server.errors import ImageSourceError, NotConfiguredError, SourceRefusedError
from mcp_server.netguard import UrlPolicy
from mcp_server.sources import ImageSources
from storage.errors import (
    InvalidKeyError,
    InvalidObjectURLError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageUnavailableError,
)
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
    # base64 that is not an image says so (it used to be taken for a path: "not found" / "outside")
    with pytest.raises(ImageSourceError, match=r"not a supported image format \(unrecognised data\)"):
        await sources.load(b64(b"just some text, long enough to look like base64"))


async def test_store_urls_go_to_the_store_and_s3_without_a_store_is_not_configured(tmp_path):
    store = DirStore(tmp_path / "s")
    url = store.put("a/b.png", png_bytes())
    assert (await ImageSources(store=store).load(url)).kind == "object"
    with pytest.raises(ImageSourceError, match=r"is larger than this server accepts \(10 bytes\)"):
        await ImageSources(store=store, file_max_bytes=10).load(url)
    with pytest.raises(NotConfiguredError):
        await ImageSources().load(url)


async def test_http_urls_use_the_policy():
    sources = ImageSources(policy=UrlPolicy(allowlist=[]))
    with pytest.raises(SourceRefusedError, match="allowlist"):
        await sources.load("https://example.com/a.png")


def test_symlink_fixture_is_real(tree):
    assert os.path.islink(tree["root"] / "link-out.png")


# -- classification, malformed input, excerpts (issue 11 items 3, 4, 5, 8) --------------------------------------
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
HTML = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n"
ICO = b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00" + b"\x00" * 64


@pytest.mark.parametrize(
    ("data", "name"), [(SVG, "SVG"), (b'<?xml version="1.0"?>' + SVG, "XML/SVG"), (HTML, "HTML"), (EPS, "EPS"),
                       (ICO, "ICO")],
)  # fmt: skip
async def test_base64_of_other_file_types_names_the_format(tree, data, name):
    sources = ImageSources(roots=[tree["root"]])
    for form in (b64(data), "data:image/png;base64," + b64(data)):
        with pytest.raises(ImageSourceError, match=rf"not a supported image format \(.*{name.split('/')[0]}"):
            await sources.load(form)


@pytest.mark.parametrize(
    "text",
    ["iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB!!!*&^%$", "iVBORw0KGgo" + "A" * 80 + "!!!*&^%$", "iVBORw0KGgoA=A" + "A" * 70],
)
async def test_invalid_base64_says_invalid_base64(tree, text):
    with pytest.raises(ImageSourceError, match="invalid base64") as err:
        await ImageSources(roots=[tree["root"]]).load(text)
    assert "not found" not in str(err.value) and "outside" not in str(err.value)


async def test_random_base64_is_not_echoed_back():
    blob = b64(os.urandom(600_000))
    with pytest.raises(ImageSourceError, match=r"not a supported image format") as err:
        await ImageSources().load(blob)
    assert len(str(err.value)) < 300


@pytest.mark.parametrize(
    "url", ["http://[::1/x.png", "//[x.png", "http://a]b/c.png", "s3://[bad/key", "http://ex\uff0fample.com/x.png",
            "https://h.test:99999/x.png", "https://h.test:port/x.png"],
)  # fmt: skip
async def test_malformed_urls_are_clear_errors(tmp_path, url):
    sources = ImageSources(roots=[tmp_path], store=DirStore(tmp_path / "s"), policy=UrlPolicy(allowlist=["*"]))
    with pytest.raises(ImageSourceError, match=r"malformed|starts with '//'"):
        await sources.load(url)


async def test_paths_are_quoted_as_short_escaped_excerpts(tree):
    sources = ImageSources(roots=[tree["root"]])
    with pytest.raises(ImageSourceError) as err:
        await sources.load("sub/" + "n" * 3000 + ".png")
    assert len(str(err.value)) < 400 and "3,008 characters" in str(err.value)
    with pytest.raises(ImageSourceError, match=r"control characters") as err:
        await sources.load("sub/\x1b[31mred\u202e.png")
    assert "\x1b" not in str(err.value) and "\\x1b" in str(err.value)
    with pytest.raises(ImageSourceError, match="NUL byte"):
        await sources.load("sub/in.png\x00.txt")


async def test_hard_links_inside_a_root_are_refused_unless_allowed(tree):
    os.link(tree["outside"] / "secret.png", tree["root"] / "hard.png")
    with pytest.raises(SourceRefusedError, match=r"2 hard links.*COMFY_QUALITY_MCP_ALLOW_HARDLINKS"):
        await ImageSources(roots=[tree["root"]]).load("hard.png")
    assert (await ImageSources(roots=[tree["root"]], allow_hardlinks=True).load("hard.png")).data == png_bytes(seed=2)


async def test_s3_images_come_from_the_allowed_buckets_only(tmp_path):
    store = DirStore(tmp_path / "s")
    url = store.put("a/b.png", png_bytes())
    sources = ImageSources(store=store)
    assert (await sources.load(url)).data == png_bytes()
    answers = []
    for other in ("s3://private-other/img.png", "s3://test-bucket/a/missing.png", "s3://test-bucket/../x.png"):
        with pytest.raises(SourceRefusedError, match="not allowed or not found") as err:
            await sources.load(other)
        answers.append(str(err.value).replace(other, "URL"))
    assert len(set(answers)) == 1  # one answer: which buckets or objects exist is not revealed
    assert "s3://private-other/img.png" not in store.reads  # refused before the store was asked
    with pytest.raises(SourceRefusedError, match="not allowed or not found"):
        await ImageSources(store=store, s3_buckets=["elsewhere"]).load(url)


def test_a_folder_swapped_for_a_symlink_after_the_check_is_caught_at_the_open(tree):
    """confine() resolved the path inside the root; then 'sub' becomes a symlink to the outside folder."""
    from mcp_server.paths import confine, read_confined

    (tree["outside"] / "in.png").write_bytes(b"secret image bytes")
    path = confine("sub/in.png", [tree["root"]])
    (tree["root"] / "sub").rename(tree["root"] / "sub-old")
    (tree["root"] / "sub").symlink_to(tree["outside"])
    with pytest.raises(SourceRefusedError, match="outside the allowed folders"):
        read_confined(path, max_bytes=1000, roots=[tree["root"]])


class _FailingStore(DirStore):
    """A store whose reads fail with one given exception."""

    def __init__(self, root, error: BaseException) -> None:
        super().__init__(root)
        self.error = error

    async def read(self, url: str, *, max_bytes: int) -> bytes:
        raise self.error


class _GoneError(ObjectNotFoundError):
    """A store's own subclass: recognised by the error tree, whatever its name."""


@pytest.mark.parametrize(
    ("error", "refused", "match"),
    [
        (ObjectNotFoundError("no object s3://test-bucket/a.png", key="a.png"), True, "not allowed or not found"),
        (_GoneError("gone"), True, "not allowed or not found"),
        (InvalidKeyError("bad key"), True, "not allowed or not found"),
        (InvalidObjectURLError("not ours"), True, "not allowed or not found"),
        (ObjectTooLargeError("big"), False, r"larger than this server accepts \(1000 bytes\)"),
        (StorageUnavailableError("cannot read s3://test-bucket/a.png: connection refused"), False,
         "cannot be read from the object store: cannot read .* connection refused"),
        (ConnectionRefusedError("refused"), False, "cannot be read from the object store: refused"),
    ],
)  # fmt: skip
async def test_store_errors_are_told_apart_by_their_class(tmp_path, error, refused, match) -> None:
    sources = ImageSources(store=_FailingStore(tmp_path / "s", error), file_max_bytes=1000)
    with pytest.raises(ImageSourceError, match=match) as caught:
        await sources.load("s3://test-bucket/a.png")
    assert isinstance(caught.value, SourceRefusedError) is refused
    assert caught.value.__cause__ is error


async def test_a_bug_in_the_store_is_not_passed_off_as_a_source_error(tmp_path) -> None:
    """Neither a storage error nor an OSError: a bug, left to the tool boundary (which logs its traceback)."""
    sources = ImageSources(store=_FailingStore(tmp_path / "s", KeyError("oops")), file_max_bytes=1000)
    with pytest.raises(KeyError):
        await sources.load("s3://test-bucket/a.png")
