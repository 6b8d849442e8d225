"""The kinds and the readable names of the base architectures that identification names
(registry/identify.py).

A module of its own so that `show` and the pre-flight can list kinds and label an architecture without importing
the identifier and its compiled rules."""

from __future__ import annotations

#: readable names of the architectures this module names
ARCH_LABELS: dict[str, str] = {
    "sd1": "Stable Diffusion 1.x",
    "sd2": "Stable Diffusion 2.x",
    "sdxl-base": "Stable Diffusion XL (base)",
    "sdxl-refiner": "Stable Diffusion XL (refiner)",
    "sd3": "Stable Diffusion 3 / 3.5",
    "flux1": "FLUX.1",
    "other:flux2": "FLUX.2",
    "other:chroma": "Chroma (FLUX.1-derived)",
    "other:wan": "Wan (video)",
    "other:qwen-image": "Qwen-Image",
    "other:ltx": "LTX-Video",
    "other:ltx2": "LTX-2",
    "other:hunyuan-video": "HunyuanVideo",
    "other:hunyuan-dit": "Hunyuan-DiT",
    "other:hidream": "HiDream-I1",
    "other:lumina2": "Lumina-Image 2.0",
    "other:z-image": "Z-Image",
    "other:auraflow": "AuraFlow",
    "other:stable-cascade": "Stable Cascade",
    "other:pixart": "PixArt",
    "other:sana": "Sana",
    "other:mochi": "Mochi",
    "other:kolors": "Kolors",
    "other:svd": "Stable Video Diffusion",
    "unknown": "unknown",
}

#: every kind identification can give
KINDS = (
    "checkpoint",
    "lora",
    "lycoris",
    "embedding",
    "vae",
    "text_encoder",
    "controlnet",
    "ip_adapter",
    "t2i_adapter",
    "image_encoder",
    "motion_module",
    "unknown",
)
