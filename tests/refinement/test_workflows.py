"""Loading, describing, hashing and patching workflows: the 22 shared real-world workflows, the shipped
templates,
and constructed graphs for the less common wirings. No assertion depends on a node id: nodes are found through
the graph (class and links)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from refinement.comfyui import ComfyUIClient, ComfyUIMissingNodesError, ComfyUIValidationError
from refinement.comfyui.graph import as_link, consumers
from refinement.params import GenerationParams, LoraSpec
from refinement.workflows import (
    WorkflowError,
    WorkflowLoadError,
    WorkflowPatchError,
    describe,
    list_templates,
    load_template,
    load_workflow,
    patch,
    workflow_hash,
)
from tests.fakes.comfyui_server import FakeComfyUI
from tests.fakes.comfyui_testing import REPO, needs_shared, shared_workflow_paths

# From shared/workflows/README.md: steps, cfg, sampler, scheduler, denoise, (width, height) or None (img2img).
EXPECTED: dict[str, tuple[int, float, str, str, float, tuple[int, int] | None]] = {
    "flux-dev-hires": (50, 7.5, "dpmpp_2m_sde", "karras", 1.0, (1024, 1024)),
    "flux-dev-proper": (25, 1.0, "euler", "simple", 1.0, (1024, 1024)),
    "flux-dev": (25, 1.0, "euler", "simple", 1.0, (1024, 1024)),
    "illustrious-anime": (30, 7.0, "dpmpp_2m_sde", "karras", 1.0, (1024, 1024)),
    "majicmix-realistic": (30, 7.0, "dpmpp_sde", "karras", 1.0, (512, 768)),
    "pony-img2img": (30, 7.0, "dpmpp_2m_sde", "karras", 0.5, None),
    "pony-realism-hires": (50, 7.0, "dpmpp_2m_sde", "karras", 1.0, (1280, 1920)),
    "pony-realism-refine": (30, 7.0, "dpmpp_2m_sde", "karras", 0.5, None),
    "pony-realism": (30, 7.0, "dpmpp_2m_sde", "karras", 1.0, (1024, 1024)),
    "pony-v6": (30, 7.0, "dpmpp_2m_sde", "karras", 1.0, (1024, 1024)),
    "realistic-vision-hires": (50, 7.5, "dpmpp_sde", "karras", 1.0, (1024, 1024)),
    "realistic-vision": (30, 7.0, "dpmpp_sde", "karras", 1.0, (512, 512)),
    "sd15-basic": (30, 7.0, "dpmpp_2m", "normal", 1.0, (512, 512)),
    "sd15-hires": (50, 7.5, "dpmpp_2m_sde", "karras", 1.0, (1024, 1024)),
    "sd15-img2img": (30, 7.0, "dpmpp_2m", "normal", 0.7, None),
    "transparent-icon": (30, 7.0, "dpmpp_2m", "normal", 1.0, (512, 512)),
    "wan22-i2v-low": (4, 1.0, "euler", "simple", 0.95, None),
    "wan22-i2v": (4, 1.0, "euler", "simple", 0.95, None),
    "wan22-t2v-low": (4, 1.0, "euler", "simple", 1.0, (848, 480)),
    "wan22-t2v": (4, 1.0, "euler", "simple", 1.0, (848, 480)),
}
WORKFLOWS = shared_workflow_paths()
FULL = GenerationParams(
    prompt="a red fox in the snow", negative_prompt="blurry, watermark", seed=1234567, steps=33, cfg=6.5,
    guidance=2.5, sampler="euler_ancestral", scheduler="karras", width=640, height=384, batch_size=2,
    denoise=0.8,
    loras=[LoraSpec(name="add_detail.safetensors", strength_model=0.6, strength_clip=0.4)],
)  # fmt: skip


def _sampler_node(wf: dict[str, Any]) -> dict[str, Any]:
    primary = next(s for s in describe(wf).samplers if s.primary)
    return wf[primary.node_id]


def _source(wf: dict[str, Any], node: dict[str, Any], name: str) -> dict[str, Any]:
    link = as_link(node["inputs"][name])
    assert link is not None, name
    return wf[link[0]]


@needs_shared
def test_all_22_shared_workflows_are_there() -> None:
    assert len(WORKFLOWS) == 22


@needs_shared
@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_shared_workflow_describe_matches_its_readme(path: Path) -> None:
    wf = load_workflow(path)
    info = describe(wf)
    assert info.hash == workflow_hash(json.loads(path.read_text()))
    assert info.output_nodes
    if path.stem == "upscale-4x":
        assert not info.samplers and info.settable == []
        return
    if path.stem == "flux-dev-alt":  # SamplerCustom with KSampler-style inputs: broken, see below
        assert info.params.seed is None and "seed" not in info.settable
        return
    steps, cfg, sampler, scheduler, denoise, size = EXPECTED[path.stem]
    p = info.params
    assert (p.seed, p.steps, p.cfg, p.sampler, p.scheduler, p.denoise) == (
        0,
        steps,
        cfg,
        sampler,
        scheduler,
        denoise,
    )
    assert (p.width, p.height) == (size if size else (None, None))
    if size is None:
        assert "width" not in info.settable and "input image" in (info.size_note or "")
    encoder = _source(wf, _sampler_node(wf), "positive")
    while "text" not in encoder["inputs"]:
        encoder = _source(wf, encoder, "conditioning")
    assert p.prompt == encoder["inputs"]["text"]
    assert info.shared_prompt_node == path.stem.startswith("wan22")
    flux = path.stem in ("flux-dev", "flux-dev-proper")  # flux-dev-hires is really SD 1.5 (see the README)
    assert ("guidance" in info.settable) == flux
    assert p.guidance == (3.5 if flux else None)
    if path.stem.startswith("wan22"):
        assert p.loras and "lightx2v" in p.loras[0].name


@needs_shared
@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_shared_workflow_patch_round_trips_every_settable_field(path: Path) -> None:
    wf = load_workflow(path)
    before = copy.deepcopy(wf)
    info = describe(wf)
    for field in GenerationParams.model_fields:
        change = GenerationParams.model_validate({field: FULL.model_dump()[field]})
        if field not in info.settable:
            if field == "negative_prompt" or (field == "loras" and not info.samplers):
                continue
            with pytest.raises(WorkflowPatchError, match=r"cannot be set|no sampler|LoRAs cannot"):
                patch(wf, change)
            continue
        patched = patch(wf, change)
        after = describe(patched).params
        if field == "loras":
            assert [lora.name for lora in after.loras or []][-1] == "add_detail.safetensors"
        elif field == "negative_prompt" and info.shared_prompt_node:
            assert (
                after.negative_prompt == FULL.negative_prompt
                and describe(patched).params.prompt == info.params.prompt
            )
        else:
            assert getattr(after, field) == getattr(FULL, field), field
    assert wf == before  # never mutated


def test_patch_writes_where_the_sampler_links_lead() -> None:
    wf = load_template("sd15")
    new = patch(wf, FULL.with_updates(guidance=None))
    sampler = _sampler_node(new)
    assert sampler["inputs"]["seed"] == 1234567 and sampler["inputs"]["sampler_name"] == "euler_ancestral"
    assert _source(new, sampler, "positive")["inputs"]["text"] == "a red fox in the snow"
    assert _source(new, sampler, "negative")["inputs"]["text"] == "blurry, watermark"
    latent = _source(new, sampler, "latent_image")
    assert (latent["inputs"]["width"], latent["inputs"]["height"], latent["inputs"]["batch_size"]) == (
        640,
        384,
        2,
    )
    # the LoRA sits between the checkpoint and everything that used its MODEL and CLIP
    lora = _source(new, sampler, "model")
    assert lora["class_type"] == "LoraLoader" and lora["inputs"]["lora_name"] == "add_detail.safetensors"
    assert _source(new, lora, "model")["class_type"] == "CheckpointLoaderSimple"
    encoder = _source(new, sampler, "positive")
    assert _source(new, encoder, "clip") is lora
    assert (lora["inputs"]["strength_model"], lora["inputs"]["strength_clip"]) == (0.6, 0.4)


def test_flux_guidance_and_lora_on_a_unet_workflow() -> None:
    wf = load_template("flux-dev")
    new = patch(
        wf, GenerationParams(guidance=2.0, prompt="a lighthouse", loras=[LoraSpec(name="a.safetensors")])
    )
    sampler = _sampler_node(new)
    guidance = _source(new, sampler, "positive")
    assert guidance["class_type"] == "FluxGuidance" and guidance["inputs"]["guidance"] == 2.0
    assert _source(new, guidance, "conditioning")["inputs"]["text"] == "a lighthouse"
    lora = _source(new, sampler, "model")
    assert lora["class_type"] == "LoraLoader" and _source(new, lora, "model")["class_type"] == "UNETLoader"
    assert _source(new, lora, "clip")["class_type"] == "DualCLIPLoader"  # the CLIP the prompt encoders used
    assert _source(new, _source(new, guidance, "conditioning"), "clip") is lora
    with pytest.raises(WorkflowPatchError, match="workflow has no FluxGuidance node: guidance cannot be set"):
        patch(load_template("sdxl"), GenerationParams(guidance=3.0))


@needs_shared
def test_two_loras_chain_and_an_existing_one_is_updated_by_name() -> None:
    wan = load_workflow(next(p for p in WORKFLOWS if p.stem == "wan22-t2v"))
    existing = describe(wan).params.loras[0].name  # type: ignore[index]
    new = patch(
        wan,
        GenerationParams(loras=[LoraSpec(name=existing, strength_model=0.7), LoraSpec(name="x.safetensors"),
                                LoraSpec(name="y.safetensors", strength_model=0.3)]),
    )  # fmt: skip
    loras = describe(new).loras
    assert [lora.name for lora in loras] == [existing, "x.safetensors", "y.safetensors"]
    assert loras[0].strength_model == 0.7
    assert sum(1 for n in new.values() if n["class_type"] == "LoraLoader") == 3
    sampler = _sampler_node(new)
    assert _source(new, sampler, "model")["inputs"]["lora_name"] == "y.safetensors"


@needs_shared
def test_shared_prompt_node_is_split_for_a_negative_prompt() -> None:
    wan = load_workflow(next(p for p in WORKFLOWS if p.stem == "wan22-t2v"))
    only_prompt = patch(wan, GenerationParams(prompt="a cat"))
    sampler = _sampler_node(only_prompt)
    assert _source(only_prompt, sampler, "positive") is _source(only_prompt, sampler, "negative")
    both = patch(wan, GenerationParams(prompt="a cat", negative_prompt="blurry"))
    sampler = _sampler_node(both)
    pos, neg = _source(both, sampler, "positive"), _source(both, sampler, "negative")
    assert pos is not neg and (pos["inputs"]["text"], neg["inputs"]["text"]) == ("a cat", "blurry")
    assert neg["inputs"]["clip"] == pos["inputs"]["clip"]
    assert not describe(both).shared_prompt_node


def _custom_advanced() -> dict[str, Any]:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors",
        "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader",
              "inputs": {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors",
              "type": "flux"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "old", "clip": ["2", 0]}},
        "4": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["3", 0], "guidance": 3.5}},
        "5": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["4", 0]}},
        "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": 0}},
        "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "8": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple",
        "steps": 20,
                                                        "denoise": 1.0}},
        "9": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024,
        "batch_size": 1}},
        "10": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["6", 0], "guider": ["5", 0],
               "sampler": ["7", 0], "sigmas": ["8", 0], "latent_image": ["9", 0]}},
        "11": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["11", 0]}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "adv"}},
    }  # fmt: skip


def test_sampler_custom_advanced_parameters_live_in_its_helper_nodes() -> None:
    wf = load_workflow(_custom_advanced())
    new = patch(wf, GenerationParams(seed=9, steps=12, sampler="heun", scheduler="beta", denoise=0.9,
    guidance=4.0,
                                     prompt="p", width=512, height=768))  # fmt: skip
    by_class = {n["class_type"]: n["inputs"] for n in new.values()}
    assert by_class["RandomNoise"]["noise_seed"] == 9
    assert (by_class["BasicScheduler"]["steps"], by_class["BasicScheduler"]["scheduler"]) == (12, "beta")
    assert (
        by_class["BasicScheduler"]["denoise"] == 0.9 and by_class["KSamplerSelect"]["sampler_name"] == "heun"
    )
    assert by_class["FluxGuidance"]["guidance"] == 4.0 and by_class["CLIPTextEncode"]["text"] == "p"
    assert (by_class["EmptySD3LatentImage"]["width"], by_class["EmptySD3LatentImage"]["height"]) == (512, 768)
    with pytest.raises(WorkflowPatchError, match="BasicGuider has no cfg"):
        patch(wf, GenerationParams(cfg=5.0))
    assert patch(wf, GenerationParams(negative_prompt="")) == wf  # nothing to do, not an error
    with pytest.raises(WorkflowPatchError, match="no negative conditioning"):
        patch(wf, GenerationParams(negative_prompt="blurry"))


def test_hires_fix_gets_steps_on_the_first_pass_and_seed_on_both() -> None:
    wf = load_template("sd15")
    first = next(n for n, node in wf.items() if node["class_type"] == "KSampler")
    wf["20"] = {"class_type": "LatentUpscaleBy", "inputs": {"samples": [first, 0], "upscale_method":
    "bicubic",
                                                            "scale_by": 1.5}}  # fmt: skip
    second = copy.deepcopy(wf[first])
    second["inputs"].update(latent_image=["20", 0], steps=12, denoise=0.5)
    wf["21"] = second
    for node_id, name in consumers(wf, (first, 0)):
        if wf[node_id]["class_type"] == "VAEDecode":
            wf[node_id]["inputs"][name] = ["21", 0]
    wf = load_workflow(wf)
    new = patch(wf, GenerationParams(steps=40, seed=5, denoise=0.9, width=768, height=768))
    samplers = {s.primary: s for s in describe(new).samplers}
    assert (samplers[True].steps, samplers[True].seed, samplers[True].denoise) == (40, 5, 0.9)
    assert (samplers[False].steps, samplers[False].seed, samplers[False].denoise) == (12, 5, 0.5)
    assert describe(new).params.width == 768


def test_ksampler_advanced_and_primitive_inputs() -> None:
    wf = load_template("sd15")
    sampler_id = next(n for n, node in wf.items() if node["class_type"] == "KSampler")
    inputs = wf[sampler_id]["inputs"]
    wf[sampler_id] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": inputs["model"], "add_noise": "enable", "noise_seed": ["30", 0], "steps": 20, "cfg": 7.0,
        "sampler_name": "euler", "scheduler": "normal", "positive": inputs["positive"], "negative":
        inputs["negative"],
        "latent_image": inputs["latent_image"], "start_at_step": 0, "end_at_step": 10000,
        "return_with_leftover_noise": "disable"}}  # fmt: skip
    wf["30"] = {"class_type": "PrimitiveInt", "inputs": {"value": 1}}
    new = patch(load_workflow(wf), GenerationParams(seed=77, steps=9))
    assert new["30"]["inputs"]["value"] == 77 and new[sampler_id]["inputs"]["steps"] == 9
    assert describe(new).params.seed == 77
    with pytest.raises(WorkflowPatchError, match="start_at_step"):
        patch(wf, GenerationParams(denoise=0.5))


@needs_shared
def test_broken_shared_workflows_fail_clearly() -> None:
    alt = load_workflow(next(p for p in WORKFLOWS if p.stem == "flux-dev-alt"))
    with pytest.raises(
        WorkflowPatchError, match=r"SamplerCustom node .* has no 'noise_seed' input: seed cannot be set"
    ):
        patch(alt, GenerationParams(seed=1))
    with pytest.raises(WorkflowPatchError, match="BasicScheduler on its 'sigmas' input: steps cannot be set"):
        patch(alt, GenerationParams(steps=20))
    upscale = load_workflow(next(p for p in WORKFLOWS if p.stem == "upscale-4x"))
    with pytest.raises(WorkflowPatchError, match=r"no sampler node .*: prompt cannot be set"):
        patch(upscale, GenerationParams(prompt="x"))
    img2img = load_workflow(next(p for p in WORKFLOWS if p.stem == "pony-img2img"))
    with pytest.raises(WorkflowPatchError, match=r"width cannot be set .*VAEEncode.*input image"):
        patch(img2img, GenerationParams(width=512))


@needs_shared
async def test_broken_shared_workflows_are_rejected_by_the_server_with_clear_errors() -> None:
    paths = {p.stem: p for p in WORKFLOWS}
    async with FakeComfyUI() as fake, ComfyUIClient(fake.url) as client:
        for name in ("transparent-icon", "wan22-t2v", "wan22-i2v"):
            with pytest.raises(ComfyUIMissingNodesError):
                await client.preflight(load_workflow(paths[name]))
        with pytest.raises(ComfyUIValidationError) as info:
            await client.run(load_workflow(paths["flux-dev-alt"]))
        text = str(info.value)
        assert "(SamplerCustom) input 'noise_seed': Required input is missing" in text
        assert "(SamplerCustom) input 'sigmas': Required input is missing" in text


@pytest.mark.parametrize("name", ["flux-dev", "sdxl", "sd15"])
async def test_templates_run_on_the_test_server(name: str) -> None:
    wf = patch(
        load_template(name), GenerationParams(width=128, height=128, steps=3, seed=4, prompt="a harbour")
    )
    async with FakeComfyUI() as fake, ComfyUIClient(fake.url) as client:
        await client.preflight(wf)
        result = await client.run(wf)
    assert len(result.saved_images) == 1 and result.saved_images[0].data.startswith(b"\x89PNG")


def test_templates_and_their_license_note() -> None:
    assert list_templates() == ["flux-dev", "sd15", "sdxl"]
    assert describe(load_template("sdxl")).models["ckpt_name"] == ["sd_xl_base_1.0.safetensors"]
    assert describe(load_template("flux-dev")).models["unet_name"] == ["flux1-dev-fp8.safetensors"]
    assert describe(load_template("sd15")).params.width == 512
    note = (REPO / "refinement" / "workflows" / "README.md").read_text()
    assert "jrjenkinsiv/comfy-gen" in note and "MIT" in note and "no copyright holder" in note
    with pytest.raises(WorkflowLoadError, match="no workflow template named 'sd3'"):
        load_template("sd3")


def test_loading_from_text_file_dict_and_wrapped_body(tmp_path: Path) -> None:
    text = json.dumps(load_template("sd15"))
    assert load_workflow(text) == load_workflow(json.loads(text)) == load_template("sd15")
    path = tmp_path / "wf_api.json"
    path.write_text(text)
    assert load_workflow(path) == load_workflow(str(path)) == load_template("sd15")
    assert load_workflow({"prompt": json.loads(text), "client_id": "x"}) == load_template("sd15")
    with_int_ids = json.loads(text)
    sampler = next(n for n in with_int_ids.values() if n["class_type"] == "KSampler")
    sampler["inputs"]["model"] = [int(sampler["inputs"]["model"][0]), 0]
    assert load_workflow(with_int_ids) == load_template("sd15")


def test_loading_errors_say_what_is_wrong(tmp_path: Path) -> None:
    ui = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": [[1, 4, 0, 3, 0, "MODEL"]]}
    with pytest.raises(WorkflowLoadError, match=r"UI format.*Save \(API Format\)"):
        load_workflow(ui)
    with pytest.raises(WorkflowLoadError, match=r"not valid JSON \(line 1, column 2"):
        load_workflow("{nope")
    bad_file = tmp_path / "x.json"
    bad_file.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(WorkflowLoadError, match="not UTF-8"):
        load_workflow(bad_file)
    with pytest.raises(WorkflowLoadError, match="neither a workflow template"):
        load_workflow("no-such-thing")
    no_output = {k: v for k, v in load_template("sd15").items() if v["class_type"] != "SaveImage"}
    with pytest.raises(WorkflowLoadError, match="no output node"):
        load_workflow(no_output)
    dangling = load_template("sd15")
    next(n for n in dangling.values() if n["class_type"] == "SaveImage")["inputs"]["images"] = ["404", 0]
    with pytest.raises(WorkflowLoadError, match="links to node 404, which is not in the workflow"):
        load_workflow(dangling)
    with pytest.raises(WorkflowLoadError, match="has no class_type"):
        load_workflow({"1": {"inputs": {}}})
    assert issubclass(WorkflowLoadError, WorkflowError) and issubclass(WorkflowError, ValueError)


def test_workflow_hash_ignores_titles_and_key_order() -> None:
    wf = load_template("sd15")
    reordered = dict(reversed(list(copy.deepcopy(wf).items())))
    for node in reordered.values():
        node["_meta"] = {"title": "renamed"}
    assert workflow_hash(reordered) == workflow_hash(wf)
    assert workflow_hash(patch(wf, GenerationParams(seed=1))) != workflow_hash(wf)
    assert len(workflow_hash(wf)) == 64


def test_generation_params_validation() -> None:
    with pytest.raises(ValidationError, match=r"not a multiple of 8.*try 512"):
        GenerationParams(width=515)
    for bad in ({"steps": 0}, {"seed": -1}, {"cfg": 101}, {"denoise": 1.5}, {"batch_size": 0},
    {"sampler": "a b"},
                {"typo": 1}, {"loras": [{"name": ""}]}, {"width": 16384, "height": 16384, "batch_size":
                4}):  # fmt: skip
        with pytest.raises(ValidationError):
            GenerationParams.model_validate(bad)
    base = GenerationParams(steps=30, cfg=7.0)
    assert base.with_updates(steps=50).steps == 50 and base.steps == 30
    assert base.merged(GenerationParams(cfg=8.0, seed=3)).set_fields() == {"steps": 30, "cfg": 8.0, "seed": 3}
    assert GenerationParams(seed=2**64 - 1).seed == 2**64 - 1
