"""Model weights: one folder, known files, checksums, download, prefetch and listing.

Every weights file a metric needs is an entry of :data:`WEIGHT_FILES`. A file is looked up in this order:

1. files that ship inside the package (``quality/data``: BRISQUE SVM, NIQE pristine model) – always present;
2. ``<weights_dir>/<filename>`` (``COMFY_QUALITY_WEIGHTS_DIR``; default ``~/.cache/comfy-quality/weights``);
3. a download from the entry's URLs into that folder, unless offline (``COMFY_QUALITY_OFFLINE=1`` or
   ``HF_HUB_OFFLINE=1``).

Integrity: a file with a pinned ``sha256`` is verified before use (a mismatch is an error, never silently used).
Files whose publishers give no checksum are verified against the SHA-256 recorded the first time they were
fetched (``checksums.json`` in the weights folder, "trust on first use"); ``python -m quality weights list``
shows which is which. For an air-gapped machine: run ``python -m quality weights prefetch`` where there is
internet, copy the folder, and point ``COMFY_QUALITY_WEIGHTS_DIR`` at it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from quality.errors import WeightsChecksumError, WeightsUnavailableError

log = logging.getLogger(__name__)

HF_PYIQA = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main"
GH_PYIQA = "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights"


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    description: str
    license: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    """Pinned SHA-256 (hex). None: recorded on first download and verified afterwards."""
    size: int | None = None
    """Expected size in bytes, when known (shown by ``weights list``; checked after download)."""
    packaged: str | None = None
    """File name inside ``quality/data`` when the file ships with the package."""


WEIGHT_FILES: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile(
            name="brisque_svm",
            filename="brisque_svm_weights.pth",
            description="BRISQUE SVR (LIVE release `allmodel`, 774 support vectors), pyiqa tensor layout",
            license="UT Austin LIVE notice (see quality/data/BRISQUE_readme.txt)",
            sha256="e69ee3209300741be38f0c0a5d6f08453d30966fa7a436febeef61d7b31e206e",
            size=230981,
            packaged="brisque_svm_weights.pth",
        ),
        WeightFile(
            name="niqe_pristine",
            filename="niqe_pris_params.npz",
            description="NIQE pristine multivariate Gaussian (LIVE release, via basicsr 1.4.2)",
            license="Apache-2.0 (basicsr); model from the LIVE NIQE release",
            sha256="2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
            size=11850,
            packaged="niqe_pris_params.npz",
        ),
        WeightFile(
            name="clip_vit_l14",
            filename="ViT-L-14.pt",
            description="OpenAI CLIP ViT-L/14 (image + text towers; TorchScript archive as published by OpenAI)",
            license="MIT (OpenAI CLIP)",
            urls=(
                "https://openaipublic.azureedge.net/clip/models/"
                "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
            ),
            sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
            size=932768134,
        ),
        WeightFile(
            name="laion_aesthetic_head",
            filename="sac+logos+ava1-l14-linearMSE.pth",
            description="LAION aesthetic predictor v2 MLP head (768 → 1), for CLIP ViT-L/14 embeddings",
            license="Apache-2.0 (christophschuhmann/improved-aesthetic-predictor)",
            urls=(
                "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
                "sac+logos+ava1-l14-linearMSE.pth",
                f"{HF_PYIQA}/sac+logos+ava1-l14-linearMSE.pth",
            ),
        ),
        WeightFile(
            name="nima_inception_resnet_v2_ava",
            filename="NIMA_InceptionV2_ava-b0c77c00.pth",
            description="NIMA on Inception-ResNet-v2 trained on AVA (pyiqa release)",
            license="pyiqa weights release (PolyForm-Noncommercial-1.0.0 project; check before commercial use)",
            urls=(f"{HF_PYIQA}/NIMA_InceptionV2_ava-b0c77c00.pth", f"{GH_PYIQA}/NIMA_InceptionV2_ava-b0c77c00.pth"),
        ),
        WeightFile(
            name="topiq_nr_koniq_res50",
            filename="cfanet_nr_koniq_res50-9a73138b.pth",
            description="TOPIQ-NR (CFANet, ResNet-50) trained on KonIQ-10k (pyiqa release)",
            license="pyiqa weights release (PolyForm-Noncommercial-1.0.0 project; check before commercial use)",
            urls=(
                f"{HF_PYIQA}/cfanet_nr_koniq_res50-9a73138b.pth",
                f"{GH_PYIQA}/cfanet_nr_koniq_res50-9a73138b.pth",
            ),
        ),
    )
}


def default_weights_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "comfy-quality" / "weights"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightStatus:
    entry: WeightFile
    path: Path | None
    present: bool
    size: int | None
    sha256: str | None
    pinned: bool
    verified: bool | None
    """True: matches the pinned/recorded checksum; False: mismatch; None: not present."""
    note: str = ""


class WeightsStore:
    """Resolves weight names to verified local files, downloading when allowed."""

    CHECKSUMS_FILE = "checksums.json"

    def __init__(
        self,
        weights_dir: Path | str | None = None,
        *,
        offline: bool | None = None,
        registry: dict[str, WeightFile] | None = None,
        download_timeout: float = 60.0,
    ) -> None:
        self.dir = Path(weights_dir) if weights_dir else default_weights_dir()
        if offline is None:
            offline = os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "TRUE", "yes")
        self.offline = offline
        self.registry = dict(WEIGHT_FILES if registry is None else registry)
        self.download_timeout = download_timeout
        self._verified: dict[str, Path] = {}
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- lookup -------------------------------------------------------------------------------------------
    def entry(self, name: str) -> WeightFile:
        try:
            return self.registry[name]
        except KeyError:
            raise WeightsUnavailableError(
                f"no weights entry named {name!r}; known: {', '.join(self.registry)}", file=name
            ) from None

    def _packaged_path(self, entry: WeightFile) -> Path | None:
        if not entry.packaged:
            return None
        ref = resources.files("quality") / "data" / entry.packaged
        path = Path(str(ref))
        return path if path.is_file() else None

    def local_path(self, name: str) -> Path | None:
        """Where the file is now (packaged or in the weights folder), without downloading."""
        entry = self.entry(name)
        packaged = self._packaged_path(entry)
        if packaged is not None:
            return packaged
        candidate = self.dir / entry.filename
        return candidate if candidate.is_file() else None

    def _recorded(self) -> dict[str, str]:
        path = self.dir / self.CHECKSUMS_FILE
        try:
            data = json.loads(path.read_text())
            return {str(k): str(v) for k, v in data.items()}
        except (OSError, ValueError):
            return {}

    def _record(self, filename: str, digest: str) -> None:
        recorded = self._recorded()
        recorded[filename] = digest
        path = self.dir / self.CHECKSUMS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(recorded, indent=2, sort_keys=True))
        tmp.replace(path)

    def expected_sha256(self, entry: WeightFile) -> str | None:
        return entry.sha256 or self._recorded().get(entry.filename)

    def _verify(self, entry: WeightFile, path: Path) -> str:
        digest = sha256_file(path)
        expected = self.expected_sha256(entry)
        if expected is None:
            self._record(entry.filename, digest)
            log.warning("weights %s have no published checksum; recorded sha256 %s", entry.filename, digest)
        elif digest != expected:
            raise WeightsChecksumError(
                f"{path} has sha256 {digest}, expected {expected}: the file is corrupt or not the right one. "
                f"Delete it and run `python -m quality weights prefetch` (or copy a good file there).",
                file=entry.filename,
            )
        return digest

    def path(self, name: str) -> Path:
        """A verified local path for ``name``, downloading it when allowed. Raises WeightsError otherwise."""
        with self._lock:
            if name in self._verified:
                return self._verified[name]
            if name in self._failed:
                raise WeightsUnavailableError(self._failed[name], file=name)
            entry = self.entry(name)
            path = self.local_path(name)
            try:
                if path is None:
                    path = self._download(entry)
                self._verify(entry, path)
            except WeightsUnavailableError as exc:
                self._failed[name] = str(exc)
                raise
            self._verified[name] = path
            return path

    # -- download -----------------------------------------------------------------------------------------
    def _download(self, entry: WeightFile) -> Path:
        target = self.dir / entry.filename
        if self.offline:
            raise WeightsUnavailableError(
                f"weights file {entry.filename} is not in {self.dir} (offline: downloads are off). "
                "Run `python -m quality weights prefetch` on a machine with internet and copy the folder here, "
                "or set COMFY_QUALITY_WEIGHTS_DIR to a folder that has it.",
                file=entry.filename,
            )
        if not entry.urls:
            raise WeightsUnavailableError(
                f"weights file {entry.filename} is not in {self.dir} and has no download URL", file=entry.filename
            )
        import httpx  # local: only needed when downloading

        self.dir.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []
        for url in entry.urls:
            part = target.with_name(target.name + ".part")
            try:
                log.info("downloading %s from %s", entry.filename, url)
                digest = hashlib.sha256()
                timeout = httpx.Timeout(self.download_timeout, connect=15.0)
                with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as resp:
                    resp.raise_for_status()
                    with part.open("wb") as fh:
                        for chunk in resp.iter_bytes(1 << 20):
                            fh.write(chunk)
                            digest.update(chunk)
                if entry.sha256 and digest.hexdigest() != entry.sha256:
                    raise WeightsChecksumError(
                        f"downloaded {entry.filename} from {url} has sha256 {digest.hexdigest()}, "
                        f"expected {entry.sha256}",
                        file=entry.filename,
                    )
                part.replace(target)
                return target
            except (httpx.HTTPError, OSError, WeightsChecksumError) as exc:
                errors.append(f"{url}: {exc}")
                part.unlink(missing_ok=True)
        raise WeightsUnavailableError(
            f"weights file {entry.filename} is not in {self.dir} and could not be downloaded "
            f"({'; '.join(errors)[:300]}). On an offline machine, copy a prefetched weights folder and set "
            "COMFY_QUALITY_WEIGHTS_DIR.",
            file=entry.filename,
        )

    def prefetch(self, names: list[str] | None = None) -> dict[str, str]:
        """Fetch (and verify) every entry, or ``names``; returns name → "ok" or the error message."""
        out: dict[str, str] = {}
        for name in names or list(self.registry):
            try:
                self.path(name)
                out[name] = "ok"
            except (WeightsUnavailableError, WeightsChecksumError) as exc:
                out[name] = str(exc)
        return out

    # -- listing ------------------------------------------------------------------------------------------
    def status(self, name: str, *, hash_files: bool = True) -> WeightStatus:
        entry = self.entry(name)
        path = self.local_path(name)
        if path is None:
            return WeightStatus(entry, None, False, None, None, entry.sha256 is not None, None, "missing")
        size = path.stat().st_size
        digest = sha256_file(path) if hash_files else None
        expected = self.expected_sha256(entry)
        verified = None if digest is None or expected is None else digest == expected
        note = "packaged" if entry.packaged else ("pinned" if entry.sha256 else "recorded on first download")
        if expected is None:
            note = "unverified (no published checksum, none recorded yet)"
        return WeightStatus(entry, path, True, size, digest, entry.sha256 is not None, verified, note)

    def statuses(self, *, hash_files: bool = True) -> list[WeightStatus]:
        return [self.status(name, hash_files=hash_files) for name in self.registry]
