import hashlib
import http.server
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from quality.errors import WeightsChecksumError, WeightsUnavailableError
from quality.weights import WEIGHT_FILES, WeightFile, WeightsStore, sha256_file

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


def test_unpinned_file_is_recorded_on_first_use_then_verified(tmp_path):
    (tmp_path / "thing.pth").write_bytes(PAYLOAD)
    registry = {"thing": entry("", sha=None)}
    WeightsStore(tmp_path, offline=True, registry=registry).path("thing")
    assert (tmp_path / "checksums.json").read_text().count(DIGEST) == 1
    (tmp_path / "thing.pth").write_bytes(b"swapped later")
    with pytest.raises(WeightsChecksumError):
        WeightsStore(tmp_path, offline=True, registry=registry).path("thing")


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
