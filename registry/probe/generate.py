"""Generation: loading a base, attaching an adapter (and proving it took effect), batched sampling from
per-image CPU generators, the conditional-noise magnitude, and halving the batch when memory runs out.

Imports torch and diffusers; only the probe imports this module.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from registry.errors import RegistryError, UsageError
from registry.probe.samples import to_uint8


class ProbeError(RegistryError):
    """The probe could not do what was asked (a model that does not load, memory exhausted …)."""


class AdapterNotLoadable(UsageError):
    """diffusers cannot load this adapter (LoHa/LoKr and other LyCORIS types), or it matched nothing."""


@dataclass(frozen=True)
class GenSettings:
    steps: int = 25
    guidance: float = 7.0
    width: int | None = None
    height: int | None = None
    batch_size: int = 8
    #: first denoising steps over which the conditional-noise magnitude is averaged
    noise_steps: int = 5
    dtype: str = "auto"  # auto, float32, float16, bfloat16
    device: str = "auto"  # auto, cpu, cuda, cuda:1, mps
    scheduler: str | None = None  # None keeps the pipeline's own
    lora_scale: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++2m": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str, pipe: Any = None) -> Any:
    import torch

    if dtype != "auto":
        try:
            return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        except KeyError:
            raise UsageError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16") from None
    if device.startswith("cpu"):
        return torch.float32
    if pipe is not None and hasattr(pipe, "transformer") and getattr(pipe, "transformer", None) is not None:
        return torch.bfloat16  # Flux and other transformer bases are trained in bf16
    return torch.float16


def device_info(device: str) -> dict[str, Any]:
    import platform

    import torch

    info: dict[str, Any] = {"device": device, "machine": platform.machine(), "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        p = torch.cuda.get_device_properties(idx)
        info.update(name=p.name, memory_bytes=int(p.total_memory), capability=f"{p.major}.{p.minor}",
                    cuda=torch.version.cuda, driver=None)
    else:
        info["name"] = _cpu_name() or platform.processor() or platform.machine()
    return info


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def library_versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for dist in ("torch", "diffusers", "transformers", "peft", "open_clip_torch", "numpy", "safetensors", "accelerate"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


# -- loading ----------------------------------------------------------------------------------------


def _single_file_class(path: Path) -> str:
    from registry.files.safetensors import read_header

    names = [t.name for t in read_header(path).tensors]
    if any(n.startswith("conditioner.embedders.1") for n in names):
        return "StableDiffusionXLPipeline"
    if any("double_blocks." in n for n in names):
        raise ProbeError(
            f"{path}: a Flux.1 transformer file alone is not a full pipeline; pass a diffusers folder or a "
            "Hub id in the local cache as the base"
        )
    return "StableDiffusionPipeline"


def load_pipeline(base: str | Path, settings: GenSettings, config: str | None = None) -> Any:
    """A diffusers pipeline from a diffusers folder, a single-file ``.safetensors`` checkpoint (SD 1.x /
    SDXL; diffusers needs its config from ``config`` or the local Hugging Face cache) or a Hub id that is
    already in the local cache. Nothing is downloaded; pickle checkpoints are refused."""
    import diffusers

    device = resolve_device(settings.device)
    p = Path(base)
    dtype = resolve_dtype(settings.dtype, device)
    try:
        if p.is_dir():
            if not (p / "model_index.json").exists():
                raise UsageError(f"{p}: not a diffusers pipeline folder (no model_index.json)")
            pipe = diffusers.DiffusionPipeline.from_pretrained(str(p), dtype=dtype, local_files_only=True)
        elif p.is_file():
            if p.suffix != ".safetensors":
                raise UsageError(
                    f"{p}: only .safetensors checkpoints are probed (a pickle checkpoint would have to be "
                    "unpickled to load; convert it first)"
                )
            cls = getattr(diffusers, _single_file_class(p))
            kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
            if config:
                kwargs["config"] = config
            pipe = cls.from_single_file(str(p), **kwargs)
        else:
            pipe = diffusers.DiffusionPipeline.from_pretrained(str(base), dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot load base {base}: {str(e).splitlines()[0]}") from None
    if settings.dtype == "auto" and hasattr(pipe, "transformer") and dtype != resolve_dtype("auto", device, pipe):
        pipe.to(dtype=resolve_dtype("auto", device, pipe))
    return prepare_pipeline(pipe, settings)


def prepare_pipeline(pipe: Any, settings: GenSettings) -> Any:
    """Eval mode, the requested scheduler, the device; progress bars off (the probe has its own)."""
    import diffusers

    for comp in pipe.components.values():
        if hasattr(comp, "eval") and hasattr(comp, "parameters"):
            comp.eval()
    if settings.scheduler:
        name = SCHEDULERS.get(settings.scheduler, settings.scheduler)
        cls = getattr(diffusers, name, None)
        if cls is None:
            raise UsageError(f"unknown scheduler {settings.scheduler!r}; one of {', '.join(SCHEDULERS)}")
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    pipe.to(resolve_device(settings.device))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def scheduler_record(pipe: Any) -> dict[str, Any]:
    cfg = dict(pipe.scheduler.config)
    return {"class": type(pipe.scheduler).__name__, "config": json.loads(json.dumps(cfg, default=str))}


# -- adapters ---------------------------------------------------------------------------------------


@dataclass
class AdapterReport:
    kind: str  # lora, loha, lokr, dora, other
    file_modules: int  # modules the file holds an update for
    matched_layers: dict[str, int] = field(default_factory=dict)  # per pipeline component
    nonzero: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def total_matched(self) -> int:
        return sum(self.matched_layers.values())

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_matched"] = self.total_matched
        return d


_MODULE_SUFFIXES = (
    ".lora_down.weight", ".lora_A.weight", ".lora.down.weight", "_lora.down.weight",
    ".hada_w1_a", ".lokr_w1", ".lokr_w1_a", ".oft_blocks", ".diff",
)


def classify_adapter(names: Sequence[str]) -> tuple[str, int]:
    """(kind, number of modules) from a state dict's key names."""
    kind = "other"
    if any(".hada_w1_a" in n for n in names):
        kind = "loha"
    elif any(".lokr_w1" in n for n in names):
        kind = "lokr"
    elif any(n.endswith("dora_scale") for n in names):
        kind = "dora"
    elif any("lora" in n for n in names):
        kind = "lora"
    modules = set()
    for n in names:
        for suf in _MODULE_SUFFIXES:
            if n.endswith(suf):
                modules.add(n[: -len(suf)])
                break
    return kind, len(modules)


def _adapter_layers(pipe: Any, adapter: str) -> tuple[dict[str, int], bool]:
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    counts: dict[str, int] = {}
    nonzero = False
    for name, comp in pipe.components.items():
        if not isinstance(comp, torch.nn.Module):
            continue
        n = 0
        for m in comp.modules():
            if not isinstance(m, BaseTunerLayer):
                continue
            if any(adapter in getattr(m, attr, {}) for attr in m.adapter_layer_names):
                n += 1
                b = getattr(m, "lora_B", {})
                if not nonzero and adapter in b:
                    w = b[adapter].weight
                    nonzero = bool(torch.count_nonzero(w).item())
        if n:
            counts[name] = n
    return counts, nonzero


def attach_adapter(pipe: Any, path: Path, adapter: str = "probe", scale: float = 1.0) -> AdapterReport:
    """Load a LoRA file into the pipeline and prove that it took effect.

    diffusers only *logs* when a state dict matched nothing; here that is an error. LoHa/LoKr files that
    diffusers cannot load give one clear :class:`AdapterNotLoadable`.
    """
    from registry.files.safetensors import read_header

    path = Path(path)
    if path.suffix != ".safetensors":
        raise AdapterNotLoadable(
            f"{path}: only .safetensors adapters are probed (a pickle file would have to be unpickled to load)"
        )
    header = read_header(path)
    if not header.valid:
        raise AdapterNotLoadable(f"{path}: not a valid safetensors file")
    kind, n_modules = classify_adapter([t.name for t in header.tensors])
    report = AdapterReport(kind=kind, file_modules=n_modules)
    import diffusers

    try:
        pipe.load_lora_weights(str(path), adapter_name=adapter)
    except (ValueError, KeyError, RuntimeError, NotImplementedError, TypeError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        if kind in ("loha", "lokr"):
            raise AdapterNotLoadable(
                f"{path.name} is a LyCORIS {kind.upper()} adapter, which diffusers {diffusers.__version__} "
                f"cannot load ({why}). Merge it into its base and probe the merged checkpoint with --checkpoint."
            ) from None
        raise AdapterNotLoadable(f"{path.name}: diffusers could not load this {kind} adapter: {why}") from None
    counts, nonzero = _adapter_layers(pipe, adapter)
    report.matched_layers, report.nonzero = counts, nonzero
    if not counts:
        if kind in ("loha", "lokr"):
            raise AdapterNotLoadable(
                f"{path.name} is a LyCORIS {kind.upper()} adapter; diffusers {diffusers.__version__} loaded none "
                "of its modules. Merge it into its base and probe the merged checkpoint with --checkpoint."
            )
        raise AdapterNotLoadable(
            f"{path.name}: the adapter loaded but matched no layer of this base ({type(pipe).__name__}); "
            "it is probably for another architecture"
        )
    if n_modules and report.total_matched < n_modules:
        report.warnings.append(
            f"only {report.total_matched} layers took the adapter, the file has updates for {n_modules} modules"
        )
    if not nonzero:
        report.warnings.append("the adapter's up-projections are all zero: it changes nothing")
    if scale != 1.0:
        pipe.set_adapters([adapter], adapter_weights=[scale])
    return report


# -- sampling ---------------------------------------------------------------------------------------


def denoiser(pipe: Any) -> Any:
    return getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)


class CondNoiseRecorder:
    """Forward hook on the denoiser: with classifier-free guidance the pipeline runs the unconditional
    and conditional halves in one batch ``[uncond; cond]``; the RMS of their difference per sample,
    averaged over the first ``steps`` calls, is the conditional-noise magnitude (Wen et al. 2024)."""

    def __init__(self, module: Any, steps: int) -> None:
        self.steps = steps
        self.batch = 0
        self.calls = 0
        self.used = 0
        self.acc: Any = None
        self.handle = module.register_forward_hook(self._hook)

    def start(self, batch: int) -> None:
        self.batch, self.calls, self.used, self.acc = batch, 0, 0, None

    def _hook(self, module: Any, args: Any, output: Any) -> None:
        self.calls += 1
        if self.calls > self.steps or self.batch == 0:
            return
        sample = output[0] if isinstance(output, tuple | list) else getattr(output, "sample", output)
        if getattr(sample, "shape", (0,))[0] != 2 * self.batch:
            return
        uncond, cond = sample.float().chunk(2)
        mag = (cond - uncond).flatten(1).pow(2).mean(1).sqrt()
        self.acc = mag if self.acc is None else self.acc + mag
        self.used += 1

    def result(self) -> np.ndarray | None:
        if self.acc is None or self.used == 0:
            return None
        out: np.ndarray = (self.acc / self.used).detach().cpu().double().numpy()
        return out

    def close(self) -> None:
        self.handle.remove()


def _accepts(pipe: Any, name: str) -> bool:
    try:
        return name in inspect.signature(pipe.__call__).parameters
    except (TypeError, ValueError):
        return False


def generate_batch(
    pipe: Any, prompts: Sequence[str], seeds: Sequence[int], settings: GenSettings, negative: str,
    recorder: CondNoiseRecorder | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 images (B, H, W, 3) and conditional-noise magnitudes (B,) or None. One CPU generator per
    image, so that a sample's starting noise depends on its seed alone, not on its batch or device. Its
    pixels are reproduced on the same device and software at the same number of images per call; on a
    GPU another batch size changes them (kernels are chosen by shape: docs/probe.md)."""
    import torch

    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    kwargs: dict[str, Any] = {
        "prompt": list(prompts),
        "generator": gens,
        "num_inference_steps": settings.steps,
        "guidance_scale": settings.guidance,
        "output_type": "np",
    }
    if settings.width:
        kwargs["width"] = settings.width
    if settings.height:
        kwargs["height"] = settings.height
    if settings.guidance > 1.0 and _accepts(pipe, "negative_prompt"):
        kwargs["negative_prompt"] = [negative] * len(prompts)
    if recorder is not None:
        recorder.start(len(prompts))
    with torch.inference_mode():
        out = pipe(**kwargs)
    images = np.asarray(out.images)
    if images.dtype != np.uint8:
        images = to_uint8(images)
    noise = recorder.result() if recorder is not None else None
    return images, noise


def _is_oom(e: BaseException) -> bool:
    import torch

    oom_types: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError,)
    if hasattr(torch, "OutOfMemoryError"):
        oom_types = (*oom_types, torch.OutOfMemoryError)
    return isinstance(e, oom_types) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class Job:
    index: int  # position in the grid (prompt-major, then seed)
    prompt: str
    seed: int


def run_jobs(
    pipe: Any,
    jobs: Sequence[Job],
    settings: GenSettings,
    negative: str,
    done: Callable[[Sequence[Job], np.ndarray, np.ndarray | None, int], None],
    note: Callable[[str], None] = lambda m: None,
    batch_size: int | None = None,
) -> int:
    """Generate ``jobs`` in batches; ``done(batch, images, noise, n)`` after each, ``n`` being the number
    of images generated together in that call (on a GPU a sample's pixels depend on it: see
    docs/probe.md). On running out of GPU memory the images of the failed call are halved (and ``note``
    says so), down to 1. Returns the batch size that worked."""
    bs = max(1, batch_size or settings.batch_size)
    den = denoiser(pipe)
    recorder = CondNoiseRecorder(den, settings.noise_steps) if den is not None and settings.noise_steps > 0 else None
    try:
        i = 0
        while i < len(jobs):
            batch = list(jobs[i : i + bs])
            out_of_memory = False
            try:
                images, noise = generate_batch(
                    pipe, [j.prompt for j in batch], [j.seed for j in batch], settings, negative, recorder
                )
            except Exception as e:  # noqa: BLE001 - only memory exhaustion is handled here
                if not _is_oom(e):
                    raise
                out_of_memory = True
            if out_of_memory:
                # only now, outside the handler: until it ends, the exception's traceback holds the failed
                # call's frames and with them its activations, so no memory could be given back
                if recorder is not None:
                    recorder.start(0)
                free_memory()
                if len(batch) == 1:
                    raise ProbeError(
                        "out of GPU memory even with one image per batch; use a smaller resolution, "
                        "--dtype float16/bfloat16 or a larger GPU"
                    )
                bs = len(batch) // 2
                note(f"out of GPU memory with {len(batch)} images per batch; halving the batch to {bs}")
                continue
            done(batch, images, noise, len(batch))
            i += len(batch)
    finally:
        if recorder is not None:
            recorder.close()
    return bs
