"""Folder layouts: diffusers pipelines and components, PEFT adapter folders."""

from __future__ import annotations

import json
from pathlib import Path

from registry.files.layouts import (
    identify_diffusers_component,
    identify_diffusers_pipeline,
    identify_folder,
    identify_peft_adapter,
)
from tests import archspecs as A


def _json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _sd1_unet_subset() -> dict[str, list[int]]:
    mods = [m for m in A.unet_modules("sd1") if m[0].startswith("down_blocks.0.attentions.0")]
    return A.weight_tensors(mods)


def test_diffusers_pipeline_from_weights(tmp_path: Path) -> None:
    root = tmp_path / "stable-diffusion-v1-5"
    _json(root / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None],
    })  # fmt: skip
    _json(root / "unet" / "config.json", {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 768})
    A.write_tensors(root / "unet" / "diffusion_pytorch_model.safetensors", _sd1_unet_subset())
    _json(root / "text_encoder" / "config.json", {"architectures": ["CLIPTextModel"]})
    A.write_tensors(root / "text_encoder" / "model.safetensors", A.weight_tensors(A.clip_modules(768, 1)))
    fi = identify_folder(root)
    assert fi is not None
    assert fi.layout == "diffusers-pipeline"
    i = fi.identity
    assert (i.kind, i.key_style, i.arch, i.confidence, i.source) == ("checkpoint", "diffusers-pipeline", "sd1", "high", "shapes")
    assert i.components == ("unet", "vae", "te1")
    assert fi.files == ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors")
    assert [f.rule_id for f in fi.findings] == ["layout.missing-weights"]  # vae/ has no weights here
    assert i.evidence[0].what.startswith("model_index.json: StableDiffusionPipeline with components unet, vae, text_encoder")


def test_pipeline_class_contradicted_by_shapes(tmp_path: Path) -> None:
    root = tmp_path / "p"
    _json(root / "model_index.json", {"_class_name": "StableDiffusionXLPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})
    A.write_tensors(root / "unet" / "diffusion_pytorch_model.safetensors", _sd1_unet_subset())
    fi = identify_diffusers_pipeline(root)
    assert fi is not None and fi.identity.arch == "sd1"
    assert [f.rule_id for f in fi.findings] == ["layout.config-arch-mismatch"]
    assert fi.findings[0].message == "model_index.json (StableDiffusionXLPipeline) names sdxl-base, but the weights' shapes say sd1"


def test_pipeline_without_weights_uses_configs(tmp_path: Path) -> None:
    root = tmp_path / "flux"
    _json(root / "model_index.json", {"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"],
                                       "text_encoder_2": ["transformers", "T5EncoderModel"]})  # fmt: skip
    _json(root / "transformer" / "config.json", {"_class_name": "FluxTransformer2DModel", "guidance_embeds": False})
    fi = identify_diffusers_pipeline(root)
    assert fi is not None
    i = fi.identity
    assert (i.kind, i.arch, i.arch_variant, i.confidence, i.source) == ("checkpoint", "flux1", "schnell", "medium", "config")
    assert i.components == ("transformer", "te2")


def test_pipeline_classes_shared_by_families_are_not_contradictions(tmp_path: Path) -> None:
    # stabilityai/stable-diffusion-2-1 names StableDiffusionPipeline like SD1.5 does, and the SDXL refiner's
    # repo names StableDiffusionXLImg2ImgPipeline: the shapes decide, and no finding is a false alarm
    sd2 = tmp_path / "stable-diffusion-2-1"
    _json(sd2 / "model_index.json", {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})
    mods = [m for m in A.unet_modules("sd2") if m[0].startswith("down_blocks.0.attentions.0")]
    A.write_tensors(sd2 / "unet" / "diffusion_pytorch_model.safetensors", A.weight_tensors(mods))
    fi = identify_diffusers_pipeline(sd2)
    assert fi is not None and (fi.identity.arch, fi.identity.confidence, fi.findings) == ("sd2", "high", ())
    refiner = tmp_path / "stable-diffusion-xl-refiner-1.0"
    _json(refiner / "model_index.json", {"_class_name": "StableDiffusionXLImg2ImgPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})  # fmt: skip
    mods = [m for m in A.unet_modules("sdxl-refiner") if m[0].startswith("down_blocks.1.attentions.0")]
    A.write_tensors(refiner / "unet" / "diffusion_pytorch_model.safetensors", A.weight_tensors(mods))
    fi = identify_diffusers_pipeline(refiner)
    assert fi is not None and (fi.identity.arch, fi.findings) == ("sdxl-refiner", ())
    # without weights or a unet config, the class leaves both families open
    bare = tmp_path / "bare"
    _json(bare / "model_index.json", {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})
    fi = identify_diffusers_pipeline(bare)
    assert fi is not None
    assert (fi.identity.arch, fi.identity.arch_candidates) == ("unknown", ("sd1", "sd2"))
    assert "pipeline class StableDiffusionPipeline → sd1 or sd2" in [e.what for e in fi.identity.evidence]


def test_kolors_unet_config_is_kolors(tmp_path: Path) -> None:
    root = tmp_path / "Kolors" / "unet"
    _json(root / "config.json", {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 2048, "encoder_hid_dim": 4096,
                                 "encoder_hid_dim_type": "text_proj"})  # fmt: skip
    A.write_tensors(root / "diffusion_pytorch_model.safetensors", {
        "encoder_hid_proj.weight": [2048, 4096],
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": [640, 2048],
    })  # fmt: skip
    fi = identify_diffusers_component(root)
    assert fi is not None and (fi.identity.arch, fi.findings) == ("other:kolors", ())


def test_diffusers_component_folder(tmp_path: Path) -> None:
    root = tmp_path / "controlnet"
    _json(root / "config.json", {"_class_name": "ControlNetModel", "cross_attention_dim": 768})
    A.write_tensors(root / "diffusion_pytorch_model.safetensors", {
        "controlnet_cond_embedding.conv_in.weight": [16, 3, 3, 3],
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": [320, 768],
    })  # fmt: skip
    fi = identify_diffusers_component(root)
    assert fi is not None
    assert (fi.layout, fi.identity.kind, fi.identity.arch) == ("diffusers-component", "controlnet", "sd1")
    assert fi.findings == ()
    assert identify_diffusers_component(tmp_path / "nothing") is None


def test_peft_adapter_folder(tmp_path: Path) -> None:
    root = tmp_path / "adapter"
    _json(root / "adapter_config.json", {"peft_type": "LORA", "r": 4, "lora_alpha": 4, "use_dora": False,
                                          "base_model_name_or_path": "stabilityai/stable-diffusion-xl-base-1.0",
                                          "target_modules": ["to_k", "to_q", "to_v", "to_out.0"]})  # fmt: skip
    mods = [m for m in A.unet_modules("sdxl-base") if m[0].startswith("down_blocks.2.attentions.0")]
    A.write_tensors(root / "adapter_model.safetensors", A.lora_tensors(mods, style="peft", prefix="base_model.model.", rank=4))
    fi = identify_peft_adapter(root)
    assert fi is not None
    i = fi.identity
    assert (fi.layout, i.kind, i.adapter_type, i.key_style, i.arch, i.source) == ("peft-adapter", "lora", "peft-lora", "peft", "sdxl-base", "shapes")  # fmt: skip
    assert i.claims[-1] == {"key": "adapter_config.base_model_name_or_path", "value": "stabilityai/stable-diffusion-xl-base-1.0",
                            "arch": "sdxl-base", "variant": None, "kind": None}  # fmt: skip
    assert fi.findings == ()
    assert fi.files == ("adapter_model.safetensors",)


def test_peft_adapter_base_contradicts_shapes_and_loha(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _json(root / "adapter_config.json", {"peft_type": "LOHA", "base_model_name_or_path": "runwayml/stable-diffusion-v1-5"})
    mods = [m for m in A.unet_modules("sdxl-base") if m[0].startswith("down_blocks.2.attentions.0") and not m[3]]
    shapes = {k.replace("lora_unet_", "base_model.model.", 1): v for k, v in A.lycoris_tensors(mods, "loha").items()}
    A.write_tensors(root / "adapter_model.safetensors", shapes)
    fi = identify_peft_adapter(root)
    assert fi is not None
    assert (fi.identity.kind, fi.identity.adapter_type, fi.identity.arch) == ("lycoris", "loha", "sdxl-base")
    assert [f.rule_id for f in fi.findings] == ["layout.config-arch-mismatch"]


def test_peft_adapter_without_weights_and_bad_config(tmp_path: Path) -> None:
    root = tmp_path / "b"
    _json(root / "adapter_config.json", {"peft_type": "LORA", "base_model_name_or_path": "black-forest-labs/FLUX.1-dev"})
    fi = identify_peft_adapter(root)
    assert fi is not None
    i = fi.identity
    assert (i.kind, i.arch, i.arch_variant, i.confidence, i.source) == ("lora", "flux1", "dev", "low", "metadata")
    assert [f.rule_id for f in fi.findings] == ["layout.missing-weights"]
    (root / "adapter_config.json").write_text("{nope")
    fi = identify_peft_adapter(root)
    assert fi is not None and [f.rule_id for f in fi.findings] == ["layout.bad-config", "layout.missing-weights"]


def test_not_a_layout(tmp_path: Path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"")
    assert identify_folder(tmp_path) is None
