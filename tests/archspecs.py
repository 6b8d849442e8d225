"""Module layouts of real architectures, generated from their published configs, for tests.

Each ``*_modules`` function returns ``[(module_path, in_features, out_features, is_conv)]`` for the
layers that trainers adapt (attention projections, MLPs, transformer projections), with the widths of
the real model. ``lora_keys`` and friends turn such a list into adapter tensors (name → shape) in a
given key style; ``write_tensors`` writes them as a real safetensors file with zero data (shapes are
what identification reads). Sizes stay small: adapters at rank 1–4, checkpoints reduced to the few
tensors per component that carry the decisive widths.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from pathlib import Path

from registry.files.safetensors import DTYPE_BITS
from tests.builders import write_safetensors

Module = tuple[str, int, int, bool]

# -- UNet families ------------------------------------------------------------------------------------

UNET_CONFIGS = {
    # channels per level, transformer depth per level (0 = no attention), context width, linear proj
    "sd1": {"ch": [320, 640, 1280, 1280], "depth": [1, 1, 1, 0], "ctx": 768, "linear": False, "mid": 1},
    "sd2": {"ch": [320, 640, 1280, 1280], "depth": [1, 1, 1, 0], "ctx": 1024, "linear": True, "mid": 1},
    "sdxl-base": {"ch": [320, 640, 1280], "depth": [0, 2, 10], "ctx": 2048, "linear": True, "mid": 10},
    "sdxl-refiner": {"ch": [384, 768, 1536, 1536], "depth": [0, 4, 4, 0], "ctx": 1280, "linear": True, "mid": 4},
}


def _tblock(prefix: str, c: int, ctx: int, depth: int, linear: bool) -> list[Module]:
    out: list[Module] = [(f"{prefix}.proj_in", c, c, not linear), (f"{prefix}.proj_out", c, c, not linear)]
    for k in range(depth):
        t = f"{prefix}.transformer_blocks.{k}"
        out += [
            (f"{t}.attn1.to_q", c, c, False),
            (f"{t}.attn1.to_k", c, c, False),
            (f"{t}.attn1.to_v", c, c, False),
            (f"{t}.attn1.to_out.0", c, c, False),
            (f"{t}.attn2.to_q", c, c, False),
            (f"{t}.attn2.to_k", ctx, c, False),
            (f"{t}.attn2.to_v", ctx, c, False),
            (f"{t}.attn2.to_out.0", c, c, False),
            (f"{t}.ff.net.0.proj", c, 8 * c, False),
            (f"{t}.ff.net.2", 4 * c, c, False),
        ]
    return out


def unet_modules(arch: str, naming: str = "diffusers") -> list[Module]:
    """Attention modules of an SD-family UNet in diffusers (``down_blocks``) or LDM (``input_blocks``)
    naming."""
    cfg = UNET_CONFIGS[arch]
    ch: list[int] = cfg["ch"]  # type: ignore[assignment]
    depth: list[int] = cfg["depth"]  # type: ignore[assignment]
    ctx: int = cfg["ctx"]  # type: ignore[assignment]
    linear: bool = cfg["linear"]  # type: ignore[assignment]
    mid: int = cfg["mid"]  # type: ignore[assignment]
    n = len(ch)
    out: list[Module] = []
    if naming == "diffusers":
        for i in range(n):
            for j in range(2):
                if depth[i]:
                    out += _tblock(f"down_blocks.{i}.attentions.{j}", ch[i], ctx, depth[i], linear)
        out += _tblock("mid_block.attentions.0", ch[-1], ctx, mid, linear)
        for u in range(n):
            level = n - 1 - u
            for j in range(3):
                if depth[level]:
                    out += _tblock(f"up_blocks.{u}.attentions.{j}", ch[level], ctx, depth[level], linear)
    else:
        idx = 1
        for i in range(n):
            for _ in range(2):
                if depth[i]:
                    out += _tblock(f"input_blocks.{idx}.1", ch[i], ctx, depth[i], linear)
                idx += 1
            if i < n - 1:
                idx += 1  # downsample
        out += _tblock("middle_block.1", ch[-1], ctx, mid, linear)
        o = 0
        for u in range(n):
            level = n - 1 - u
            for _ in range(3):
                if depth[level]:
                    out += _tblock(f"output_blocks.{o}.1", ch[level], ctx, depth[level], linear)
                o += 1
    return out


def clip_modules(width: int, layers: int, prefix: str = "text_model.encoder.layers") -> list[Module]:
    out: list[Module] = []
    for i in range(layers):
        p = f"{prefix}.{i}"
        out += [
            (f"{p}.self_attn.q_proj", width, width, False),
            (f"{p}.self_attn.k_proj", width, width, False),
            (f"{p}.self_attn.v_proj", width, width, False),
            (f"{p}.self_attn.out_proj", width, width, False),
            (f"{p}.mlp.fc1", width, 4 * width, False),
            (f"{p}.mlp.fc2", 4 * width, width, False),
        ]
    return out


def t5_modules(layers: int = 24, d: int = 4096, ff: int = 10240) -> list[Module]:
    out: list[Module] = []
    for i in range(layers):
        p = f"encoder.block.{i}.layer"
        out += [(f"{p}.0.SelfAttention.{x}", d, d, False) for x in "qkvo"]
        out += [(f"{p}.1.DenseReluDense.wi_0", d, ff, False), (f"{p}.1.DenseReluDense.wi_1", d, ff, False),
                (f"{p}.1.DenseReluDense.wo", ff, d, False)]  # fmt: skip
    return out


# -- transformer families -----------------------------------------------------------------------------


def flux_modules(naming: str = "bfl", hidden: int = 3072, mlp: int = 12288, double: int = 19, single: int = 38) -> list[Module]:
    out: list[Module] = []
    h = hidden
    if naming == "bfl":
        for i in range(double):
            for s in ("img", "txt"):
                p = f"double_blocks.{i}.{s}"
                out += [
                    (f"{p}_attn.qkv", h, 3 * h, False),
                    (f"{p}_attn.proj", h, h, False),
                    (f"{p}_mlp.0", h, mlp, False),
                    (f"{p}_mlp.2", mlp, h, False),
                    (f"{p}_mod.lin", h, 6 * h, False),
                ]
        for i in range(single):
            p = f"single_blocks.{i}"
            out += [(f"{p}.linear1", h, 3 * h + mlp, False), (f"{p}.linear2", h + mlp, h, False),
                    (f"{p}.modulation.lin", h, 3 * h, False)]  # fmt: skip
    else:
        for i in range(double):
            p = f"transformer_blocks.{i}"
            out += [(f"{p}.attn.to_{x}", h, h, False) for x in "qkv"]
            out += [(f"{p}.attn.add_{x}_proj", h, h, False) for x in "qkv"]
            out += [
                (f"{p}.attn.to_out.0", h, h, False),
                (f"{p}.attn.to_add_out", h, h, False),
                (f"{p}.ff.net.0.proj", h, mlp, False),
                (f"{p}.ff.net.2", mlp, h, False),
                (f"{p}.ff_context.net.0.proj", h, mlp, False),
                (f"{p}.ff_context.net.2", mlp, h, False),
                (f"{p}.norm1.linear", h, 6 * h, False),
                (f"{p}.norm1_context.linear", h, 6 * h, False),
            ]
        for i in range(single):
            p = f"single_transformer_blocks.{i}"
            out += [(f"{p}.attn.to_{x}", h, h, False) for x in "qkv"]
            out += [(f"{p}.proj_mlp", h, mlp, False), (f"{p}.proj_out", h + mlp, h, False),
                    (f"{p}.norm.linear", h, 3 * h, False)]  # fmt: skip
    return out


def sd3_modules(hidden: int = 1536, blocks: int = 24, attn2: bool = False) -> list[Module]:
    h = hidden
    out: list[Module] = []
    for i in range(blocks):
        for b in ("x_block", "context_block"):
            p = f"joint_blocks.{i}.{b}"
            if b == "context_block" and i == blocks - 1:
                out += [(f"{p}.attn.qkv", h, 3 * h, False)]
                continue
            out += [(f"{p}.attn.qkv", h, 3 * h, False), (f"{p}.attn.proj", h, h, False),
                    (f"{p}.mlp.fc1", h, 4 * h, False), (f"{p}.mlp.fc2", 4 * h, h, False),
                    (f"{p}.adaLN_modulation.1", h, 6 * h, False)]  # fmt: skip
        if attn2:
            out += [(f"joint_blocks.{i}.x_block.attn2.qkv", h, 3 * h, False), (f"joint_blocks.{i}.x_block.attn2.proj", h, h, False)]  # fmt: skip
    return out


def wan_modules(dim: int = 1536, layers: int = 30, ffn: int = 8960, i2v: bool = False) -> list[Module]:
    out: list[Module] = []
    for i in range(layers):
        p = f"blocks.{i}"
        out += [(f"{p}.self_attn.{x}", dim, dim, False) for x in "qkvo"]
        out += [(f"{p}.cross_attn.{x}", dim, dim, False) for x in "qkvo"]
        if i2v:
            out += [(f"{p}.cross_attn.k_img", dim, dim, False), (f"{p}.cross_attn.v_img", dim, dim, False)]
        out += [(f"{p}.ffn.0", dim, ffn, False), (f"{p}.ffn.2", ffn, dim, False)]
    return out


def qwen_image_modules(layers: int = 60, h: int = 3072) -> list[Module]:
    out: list[Module] = []
    for i in range(layers):
        p = f"transformer_blocks.{i}"
        out += [(f"{p}.attn.to_{x}", h, h, False) for x in "qkv"]
        out += [(f"{p}.attn.add_{x}_proj", h, h, False) for x in "qkv"]
        out += [(f"{p}.attn.to_out.0", h, h, False), (f"{p}.attn.to_add_out", h, h, False)]
        for s in ("img", "txt"):
            out += [(f"{p}.{s}_mlp.net.0.proj", h, 4 * h, False), (f"{p}.{s}_mlp.net.2", 4 * h, h, False),
                    (f"{p}.{s}_mod.1", h, 6 * h, False)]  # fmt: skip
    return out


def ltx_modules(layers: int = 28, h: int = 2048) -> list[Module]:
    out: list[Module] = []
    for i in range(layers):
        p = f"transformer_blocks.{i}"
        for a in ("attn1", "attn2"):
            out += [(f"{p}.{a}.to_{x}", h, h, False) for x in "qkv"]
            out += [(f"{p}.{a}.to_out.0", h, h, False)]
        out += [(f"{p}.ff.net.0.proj", h, 4 * h, False), (f"{p}.ff.net.2", 4 * h, h, False)]
    return out


# -- adapter key styles --------------------------------------------------------------------------------


def kohya_name(prefix: str, path: str) -> str:
    return prefix + path.replace(".", "_")


def lora_tensors(
    modules: Iterable[Module],
    style: str = "kohya",
    prefix: str = "lora_unet_",
    rank: int = 1,
    alpha: bool = True,
) -> dict[str, list[int]]:
    """LoRA tensors in a key style: ``kohya`` (``prefix`` + underscores, lora_down/lora_up/alpha),
    ``peft`` (``prefix`` + dotted path, lora_A/lora_B), ``diffusers-old`` (``prefix`` + path,
    ``.lora.down.weight``)."""
    out: dict[str, list[int]] = {}
    for path, i, o, conv in modules:
        if style == "kohya":
            base = kohya_name(prefix, path)
            out[f"{base}.lora_down.weight"] = [rank, i, 1, 1] if conv else [rank, i]
            out[f"{base}.lora_up.weight"] = [o, rank, 1, 1] if conv else [o, rank]
            if alpha:
                out[f"{base}.alpha"] = []
        elif style == "peft":
            out[f"{prefix}{path}.lora_A.weight"] = [rank, i, 1, 1] if conv else [rank, i]
            out[f"{prefix}{path}.lora_B.weight"] = [o, rank, 1, 1] if conv else [o, rank]
        elif style == "diffusers-old":
            out[f"{prefix}{path}.lora.down.weight"] = [rank, i]
            out[f"{prefix}{path}.lora.up.weight"] = [o, rank]
        else:
            raise ValueError(style)
    return out


def lycoris_tensors(modules: Iterable[Module], algo: str, prefix: str = "lora_unet_", rank: int = 2) -> dict[str, list[int]]:
    """LyCORIS tensors (kohya key names) for ``loha``, ``lokr``, ``dora``, ``ia3``, ``glora``, ``oft``,
    ``boft``, ``full``."""
    out: dict[str, list[int]] = {}
    for path, i, o, conv in modules:
        if conv:
            continue
        b = kohya_name(prefix, path)
        if algo == "loha":
            out |= {f"{b}.hada_w1_a": [o, rank], f"{b}.hada_w1_b": [rank, i], f"{b}.hada_w2_a": [o, rank],
                    f"{b}.hada_w2_b": [rank, i], f"{b}.alpha": []}  # fmt: skip
        elif algo == "lokr":
            f = 4 if i % 4 == 0 and o % 4 == 0 else 1
            out |= {f"{b}.lokr_w1": [f, f], f"{b}.lokr_w2_a": [o // f, rank], f"{b}.lokr_w2_b": [rank, i // f], f"{b}.alpha": []}  # fmt: skip
        elif algo == "dora":
            out |= {f"{b}.lora_down.weight": [rank, i], f"{b}.lora_up.weight": [o, rank], f"{b}.dora_scale": [1, i],
                    f"{b}.alpha": []}  # fmt: skip
        elif algo == "ia3":
            out |= {f"{b}.weight": [o], f"{b}.on_input": []}
        elif algo == "glora":
            out |= {f"{b}.a1.weight": [rank, i], f"{b}.a2.weight": [o, rank], f"{b}.b1.weight": [rank, i],
                    f"{b}.b2.weight": [o, rank], f"{b}.alpha": []}  # fmt: skip
        elif algo == "oft":
            bs = 4
            out |= {f"{b}.oft_blocks": [o // bs, bs, bs], f"{b}.rescale": [o, 1], f"{b}.alpha": []}
        elif algo == "boft":
            bs = 4
            out |= {f"{b}.oft_blocks": [2, o // bs, bs, bs], f"{b}.rescale": [o, 1], f"{b}.alpha": []}
        elif algo == "full":
            out |= {f"{b}.diff": [o, i], f"{b}.diff_b": [o]}
        else:
            raise ValueError(algo)
    return out


def weight_tensors(modules: Iterable[Module], prefix: str = "") -> dict[str, list[int]]:
    """Plain weights (a checkpoint's layers): ``prefix + path + .weight`` → [out, in(, 1, 1)]."""
    return {f"{prefix}{p}.weight": ([o, i, 1, 1] if conv else [o, i]) for p, i, o, conv in modules}


# -- writing -------------------------------------------------------------------------------------------


def write_tensors(
    path: Path,
    shapes: Mapping[str, list[int] | tuple[int, ...]],
    metadata: Mapping[str, str] | None = None,
    dtype: str = "F16",
    dtypes: Mapping[str, str] | None = None,
    seed: int | None = None,
) -> Path:
    """A real safetensors file with the given shapes and zero data (random bytes with ``seed``, so that
    windows of two files, e.g. their AutoV1, differ)."""
    rng = random.Random(seed) if seed is not None else None
    tensors: dict[str, tuple[str, list[int], bytes]] = {}
    for name, shape in shapes.items():
        dt = (dtypes or {}).get(name) or ("BOOL" if name.endswith(".on_input") else dtype)
        n = 1
        for d in shape:
            n *= d
        size = n * DTYPE_BITS[dt] // 8
        data = rng.randbytes(size) if rng is not None and dt != "BOOL" else bytes(size)
        tensors[name] = (dt, list(shape), data)
    return write_safetensors(path, tensors, metadata)
