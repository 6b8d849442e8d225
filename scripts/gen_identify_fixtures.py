"""Regenerate ``tests/data/identify/*.json.gz``: the tensor names, dtypes and shapes of real model files.

Run with the probe environment (torch, diffusers, transformers, peft, open_clip), from the project root::

    PYTHONPATH=. /path/to/probe-venv/bin/python scripts/gen_identify_fixtures.py

Nothing is downloaded and no weights are allocated: every model is built on torch's ``meta`` device from
the published config values of the real architecture, and only ``state_dict()`` names and shapes are read.
The single-file layouts (LDM / SGM / BFL naming) are derived from the diffusers models by the inverse of
diffusers' own single-file conversion tables, and each one is checked by running diffusers' forward
converter on it (``convert_ldm_unet_checkpoint``, ``convert_ldm_vae_checkpoint``,
``convert_sd3_transformer_checkpoint_to_diffusers``, ``convert_flux_transformer_checkpoint_to_diffusers``,
``convert_controlnet_checkpoint``, ``convert_open_clip_checkpoint``): the result must give back exactly the
diffusers model's names and shapes, and diffusers' ``infer_diffusers_model_type`` must name the family.
Adapters are made by PEFT (``inject_adapter_in_model`` + ``get_peft_model_state_dict``) on those module
trees and renamed by diffusers' converters (``convert_state_dict_to_kohya``,
``convert_state_dict_to_diffusers``) or by the trainers' documented naming (kohya sd-scripts, XLabs,
OneTrainer, SimpleTuner/LyCORIS); kohya FLUX/SDXL names are checked by diffusers' kohya converters.

Each fixture is ``{"case", "how", "metadata", "tensors": [[name, dtype, shape], ...]}``, gzip-compressed
(deterministic, mtime 0). The expected answers live in ``tests/test_identify_real.py``, not here.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "identify"

Shapes = dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)

_DT = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.float8_e4m3fn: "F8_E4M3",
}


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(shape, device="meta")


def shapes_of(sd: dict[str, torch.Tensor], dtype: str | None = None, prefix: str = "") -> Shapes:
    out: Shapes = {}
    for k, v in sd.items():
        dt = _DT.get(v.dtype, "F32")
        if dtype is not None and v.is_floating_point():
            dt = dtype
        out[prefix + k] = (dt, tuple(int(d) for d in v.shape))
    return out


def as_meta(sh: Shapes) -> dict[str, torch.Tensor]:
    return {k: meta(*s) for k, (_, s) in sh.items()}


def same(a: dict[str, torch.Tensor] | Shapes, b: dict[str, torch.Tensor] | Shapes, what: str) -> None:
    def norm(d: Any) -> dict[str, tuple[int, ...]]:
        return {k: (tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v[1])) for k, v in d.items()}

    na, nb = norm(a), norm(b)
    if na != nb:
        only_a = sorted(set(na) - set(nb))[:5]
        only_b = sorted(set(nb) - set(na))[:5]
        diff = [k for k in na if k in nb and na[k] != nb[k]][:5]
        raise SystemExit(f"{what}: layouts differ; only first {only_a}, only second {only_b}, shapes {diff}")


# ---------------------------------------------------------------------------------------------------
# published configs


UNET_CFG: dict[str, dict[str, Any]] = {
    "sd15": dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
                 block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768, attention_head_dim=8),
    "sd21": dict(sample_size=96, in_channels=4, out_channels=4, layers_per_block=2,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
                 block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=1024,
                 attention_head_dim=[5, 10, 20, 20], use_linear_projection=True),
    "sdxl": dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                 block_out_channels=[320, 640, 1280], cross_attention_dim=2048, attention_head_dim=[5, 10, 20],
                 transformer_layers_per_block=[1, 2, 10], use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816),
    "sdxl_refiner": dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                         down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                         up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                         block_out_channels=[384, 768, 1536, 1536], cross_attention_dim=1280,
                         attention_head_dim=[6, 12, 24, 24], transformer_layers_per_block=4,
                         use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                         projection_class_embeddings_input_dim=2560),
}  # fmt: skip

CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)  # fmt: skip
CLIP_H_SD2 = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                  num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512)  # fmt: skip
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)  # fmt: skip
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, is_encoder_decoder=False)  # fmt: skip

VAE_SD = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
              down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
              layers_per_block=2, sample_size=512)  # fmt: skip
VAE_16 = dict(VAE_SD, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False, sample_size=1024)

SD3_CFG = {
    "3-medium": dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
                     num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                     pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192),
    "3.5-large": dict(sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64,
                      num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432,
                      pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192, qk_norm="rms_norm"),
    "3.5-medium": dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
                       num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                       pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=384, qk_norm="rms_norm",
                       dual_attention_layers=tuple(range(13))),
}  # fmt: skip

FLUX_CFG = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                guidance_embeds=True, axes_dims_rope=(16, 56, 56))  # fmt: skip


def unet(name: str, **over: Any) -> nn.Module:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel(**(UNET_CFG[name] | over))


def clip(cfg: dict[str, Any], projection: bool = False) -> nn.Module:
    """A CLIP text model whose names are those of the files in the wild: ``text_model.*`` (+
    ``text_projection``). transformers 5 drops the ``text_model.`` level of ``CLIPTextModel`` in memory and
    restores it on save, so the plain model is wrapped to give the saved names to PEFT and state_dict()."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        c = CLIPTextConfig(**cfg)
        if projection:
            return CLIPTextModelWithProjection(c)
        m = CLIPTextModel(c)
    if next(iter(m.state_dict())).startswith("text_model."):
        return m
    holder = nn.Module()
    holder.add_module("text_model", m)
    return holder


def t5() -> nn.Module:
    from transformers import T5Config, T5EncoderModel

    with torch.device("meta"):
        return T5EncoderModel(T5Config(**T5_XXL))


def vae(cfg: dict[str, Any]) -> nn.Module:
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL(**cfg)


def sd3(variant: str) -> nn.Module:
    from diffusers import SD3Transformer2DModel

    with torch.device("meta"):
        return SD3Transformer2DModel(**SD3_CFG[variant])


def flux(**over: Any) -> nn.Module:
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        return FluxTransformer2DModel(**(FLUX_CFG | over))


def openclip_text(arch: str) -> dict[str, torch.Tensor]:
    """The text tower of an OpenCLIP model as SD2 / SDXL checkpoints store it (``visual`` removed)."""
    import open_clip

    with torch.device("meta"):
        m = open_clip.create_model(arch, pretrained=None, device="meta")
    return {k: v for k, v in m.state_dict().items() if not k.startswith("visual.")}


def t5_sd() -> dict[str, torch.Tensor]:
    sd = t5().state_dict()
    sd.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight; safetensors files keep one
    return sd


# ---------------------------------------------------------------------------------------------------
# diffusers -> single-file (LDM / SGM / BFL) naming, checked by diffusers' forward converters


_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))  # fmt: skip
_TOP = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
        "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
        "conv_norm_out": "out.0", "conv_out": "out.2"}  # fmt: skip


def _resnet(rest: str) -> str:
    for d, ldm in _RESNET:
        if rest.startswith(d + "."):
            return ldm + rest[len(d) :]
    return rest


def unet_key_to_ldm(k: str, up_has_attn: list[bool], lpb: int = 2) -> str | None:
    for d, ldm in _TOP.items():
        if k.startswith(d + "."):
            return ldm + k[len(d) :]
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        n = 1 + i * (lpb + 1) + j
        return f"input_blocks.{n}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{n}.1.{rest}"
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k)
    if m:
        return f"input_blocks.{(int(m[1]) + 1) * (lpb + 1)}.0.op.{m[2]}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", k)
    if m:
        return f"middle_block.{2 * int(m[2])}.{_resnet(m[3])}" if m[1] == "resnets" else f"middle_block.1.{m[3]}"
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        n = i * (lpb + 1) + j
        return f"output_blocks.{n}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{n}.1.{rest}"
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", k)
    if m:
        i = int(m[1])
        return f"output_blocks.{i * (lpb + 1) + lpb}.{2 if up_has_attn[i] else 1}.conv.{m[2]}"
    return None


def ldm_unet(model: nn.Module) -> dict[str, torch.Tensor]:
    cfg = model.config
    up_has_attn = ["CrossAttn" in t for t in cfg.up_block_types]
    out: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        nk = unet_key_to_ldm(k, up_has_attn)
        if nk is None:
            raise SystemExit(f"unmapped UNet key {k}")
        out[nk] = v
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    back = convert_ldm_unet_checkpoint({"model.diffusion_model." + k: v for k, v in out.items()}, dict(cfg))
    same(back, model.state_dict(), "LDM UNet round trip")
    return out


def ldm_vae(model: nn.Module) -> dict[str, torch.Tensor]:
    n = len(model.config.up_block_types)
    out: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        nk = k
        nk = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", nk)
        nk = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", nk)
        nk = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{n - 1 - int(m[1])}.block.", nk)
        nk = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{n - 1 - int(m[1])}.upsample.", nk)
        nk = re.sub(r"\.mid_block\.resnets\.(\d+)\.", lambda m: f".mid.block_{int(m[1]) + 1}.", nk)
        nk = nk.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        if ".mid_block.attentions.0." in nk:
            nk = nk.replace(".mid_block.attentions.0.", ".mid.attn_1.")
            nk = (nk.replace("group_norm", "norm").replace("to_q", "q").replace("to_k", "k").replace("to_v", "v")
                  .replace("to_out.0", "proj_out"))  # fmt: skip
            if v.ndim == 2:
                v = meta(*v.shape, 1, 1)  # LDM attention projections are 1x1 convolutions
        out[nk] = v
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    back = convert_ldm_vae_checkpoint({"first_stage_model." + k: v for k, v in out.items()}, dict(model.config))
    same(back, model.state_dict(), "LDM VAE round trip")
    return out


def sgm_mmdit(model: nn.Module) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    ren = {"pos_embed.pos_embed": "pos_embed", "pos_embed.proj.": "x_embedder.proj.",
           "time_text_embed.timestep_embedder.linear_1.": "t_embedder.mlp.0.",
           "time_text_embed.timestep_embedder.linear_2.": "t_embedder.mlp.2.",
           "time_text_embed.text_embedder.linear_1.": "y_embedder.mlp.0.",
           "time_text_embed.text_embedder.linear_2.": "y_embedder.mlp.2.",
           "context_embedder.": "context_embedder.", "proj_out.": "final_layer.linear.",
           "norm_out.linear.": "final_layer.adaLN_modulation.1."}  # fmt: skip
    blk = {"attn.norm_q.": "x_block.attn.ln_q.", "attn.norm_k.": "x_block.attn.ln_k.",
           "attn.norm_added_q.": "context_block.attn.ln_q.", "attn.norm_added_k.": "context_block.attn.ln_k.",
           "attn.to_out.0.": "x_block.attn.proj.", "attn.to_add_out.": "context_block.attn.proj.",
           "attn2.norm_q.": "x_block.attn2.ln_q.", "attn2.norm_k.": "x_block.attn2.ln_k.",
           "attn2.to_out.0.": "x_block.attn2.proj.",
           "norm1.linear.": "x_block.adaLN_modulation.1.", "norm1_context.linear.": "context_block.adaLN_modulation.1.",
           "ff.net.0.proj.": "x_block.mlp.fc1.", "ff.net.2.": "x_block.mlp.fc2.",
           "ff_context.net.0.proj.": "context_block.mlp.fc1.", "ff_context.net.2.": "context_block.mlp.fc2."}  # fmt: skip
    qkv = {"attn.to_": "x_block.attn.qkv", "attn.add_": "context_block.attn.qkv", "attn2.to_": "x_block.attn2.qkv"}
    for k, v in sd.items():
        done = False
        for a, b in ren.items():
            if k.startswith(a):
                out[b + k[len(a) :]] = v
                done = True
                break
        if done:
            continue
        m = re.match(r"transformer_blocks\.(\d+)\.(.*)", k)
        if not m:
            raise SystemExit(f"unmapped SD3 key {k}")
        i, rest = m[1], m[2]
        for a, b in blk.items():
            if rest.startswith(a):
                out[f"joint_blocks.{i}.{b}{rest[len(a):]}"] = v
                done = True
                break
        if done:
            continue
        mq = re.match(r"(attn2?\.(?:to_|add_))([qkv])(?:_proj)?\.(weight|bias)$", rest)
        if not mq:
            raise SystemExit(f"unmapped SD3 block key {k}")
        if mq[2] == "q":
            name = f"joint_blocks.{i}.{qkv[mq[1]]}.{mq[3]}"
            out[name] = meta(3 * v.shape[0], *v.shape[1:])
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    back = convert_sd3_transformer_checkpoint_to_diffusers(dict(out))
    same(back, sd, "SD3 SGM round trip")
    return out


def bfl_flux(model: nn.Module) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    ren = {"time_text_embed.timestep_embedder.linear_1.": "time_in.in_layer.",
           "time_text_embed.timestep_embedder.linear_2.": "time_in.out_layer.",
           "time_text_embed.text_embedder.linear_1.": "vector_in.in_layer.",
           "time_text_embed.text_embedder.linear_2.": "vector_in.out_layer.",
           "time_text_embed.guidance_embedder.linear_1.": "guidance_in.in_layer.",
           "time_text_embed.guidance_embedder.linear_2.": "guidance_in.out_layer.",
           "context_embedder.": "txt_in.", "x_embedder.": "img_in.", "proj_out.": "final_layer.linear.",
           "norm_out.linear.": "final_layer.adaLN_modulation.1."}  # fmt: skip
    dbl = {"norm1.linear.": "img_mod.lin.", "norm1_context.linear.": "txt_mod.lin.",
           "attn.norm_q.weight": "img_attn.norm.query_norm.scale", "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
           "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
           "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
           "ff.net.0.proj.": "img_mlp.0.", "ff.net.2.": "img_mlp.2.", "ff_context.net.0.proj.": "txt_mlp.0.",
           "ff_context.net.2.": "txt_mlp.2.", "attn.to_out.0.": "img_attn.proj.", "attn.to_add_out.": "txt_attn.proj."}  # fmt: skip
    sgl = {"norm.linear.": "modulation.lin.", "attn.norm_q.weight": "norm.query_norm.scale",
           "attn.norm_k.weight": "norm.key_norm.scale", "proj_out.": "linear2."}  # fmt: skip
    for k, v in sd.items():
        hit = next((a for a in ren if k.startswith(a)), None)
        if hit:
            out[ren[hit] + k[len(hit) :]] = v
            continue
        m = re.match(r"(single_)?transformer_blocks\.(\d+)\.(.*)", k)
        if not m:
            raise SystemExit(f"unmapped FLUX key {k}")
        single, i, rest = bool(m[1]), m[2], m[3]
        table = sgl if single else dbl
        base = f"single_blocks.{i}." if single else f"double_blocks.{i}."
        hit = next((a for a in table if rest.startswith(a)), None)
        if hit:
            out[base + table[hit] + rest[len(hit) :]] = v
            continue
        mq = re.match(r"(attn\.to_|attn\.add_|proj_mlp)([qkv])?(?:_proj)?\.?(weight|bias)$", rest)
        if not mq:
            raise SystemExit(f"unmapped FLUX block key {k}")
        if single and mq[1] == "attn.to_" and mq[2] == "q":
            h = v.shape[0]
            mlp = sd[f"single_transformer_blocks.{i}.proj_mlp.{mq[3]}"].shape[0]
            out[f"{base}linear1.{mq[3]}"] = meta(3 * h + mlp, *v.shape[1:])
        elif not single and mq[2] == "q":
            out[f"{base}{'img' if mq[1] == 'attn.to_' else 'txt'}_attn.qkv.{mq[3]}"] = meta(3 * v.shape[0], *v.shape[1:])
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    back = convert_flux_transformer_checkpoint_to_diffusers(dict(out))
    same(back, sd, "FLUX BFL round trip")
    return out


def ldm_controlnet(model: nn.Module) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        m = re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", k)
        if m:
            out[f"zero_convs.{m[1]}.0.{m[2]}"] = v
            continue
        if k.startswith("controlnet_mid_block."):
            out["middle_block_out.0." + k.split(".", 1)[1]] = v
            continue
        m = re.match(r"controlnet_cond_embedding\.(conv_in|conv_out|blocks\.(\d+))\.(.*)", k)
        if m:
            idx = 0 if m[1] == "conv_in" else 14 if m[1] == "conv_out" else 2 * int(m[2]) + 2
            out[f"input_hint_block.{idx}.{m[3]}"] = v
            continue
        nk = unet_key_to_ldm(k, [])
        if nk is None:
            raise SystemExit(f"unmapped ControlNet key {k}")
        out[nk] = v
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    back = convert_controlnet_checkpoint(dict(out), dict(model.config))
    # diffusers' ControlNet converter leaves SDXL's ADM layers (label_emb.0.* → add_embedding.*) to its caller
    want = {k: v for k, v in model.state_dict().items() if not k.startswith("add_embedding.")}
    same(back, want, "LDM ControlNet round trip")
    return out


# ---------------------------------------------------------------------------------------------------
# adapters


def module_tree(sd: dict[str, torch.Tensor] | Shapes) -> nn.Module:
    """Linear / Conv2d placeholders named like a checkpoint's weights (so PEFT can adapt BFL/SGM names)."""
    root = nn.Module()
    for name, t in sd.items():
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else t[1]
        if not name.endswith(".weight") or len(shape) not in (2, 4):
            continue
        parts = name[: -len(".weight")].split(".")
        parent = root
        for p in parts[:-1]:
            if not hasattr(parent, p):
                parent.add_module(p, nn.Module())
            parent = getattr(parent, p)
        with torch.device("meta"):
            layer: nn.Module = (
                nn.Linear(shape[1], shape[0], bias=False)
                if len(shape) == 2
                else nn.Conv2d(shape[1], shape[0], tuple(shape[2:]), bias=False)
            )
        parent.add_module(parts[-1], layer)
    return root


def peft_lora(model: nn.Module, targets: str | list[str], rank: int = 4, dora: bool = False) -> dict[str, torch.Tensor]:
    """``get_peft_model_state_dict`` of a LoRA injected into ``model`` (module names without a prefix)."""
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    with torch.device("meta"):
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, use_dora=dora), model)
    sd = get_peft_model_state_dict(model)
    if not sd:
        raise SystemExit("PEFT adapted nothing")
    return sd


def prefixed(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


def kohya(sd: dict[str, torch.Tensor], unet_prefix: str = "lora_unet", te1: str = "lora_te1", te2: str = "lora_te2",
          te3: str = "lora_te3") -> dict[str, torch.Tensor]:
    """PEFT -> kohya by diffusers' ``convert_state_dict_to_kohya`` (``unet.`` → ``lora_unet_``, text encoders
    ``lora_te1_``/``lora_te2_``, dots → underscores, ``lora_down``/``lora_up`` + ``alpha``), then the trainer's
    own prefixes."""
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

    out = convert_state_dict_to_kohya(dict(sd))
    ren: dict[str, torch.Tensor] = {}
    for k, v in out.items():
        for a, b in (("lora_unet", unet_prefix), ("lora_te1", te1), ("lora_te2", te2), ("text_encoder_3", te3)):
            if k.startswith(a + "_"):
                k = b + k[len(a) :]
                break
        ren[k] = v
    return ren


def kohya_names(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """PEFT keys of a module tree → kohya keys: ``prefix`` + module path with ``_``, ``lora_down``/``lora_up``,
    ``alpha`` (what sd-scripts writes for FLUX / SD3 / SDXL-SGM networks)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        m = re.match(r"(.*)\.lora_([AB])\.weight$", k)
        if not m:
            raise SystemExit(f"not a PEFT LoRA key: {k}")
        base = prefix + m[1].replace(".", "_")
        out[f"{base}.lora_{'down' if m[2] == 'A' else 'up'}.weight"] = v
        if m[2] == "A":
            out[f"{base}.alpha"] = torch.empty((), device="meta")
    return out


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """LyCORIS ``functional.general.factorization`` (re-derived): the most balanced divisor pair, capped at
    ``factor``."""
    if factor > 0 and dimension % factor == 0:
        m, n = factor, dimension // factor
        return (n, m) if m > n else (m, n)
    if factor < 0:
        factor = dimension
    m, n = 1, dimension
    length = m + n
    while m < n:
        new_m = m + 1
        while dimension % new_m != 0:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > length or new_m > factor:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


def lycoris(
    layers: dict[str, tuple[int, ...]],
    algo: str,
    rank: int = 8,
    factor: int = -1,
    decompose_both: bool = False,
    use_tucker: bool = False,
    full_matrix: bool = False,
    dora: bool = False,
    block_size: int = 4,
) -> dict[str, tuple[int, ...]]:
    """LyCORIS module tensors (LyCORIS ``modules/*.py`` shapes) for ``layers`` (kohya base name → weight
    shape ``[out, in]`` or ``[out, in, k, k]``)."""
    out: dict[str, tuple[int, ...]] = {}
    for b, shape in layers.items():
        o, i, k = shape[0], shape[1], tuple(shape[2:])
        conv = bool(k)
        kk = math.prod(k) if k else 1
        if algo == "loha":
            if conv and use_tucker and kk > 1:
                out |= {f"{b}.hada_t1": (rank, rank, *k), f"{b}.hada_w1_a": (rank, o), f"{b}.hada_w1_b": (rank, i),
                        f"{b}.hada_t2": (rank, rank, *k), f"{b}.hada_w2_a": (rank, o), f"{b}.hada_w2_b": (rank, i)}  # fmt: skip
            else:
                out |= {f"{b}.hada_w1_a": (o, rank), f"{b}.hada_w1_b": (rank, i * kk),
                        f"{b}.hada_w2_a": (o, rank), f"{b}.hada_w2_b": (rank, i * kk)}  # fmt: skip
        elif algo == "lokr":
            in_m, in_n = factorization(i, factor)
            out_l, out_k = factorization(o, factor)
            if decompose_both and rank < max(out_l, in_m) / 2 and not full_matrix:
                out |= {f"{b}.lokr_w1_a": (out_l, rank), f"{b}.lokr_w1_b": (rank, in_m)}
            else:
                out[f"{b}.lokr_w1"] = (out_l, in_m)
            if full_matrix or rank >= max(out_k, in_n) / 2:
                out[f"{b}.lokr_w2"] = (out_k, in_n, *k)
            elif conv and use_tucker and kk > 1:
                out |= {f"{b}.lokr_t2": (rank, rank, *k), f"{b}.lokr_w2_a": (rank, out_k), f"{b}.lokr_w2_b": (rank, in_n)}
            else:
                out |= {f"{b}.lokr_w2_a": (out_k, rank), f"{b}.lokr_w2_b": (rank, in_n * kk)}
        elif algo == "locon":
            out |= {f"{b}.lora_down.weight": (rank, i, *k), f"{b}.lora_up.weight": (o, rank, *((1,) * len(k)))}
        elif algo == "ia3":
            out |= {f"{b}.weight": (o,), f"{b}.on_input": ()}
        elif algo == "glora":
            out |= {f"{b}.a1.weight": (rank, i, *((1,) * len(k))), f"{b}.a2.weight": (o, rank, *((1,) * len(k))),
                    f"{b}.b1.weight": (rank, i, *k), f"{b}.b2.weight": (o, rank, *((1,) * len(k)))}  # fmt: skip
        elif algo == "diag-oft":
            bs = block_size if o % block_size == 0 else 1
            out |= {f"{b}.oft_blocks": (o // bs, bs, bs)}
        elif algo == "boft":
            m = int(math.log2(o // block_size)) if o % block_size == 0 else 1
            out |= {f"{b}.oft_blocks": (m, o // block_size, block_size, block_size)}
        elif algo == "full":
            out |= {f"{b}.diff": shape, f"{b}.diff_b": (o,)}
        else:
            raise SystemExit(algo)
        if algo not in ("ia3", "full"):
            out[f"{b}.alpha"] = ()
        if dora:
            out[f"{b}.dora_scale"] = (1, i, *((1,) * len(k)))
    return out


# ---------------------------------------------------------------------------------------------------
# fixtures


CASES: dict[str, tuple[str, Callable[[], tuple[Shapes, dict[str, str] | None]]]] = {}


def case(name: str, how: str) -> Callable[[Callable[[], tuple[Shapes, dict[str, str] | None]]], None]:
    def deco(fn: Callable[[], tuple[Shapes, dict[str, str] | None]]) -> None:
        CASES[name] = (how, fn)

    return deco


def tensors(sd: dict[str, torch.Tensor], dtype: str = "F16", prefix: str = "") -> Shapes:
    return shapes_of(sd, dtype, prefix)


def meta_shapes(sh: dict[str, tuple[int, ...]], dtype: str = "F16") -> Shapes:
    return {k: (dtype, tuple(v)) for k, v in sh.items()}


def write(name: str, how: str, sh: Shapes, metadata: dict[str, str] | None) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"case": name, "how": how, "metadata": metadata,
           "tensors": [[k, dt, list(s)] for k, (dt, s) in sh.items()]}  # fmt: skip
    raw = json.dumps(doc, separators=(",", ":")).encode()
    path = OUT / f"{name}.json.gz"
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
        g.write(raw)
    return path.stat().st_size



# -- shared pieces ----------------------------------------------------------------------------------------

_DDPM = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
         "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
         "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"]  # fmt: skip


def ddpm_buffers() -> Shapes:
    """The noise-schedule buffers every LDM/SGM training checkpoint carries (1000 steps)."""
    return {k: ("F32", (1000,)) for k in _DDPM}


def check_type(sh: Shapes, want: str) -> None:
    """diffusers' own single-file detector must name the family of a composed checkpoint."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    got = infer_diffusers_model_type(as_meta(sh))
    if got != want:
        raise SystemExit(f"infer_diffusers_model_type says {got}, expected {want}")


def sd15_ckpt(in_channels: int = 4) -> Shapes:
    u = ldm_unet(unet("sd15", in_channels=in_channels))
    sh = tensors(u, "F16", "model.diffusion_model.")
    sh |= tensors(clip(CLIP_L).state_dict(), "F16", "cond_stage_model.transformer.")
    sh["cond_stage_model.transformer.text_model.embeddings.position_ids"] = ("I64", (1, 77))
    sh |= tensors(ldm_vae(vae(VAE_SD)), "F16", "first_stage_model.")
    return ddpm_buffers() | sh


def sd21_ckpt(in_channels: int = 4) -> Shapes:
    sh = tensors(ldm_unet(unet("sd21", in_channels=in_channels)), "F16", "model.diffusion_model.")
    sh |= tensors(openclip_text("ViT-H-14"), "F16", "cond_stage_model.model.")
    sh |= tensors(ldm_vae(vae(VAE_SD)), "F16", "first_stage_model.")
    return ddpm_buffers() | sh


def sdxl_ckpt(in_channels: int = 4) -> Shapes:
    sh = tensors(ldm_unet(unet("sdxl", in_channels=in_channels)), "F16", "model.diffusion_model.")
    sh |= tensors(clip(CLIP_L).state_dict(), "F16", "conditioner.embedders.0.transformer.")
    sh |= tensors(openclip_text("ViT-bigG-14"), "F16", "conditioner.embedders.1.model.")
    sh |= tensors(ldm_vae(vae(VAE_SD)), "F16", "first_stage_model.")
    return sh


def flux_bfl(**over: Any) -> dict[str, torch.Tensor]:
    return bfl_flux(flux(**over))


# -- full models, single file -----------------------------------------------------------------------------


@case("ckpt_sd15_pruned_emaonly", "SD1.5 single file: LDM UNet, CLIP-L (HF) under cond_stage_model, LDM VAE, DDPM buffers")
def _c1() -> tuple[Shapes, dict[str, str] | None]:
    sh = sd15_ckpt()
    check_type(sh, "v1")
    return sh, None


@case("ckpt_sd15_full_ema", "SD1.5 training checkpoint with the flattened model_ema.* copy (v1-5-pruned layout), F32")
def _c2() -> tuple[Shapes, dict[str, str] | None]:
    sh = {k: ("F32", s) for k, (_, s) in sd15_ckpt().items()}
    ema: Shapes = {"model_ema.decay": ("F32", ()), "model_ema.num_updates": ("I64", ())}
    for k, v in sh.items():
        if k.startswith("model.diffusion_model."):
            ema["model_ema." + "".join(k.split(".")[1:])] = v
    return sh | ema, None


@case("ckpt_sd15_inpainting", "SD1.5 inpainting single file: UNet input convolution takes 9 channels")
def _c3() -> tuple[Shapes, dict[str, str] | None]:
    sh = sd15_ckpt(9)
    check_type(sh, "inpainting")
    return sh, None


@case("ckpt_sd15_instruct_pix2pix", "InstructPix2Pix single file: UNet input convolution takes 8 channels")
def _c3b() -> tuple[Shapes, dict[str, str] | None]:
    sh = sd15_ckpt(8)
    check_type(sh, "instruct-pix2pix")
    return sh, None


@case("ckpt_sd21_768v", "SD2.1-768-v single file: LDM UNet (linear proj), OpenCLIP ViT-H text tower, LDM VAE; v-prediction is not visible in shapes")
def _c4() -> tuple[Shapes, dict[str, str] | None]:
    sh = sd21_ckpt()
    check_type(sh, "v2")
    return sh, None


@case("ckpt_sd2_inpainting", "SD2 inpainting single file (9 input channels)")
def _c5() -> tuple[Shapes, dict[str, str] | None]:
    sh = sd21_ckpt(9)
    check_type(sh, "inpainting_v2")
    return sh, None


@case("ckpt_sdxl_base", "SDXL base 1.0 single file (SGM): UNet, CLIP-L under embedders.0, OpenCLIP bigG under embedders.1, VAE")
def _c6() -> tuple[Shapes, dict[str, str] | None]:
    sh = sdxl_ckpt()
    check_type(sh, "xl_base")
    md = {"modelspec.architecture": "stable-diffusion-xl-v1-base", "modelspec.sai_model_spec": "1.0.0"}
    return sh, md


@case("ckpt_sdxl_pony_merge", "an SDXL fine-tune labelled Pony in its metadata (same shapes as SDXL base)")
def _c6b() -> tuple[Shapes, dict[str, str] | None]:
    sh = sdxl_ckpt()
    return sh, {"modelspec.architecture": "stable-diffusion-xl-v1-base", "modelspec.title": "ponyDiffusionV6XL"}


@case("ckpt_sdxl_vpred_ztsnr", "an SDXL v-prediction fine-tune (NoobAI-XL V-Pred style) with ComfyUI's v_pred and ztsnr marker tensors")
def _c6c() -> tuple[Shapes, dict[str, str] | None]:
    sh = sdxl_ckpt()
    sh |= {"v_pred": ("F32", (0,)), "ztsnr": ("F32", (0,))}
    return sh, {"modelspec.architecture": "stable-diffusion-xl-v1-base", "modelspec.prediction_type": "v"}


@case("ckpt_playground_v25", "Playground v2.5 single file: SDXL shapes plus edm_mean/edm_std latent statistics")
def _c6d() -> tuple[Shapes, dict[str, str] | None]:
    sh = sdxl_ckpt() | {"edm_mean": ("F32", (1, 4, 1, 1)), "edm_std": ("F32", (1, 4, 1, 1))}
    check_type(sh, "playground-v2-5")
    return sh, None


@case("ckpt_sdxl_inpainting", "SDXL inpainting single file (9 input channels)")
def _c7() -> tuple[Shapes, dict[str, str] | None]:
    sh = sdxl_ckpt(9)
    check_type(sh, "xl_inpaint")
    return sh, None


@case("ckpt_sdxl_refiner", "SDXL refiner 1.0 single file: 384-channel UNet, OpenCLIP bigG under embedders.0, VAE")
def _c8() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(ldm_unet(unet("sdxl_refiner")), "F16", "model.diffusion_model.")
    sh |= tensors(openclip_text("ViT-bigG-14"), "F16", "conditioner.embedders.0.model.")
    sh |= tensors(ldm_vae(vae(VAE_SD)), "F16", "first_stage_model.")
    check_type(sh, "xl_refiner")
    return sh, None


@case("ckpt_sd3_medium_incl_clips_t5", "sd3_medium_incl_clips_t5xxlfp8: SGM MMDiT, CLIP-L/G and T5-XXL (fp8) under text_encoders.*, VAE")
def _c9() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(sgm_mmdit(sd3("3-medium")), "F16", "model.diffusion_model.")
    sh |= tensors(clip(CLIP_L, projection=True).state_dict(), "F16", "text_encoders.clip_l.transformer.")
    sh |= tensors(clip(CLIP_G, projection=True).state_dict(), "F16", "text_encoders.clip_g.transformer.")
    sh |= tensors(t5_sd(), "F8_E4M3", "text_encoders.t5xxl.transformer.")
    sh |= tensors(ldm_vae(vae(VAE_16)), "F16", "first_stage_model.")
    check_type(sh, "sd3")
    return sh, None


@case("ckpt_sd35_large", "sd3.5_large: SGM MMDiT with 38 joint blocks 2432 wide and qk-norm, VAE")
def _c10() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(sgm_mmdit(sd3("3.5-large")), "BF16", "model.diffusion_model.")
    sh |= tensors(ldm_vae(vae(VAE_16)), "BF16", "first_stage_model.")
    check_type(sh, "sd35_large")
    return sh, None


@case("ckpt_sd35_medium", "sd3.5_medium: MMDiT-X with attn2 in the first 13 blocks, 384x384 position table")
def _c11() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(sgm_mmdit(sd3("3.5-medium")), "BF16", "model.diffusion_model.")
    sh |= tensors(ldm_vae(vae(VAE_16)), "BF16", "first_stage_model.")
    check_type(sh, "sd35_medium")
    return sh, None


@case("ckpt_flux1_dev_bfl", "flux1-dev.safetensors: bare BFL transformer with guidance_in, BF16")
def _c12() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(flux_bfl(), "BF16")
    check_type(sh, "flux-dev")
    return sh, None


@case("ckpt_flux1_schnell_bfl", "flux1-schnell.safetensors: bare BFL transformer without guidance_in")
def _c13() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(flux_bfl(guidance_embeds=False), "BF16")
    check_type(sh, "flux-schnell")
    return sh, None


@case("ckpt_flux1_fill_bfl", "flux1-fill-dev: img_in takes 384 features")
def _c14() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(flux_bfl(in_channels=384, out_channels=64), "BF16")
    check_type(sh, "flux-fill")
    return sh, None


@case("ckpt_flux1_depth_bfl", "flux1-depth-dev: img_in takes 128 features")
def _c15() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(flux_bfl(in_channels=128, out_channels=64), "BF16")
    check_type(sh, "flux-depth")
    return sh, None


@case("ckpt_flux1_dev_fp8_comfy_aio", "ComfyUI all-in-one flux1-dev-fp8: model.diffusion_model.* (F8_E4M3), text_encoders.clip_l/t5xxl, vae.*")
def _c16() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(flux_bfl(), "F8_E4M3", "model.diffusion_model.")
    for k, (_dt, s) in list(sh.items()):
        if len(s) < 2:
            sh[k] = ("BF16", s)
    sh |= tensors(clip(CLIP_L).state_dict(), "F16", "text_encoders.clip_l.transformer.")
    sh |= tensors(t5_sd(), "F8_E4M3", "text_encoders.t5xxl.transformer.")
    sh |= tensors(ldm_vae(vae(VAE_16)), "BF16", "vae.")
    check_type(sh, "flux-dev")
    return sh, None


@case("ckpt_flux1_dev_fp8_scaled", "ComfyUI scaled-fp8 transformer: BFL names under model.diffusion_model., a scale_weight per linear, scaled_fp8 marker")
def _c17() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(flux_bfl(), "F8_E4M3", "model.diffusion_model.")
    for k, (_dt, s) in list(sh.items()):
        if len(s) == 2:
            sh[k[: -len(".weight")] + ".scale_weight"] = ("F32", (1,))
        else:
            sh[k] = ("BF16", s)
    sh["scaled_fp8"] = ("F8_E4M3", (0,))
    return sh, None


# -- components in diffusers / HF / LDM naming -------------------------------------------------------------


@case("unet_sd15_diffusers", "stable-diffusion-v1-5 unet/diffusion_pytorch_model.safetensors")
def _d1() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(unet("sd15").state_dict(), "F16"), None


@case("unet_sdxl_diffusers", "stable-diffusion-xl-base-1.0 unet/diffusion_pytorch_model.fp16.safetensors")
def _d2() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(unet("sdxl").state_dict(), "F16"), None


@case("unet_sdxl_ldm_bare", "an SDXL UNet extracted without its prefix (SGM names, no model.diffusion_model.)")
def _d2b() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(ldm_unet(unet("sdxl")), "F16"), None


@case("transformer_flux1_dev_diffusers", "FLUX.1-dev transformer/diffusion_pytorch_model-0000N.safetensors (all shards' names)")
def _d3() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(flux().state_dict(), "BF16"), None


@case("transformer_sd3_medium_diffusers", "stable-diffusion-3-medium-diffusers transformer/")
def _d4() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(sd3("3-medium").state_dict(), "F16"), None


@case("transformer_sd35_large_diffusers", "stable-diffusion-3.5-large transformer/")
def _d4b() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(sd3("3.5-large").state_dict(), "BF16"), None


@case("vae_sd_ldm", "vae-ft-mse-840000-ema-pruned: LDM naming, no prefix, 4 latent channels")
def _v1() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(ldm_vae(vae(VAE_SD)), "F32"), None


@case("vae_sdxl_diffusers", "sdxl-vae diffusion_pytorch_model.safetensors: diffusers naming")
def _v2() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(vae(VAE_SD).state_dict(), "F32"), None


@case("vae_flux_ae", "FLUX.1 ae.safetensors: LDM/BFL naming, 16 latent channels, no quant convs")
def _v3() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(ldm_vae(vae(VAE_16)), "F32"), None


@case("vae_sd3_diffusers", "stable-diffusion-3-medium-diffusers vae/: diffusers naming, 16 latent channels")
def _v4() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(vae(VAE_16).state_dict(), "F16"), None


@case("te_clip_l", "ComfyUI clip_l.safetensors / SD text_encoder/model.safetensors (CLIPTextModel)")
def _t1() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(clip(CLIP_L).state_dict(), "F16"), None


@case("te_clip_g", "ComfyUI clip_g.safetensors / SDXL text_encoder_2 (CLIPTextModelWithProjection, 1280 wide)")
def _t2() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(clip(CLIP_G, projection=True).state_dict(), "F16"), None


@case("te_openclip_h_sd2", "stable-diffusion-2-1 text_encoder/ (HF CLIP, 1024 wide, 23 layers)")
def _t3() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(clip(CLIP_H_SD2).state_dict(), "F16"), None


@case("te_t5xxl_fp16", "t5xxl_fp16.safetensors (T5EncoderModel, 4096 wide)")
def _t4() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(t5_sd(), "F16"), None


@case("te_t5xxl_fp8", "t5xxl_fp8_e4m3fn.safetensors")
def _t5() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(t5_sd(), "F8_E4M3")
    return {k: (dt if len(s) == 2 else "F16", s) for k, (dt, s) in sh.items()}, None


@case("controlnet_sd15_ldm", "lllyasviel control_v11p_sd15_canny: LDM ControlNet names without prefix (input_hint_block, zero_convs)")
def _n1() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import ControlNetModel

    with torch.device("meta"):
        c = ControlNetModel(cross_attention_dim=768)
    sh = tensors(ldm_controlnet(c), "F16")
    return sh, None


@case("controlnet_sd15_ldm_prefixed", "ControlNet 1.0 extracted (control_model.* prefix)")
def _n2() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import ControlNetModel

    with torch.device("meta"):
        c = ControlNetModel(cross_attention_dim=768)
    sh = tensors(ldm_controlnet(c), "F16", "control_model.")
    check_type(sh, "controlnet")
    return sh, None


@case("controlnet_sd15_diffusers", "diffusers ControlNetModel for SD1.5 (controlnet_cond_embedding, controlnet_down_blocks)")
def _n3() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import ControlNetModel

    with torch.device("meta"):
        c = ControlNetModel(cross_attention_dim=768)
    return tensors(c.state_dict(), "F16"), None


@case("controlnet_sdxl_diffusers", "diffusers/controlnet-canny-sdxl-1.0 (SDXL ControlNetModel)")
def _n4() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import ControlNetModel

    cfg = {k: v for k, v in UNET_CFG["sdxl"].items() if k not in ("sample_size", "out_channels", "up_block_types")}
    with torch.device("meta"):
        c = ControlNetModel(**cfg)
    sh = tensors(c.state_dict(), "F16")
    check_type(sh, "controlnet_xl_large")
    return sh, None


@case("controlnet_flux_diffusers", "InstantX FLUX.1-dev-Controlnet-Canny (FluxControlNetModel, 5 double + 10 single blocks)")
def _n5() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import FluxControlNetModel

    with torch.device("meta"):
        c = FluxControlNetModel(**(FLUX_CFG | dict(num_layers=5, num_single_layers=10)))
    return tensors(c.state_dict(), "BF16"), None


@case("control_lora_sdxl_sai", "Stability control-LoRA for SDXL (rank 128): LDM ControlNet names, each weight as <layer>.up/.down, full hint block, zero convs and norms, lora_controlnet marker")
def _n7() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import ControlNetModel
    from diffusers.utils.state_dict_utils import convert_sai_sd_control_lora_state_dict_to_peft

    cfg = {k: v for k, v in UNET_CFG["sdxl"].items() if k not in ("sample_size", "out_channels", "up_block_types")}
    with torch.device("meta"):
        c = ControlNetModel(**cfg)
    ldm = ldm_controlnet(c)
    r = 128
    out: dict[str, torch.Tensor] = {"lora_controlnet": meta()}
    for k, v in ldm.items():
        lora_part = (k.startswith(("input_blocks.", "middle_block.", "time_embed.", "label_emb."))
                     and k.endswith(".weight") and v.ndim in (2, 4))  # fmt: skip
        if lora_part:
            base = k[: -len(".weight")]
            out[base + ".up"] = meta(v.shape[0], r, *((1, 1) if v.ndim == 4 else ()))
            out[base + ".down"] = meta(r, *v.shape[1:])
        else:
            out[k] = v
    convert_sai_sd_control_lora_state_dict_to_peft(dict(out))
    return tensors(out, "F16"), None


@case("t2i_adapter_sd15", "TencentARC t2iadapter for SD1.5 (diffusers T2IAdapter, full_adapter)")
def _n6() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import T2IAdapter

    with torch.device("meta"):
        a = T2IAdapter(in_channels=3, channels=[320, 640, 1280, 1280], num_res_blocks=2, downscale_factor=8)
    return tensors(a.state_dict(), "F16"), None


def _ip_layers(u: nn.Module) -> list[tuple[int, int, int]]:
    """(index, hidden size, context width) of each cross-attention processor, in ``attn_processors`` order
    (the numbering IP-Adapter files use)."""
    out = []
    for i, name in enumerate(u.attn_processors.keys()):
        if name.endswith("attn1.processor"):
            continue
        mod = u.get_submodule(name[: -len(".processor")])
        out.append((i, mod.to_k.out_features, mod.to_k.in_features))
    return out


@case("ip_adapter_sd15", "h94 ip-adapter_sd15.safetensors: image_proj (4 tokens from a 1024-wide CLIP-H image embed) + to_k_ip/to_v_ip")
def _i1() -> tuple[Shapes, dict[str, str] | None]:
    sh: Shapes = {"image_proj.proj.weight": ("F16", (4 * 768, 1024)), "image_proj.proj.bias": ("F16", (4 * 768,)),
                  "image_proj.norm.weight": ("F16", (768,)), "image_proj.norm.bias": ("F16", (768,))}  # fmt: skip
    for i, h, ctx in _ip_layers(unet("sd15")):
        sh[f"ip_adapter.{i}.to_k_ip.weight"] = ("F16", (h, ctx))
        sh[f"ip_adapter.{i}.to_v_ip.weight"] = ("F16", (h, ctx))
    return sh, None


@case("ip_adapter_sdxl", "h94 ip-adapter_sdxl: 4 tokens 2048 wide from a 1280-wide bigG image embed")
def _i2() -> tuple[Shapes, dict[str, str] | None]:
    sh: Shapes = {"image_proj.proj.weight": ("F16", (4 * 2048, 1280)), "image_proj.proj.bias": ("F16", (4 * 2048,)),
                  "image_proj.norm.weight": ("F16", (2048,)), "image_proj.norm.bias": ("F16", (2048,))}  # fmt: skip
    for i, h, ctx in _ip_layers(unet("sdxl")):
        sh[f"ip_adapter.{i}.to_k_ip.weight"] = ("F16", (h, ctx))
        sh[f"ip_adapter.{i}.to_v_ip.weight"] = ("F16", (h, ctx))
    return sh, None


@case("ip_adapter_plus_sd15", "h94 ip-adapter-plus_sd15: Resampler image projection (latents, 4 perceiver layers) + to_k_ip/to_v_ip")
def _i3() -> tuple[Shapes, dict[str, str] | None]:
    d, emb = 768, 1280
    sh: Shapes = {"image_proj.latents": ("F16", (1, 16, d)), "image_proj.proj_in.weight": ("F16", (d, emb)),
                  "image_proj.proj_in.bias": ("F16", (d,)), "image_proj.proj_out.weight": ("F16", (d, d)),
                  "image_proj.proj_out.bias": ("F16", (d,)), "image_proj.norm_out.weight": ("F16", (d,)),
                  "image_proj.norm_out.bias": ("F16", (d,))}  # fmt: skip
    for n in range(4):
        p = f"image_proj.layers.{n}"
        sh |= {f"{p}.0.norm1.weight": ("F16", (d,)), f"{p}.0.norm1.bias": ("F16", (d,)),
               f"{p}.0.norm2.weight": ("F16", (d,)), f"{p}.0.norm2.bias": ("F16", (d,)),
               f"{p}.0.to_q.weight": ("F16", (d, d)), f"{p}.0.to_kv.weight": ("F16", (2 * d, d)),
               f"{p}.0.to_out.weight": ("F16", (d, d)), f"{p}.1.0.weight": ("F16", (d,)), f"{p}.1.0.bias": ("F16", (d,)),
               f"{p}.1.1.weight": ("F16", (4 * d, d)), f"{p}.1.3.weight": ("F16", (d, 4 * d))}  # fmt: skip
    for i, h, ctx in _ip_layers(unet("sd15")):
        sh[f"ip_adapter.{i}.to_k_ip.weight"] = ("F16", (h, ctx))
        sh[f"ip_adapter.{i}.to_v_ip.weight"] = ("F16", (h, ctx))
    return sh, None


@case("ip_adapter_faceid_sd15", "h94 ip-adapter-faceid_sd15: MLP projection of a 512-wide face embedding, to_k_ip/to_v_ip, and a rank-128 LoRA in every attention processor (to_q_lora … to_out_lora)")
def _i3b() -> tuple[Shapes, dict[str, str] | None]:
    u = unet("sd15")
    sh: Shapes = {"image_proj.proj.0.weight": ("F16", (1024, 512)), "image_proj.proj.0.bias": ("F16", (1024,)),
                  "image_proj.proj.2.weight": ("F16", (4 * 768, 1024)), "image_proj.proj.2.bias": ("F16", (4 * 768,)),
                  "image_proj.norm.weight": ("F16", (768,)), "image_proj.norm.bias": ("F16", (768,))}  # fmt: skip
    cross = {i for i, _, _ in _ip_layers(u)}
    for i, name in enumerate(u.attn_processors.keys()):
        mod = u.get_submodule(name[: -len(".processor")])
        h, kin = mod.to_q.out_features, mod.to_k.in_features
        for proj, width in (("to_q", h), ("to_k", kin), ("to_v", kin), ("to_out", h)):
            sh[f"ip_adapter.{i}.{proj}_lora.down.weight"] = ("F16", (128, width))
            sh[f"ip_adapter.{i}.{proj}_lora.up.weight"] = ("F16", (h, 128))
        if i in cross:
            sh[f"ip_adapter.{i}.to_k_ip.weight"] = ("F16", (h, kin))
            sh[f"ip_adapter.{i}.to_v_ip.weight"] = ("F16", (h, kin))
    return sh, None


@case("ip_adapter_flux_xlabs", "XLabs flux-ip-adapter: ip_adapter_proj_model + double_blocks.N.processor.ip_adapter_double_stream_k/v_proj")
def _i4() -> tuple[Shapes, dict[str, str] | None]:
    sh: Shapes = {"ip_adapter_proj_model.proj.weight": ("BF16", (4 * 4096, 768)),
                  "ip_adapter_proj_model.proj.bias": ("BF16", (4 * 4096,)),
                  "ip_adapter_proj_model.norm.weight": ("BF16", (4096,)),
                  "ip_adapter_proj_model.norm.bias": ("BF16", (4096,))}  # fmt: skip
    for i in range(19):
        for kv in "kv":
            sh[f"double_blocks.{i}.processor.ip_adapter_double_stream_{kv}_proj.weight"] = ("BF16", (3072, 4096))
            sh[f"double_blocks.{i}.processor.ip_adapter_double_stream_{kv}_proj.bias"] = ("BF16", (3072,))
    return sh, None


# -- textual inversion ---------------------------------------------------------------------------------------


@case("emb_sd15_a1111", "A1111 textual inversion saved as safetensors: emb_params [8, 768]")
def _e1() -> tuple[Shapes, dict[str, str] | None]:
    return {"emb_params": ("F32", (8, 768))}, None


@case("emb_sd15_textual_inversion_pt", "the tensors of an A1111 / textual_inversion .pt read from its pickle: string_to_param.* and the 0-dim string_to_token.*")
def _e1b() -> tuple[Shapes, dict[str, str] | None]:
    return {"string_to_token.*": ("I64", ()), "string_to_param.*": ("F32", (2, 768))}, None


@case("emb_sd2_a1111", "A1111 textual inversion for SD2: emb_params [4, 1024]")
def _e2() -> tuple[Shapes, dict[str, str] | None]:
    return {"emb_params": ("F32", (4, 1024))}, None


@case("emb_sdxl", "SDXL embedding (A1111/ComfyUI): clip_g [n, 1280] + clip_l [n, 768]")
def _e3() -> tuple[Shapes, dict[str, str] | None]:
    return {"clip_g": ("F32", (2, 1280)), "clip_l": ("F32", (2, 768))}, None


@case("emb_diffusers_sd15", "diffusers textual_inversion learned_embeds.safetensors: {'<cat-toy>': [768]}")
def _e4() -> tuple[Shapes, dict[str, str] | None]:
    return {"<cat-toy>": ("F32", (768,))}, None


@case("emb_diffusers_sdxl_te2", "diffusers SDXL textual inversion learned_embeds_2.safetensors: {'<s0>': [1, 1280]}")
def _e5() -> tuple[Shapes, dict[str, str] | None]:
    return {"<s0>": ("F32", (1, 1280))}, None


@case("emb_flux_pivotal", "diffusers advanced FLUX pivotal tuning *_emb.safetensors: clip_l [2, 768] + t5 [2, 4096]")
def _e6() -> tuple[Shapes, dict[str, str] | None]:
    return {"clip_l": ("F32", (2, 768)), "t5": ("F32", (2, 4096))}, None


# -- LoRA: SD1.5 / SD2 --------------------------------------------------------------------------------------

SD_UNET_LORA = r".*(attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2))))"
SD_UNET_LOCON = r".*((resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj))|downsamplers\.0\.conv|upsamplers\.0\.conv)"
CLIP_LORA = r".*encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2))"


def sd_lora(name: str, te_cfg: dict[str, Any] | None, targets: str = SD_UNET_LORA, te2: bool = False,
            rank: int = 8) -> dict[str, torch.Tensor]:  # fmt: skip
    sd = prefixed(peft_lora(unet(name), targets, rank), "unet.")
    if te_cfg is not None:
        sd |= prefixed(peft_lora(clip(te_cfg), CLIP_LORA, rank), "text_encoder.")
    if te2:
        sd |= prefixed(peft_lora(clip(CLIP_G, projection=True), CLIP_LORA, rank), "text_encoder_2.")
    return sd


@case("lora_sd15_kohya", "sd-scripts LoRA for SD1.5: lora_unet_ (diffusers block names) + lora_te_, lora_down/lora_up/alpha")
def _l1() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya(sd_lora("sd15", CLIP_L), te1="lora_te")
    md = {"ss_network_module": "networks.lora", "ss_network_dim": "8", "ss_network_alpha": "8",
          "ss_base_model_version": "sd_v1", "ss_v2": "False"}  # fmt: skip
    return tensors(k), md


@case("lora_sd15_locon_kohya", "LyCORIS LoCon for SD1.5: attention + resnet/sampler convolutions (3x3 lora_down)")
def _l2() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya(sd_lora("sd15", CLIP_L, targets=f"({SD_UNET_LORA})|({SD_UNET_LOCON})"), te1="lora_te")
    return tensors(k), {"ss_network_module": "lycoris.kohya", "ss_network_args": '{"algo": "locon", "conv_dim": "8"}'}


@case("lora_sd15_peft", "diffusers train_dreambooth_lora (PEFT): unet.*.to_q/k/v/out.0 + text_encoder.*, lora_A/lora_B")
def _l3() -> tuple[Shapes, dict[str, str] | None]:
    sd = prefixed(peft_lora(unet("sd15"), ["to_q", "to_k", "to_v", "to_out.0"]), "unet.")
    sd |= prefixed(peft_lora(clip(CLIP_L), ["q_proj", "k_proj", "v_proj", "out_proj"]), "text_encoder.")
    return tensors(sd), None


@case("lora_sd15_diffusers_dot_lora", "diffusers 0.2x LoRA: unet.*.to_q.lora.down.weight + text_encoder.*.q_proj.lora_linear_layer.down.weight")
def _l4() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers.utils.state_dict_utils import StateDictType, convert_state_dict_to_diffusers

    sd = prefixed(peft_lora(unet("sd15"), ["to_q", "to_k", "to_v", "to_out.0"]), "unet.")
    sd |= prefixed(peft_lora(clip(CLIP_L), ["q_proj", "k_proj", "v_proj", "out_proj"]), "text_encoder.")
    out = convert_state_dict_to_diffusers(sd, original_type=StateDictType.PEFT)
    return tensors(out), None


@case("lora_sd15_attn_procs", "diffusers <=0.17 save_attn_procs: down_blocks.*.attn1.processor.to_q_lora.down.weight (no prefix)")
def _l5() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers.utils.state_dict_utils import UNET_TO_DIFFUSERS

    sd = peft_lora(unet("sd15"), ["to_q", "to_k", "to_v", "to_out.0"])
    inv = {v: k for k, v in UNET_TO_DIFFUSERS.items() if "_lora." in k}
    out: dict[str, torch.Tensor] = {}
    for key, v in sd.items():
        for peft_part, old in inv.items():
            if peft_part in key:
                key = key.replace(peft_part, old)
                break
        key = re.sub(r"\.(attn[12])\.(to_(q|k|v|out)_lora)", r".\1.processor.\2", key)
        out[key] = v
    return tensors(out, "F32"), None


@case("lora_sd15_te_only_kohya", "a pruned SD1.5 LoRA that keeps only its text-encoder modules (lora_te_)")
def _l6() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya(prefixed(peft_lora(clip(CLIP_L), CLIP_LORA), "text_encoder."), te1="lora_te")
    return tensors(k), None


@case("lora_sd15_attn1_only_peft", "an SD1.5 LoRA on self-attention only (attn1.to_q/k/v/out): no cross-attention width")
def _l7() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(unet("sd15"), r".*attn1\.(to_q|to_k|to_v|to_out\.0)"), "unet.")), None


@case("lora_sd15_conv_only_kohya", "an SD1.5 LoCon pruned to its resnet convolutions only")
def _l8() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(kohya(prefixed(peft_lora(unet("sd15"), r".*resnets\.\d+\.(conv1|conv2)"), "unet."))), None


@case("lora_sd15_bundled_emb", "sd-scripts LoRA with a bundled embedding (bundle_emb.<name>.string_to_param.*)")
def _l9() -> tuple[Shapes, dict[str, str] | None]:
    k = tensors(kohya(sd_lora("sd15", CLIP_L), te1="lora_te"))
    k["bundle_emb.mychar.string_to_param.*"] = ("F32", (4, 768))
    return k, None


@case("lora_sd21_kohya", "sd-scripts LoRA for SD2.1 (linear proj_in, OpenCLIP-H text encoder 23 layers), ss_v2=True")
def _l10() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya(sd_lora("sd21", CLIP_H_SD2), te1="lora_te")
    return tensors(k), {"ss_v2": "True", "ss_base_model_version": "sd_v2"}


@case("lora_sd15_labelled_sdxl", "an SD1.5 kohya LoRA whose metadata claims SDXL (real trainers write wrong defaults)")
def _l11() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya(sd_lora("sd15", CLIP_L), te1="lora_te")
    return tensors(k), {"ss_base_model_version": "sdxl_base_v1-0", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}


# -- LoRA: SDXL ------------------------------------------------------------------------------------------------


def sgm_unet_tree(name: str) -> nn.Module:
    return module_tree(ldm_unet(unet(name)))


def check_sgm_kohya(k: dict[str, torch.Tensor], name: str) -> None:
    """diffusers maps sd-scripts' SGM block names back to its own; every lora_unet_ key must map."""
    from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers

    unet_keys = {kk: v for kk, v in k.items() if kk.startswith("lora_unet_")}
    mapped = _maybe_map_sgm_blocks_to_diffusers(dict(unet_keys), unet(name).config)
    if len(mapped) != len(unet_keys) or not all(re.search(r"_(attentions|resnets|upsamplers|downsamplers)_", kk) for kk in mapped):
        raise SystemExit("SGM kohya names did not map back to diffusers blocks")


@case("lora_sdxl_kohya_sgm", "sd-scripts SDXL LoRA: lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q (SGM names) + lora_te1_/lora_te2_")
def _x1() -> tuple[Shapes, dict[str, str] | None]:
    sd = peft_lora(sgm_unet_tree("sdxl"), r".*_blocks\.\d+\.1\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2)))|middle_block\.1\..*(to_q|to_k|to_v|to_out\.0|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2)")
    k = kohya_names(sd, "lora_unet_")
    check_sgm_kohya(k, "sdxl")
    k |= kohya(prefixed(peft_lora(clip(CLIP_L), CLIP_LORA), "text_encoder."))
    k |= kohya(prefixed(peft_lora(clip(CLIP_G, projection=True), CLIP_LORA), "text_encoder_2."))
    md = {"ss_base_model_version": "sdxl_base_v1-0", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
          "ss_network_module": "networks.lora"}  # fmt: skip
    return tensors(k), md


@case("lora_sdxl_kohya_diffusers_names", "SDXL kohya LoRA with diffusers block names and LoCon convolutions")
def _x2() -> tuple[Shapes, dict[str, str] | None]:
    sd = sd_lora("sdxl", CLIP_L, targets=f"({SD_UNET_LORA})|({SD_UNET_LOCON})", te2=True)
    return tensors(kohya(sd)), None


@case("lora_sdxl_peft", "diffusers train_dreambooth_lora_sdxl with text encoders: unet., text_encoder., text_encoder_2.")
def _x3() -> tuple[Shapes, dict[str, str] | None]:
    sd = prefixed(peft_lora(unet("sdxl"), ["to_q", "to_k", "to_v", "to_out.0"]), "unet.")
    sd |= prefixed(peft_lora(clip(CLIP_L), ["q_proj", "k_proj", "v_proj", "out_proj"]), "text_encoder.")
    sd |= prefixed(peft_lora(clip(CLIP_G, projection=True), ["q_proj", "k_proj", "v_proj", "out_proj"]), "text_encoder_2.")
    return tensors(sd), None


@case("lora_sdxl_peft_unet_only", "diffusers SDXL DreamBooth LoRA, UNet attention only (the script's default)")
def _x4() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(unet("sdxl"), ["to_q", "to_k", "to_v", "to_out.0"]), "unet.")), None


@case("lora_sdxl_blora", "B-LoRA (SDXL): only up_blocks.0.attentions.0 and .1")
def _x5() -> tuple[Shapes, dict[str, str] | None]:
    t = r"up_blocks\.0\.attentions\.[01]\..*(to_q|to_k|to_v|to_out\.0)"
    return tensors(prefixed(peft_lora(unet("sdxl"), t), "unet.")), None


@case("lora_sdxl_attn1_only_sgm", "an SDXL sd-scripts LoRA pruned to self-attention (attn1) in SGM names")
def _x6() -> tuple[Shapes, dict[str, str] | None]:
    sd = peft_lora(sgm_unet_tree("sdxl"), r".*transformer_blocks\.\d+\.attn1\.(to_q|to_k|to_v|to_out\.0)")
    return tensors(kohya_names(sd, "lora_unet_")), None


@case("lora_sdxl_te_only_peft", "an SDXL LoRA that adapts only the two text encoders (PEFT names)")
def _x7() -> tuple[Shapes, dict[str, str] | None]:
    sd = prefixed(peft_lora(clip(CLIP_L), ["q_proj", "k_proj", "v_proj", "out_proj"]), "text_encoder.")
    sd |= prefixed(peft_lora(clip(CLIP_G, projection=True), ["q_proj", "k_proj", "v_proj", "out_proj"]), "text_encoder_2.")
    return tensors(sd), None


@case("lora_sdxl_te1_only_peft", "an SDXL LoRA with only text_encoder. (CLIP-L) modules left")
def _x7b() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(clip(CLIP_L), ["q_proj", "k_proj", "v_proj", "out_proj"]), "text_encoder.")), None


@case("lora_sdxl_conv_only_kohya", "an SDXL LoCon pruned to resnet convolutions (diffusers names)")
def _x8() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(kohya(prefixed(peft_lora(unet("sdxl"), r".*resnets\.\d+\.(conv1|conv2)"), "unet."))), None


@case("lora_sdxl_refiner_kohya_sgm", "an SDXL refiner LoRA (SGM names, 384-channel UNet, 1280-wide context)")
def _x9() -> tuple[Shapes, dict[str, str] | None]:
    sd = peft_lora(sgm_unet_tree("sdxl_refiner"), r".*transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2))")
    return tensors(kohya_names(sd, "lora_unet_")), None


@case("lora_sdxl_peft_dora", "PEFT DoRA for SDXL: lora_A/lora_B + lora_magnitude_vector")
def _x10() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(unet("sdxl"), ["to_q", "to_k", "to_v", "to_out.0"], dora=True), "unet.")), None


@case("lora_sdxl_comfy_prefix", "a LoRA saved by ComfyUI for SDXL: diffusion_model.<SGM name>.lora_up/lora_down")
def _x11() -> tuple[Shapes, dict[str, str] | None]:
    sd = peft_lora(sgm_unet_tree("sdxl"), r".*transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0))")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        k = "diffusion_model." + k.replace(".lora_A.weight", ".lora_down.weight").replace(".lora_B.weight", ".lora_up.weight")
        out[k] = v
    return tensors(out), None


# -- LyCORIS ------------------------------------------------------------------------------------------------


def kohya_layers(model: nn.Module, pattern: str, prefix: str) -> dict[str, tuple[int, ...]]:
    """kohya module name → weight shape for the Linear / Conv2d layers of ``model`` matching ``pattern``."""
    out: dict[str, tuple[int, ...]] = {}
    rx = re.compile(pattern)
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear | nn.Conv2d) and rx.fullmatch(name):
            out[prefix + name.replace(".", "_")] = tuple(mod.weight.shape)
    return out


@case("lycoris_sdxl_loha", "LyCORIS LoHa for SDXL via sd-scripts (lora_unet_ SGM names, lora_te1_/lora_te2_), hada_w1_a/b, hada_w2_a/b")
def _y1() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(sgm_unet_tree("sdxl"), r".*transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2))", "lora_unet_")
    layers |= kohya_layers(clip(CLIP_L), CLIP_LORA, "lora_te1_")
    layers |= kohya_layers(clip(CLIP_G, projection=True), CLIP_LORA, "lora_te2_")
    md = {"ss_network_module": "lycoris.kohya", "ss_network_args": '{"algo": "loha", "conv_dim": "4"}'}
    return meta_shapes(lycoris(layers, "loha", rank=8)), md


@case("lycoris_sdxl_lokr", "LyCORIS LoKr for SDXL (factor 8, diffusers names): lokr_w1 full, lokr_w2_a/b")
def _y2() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sdxl"), SD_UNET_LORA, "lora_unet_")
    return meta_shapes(lycoris(layers, "lokr", rank=8, factor=8)), {"ss_network_module": "lycoris.kohya"}


@case("lycoris_sdxl_lokr_full", "LyCORIS LoKr full-matrix for SDXL (lokr_w1 + lokr_w2, factor -1)")
def _y3() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sdxl"), SD_UNET_LORA, "lora_unet_")
    return meta_shapes(lycoris(layers, "lokr", full_matrix=True)), None


@case("lycoris_sd15_lokr_conv_tucker", "LyCORIS LoKr for SD1.5 with convolutions, decompose_both and tucker (lokr_w1_a/b, lokr_t2)")
def _y4() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sd15"), f"({SD_UNET_LORA})|({SD_UNET_LOCON})", "lora_unet_")
    layers |= kohya_layers(clip(CLIP_L), CLIP_LORA, "lora_te_")
    return meta_shapes(lycoris(layers, "lokr", rank=4, factor=4, decompose_both=True, use_tucker=True)), None


@case("lycoris_sd15_loha_conv_tucker", "LyCORIS LoHa for SD1.5 with tucker convolutions (hada_t1/hada_t2)")
def _y5() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sd15"), f"({SD_UNET_LORA})|({SD_UNET_LOCON})", "lora_unet_")
    return meta_shapes(lycoris(layers, "loha", rank=4, use_tucker=True)), None


@case("lycoris_sdxl_dora_kohya", "LyCORIS LoCon with DoRA (weight decompose) for SDXL: lora_down/lora_up/dora_scale")
def _y6() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sdxl"), SD_UNET_LORA, "lora_unet_")
    return meta_shapes(lycoris(layers, "locon", rank=8, dora=True)), None


@case("lycoris_sd15_ia3", "LyCORIS (IA)^3 for SD1.5: <module>.weight [out] + on_input")
def _y7() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sd15"), r".*attn[12]\.(to_k|to_v)|.*ff\.net\.2", "lora_unet_")
    sh = meta_shapes(lycoris(layers, "ia3"))
    return {k: ("BOOL" if k.endswith(".on_input") else dt, s) for k, (dt, s) in sh.items()}, None


@case("lycoris_sd15_glora", "LyCORIS GLoRA for SD1.5: a1/a2/b1/b2")
def _y8() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sd15"), SD_UNET_LORA, "lora_unet_")
    return meta_shapes(lycoris(layers, "glora", rank=4)), None


@case("lycoris_sdxl_diag_oft", "LyCORIS diag-OFT for SDXL: oft_blocks [n, b, b]")
def _y9() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sdxl"), r".*attn[12]\.(to_q|to_k|to_v|to_out\.0)", "lora_unet_")
    return meta_shapes(lycoris(layers, "diag-oft", block_size=32)), None


@case("lycoris_sd15_boft", "LyCORIS BOFT for SD1.5: oft_blocks [m, n, b, b]")
def _y10() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sd15"), r".*attn[12]\.(to_q|to_k|to_v|to_out\.0)", "lora_unet_")
    return meta_shapes(lycoris(layers, "boft", block_size=8)), None


@case("lycoris_sd15_full", "LyCORIS full (native fine-tune diff) for SD1.5: diff + diff_b")
def _y11() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(unet("sd15"), SD_UNET_LORA, "lora_unet_")
    layers |= kohya_layers(clip(CLIP_L), CLIP_LORA, "lora_te_")
    return meta_shapes(lycoris(layers, "full")), None


@case("lycoris_flux_lokr_simpletuner", "SimpleTuner LyCORIS LoKr for FLUX.1: lycoris_<diffusers name with _>.lokr_w1/lokr_w2 (full matrix, factor 16)")
def _y12() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(flux(), r"(single_)?transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)|ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2)|proj_mlp|proj_out)", "lycoris_")
    return meta_shapes(lycoris(layers, "lokr", factor=16, full_matrix=True), "BF16"), None


@case("lycoris_flux_lokr_kohya", "sd-scripts/LyCORIS LoKr for FLUX.1 in BFL names: lora_unet_double_blocks_N_img_attn_qkv.lokr_*")
def _y13() -> tuple[Shapes, dict[str, str] | None]:
    layers = kohya_layers(module_tree(flux_bfl()), r"(double_blocks\.\d+\.(img|txt)_(attn\.(qkv|proj)|mlp\.[02]|mod\.lin)|single_blocks\.\d+\.(linear1|linear2|modulation\.lin))", "lora_unet_")
    return meta_shapes(lycoris(layers, "lokr", rank=16, factor=8), "BF16"), None


# -- LoRA: SD3 ------------------------------------------------------------------------------------------------

SD3_PEFT_FULL = ["attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out", "attn.to_k", "attn.to_out.0",
                 "attn.to_q", "attn.to_v"]  # fmt: skip


@case("lora_sd3_peft", "diffusers train_dreambooth_lora_sd3: transformer.transformer_blocks.N.attn.{to_*,add_*_proj,to_add_out}")
def _s1() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(sd3("3-medium"), SD3_PEFT_FULL), "transformer.")), None


@case("lora_sd3_peft_attn_only", "SD3 diffusers LoRA on the image stream's attention only (to_q/k/v/out.0)")
def _s2() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(sd3("3-medium"), ["attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0"]), "transformer.")), None


@case("lora_sd35_large_peft", "an SD3.5-large diffusers LoRA (2432 wide, 38 blocks)")
def _s3() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(sd3("3.5-large"), SD3_PEFT_FULL), "transformer.")), None


@case("lora_sd3_kohya", "sd-scripts SD3 LoRA: lora_unet_joint_blocks_N_{x,context}_block_* + lora_te1_/lora_te2_/lora_te3_")
def _s4() -> tuple[Shapes, dict[str, str] | None]:
    sd = peft_lora(module_tree(sgm_mmdit(sd3("3-medium"))), r"joint_blocks\.\d+\.(x|context)_block\.(attn\.(qkv|proj)|mlp\.fc[12]|adaLN_modulation\.1)")
    k = kohya_names(sd, "lora_unet_")
    k |= kohya(prefixed(peft_lora(clip(CLIP_L, projection=True), CLIP_LORA), "text_encoder."))
    k |= kohya(prefixed(peft_lora(clip(CLIP_G, projection=True), CLIP_LORA), "text_encoder_2."))
    k |= kohya_names(peft_lora(t5(), r"encoder\.block\.\d+\.layer\.\d+\.(SelfAttention\.[qkvo]|DenseReluDense\.(wi_0|wi_1|wo))"), "lora_te3_")
    return tensors(k), {"ss_base_model_version": "sd3", "modelspec.architecture": "stable-diffusion-v3-medium/lora"}


# -- LoRA: FLUX.1 ---------------------------------------------------------------------------------------------

FLUX_PEFT_FULL = r"(single_)?transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)|ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2)|norm1\.linear|norm1_context\.linear|norm\.linear|proj_mlp|proj_out)"
FLUX_BFL_LINEAR = r"(double_blocks\.\d+\.(img|txt)_(attn\.(qkv|proj)|mlp\.[02]|mod\.lin)|single_blocks\.\d+\.(linear1|linear2|modulation\.lin))"


def check_kohya_flux(k: dict[str, torch.Tensor]) -> None:
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

    # the converter reads values (alpha, a sparsity test), so it gets zero tensors of the same shapes
    real = {kk: (torch.tensor(16.0) if kk.endswith(".alpha") else torch.zeros(v.shape, dtype=torch.bfloat16))
            for kk, v in k.items()}  # fmt: skip
    out = _convert_kohya_flux_lora_to_diffusers(real)
    if not out or not all(x.startswith(("transformer.", "text_encoder.")) for x in out):
        raise SystemExit("diffusers did not accept the kohya FLUX names")


@case("lora_flux_aitoolkit_peft", "ai-toolkit FLUX.1 LoRA: transformer.(single_)transformer_blocks.* incl. norms, proj_mlp, proj_out")
def _f1() -> tuple[Shapes, dict[str, str] | None]:
    md = {"software": '{"name": "ai-toolkit", "repo": "https://github.com/ostris/ai-toolkit", "version": "0.1.0"}',
          "training_info": '{"step": 2000, "epoch": 20}', "format": "pt"}  # fmt: skip
    return tensors(prefixed(peft_lora(flux(), FLUX_PEFT_FULL, 16), "transformer."), "BF16"), md


@case("lora_flux_aitoolkit_labelled_sd15", "a FLUX.1 LoRA whose ss_base_model_version says sd_1.5 (a real trainer default)")
def _f1b() -> tuple[Shapes, dict[str, str] | None]:
    sd = prefixed(peft_lora(flux(), r"(single_)?transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)", 16), "transformer.")
    return tensors(sd, "BF16"), {"ss_base_model_version": "sd_1.5", "ss_output_name": "x"}


@case("lora_flux_peft_attn_only", "a FLUX.1 diffusers LoRA on attention only (to_q/k/v/out.0, double and single blocks)")
def _f2() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(flux(), r"(single_)?transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)"), "transformer."), "BF16"), None


@case("lora_flux_peft_single_blocks_7_20", "a FLUX.1 LoRA trained only on single blocks 7-20 (a common 'few blocks' recipe)")
def _f3() -> tuple[Shapes, dict[str, str] | None]:
    t = r"single_transformer_blocks\.([7-9]|1[0-9]|20)\.(attn\.(to_q|to_k|to_v)|proj_mlp|proj_out|norm\.linear)"
    return tensors(prefixed(peft_lora(flux(), t), "transformer."), "BF16"), None


@case("lora_flux_kohya", "sd-scripts FLUX.1 LoRA: lora_unet_double_blocks_N_img_attn_qkv ... single_blocks_N_linear1 + lora_te1_ (CLIP-L)")
def _f4() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya_names(peft_lora(module_tree(flux_bfl()), FLUX_BFL_LINEAR, 16), "lora_unet_")
    check_kohya_flux(k)
    k |= kohya(prefixed(peft_lora(clip(CLIP_L), CLIP_LORA, 16), "text_encoder."))
    md = {"ss_base_model_version": "flux1", "ss_network_module": "networks.lora_flux",
          "modelspec.architecture": "flux-1-dev/lora"}  # fmt: skip
    return tensors(k, "BF16"), md


@case("lora_flux_kohya_t5", "sd-scripts FLUX.1 LoRA that also trains T5-XXL (lora_te3_encoder_block_*)")
def _f5() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya_names(peft_lora(module_tree(flux_bfl()), FLUX_BFL_LINEAR, 4), "lora_unet_")
    k |= kohya(prefixed(peft_lora(clip(CLIP_L), CLIP_LORA, 4), "text_encoder."))
    k |= kohya_names(peft_lora(t5(), r"encoder\.block\.\d+\.layer\.\d+\.(SelfAttention\.[qkvo]|DenseReluDense\.(wi_0|wi_1|wo))", 4), "lora_te3_")
    return tensors(k, "BF16"), None


@case("lora_flux_kohya_double_blocks_only", "a pruned sd-scripts FLUX.1 LoRA: double_blocks 0-5 img_attn only")
def _f6() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya_names(peft_lora(module_tree(flux_bfl()), r"double_blocks\.[0-5]\.img_attn\.(qkv|proj)", 16), "lora_unet_")
    return tensors(k, "BF16"), None


@case("lora_flux_comfy_bfl_peft", "FLUX.1 LoRA in BFL names with lora_A/lora_B under diffusion_model. (ComfyUI / fal trainer)")
def _f7() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(module_tree(flux_bfl()), FLUX_BFL_LINEAR, 16), "diffusion_model."), "BF16"), None


@case("lora_flux_xlabs", "XLabs FLUX.1 LoRA: double_blocks.N.processor.{qkv,proj}_lora{1,2}.{down,up}.weight")
def _f8() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers.loaders.lora_conversion_utils import _convert_xlabs_flux_lora_to_diffusers

    r = 16
    sh: dict[str, torch.Tensor] = {}
    for i in range(19):
        for n in (1, 2):
            p = f"double_blocks.{i}.processor"
            sh[f"{p}.qkv_lora{n}.down.weight"] = meta(r, 3072)
            sh[f"{p}.qkv_lora{n}.up.weight"] = meta(3 * 3072, r)
            sh[f"{p}.proj_lora{n}.down.weight"] = meta(r, 3072)
            sh[f"{p}.proj_lora{n}.up.weight"] = meta(3072, r)
    conv = _convert_xlabs_flux_lora_to_diffusers(dict(sh))
    if len(conv) != 19 * (2 * 3 * 2 + 2 * 2):
        raise SystemExit(f"XLabs names not fully converted ({len(conv)})")
    return tensors(sh, "BF16"), None


@case("lora_flux_onetrainer", "OneTrainer FLUX.1 LoRA: lora_transformer_<diffusers name with _> + lora_te1_ ")
def _f9() -> tuple[Shapes, dict[str, str] | None]:
    k = kohya_names(peft_lora(flux(), FLUX_PEFT_FULL, 16), "lora_transformer_")
    k |= kohya(prefixed(peft_lora(clip(CLIP_L), CLIP_LORA, 16), "text_encoder."))
    return tensors(k, "BF16"), None


@case("lora_flux_bfl_control_canny", "BFL flux1-canny-dev-lora: every linear as lora_A/lora_B(+bias) incl. img_in 128 wide, plus full norm scales")
def _f10() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers.loaders.lora_conversion_utils import _convert_bfl_flux_control_lora_to_diffusers

    bfl = flux_bfl(in_channels=128, out_channels=64)
    sd = peft_lora(module_tree(bfl), r".*(qkv|proj|mlp\.[02]|lin|linear[12]|in_layer|out_layer|img_in|txt_in|final_layer\.linear|adaLN_modulation\.1)", 128)
    out = dict(sd)
    for k, v in list(sd.items()):
        if k.endswith(".lora_B.weight"):
            out[k[: -len(".weight")] + ".bias"] = meta(v.shape[0])
    out |= {k: v for k, v in bfl.items() if k.endswith(".scale")}
    _convert_bfl_flux_control_lora_to_diffusers(dict(out))
    return tensors(out, "BF16"), None


@case("lora_flux_chroma_labelled", "a FLUX.1-shaped attention LoRA whose metadata names Chroma (a FLUX.1-derived model)")
def _f11() -> tuple[Shapes, dict[str, str] | None]:
    sd = prefixed(peft_lora(flux(), r"(single_)?transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)", 16), "transformer.")
    return tensors(sd, "BF16"), {"modelspec.architecture": "chroma/lora", "ss_base_model_version": "chroma"}


# -- mixtures and oddities ----------------------------------------------------------------------------------


@case("lora_sd15_mixed_prefixes", "an SD1.5 LoRA merged by a script: kohya lora_unet_ keys beside PEFT unet./text_encoder. keys")
def _m1() -> tuple[Shapes, dict[str, str] | None]:
    a = kohya(prefixed(peft_lora(unet("sd15"), r"down_blocks\..*(to_q|to_k|to_v|to_out\.0)"), "unet."))
    b = prefixed(peft_lora(unet("sd15"), r"up_blocks\..*(to_q|to_k|to_v|to_out\.0)"), "unet.")
    b |= prefixed(peft_lora(clip(CLIP_L), ["q_proj", "v_proj"]), "text_encoder.")
    return tensors(a | b), None


@case("lora_sdxl_in_sd15_clothing", "an SDXL UNet LoRA paired with an SD1.5-width text encoder LoRA (a bad merge)")
def _m2() -> tuple[Shapes, dict[str, str] | None]:
    a = kohya(prefixed(peft_lora(unet("sdxl"), ["to_q", "to_k", "to_v", "to_out.0"]), "unet."))
    b = kohya(prefixed(peft_lora(clip(CLIP_H_SD2), CLIP_LORA), "text_encoder."), te1="lora_te")
    return tensors(a | b), None




# -- other families: diffusers transformers and their LoRAs -------------------------------------------------

OTHER: dict[str, tuple[str, dict[str, Any], str]] = {
    # name: (diffusers class, published config values, PEFT targets of a typical LoRA)
    "wan21_t2v_1.3b": ("WanTransformer3DModel", dict(num_attention_heads=12, ffn_dim=8960, num_layers=30),
                       r"blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)|blocks\.\d+\.ffn\.net\.(0\.proj|2)"),
    "wan21_i2v_14b": ("WanTransformer3DModel", dict(in_channels=36, image_dim=1280, added_kv_proj_dim=5120),
                      r"blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0|add_k_proj|add_v_proj)"),
    "qwen_image": ("QwenImageTransformer2DModel", {},
                   r"transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)|img_mlp\.net\.(0\.proj|2)|txt_mlp\.net\.(0\.proj|2))"),
    "qwen_image_attn_only": ("QwenImageTransformer2DModel", {}, r"transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)"),
    "hunyuan_video": ("HunyuanVideoTransformer3DModel", {},
                      r"(single_)?transformer_blocks\.\d+\.(attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)|ff\.net\.(0\.proj|2)|proj_mlp|proj_out)"),
    "ltx_video": ("LTXVideoTransformer3DModel", {}, r"transformer_blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)"),
    "lumina2": ("Lumina2Transformer2DModel", dict(cap_feat_dim=2304), r"layers\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)"),
    "auraflow": ("AuraFlowTransformer2DModel", {}, r".*attn\.(to_q|to_k|to_v|to_out\.0)"),
    "sana_1600m": ("SanaTransformer2DModel", {}, r"transformer_blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)"),
    "pixart_sigma": ("PixArtTransformer2DModel", dict(caption_channels=4096, use_additional_conditions=False),
                     r"transformer_blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)"),
    "chroma": ("ChromaTransformer2DModel", {}, r"(single_)?transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)"),
    "flux2_dev": ("Flux2Transformer2DModel", {}, r"(single_)?transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0|to_qkv_mlp_proj)"),
    "hidream_i1": ("HiDreamImageTransformer2DModel", dict(caption_channels=[4096, 4096], llama_layers=list(range(48)), patch_size=2),
                   r".*attn1\.(to_q|to_k|to_v|to_out)"),
    "z_image": ("ZImageTransformer2DModel", {}, r"layers\.\d+\.attention\.(to_q|to_k|to_v|to_out\.0)"),
    "mochi": ("MochiTransformer3DModel", {}, r"transformer_blocks\.\d+\.attn1\.(to_q|to_k|to_v|to_out\.0)"),
    "hunyuan_dit_1.2": ("HunyuanDiT2DModel", dict(hidden_size=1408, num_layers=40, attention_head_dim=88, num_attention_heads=16, in_channels=4, patch_size=2),
                        r"blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)"),
}  # fmt: skip


def other_model(name: str) -> nn.Module:
    import diffusers

    cls_name, cfg, _ = OTHER[name]
    with torch.device("meta"):
        return getattr(diffusers, cls_name)(**cfg)


def _other_cases() -> None:
    for name, (cls_name, cfg, targets) in OTHER.items():
        if not name.endswith("_attn_only"):

            def ckpt(name: str = name) -> tuple[Shapes, dict[str, str] | None]:
                return tensors(other_model(name).state_dict(), "BF16"), None

            CASES[f"other_{name}_diffusers"] = (f"{cls_name} transformer/ weights ({cfg or 'default config'})", ckpt)

        def lora(name: str = name, targets: str = targets) -> tuple[Shapes, dict[str, str] | None]:
            return tensors(prefixed(peft_lora(other_model(name), targets), "transformer."), "BF16"), None

        CASES[f"other_{name}_lora_peft"] = (f"diffusers/PEFT LoRA on {cls_name} ({targets})", lora)


_other_cases()


def wan_original(model: nn.Module) -> dict[str, torch.Tensor]:
    """Wan's own names (the Wan-AI repos, ComfyUI): the inverse of diffusers' Wan renaming table."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    ren = [("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
           ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
           ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
           ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
           ("condition_embedder.time_proj", "time_projection.1"),
           ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
           ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
           ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
           ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
           ("attn2", "cross_attn"), ("attn1", "self_attn"), (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."),
           (".to_v.", ".v."), (".add_k_proj.", ".k_img."), (".add_v_proj.", ".v_img."), (".norm_added_k.", ".norm_k_img."),
           ("proj_out", "head.head"), ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
           (".norm2.", ".norm3."), ("patch_embedding", "patch_embedding")]  # fmt: skip
    out: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        nk = k
        if nk == "scale_shift_table":
            nk = "head.modulation"
        elif nk.endswith(".scale_shift_table"):
            nk = nk.replace(".scale_shift_table", ".modulation")
        else:
            for a, b in ren:
                nk = nk.replace(a, b)
            nk = nk.replace(".norm_q.", ".norm_q.").replace(".norm_k.", ".norm_k.")
        out[nk] = v
    back = convert_wan_transformer_to_diffusers(dict(out))
    same(back, model.state_dict(), "Wan original names round trip")
    return out


@case("other_wan21_t2v_1.3b_original", "Wan2.1-T2V-1.3B in Wan's own names (blocks.N.self_attn.q, ffn.0, head.modulation)")
def _w1() -> tuple[Shapes, dict[str, str] | None]:
    sh = tensors(wan_original(other_model("wan21_t2v_1.3b")), "BF16")
    check_type(sh, "wan-t2v-1.3B")
    return sh, None


@case("other_wan21_lora_musubi", "musubi-tuner Wan LoRA: lora_unet_blocks_N_{self,cross}_attn_{q,k,v,o} + ffn")
def _w2() -> tuple[Shapes, dict[str, str] | None]:
    tree = module_tree(wan_original(other_model("wan21_t2v_1.3b")))
    sd = peft_lora(tree, r"blocks\.\d+\.((self|cross)_attn\.[qkvo]|ffn\.[02])", 16)
    return tensors(kohya_names(sd, "lora_unet_"), "BF16"), {"ss_base_model_version": "wan21"}


@case("other_wan21_lora_comfy", "Wan LoRA in Wan names with lora_A/lora_B under diffusion_model. (diffusion-pipe / ComfyUI)")
def _w3() -> tuple[Shapes, dict[str, str] | None]:
    tree = module_tree(wan_original(other_model("wan21_t2v_1.3b")))
    sd = peft_lora(tree, r"blocks\.\d+\.((self|cross)_attn\.[qkvo]|ffn\.[02])", 32)
    return tensors(prefixed(sd, "diffusion_model."), "BF16"), None


@case("other_kolors_unet", "Kolors UNet: SDXL-shaped with encoder_hid_proj from a 4096-wide ChatGLM context")
def _k1() -> tuple[Shapes, dict[str, str] | None]:
    u = unet("sdxl", encoder_hid_dim=4096, encoder_hid_dim_type="text_proj", projection_class_embeddings_input_dim=5632)
    return tensors(u.state_dict(), "F16"), None


@case("other_svd_unet", "stable-video-diffusion unet (UNetSpatioTemporalConditionModel)")
def _k2() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import UNetSpatioTemporalConditionModel

    with torch.device("meta"):
        u = UNetSpatioTemporalConditionModel()
    return tensors(u.state_dict(), "F16"), None


@case("other_animatediff_motion_v15", "AnimateDiff motion adapter for SD1.5 (diffusers MotionAdapter)")
def _k3() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import MotionAdapter

    with torch.device("meta"):
        m = MotionAdapter()
    return tensors(m.state_dict(), "F16"), None



# -- tiny autoencoders (madebyollin/taesd), A1111's VAE-approx, lora_diffusion lists, FLUX.2 Klein ----------

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


class TaeBlock(nn.Module):
    """taesd.py's residual block: conv 3x3 / ReLU / conv / ReLU / conv, a 1x1 skip when the width changes,
    and (TAEF2's mid-blocks) a GroupNorm bottleneck ``pool`` = 1x1 conv to 4x width, GroupNorm(4), ReLU, 1x1 back."""

    def __init__(self, n_in: int, n_out: int, gn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(n_in, n_out, 3, padding=1), nn.ReLU(), nn.Conv2d(n_out, n_out, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(n_out, n_out, 3, padding=1))  # fmt: skip
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        if gn:
            wide = 4 * n_in
            self.pool = nn.Sequential(nn.Conv2d(n_in, wide, 1, bias=False), nn.GroupNorm(4, wide), nn.ReLU(),
                                      nn.Conv2d(wide, n_in, 1, bias=False))  # fmt: skip


def tae_encoder(z: int, gn: bool = False, f32: bool = False) -> nn.Module:
    """TAESD encoder: (F32: two stride-2 convs 3 -> 32 -> 64, else one conv 3 -> 64) and a block, then three (F32:
    four) stages of [stride-2 conv without bias, 3 blocks], then a conv to ``z`` latent channels. TAEF2 puts its
    GroupNorm mid-blocks in the last stage."""
    layers: list[nn.Module] = (
        [nn.Conv2d(3, 32, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.ReLU(), TaeBlock(64, 64)]
        if f32 else [nn.Conv2d(3, 64, 3, padding=1), TaeBlock(64, 64)]
    )  # fmt: skip
    stages = 4 if f32 else 3
    for st in range(stages):
        layers.append(nn.Conv2d(64, 64, 3, padding=1, stride=2, bias=False))
        layers += [TaeBlock(64, 64, gn=gn and st == stages - 1) for _ in range(3)]
    layers.append(nn.Conv2d(64, z, 3, padding=1))
    return nn.Sequential(*[_meta(m) for m in layers])


def tae_decoder(z: int, gn: bool = False, f32: bool = False) -> nn.Module:
    """TAESD decoder: Clamp, conv ``z`` -> width, ReLU, then stages of [3 blocks, Upsample, conv without bias]
    (three stages of width 64; F32: widths 256, 128, 64, 64, 64), a block and a conv to 3 channels. TAEF2 puts its
    GroupNorm mid-blocks in the first stage."""
    widths = [256, 128, 64, 64, 64] if f32 else [64, 64, 64]
    layers: list[nn.Module] = [nn.Identity(), nn.Conv2d(z, widths[0], 3, padding=1), nn.ReLU()]
    for st, w in enumerate(widths):
        nxt = widths[st + 1] if st + 1 < len(widths) else 64
        layers += [TaeBlock(w, w, gn=gn and st == 0) for _ in range(3)]
        layers += [nn.Upsample(scale_factor=2), nn.Conv2d(w, nxt, 3, padding=1, bias=False)]
    layers += [TaeBlock(64, 64), nn.Conv2d(64, 3, 3, padding=1)]
    return nn.Sequential(*[_meta(m) for m in layers])


def _meta(m: nn.Module) -> nn.Module:
    return m.to("meta")


def real_torch_file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a real torch file, read symbolically (never unpickled)."""
    from registry.files.pickles import scan_file

    rec = scan_file(path).recovery
    if rec is None:
        raise SystemExit(f"{path}: no tensors recovered")
    return {t.name: tuple(t.shape) for t in rec.tensors}


def _tae_cases() -> None:
    variants = {
        "taesd": (4, False, False), "taef1": (16, False, False), "taef2": (32, True, False), "taesana": (32, False, True),
    }  # fmt: skip
    for name, (z, gn, f32) in variants.items():
        for part, build in (("encoder", tae_encoder), ("decoder", tae_decoder)):

            def fn(z: int = z, gn: bool = gn, f32: bool = f32, build: Callable[..., nn.Module] = build,
                   name: str = name, part: str = part) -> tuple[Shapes, dict[str, str] | None]:  # fmt: skip
                sh = tensors(build(z, gn=gn, f32=f32).state_dict(), "F16")
                real = CORPUS / "models" / f"{name}_{part}.pth"
                if real.exists():  # the builder must give exactly the published file's names and shapes
                    same(sh, meta_shapes(real_torch_file_shapes(real)), f"{name}_{part} built vs {real.name}")
                    print(f"  {name}_{part}: same names and shapes as {real.name}")
                return sh, None

            CASES[f"vae_{name}_{part}"] = (f"{name}_{part}.pth layout: madebyollin/taesd {part}, {z} latent channels"
                                           + (", GroupNorm mid-blocks" if gn else "") + (", F32 (32x)" if f32 else ""), fn)  # fmt: skip


_tae_cases()


@case("vae_taesd_diffusers_autoencoder_tiny", "diffusers AutoencoderTiny (default config: TAESD), encoder and decoder in one file")
def _t1() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import AutoencoderTiny

    with torch.device("meta"):
        return tensors(AutoencoderTiny().state_dict(), "F16"), None


@case("vae_taef1_diffusers_autoencoder_tiny", "diffusers AutoencoderTiny(latent_channels=16) (madebyollin/taef1's diffusers weights)")
def _t2() -> tuple[Shapes, dict[str, str] | None]:
    from diffusers import AutoencoderTiny

    with torch.device("meta"):
        return tensors(AutoencoderTiny(latent_channels=16).state_dict(), "F16"), None


class VAEApproxLayout(nn.Module):
    """A1111 modules/sd_vae_approx.py VAEApprox: conv1..conv8, latent -> 8 -> 16 -> 32 -> 64 -> 32 -> 16 -> 8 -> 3."""

    def __init__(self, z: int) -> None:
        super().__init__()
        chans = [z, 8, 16, 32, 64, 32, 16, 8, 3]
        for i in range(8):
            k = 7 if i == 0 else (5 if i == 1 else 3)
            self.add_module(f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], k))


@case("vae_approx_a1111_sd", "A1111 VAE-approx/model.pt (VAEApprox, 4 latent channels)")
def _t3() -> tuple[Shapes, dict[str, str] | None]:
    with torch.device("meta"):
        return tensors(VAEApproxLayout(4).state_dict(), "F32"), None


@case("vae_approx_a1111_sd3", "A1111 VAE-approx/vaeapprox-sd3.pt (VAEApprox, 16 latent channels)")
def _t4() -> tuple[Shapes, dict[str, str] | None]:
    with torch.device("meta"):
        return tensors(VAEApproxLayout(16).state_dict(), "F16"), None


def lora_diffusion_list(model: nn.Module, classes: set[str], rank: int = 4) -> Shapes:
    """cloneofsimo/lora's ``save_lora_weight``: for every nn.Linear inside a module of one of ``classes`` (its
    ``inject_trainable_lora`` defaults: UNet CrossAttention/Attention/GEGLU, text encoder CLIPAttention), in
    ``named_modules`` order, the up weight [out, r] then the down weight [r, in], saved as a plain list."""
    out: Shapes = {}
    seen: set[int] = set()
    for _, anc in model.named_modules():
        if type(anc).__name__ not in classes:
            continue
        for _, child in anc.named_modules():
            if isinstance(child, nn.Linear) and id(child) not in seen:
                seen.add(id(child))
                out[str(len(out))] = ("F32", (child.out_features, rank))
                out[str(len(out))] = ("F32", (rank, child.in_features))
    return out


@case("lora_sd15_lora_diffusion_list_pt", "lora_diffusion .pt: plain list of up/down tensors on an SD1.5 UNet (Attention + GEGLU)")
def _ld1() -> tuple[Shapes, dict[str, str] | None]:
    return lora_diffusion_list(unet("sd15"), {"Attention", "CrossAttention", "GEGLU"}), None


@case("lora_sd15_lora_diffusion_list_text_encoder_pt", "lora_diffusion .text_encoder.pt: plain list on CLIP-L's CLIPAttention")
def _ld2() -> tuple[Shapes, dict[str, str] | None]:
    return lora_diffusion_list(clip(CLIP_L), {"CLIPAttention", "CLIPSdpaAttention"}), None


@case("lora_sd21_lora_diffusion_list_pt", "lora_diffusion .pt: plain list of up/down tensors on an SD2.1 UNet's attention "
      "(CrossAttention only, as the published lora_illust.pt)")
def _ld3() -> tuple[Shapes, dict[str, str] | None]:
    sh = lora_diffusion_list(unet("sd21"), {"Attention", "CrossAttention"})
    real = CORPUS / "loras" / "lora_illust.pt"
    if real.exists():  # the builder must give the published file's list exactly
        same(sh, meta_shapes(real_torch_file_shapes(real)), f"lora_diffusion SD2.1 list vs {real.name}")
        print(f"  same list of shapes as {real.name}")
    return sh, None


FLUX2_CFG = {
    # InvokeAI's FLUX.2 presets and diffusers' Flux2Transformer2DModel defaults (dev)
    "klein_4b": dict(num_layers=5, num_single_layers=20, num_attention_heads=24, joint_attention_dim=7680, guidance_embeds=False),
    "klein_9b": dict(num_layers=8, num_single_layers=24, num_attention_heads=32, joint_attention_dim=12288, guidance_embeds=False),
    "dev": {},
}  # fmt: skip


def flux2(variant: str) -> nn.Module:
    from diffusers import Flux2Transformer2DModel

    with torch.device("meta"):
        return Flux2Transformer2DModel(**FLUX2_CFG[variant])


_F2_REN = {"x_embedder": "img_in", "context_embedder": "txt_in",
           "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
           "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
           "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
           "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
           "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
           "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
           "single_stream_modulation.linear": "single_stream_modulation.lin",
           "proj_out": "final_layer.linear", "norm_out.linear": "final_layer.adaLN_modulation.1"}  # fmt: skip
_F2_DOUBLE = {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
              "attn.to_out.0": "img_attn.proj", "ff.linear_in": "img_mlp.0", "ff.linear_out": "img_mlp.2",
              "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm",
              "attn.to_add_out": "txt_attn.proj", "ff_context.linear_in": "txt_mlp.0", "ff_context.linear_out": "txt_mlp.2"}  # fmt: skip
_F2_SINGLE = {"attn.to_qkv_mlp_proj": "linear1", "attn.to_out": "linear2", "attn.norm_q": "norm.query_norm",
              "attn.norm_k": "norm.key_norm"}  # fmt: skip


def bfl_flux2(model: nn.Module) -> dict[str, torch.Tensor]:
    """FLUX.2 in BFL's own names (double_blocks.N.img_attn.qkv …): the inverse of diffusers'
    ``convert_flux2_transformer_checkpoint_to_diffusers``, checked by running that converter on the result."""
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    sd = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        base, _, param = k.rpartition(".")
        if base in _F2_REN:
            out[f"{_F2_REN[base]}.{param}"] = v
            continue
        parts = base.split(".")
        i, rest = parts[1], ".".join(parts[2:])
        if parts[0] == "transformer_blocks":
            if rest in ("attn.to_q", "attn.to_k", "attn.to_v", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"):
                tgt = "img_attn.qkv" if rest.startswith("attn.to_") else "txt_attn.qkv"
                out[f"double_blocks.{i}.{tgt}.weight"] = meta(3 * v.shape[0], v.shape[1])
                continue
            nm = _F2_DOUBLE[rest]
        elif parts[0] == "single_transformer_blocks":
            nm = _F2_SINGLE[rest]
            i = parts[1]
            out[f"single_blocks.{i}.{nm}.{'scale' if 'norm' in nm else param}"] = v
            continue
        else:
            raise SystemExit(f"FLUX.2 BFL names: no rule for {k}")
        out[f"double_blocks.{i}.{nm}.{'scale' if 'norm' in nm else param}"] = v
    same(convert_flux2_transformer_checkpoint_to_diffusers(dict(out)), sd, "FLUX.2 BFL names round trip")
    return out


_F2_TARGETS = r"(single_)?transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0|to_qkv_mlp_proj)"


@case("lora_flux2_klein_4b_peft", "diffusers/PEFT LoRA on FLUX.2 [klein] 4B (Flux2Transformer2DModel, InvokeAI's Klein4B preset)")
def _f2a() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(flux2("klein_4b"), _F2_TARGETS), "transformer."), "BF16"), None


@case("lora_flux2_klein_9b_peft", "diffusers/PEFT LoRA on FLUX.2 [klein] 9B (Flux2Transformer2DModel, InvokeAI's Klein9B preset)")
def _f2b() -> tuple[Shapes, dict[str, str] | None]:
    return tensors(prefixed(peft_lora(flux2("klein_9b"), _F2_TARGETS), "transformer."), "BF16"), None


@case("lora_flux2_klein_4b_kohya_bfl", "kohya-style LoRA on FLUX.2 [klein] 4B in BFL names (lora_unet_double_blocks_N_img_attn_proj …)")
def _f2c() -> tuple[Shapes, dict[str, str] | None]:
    tree = module_tree(bfl_flux2(flux2("klein_4b")))
    sd = peft_lora(tree, r"(double_blocks\.\d+\.(img|txt)_(attn\.(qkv|proj)|mlp\.[02])|single_blocks\.\d+\.linear[12])", 16)
    return tensors(kohya_names(sd, "lora_unet_"), "BF16"), None


@case("lora_flux2_klein_9b_comfy_bfl", "LoRA on FLUX.2 [klein] 9B in BFL names with lora_A/lora_B under diffusion_model. (ComfyUI / ai-toolkit)")
def _f2d() -> tuple[Shapes, dict[str, str] | None]:
    tree = module_tree(bfl_flux2(flux2("klein_9b")))
    sd = peft_lora(tree, r"(double_blocks\.\d+\.img_(attn\.(qkv|proj)|mlp\.[02])|single_blocks\.\d+\.linear[12])", 16)
    return tensors(prefixed(sd, "diffusion_model."), "BF16"), None


@case("lora_flux2_dev_kohya_bfl", "kohya-style LoRA on FLUX.2 [dev] in BFL names, attention only")
def _f2e() -> tuple[Shapes, dict[str, str] | None]:
    tree = module_tree(bfl_flux2(flux2("dev")))
    sd = peft_lora(tree, r"(double_blocks\.\d+\.(img|txt)_attn\.(qkv|proj)|single_blocks\.\d+\.linear[12])", 16)
    return tensors(kohya_names(sd, "lora_unet_"), "BF16"), None


def main(argv: Iterable[str]) -> None:
    want = set(argv)
    total = 0
    for name, (how, fn) in CASES.items():
        if want and name not in want:
            continue
        sh, md = fn()
        size = write(name, how, sh, md)
        total += size
        print(f"{name:45s} {len(sh):6d} tensors {size:8d} bytes")
    print(f"total {total} bytes in {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
