import hashlib
import http.server
import io
import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from quality.errors import WeightsChecksumError, WeightsError, WeightsUnavailableError
from quality.weights import WEIGHT_FILES, FileSpec, WeightFile, WeightsStore, sha256_file

PAYLOAD = b"fake weights " * 1000
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def http_files(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/served; counts requests."""
    root = tmp_path / "served"
    root.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def entry(url: str, sha: str | None = DIGEST, name: str = "thing") -> WeightFile:
    return WeightFile(name=name, filename="thing.pth", description="test", license="test", urls=(url,), sha256=sha)


def test_packaged_parameters_resolve_and_verify(tmp_path):
    store = WeightsStore(tmp_path, offline=True)
    for name in ("brisque_svm", "niqe_pristine"):
        path = store.path(name)
        assert path.is_file() and sha256_file(path) == WEIGHT_FILES[name].sha256
    statuses = {s.entry.name: s for s in store.statuses()}
    assert statuses["brisque_svm"].verified is True and statuses["brisque_svm"].note == "packaged"
    assert statuses["clip_vit_l14"].present is False


def test_offline_missing_file_is_unavailable_with_advice(tmp_path):
    store = WeightsStore(tmp_path, offline=True)
    with pytest.raises(WeightsUnavailableError, match="weights prefetch") as err:
        store.path("clip_vit_l14")
    assert err.value.file == "ViT-L-14.pt"
    # the failure is remembered: no second attempt per image
    with pytest.raises(WeightsUnavailableError):
        store.path("clip_vit_l14")


def test_download_over_http_verifies_pinned_checksum(tmp_path, http_files):
    root, base, hits = http_files
    (root / "thing.pth").write_bytes(PAYLOAD)
    store = WeightsStore(tmp_path / "w", offline=False, registry={"thing": entry(f"{base}/thing.pth")})
    path = store.path("thing")
    assert path.read_bytes() == PAYLOAD and path.parent == tmp_path / "w"
    assert store.path("thing") == path and len(hits) == 1  # cached, downloaded once
    assert not list((tmp_path / "w").glob("*.part"))


def test_download_with_wrong_checksum_is_rejected_and_not_kept(tmp_path, http_files):
    root, base, _ = http_files
    (root / "thing.pth").write_bytes(b"tampered")
    store = WeightsStore(tmp_path / "w", offline=False, registry={"thing": entry(f"{base}/thing.pth")})
    with pytest.raises(WeightsUnavailableError, match="sha256"):
        store.path("thing")
    assert not (tmp_path / "w" / "thing.pth").exists()


def test_download_falls_back_to_the_next_url(tmp_path, http_files):
    root, base, hits = http_files
    (root / "thing.pth").write_bytes(PAYLOAD)
    e = replace(entry(""), urls=(f"{base}/missing.pth", f"{base}/thing.pth"))
    store = WeightsStore(tmp_path / "w", offline=False, registry={"thing": e})
    assert store.path("thing").read_bytes() == PAYLOAD
    assert hits == ["/missing.pth", "/thing.pth"]


def test_unreachable_server_is_unavailable_with_the_reason(tmp_path):
    store = WeightsStore(tmp_path, offline=False, registry={"thing": entry("http://127.0.0.1:9/thing.pth")})
    with pytest.raises(WeightsUnavailableError, match="could not be downloaded"):
        store.path("thing")


def test_local_file_with_wrong_pinned_checksum_is_an_error(tmp_path):
    (tmp_path / "thing.pth").write_bytes(b"something else")
    store = WeightsStore(tmp_path, offline=True, registry={"thing": entry("")})
    with pytest.raises(WeightsChecksumError, match="expected"):
        store.path("thing")
    status = store.status("thing")
    assert status.present and status.verified is False


def test_unpinned_file_is_recorded_only_after_it_loads_then_verified(tmp_path):
    (tmp_path / "thing.pth").write_bytes(PAYLOAD)
    registry = {"thing": entry("", sha=None)}
    store = WeightsStore(tmp_path, offline=True, registry=registry)
    assert store.path("thing") == tmp_path / "thing.pth"
    assert not (tmp_path / "checksums.json").exists()  # resolving is not loading
    with store.loading("thing") as path:
        assert path.read_bytes() == PAYLOAD
    assert json.loads((tmp_path / "checksums.json").read_text()) == {"thing.pth": DIGEST}
    (tmp_path / "thing.pth").write_bytes(b"swapped later")
    with pytest.raises(WeightsChecksumError, match="verify --reset thing"):
        WeightsStore(tmp_path, offline=True, registry=registry).path("thing")


def test_a_file_that_fails_to_load_is_not_recorded(tmp_path):
    """A wrong first download must not become the trusted one: nothing is recorded when loading fails, so deleting
    it and fetching again works."""
    (tmp_path / "thing.pth").write_bytes(b"an HTML error page, not weights")
    registry = {"thing": entry("", sha=None)}
    store = WeightsStore(tmp_path, offline=True, registry=registry)
    with pytest.raises(ValueError), store.loading("thing"):
        raise ValueError("cannot read it")
    assert "thing.pth" not in WeightsStore(tmp_path, registry=registry)._recorded()
    (tmp_path / "thing.pth").write_bytes(PAYLOAD)  # the user fetched the right file
    store = WeightsStore(tmp_path, offline=True, registry=registry)
    with store.loading("thing"):
        pass
    assert store.status("thing").verified is True and store.digest("thing") == DIGEST


def test_a_backend_that_cannot_load_an_unpinned_file_records_nothing(tmp_path):
    """Through a real backend: NIMA's file has no published checksum; a file that is not a checkpoint fails to load
    and its hash is not recorded; the good file then loads and is recorded."""
    from quality.backends.base import LoadContext
    from quality.backends.nima import NIMABackend
    from tests.quality.tiny_models import TINY_OPTIONS, make_nima

    nima = WEIGHT_FILES["nima_inception_resnet_v2_ava"]
    assert nima.sha256 is None
    registry = {nima.name: replace(nima, urls=())}
    (tmp_path / nima.filename).write_bytes(b"<html>Service Unavailable</html>")
    context = LoadContext(
        weights=WeightsStore(tmp_path, offline=True, registry=registry), device="cpu", options=TINY_OPTIONS
    )
    with pytest.raises(WeightsError, match=nima.filename):
        NIMABackend().load(context)
    assert not (tmp_path / "checksums.json").exists()
    make_nima(tmp_path / nima.filename)
    context = LoadContext(
        weights=WeightsStore(tmp_path, offline=True, registry=registry), device="cpu", options=TINY_OPTIONS
    )
    NIMABackend().load(context)
    recorded = json.loads((tmp_path / "checksums.json").read_text())
    assert recorded == {nima.filename: sha256_file(tmp_path / nima.filename)}


def test_wrong_size_download_is_removed_with_a_clear_error(tmp_path, http_files):
    root, base, _ = http_files
    (root / "thing.pth").write_bytes(PAYLOAD[:-100])  # truncated
    e = replace(entry(f"{base}/thing.pth", sha=None), size=len(PAYLOAD))
    store = WeightsStore(tmp_path / "w", offline=False, registry={"thing": e})
    with pytest.raises(
        WeightsUnavailableError, match=f"has {len(PAYLOAD) - 100:,} bytes, expected {len(PAYLOAD):,} bytes: truncated"
    ):
        store.path("thing")
    assert not (tmp_path / "w" / "thing.pth").exists()
    assert not list((tmp_path / "w").glob("*.part"))
    # with a pinned checksum too, the size is what the message names (the clearer reason)
    (root / "thing.pth").write_bytes(PAYLOAD + b"extra")
    pinned = WeightsStore(tmp_path / "w2", offline=False, registry={"thing": replace(e, sha256=DIGEST)})
    with pytest.raises(WeightsUnavailableError, match="not the right file"):
        pinned.path("thing")
    assert not (tmp_path / "w2" / "thing.pth").exists()


def test_local_file_of_the_wrong_size_is_an_error(tmp_path):
    (tmp_path / "thing.pth").write_bytes(PAYLOAD[:10])
    store = WeightsStore(tmp_path, offline=True, registry={"thing": replace(entry("", sha=None), size=len(PAYLOAD))})
    with pytest.raises(WeightsChecksumError, match="truncated"):
        store.path("thing")
    assert store.status("thing").verified is False


def test_second_source_after_a_404_with_its_own_checksum_and_file_name(tmp_path, http_files):
    root, base, hits = http_files
    other = b"the same weights in another format " * 300
    (root / "other.safetensors").write_bytes(other)
    alt = FileSpec("thing.safetensors", (f"{base}/other.safetensors",), hashlib.sha256(other).hexdigest(), len(other))
    e = replace(entry(f"{base}/gone.pth"), size=len(PAYLOAD), alternates=(alt,))
    store = WeightsStore(tmp_path / "w", offline=False, registry={"thing": e})
    path = store.path("thing")
    assert hits == ["/gone.pth", "/other.safetensors"]
    assert path == tmp_path / "w" / "thing.safetensors" and path.read_bytes() == other
    assert store.spec("thing") == alt and store.digest("thing") == alt.sha256
    # the next process finds the alternate on disk: no download
    again = WeightsStore(tmp_path / "w", offline=True, registry={"thing": e})
    assert again.path("thing") == path and len(hits) == 2
    assert again.status("thing").verified is True and "alternate" in again.status("thing").note


def test_alternate_with_a_wrong_checksum_is_rejected(tmp_path, http_files):
    root, base, _ = http_files
    (root / "other.safetensors").write_bytes(b"tampered")
    alt = FileSpec("thing.safetensors", (f"{base}/other.safetensors",), DIGEST, None)
    store = WeightsStore(
        tmp_path / "w", offline=False, registry={"thing": replace(entry(f"{base}/gone.pth"), alternates=(alt,))}
    )
    with pytest.raises(WeightsUnavailableError, match=r"404.*sha256"):
        store.path("thing")
    assert not (tmp_path / "w" / "thing.safetensors").exists()


def test_prefetch_records_an_unpinned_file_only_when_it_reads_as_a_checkpoint(tmp_path, http_files):
    import torch

    root, base, _ = http_files
    (root / "thing.pth").write_bytes(b"<html>rate limited</html>")
    registry = {"thing": entry(f"{base}/thing.pth", sha=None)}
    result = WeightsStore(tmp_path / "w", offline=False, registry=registry).prefetch()
    assert "cannot read weights file" in result["thing"]
    assert "thing.pth" not in WeightsStore(tmp_path / "w", registry=registry)._recorded()
    # the advice works: delete it, fetch again (the server now has the right file)
    (tmp_path / "w" / "thing.pth").unlink()
    torch.save({"w": torch.ones(3)}, root / "thing.pth")
    assert WeightsStore(tmp_path / "w", offline=False, registry=registry).prefetch() == {"thing": "ok"}
    assert WeightsStore(tmp_path / "w", registry=registry)._recorded() == {"thing.pth": sha256_file(root / "thing.pth")}


def test_verify_reset_forgets_a_recorded_checksum(tmp_path, capsys):
    """``weights verify`` flags a file that no longer matches its recorded checksum; ``--reset NAME`` forgets the
    record, and the file is recorded again once it reads as a checkpoint."""
    import torch

    from quality.cli import main

    name = "nima_inception_resnet_v2_ava"
    filename = WEIGHT_FILES[name].filename
    torch.save({"params": {"w": torch.ones(3)}}, tmp_path / filename)
    (tmp_path / "checksums.json").write_text(json.dumps({filename: "0" * 64}))  # a wrong first download's hash
    args = ["weights", "verify", name, "--weights-dir", str(tmp_path), "--offline"]
    out = io.StringIO()
    assert main(args, out=out) == 4
    assert "verify --reset" in out.getvalue()
    out = io.StringIO()
    assert main(["weights", "verify", "--reset", name, "--weights-dir", str(tmp_path), "--offline"], out=out) == 0
    assert "forgot the recorded checksum" in out.getvalue() and "ok" in out.getvalue()
    assert json.loads((tmp_path / "checksums.json").read_text()) == {filename: sha256_file(tmp_path / filename)}
    assert main(args, out=io.StringIO()) == 0
    # a pinned entry has nothing to reset
    out = io.StringIO()
    assert main(["weights", "verify", "--reset", "clip_vit_l14", "--weights-dir", str(tmp_path)], out=out) == 4
    assert "pinned" in out.getvalue()


def test_the_published_files_are_pinned_per_source():
    clip = WEIGHT_FILES["clip_vit_l14"]
    assert clip.sha256 and clip.size and clip.urls[0].startswith("https://openaipublic.azureedge.net/")
    assert len(clip.alternates) == 1
    alt = clip.alternates[0]
    assert alt.urls[0].startswith("https://huggingface.co/timm/vit_large_patch14_clip_224.openai/")
    assert alt.sha256 and len(alt.sha256) == 64 and alt.sha256 != clip.sha256 and alt.size
    assert alt.filename.endswith(".safetensors") and alt.filename != clip.filename
    head = WEIGHT_FILES["laion_aesthetic_head"]
    assert head.sha256 == "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0"
    assert head.size == 3_714_759


def test_prefetch_reports_each_entry(tmp_path, http_files):
    root, base, _ = http_files
    (root / "thing.pth").write_bytes(PAYLOAD)
    registry = {"thing": entry(f"{base}/thing.pth"), "gone": entry(f"{base}/gone.pth", name="gone")}
    registry["gone"] = replace(registry["gone"], filename="gone.pth")
    result = WeightsStore(tmp_path / "w", offline=False, registry=registry).prefetch()
    assert result["thing"] == "ok" and "404" in result["gone"]


def test_hf_hub_offline_env_means_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert WeightsStore(tmp_path).offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert not WeightsStore(tmp_path).offline


def test_every_entry_is_documented():
    for w in WEIGHT_FILES.values():
        assert w.description and w.license and w.filename
        assert w.packaged or w.urls, w.name
        assert Path(w.filename).name == w.filename


def test_clip_falls_back_to_the_hub_safetensors_when_openai_answers_404(tmp_path, http_files):
    """The registry's CLIP entry with its two sources pointed at a local server: OpenAI's URL answers 404, the open_clip
    safetensors copy is downloaded under its own name, checked against its own pin, and CLIP loads from it."""
    from quality.backends.base import LoadContext
    from quality.backends.clip import ClipBackend
    from quality.image_io import load_image
    from tests.quality.conftest import textured
    from tests.quality.tiny_models import TINY_OPTIONS, make_tiny_clip, register_tiny_clip

    root, base, hits = http_files
    register_tiny_clip(tmp_path / "configs")
    make_tiny_clip(root / "open_clip_model.safetensors", fmt="safetensors")
    real = WEIGHT_FILES["clip_vit_l14"]
    served = root / "open_clip_model.safetensors"
    alt = replace(
        real.alternates[0],
        urls=(f"{base}/open_clip_model.safetensors",),
        sha256=sha256_file(served),
        size=served.stat().st_size,
    )
    clip_entry = replace(real, urls=(f"{base}/clip/models/{real.sha256}/ViT-L-14.pt",), alternates=(alt,))
    store = WeightsStore(tmp_path / "w", offline=False, registry={"clip_vit_l14": clip_entry})
    backend = ClipBackend()
    backend.load(LoadContext(weights=store, device="cpu", options=TINY_OPTIONS))
    assert hits == [f"/clip/models/{real.sha256}/ViT-L-14.pt", "/open_clip_model.safetensors"]
    assert (tmp_path / "w" / alt.filename).is_file() and not (tmp_path / "w" / real.filename).exists()
    assert alt.filename in backend.versions()["clip_score"] and alt.sha256[:12] in backend.versions()["clip_score"]
    assert "clip_score" in backend.compute(load_image(textured(3)), "a lighthouse")


def test_a_fresh_download_that_differs_from_an_old_record_points_to_reset(tmp_path, http_files):
    """A checksum recorded by an older version from a bad first download: fetching again gives the publisher's file,
    which no longer matches; the error says how to forget the old record, and after that it is recorded anew."""
    root, base, hits = http_files
    (root / "thing.pth").write_bytes(PAYLOAD)
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "checksums.json").write_text(json.dumps({"thing.pth": "f" * 64}))
    registry = {"thing": entry(f"{base}/thing.pth", sha=None)}
    with pytest.raises(WeightsChecksumError, match="verify --reset thing"):
        WeightsStore(folder, offline=False, registry=registry).path("thing")
    assert len(hits) == 1  # not downloaded again from another URL
    store = WeightsStore(folder, offline=False, registry=registry)
    assert store.reset("thing") == ["thing.pth"]
    with store.loading("thing") as path:
        assert path.read_bytes() == PAYLOAD
    assert store._recorded() == {"thing.pth": DIGEST} and len(hits) == 1
