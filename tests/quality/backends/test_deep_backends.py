"""The deep metrics' real loading code, exercised with tiny checkpoints the tests create (no network)."""

from dataclasses import replace

import pytest
import torch

from quality.backends.base import LoadContext
from quality.backends.clip import ClipBackend
from quality.backends.nima import NIMABackend, NIMANet
from quality.backends.topiq import TopiqBackend, build_cfanet
from quality.errors import WeightsError
from quality.image_io import load_image
from quality.weights import WeightsStore, sha256_file
from tests.quality.conftest import textured
from tests.quality.tiny_models import TINY_OPTIONS, make_nima, make_topiq, tiny_weights_store


def ctx(store: WeightsStore, **extra) -> LoadContext:
    return LoadContext(weights=store, device="cpu", options={**TINY_OPTIONS, **extra})


def test_clip_from_a_torchscript_archive_matches_the_state_dict_version(tmp_path):
    plain = ClipBackend()
    plain.load(ctx(tiny_weights_store(tmp_path / "plain")))
    jit = ClipBackend()
    jit.load(ctx(tiny_weights_store(tmp_path / "jit", jit_clip=True)))
    image = load_image(textured(7))
    a, b = plain.compute(image, "a cat"), jit.compute(image, "a cat")
    assert a.keys() == b.keys() == {"laion_aesthetic", "clip_score"}
    assert a["clip_score"] == pytest.approx(b["clip_score"], abs=1e-6)  # same tensors, same seed


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
    registry[entry.name] = replace(entry, sha256=sha256_file(bad / entry.filename))
    with pytest.raises(WeightsError, match=entry.filename):
        NIMABackend().load(ctx(WeightsStore(bad, offline=True, registry=registry)))


def test_checkpoint_of_the_wrong_architecture_is_explained(tmp_path, tiny_weights):
    folder = tmp_path / "wrong"
    folder.mkdir()
    entry = tiny_weights.registry["nima_inception_resnet_v2_ava"]
    make_nima(folder / entry.filename, arch="resnet34")  # the spec says resnet18
    registry = dict(tiny_weights.registry)
    registry[entry.name] = replace(entry, sha256=sha256_file(folder / entry.filename))
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
    """ViT-L/14 with random weights written the way OpenAI publishes it (TorchScript archive, ~1.7 GB)."""
    import open_clip

    from tests.quality.tiny_models import _Renamed

    model = open_clip.create_model("ViT-L-14", pretrained=None, force_quick_gelu=True)
    state = model.state_dict()
    state["input_resolution"] = torch.tensor(224)
    path = tmp_path / "ViT-L-14.pt"
    torch.jit.script(_Renamed(state)).save(str(path))
    store = tiny_weights_store(tmp_path / "rest")
    registry = dict(store.registry)
    registry["clip_vit_l14"] = replace(registry["clip_vit_l14"], sha256=sha256_file(path))
    (tmp_path / "rest" / "ViT-L-14.pt").unlink()
    path.rename(tmp_path / "rest" / "ViT-L-14.pt")
    registry["laion_aesthetic_head"] = replace(registry["laion_aesthetic_head"], urls=())
    store = WeightsStore(tmp_path / "rest", offline=True, registry=registry)
    (tmp_path / "rest" / registry["laion_aesthetic_head"].filename).unlink()
    backend = ClipBackend()
    backend.load(LoadContext(weights=store, device="cpu", options={}))
    out = backend.compute(load_image(textured(1)), "a statue")
    assert set(out) == {"clip_score"} and "laion_aesthetic" in backend.unavailable
