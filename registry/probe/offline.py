"""Diffusion pipelines built offline from configurations, with random weights (no downloads).

Used by the tests (``tiny``: a 32×32 SD-style pipeline that runs in milliseconds on a CPU) and by the GPU
benchmark (``sd15`` and ``sdxl``: the real architectures at their real sizes, random weights, so the
timings are those of the real models). The CLIP tokenizer is rebuilt from the BPE vocabulary that
open_clip ships, so prompts tokenize exactly as with the real SD tokenizer.

Imports torch, diffusers, transformers and open_clip: only ever imported by the probe.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources
from typing import Any

SIZES = ("tiny", "small", "sd15", "sdxl")
#: the CPU sizes (tests): SD-style, random weights
TEST_SIZES = ("tiny", "small")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-to-unicode table (the BPE works on these characters, never on raw bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The 49,408-token CLIP vocabulary and its merges, from open_clip's bundled BPE file."""
    raw = resources.files("open_clip").joinpath("bpe_simple_vocab_16e6.txt.gz").read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    chars = list(_bytes_to_unicode().values())
    vocab_list = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    pairs: list[tuple[str, str]] = [(m[0], m[1]) for m in merges]
    return {t: i for i, t in enumerate(vocab_list)}, pairs


def clip_tokenizer(pad_token: str = "<|endoftext|>", max_length: int = 77) -> Any:
    """A real ``CLIPTokenizer`` (ids identical to SD's), built without touching a hub."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    pairs: Any = list(merges)  # the BPE model takes (left, right) pairs
    tok = CLIPTokenizer(vocab=dict(vocab), merges=pairs, pad_token=pad_token)
    tok.model_max_length = max_length
    return tok


def _scheduler(size: str) -> Any:
    """DDIM with SD's noise schedule. The tiny pipeline predicts v (as SD 2.x does): a tiny LoRA
    trained for a few seconds learns v-prediction far better than ε-prediction (so does ``small``)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        prediction_type="v_prediction" if size in TEST_SIZES else "epsilon",
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _text_config(size: str, big: bool = False) -> dict[str, Any]:
    base: dict[str, Any] = {
        "vocab_size": 49408,
        "max_position_embeddings": 77,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 49407,
    }
    if size == "tiny":
        base.update(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                    projection_dim=32, hidden_act="quick_gelu")
    elif size == "small":
        base.update(hidden_size=48, intermediate_size=96, num_attention_heads=4, num_hidden_layers=3,
                    projection_dim=48, hidden_act="quick_gelu")
    elif big:  # OpenCLIP ViT-bigG text tower (SDXL's second encoder)
        base.update(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                    projection_dim=1280, hidden_act="gelu")
    else:  # OpenAI CLIP ViT-L/14 text tower
        base.update(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                    projection_dim=768, hidden_act="quick_gelu")
    return base


def _vae(size: str) -> Any:
    from diffusers import AutoencoderKL

    if size == "tiny":
        return AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, sample_size=32,
            scaling_factor=3.7,  # random encoder latents have std ≈ 0.27: scale them to about 1, as SD's do
        )
    if size == "small":  # 64×64 images, 16×16 latents (three encoder levels)
        return AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8, sample_size=64,
            scaling_factor=3.7,
        )
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
        sample_size=1024 if size == "sdxl" else 512,
        scaling_factor=0.13025 if size == "sdxl" else 0.18215,
    )


def build_pipeline(size: str = "tiny", seed: int = 0, device: str | None = None, dtype: Any = None) -> Any:
    """A complete diffusers pipeline of the given architecture with seeded random weights, in eval mode.

    ``tiny``: SD-style, 32×32 images, about 1.8 M parameters (mostly the token embedding). ``small``: 64×64
    images, wider text path (48), two cross-attention levels, three text layers. ``sd15`` and
    ``sdxl``: the published SD 1.5 and SDXL architectures (random weights).
    """
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    if size not in SIZES:
        raise ValueError(f"unknown pipeline size {size!r}; choose one of {', '.join(SIZES)}")
    torch.manual_seed(seed)
    init_device = torch.device(device) if device else torch.device("cpu")
    with init_device:
        if size == "tiny":
            unet = UNet2DConditionModel(
                sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                attention_head_dim=8, norm_num_groups=8,
            )
        elif size == "small":
            unet = UNet2DConditionModel(
                sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                block_out_channels=(32, 48, 64),
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=48, attention_head_dim=8, norm_num_groups=8,
            )
        elif size == "sd15":
            unet = UNet2DConditionModel(
                sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
            )
        else:
            unet = UNet2DConditionModel(
                sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280),
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
                cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
                addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816, norm_num_groups=32,
            )
        vae = _vae(size)
        text_encoder = CLIPTextModel(CLIPTextConfig(**_text_config(size)))
        text_encoder_2 = (
            CLIPTextModelWithProjection(CLIPTextConfig(**_text_config(size, big=True))) if size == "sdxl" else None
        )
    pipe: Any
    if size == "sdxl":
        pipe = StableDiffusionXLPipeline(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=clip_tokenizer(),
            tokenizer_2=clip_tokenizer(pad_token="!"), unet=unet, scheduler=_scheduler(size),
        )
    else:
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet, scheduler=_scheduler(size),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
    components: list[Any] = [unet, vae, text_encoder, text_encoder_2]
    for comp in components:
        if comp is not None:
            comp.eval()
            comp.requires_grad_(False)
    if dtype is not None:
        pipe.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image_size(pipe: Any) -> int:
    """The native image side of a pipeline built here (or of any SD-style pipeline)."""
    return int(pipe.unet.config.sample_size * pipe.vae_scale_factor)


LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "conv1", "conv2", "conv_in", "conv_out")


def train_lora(
    pipe: Any,
    images: Any,
    captions: str | list[str],
    out_file: Any,
    steps: int = 200,
    rank: int = 8,
    lr: float = 3e-3,
    batch: int = 4,
    seed: int = 0,
) -> Any:
    """Train a small PEFT LoRA on an SD-style pipeline's UNet (the usual denoising loss) and save it as a
    diffusers LoRA ``.safetensors`` file; returns the path. ``images``: float array (N, H, W, 3) in
    [0, 1]; ``captions``: one for all images or one per image. Leaves the pipeline without the adapter.

    Used to make known-answer LoRAs: one trained on a single image, one on many varied images.
    """
    from pathlib import Path

    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    out_file = Path(out_file)
    unet, sched = pipe.unet, pipe.scheduler
    gen = torch.Generator("cpu").manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).permute(0, 3, 1, 2) * 2 - 1
    caps = [captions] * len(x) if isinstance(captions, str) else list(captions)
    with torch.no_grad():
        latents = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        ids = pipe.tokenizer(caps, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        text = pipe.text_encoder(ids)[0]
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)))
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    unet.train()
    for _ in range(steps):
        idx = torch.randint(0, len(latents), (batch,), generator=gen)
        l0 = latents[idx]
        noise = torch.randn(l0.shape, generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=gen)
        noisy = sched.add_noise(l0, noise, t)
        target = sched.get_velocity(l0, noise, t) if sched.config.prediction_type == "v_prediction" else noise
        pred = unet(noisy, t, text[idx]).sample
        loss = F.mse_loss(pred, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    unet.eval()
    state = get_peft_model_state_dict(unet)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(str(out_file.parent), unet_lora_layers=state, weight_name=out_file.name)
    unet.delete_adapters(["default"]) if hasattr(unet, "delete_adapters") else None
    unet.requires_grad_(False)
    return out_file


def shapes_dataset(n: int, seed: int = 0, side: int = 32) -> Any:
    """``n`` images of one disc on a plain background, colours and positions drawn from ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, side, side, 3), np.float32)
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(n):
        bg, fg = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        cx, cy = rng.uniform(0.2, 0.8, 2) * side
        r = rng.uniform(0.12, 0.3) * side
        imgs[i] = bg
        imgs[i][((xx - cx) ** 2 + (yy - cy) ** 2) < r * r] = fg
    return imgs


def random_lora(pipe: Any, out_file: Any, rank: int = 16, std: float = 0.02, seed: int = 0) -> Any:
    """A LoRA with random (non-zero) weights on the UNet's attention projections, saved as a diffusers
    ``.safetensors`` file: for timing the probe on real-size architectures."""
    from pathlib import Path

    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    out_file = Path(out_file)
    unet = pipe.unet
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="random")
    gen = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.copy_((torch.randn(p.shape, generator=gen) * std).to(p.device, p.dtype))
    state = get_peft_model_state_dict(unet, adapter_name="random")
    state = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    cls = StableDiffusionXLPipeline if type(pipe).__name__.startswith("StableDiffusionXL") else StableDiffusionPipeline
    cls.save_lora_weights(str(out_file.parent), unet_lora_layers=state, weight_name=out_file.name)
    unet.delete_adapters(["random"])
    return out_file


#: analytic LoRAs whose effect follows from their weights (see :func:`analytic_lora`)
ANALYTIC = ("null", "text-override", "unet-output")


def analytic_lora(pipe: Any, kind: str, out_file: Any, strength: float = 1.0, seed: int = 0) -> Any:
    """A LoRA constructed from the base's own weights, whose effect is known in closed form; saved as a
    diffusers ``.safetensors`` file (returns the path). The pipeline is left without the adapter.

    * ``null``: random down-projections, zero up-projections on every cross-attention key and value
      projection: ΔW = 0, so every sample is pixel-identical to the base's.
    * ``text-override``: on every cross-attention key and value projection (the only place where the
      prompt enters an SD UNet), ``A = I`` and ``B = −strength · W``, so ΔW = −strength · W. At strength 1
      keys and values are exactly 0 (``W x + (−W)(I x)`` is exactly 0 in floating point: the identity
      product is exact and negation commutes with the same matrix product), the cross-attention output is
      its output bias whatever the prompt, and the output no longer depends on the prompt: at a given seed
      every prompt gives the pixel-identical image. At 0.5 keys and values are halved.
    * ``unet-output``: on the UNet's last convolution, ``A = W`` (its kernel) and ``B = −strength · I``, so
      ΔW = −strength · W: the prediction becomes ``(1 − strength) · f(x) + bias``. At strength 1 the denoiser
      predicts a constant (up to float round-off): the output depends on the seed only.
    """
    from pathlib import Path

    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    if kind not in ANALYTIC:
        raise ValueError(f"unknown analytic LoRA {kind!r}; one of {', '.join(ANALYTIC)}")
    out_file = Path(out_file)
    unet = pipe.unet
    if kind == "unet-output":
        rank = unet.conv_out.out_channels
        targets: Any = ["conv_out"]
    else:
        rank = unet.config.cross_attention_dim
        targets = r".*attn2\.(to_k|to_v)"
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=targets),
                     adapter_name="analytic")
    gen = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        for mod in unet.modules():
            if not hasattr(mod, "lora_A") or "analytic" not in getattr(mod, "lora_A", {}):
                continue
            a, b = mod.lora_A["analytic"].weight, mod.lora_B["analytic"].weight
            w = mod.base_layer.weight
            if kind == "null":
                a.copy_(torch.randn(a.shape, generator=gen))
                b.zero_()
            elif kind == "text-override":
                a.copy_(torch.eye(a.shape[0], a.shape[1]))
                b.copy_(-strength * w)
            else:
                a.copy_(w)
                b.copy_(-strength * torch.eye(b.shape[0], b.shape[1]).reshape(b.shape))
    state = get_peft_model_state_dict(unet, adapter_name="analytic")
    state = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(str(out_file.parent), unet_lora_layers=state, weight_name=out_file.name)
    unet.delete_adapters(["analytic"])
    return out_file
