"""SDXL module layouts of real LyCORIS files (kohya key names), for the LoHa and LoKr benchmark cases.

The UNet's attention modules and the two CLIP text encoders come from ``tests/archspecs.py`` (widths of
the published configs); LyCORIS' default preset also adapts every ResNet block (3×3 ``conv1``/``conv2``,
``time_emb_proj``, 1×1 ``conv_shortcut``) and the down/up samplers, listed here from the SDXL UNet
config (block_out_channels 320/640/1280, two ResNets per down block, three per up block with skip
concatenation). With both text encoders that is 1,052 modules, as in a real SDXL LoHa.
"""

from __future__ import annotations

import numpy as np

from tests.archspecs import clip_modules, kohya_name, unet_modules

CH = [320, 640, 1280]


def sdxl_resnet_modules() -> list[tuple[str, int, int, int]]:
    """(path, in, out, kernel) of the SDXL UNet's ResNet and sampler convolutions."""
    out: list[tuple[str, int, int, int]] = []

    def resnet(p: str, cin: int, cout: int) -> None:
        out.extend([(f"{p}.conv1", cin, cout, 3), (f"{p}.conv2", cout, cout, 3), (f"{p}.time_emb_proj", 1280, cout, 0)])
        if cin != cout:
            out.append((f"{p}.conv_shortcut", cin, cout, 1))

    prev = CH[0]
    skips = [CH[0]]
    for i, c in enumerate(CH):
        for j in range(2):
            resnet(f"down_blocks.{i}.resnets.{j}", prev, c)
            prev = c
            skips.append(c)
        if i < len(CH) - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv", c, c, 3))
            skips.append(c)
    for j in range(2):
        resnet(f"mid_block.resnets.{j}", CH[-1], CH[-1])
    for u, c in enumerate(reversed(CH)):
        for j in range(3):
            resnet(f"up_blocks.{u}.resnets.{j}", prev + skips.pop(), c)
            prev = c
        if u < len(CH) - 1:
            out.append((f"up_blocks.{u}.upsamplers.0.conv", c, c, 3))
    return out


def sdxl_modules() -> list[tuple[str, int, int, int]]:
    """(kohya module name, in, out, kernel: 0 linear, 1 or 3 conv) of a full-preset SDXL LyCORIS file."""
    mods = [(kohya_name("lora_unet_", p), i, o, 1 if conv else 0) for p, i, o, conv in unet_modules("sdxl-base")]
    mods += [(kohya_name("lora_unet_", p), i, o, k) for p, i, o, k in sdxl_resnet_modules()]
    mods += [(kohya_name("lora_te1_", p), i, o, 0) for p, i, o, _ in clip_modules(768, 12)]
    mods += [(kohya_name("lora_te2_", p), i, o, 0) for p, i, o, _ in clip_modules(1280, 32)]
    return mods


def _factorization(dim: int, factor: int) -> tuple[int, int]:
    """LyCORIS ``factorization(dim, factor)`` for a factor that divides dim: (factor, dim // factor)."""
    if factor > 0 and dim % factor == 0:
        m, n = factor, dim // factor
        return (m, n) if m <= n else (n, m)
    raise ValueError(f"{dim} is not divisible by {factor}")


def loha_tensors(
    rank: int, rng: np.random.Generator, alpha: float | None = None, decay: float | None = None
) -> dict[str, np.ndarray]:
    """LoHa (``hada_w1_a`` out×r, ``hada_w1_b`` r×in·k·k, …, ``alpha``) in fp16 with random factors. With
    ``decay`` τ, column j of each ``hada_w*_a`` is scaled by exp(−j/τ), so that the update's spectrum
    decays as a trained one does (random factors alone give a flat spectrum of r² values)."""
    t: dict[str, np.ndarray] = {}
    scale = 0.05 * (np.exp(-np.arange(rank) / decay) if decay else np.ones(rank))
    for name, i, o, k in sdxl_modules():
        cols = i * k * k if k > 1 else i
        for w in ("w1", "w2"):
            t[f"{name}.hada_{w}_a"] = (rng.standard_normal((o, rank)) * scale).astype(np.float16)
            t[f"{name}.hada_{w}_b"] = (rng.standard_normal((rank, cols)) * 0.05).astype(np.float16)
        t[f"{name}.alpha"] = np.array(alpha if alpha is not None else rank, dtype=np.float16)
    return t


def lokr_tensors(rank: int, factor: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """LoKr with ``factor``: a whole ``lokr_w1`` (factor × factor) and ``lokr_w2`` factored at ``rank``
    (``lokr_w2_a`` out/f × r, ``lokr_w2_b`` r × in/f·k·k), fp16, random; modules whose widths the factor
    does not divide are left out."""
    t: dict[str, np.ndarray] = {}
    for name, i, o, k in sdxl_modules():
        try:
            (o1, o2), (i1, i2) = _factorization(o, factor), _factorization(i, factor)
        except ValueError:
            continue
        t[f"{name}.lokr_w1"] = (rng.standard_normal((o1, i1)) * 0.05).astype(np.float16)
        t[f"{name}.lokr_w2_a"] = (rng.standard_normal((o2, rank)) * 0.05).astype(np.float16)
        t[f"{name}.lokr_w2_b"] = (rng.standard_normal((rank, i2 * (k * k if k > 1 else 1)))).astype(np.float16)
        t[f"{name}.alpha"] = np.array(rank, dtype=np.float16)
    return t
