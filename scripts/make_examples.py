"""Generate the small example model files shipped in examples/models (deterministic: same bytes each run).

    python scripts/make_examples.py [OUT_DIR]

They are real files in real formats with made-up weights: an SD 1.5 kohya LoRA with training metadata,
an SDXL kohya LoRA, a textual-inversion embedding, and three broken downloads (truncated, Git LFS
pointer, saved HTML page).
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np


def st_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    pos = 0
    blobs = []
    dtypes = {np.dtype("float16"): "F16", np.dtype("float32"): "F32"}
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name]).tobytes()
        header[name] = {"dtype": dtypes[tensors[name].dtype], "shape": list(tensors[name].shape), "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(blobs)


def lora_module(rng: np.random.Generator, prefix: str, out_f: int, in_f: int, rank: int, alpha: float) -> dict[str, np.ndarray]:
    down = (rng.standard_normal((rank, in_f)) / np.sqrt(in_f)).astype(np.float16)
    up = (rng.standard_normal((out_f, rank)) * 0.01).astype(np.float16)
    return {
        f"{prefix}.lora_down.weight": down,
        f"{prefix}.lora_up.weight": up,
        f"{prefix}.alpha": np.array(alpha, dtype=np.float16),
    }


def sd15_lora(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    t: dict[str, np.ndarray] = {}
    rank = 4
    for blk, width in (("down_blocks_0", 320), ("down_blocks_1", 640), ("up_blocks_1", 1280)):
        base = f"lora_unet_{blk}_attentions_0_transformer_blocks_0"
        for proj in ("to_q", "to_k", "to_v", "to_out_0"):
            t |= lora_module(rng, f"{base}_attn1_{proj}", width, width, rank, 2.0)
        t |= lora_module(rng, f"{base}_attn2_to_q", width, width, rank, 2.0)
        t |= lora_module(rng, f"{base}_attn2_to_k", width, 768, rank, 2.0)
        t |= lora_module(rng, f"{base}_attn2_to_v", width, 768, rank, 2.0)
    for layer in range(2):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t |= lora_module(rng, f"lora_te_text_model_encoder_layers_{layer}_self_attn_{proj}", 768, 768, rank, 2.0)
    meta = {
        "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
        "ss_base_model_version": "sd_v1",
        "ss_network_module": "networks.lora",
        "ss_network_dim": "4",
        "ss_network_alpha": "2.0",
        "ss_num_train_images": "120",
        "ss_num_reg_images": "0",
        "ss_num_epochs": "10",
        "ss_max_train_steps": "1200",
        "ss_learning_rate": "0.0001",
        "ss_resolution": "(512, 512)",
        "ss_dataset_dirs": json.dumps({"10_ohwx woman": {"n_repeats": 10, "img_count": 12}}),
        "ss_tag_frequency": json.dumps({"10_ohwx woman": {"ohwx woman": 12, "portrait": 9, "smiling": 4, "outdoors": 3}}),
        "ss_output_name": "portrait_style_v1",
        "ss_training_started_at": "1700000000.0",
        "ss_training_finished_at": "1700003600.0",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.title": "Portrait style v1 (example)",
        "modelspec.license": "CreativeML OpenRAIL-M",
        "modelspec.trigger_phrase": "ohwx woman",
    }
    return t, meta


def sdxl_lora(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    t: dict[str, np.ndarray] = {}
    rank = 8
    for blk, width in (("input_blocks_4_1", 640), ("middle_block_1", 1280), ("output_blocks_2_1", 1280)):
        base = f"lora_unet_{blk}_transformer_blocks_0"
        t |= lora_module(rng, f"{base}_attn2_to_k", width, 2048, rank, 8.0)
        t |= lora_module(rng, f"{base}_attn2_to_v", width, 2048, rank, 8.0)
    t |= lora_module(rng, "lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768, 768, rank, 8.0)
    t |= lora_module(rng, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280, 1280, rank, 8.0)
    meta = {
        "ss_base_model_version": "sdxl_base_v1-0",
        "ss_network_module": "networks.lora",
        "ss_network_dim": "8",
        "ss_network_alpha": "8.0",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    }
    return t, meta


def main(out: Path) -> None:
    rng = np.random.default_rng(20261128)
    (out / "loras").mkdir(parents=True, exist_ok=True)
    (out / "embeddings").mkdir(parents=True, exist_ok=True)
    (out / "broken").mkdir(parents=True, exist_ok=True)
    t, m = sd15_lora(rng)
    (out / "loras" / "portrait_style_v1.safetensors").write_bytes(st_bytes(t, m))
    t, m = sdxl_lora(rng)
    (out / "loras" / "sdxl_detail_tweaker.safetensors").write_bytes(st_bytes(t, m))
    emb = {"emb_params": (rng.standard_normal((4, 768)) * 0.02).astype(np.float32)}
    (out / "embeddings" / "my_concept.safetensors").write_bytes(st_bytes(emb))
    good = st_bytes(lora_module(rng, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 320, 768, 4, 4.0))
    (out / "broken" / "interrupted_download.safetensors").write_bytes(good[: len(good) - 1204])
    (out / "broken" / "lfs_pointer.safetensors").write_bytes(
        b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:4c3a1e0b9d2f8a7c6b5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a19080\nsize 151108832\n"
    )
    (out / "broken" / "login_page.safetensors").write_bytes(
        b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in to download.</body></html>\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "examples" / "models")
