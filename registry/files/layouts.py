"""Folder layouts: what a *folder* of model files is.

Part one (issue 3): diffusers pipeline folders (``model_index.json``), single diffusers components
(``config.json`` beside ``diffusion_pytorch_model*.safetensors``) and PEFT adapter folders
(``adapter_config.json`` beside ``adapter_model.safetensors``). Each is identified from the shapes of its
weights where they are present (safetensors headers, bounded reads) and from its JSON configs otherwise;
a config that contradicts the shapes is a finding.

Part two (issue 7) adds discovery of the Hugging Face cache and A1111 / ComfyUI model trees here, in
functions of its own.

Nothing here executes or unpickles anything; ``.bin`` weights are listed, not read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from registry.errors import SafetensorsError
from registry.findings import Finding, Severity, finding, rule
from registry.identify import Evidence, Identity, identify, normalize_arch_claim

R_LAYOUT_BAD_CONFIG = rule(
    "layout.bad-config",
    Severity.LOW,
    "A folder's JSON config (model_index.json, config.json, adapter_config.json) does not parse",
)
R_LAYOUT_MISMATCH = rule(
    "layout.config-arch-mismatch",
    Severity.MEDIUM,
    "A folder's config names an architecture that its weights' shapes contradict",
)
R_LAYOUT_MISSING = rule(
    "layout.missing-weights",
    Severity.LOW,
    "A folder's config names a component whose weights are missing",
)

_MAX_CONFIG = 4 << 20

#: diffusers pipeline class → (arch, variant)
PIPELINE_ARCH: dict[str, tuple[str, str | None]] = {
    "StableDiffusionPipeline": ("sd1", None),
    "StableDiffusionImg2ImgPipeline": ("sd1", None),
    "StableDiffusionInpaintPipeline": ("sd1", "inpaint"),
    "StableDiffusionXLPipeline": ("sdxl-base", None),
    "StableDiffusionXLImg2ImgPipeline": ("sdxl-base", None),
    "StableDiffusionXLInpaintPipeline": ("sdxl-base", "inpaint"),
    "StableDiffusion3Pipeline": ("sd3", None),
    "FluxPipeline": ("flux1", None),
    "FluxFillPipeline": ("flux1", "fill"),
    "FluxKontextPipeline": ("flux1", "dev"),
    "Flux2Pipeline": ("other:flux2", None),
    "ChromaPipeline": ("other:chroma", None),
    "WanPipeline": ("other:wan", None),
    "WanImageToVideoPipeline": ("other:wan", "i2v"),
    "QwenImagePipeline": ("other:qwen-image", None),
    "QwenImageEditPipeline": ("other:qwen-image", "edit"),
    "QwenImageEditPlusPipeline": ("other:qwen-image", "edit"),
    "LTXPipeline": ("other:ltx", None),
    "LTXConditionPipeline": ("other:ltx", None),
    "HunyuanVideoPipeline": ("other:hunyuan-video", None),
    "HunyuanDiTPipeline": ("other:hunyuan-dit", None),
    "HiDreamImagePipeline": ("other:hidream", None),
    "Lumina2Pipeline": ("other:lumina2", None),
    "ZImagePipeline": ("other:z-image", None),
    "AuraFlowPipeline": ("other:auraflow", None),
    "PixArtAlphaPipeline": ("other:pixart", None),
    "PixArtSigmaPipeline": ("other:pixart", None),
    "SanaPipeline": ("other:sana", None),
    "KolorsPipeline": ("other:kolors", None),
    "StableCascadeDecoderPipeline": ("other:stable-cascade", None),
    "StableCascadePriorPipeline": ("other:stable-cascade", None),
    "StableVideoDiffusionPipeline": ("other:svd", None),
    "MochiPipeline": ("other:mochi", None),
}

#: diffusers / transformers component class → kind
COMPONENT_KIND: dict[str, str] = {
    "UNet2DConditionModel": "checkpoint",
    "AutoencoderKL": "vae",
    "AutoencoderTiny": "vae",
    "AutoencoderKLWan": "vae",
    "AutoencoderKLQwenImage": "vae",
    "AutoencoderKLLTXVideo": "vae",
    "ControlNetModel": "controlnet",
    "FluxControlNetModel": "controlnet",
    "SD3ControlNetModel": "controlnet",
    "T2IAdapter": "t2i_adapter",
    "CLIPTextModel": "text_encoder",
    "CLIPTextModelWithProjection": "text_encoder",
    "T5EncoderModel": "text_encoder",
    "UMT5EncoderModel": "text_encoder",
    "Qwen2_5_VLForConditionalGeneration": "text_encoder",
}

_DENOISERS = ("unet", "transformer", "prior", "decoder")
_WEIGHT_NAMES = ("diffusion_pytorch_model", "model", "adapter_model", "pytorch_model")


@dataclass(frozen=True)
class FolderIdentity:
    """What a folder is: its layout, the identity of the model it holds, and its weight files."""

    layout: str  # "diffusers-pipeline", "diffusers-component", "peft-adapter"
    path: str
    identity: Identity
    #: weight files relative to the folder (what a scan of the folder would register)
    files: tuple[str, ...] = ()
    #: the parsed config that named the layout (model_index.json / config.json / adapter_config.json)
    config: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "path": self.path,
            "identity": self.identity.to_dict(),
            "files": list(self.files),
            "config": dict(self.config),
            "findings": [f.as_dict() for f in self.findings],
        }


def _read_json(path: Path, findings: list[Finding]) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > _MAX_CONFIG:
            findings.append(finding(R_LAYOUT_BAD_CONFIG.id, f"{path.name} is larger than {_MAX_CONFIG:,} bytes", file=str(path)))
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        findings.append(finding(R_LAYOUT_BAD_CONFIG.id, f"{path.name} does not parse: {e}", file=str(path)))
        return None
    if not isinstance(doc, dict):
        findings.append(finding(R_LAYOUT_BAD_CONFIG.id, f"{path.name} is not a JSON object", file=str(path)))
        return None
    return doc


def _weight_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf"):
            out.append(p)
    return out


def _shapes(files: list[Path]) -> tuple[list[tuple[str, tuple[int, ...]]], dict[str, str] | None, list[str]]:
    """Tensor names and shapes of every safetensors file (a sharded component is one model)."""
    from registry.files.safetensors import read_header

    pairs: list[tuple[str, tuple[int, ...]]] = []
    metadata: dict[str, str] | None = None
    problems: list[str] = []
    for f in files:
        if f.suffix != ".safetensors":
            continue
        try:
            h = read_header(f)
        except (SafetensorsError, OSError) as e:
            problems.append(f"{f.name}: {e}")
            continue
        pairs += [(t.name, t.shape) for t in h.tensors]
        if h.metadata and metadata is None:
            metadata = dict(h.metadata)
    return pairs, metadata, problems


def _repo_name(s: str) -> str:
    """``org/name`` (a Hub repo id) → ``name``; paths → their last part."""
    return s.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def identify_diffusers_component(folder: str | Path) -> FolderIdentity | None:
    """A single diffusers/transformers component folder: ``config.json`` with a ``_class_name`` or
    ``architectures`` and its weights. None when the folder is not one."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        return None
    findings: list[Finding] = []
    cfg = _read_json(cfg_path, findings)
    if cfg is None:
        return None
    cls = cfg.get("_class_name")
    if not isinstance(cls, str):
        archs = cfg.get("architectures")
        cls = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    if cls is None:
        return None
    files = _weight_files(folder)
    pairs, metadata, problems = _shapes(files)
    ident, fs = identify(pairs, metadata)
    findings += fs
    ev: list[Evidence] = [Evidence(f"config.json _class_name {cls}")]
    ev += [Evidence(f"unreadable weights: {p}") for p in problems]
    kind = COMPONENT_KIND.get(cls)
    if not pairs:
        arch, variant = _arch_from_component_config(cls, cfg)
        ident = Identity(kind=kind or "unknown", arch=arch or "unknown", arch_variant=variant,
                         confidence="medium" if arch else "none", kind_confidence="medium" if kind else "none",
                         source="config" if arch else "none", key_style="diffusers")  # fmt: skip
        if files:
            ev.append(Evidence("weights are not safetensors; identified from config.json only"))
        else:
            findings.append(finding(R_LAYOUT_MISSING.id, f"{folder.name}: config.json without weight files", folder=str(folder)))
    else:
        arch, _ = _arch_from_component_config(cls, cfg)
        findings += _config_vs_shapes(ident, arch, f"{cfg_path.name} ({cls})")
    ident = replace(ident, evidence=tuple(ev) + ident.evidence)
    return FolderIdentity("diffusers-component", str(folder), ident, tuple(f.name for f in files), cfg, tuple(findings))


def _arch_from_component_config(cls: str, cfg: Mapping[str, Any]) -> tuple[str | None, str | None]:
    from registry.identify import CONTEXT_WIDTH_ARCH

    if cls == "UNet2DConditionModel" or cls == "ControlNetModel":
        ctx = cfg.get("cross_attention_dim")
        arch = CONTEXT_WIDTH_ARCH.get(ctx) if isinstance(ctx, int) else None
        if arch == "sdxl-base" and isinstance(cfg.get("block_out_channels"), list) and 384 in cfg["block_out_channels"]:
            arch = "sdxl-refiner"
        variant = "inpaint" if cfg.get("in_channels") == 9 else None
        return arch, variant
    if cls in ("FluxTransformer2DModel", "FluxControlNetModel"):
        g = cfg.get("guidance_embeds")
        return "flux1", ("dev" if g is True else "schnell" if g is False else None)
    if cls in ("SD3Transformer2DModel", "SD3ControlNetModel"):
        return "sd3", None
    simple = {
        "WanTransformer3DModel": "other:wan",
        "QwenImageTransformer2DModel": "other:qwen-image",
        "LTXVideoTransformer3DModel": "other:ltx",
        "HunyuanVideoTransformer3DModel": "other:hunyuan-video",
        "Flux2Transformer2DModel": "other:flux2",
        "ChromaTransformer2DModel": "other:chroma",
        "HiDreamImageTransformer2DModel": "other:hidream",
        "Lumina2Transformer2DModel": "other:lumina2",
        "ZImageTransformer2DModel": "other:z-image",
        "AuraFlowTransformer2DModel": "other:auraflow",
        "PixArtTransformer2DModel": "other:pixart",
        "SanaTransformer2DModel": "other:sana",
        "AutoencoderKLWan": "other:wan",
        "AutoencoderKLQwenImage": "other:qwen-image",
        "AutoencoderKLLTXVideo": "other:ltx",
    }
    return simple.get(cls), None


def _config_vs_shapes(ident: Identity, claimed: str | None, where: str) -> list[Finding]:
    if claimed is None or ident.arch == "unknown" or ident.source != "shapes":
        return []
    if claimed == ident.arch:
        return []
    return [
        finding(
            R_LAYOUT_MISMATCH.id,
            f"{where} names {claimed}, but the weights' shapes say {ident.arch}",
            claimed_arch=claimed,
            shape_arch=ident.arch,
        )
    ]


def identify_diffusers_pipeline(folder: str | Path) -> FolderIdentity | None:
    """A diffusers pipeline folder (``model_index.json`` + one subfolder per component). The denoiser's
    weights decide the architecture when present; the pipeline class otherwise."""
    folder = Path(folder)
    idx = folder / "model_index.json"
    if not idx.is_file():
        return None
    findings: list[Finding] = []
    cfg = _read_json(idx, findings)
    if cfg is None:
        ident = Identity(kind="unknown", evidence=(Evidence("model_index.json does not parse"),))
        return FolderIdentity("diffusers-pipeline", str(folder), ident, (), {}, tuple(findings))
    cls = cfg.get("_class_name") if isinstance(cfg.get("_class_name"), str) else None
    components = [k for k, v in cfg.items() if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[0] is not None]
    files: list[str] = []
    ev: list[Evidence] = [Evidence(f"model_index.json: {cls or 'no _class_name'} with components {', '.join(components)}")]
    denoiser_ident: Identity | None = None
    for comp in components:
        sub = folder / comp
        wf = _weight_files(sub)
        files += [f"{comp}/{f.name}" for f in wf]
        ccls = str(cfg[comp][1])
        if not wf and (ccls in COMPONENT_KIND or ccls.endswith("Model") or ccls.startswith("Autoencoder")):
            findings.append(
                finding(R_LAYOUT_MISSING.id, f"component {comp} ({ccls}) has no weight files", component=comp, cls=ccls)
            )
        if comp in _DENOISERS and denoiser_ident is None and wf:
            pairs, metadata, problems = _shapes(wf)
            ev += [Evidence(f"unreadable weights: {p}") for p in problems]
            if pairs:
                denoiser_ident, fs = identify(pairs, metadata)
                findings += fs
    arch_cls, variant_cls = PIPELINE_ARCH.get(cls or "", (None, None))
    comps = tuple(
        ("te" + c[len("text_encoder_"):] if c.startswith("text_encoder_") else "te1") if c.startswith("text_encoder") else c
        for c in components
        if c in _DENOISERS or c.startswith("text_encoder") or c == "vae"
    )
    if denoiser_ident is not None and denoiser_ident.arch != "unknown":
        ident = replace(
            denoiser_ident,
            kind="checkpoint",
            key_style="diffusers-pipeline",
            components=comps,
            evidence=tuple(ev) + denoiser_ident.evidence,
            arch_variant=denoiser_ident.arch_variant or variant_cls,
        )
        findings += _config_vs_shapes(denoiser_ident, arch_cls, f"model_index.json ({cls})")
    else:
        # no readable denoiser weights: the unet/transformer config, then the pipeline class
        arch, variant, source = arch_cls, variant_cls, "config"
        for comp in _DENOISERS:
            ccfg_path = folder / comp / "config.json"
            if ccfg_path.is_file():
                ccfg = _read_json(ccfg_path, findings)
                dcls = ccfg.get("_class_name") if ccfg else None
                if ccfg and isinstance(dcls, str):
                    a2, v2 = _arch_from_component_config(dcls, ccfg)
                    if a2:
                        ev.append(Evidence(f"{comp}/config.json: {dcls} → {a2}" + (f" ({v2})" if v2 else "")))
                        arch, variant = a2, v2 or variant
                break
        if arch is None and cls:
            a3, v3, _ = normalize_arch_claim(_repo_name(str(cfg.get("_name_or_path", ""))) or None)
            arch, variant = a3, v3
            source = "metadata" if a3 else "none"
        if cls and arch_cls is not None:
            ev.append(Evidence(f"pipeline class {cls} → {arch_cls}"))
        ident = Identity(
            kind="checkpoint",
            key_style="diffusers-pipeline",
            arch=arch or "unknown",
            arch_variant=variant,
            components=comps,
            confidence="medium" if arch else "none",
            kind_confidence="high",
            source=source if arch else "none",
            evidence=tuple(ev),
        )
    return FolderIdentity("diffusers-pipeline", str(folder), ident, tuple(files), cfg, tuple(findings))


_PEFT_TYPES = {
    "LORA": ("lora", "peft-lora"),
    "LOHA": ("lycoris", "loha"),
    "LOKR": ("lycoris", "lokr"),
    "IA3": ("lycoris", "ia3"),
    "OFT": ("lycoris", "oft"),
    "BOFT": ("lycoris", "boft"),
}


def identify_peft_adapter(folder: str | Path) -> FolderIdentity | None:
    """A PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    folder = Path(folder)
    cfg_path = folder / "adapter_config.json"
    if not cfg_path.is_file():
        return None
    findings: list[Finding] = []
    cfg = _read_json(cfg_path, findings) or {}
    files = [f for f in _weight_files(folder) if f.name.startswith("adapter_model")] or _weight_files(folder)
    pairs, metadata, problems = _shapes(files)
    peft_type = str(cfg.get("peft_type") or "").upper()
    kind, adapter_type = _PEFT_TYPES.get(peft_type, ("lora", None))
    if peft_type == "LORA" and cfg.get("use_dora") is True:
        kind, adapter_type = "lycoris", "dora"
    ev = [Evidence(f"adapter_config.json: peft_type {peft_type or '?'}, r={cfg.get('r')}, lora_alpha={cfg.get('lora_alpha')}")]
    ev += [Evidence(f"unreadable weights: {p}") for p in problems]
    base = cfg.get("base_model_name_or_path")
    base_arch, base_variant, _ = normalize_arch_claim(_repo_name(base)) if isinstance(base, str) and base else (None, None, None)
    claims: tuple[Mapping[str, Any], ...] = ()
    if isinstance(base, str) and base:
        ev.append(Evidence(f"base_model_name_or_path {base!r}"))
        claims = ({"key": "adapter_config.base_model_name_or_path", "value": base, "arch": base_arch,
                   "variant": base_variant, "kind": None},)  # fmt: skip
    if pairs:
        ident, fs = identify(pairs, metadata)
        findings += fs
        if ident.arch == "unknown" and base_arch:
            ident = replace(ident, arch=base_arch, arch_variant=base_variant, confidence="low", source="metadata")
        elif ident.source == "shapes" and base_arch and base_arch != ident.arch and not base_arch.startswith("other:"):
            findings.append(
                finding(
                    R_LAYOUT_MISMATCH.id,
                    f"adapter_config.json names base {base!r} ({base_arch}), but the adapter's shapes say {ident.arch}",
                    claimed_arch=base_arch,
                    shape_arch=ident.arch,
                )
            )
        ident = replace(ident, kind=kind if ident.kind in ("lora", "lycoris", "unknown") else ident.kind,
                        adapter_type=adapter_type or ident.adapter_type, evidence=tuple(ev) + ident.evidence,
                        claims=tuple(ident.claims) + claims)  # fmt: skip
    else:
        if not files:
            findings.append(finding(R_LAYOUT_MISSING.id, "adapter_config.json without adapter weights", folder=str(folder)))
        ident = Identity(kind=kind, adapter_type=adapter_type, key_style="peft", arch=base_arch or "unknown",
                         arch_variant=base_variant, confidence="low" if base_arch else "none", kind_confidence="medium",
                         source="metadata" if base_arch else "none", evidence=tuple(ev), claims=claims)  # fmt: skip
    return FolderIdentity("peft-adapter", str(folder), ident, tuple(f.name for f in files), cfg, tuple(findings))


def identify_folder(folder: str | Path) -> FolderIdentity | None:
    """The first layout that fits: diffusers pipeline, PEFT adapter, diffusers component; else None."""
    for fn in (identify_diffusers_pipeline, identify_peft_adapter, identify_diffusers_component):
        r = fn(folder)
        if r is not None:
            return r
    return None
