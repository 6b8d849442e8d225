"""Identification on the tensor names and shapes of real model files.

``tests/data/identify/*.json.gz`` hold the names, dtypes and shapes of real layouts, generated once by
``scripts/gen_identify_fixtures.py`` from the real architectures (diffusers / transformers / open_clip models
built on torch's meta device from their published configs, single-file names checked against diffusers' own
converters, adapters made by PEFT and renamed by diffusers' and the trainers' conventions). The answers below
are the judgement of what each file is; "unknown" rows are files whose shapes do not decide.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.files.safetensors import read_header
from registry.identify import Identity, identify, identify_header
from tests import archspecs as A

DATA = Path(__file__).parent / "data" / "identify"


def load(case: str) -> dict[str, Any]:
    with gzip.open(DATA / f"{case}.json.gz") as f:
        doc: dict[str, Any] = json.loads(f.read())
    return doc


def pairs(doc: dict[str, Any]) -> list[tuple[str, list[int]]]:
    return [(n, s) for n, _, s in doc["tensors"]]


def row(ident: Identity, findings: list[Any]) -> tuple[Any, ...]:
    return (
        ident.kind,
        ident.adapter_type,
        ident.key_style,
        ident.arch,
        ident.arch_variant,
        ident.confidence,
        "+".join(ident.components) or None,
        "+".join(ident.arch_candidates) or None,
        "+".join(sorted(f.rule_id.split(".")[-1] for f in findings)) or None,
    )


# case: (kind, adapter_type, key_style, arch, variant, confidence, components, candidates, findings)
EXPECTED: dict[str, tuple[Any, ...]] = {
    'ckpt_flux1_depth_bfl': ('checkpoint', None, 'bfl', 'flux1', 'dev-canny-depth', 'high', 'transformer', None, None),
    'ckpt_flux1_dev_bfl': ('checkpoint', None, 'bfl', 'flux1', 'dev', 'high', 'transformer', None, None),
    'ckpt_flux1_dev_fp8_comfy_aio': ('checkpoint', None, 'ldm', 'flux1', 'dev', 'high', 'transformer+te1+te3+vae', None, None),
    'ckpt_flux1_dev_fp8_scaled': ('checkpoint', None, 'ldm', 'flux1', 'dev', 'high', 'transformer', None, None),
    'ckpt_flux1_fill_bfl': ('checkpoint', None, 'bfl', 'flux1', 'dev-fill', 'high', 'transformer', None, None),
    'ckpt_flux1_schnell_bfl': ('checkpoint', None, 'bfl', 'flux1', 'schnell', 'high', 'transformer', None, None),
    'ckpt_sd15_full_ema': ('checkpoint', None, 'ldm', 'sd1', None, 'high', 'unet+te1+vae', None, None),
    'ckpt_sd15_inpainting': ('checkpoint', None, 'ldm', 'sd1', 'inpaint', 'high', 'unet+te1+vae', None, None),
    'ckpt_sd15_instruct_pix2pix': ('checkpoint', None, 'ldm', 'sd1', 'instruct-pix2pix', 'high', 'unet+te1+vae', None, None),
    'ckpt_sd15_pruned_emaonly': ('checkpoint', None, 'ldm', 'sd1', None, 'high', 'unet+te1+vae', None, None),
    'ckpt_sd21_768v': ('checkpoint', None, 'ldm', 'sd2', None, 'high', 'unet+te1+vae', None, None),
    'ckpt_sd2_inpainting': ('checkpoint', None, 'ldm', 'sd2', 'inpaint', 'high', 'unet+te1+vae', None, None),
    'ckpt_sd35_large': ('checkpoint', None, 'ldm', 'sd3', '3.5-large', 'high', 'transformer+vae', None, None),
    'ckpt_sd35_medium': ('checkpoint', None, 'ldm', 'sd3', '3.5-medium', 'high', 'transformer+vae', None, None),
    'ckpt_sd3_medium_incl_clips_t5': ('checkpoint', None, 'ldm', 'sd3', '3-medium', 'high', 'transformer+te1+te2+te3+vae', None, None),
    'ckpt_playground_v25': ('checkpoint', None, 'sgm', 'sdxl-base', 'playground-v2.5', 'high', 'unet+te1+te2+vae', None, None),
    'ckpt_sdxl_vpred_ztsnr': ('checkpoint', None, 'sgm', 'sdxl-base', 'v-pred-ztsnr', 'high', 'unet+te1+te2+vae', None, None),
    'emb_sd15_textual_inversion_pt': ('embedding', None, 'a1111-embedding', 'sd1', None, 'high', 'te1', None, None),
    'ckpt_sdxl_base': ('checkpoint', None, 'sgm', 'sdxl-base', None, 'high', 'unet+te1+te2+vae', None, None),
    'ckpt_sdxl_inpainting': ('checkpoint', None, 'sgm', 'sdxl-base', 'inpaint', 'high', 'unet+te1+te2+vae', None, None),
    'ckpt_sdxl_pony_merge': ('checkpoint', None, 'sgm', 'sdxl-base', None, 'high', 'unet+te1+te2+vae', None, None),
    'ckpt_sdxl_refiner': ('checkpoint', None, 'sgm', 'sdxl-refiner', None, 'high', 'unet+te2+vae', None, None),
    'control_lora_sdxl_sai': ('controlnet', 'control-lora', 'ldm', 'sdxl-base', None, 'high', 'unet', None, None),
    'controlnet_flux_diffusers': ('controlnet', None, 'diffusers', 'flux1', 'dev', 'high', None, None, None),
    'controlnet_sd15_diffusers': ('controlnet', None, 'diffusers', 'sd1', None, 'high', None, None, None),
    'controlnet_sd15_ldm': ('controlnet', None, 'ldm', 'sd1', None, 'high', None, None, None),
    'controlnet_sd15_ldm_prefixed': ('controlnet', None, 'ldm', 'sd1', None, 'high', None, None, None),
    'controlnet_sdxl_diffusers': ('controlnet', None, 'diffusers', 'sdxl-base', None, 'high', None, None, None),
    'emb_diffusers_sd15': ('embedding', None, 'diffusers-embedding', 'sd1', None, 'medium', 'te1', None, None),
    'emb_diffusers_sdxl_te2': ('embedding', None, 'diffusers-embedding', 'unknown', None, 'none', 'te2', 'sdxl-base+sdxl-refiner+sd3', None),
    'emb_flux_pivotal': ('embedding', None, 'te-keyed-embedding', 'flux1', None, 'medium', 'te1+te3', None, None),
    'emb_sd15_a1111': ('embedding', None, 'a1111-embedding', 'sd1', None, 'high', 'te1', None, None),
    'emb_sd2_a1111': ('embedding', None, 'a1111-embedding', 'sd2', None, 'high', 'te1', None, None),
    'emb_sdxl': ('embedding', None, 'sdxl-embedding', 'sdxl-base', None, 'high', 'te1+te2', None, None),
    'ip_adapter_faceid_sd15': ('ip_adapter', None, 'bare', 'sd1', None, 'medium', None, None, None),
    'ip_adapter_flux_xlabs': ('ip_adapter', None, 'bare', 'flux1', None, 'medium', None, None, None),
    'ip_adapter_plus_sd15': ('ip_adapter', None, 'bare', 'sd1', None, 'medium', None, None, None),
    'ip_adapter_sd15': ('ip_adapter', None, 'bare', 'sd1', None, 'medium', None, None, None),
    'ip_adapter_sdxl': ('ip_adapter', None, 'bare', 'sdxl-base', None, 'medium', None, None, None),
    'lora_flux_aitoolkit_labelled_sd15': ('lora', 'peft-lora', 'diffusers', 'flux1', None, 'medium', 'transformer', None, 'metadata-arch-mismatch'),
    'lora_flux_aitoolkit_peft': ('lora', 'peft-lora', 'diffusers', 'flux1', None, 'high', 'transformer', None, None),
    'lora_flux_bfl_control_canny': ('lora', 'peft-lora', 'bfl', 'flux1', 'dev', 'high', 'transformer', None, None),
    'lora_flux_chroma_labelled': ('lora', 'peft-lora', 'diffusers', 'other:chroma', None, 'medium', 'transformer', None, None),
    'lora_flux_comfy_bfl_peft': ('lora', 'peft-lora', 'comfy', 'flux1', None, 'high', 'transformer', None, None),
    'lora_flux_kohya': ('lora', 'kohya-lora', 'kohya', 'flux1', None, 'high', 'transformer+te1', None, None),
    'lora_flux_kohya_double_blocks_only': ('lora', 'kohya-lora', 'kohya', 'flux1', None, 'medium', 'transformer', None, None),
    'lora_flux_kohya_t5': ('lora', 'kohya-lora', 'kohya', 'flux1', None, 'high', 'transformer+te1+te3', None, None),
    'lora_flux_onetrainer': ('lora', 'kohya-lora', 'kohya', 'flux1', None, 'high', 'transformer+te1', None, None),
    'lora_flux_peft_attn_only': ('lora', 'peft-lora', 'diffusers', 'flux1', None, 'medium', 'transformer', None, None),
    'lora_flux_peft_single_blocks_7_20': ('lora', 'peft-lora', 'diffusers', 'flux1', None, 'medium', 'transformer', None, None),
    'lora_flux_xlabs': ('lora', 'xlabs-lora', 'xlabs', 'flux1', None, 'medium', 'transformer', None, None),
    'lora_sd15_attn1_only_peft': ('lora', 'peft-lora', 'diffusers', 'unknown', None, 'none', 'unet', 'sd1+sd2', None),
    'lora_sd15_attn_procs': ('lora', 'diffusers-old-lora', 'diffusers', 'sd1', None, 'high', 'unet', None, None),
    'lora_sd15_bundled_emb': ('lora', 'kohya-lora', 'kohya', 'sd1', None, 'high', 'unet+te1', None, None),
    'lora_sd15_conv_only_kohya': ('lora', 'kohya-lora', 'kohya', 'unknown', None, 'none', 'unet', 'sd1+sd2', None),
    'lora_sd15_diffusers_dot_lora': ('lora', 'diffusers-old-lora', 'diffusers', 'sd1', None, 'high', 'unet+te1', None, None),
    'lora_sd15_kohya': ('lora', 'kohya-lora', 'kohya', 'sd1', None, 'high', 'unet+te1', None, None),
    'lora_sd15_labelled_sdxl': ('lora', 'kohya-lora', 'kohya', 'sd1', None, 'high', 'unet+te1', None, 'metadata-arch-mismatch+metadata-arch-mismatch'),
    'lora_sd15_locon_kohya': ('lora', 'kohya-lora', 'kohya', 'sd1', None, 'high', 'unet+te1', None, None),
    'lora_sd15_mixed_prefixes': ('lora', 'peft-lora', 'diffusers', 'sd1', None, 'high', 'unet+te1', None, None),
    'lora_sd15_peft': ('lora', 'peft-lora', 'diffusers', 'sd1', None, 'high', 'unet+te1', None, None),
    'lora_sd15_te_only_kohya': ('lora', 'kohya-lora', 'kohya', 'sd1', None, 'medium', 'te1', None, None),
    'lora_sd21_kohya': ('lora', 'kohya-lora', 'kohya', 'sd2', None, 'high', 'unet+te1', None, None),
    'lora_sd35_large_peft': ('lora', 'peft-lora', 'diffusers', 'sd3', '3.5-large', 'high', 'transformer', None, None),
    'lora_sd3_kohya': ('lora', 'kohya-lora', 'kohya', 'sd3', None, 'high', 'transformer+te1+te2+te3', None, None),
    'lora_sd3_peft': ('lora', 'peft-lora', 'diffusers', 'sd3', None, 'high', 'transformer', None, None),
    'lora_sd3_peft_attn_only': ('lora', 'peft-lora', 'diffusers', 'sd3', None, 'medium', 'transformer', None, None),
    'lora_sdxl_attn1_only_sgm': ('lora', 'kohya-lora', 'kohya', 'sdxl-base', None, 'medium', 'unet', None, None),
    'lora_sdxl_blora': ('lora', 'peft-lora', 'diffusers', 'sdxl-base', None, 'high', 'unet', None, None),
    'lora_sdxl_comfy_prefix': ('lora', 'kohya-lora', 'comfy', 'sdxl-base', None, 'high', 'unet', None, None),
    'lora_sdxl_conv_only_kohya': ('lora', 'kohya-lora', 'kohya', 'unknown', None, 'none', 'unet', 'sd1+sd2+sdxl-base', None),
    'lora_sdxl_in_sd15_clothing': ('lora', 'kohya-lora', 'kohya', 'sdxl-base', None, 'medium', 'unet+te1', None, 'conflicting-evidence'),
    'lora_sdxl_kohya_diffusers_names': ('lora', 'kohya-lora', 'kohya', 'sdxl-base', None, 'high', 'unet+te1+te2', None, None),
    'lora_sdxl_kohya_sgm': ('lora', 'kohya-lora', 'kohya', 'sdxl-base', None, 'high', 'unet+te1+te2', None, None),
    'lora_sdxl_peft': ('lora', 'peft-lora', 'diffusers', 'sdxl-base', None, 'high', 'unet+te1+te2', None, None),
    'lora_sdxl_peft_dora': ('lycoris', 'dora', 'diffusers', 'sdxl-base', None, 'high', 'unet', None, None),
    'lora_sdxl_peft_unet_only': ('lora', 'peft-lora', 'diffusers', 'sdxl-base', None, 'high', 'unet', None, None),
    'lora_sdxl_refiner_kohya_sgm': ('lora', 'kohya-lora', 'kohya', 'sdxl-refiner', None, 'high', 'unet', None, None),
    'lora_sdxl_te1_only_peft': ('lora', 'peft-lora', 'diffusers', 'unknown', None, 'none', 'te1', 'sd1+sdxl-base+sd3+flux1+other:hunyuan-video', None),
    'lora_sdxl_te_only_peft': ('lora', 'peft-lora', 'diffusers', 'unknown', None, 'none', 'te1+te2', 'sdxl-base+sd3', None),
    'lycoris_flux_lokr_kohya': ('lycoris', 'lokr', 'kohya', 'flux1', None, 'high', 'transformer', None, None),
    'lycoris_flux_lokr_simpletuner': ('lycoris', 'lokr', 'kohya', 'flux1', None, 'high', 'transformer', None, None),
    'lycoris_sd15_boft': ('lycoris', 'boft', 'kohya', 'unknown', None, 'none', 'unet', 'sd1+sd2', None),
    'lycoris_sd15_full': ('lycoris', 'full-diff', 'kohya', 'sd1', None, 'high', 'unet+te1', None, None),
    'lycoris_sd15_glora': ('lycoris', 'glora', 'kohya', 'sd1', None, 'high', 'unet', None, None),
    'lycoris_sd15_ia3': ('lycoris', 'ia3', 'kohya', 'unknown', None, 'none', 'unet', 'sd1+sd2', None),
    'lycoris_sd15_loha_conv_tucker': ('lycoris', 'loha', 'kohya', 'sd1', None, 'high', 'unet', None, None),
    'lycoris_sd15_lokr_conv_tucker': ('lycoris', 'lokr', 'kohya', 'sd1', None, 'high', 'unet+te1', None, None),
    'lycoris_sdxl_diag_oft': ('lycoris', 'oft', 'kohya', 'sdxl-base', None, 'medium', 'unet', None, None),
    'lycoris_sdxl_dora_kohya': ('lycoris', 'dora', 'kohya', 'sdxl-base', None, 'high', 'unet', None, None),
    'lycoris_sdxl_loha': ('lycoris', 'loha', 'kohya', 'sdxl-base', None, 'high', 'unet+te1+te2', None, None),
    'lycoris_sdxl_lokr': ('lycoris', 'lokr', 'kohya', 'sdxl-base', None, 'high', 'unet', None, None),
    'lycoris_sdxl_lokr_full': ('lycoris', 'lokr', 'kohya', 'sdxl-base', None, 'high', 'unet', None, None),
    'other_animatediff_motion_v15': ('motion_module', None, 'diffusers', 'sd1', None, 'medium', 'unet', None, None),
    'other_auraflow_diffusers': ('checkpoint', None, 'diffusers', 'other:auraflow', None, 'high', 'transformer', None, None),
    'other_auraflow_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:auraflow', None, 'high', 'transformer', None, None),
    'other_chroma_diffusers': ('checkpoint', None, 'diffusers', 'other:chroma', None, 'high', 'transformer', None, None),
    'other_chroma_lora_peft': ('lora', 'peft-lora', 'diffusers', 'flux1', None, 'medium', 'transformer', None, None),
    'other_flux2_dev_diffusers': ('checkpoint', None, 'diffusers', 'other:flux2', 'dev', 'high', 'transformer', None, None),
    'other_flux2_dev_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:flux2', 'dev', 'high', 'transformer', None, None),
    'other_hidream_i1_diffusers': ('checkpoint', None, 'bare', 'other:hidream', None, 'high', 'transformer', None, None),
    'other_hidream_i1_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:hidream', None, 'high', 'transformer', None, None),
    'other_hunyuan_dit_1.2_diffusers': ('checkpoint', None, 'bare', 'other:hunyuan-dit', None, 'high', 'transformer', None, None),
    'other_hunyuan_dit_1.2_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:hunyuan-dit', None, 'medium', 'transformer', None, None),
    'other_hunyuan_video_diffusers': ('checkpoint', None, 'diffusers', 'other:hunyuan-video', None, 'high', 'transformer', None, None),
    'other_hunyuan_video_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:hunyuan-video', None, 'medium', 'transformer', None, None),
    'other_kolors_unet': ('checkpoint', None, 'diffusers', 'other:kolors', None, 'high', 'unet', None, None),
    'other_ltx_video_diffusers': ('checkpoint', None, 'diffusers', 'other:ltx', None, 'medium', 'transformer', None, None),
    'other_ltx_video_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:ltx', None, 'medium', 'transformer', None, None),
    'other_lumina2_diffusers': ('checkpoint', None, 'bare', 'other:lumina2', None, 'high', 'transformer', None, None),
    'other_lumina2_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:lumina2', None, 'medium', 'transformer', None, None),
    'other_mochi_diffusers': ('checkpoint', None, 'diffusers', 'other:mochi', None, 'high', 'transformer', None, None),
    'other_mochi_lora_peft': ('lora', 'peft-lora', 'diffusers', 'unknown', None, 'none', 'transformer', 'other:ltx+other:pixart+other:sana+other:mochi', None),
    'other_pixart_sigma_diffusers': ('checkpoint', None, 'diffusers', 'other:pixart', None, 'medium', 'transformer', None, None),
    'other_pixart_sigma_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:pixart', None, 'medium', 'transformer', None, None),
    'other_qwen_image_attn_only_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:qwen-image', None, 'medium', 'transformer', None, None),
    'other_qwen_image_diffusers': ('checkpoint', None, 'diffusers', 'other:qwen-image', None, 'high', 'transformer', None, None),
    'other_qwen_image_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:qwen-image', None, 'high', 'transformer', None, None),
    'other_sana_1600m_diffusers': ('checkpoint', None, 'diffusers', 'other:sana', None, 'high', 'transformer', None, None),
    'other_sana_1600m_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:sana', None, 'medium', 'transformer', None, None),
    'other_svd_unet': ('checkpoint', None, 'diffusers', 'other:svd', None, 'medium', 'unet', None, None),
    'other_wan21_i2v_14b_diffusers': ('checkpoint', None, 'bare', 'other:wan', '14b-i2v', 'high', 'transformer', None, None),
    'other_wan21_i2v_14b_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:wan', '14b-i2v', 'high', 'transformer', None, None),
    'other_wan21_lora_comfy': ('lora', 'peft-lora', 'comfy', 'other:wan', '1.3b', 'high', 'transformer', None, None),
    'other_wan21_lora_musubi': ('lora', 'kohya-lora', 'kohya', 'other:wan', '1.3b', 'high', 'transformer', None, None),
    'other_wan21_t2v_1.3b_diffusers': ('checkpoint', None, 'bare', 'other:wan', '1.3b', 'high', 'transformer', None, None),
    'other_wan21_t2v_1.3b_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:wan', '1.3b', 'high', 'transformer', None, None),
    'other_wan21_t2v_1.3b_original': ('checkpoint', None, 'bare', 'other:wan', '1.3b', 'high', 'transformer', None, None),
    'other_z_image_diffusers': ('checkpoint', None, 'bare', 'other:z-image', None, 'high', 'transformer', None, None),
    'other_z_image_lora_peft': ('lora', 'peft-lora', 'diffusers', 'other:z-image', None, 'medium', 'transformer', None, None),
    't2i_adapter_sd15': ('t2i_adapter', None, 'bare', 'unknown', None, 'none', None, None, None),
    'te_clip_g': ('text_encoder', None, 'hf-transformers', 'unknown', None, 'none', 'te1', 'sdxl-base+sdxl-refiner+sd3', None),
    'te_clip_l': ('text_encoder', None, 'hf-transformers', 'unknown', None, 'none', 'te1', 'sd1+sdxl-base+sd3+flux1+other:hunyuan-video', None),
    'te_openclip_h_sd2': ('text_encoder', None, 'hf-transformers', 'sd2', None, 'medium', 'te1', None, None),
    'te_t5xxl_fp16': ('text_encoder', None, 'hf-transformers', 'unknown', None, 'none', 'te1', 'sd3+flux1+other:ltx+other:auraflow+other:pixart+other:mochi', None),
    'te_t5xxl_fp8': ('text_encoder', None, 'hf-transformers', 'unknown', None, 'none', 'te1', 'sd3+flux1+other:ltx+other:auraflow+other:pixart+other:mochi', None),
    'transformer_flux1_dev_diffusers': ('checkpoint', None, 'diffusers', 'flux1', 'dev', 'high', 'transformer', None, None),
    'transformer_sd35_large_diffusers': ('checkpoint', None, 'diffusers', 'sd3', '3.5-large', 'high', 'transformer', None, None),
    'transformer_sd3_medium_diffusers': ('checkpoint', None, 'diffusers', 'sd3', '3-medium', 'high', 'transformer', None, None),
    'unet_sd15_diffusers': ('checkpoint', None, 'diffusers', 'sd1', None, 'high', 'unet', None, None),
    'unet_sdxl_diffusers': ('checkpoint', None, 'diffusers', 'sdxl-base', None, 'high', 'unet', None, None),
    'unet_sdxl_ldm_bare': ('checkpoint', None, 'ldm', 'sdxl-base', None, 'high', 'unet', None, None),
    'vae_flux_ae': ('vae', None, 'ldm', 'unknown', None, 'none', 'vae', 'sd3+flux1', None),
    'vae_sd3_diffusers': ('vae', None, 'diffusers', 'unknown', None, 'none', 'vae', 'sd3+flux1', None),
    'vae_sd_ldm': ('vae', None, 'ldm', 'unknown', None, 'none', 'vae', 'sd1+sd2+sdxl-base+sdxl-refiner', None),
    'vae_sdxl_diffusers': ('vae', None, 'diffusers', 'unknown', None, 'none', 'vae', 'sd1+sd2+sdxl-base+sdxl-refiner', None),
    # tiny autoencoders, A1111's preview decoder, lora_diffusion lists, FLUX.2 variants (issue 22)
    'vae_taesd_encoder': ('vae', None, 'taesd', 'unknown', None, 'none', 'vae', 'sd1+sd2+sdxl-base+sdxl-refiner', None),
    'vae_taesd_decoder': ('vae', None, 'taesd', 'unknown', None, 'none', 'vae', 'sd1+sd2+sdxl-base+sdxl-refiner', None),
    'vae_taef1_encoder': ('vae', None, 'taesd', 'unknown', None, 'none', 'vae', 'flux1+sd3', None),
    'vae_taef1_decoder': ('vae', None, 'taesd', 'unknown', None, 'none', 'vae', 'flux1+sd3', None),
    'vae_taef2_encoder': ('vae', None, 'taesd', 'other:flux2', 'taef2', 'high', 'vae', None, None),
    'vae_taef2_decoder': ('vae', None, 'taesd', 'other:flux2', 'taef2', 'high', 'vae', None, None),
    'vae_taesana_encoder': ('vae', None, 'taesd', 'other:sana', 'taesana', 'high', 'vae', None, None),
    'vae_taesana_decoder': ('vae', None, 'taesd', 'other:sana', 'taesana', 'high', 'vae', None, None),
    'vae_taesd_diffusers_autoencoder_tiny': ('vae', None, 'diffusers', 'unknown', None, 'none', 'vae', 'sd1+sd2+sdxl-base+sdxl-refiner', None),
    'vae_taef1_diffusers_autoencoder_tiny': ('vae', None, 'diffusers', 'unknown', None, 'none', 'vae', 'flux1+sd3', None),
    'vae_approx_a1111_sd': ('vae', None, 'a1111-vae-approx', 'unknown', 'preview-decoder', 'none', 'vae', 'sd1+sd2+sdxl-base+sdxl-refiner', None),
    'vae_approx_a1111_sd3': ('vae', None, 'a1111-vae-approx', 'unknown', 'preview-decoder', 'none', 'vae', 'sd3+flux1', None),
    'lora_sd15_lora_diffusion_list_pt': ('lora', 'lora_diffusion', 'lora_diffusion', 'sd1', None, 'medium', 'unet', None, None),
    'lora_sd15_lora_diffusion_list_text_encoder_pt': ('lora', 'lora_diffusion', 'lora_diffusion', 'sd1', None, 'medium', 'te1', None, None),
    'lora_sd21_lora_diffusion_list_pt': ('lora', 'lora_diffusion', 'lora_diffusion', 'sd2', None, 'medium', 'unet', None, None),
    'lora_flux2_klein_4b_peft': ('lora', 'peft-lora', 'diffusers', 'other:flux2', 'klein-4b', 'high', 'transformer', None, None),
    'lora_flux2_klein_9b_peft': ('lora', 'peft-lora', 'diffusers', 'other:flux2', 'klein-9b', 'high', 'transformer', None, None),
    'lora_flux2_klein_4b_kohya_bfl': ('lora', 'kohya-lora', 'kohya', 'other:flux2', 'klein-4b', 'medium', 'transformer', None, None),
    'lora_flux2_klein_9b_comfy_bfl': ('lora', 'peft-lora', 'comfy', 'other:flux2', 'klein-9b', 'medium', 'transformer', None, None),
    'lora_flux2_dev_kohya_bfl': ('lora', 'kohya-lora', 'kohya', 'other:flux2', 'dev', 'medium', 'transformer', None, None),
}


def test_prediction_type_markers() -> None:
    for case, prediction in (("ckpt_sdxl_vpred_ztsnr", "v"), ("ckpt_playground_v25", "edm"), ("ckpt_sdxl_base", None)):
        ident, _ = identify(pairs(load(case)))
        assert ident.details.get("prediction") == prediction


def test_every_fixture_has_an_answer() -> None:
    assert sorted(p.name.removesuffix(".json.gz") for p in DATA.glob("*.json.gz")) == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_real_layout(case: str) -> None:
    doc = load(case)
    ident, findings = identify(pairs(doc), doc["metadata"])
    assert row(ident, findings) == EXPECTED[case]
    # every answer carries its evidence, and every piece of evidence that names a tensor names a real one
    # with the shape the file has
    assert ident.evidence
    shapes = {n: tuple(s) for n, _, s in doc["tensors"]}
    for e in ident.evidence:
        if e.key is not None:
            assert e.key in shapes, e.key
            if e.shape is not None:
                assert e.shape == shapes[e.key], (e.key, e.shape)
    if ident.arch != "unknown":
        assert ident.source in ("shapes", "metadata")
        assert ident.arch_candidates == ()
    else:
        assert ident.confidence == "none"


# -- robustness: pruned, damaged, mixed and odd files -----------------------------------------------------

# families whose parts carry another family's shapes: a piece of such a file may honestly read as the other
# family, at medium confidence at most (HunyuanVideo's blocks are FLUX.1's widths, AuraFlow's single blocks
# are 3072 wide, Kolors' blocks are SDXL's, Chroma is FLUX.1 without modulation, SVD's spatial UNet is SD2's)
SHARED_SHAPES = {
    "other:hunyuan-video": {"flux1"},
    "other:auraflow": {"flux1"},
    "other:kolors": {"sdxl-base"},
    "other:chroma": {"flux1"},
    "other:svd": {"sd2"},
}
# files made of two models on purpose
MIXED = {"lora_sdxl_in_sd15_clothing"}


def _module(name: str) -> str:
    """The module a tensor belongs to (its adapter part or .weight/.bias removed)."""
    for suffix in (".lora_down.weight", ".lora_up.weight", ".lora_A.weight", ".lora_B.weight", ".lora_B.bias",
                   ".lora.down.weight", ".lora.up.weight", ".lora_linear_layer.down.weight",
                   ".lora_linear_layer.up.weight", "_lora.down.weight", "_lora.up.weight", ".alpha", ".weight", ".bias",
                   ".lora_magnitude_vector", ".dora_scale", ".on_input", ".diff", ".diff_b", ".oft_blocks"):  # fmt: skip
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name.rsplit(".", 1)[0]


def _subsets(doc: dict[str, Any]) -> Iterator[tuple[str, list[tuple[str, list[int]]]]]:
    """Seeded random pieces of a file: whole modules (a pruned adapter, a shard) and loose tensors (damage)."""
    ps = pairs(doc)
    mods: dict[str, list[tuple[str, list[int]]]] = {}
    for n, s in ps:
        mods.setdefault(_module(n), []).append((n, s))
    keys = sorted(mods)
    rng = random.Random(doc["case"])
    for frac in (0.002, 0.02, 0.2, 0.6):
        pick = rng.sample(keys, max(1, int(len(keys) * frac)))
        yield f"{frac:.1%} of modules", [p for m in pick for p in mods[m]]
    for frac in (0.01, 0.3):
        yield f"{frac:.0%} of tensors", rng.sample(ps, max(1, int(len(ps) * frac)))


@pytest.mark.parametrize("case", sorted(set(EXPECTED) - MIXED))
def test_pieces_of_a_file_are_never_confidently_wrong(case: str) -> None:
    doc = load(case)
    whole = EXPECTED[case][3]
    for what, sub in _subsets(doc):
        ident, findings = identify(sub)
        if ident.arch in ("unknown", whole) or ident.confidence in ("none", "low"):
            continue
        assert ident.arch in SHARED_SHAPES.get(whole, set()), (what, ident.arch, ident.confidence)
        # the one piece that is exactly another model: SVD's spatial layers with their 1024-wide context
        assert ident.confidence == "medium" or (whole, ident.arch) == ("other:svd", "sd2"), (what, ident.arch)


@pytest.mark.parametrize(
    ("first", "second", "candidates"),
    [
        ("lora_sd15_kohya", "lora_sdxl_kohya_sgm", ("sd1", "sdxl-base")),
        ("lora_flux_kohya", "lora_sdxl_kohya_sgm", ("flux1", "sdxl-base")),
        ("lora_sd15_peft", "lora_flux_aitoolkit_peft", ("flux1", "sd1")),
    ],
)
def test_two_families_in_one_file_are_unknown_with_a_finding(first: str, second: str, candidates: tuple[str, ...]) -> None:
    ident, findings = identify(pairs(load(first)) + pairs(load(second)))
    assert (ident.kind, ident.arch, ident.arch_candidates) == ("lora", "unknown", candidates)
    assert [f.rule_id for f in findings] == ["identify.conflicting-evidence"]


def test_a_checkpoint_with_another_familys_autoencoder() -> None:
    sd15 = [p for p in pairs(load("ckpt_sd15_pruned_emaonly")) if not p[0].startswith("first_stage_model.")]
    flux_ae = [("first_stage_model." + n, s) for n, s in pairs(load("vae_flux_ae"))]
    ident, findings = identify(sd15 + flux_ae)
    assert (ident.kind, ident.arch, ident.confidence) == ("checkpoint", "sd1", "medium")
    assert [(f.rule_id, f.message) for f in findings] == [
        ("identify.conflicting-evidence", "the autoencoder (16 latent channels) is not the one sd1 uses")
    ]


def test_a_checkpoint_carrying_a_lora_stays_a_checkpoint() -> None:
    ident, findings = identify(pairs(load("ckpt_sdxl_base")) + pairs(load("lora_sdxl_kohya_sgm")))
    assert (ident.kind, ident.arch, ident.confidence) == ("checkpoint", "sdxl-base", "high")
    assert [f.rule_id for f in findings] == ["identify.adapter-keys-in-checkpoint"]


@pytest.mark.parametrize("wrapper", ["module.", "state_dict.", "model_state_dict."])
@pytest.mark.parametrize("case", ["ckpt_sd15_pruned_emaonly", "lora_flux_kohya", "unet_sdxl_diffusers", "vae_sd_ldm"])
def test_training_wrappers_are_seen_through(wrapper: str, case: str) -> None:
    doc = load(case)
    ident, _ = identify([(wrapper + n, s) for n, s in pairs(doc)])
    assert row(ident, [])[:6] == EXPECTED[case][:6]


def test_text_encoder_layers_without_text_model_are_clip() -> None:
    # transformers 5 keeps CLIPTextModel's layers without the text_model. level in memory
    doc = load("te_clip_l")
    ident, _ = identify([(n.removeprefix("text_model."), s) for n, s in pairs(doc)])
    assert (ident.kind, ident.arch_candidates[:2]) == ("text_encoder", ("sd1", "sdxl-base"))
    assert any(e.what.startswith("text encoder te1: clip-l (width 768, 12 layers") for e in ident.evidence)


@pytest.mark.parametrize(
    "tensors",
    [
        [],
        [("", [])],
        [(".", [1])],
        [("alpha", [])],
        [("lora_unet_x.alpha", [])],
        [("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", [])],
        [("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", [0, 0])],
        [("x.lokr_w1", [4, 4])],
        [("x.lokr_w2_a", [4])],
        [("x.hada_w1_a", [])],
        [("x.oft_blocks", [])],
        [("x.diff", [])],
        [("x.a1.weight", [4, 4]), ("x.a2.weight", [4])],
        [("model.diffusion_model.input_blocks.0.0.weight", [320])],
        [("double_blocks.0.img_attn.qkv.weight", [9216])],
        [("emb_params", [0, 768])],
        [("clip_l", [768]), ("clip_g", [3])],
        [("名前.weight", [3, 3]), ("\x00", [1])],
        [("encoder.down.0.block.0.conv1.weight", [128, 3, 3, 3, 1, 1])],
        [(f"t{i}", [2**40, 2**40]) for i in range(3)],
    ],
)
def test_degenerate_layouts_never_raise(tensors: list[tuple[str, list[int]]]) -> None:
    ident, findings = identify(tensors, {"ss_base_model_version": "sdxl_base_v1-0", "modelspec.architecture": ""})
    assert ident.kind in (
        "unknown", "lora", "lycoris", "embedding", "checkpoint", "vae", "text_encoder", "controlnet",
    )  # fmt: skip
    assert ident.confidence in ("none", "low", "medium")
    assert all(f.rule_id.startswith("identify.") for f in findings)


def test_unforeseen_layout_is_a_finding_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    import registry.identify as I

    def boom(*_: Any) -> None:
        raise ValueError("unexpected")

    monkeypatch.setattr(I, "_split", boom)
    ident, findings = identify([("a.weight", [2, 2])])
    assert ident.kind == "unknown" and "ValueError: unexpected" in ident.evidence[0].what
    assert [f.rule_id for f in findings] == ["identify.unforeseen-layout"]


# -- as files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["emb_sdxl", "emb_sd15_a1111", "lycoris_sd15_ia3", "lora_sd15_te_only_kohya", "lora_sd15_attn1_only_peft"]
)
def test_real_layouts_as_files(case: str, tmp_path: Path) -> None:
    doc = load(case)
    shapes = {n: s for n, _, s in doc["tensors"]}
    dtypes = {n: dt for n, dt, _ in doc["tensors"]}
    path = A.write_tensors(tmp_path / f"{case}.safetensors", shapes, doc["metadata"], dtypes=dtypes)
    ident, findings = identify_header(read_header(path))
    assert row(ident, findings) == EXPECTED[case]


def test_metadata_only_and_empty_files(tmp_path: Path) -> None:
    md = {"ss_base_model_version": "sd_v1", "ss_network_module": "networks.lora"}
    ident, findings = identify_header(read_header(A.write_tensors(tmp_path / "m.safetensors", {}, md)))
    assert (ident.kind, ident.arch, ident.source, ident.confidence) == ("unknown", "sd1", "metadata", "low")
    assert findings == []
    ident, findings = identify_header(read_header(A.write_tensors(tmp_path / "e.safetensors", {})))
    assert (ident.kind, ident.arch, ident.evidence[0].what) == ("unknown", "unknown", "the file has no tensors")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Other", (None, None, None)),  # Civitai's placeholder names no architecture
        ("custom", (None, None, None)),
        ("v1-5-pruned-emaonly", ("sd1", None, None)),
        ("v2-1_768-ema-pruned", ("sd2", None, None)),
        ("Flux.1 S", ("flux1", "schnell", None)),
        ("Flux.1 D", ("flux1", "dev", None)),
        ("chroma/lora", ("other:chroma", None, "lora")),
    ],
)
def test_metadata_claims_seen_in_the_wild(value: str, expected: tuple[Any, ...]) -> None:
    from registry.identify import normalize_arch_claim

    assert normalize_arch_claim(value) == expected
