"""Identification of kind, adapter type, key style and base architecture, on real files built from the
architectures' configs (tests/archspecs.py) and on the shared corpus."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from registry.files.safetensors import read_header
from registry.findings import Finding
from registry.identify import Identity, identify, identify_header, normalize_arch_claim
from tests import archspecs as A
from tests.builders import CORPUS, header_json_to_file


def ident_file(path: Path) -> tuple[Identity, list[Finding]]:
    return identify_header(read_header(path))


def rules(findings: list[Finding]) -> list[str]:
    return sorted(f.rule_id for f in findings)


def ev_widths(ident: Identity) -> dict[int, str]:
    """width → key of the first evidence that reported it"""
    out: dict[int, str] = {}
    for e in ident.evidence:
        if e.width is not None:
            out.setdefault(e.width, e.key or "")
    return out


def summary(ident: Identity) -> tuple[Any, ...]:
    return (ident.kind, ident.adapter_type, ident.key_style, ident.arch, ident.arch_variant, ident.components,
            ident.confidence, ident.source)  # fmt: skip


# -- LoRA in every key style -------------------------------------------------------------------------


def test_sd1_kohya_lora_file(tmp_path: Path) -> None:
    shapes = A.lora_tensors(A.unet_modules("sd1"), prefix="lora_unet_")
    shapes |= A.lora_tensors(A.clip_modules(768, 12), prefix="lora_te_")
    ident, fs = ident_file(A.write_tensors(tmp_path / "sd1.safetensors", shapes))
    assert summary(ident) == ("lora", "kohya-lora", "kohya", "sd1", None, ("unet", "te1"), "high", "shapes")
    w = ev_widths(ident)
    assert w[768].startswith("lora_unet_") and "attn2_to_" in w[768]
    assert ident.details["module_naming"] == "diffusers"
    assert ident.details["conv_layers"] == 32  # SD1's proj_in/proj_out are 1x1 convolutions
    assert fs == []


def test_sd2_kohya_lora_file(tmp_path: Path) -> None:
    shapes = A.lora_tensors(A.unet_modules("sd2"), prefix="lora_unet_")
    shapes |= A.lora_tensors(A.clip_modules(1024, 23), prefix="lora_te_")
    ident, fs = ident_file(A.write_tensors(tmp_path / "sd2.safetensors", shapes))
    assert summary(ident) == ("lora", "kohya-lora", "kohya", "sd2", None, ("unet", "te1"), "high", "shapes")
    assert any(e.what == "text encoder te1: openclip-h (width 1024, 23 layers seen)" for e in ident.evidence)
    assert fs == []


def test_sdxl_kohya_lora_ldm_naming_file(tmp_path: Path) -> None:
    shapes = A.lora_tensors(A.unet_modules("sdxl-base", naming="ldm"), prefix="lora_unet_")
    shapes |= A.lora_tensors(A.clip_modules(768, 12), prefix="lora_te1_")
    shapes |= A.lora_tensors(A.clip_modules(1280, 32), prefix="lora_te2_")
    md = {"ss_base_model_version": "sdxl_base_v1-0", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}
    ident, fs = ident_file(A.write_tensors(tmp_path / "sdxl.safetensors", shapes, md))
    assert summary(ident) == ("lora", "kohya-lora", "kohya", "sdxl-base", None, ("unet", "te1", "te2"), "high", "shapes")
    assert ident.details["module_naming"] == "ldm"
    assert [c["arch"] for c in ident.claims] == ["sdxl-base", "sdxl-base"]
    assert fs == []


def test_sdxl_refiner_lora() -> None:
    shapes = A.lora_tensors(A.unet_modules("sdxl-refiner"), prefix="lora_unet_")
    ident, fs = identify(list(shapes.items()))
    assert (ident.arch, ident.confidence) == ("sdxl-refiner", "high")
    assert ev_widths(ident)[1280].endswith(".lora_down.weight")


def test_sd1_peft_lora_diffusers_prefixes(tmp_path: Path) -> None:
    shapes = A.lora_tensors(A.unet_modules("sd1"), style="peft", prefix="unet.", rank=4)
    shapes |= A.lora_tensors(A.clip_modules(768, 12, "text_model.encoder.layers"), style="peft", prefix="text_encoder.")
    ident, fs = ident_file(A.write_tensors(tmp_path / "pytorch_lora_weights.safetensors", shapes))
    assert summary(ident) == ("lora", "peft-lora", "diffusers", "sd1", None, ("unet", "te1"), "high", "shapes")
    assert fs == []


def test_old_diffusers_attn_processor_lora(tmp_path: Path) -> None:
    shapes: dict[str, list[int]] = {}
    for path, i, o, conv in A.unet_modules("sd1"):
        if ".attn" in path and not conv and path.endswith(("to_q", "to_k", "to_v", "to_out.0")):
            blk, _, proj = path.rpartition(".attn")
            attn, _, which = ("attn" + proj).partition(".")
            which = which.replace(".0", "")
            name = f"{blk}.{attn}.processor.{which}_lora"
            shapes[f"unet.{name}.down.weight"] = [4, i]
            shapes[f"unet.{name}.up.weight"] = [o, 4]
    ident, fs = ident_file(A.write_tensors(tmp_path / "old.safetensors", shapes))
    assert summary(ident)[:6] == ("lora", "diffusers-old-lora", "diffusers", "sd1", None, ("unet",))
    assert ident.confidence == "high"


def test_diffusers_intermediate_lora_suffix() -> None:
    shapes = A.lora_tensors(A.unet_modules("sd2"), style="diffusers-old", prefix="unet.")
    ident, _ = identify(list(shapes.items()))
    assert (ident.kind, ident.adapter_type, ident.arch) == ("lora", "diffusers-old-lora", "sd2")


def test_lora_diffusion_format_synthetic(tmp_path: Path) -> None:
    shapes: dict[str, list[int]] = {}
    mods = [(p, i, o, c) for p, i, o, c in A.unet_modules("sd1") if "attn" in p and not c]
    for n, (_, i, o, _) in enumerate(mods):
        shapes[f"unet:{n}:down"] = [4, i]
        shapes[f"unet:{n}:up"] = [o, 4]
    for n, (_, i, o, _) in enumerate(A.clip_modules(768, 12)[:48]):
        shapes[f"text_encoder:{n}:down"] = [4, i]
        shapes[f"text_encoder:{n}:up"] = [o, 4]
    ident, fs = ident_file(A.write_tensors(tmp_path / "ld.safetensors", shapes))
    assert summary(ident) == ("lora", "lora_diffusion", "lora_diffusion", "sd1", None, ("unet", "te1"), "high", "shapes")


# -- LyCORIS --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algo", "adapter_type", "arch", "confidence"),
    [
        ("loha", "loha", "sd1", "high"),
        ("lokr", "lokr", "sd1", "high"),
        ("dora", "dora", "sd1", "high"),
        ("glora", "glora", "sd1", "high"),
        ("full", "full-diff", "sd1", "high"),
        # these give only the output width: the UNet's context is not visible, the text encoder decides
        ("ia3", "ia3", "sd1", "medium"),
        ("oft", "oft", "sd1", "medium"),
        ("boft", "boft", "sd1", "medium"),
    ],
)
def test_lycoris_algorithms_files(tmp_path: Path, algo: str, adapter_type: str, arch: str, confidence: str) -> None:
    unet = [m for m in A.unet_modules("sd1") if ".transformer_blocks.0." in m[0] and m[0].startswith(("down_blocks.0", "down_blocks.1", "up_blocks.3"))]  # fmt: skip
    shapes = A.lycoris_tensors(unet, algo, prefix="lora_unet_")
    shapes |= A.lycoris_tensors(A.clip_modules(768, 12), algo, prefix="lora_te_")
    md = {"ss_network_module": "lycoris.kohya", "ss_network_args": f'{{"algo": "{algo}"}}'}
    ident, fs = ident_file(A.write_tensors(tmp_path / f"{algo}.safetensors", shapes, md))
    assert (ident.kind, ident.adapter_type, ident.key_style, ident.arch, ident.confidence) == (
        "lycoris", adapter_type, "kohya", arch, confidence,
    )  # fmt: skip
    assert ident.components == ("unet", "te1")
    assert fs == []


def test_lokr_widths_are_kronecker_products() -> None:
    shapes = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lokr_w1": [4, 4],
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lokr_w2": [80, 192],
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": [],
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_v.lokr_w1_a": [8, 2],
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_v.lokr_w1_b": [2, 4],
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_v.lokr_w2": [80, 192],
    }
    ident, _ = identify(list(shapes.items()))
    assert (ident.adapter_type, ident.arch, ident.confidence) == ("lokr", "sd1", "high")
    assert ev_widths(ident) == {768: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lokr_w2"}


# -- transformer families -------------------------------------------------------------------------------


def test_flux_kohya_lora_file(tmp_path: Path) -> None:
    shapes = A.lora_tensors(A.flux_modules("bfl"), prefix="lora_unet_")
    shapes |= A.lora_tensors(A.clip_modules(768, 12), prefix="lora_te1_")
    md = {"ss_base_model_version": "flux1", "modelspec.architecture": "flux-1-dev/lora"}
    ident, fs = ident_file(A.write_tensors(tmp_path / "flux.safetensors", shapes, md))
    assert summary(ident) == ("lora", "kohya-lora", "kohya", "flux1", None, ("transformer", "te1"), "high", "shapes")
    whats = [e.what for e in ident.evidence]
    assert "hidden width 3072" in whats and "MLP width 12288" in whats
    assert "highest block indices: double 18, single 37 (FLUX.1 has 19 and 38 blocks)" in whats
    assert fs == []


def test_flux_peft_ai_toolkit_and_comfy_styles() -> None:
    diff = A.lora_tensors(A.flux_modules("diffusers"), style="peft", prefix="transformer.")
    ident, _ = identify(list(diff.items()))
    assert summary(ident) == ("lora", "peft-lora", "diffusers", "flux1", None, ("transformer",), "high", "shapes")
    comfy = A.lora_tensors(A.flux_modules("bfl"), style="peft", prefix="diffusion_model.")
    ident, _ = identify(list(comfy.items()))
    assert summary(ident) == ("lora", "peft-lora", "comfy", "flux1", None, ("transformer",), "high", "shapes")


def test_flux_xlabs_lora() -> None:
    shapes: dict[str, list[int]] = {}
    for i in range(19):
        for n, (o, inp) in {"qkv_lora1": (9216, 3072), "qkv_lora2": (9216, 3072), "proj_lora1": (3072, 3072), "proj_lora2": (3072, 3072)}.items():  # fmt: skip
            shapes[f"double_blocks.{i}.processor.{n}.down.weight"] = [16, inp]
            shapes[f"double_blocks.{i}.processor.{n}.up.weight"] = [o, 16]
    ident, _ = identify(list(shapes.items()))
    assert (ident.kind, ident.adapter_type, ident.key_style, ident.arch) == ("lora", "xlabs-lora", "xlabs", "flux1")
    # no MLP module and only double blocks: FLUX.1 by width, but FLUX.2 Klein 4B has the same width
    assert ident.confidence == "medium"


def test_flux2_and_hunyuan_video_are_not_flux1() -> None:
    wide = A.lora_tensors(A.flux_modules("bfl", hidden=6144, mlp=18432, double=8, single=48), prefix="lora_unet_")
    ident, _ = identify(list(wide.items()))
    assert (ident.arch, ident.confidence) == ("other:flux2", "medium")
    hv = {k.replace("img_mlp_0", "img_mlp_fc1"): v for k, v in A.lora_tensors(A.flux_modules("bfl", double=20, single=40), prefix="lora_unet_").items()}  # fmt: skip
    ident, _ = identify(list(hv.items()))
    assert (ident.arch, ident.confidence) == ("other:hunyuan-video", "high")


def test_sd3_loras() -> None:
    ident, _ = identify(list(A.lora_tensors(A.sd3_modules(), prefix="lora_unet_").items()))
    assert (ident.arch, ident.arch_variant, ident.confidence) == ("sd3", None, "high")
    ident, _ = identify(list(A.lora_tensors(A.sd3_modules(2432, 38), prefix="lora_unet_").items()))
    assert (ident.arch, ident.arch_variant) == ("sd3", "3.5-large")
    ident, _ = identify(list(A.lora_tensors(A.sd3_modules(attn2=True), prefix="lora_unet_").items()))
    assert (ident.arch, ident.arch_variant) == ("sd3", "3.5-medium")


def test_wan_loras(tmp_path: Path) -> None:
    shapes = A.lora_tensors(A.wan_modules(), style="peft", prefix="diffusion_model.", rank=2)
    ident, fs = ident_file(A.write_tensors(tmp_path / "wan.safetensors", shapes))
    assert summary(ident) == ("lora", "peft-lora", "comfy", "other:wan", "1.3b", ("transformer",), "high", "shapes")
    assert ident.arch_label == "Wan (video) (1.3b)"
    big = A.lora_tensors(A.wan_modules(5120, 40, 13824, i2v=True), prefix="lora_unet_")
    ident, _ = identify(list(big.items()))
    assert (ident.arch, ident.arch_variant, ident.key_style) == ("other:wan", "14b-i2v", "kohya")


def test_qwen_image_and_ltx_loras() -> None:
    q = A.lora_tensors(A.qwen_image_modules(), style="peft", prefix="transformer.")
    ident, _ = identify(list(q.items()))
    assert (ident.arch, ident.confidence, ident.components) == ("other:qwen-image", "high", ("transformer",))
    ltx = A.lora_tensors(A.ltx_modules(), style="peft", prefix="transformer.")
    ident, fs = identify(list(ltx.items()))
    assert (ident.arch, ident.confidence) == ("other:ltx", "medium")
    assert fs == []


def test_qwen_attention_only_lora_uses_block_count() -> None:
    mods = [m for m in A.qwen_image_modules() if ".attn." in m[0]]
    ident, _ = identify(list(A.lora_tensors(mods, style="peft", prefix="transformer.").items()))
    assert (ident.arch, ident.confidence) == ("other:qwen-image", "medium")


# -- embeddings -------------------------------------------------------------------------------------------


def test_embeddings_files(tmp_path: Path) -> None:
    ident, fs = ident_file(A.write_tensors(tmp_path / "e1.safetensors", {"emb_params": [4, 768]}, dtype="F32"))
    assert summary(ident) == ("embedding", None, "a1111-embedding", "sd1", None, ("te1",), "high", "shapes")
    assert ident.details == {"vectors": 4}
    ident, _ = ident_file(A.write_tensors(tmp_path / "e2.safetensors", {"emb_params": [8, 1024]}))
    assert (ident.kind, ident.arch) == ("embedding", "sd2")
    ident, _ = ident_file(A.write_tensors(tmp_path / "e3.safetensors", {"clip_g": [2, 1280], "clip_l": [2, 768]}))
    assert summary(ident) == ("embedding", None, "sdxl-embedding", "sdxl-base", None, ("te1", "te2"), "high", "shapes")
    ident, _ = identify([("clip_l", [3, 768]), ("t5", [3, 4096])])
    assert summary(ident) == ("embedding", None, "te-keyed-embedding", "flux1", None, ("te1", "te3"), "medium", "shapes")
    ident, _ = identify([("clip_l", [3, 768])])
    assert (ident.kind, ident.arch, ident.arch_candidates) == ("embedding", "unknown", ("flux1", "other:hunyuan-video", "sd1", "sd3", "sdxl-base"))
    ident, _ = ident_file(A.write_tensors(tmp_path / "learned_embeds.safetensors", {"<cat-toy>": [768]}, dtype="F32"))
    assert summary(ident) == ("embedding", None, "diffusers-embedding", "sd1", None, ("te1",), "medium", "shapes")
    assert ident.details == {"vectors": 1, "token": "<cat-toy>"}


def test_embedding_with_lora_label_is_a_kind_mismatch(tmp_path: Path) -> None:
    p = A.write_tensors(tmp_path / "e.safetensors", {"emb_params": [2, 768]}, {"modelspec.architecture": "stable-diffusion-v1/lora"})
    ident, fs = ident_file(p)
    assert ident.kind == "embedding"
    assert rules(fs) == ["identify.metadata-kind-mismatch"]


# -- VAEs, text encoders, controlnets ---------------------------------------------------------------------


def _ldm_vae(z: int, prefix: str = "") -> dict[str, list[int]]:
    return {
        f"{prefix}encoder.conv_in.weight": [128, 3, 3, 3],
        f"{prefix}encoder.down.0.block.0.conv1.weight": [128, 128, 3, 3],
        f"{prefix}encoder.conv_out.weight": [2 * z, 512, 3, 3],
        f"{prefix}decoder.conv_in.weight": [512, z, 3, 3],
        f"{prefix}decoder.up.0.block.0.conv1.weight": [128, 256, 3, 3],
        f"{prefix}decoder.conv_out.weight": [3, 128, 3, 3],
        f"{prefix}quant_conv.weight": [2 * z, 2 * z, 1, 1],
        f"{prefix}post_quant_conv.weight": [z, z, 1, 1],
    }


def test_vae_files(tmp_path: Path) -> None:
    ident, fs = ident_file(A.write_tensors(tmp_path / "vae.safetensors", _ldm_vae(4)))
    assert (ident.kind, ident.arch, ident.arch_candidates, ident.source) == ("vae", "unknown", ("sd1", "sd2", "sdxl-base", "sdxl-refiner"), "none")  # fmt: skip
    assert ident.details["latent_channels"] == 4
    assert fs == []  # a shared component: unknown architecture is not a problem
    p = A.write_tensors(tmp_path / "ae.safetensors", _ldm_vae(16), {"modelspec.architecture": "Flux.1-dev/vae"})
    ident, fs = ident_file(p)
    assert (ident.kind, ident.arch, ident.arch_variant, ident.confidence, ident.source) == ("vae", "flux1", "dev", "medium", "metadata")  # fmt: skip
    assert fs == []
    p = A.write_tensors(tmp_path / "ae2.safetensors", _ldm_vae(16), {"ss_base_model_version": "sd_v1"})
    ident, fs = ident_file(p)
    assert ident.arch == "unknown"
    assert rules(fs) == ["identify.metadata-arch-mismatch"]


def test_text_encoder_files(tmp_path: Path) -> None:
    shapes = A.weight_tensors(A.clip_modules(768, 2))
    shapes["text_model.embeddings.token_embedding.weight"] = [49408, 768]
    ident, fs = ident_file(A.write_tensors(tmp_path / "clip_l.safetensors", shapes))
    assert (ident.kind, ident.key_style, ident.arch, ident.components) == ("text_encoder", "hf-transformers", "unknown", ("te1",))  # fmt: skip
    assert ident.arch_candidates == ("sd1", "sdxl-base", "sd3", "flux1", "other:hunyuan-video")
    assert ident.details["text_encoders"] == {"te1": "clip-l"}
    assert fs == []
    ident, _ = identify(list(A.weight_tensors(A.clip_modules(1024, 23)).items()))
    assert (ident.kind, ident.arch, ident.confidence) == ("text_encoder", "sd2", "medium")


def test_t5_and_umt5_text_encoders() -> None:
    t5 = A.weight_tensors(A.t5_modules())
    t5["shared.weight"] = [32128, 4096]
    ident, _ = identify(list(t5.items()))
    assert (ident.kind, ident.details["text_encoders"], ident.arch_candidates[:2]) == ("text_encoder", {"te1": "t5-xxl"}, ("sd3", "flux1"))  # fmt: skip
    t5["shared.weight"] = [256384, 4096]
    ident, _ = identify(list(t5.items()))
    assert (ident.arch, ident.details["text_encoders"]) == ("other:wan", {"te1": "umt5-xxl"})


def test_controlnet_files(tmp_path: Path) -> None:
    shapes = {
        "control_model.input_hint_block.0.weight": [16, 3, 3, 3],
        "control_model.zero_convs.0.0.weight": [320, 320, 1, 1],
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768],
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_v.weight": [320, 768],
        "control_model.input_blocks.1.1.proj_in.weight": [320, 320, 1, 1],
        "control_model.middle_block_out.0.weight": [1280, 1280, 1, 1],
    }
    ident, fs = ident_file(A.write_tensors(tmp_path / "cn.safetensors", shapes))
    assert (ident.kind, ident.key_style, ident.arch, ident.confidence) == ("controlnet", "ldm", "sd1", "high")
    diff = {
        "controlnet_cond_embedding.conv_in.weight": [16, 3, 3, 3],
        "controlnet_down_blocks.0.weight": [320, 320, 1, 1],
        "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight": [640, 2048],
        "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_v.weight": [640, 2048],
    }
    ident, fs = ident_file(A.write_tensors(tmp_path / "cn_xl.safetensors", diff))
    assert (ident.kind, ident.key_style, ident.arch) == ("controlnet", "diffusers", "sdxl-base")


# -- checkpoints ------------------------------------------------------------------------------------------


def _sd1_checkpoint(in_ch: int = 4) -> dict[str, list[int]]:
    s = {
        "model.diffusion_model.input_blocks.0.0.weight": [320, in_ch, 3, 3],
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": [320, 320, 1, 1],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": [320, 320],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_v.weight": [320, 768],
        "model.diffusion_model.out.2.weight": [4, 320, 3, 3],
    }
    s |= A.weight_tensors(A.clip_modules(768, 1), "cond_stage_model.transformer.")
    s |= _ldm_vae(4, "first_stage_model.")
    return s


def test_sd1_checkpoint_file(tmp_path: Path) -> None:
    ident, fs = ident_file(A.write_tensors(tmp_path / "v1-5.safetensors", _sd1_checkpoint()))
    assert summary(ident) == ("checkpoint", None, "ldm", "sd1", None, ("unet", "te1", "vae"), "high", "shapes")
    assert ident.details["latent_channels"] == 4
    assert fs == []
    ident, _ = ident_file(A.write_tensors(tmp_path / "inpaint.safetensors", _sd1_checkpoint(9)))
    assert (ident.arch, ident.arch_variant) == ("sd1", "inpaint")


def test_sd2_checkpoint_openclip_naming() -> None:
    s = {
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": [320, 320],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 1024],
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": [3072, 1024],
        "cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.weight": [4096, 1024],
    }
    ident, fs = identify(list(s.items()))
    assert summary(ident) == ("checkpoint", None, "ldm", "sd2", None, ("unet", "te1"), "high", "shapes")
    assert fs == []


def test_sdxl_checkpoint_file(tmp_path: Path) -> None:
    s = {
        "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
        "model.diffusion_model.label_emb.0.0.weight": [1280, 2816],
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight": [640, 2048],
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn1.to_q.weight": [640, 640],
        "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight": [3840, 1280],
    }
    s |= A.weight_tensors(A.clip_modules(768, 1), "conditioner.embedders.0.transformer.")
    s |= _ldm_vae(4, "first_stage_model.")
    ident, fs = ident_file(A.write_tensors(tmp_path / "sdxl.safetensors", s))
    assert summary(ident) == ("checkpoint", None, "sgm", "sdxl-base", None, ("unet", "te1", "te2", "vae"), "high", "shapes")
    assert any(e.width == 2816 for e in ident.evidence)
    assert fs == []


def _flux_ckpt(guidance: bool, img_in: int = 64) -> dict[str, list[int]]:
    s = A.weight_tensors(A.flux_modules("bfl"))
    s |= {"img_in.weight": [3072, img_in], "time_in.in_layer.weight": [3072, 256], "vector_in.in_layer.weight": [3072, 768],
          "double_blocks.0.img_attn.norm.key_norm.scale": [128]}  # fmt: skip
    if guidance:
        s["guidance_in.in_layer.weight"] = [3072, 256]
    return s


def test_flux_checkpoints_dev_schnell_fill() -> None:
    ident, fs = identify(list(_flux_ckpt(True).items()))
    assert summary(ident) == ("checkpoint", None, "bfl", "flux1", "dev", ("transformer",), "high", "shapes")
    assert fs == []
    ident, _ = identify(list(_flux_ckpt(False).items()))
    assert (ident.arch, ident.arch_variant) == ("flux1", "schnell")
    ident, _ = identify(list(_flux_ckpt(True, 384).items()))
    assert (ident.arch, ident.arch_variant) == ("flux1", "dev-fill")
    chroma = {k: v for k, v in _flux_ckpt(False).items() if "_mod." not in k and "modulation" not in k}
    chroma["distilled_guidance_layer.in_proj.weight"] = [5120, 64]
    ident, _ = identify(list(chroma.items()))
    assert ident.arch == "other:chroma"


def test_sd3_and_wan_checkpoints() -> None:
    s = A.weight_tensors(A.sd3_modules(), "model.diffusion_model.")
    s |= A.weight_tensors(A.clip_modules(768, 1), "text_encoders.clip_l.transformer.")
    ident, _ = identify(list(s.items()))
    assert summary(ident) == ("checkpoint", None, "ldm", "sd3", "3-medium", ("transformer", "te1"), "high", "shapes")
    w = A.weight_tensors(A.wan_modules(5120, 40, 13824))
    w["patch_embedding.weight"] = [5120, 16, 1, 2, 2]
    ident, _ = identify(list(w.items()))
    assert (ident.kind, ident.arch, ident.arch_variant) == ("checkpoint", "other:wan", "14b")


def test_adapter_keys_inside_checkpoint() -> None:
    s = _sd1_checkpoint()
    s["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"] = [4, 320]
    s["lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"] = [320, 4]
    ident, fs = identify(list(s.items()))
    assert (ident.kind, ident.arch) == ("checkpoint", "sd1")
    assert rules(fs) == ["identify.adapter-keys-in-checkpoint"]


# -- honesty: unknown, conflicts, metadata -----------------------------------------------------------


def test_unknown_file_says_what_was_seen(tmp_path: Path) -> None:
    p = A.write_tensors(tmp_path / "x.safetensors", {"encoder.foo.weight": [10, 10], "head.bar.weight": [3, 10]})
    ident, fs = ident_file(p)
    assert (ident.kind, ident.arch, ident.confidence, ident.source) == ("unknown", "unknown", "none", "none")
    assert ident.evidence[0].what == "2 tensors with no recognised layout; top-level names {'encoder': 1, 'head': 1}"
    assert fs == []  # not knowing is recorded in the identity (kind/arch "unknown" + evidence), not a finding


def test_no_tensors_and_junk_shapes_do_not_crash() -> None:
    ident, fs = identify([])
    assert ident.kind == "unknown" and fs == []
    ident, _ = identify([("lora_unet_x.lora_down.weight", "junk"), ("lora_unet_x.lora_up.weight", None), ("y", [1, 2])])
    assert ident.kind == "lora" and ident.arch == "unknown"


def test_unknown_family_lora_takes_metadata_at_low_confidence() -> None:
    shapes = A.lora_tensors([("blocks.0.attn.wq", 1536, 1536, False), ("blocks.0.mlp.up", 1536, 4096, False)], style="peft", prefix="diffusion_model.")  # fmt: skip
    ident, fs = identify(list(shapes.items()), {"ss_base_model_version": "krea2"})
    assert (ident.kind, ident.arch, ident.confidence, ident.source) == ("lora", "other:krea2", "low", "metadata")
    assert ident.evidence[-2].what == "no known family matches; commonest module patterns: blocks_N_attn_wq, blocks_N_mlp_up; commonest input width 1536"  # fmt: skip
    assert fs == []


def test_unet_and_text_encoder_disagree_is_a_finding() -> None:
    shapes = A.lora_tensors(A.unet_modules("sd1"), prefix="lora_unet_")
    shapes |= A.lora_tensors(A.clip_modules(1024, 23), prefix="lora_te_")
    ident, fs = identify(list(shapes.items()))
    assert (ident.arch, ident.confidence) == ("sd1", "medium")
    assert rules(fs) == ["identify.conflicting-evidence"]


def test_metadata_claims_disagreeing_with_each_other() -> None:
    shapes = A.lora_tensors(A.unet_modules("sdxl-base"), prefix="lora_unet_")
    ident, fs = identify(list(shapes.items()), {"ss_base_model_version": "sd_v1", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"})  # fmt: skip
    assert ident.arch == "sdxl-base"
    assert rules(fs) == ["identify.metadata-arch-mismatch", "identify.metadata-claims-disagree"]
    mm = next(f for f in fs if f.rule_id == "identify.metadata-arch-mismatch")
    assert mm.evidence == {"claim_key": "ss_base_model_version", "claim_value": "sd_v1", "claimed_arch": "sd1",
                           "shape_arch": "sdxl-base", "confidence": "high"}  # fmt: skip


def test_ss_v2_claim() -> None:
    shapes = A.lora_tensors(A.unet_modules("sd1"), prefix="lora_unet_")
    _, fs = identify(list(shapes.items()), {"ss_v2": "True"})
    assert rules(fs) == ["identify.metadata-arch-mismatch"]
    _, fs = identify(list(shapes.items()), {"ss_v2": "False"})
    assert fs == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sd_v1", ("sd1", None, None)),
        ("sd_1.5", ("sd1", None, None)),
        ("sd_v2", ("sd2", None, None)),
        ("sdxl_base_v1-0", ("sdxl-base", None, None)),
        ("stable-diffusion-xl-v1-refiner", ("sdxl-refiner", None, None)),
        ("stable-diffusion-xl-v1-base/lora", ("sdxl-base", None, "lora")),
        ("stable-diffusion-v1/textual-inversion", ("sd1", None, "embedding")),
        ("flux-1-dev/lora", ("flux1", "dev", "lora")),
        ("Flux.1-schnell", ("flux1", "schnell", None)),
        ("flux1", ("flux1", None, None)),
        ("stable-diffusion-v3-medium", ("sd3", "3-medium", None)),
        ("stable-diffusion-3.5-large/lora", ("sd3", "3.5-large", "lora")),
        ("pony", ("sdxl-base", None, None)),
        ("Illustrious", ("sdxl-base", None, None)),
        ("wan21", ("other:wan", None, None)),
        ("qwen_image", ("other:qwen-image", None, None)),
        ("krea2", ("other:krea2", None, None)),
        ("None", (None, None, None)),
        ("", (None, None, None)),
    ],
)
def test_normalize_arch_claim(text: str, expected: tuple[str | None, str | None, str | None]) -> None:
    assert normalize_arch_claim(text) == expected


# -- the shared corpus of real files -------------------------------------------------------------------

#: the corpus beside the project; MODELREG_CORPUS points elsewhere (e.g. from a git worktree)
CORPUS = Path(os.environ.get("MODELREG_CORPUS") or CORPUS)
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not present at {CORPUS}")


def header_pairs(name: str) -> tuple[list[tuple[str, list[int]]], dict[str, str] | None]:
    """A corpus header as the (name, shape) pairs and metadata a scan reads from it. The SDXL, FLUX
    and LoKr headers describe 180 MB – 1.5 GB of weights, too much to write in a unit test; identification
    reads only the header, which these pairs are."""
    doc = json.loads((CORPUS / "headers" / name).read_text())
    return [(k, v["shape"]) for k, v in doc["keys"].items()], doc.get("metadata") or None


@needs_corpus
def test_corpus_sd15_kohya(tmp_path: Path) -> None:
    ident, fs = ident_file(header_json_to_file(CORPUS / "headers" / "sd15-kohya.json", tmp_path / "a.safetensors"))
    assert summary(ident) == ("lora", "kohya-lora", "kohya", "sd1", None, ("unet", "te1"), "high", "shapes")
    assert fs == []


@needs_corpus
def test_corpus_sdxl_kohya() -> None:
    ident, fs = identify(*header_pairs("sdxl-kohya.json"))
    assert summary(ident) == ("lora", "kohya-lora", "kohya", "sdxl-base", None, ("unet", "te1"), "high", "shapes")
    assert [(c["key"], c["arch"], c["kind"]) for c in ident.claims] == [
        ("modelspec.architecture", "sdxl-base", "lora"),
        ("ss_base_model_version", "sdxl-base", None),
    ]
    assert fs == []


@needs_corpus
def test_corpus_flux_lora_labelled_sd15() -> None:
    ident, fs = identify(*header_pairs("flux1-diffusers.json"))
    assert summary(ident) == ("lora", "peft-lora", "diffusers", "flux1", None, ("transformer",), "high", "shapes")
    assert rules(fs) == ["identify.metadata-arch-mismatch"]
    assert fs[0].message == "metadata ss_base_model_version='sd_1.5' says sd1, but the tensor shapes say flux1 (high confidence)"


@needs_corpus
def test_corpus_unknown_family_lokr() -> None:
    ident, fs = identify(*header_pairs("krea2-lycoris.json"))
    assert summary(ident) == ("lycoris", "lokr", "comfy", "other:krea2", None, ("transformer",), "low", "metadata")
    assert ident.details["algorithms"] == {"lokr": 256}
    assert fs == []


@needs_corpus
def test_corpus_lora_diffusion_and_embedding() -> None:
    ident, fs = ident_file(CORPUS / "loras" / "analog_svd_rank4.safetensors")
    assert summary(ident) == ("lora", "lora_diffusion", "lora_diffusion", "sd1", None, ("unet", "te1"), "high", "shapes")
    ident, fs = ident_file(CORPUS / "embeddings" / "test_embedding.safetensors")
    assert summary(ident) == ("embedding", None, "a1111-embedding", "sd1", None, ("te1",), "high", "shapes")
    ident, fs = ident_file(CORPUS / "safetensors-samples" / "overall.safetensors")
    assert (ident.kind, ident.arch) == ("unknown", "unknown")


# -- shapes seen in the wild ------------------------------------------------------------------------


def test_lora_with_a_few_full_difference_tensors_is_still_a_lora() -> None:
    # distillation LoRAs (e.g. for Wan) carry .diff for norms and .diff_b for biases beside lora_down/up
    mods = A.wan_modules(5120, 40, 13824)
    shapes = A.lora_tensors(mods, prefix="diffusion_model.", style="peft")
    for i in range(40):
        shapes[f"diffusion_model.blocks.{i}.norm3.diff"] = [5120]
        shapes[f"diffusion_model.blocks.{i}.self_attn.q.diff_b"] = [5120]
    ident, _ = identify(list(shapes.items()))
    assert (ident.kind, ident.adapter_type, ident.arch, ident.arch_variant) == ("lora", "peft-lora", "other:wan", "14b")
    assert ident.details["algorithms"] == {"lora": 400, "full": 40}


def test_flux_single_block_only_loras() -> None:
    single = [m for m in A.flux_modules("bfl") if m[0].startswith("single_blocks.") and m[0].endswith("linear1")]
    ident, _ = identify(list(A.lora_tensors(single, prefix="lora_unet_").items()))
    assert (ident.arch, ident.confidence) == ("flux1", "high")
    assert "MLP width 12288 (single-block linear1 output 21504 = 3 x 3072 + 12288)" in [e.what for e in ident.evidence]
    single = [m for m in A.flux_modules("diffusers") if m[0].startswith("single_transformer_blocks.")]
    ident, _ = identify(list(A.lora_tensors(single, style="peft", prefix="transformer.").items()))
    assert (ident.arch, ident.confidence) == ("flux1", "high")


def test_clip_vision_is_an_image_encoder_not_a_text_encoder() -> None:
    shapes = A.weight_tensors(A.clip_modules(1280, 32, "vision_model.encoder.layers"))
    shapes["vision_model.embeddings.patch_embedding.weight"] = [1280, 3, 14, 14]
    ident, fs = identify(list(shapes.items()))
    assert (ident.kind, ident.arch, ident.details["width"]) == ("image_encoder", "unknown", 1280)
    assert fs == []


def test_motion_module_base_is_read_from_the_unet_depth() -> None:
    # no text context in a motion module: the UNet's depth tells the base (SD1.x: four levels, the third up
    # block 640 wide; SDXL: three levels, the third up block 320 wide)
    def shapes(down: tuple[int, ...], up: tuple[int, ...] = ()) -> dict[str, list[int]]:
        name = "{}.{}.motion_modules.{}.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight"
        out = {name.format("down_blocks", b, j): [c, c] for b, c in enumerate(down) for j in range(2)}
        out |= {name.format("up_blocks", b, j): [c, c] for b, c in enumerate(up) for j in range(3)}
        return out

    ident, _ = identify(list(shapes((320, 640, 1280, 1280)).items()))
    assert (ident.kind, ident.arch, ident.confidence) == ("motion_module", "sd1", "medium")
    ident, _ = identify(list(shapes((320, 640, 1280), (1280, 640, 320)).items()))
    assert (ident.kind, ident.arch, ident.confidence) == ("motion_module", "sdxl-base", "medium")
    # three levels seen need not be all there is: without the third up block the base stays open
    ident, _ = identify(list(shapes((320, 640, 1280)).items()))
    assert (ident.kind, ident.arch, ident.arch_candidates) == ("motion_module", "unknown", ("sd1", "sdxl-base"))


def test_attention_only_mmdit_loras() -> None:
    # the diffusers DreamBooth scripts adapt to_q/to_k/to_v/to_out.0 only
    def attn_only(mods: list[A.Module]) -> list[tuple[str, list[int]]]:
        keep = [m for m in mods if m[0].endswith(("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0"))]
        return list(A.lora_tensors(keep, style="peft", prefix="transformer.").items())

    sd35 = [(f"transformer_blocks.{i}.attn.to_{x}", 2432, 2432, False) for i in range(38) for x in "qkv"]
    ident, _ = identify(attn_only(sd35))
    assert (ident.arch, ident.arch_variant, ident.confidence) == ("sd3", "3.5-large", "medium")
    ident, _ = identify(attn_only(A.flux_modules("diffusers")))
    assert (ident.arch, ident.confidence) == ("flux1", "medium")  # single blocks carry to_q too
    ident, _ = identify(attn_only(A.flux_modules("diffusers", single=0)))
    assert (ident.arch, ident.arch_candidates) == ("unknown", ("flux1", "other:qwen-image"))


_FRAGMENTS = ["lora_unet_", "lora_te_", "transformer.", "diffusion_model.", "unet.", "base_model.model.", "down_blocks.0",
              "attentions.0", "transformer_blocks.1", "attn2.to_k", "double_blocks.3", "single_blocks.2", "img_mlp.0",
              "linear1", "blocks.4.self_attn.q", "joint_blocks.0.x_block.attn.qkv", "text_model.encoder.layers.0",
              "self_attn.q_proj", "encoder.conv_in", "decoder.conv_in", "emb_params", "clip_l", "clip_g", ":0:down"]  # fmt: skip
_SUFFIX_CHOICES = ["", ".weight", ".lora_down.weight", ".lora_up.weight", ".alpha", ".lora_A.weight", ".lora_B.weight",
                   ".hada_w1_a", ".hada_w1_b", ".lokr_w1", ".lokr_w2", ".oft_blocks", ".diff", ".on_input", ".dora_scale"]  # fmt: skip


def test_identify_never_raises_on_arbitrary_keys() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    key = st.builds(lambda parts, suf: "".join(parts) + suf, st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=4),
                    st.sampled_from(_SUFFIX_CHOICES))  # fmt: skip
    shape = st.lists(st.integers(min_value=0, max_value=20000), max_size=5)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(key, shape), max_size=40), st.dictionaries(st.sampled_from(["ss_v2", "ss_base_model_version", "modelspec.architecture"]), st.text(max_size=30)))  # fmt: skip
    def check(pairs: list[tuple[str, list[int]]], md: dict[str, str]) -> None:
        ident, fs = identify(pairs, md)
        assert ident.kind in ("checkpoint", "lora", "lycoris", "embedding", "vae", "text_encoder", "controlnet",
                              "ip_adapter", "t2i_adapter", "image_encoder", "unknown")  # fmt: skip
        assert ident.confidence in ("high", "medium", "low", "none")
        json.dumps(ident.to_dict())
        if ident.arch != "unknown":
            assert ident.source in ("shapes", "metadata")

    check()


def test_lightning_wrapped_checkpoint_keys() -> None:
    wrapped = {f"state_dict.{k}": v for k, v in _sd1_checkpoint().items()}
    ident, _ = identify(list(wrapped.items()))
    assert summary(ident) == ("checkpoint", None, "ldm", "sd1", None, ("unet", "te1", "vae"), "high", "shapes")
