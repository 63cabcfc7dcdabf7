"""Model weights: one folder, known files, checksums, download, prefetch and listing.

Every weights file a metric needs is an entry of :data:`WEIGHT_FILES`. An entry names one file (``filename``,
``urls``, ``sha256``, ``size``) and, optionally, *alternates*: the same weights published elsewhere in another
format, each with its own file name, URLs, pinned checksum and size (CLIP ViT-L/14: OpenAI's TorchScript archive,
or the same tensors as an open_clip safetensors file on the Hugging Face hub). A file is looked up in this order:

1. files that ship inside the package (``quality/data``: BRISQUE SVM, NIQE pristine model) – always present;
2. ``<weights_dir>/<filename>`` of the entry, then of each alternate (``COMFY_QUALITY_WEIGHTS_DIR``; default
   ``~/.cache/comfy-quality/weights``);
3. a download into that folder, trying each URL of the entry and then of each alternate, unless offline
   (``COMFY_QUALITY_OFFLINE=1``, or ``HF_HUB_OFFLINE`` set to 1, true, yes or on in any case: huggingface_hub's
   reading, :func:`comfy_quality.config.hf_offline`).

Integrity: a file with a known ``size`` is checked for it (after every download, and before hashing a local file:
a truncated or wrong-size download is removed with an error saying so); a file with a pinned ``sha256`` is verified
before use (a mismatch is an error, never silently used). Files whose publishers give no checksum are verified
against the SHA-256 recorded in ``checksums.json`` in the weights folder, and that record is written only once the
file has been *loaded* successfully (:meth:`WeightsStore.loading`, or ``weights prefetch`` / ``weights verify``,
which read the checkpoint), so a broken first download is never trusted. ``python -m quality weights verify
--reset NAME`` forgets a recorded checksum. ``python -m quality weights list`` shows which file is which. For an
air-gapped machine: run ``python -m quality weights prefetch`` where there is internet, copy the folder, and point
``COMFY_QUALITY_WEIGHTS_DIR`` at it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from comfy_quality.config import hf_offline
from quality.errors import WeightsChecksumError, WeightsError, WeightsUnavailableError

log = logging.getLogger(__name__)

HF_PYIQA = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main"
GH_PYIQA = "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights"


@dataclass(frozen=True)
class FileSpec:
    """One published file: its local name, where to get it, and what it must be."""

    filename: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    """Pinned SHA-256 (hex). None: recorded after the first successful load and verified afterwards."""
    size: int | None = None
    """Exact size in bytes, when published (checked after download and before use)."""
    description: str = ""


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    description: str
    license: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    """Pinned SHA-256 (hex). None: recorded after the first successful load and verified afterwards."""
    size: int | None = None
    """Exact size in bytes, when known (shown by ``weights list``; checked after download and before use)."""
    packaged: str | None = None
    """File name inside ``quality/data`` when the file ships with the package."""
    alternates: tuple[FileSpec, ...] = ()
    """The same weights published elsewhere (another format): tried, in order, after the entry's own file."""

    def files(self) -> tuple[FileSpec, ...]:
        """The entry's own file, then its alternates."""
        own = FileSpec(self.filename, self.urls, self.sha256, self.size, self.description)
        return (own, *self.alternates)


OPENAI_CLIP_L14_SHA256 = "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"
#: open_clip's copy of the OpenAI ViT-L/14 weights on the Hugging Face hub (the source open_clip itself uses for
#: ``pretrained="openai"``); SHA-256 and size as served at the hub snapshot 18d05354.
HF_CLIP_L14 = "https://huggingface.co/timm/vit_large_patch14_clip_224.openai/resolve/main"
HF_CLIP_L14_SAFETENSORS_SHA256 = "9ce2e8a8ebfff3793d7d375ad6d3c35cb9aebf3de7ace0fc7308accab7cd207e"
#: as published in christophschuhmann/improved-aesthetic-predictor (3,714,759 bytes)
LAION_HEAD_SHA256 = "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0"

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
            urls=(f"https://openaipublic.azureedge.net/clip/models/{OPENAI_CLIP_L14_SHA256}/ViT-L-14.pt",),
            sha256=OPENAI_CLIP_L14_SHA256,
            size=932768134,
            alternates=(
                FileSpec(
                    filename="ViT-L-14.open_clip.safetensors",
                    urls=(f"{HF_CLIP_L14}/open_clip_model.safetensors",),
                    sha256=HF_CLIP_L14_SAFETENSORS_SHA256,
                    size=1710517724,
                    description="the same OpenAI weights in open_clip's layout, float32 safetensors "
                    "(Hugging Face hub timm/vit_large_patch14_clip_224.openai, open_clip_model.safetensors)",
                ),
            ),
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
            sha256=LAION_HEAD_SHA256,
            size=3714759,
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


def _mb(size: int) -> str:
    return f"{size:,} bytes" if size < 10_000_000 else f"{size:,} bytes ({size / 1e6:.0f} MB)"


def default_probe(path: Path) -> None:
    """Read ``path`` as a checkpoint (the backends' reader: safetensors, state dict or TorchScript archive);
    raises WeightsError when it is not one. Used before recording the checksum of a file that has none pinned."""
    from quality.backends.torch_util import read_state_dict  # local: torch only when a file is checked

    read_state_dict(path)


@dataclass(frozen=True)
class WeightStatus:
    entry: WeightFile
    path: Path | None
    present: bool
    size: int | None
    sha256: str | None
    pinned: bool
    verified: bool | None
    """True: matches the pinned/recorded checksum; False: mismatch; None: not present or nothing to compare."""
    note: str = ""
    spec: FileSpec | None = None
    """Which published file is present (the entry's own or an alternate)."""


@dataclass
class _Resolved:
    spec: FileSpec
    path: Path
    digest: str
    recorded: bool
    """False while an unpinned file's checksum waits for a successful load to be recorded."""


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
            offline = hf_offline()
        self.offline = offline
        self.registry = dict(WEIGHT_FILES if registry is None else registry)
        self.download_timeout = download_timeout
        self._verified: dict[str, _Resolved] = {}
        self._failed: dict[str, str] = {}
        self._lock = threading.RLock()

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

    def _local(self, entry: WeightFile) -> tuple[FileSpec, Path] | None:
        packaged = self._packaged_path(entry)
        if packaged is not None:
            return entry.files()[0], packaged
        for spec in entry.files():
            candidate = self.dir / spec.filename
            if candidate.is_file():
                return spec, candidate
        return None

    def _recorded(self) -> dict[str, str]:
        path = self.dir / self.CHECKSUMS_FILE
        try:
            data = json.loads(path.read_text())
            return {str(k): str(v) for k, v in data.items()}
        except (OSError, ValueError):
            return {}

    def _write_recorded(self, recorded: dict[str, str]) -> None:
        path = self.dir / self.CHECKSUMS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(recorded, indent=2, sort_keys=True))
        tmp.replace(path)

    def _record(self, filename: str, digest: str) -> None:
        with self._lock:
            recorded = self._recorded()
            recorded[filename] = digest
            self._write_recorded(recorded)

    def expected_sha256(self, entry: WeightFile, spec: FileSpec | None = None) -> str | None:
        """The pinned checksum of ``spec`` (default: the entry's own file), else the one recorded for it."""
        spec = spec or entry.files()[0]
        return spec.sha256 or self._recorded().get(spec.filename)

    @staticmethod
    def _check_size(entry: WeightFile, spec: FileSpec, size: int, what: str) -> None:
        if spec.size is not None and size != spec.size:
            raise WeightsChecksumError(
                f"{what} has {_mb(size)}, expected {_mb(spec.size)}: "
                f"{'truncated' if size < spec.size else 'not the right file'}. Delete it and run "
                f"`python -m quality weights prefetch {entry.name}` (or copy a good file there).",
                file=spec.filename,
            )

    def _verify(self, entry: WeightFile, spec: FileSpec, path: Path) -> _Resolved:
        self._check_size(entry, spec, path.stat().st_size, str(path))
        digest = sha256_file(path)
        expected = self.expected_sha256(entry, spec)
        if expected is None:
            return _Resolved(spec, path, digest, recorded=False)
        if digest != expected:
            if spec.sha256:
                advice = (
                    f"Delete it and run `python -m quality weights prefetch {entry.name}` (or copy a good file there)."
                )
            else:
                advice = (
                    f"The checksum was recorded when this file was first loaded. If the new file is the one you "
                    f"want, run `python -m quality weights verify --reset {entry.name}`; otherwise delete it and run "
                    f"`python -m quality weights prefetch {entry.name}`."
                )
            raise WeightsChecksumError(
                f"{path} has sha256 {digest}, expected {expected} ({'pinned' if spec.sha256 else 'recorded'}): "
                f"the file is corrupt or not the right one. {advice}",
                file=spec.filename,
            )
        return _Resolved(spec, path, digest, recorded=True)

    def _resolve(self, name: str) -> _Resolved:
        with self._lock:
            if name in self._verified:
                return self._verified[name]
            if name in self._failed:
                raise WeightsUnavailableError(self._failed[name], file=name)
            entry = self.entry(name)
            found = self._local(entry)
            try:
                resolved = self._download(entry) if found is None else self._verify(entry, *found)
            except WeightsUnavailableError as exc:
                self._failed[name] = str(exc)
                raise
            self._verified[name] = resolved
            return resolved

    def path(self, name: str) -> Path:
        """A verified local path for ``name``, downloading it when allowed. Raises WeightsError otherwise.

        A file with no pinned and no recorded checksum is returned unrecorded: load it inside :meth:`loading`
        (or call :meth:`confirm` after loading it) so that its checksum is recorded only once it is known to load.
        """
        return self._resolve(name).path

    def spec(self, name: str) -> FileSpec:
        """Which published file :meth:`path` resolved to (the entry's own file or one of its alternates)."""
        return self._resolve(name).spec

    def digest(self, name: str) -> str:
        """SHA-256 of the file :meth:`path` resolved to."""
        return self._resolve(name).digest

    def confirm(self, name: str) -> None:
        """The file of ``name`` loaded successfully: record its checksum if none is pinned or recorded yet."""
        with self._lock:
            resolved = self._resolve(name)
            if resolved.recorded:
                return
            self._record(resolved.spec.filename, resolved.digest)
            resolved.recorded = True
            log.warning(
                "weights %s have no published checksum; recorded sha256 %s after a successful load",
                resolved.spec.filename,
                resolved.digest,
            )

    @contextmanager
    def loading(self, name: str) -> Iterator[Path]:
        """``with store.loading(name) as path: <load it>``: the verified path; an unpinned file's checksum is
        recorded when the block finishes without an exception, and never when loading it failed."""
        path = self.path(name)
        yield path
        self.confirm(name)

    # -- download -----------------------------------------------------------------------------------------
    def _download(self, entry: WeightFile) -> _Resolved:
        specs = [spec for spec in entry.files() if spec.urls]
        if self.offline:
            raise WeightsUnavailableError(
                f"weights file {entry.filename} is not in {self.dir} (offline: downloads are off). "
                "Run `python -m quality weights prefetch` on a machine with internet and copy the folder here, "
                "or set COMFY_QUALITY_WEIGHTS_DIR to a folder that has it.",
                file=entry.filename,
            )
        if not specs:
            raise WeightsUnavailableError(
                f"weights file {entry.filename} is not in {self.dir} and has no download URL", file=entry.filename
            )
        import httpx  # local: only needed when downloading

        self.dir.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []
        for spec in specs:
            target = self.dir / spec.filename
            part = target.with_name(target.name + ".part")
            for url in spec.urls:
                try:
                    log.info("downloading %s from %s", spec.filename, url)
                    digest = hashlib.sha256()
                    size = 0
                    timeout = httpx.Timeout(self.download_timeout, connect=15.0)
                    with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as resp:
                        resp.raise_for_status()
                        with part.open("wb") as fh:
                            for chunk in resp.iter_bytes(1 << 20):
                                fh.write(chunk)
                                digest.update(chunk)
                                size += len(chunk)
                    self._check_size(entry, spec, size, f"the download of {spec.filename} from {url}")
                    if spec.sha256 and digest.hexdigest() != spec.sha256:
                        raise WeightsChecksumError(
                            f"downloaded {spec.filename} from {url} has sha256 {digest.hexdigest()}, "
                            f"expected {spec.sha256}",
                            file=spec.filename,
                        )
                    part.replace(target)
                except (httpx.HTTPError, OSError, WeightsChecksumError) as exc:
                    errors.append(f"{url}: {exc}")
                    part.unlink(missing_ok=True)
                    continue
                recorded = self.expected_sha256(entry, spec)
                if recorded is not None and recorded != digest.hexdigest():
                    # the checksum recorded for an earlier copy differs from what is served now: raise, with advice
                    return self._verify(entry, spec, target)
                return _Resolved(spec, target, digest.hexdigest(), recorded=recorded is not None)
        raise WeightsUnavailableError(
            f"weights file {entry.filename} is not in {self.dir} and could not be downloaded "
            f"({'; '.join(errors)[:600]}). On an offline machine, copy a prefetched weights folder and set "
            "COMFY_QUALITY_WEIGHTS_DIR.",
            file=entry.filename,
        )

    def prefetch(
        self, names: list[str] | None = None, *, probe: Callable[[Path], None] | None = default_probe
    ) -> dict[str, str]:
        """Fetch (and verify) every entry, or ``names``; returns name → "ok" or the error message. A file with no
        pinned or recorded checksum is read as a checkpoint (``probe``) and its checksum recorded only if that
        works (``probe=None``: leave it unrecorded until a backend loads it)."""
        out: dict[str, str] = {}
        for name in names or list(self.registry):
            try:
                self._check_loads(name, probe)
                out[name] = "ok"
            except WeightsError as exc:
                out[name] = str(exc)
        return out

    def _check_loads(self, name: str, probe: Callable[[Path], None] | None) -> None:
        resolved = self._resolve(name)
        if resolved.recorded or probe is None:
            return
        with self.loading(name) as path:
            probe(path)

    # -- verify / reset -----------------------------------------------------------------------------------
    def reset(self, name: str) -> list[str]:
        """Forget the recorded checksums of ``name``'s files (so the next successful load records them again);
        returns the file names whose record was removed. Pinned checksums cannot be reset."""
        entry = self.entry(name)
        with self._lock:
            recorded = self._recorded()
            removed = [spec.filename for spec in entry.files() if recorded.pop(spec.filename, None) is not None]
            if removed:
                self._write_recorded(recorded)
            self._verified.pop(name, None)
            self._failed.pop(name, None)
        return removed

    def verify(self, name: str, *, probe: Callable[[Path], None] | None = default_probe) -> str:
        """Check the present file of ``name`` now: size, then checksum (pinned or recorded); a file with neither is
        read as a checkpoint and its checksum recorded when that works. Returns a one-line verdict; raises
        WeightsError when the file is missing or fails."""
        with self._lock:
            self._verified.pop(name, None)
            self._failed.pop(name, None)
            entry = self.entry(name)
            found = self._local(entry)
            if found is None:
                raise WeightsUnavailableError(f"{name}: not present in {self.dir}", file=entry.filename)
            resolved = self._verify(entry, *found)
            self._verified[name] = resolved
            kind = "pinned" if resolved.spec.sha256 else "recorded"
            if not resolved.recorded:
                self._check_loads(name, probe)
                if probe is None:
                    return f"present, sha256 {resolved.digest[:16]}…, not recorded (no checksum published)"
                kind = "loads; recorded now"
            return f"ok ({kind} sha256 {resolved.digest[:16]}…, {resolved.spec.filename})"

    # -- listing ------------------------------------------------------------------------------------------
    def status(self, name: str, *, hash_files: bool = True) -> WeightStatus:
        entry = self.entry(name)
        found = self._local(entry)
        if found is None:
            return WeightStatus(entry, None, False, None, None, entry.sha256 is not None, None, "missing")
        spec, path = found
        size = path.stat().st_size
        digest = sha256_file(path) if hash_files else None
        expected = self.expected_sha256(entry, spec)
        verified = None if digest is None or expected is None else digest == expected
        if spec.size is not None and size != spec.size:
            verified = False
        note = "packaged" if entry.packaged else ("pinned" if spec.sha256 else "recorded after first load")
        if expected is None:
            note = "unverified (no published checksum; recorded after the first successful load)"
        if spec.filename != entry.filename:
            note += f"; alternate file {spec.filename}"
        return WeightStatus(entry, path, True, size, digest, spec.sha256 is not None, verified, note, spec)

    def statuses(self, *, hash_files: bool = True) -> list[WeightStatus]:
        return [self.status(name, hash_files=hash_files) for name in self.registry]
