"""The deep metrics' real loading code, exercised with tiny checkpoints the tests create (no network)."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from quality.backends.base import LoadContext
from quality.backends.clip import ClipBackend
from quality.backends.nima import NIMABackend, NIMANet
from quality.backends.topiq import TopiqBackend, build_cfanet
from quality.backends.torch_util import is_torchscript_archive, read_state_dict
from quality.errors import WeightsError
from quality.image_io import load_image
from quality.weights import WeightsStore, sha256_file
from tests.quality.conftest import textured
from tests.quality.tiny_models import (
    LAION_HEAD_LAYOUT,
    TINY_OPTIONS,
    make_nima,
    make_tiny_clip,
    make_tiny_head,
    make_topiq,
    openai_clip,
    save_openai_torchscript,
    tiny_weights_store,
)


def ctx(store: WeightsStore, **extra) -> LoadContext:
    return LoadContext(weights=store, device="cpu", options={**TINY_OPTIONS, **extra})


def _openai_scores(model, backend: ClipBackend, image, prompt: str) -> dict[str, float]:
    """CLIP score and LAION rating computed by OpenAI's own model class (weights as stored, run in float32) on the
    backend's preprocessed pixels and OpenAI's tokenizer: what the upstream code computes."""
    import clip

    model = model.float().eval()
    pixels = backend.preprocess(image.pil()).unsqueeze(0)
    with torch.no_grad():
        emb = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
        text = torch.nn.functional.normalize(model.encode_text(clip.tokenize([prompt])), dim=-1)
    return {"clip_score": float(emb @ text.T), "embedding_norm": float(emb.norm())}


@pytest.mark.parametrize("fmt", ["torchscript", "safetensors"])
def test_clip_loads_both_published_formats_and_scores_as_openais_model(tmp_path, fmt):
    """OpenAI's TorchScript archive and open_clip's safetensors copy of the same weights: both load, and the CLIP
    score equals the one OpenAI's model class computes (so a key-layout or architecture drift fails here)."""
    store = tiny_weights_store(tmp_path / fmt, clip_format=fmt)
    assert store.spec("clip_vit_l14").filename == (
        "ViT-L-14.pt" if fmt == "torchscript" else "ViT-L-14.open_clip.safetensors"
    )
    backend = ClipBackend()
    backend.load(ctx(store))
    reference = make_tiny_clip(tmp_path / "reference.pt")  # the same seed: the same OpenAI weights
    image = load_image(textured(7))
    out = backend.compute(image, "a cat on a mat")
    assert out.keys() == {"laion_aesthetic", "clip_score"}
    assert out["clip_score"] == pytest.approx(
        _openai_scores(reference, backend, image, "a cat on a mat")["clip_score"], abs=2e-5
    )


def test_torchscript_archive_is_recognised_before_torch_load(tmp_path, monkeypatch):
    """torch 2.3-2.5 return a ScriptModule from torch.load(weights_only=True) on a TorchScript archive, where
    torch >= 2.6 raise: simulate the older behaviour; the archive must still load as CLIP."""
    real_load = torch.load

    def load_like_torch_2_5(f, *args, **kwargs):
        if is_torchscript_archive(Path(f)):
            return torch.jit.load(str(f), map_location="cpu")
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", load_like_torch_2_5)
    store = tiny_weights_store(tmp_path)
    assert is_torchscript_archive(store.path("clip_vit_l14"))
    assert not is_torchscript_archive(store.path("nima_inception_resnet_v2_ava"))  # a torch.save zip
    state = read_state_dict(store.path("clip_vit_l14"))
    assert "visual.conv1.weight" in state and "input_resolution" in state
    backend = ClipBackend()
    backend.load(ctx(store))
    assert "clip_score" in backend.compute(load_image(textured(2)), "p")


def test_tiny_head_has_the_published_laion_layout(tmp_path):
    make_tiny_head(tmp_path / "head.pth", dim=768)
    state = torch.load(tmp_path / "head.pth", weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == LAION_HEAD_LAYOUT


def test_one_image_embedding_serves_both_clip_metrics(tiny_weights, monkeypatch):
    backend = ClipBackend()
    backend.load(ctx(tiny_weights))
    calls = {"image": 0, "text": 0}
    enc_img, enc_txt = backend.model.encode_image, backend.model.encode_text

    def count_image(x):
        calls["image"] += 1
        return enc_img(x)

    def count_text(x):
        calls["text"] += 1
        return enc_txt(x)

    monkeypatch.setattr(backend.model, "encode_image", count_image)
    monkeypatch.setattr(backend.model, "encode_text", count_text)
    for seed in range(3):
        out = backend.compute(load_image(textured(seed)), "the same prompt")
        assert {"laion_aesthetic", "clip_score"} <= out.keys()
    assert calls == {"image": 3, "text": 1}  # one embedding per image, prompt embedded once


def test_clip_score_is_the_cosine_of_the_two_embeddings(tmp_path):
    """With random weights nothing is semantically meaningful, but the score must be the cosine of the two
    embeddings: check it against open_clip directly."""
    store = tiny_weights_store(tmp_path)
    backend = ClipBackend()
    backend.load(ctx(store))
    image = load_image(textured(3))
    pixels = backend.preprocess(image.pil()).unsqueeze(0)
    with torch.no_grad():
        i = torch.nn.functional.normalize(backend.model.encode_image(pixels), dim=-1)
        t = torch.nn.functional.normalize(backend.model.encode_text(backend.tokenizer(["x y z"])), dim=-1)
    assert backend.compute(image, "x y z")["clip_score"] == pytest.approx(float(i @ t.T), abs=1e-5)


def test_missing_aesthetic_head_leaves_clip_score_available(tmp_path):
    store = tiny_weights_store(tmp_path, skip=("laion_aesthetic_head",))
    backend = ClipBackend()
    backend.load(ctx(store))
    assert "laion_aesthetic" in backend.unavailable
    assert backend.compute(load_image(textured(1)), "p").keys() == {"clip_score"}


def test_corrupt_checkpoint_is_a_weights_error_naming_the_file(tmp_path, tiny_weights):
    bad = tmp_path / "bad"
    bad.mkdir()
    entry = tiny_weights.registry["nima_inception_resnet_v2_ava"]
    (bad / entry.filename).write_bytes(b"\x00garbage" * 100)
    registry = dict(tiny_weights.registry)
    registry[entry.name] = replace(entry, sha256=sha256_file(bad / entry.filename), size=None)
    with pytest.raises(WeightsError, match=entry.filename):
        NIMABackend().load(ctx(WeightsStore(bad, offline=True, registry=registry)))


def test_checkpoint_of_the_wrong_architecture_is_explained(tmp_path, tiny_weights):
    folder = tmp_path / "wrong"
    folder.mkdir()
    entry = tiny_weights.registry["nima_inception_resnet_v2_ava"]
    make_nima(folder / entry.filename, arch="resnet34")  # the spec says resnet18
    registry = dict(tiny_weights.registry)
    registry[entry.name] = replace(entry, sha256=sha256_file(folder / entry.filename), size=None)
    with pytest.raises(WeightsError, match="does not fit"):
        NIMABackend().load(ctx(WeightsStore(folder, offline=True, registry=registry)))


def test_nima_mean_is_the_expectation_of_its_distribution(tiny_weights):
    backend = NIMABackend()
    backend.load(ctx(tiny_weights))
    image = load_image(textured(4))
    from quality.backends.torch_util import image_tensor

    with torch.no_grad():
        dist = backend.net(image_tensor(image.rgb))[0]
    assert dist.sum().item() == pytest.approx(1.0, abs=1e-5)
    expected = float((dist * torch.arange(1, 11)).sum())
    assert backend.compute(image, None)["nima_mean"] == pytest.approx(expected, abs=1e-5)


def test_topiq_runs_from_its_checkpoint_and_is_deterministic(tiny_weights):
    backend = TopiqBackend()
    backend.load(ctx(tiny_weights))
    image = load_image(textured(5, size=300))
    assert backend.compute(image, None) == backend.compute(image, None)


@pytest.mark.slow
def test_full_size_nima_and_topiq_architectures_load_their_published_layout(tmp_path):
    """The real Inception-ResNet-v2 NIMA and ResNet-50 CFANet layouts (random weights, ~300 MB of files)."""
    nima_file = tmp_path / "NIMA_InceptionV2_ava-b0c77c00.pth"
    make_nima(nima_file, arch="inception_resnet_v2")
    topiq_file = tmp_path / "cfanet_nr_koniq_res50-9a73138b.pth"
    make_topiq(topiq_file, backbone="resnet50")
    store = tiny_weights_store(tmp_path)  # reuses the two files above, pins their hashes
    nima, topiq = NIMABackend(), TopiqBackend()
    nima.load(LoadContext(weights=store, device="cpu", options={}))
    topiq.load(LoadContext(weights=store, device="cpu", options={}))
    assert isinstance(nima.net, NIMANet) and nima.net.input_size == 299
    image = load_image(textured(6, size=512))
    assert 1 <= nima.compute(image, None)["nima_mean"] <= 10
    assert isinstance(topiq.compute(image, None)["topiq"], float)
    assert sum(p.numel() for p in build_cfanet("resnet50").parameters()) > 40_000_000


@pytest.mark.slow
def test_full_size_vit_l14_loads_from_an_openai_style_torchscript_archive(tmp_path):
    """OpenAI's ViT-L/14 class with random weights, traced and saved the way OpenAI publishes it (~0.9 GB)."""
    model = openai_clip(
        embed_dim=768,
        image_resolution=224,
        vision_layers=24,
        vision_width=1024,
        vision_patch_size=14,
        transformer_width=768,
        transformer_heads=12,
        transformer_layers=12,
    )
    folder = tmp_path / "rest"
    store = tiny_weights_store(folder, skip=("clip_vit_l14", "laion_aesthetic_head"))
    path = folder / "ViT-L-14.pt"
    save_openai_torchscript(model, path)
    registry = dict(store.registry)
    registry["clip_vit_l14"] = replace(registry["clip_vit_l14"], sha256=sha256_file(path), size=path.stat().st_size)
    store = WeightsStore(folder, offline=True, registry=registry)
    backend = ClipBackend()
    backend.load(LoadContext(weights=store, device="cpu", options={}))
    out = backend.compute(load_image(textured(1)), "a statue")
    assert set(out) == {"clip_score"} and "laion_aesthetic" in backend.unavailable
    assert out["clip_score"] == pytest.approx(
        _openai_scores(model, backend, load_image(textured(1)), "a statue")["clip_score"], abs=1e-4
    )


def test_nima_matches_pyiqas_nima_on_the_same_checkpoint(tiny_weights):
    """Our NIMA network with pyiqa's checkpoint layout gives pyiqa's own rating distribution."""
    from pyiqa.archs.nima_arch import NIMA

    from tests.quality.tiny_models import _no_backbone_download

    backend = NIMABackend()
    backend.load(ctx(tiny_weights))
    with _no_backbone_download():
        upstream = NIMA(base_model_name="resnet18", pretrained=False)
    state = torch.load(tiny_weights.path("nima_inception_resnet_v2_ava"), weights_only=True)["params"]
    upstream.load_state_dict(state)
    upstream.eval()
    from quality.backends.torch_util import image_tensor

    x = image_tensor(load_image(textured(8, size=300)).rgb)
    with torch.no_grad():
        ours, theirs = backend.net(x), upstream(x, return_mos=False, return_dist=True)
    assert torch.allclose(ours, theirs, atol=1e-5)
