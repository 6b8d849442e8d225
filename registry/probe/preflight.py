"""Checks made before any model loads (no torch, no diffusers): from what the registry already knows of
the probed file and of the base, refuse in one line what the probe cannot measure.

* a textual-inversion embedding (the probe measures LoRAs and checkpoints; see docs/probe.md);
* a LyCORIS form that diffusers cannot load (LoHa, LoKr, OFT/BOFT, IA³, GLoRA, full-difference),
  naming the keys that make it so;
* an adapter for another architecture than the base's ("this LoRA is for FLUX.1; the base is SD 1.x"),
  from the registry's identification of both (``registry.identify``: shapes, not names). A base that is
  not registered is identified the same way from its safetensors header, or, for a diffusers folder,
  from its ``model_index.json`` and denoiser config.

Only confident answers refuse: an architecture that identification could not decide, or a base whose
family is unknown (a custom or test pipeline), lets the probe go on to its own checks after loading
(adapter layers matched, non-zero update).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from registry.errors import UsageError

#: adapter types (registry.identify) that diffusers cannot load into a pipeline
UNLOADABLE = {
    "loha": "hada_w1_a, hada_w1_b, hada_w2_a, hada_w2_b",
    "lokr": "lokr_w1, lokr_w2 (or their _a/_b factors)",
    "oft": "oft_blocks",
    "boft": "oft_blocks (butterfly)",
    "ia3": "a bare per-channel weight and on_input",
    "glora": "a1, a2, b1, b2",
    "full-diff": "diff, diff_b",
}
_KEY_MARKS = {
    "loha": (".hada_",),
    "lokr": (".lokr_",),
    "oft": (".oft_blocks",),
    "boft": (".oft_blocks",),
    "ia3": (".on_input", ".weight"),
    "glora": (".a1.weight", ".a2.weight", ".b1.weight", ".b2.weight"),
    "full-diff": (".diff", ".diff_b"),
}

#: architecture → family that decides compatibility (an SDXL LoRA fits the base and the refiner's UNet
#: shapes only partly, but they are one family to diffusers' loader)
FAMILY = {"sd1": "sd1", "sd2": "sd2", "sdxl-base": "sdxl", "sdxl-refiner": "sdxl", "sd3": "sd3", "flux1": "flux1"}
FAMILY_LABEL = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "sd3": "SD 3", "flux1": "FLUX.1"}


@dataclass(frozen=True)
class Known:
    """What is known of one model: kind, adapter type, architecture, and how it was found."""

    kind: str
    adapter_type: str | None
    arch: str
    confidence: str
    source: str  # "registry", "header", "model_index.json"
    details: dict[str, Any]

    @property
    def family(self) -> str | None:
        if self.confidence not in ("high", "medium"):
            return None
        return FAMILY.get(self.arch) or (self.arch if self.arch not in ("unknown", "") else None)

    @property
    def label(self) -> str:
        fam = self.family
        if fam is None:
            return "unknown"
        if fam in FAMILY_LABEL:
            return FAMILY_LABEL[fam]
        from registry.archs import ARCH_LABELS

        return ARCH_LABELS.get(self.arch, self.arch.split(":", 1)[-1])


def from_registry(con: duckdb.DuckDBPyConnection, sha256: str) -> Known | None:
    row = con.execute(
        "SELECT kind, adapter_type, arch, confidence, CAST(details AS VARCHAR) FROM identity WHERE blob_sha256 = ? LIMIT 1",
        [sha256],
    ).fetchone()
    if row is None:
        return None
    details = json.loads(row[4]) if row[4] else {}
    return Known(row[0], row[1], row[2], row[3], "registry", details if isinstance(details, dict) else {})


def from_header(path: Path) -> Known | None:
    from registry.files.safetensors import read_header
    from registry.identify import identify_header

    header = read_header(path)
    if not header.valid:
        return None
    ident, _ = identify_header(header)
    return Known(ident.kind, ident.adapter_type, ident.arch, ident.confidence, "header", dict(ident.details))


_PIPELINE_FAMILY = {
    "StableDiffusionXLPipeline": "sdxl-base", "StableDiffusionXLImg2ImgPipeline": "sdxl-refiner",
    "StableDiffusion3Pipeline": "sd3", "FluxPipeline": "flux1",
}
_CROSS_ATTENTION = {768: "sd1", 1024: "sd2", 2048: "sdxl-base"}


def from_pipeline_folder(folder: Path) -> Known | None:
    """A diffusers folder's architecture from ``model_index.json`` (and the UNet's cross-attention width
    for SD 1.x/2.x, which share one pipeline class)."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cls = str(index.get("_class_name", ""))
    arch = _PIPELINE_FAMILY.get(cls)
    if arch is None and cls.startswith("StableDiffusion"):
        try:
            cfg = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
            arch = _CROSS_ATTENTION.get(int(cfg.get("cross_attention_dim") or 0))
        except (OSError, ValueError, TypeError):
            arch = None
    if arch is None:
        return Known("checkpoint", None, "unknown", "none", "model_index.json", {"class": cls})
    return Known("checkpoint", None, arch, "high", "model_index.json", {"class": cls})


def describe_base(con: duckdb.DuckDBPyConnection | None, base_sha: str | None, base_ref: str) -> Known | None:
    """What is known of the base without loading it."""
    if con is not None and base_sha is not None:
        k = from_registry(con, base_sha)
        if k is not None:
            return k
    p = Path(base_ref)
    if p.is_file() and p.suffix == ".safetensors":
        return from_header(p)
    if p.is_dir():
        return from_pipeline_folder(p)
    try:  # a Hub id in the local cache
        from huggingface_hub import snapshot_download

        return from_pipeline_folder(Path(snapshot_download(base_ref, local_files_only=True)))
    except Exception:  # noqa: BLE001 - not in the cache: the loader says so later
        return None


def _version(dist: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "(not installed)"


def _example_keys(path: Path, adapter_type: str, n: int = 2) -> list[str]:
    from registry.files.safetensors import read_header

    marks = _KEY_MARKS.get(adapter_type, ())
    names = [t.name for t in read_header(path).tensors]
    hits = [x for x in names if any(m in x for m in marks)]
    return hits[:n] or names[:n]


def check(model: Known | None, path: Path, base: Known | None, base_ref: str, checkpoint: bool) -> None:
    """Raise :class:`UsageError` (one line, exit 2) when the probe cannot measure ``model`` on ``base``."""
    name = path.name
    if model is None:
        return
    if model.kind == "embedding":
        token = model.details.get("token")
        raise UsageError(
            f"{name} is a textual-inversion embedding ({model.label}"
            + (f", token {token!r}" if token else "")
            + "), not a LoRA or checkpoint; the probe does not measure embeddings (it would need the token in "
            "every prompt and a with/without-token design: not built yet)"
        )
    if not checkpoint and model.adapter_type in UNLOADABLE:
        keys = ", ".join(_example_keys(path, model.adapter_type))
        raise UsageError(
            f"{name} is a LyCORIS {model.adapter_type.upper()} adapter (keys like {keys}: "
            f"{UNLOADABLE[model.adapter_type]}), which diffusers {_version('diffusers')} cannot load. "
            "Merge it into its base and probe the merged checkpoint with --checkpoint."
        )
    if checkpoint and model.kind not in ("checkpoint", "unknown"):
        raise UsageError(f"{name} is a {model.kind}, not a checkpoint: drop --checkpoint to probe it as an adapter")
    if not checkpoint and model.kind == "checkpoint":
        raise UsageError(f"{name} is a checkpoint, not an adapter: probe it with --checkpoint against its base")
    if not checkpoint and model.kind not in ("lora", "lycoris", "unknown"):
        raise UsageError(f"{name} is a {model.kind.replace('_', ' ')}, not an adapter that the probe can switch on and off")
    if base is None or model.family is None or base.family is None:
        return
    if model.family != base.family:
        what = "checkpoint" if checkpoint else ("LoRA" if model.kind == "lora" else model.kind)
        raise UsageError(
            f"{name}: this {what} is for {model.label}; the base {Path(base_ref).name or base_ref} is {base.label} "
            f"(identified from {'the registry' if base.source == 'registry' else base.source})"
        )
