"""Embedded training metadata normalised into typed facts (kohya ``ss_*``, ModelSpec, diffusers,
ai-toolkit, A1111 merges), and embedded hash claims checked against computed hashes.

CONTRACT (shared with declarations, exhibits and the probe): :class:`TrainingFacts` and
:func:`parse_training_metadata`. Fields may be added; the ones below keep their names and meaning.

Every metadata value is a string written by someone else's program: ``"True"``, ``"None"``, JSON text
that may contain ``NaN``, Python reprs, numbers with units. Parsing is lenient and total: a value that
does not parse leaves its field empty and becomes a finding; nothing here raises on bad input.

Hash claims (:func:`check_hash_claims`) are compared with the hashes computed from the bytes: kohya's
``sshs_model_hash`` and ModelSpec's ``modelspec.hash_sha256`` are the sha256 of the tensor data
(AutoV3), ``sshs_legacy_hash`` is the AutoV1 of the file as kohya serialised it before adding the
``sshs_*`` keys (so a mismatch there is unverifiable rather than wrong). ``ss_sd_model_hash`` /
``ss_new_sd_model_hash`` name the *base* model and are kept for linking adapters to bases.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from registry.findings import Finding, Severity, finding, rule

R_BAD_JSON = rule(
    "training.bad-json",
    Severity.LOW,
    "A metadata field that should hold JSON does not parse",
)
R_BAD_VALUE = rule(
    "training.bad-value",
    Severity.INFO,
    "A metadata value does not parse as the number, flag or date its field holds",
)
R_NAN = rule(
    "training.non-finite-value",
    Severity.INFO,
    "A metadata field holds NaN or Infinity",
)
R_IMAGE_COUNT = rule(
    "training.image-count-mismatch",
    Severity.LOW,
    "The trainer's image count disagrees with its own per-folder counts",
)
R_HASH_MISMATCH = rule(
    "training.hash-claim-mismatch",
    Severity.MEDIUM,
    "An embedded hash of this file's own weights does not match the weights",
    "The tensor data changed after the trainer hashed it (resized, merged, pruned or converted), or the "
    "tool wrote a wrong value. AutoV3 is unaffected by metadata edits, so this is about the weights.",
)
R_HASH_PLACEHOLDER = rule(
    "training.hash-claim-placeholder",
    Severity.INFO,
    "An embedded hash is a placeholder (the sha256 of empty input, or zeros)",
    "ai-toolkit wrote the empty-string sha256 into every LoRA; such a value identifies nothing.",
)
R_HASH_MALFORMED = rule(
    "training.hash-claim-malformed",
    Severity.LOW,
    "An embedded hash is not a hexadecimal digest",
)


@dataclass
class DatasetDir:
    """One training folder: kohya ``ss_dataset_dirs`` / ``ss_datasets`` subsets."""

    name: str
    n_repeats: int | None = None
    img_count: int | None = None
    is_reg: bool = False
    class_tokens: str | None = None


@dataclass
class TrainingFacts:
    trainer: str | None = None  # "kohya-ss/sd-scripts", "ai-toolkit", "diffusers", "OneTrainer", …
    trainer_version: str | None = None  # version or commit hash
    sources: list[str] = field(default_factory=list)  # metadata families seen: "kohya", "modelspec", …
    # base model
    base_model_name: str | None = None
    base_model_version: str | None = None  # ss_base_model_version, e.g. "sdxl_base_v1-0"
    base_model_hashes: dict[str, str] = field(default_factory=dict)  # {"autov1": …, "sha256": …}
    architecture_claim: str | None = None  # modelspec.architecture, verbatim
    v2: bool | None = None
    # network
    network_module: str | None = None
    network_dim: int | None = None  # None also when "Dynamic"
    network_alpha: float | None = None
    network_args: dict[str, Any] = field(default_factory=dict)
    # data
    num_train_images: int | None = None  # kohya: already multiplied by repeats
    num_reg_images: int | None = None
    datasets: list[DatasetDir] = field(default_factory=list)
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)  # {dir: {tag: count}}
    trigger_words: list[str] = field(default_factory=list)
    # schedule
    epochs: int | None = None  # ss_num_epochs (planned)
    epoch: int | None = None  # ss_epoch (reached when saved)
    max_train_steps: int | None = None
    steps: int | None = None  # ss_steps (done when saved)
    batch_size: int | None = None
    resolution: str | None = None
    learning_rate: float | None = None
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    optimizer: str | None = None
    seed: int | None = None
    started_at: str | None = None  # ISO 8601 UTC
    finished_at: str | None = None
    # publisher fields
    title: str | None = None
    author: str | None = None
    description: str | None = None
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)
    # embedded hash claims, verbatim: {"sshs_model_hash": "…", "modelspec.hash_sha256": "0x…", …}
    hash_claims: dict[str, str] = field(default_factory=dict)
    # -- added by issue 3 (names and meanings stable from here on) ----------------------------------
    output_name: str | None = None  # ss_output_name, or ai-toolkit "name"
    session_id: str | None = None  # ss_session_id
    training_comment: str | None = None  # ss_training_comment
    saved_at: str | None = None  # modelspec.date (when the file was written), ISO 8601 as given
    vae_name: str | None = None  # ss_vae_name
    lr_scheduler: str | None = None
    mixed_precision: str | None = None
    clip_skip: int | None = None
    noise_offset: float | None = None
    num_batches_per_epoch: int | None = None
    gradient_accumulation_steps: int | None = None
    prediction_type: str | None = None  # modelspec.prediction_type
    #: where each trigger word came from: {word: "modelspec.trigger_phrase" | "folder:10_ohwx" | "tags:…"}
    trigger_sources: dict[str, str] = field(default_factory=dict)
    #: PEFT / diffusers LoRA config (``lora_adapter_metadata``), JSON-decoded
    peft_config: dict[str, Any] = field(default_factory=dict)
    #: A1111 checkpoint merger: ``sd_merge_recipe`` (decoded) and ``sd_merge_models`` as a list of
    #: {"sha256", "name", "legacy_hash"}
    merge_recipe: dict[str, Any] = field(default_factory=dict)
    merge_models: list[dict[str, Any]] = field(default_factory=list)
    #: ai-toolkit ``software`` (decoded)
    software: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def distinct_images(self) -> int | None:
        """Distinct training images: the sum of ``img_count`` over non-regularisation folders."""
        counts = [d.img_count for d in self.datasets if not d.is_reg and d.img_count is not None]
        return sum(counts) if counts else None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingFacts:
        """Rebuild facts from :meth:`to_dict` output (unknown keys are ignored)."""
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        kw["datasets"] = [
            DatasetDir(**{k: v for k, v in x.items() if k in DatasetDir.__dataclass_fields__})
            for x in d.get("datasets") or []
            if isinstance(x, Mapping)
        ]
        return cls(**kw)


# ---------------------------------------------------------------------------------------------------
# lenient value parsing


class _Parser:
    """Reads one metadata map, collecting findings instead of raising."""

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        self.md = metadata
        self.findings: list[Finding] = []

    def text(self, key: str) -> str | None:
        v = self.md.get(key)
        if v is None:
            return None
        if not isinstance(v, str):
            v = json.dumps(v) if not isinstance(v, bool | int | float) else str(v)
        s = v.strip()
        if s == "" or s.lower() in ("none", "null"):
            return None
        return s

    def _bad(self, key: str, want: str) -> None:
        raw = str(self.md.get(key))
        self.findings.append(
            finding(R_BAD_VALUE.id, f"{key}={_clip(raw)!r} is not {want}", key=key, value=_clip(raw, 200), expected=want)
        )

    def integer(self, key: str, allow: tuple[str, ...] = ()) -> int | None:
        s = self.text(key)
        if s is None or s.lower() in allow:
            return None
        v = _to_int(s)
        if v is None or abs(v) > _MAX_INT:
            self._bad(key, "an integer" if v is None else f"an integer of at most {_MAX_INT}")
            return None
        return v

    def number(self, key: str, allow: tuple[str, ...] = ()) -> float | None:
        s = self.text(key)
        if s is None or s.lower() in allow:
            return None
        v = _to_float(s)
        if v is None:
            # kohya writes a list for per-text-encoder learning rates on SDXL: "[0.0001, 0.0001]"
            seq = _loads(s)
            if isinstance(seq, list) and seq:
                v = _to_float(str(seq[0]))
        if v is None:
            self._bad(key, "a number")
            return None
        if not math.isfinite(v):
            self.findings.append(finding(R_NAN.id, f"{key} is {s}", key=key))
            return None
        return v

    def flag(self, key: str) -> bool | None:
        s = self.text(key)
        if s is None:
            return None
        low = s.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        self._bad(key, "True or False")
        return None

    def timestamp(self, key: str) -> str | None:
        s = self.text(key)
        if s is None:
            return None
        v = _to_float(s)
        if v is not None and 1e9 <= v <= 4.2e9:  # 2001 … 2103: seconds since the epoch
            return datetime.fromtimestamp(v, tz=timezone.utc).isoformat().replace("+00:00", "Z")
        if v is not None and 1e12 <= v <= 4.2e12:  # milliseconds
            return datetime.fromtimestamp(v / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
        iso = _iso(s)
        if iso is not None:
            return iso
        self._bad(key, "a Unix timestamp or an ISO 8601 date")
        return None

    def json(self, key: str) -> Any:
        s = self.text(key)
        if s is None:
            return None
        v = _loads(s)
        if v is _FAIL:
            self.findings.append(
                finding(R_BAD_JSON.id, f"{key} does not parse as JSON: {_clip(s)!r}", key=key, value=_clip(s, 200))
            )
            return None
        clean, nonfinite = _clean(v)
        if nonfinite:
            self.findings.append(
                finding(R_NAN.id, f"{key} holds {nonfinite} NaN/Infinity value(s), read as null", key=key, count=nonfinite)
            )
        return clean


_FAIL = object()
_MAX_INT = 2**63 - 1
#: counts (images, repeats, tag occurrences) above this are not counts
_MAX_COUNT = 10**12


def _loads(s: str) -> Any:
    try:
        return json.loads(s)  # Python's json accepts NaN / Infinity
    except (ValueError, RecursionError):
        pass
    if len(s) <= 1_000_000:
        try:
            return ast.literal_eval(s)  # Python reprs ("{'a': 1}", "[1e-4, None]")
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            pass
    return _FAIL


def _clean(v: Any, depth: int = 0) -> tuple[Any, int]:
    """Replace non-finite floats with None (JSON cannot hold them); count them. Tuples become lists."""
    if depth > 64:
        return None, 0
    if isinstance(v, float):
        return (v, 0) if math.isfinite(v) else (None, 1)
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        n = 0
        for k, x in v.items():
            c, m = _clean(x, depth + 1)
            out[str(k)] = c
            n += m
        return out, n
    if isinstance(v, list | tuple | set):
        items: list[Any] = []
        n = 0
        for x in v:
            c, m = _clean(x, depth + 1)
            items.append(c)
            n += m
        return items, n
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace"), 0
    if v is None or isinstance(v, str | int | bool):
        return v, 0
    return str(v), 0


def _to_int(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        pass
    f = _to_float(s)
    if f is not None and math.isfinite(f) and f == int(f):
        return int(f)
    return None


def _to_float(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _iso(s: str) -> str | None:
    t = s.strip()
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
        return dt.isoformat().replace("+00:00", "Z")
    return dt.isoformat()


def _clip(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _count(v: Any) -> int | None:
    """A non-negative count, or None."""
    c = _as_int(v)
    return c if c is not None and 0 <= c <= _MAX_COUNT else None


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return int(v)
    if isinstance(v, str):
        return _to_int(v.strip())
    return None


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        f2 = _to_float(v.strip())
        return f2 if f2 is not None and math.isfinite(f2) else None
    return None


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return {"true": True, "false": False}.get(v.strip().lower())
    if isinstance(v, int):
        return bool(v)
    return None


# ---------------------------------------------------------------------------------------------------
# the parser


_RX_RESO = re.compile(r"^\s*[\(\[]?\s*(\d+)\s*[,x×]\s*(\d+)\s*[\)\]]?\s*$")
_RX_FOLDER = re.compile(r"^(\d+)_(.+)$")
_GENERIC_FOLDERS = {"img", "imgs", "image", "images", "train", "training", "data", "dataset", "reg", "regularization"}
#: tags that appear in most captions of many datasets and name no subject (not trigger words)
_GENERIC_TAGS = {
    "1girl", "1boy", "2girls", "2boys", "solo", "solo focus", "looking at viewer", "smile", "simple background",
    "white background", "long hair", "short hair", "blush", "open mouth", "closed mouth", "upper body",
    "portrait", "realistic", "photorealistic", "photo", "a photo of", "woman", "man", "person", "girl", "boy",
    "masterpiece", "best quality", "high quality", "highres", "absurdres", "standing", "outdoors", "indoors",
    "full body", "cowboy shot", "brown hair", "black hair", "blonde hair", "blue eyes", "brown eyes", "shirt",
    "jewelry", "earrings", "lips", "teeth", "parted lips", "breasts", "looking at another", "day", "sky",
    "no humans", "monochrome", "greyscale", "sitting", "dress", "hat", "multiple girls",
}  # fmt: skip


def parse_training_metadata(metadata: Mapping[str, str] | None) -> tuple[TrainingFacts, list[Finding]]:
    """Normalise embedded metadata leniently; every parse problem is a finding, never an exception."""
    facts = TrainingFacts()
    if not metadata or not isinstance(metadata, Mapping):
        return facts, []
    p = _Parser(metadata)
    keys = set(metadata)
    sources: list[str] = []
    if any(k.startswith("ss_") for k in keys):
        sources.append("kohya")
    if any(k.startswith("modelspec.") for k in keys):
        sources.append("modelspec")
    if "lora_adapter_metadata" in keys:
        sources.append("diffusers")
    if "software" in keys or "training_info" in keys:
        sources.append("ai-toolkit")
    if any(k.startswith("ot_") for k in keys):
        sources.append("onetrainer")
    if "sd_merge_recipe" in keys or "sd_merge_models" in keys:
        sources.append("a1111-merge")
    facts.sources = sources

    _kohya(p, facts)
    _modelspec(p, facts)
    _diffusers(p, facts)
    _ai_toolkit(p, facts)
    _onetrainer(p, facts)
    _a1111_merge(p, facts)
    for k in ("sshs_model_hash", "sshs_legacy_hash", "modelspec.hash_sha256", "ss_sd_model_hash",
              "ss_new_sd_model_hash", "ss_vae_hash", "ss_new_vae_hash"):  # fmt: skip
        v = metadata.get(k)
        if isinstance(v, str) and v.strip():
            facts.hash_claims[k] = v
    _base_hashes(p, facts)
    _trigger_words(p, facts)
    _consistency(p, facts)
    return facts, p.findings


def _kohya(p: _Parser, f: TrainingFacts) -> None:
    if "kohya" not in f.sources:
        return
    # other tools write ss_* keys too (ai-toolkit, converters, mergers): name sd-scripts only when the
    # keys that its training scripts write are there
    if any(k in p.md for k in ("ss_sd_scripts_commit_hash", "ss_session_id", "ss_training_started_at")):
        f.trainer = "kohya-ss/sd-scripts"
        f.trainer_version = p.text("ss_sd_scripts_commit_hash")
    f.session_id = p.text("ss_session_id")
    f.output_name = p.text("ss_output_name")
    f.training_comment = p.text("ss_training_comment")
    f.base_model_name = p.text("ss_sd_model_name")
    f.base_model_version = p.text("ss_base_model_version")
    f.vae_name = p.text("ss_vae_name")
    f.v2 = p.flag("ss_v2")
    f.network_module = p.text("ss_network_module")
    f.network_dim = p.integer("ss_network_dim", allow=("dynamic",))
    f.network_alpha = p.number("ss_network_alpha", allow=("dynamic",))
    args = p.json("ss_network_args")
    if isinstance(args, dict):
        f.network_args = args
    elif args is not None:
        p.findings.append(finding(R_BAD_VALUE.id, "ss_network_args is not a JSON object", key="ss_network_args"))
    f.num_train_images = p.integer("ss_num_train_images")
    f.num_reg_images = p.integer("ss_num_reg_images")
    f.epochs = p.integer("ss_num_epochs")
    f.epoch = p.integer("ss_epoch")
    f.max_train_steps = p.integer("ss_max_train_steps")
    f.steps = p.integer("ss_steps")
    f.num_batches_per_epoch = p.integer("ss_num_batches_per_epoch")
    f.gradient_accumulation_steps = p.integer("ss_gradient_accumulation_steps")
    f.batch_size = p.integer("ss_total_batch_size") or p.integer("ss_batch_size_per_device")
    reso = p.text("ss_resolution")
    if reso is not None:
        f.resolution = _resolution(reso) or reso
    f.learning_rate = p.number("ss_learning_rate")
    f.unet_lr = p.number("ss_unet_lr")
    f.text_encoder_lr = p.number("ss_text_encoder_lr")
    f.optimizer = p.text("ss_optimizer")
    f.lr_scheduler = p.text("ss_lr_scheduler")
    f.mixed_precision = p.text("ss_mixed_precision")
    f.clip_skip = p.integer("ss_clip_skip")
    f.noise_offset = p.number("ss_noise_offset")
    f.seed = p.integer("ss_seed")
    f.started_at = p.timestamp("ss_training_started_at")
    f.finished_at = p.timestamp("ss_training_finished_at")

    # data: ss_datasets (with --dataset_config) is richer; ss_dataset_dirs is the classic form
    seen: set[tuple[str, bool]] = set()
    datasets = p.json("ss_datasets")
    if isinstance(datasets, list):
        for ds in datasets:
            if not isinstance(ds, dict):
                continue
            if f.batch_size is None:
                f.batch_size = _as_int(ds.get("batch_size_per_device"))
            subsets = ds.get("subsets")
            if isinstance(subsets, list):
                for sub in subsets:
                    if not isinstance(sub, dict):
                        continue
                    name = _folder_name(sub.get("image_dir") or sub.get("metadata_file") or "")
                    is_reg = bool(_as_bool(sub.get("is_reg")))
                    d = DatasetDir(
                        name=name,
                        n_repeats=_count(sub.get("num_repeats")),
                        img_count=_count(sub.get("img_count")),
                        is_reg=is_reg,
                        class_tokens=sub.get("class_tokens") if isinstance(sub.get("class_tokens"), str) else None,
                    )
                    f.datasets.append(d)
                    seen.add((name, is_reg))
            tf = ds.get("tag_frequency")
            if isinstance(tf, dict):
                _merge_tags(f, tf)
    for key, is_reg in (("ss_dataset_dirs", False), ("ss_reg_dataset_dirs", True)):
        dirs = p.json(key)
        if isinstance(dirs, dict):
            for name, info in dirs.items():
                if (_folder_name(name), is_reg) in seen:
                    continue
                info = info if isinstance(info, dict) else {}
                f.datasets.append(
                    DatasetDir(
                        name=str(name),
                        n_repeats=_count(info.get("n_repeats")),
                        img_count=_count(info.get("img_count")),
                        is_reg=is_reg,
                    )
                )
    tags = p.json("ss_tag_frequency")
    if isinstance(tags, dict):
        _merge_tags(f, tags)


def _merge_tags(f: TrainingFacts, tf: Mapping[str, Any]) -> None:
    for folder, counts in tf.items():
        if not isinstance(counts, dict):
            continue
        dest = f.tag_frequency.setdefault(str(folder), {})
        for tag, n in counts.items():
            c = _count(n)
            if c is not None:
                dest[str(tag).strip()] = max(c, dest.get(str(tag).strip(), 0))


def _folder_name(path: Any) -> str:
    s = str(path).replace("\\", "/").rstrip("/")
    return s.rsplit("/", 1)[-1] if s else ""


def _resolution(s: str) -> str | None:
    m = _RX_RESO.match(s)
    if m:
        return f"{m.group(1)}x{m.group(2)}"
    if re.fullmatch(r"\d+", s.strip()):
        return f"{s.strip()}x{s.strip()}"
    return None


def _modelspec(p: _Parser, f: TrainingFacts) -> None:
    if "modelspec" not in f.sources:
        return
    f.architecture_claim = p.text("modelspec.architecture")
    f.title = p.text("modelspec.title") or f.title
    f.author = p.text("modelspec.author")
    f.description = p.text("modelspec.description")
    f.license = p.text("modelspec.license")
    f.prediction_type = p.text("modelspec.prediction_type")
    date = p.text("modelspec.date")
    if date is not None:
        f.saved_at = _iso(date) or date
    tags = p.text("modelspec.tags")
    if tags:
        f.tags = [t.strip() for t in tags.split(",") if t.strip()]
    merged = p.text("modelspec.merged_from")
    if merged:
        for name in (t.strip() for t in merged.split(",")):
            if name and name not in f.merged_from:
                f.merged_from.append(name)
    reso = p.text("modelspec.resolution")
    if reso and f.resolution is None:
        f.resolution = _resolution(reso) or reso


def _diffusers(p: _Parser, f: TrainingFacts) -> None:
    if "diffusers" not in f.sources:
        return
    cfg = p.json("lora_adapter_metadata")
    if not isinstance(cfg, dict):
        return
    f.peft_config = cfg
    # the config may be flat ({"r": 4, …}) or prefixed per component ({"transformer.r": 4, …})
    flat: dict[str, Any] = {}
    for k, v in cfg.items():
        flat.setdefault(k.rsplit(".", 1)[-1] if "." in k else k, v)
    if f.trainer is None:
        f.trainer = "diffusers"
    peft_type = flat.get("peft_type")
    if f.network_module is None:
        f.network_module = f"peft.{peft_type}" if isinstance(peft_type, str) else "peft"
    if f.network_dim is None:
        f.network_dim = _as_int(flat.get("r"))
    if f.network_alpha is None:
        f.network_alpha = _as_float(flat.get("lora_alpha"))
    if not f.network_args:
        f.network_args = {k: flat[k] for k in ("target_modules", "use_dora", "lora_dropout", "use_rslora",
                                               "rank_pattern", "alpha_pattern", "init_lora_weights") if k in flat}  # fmt: skip
    base = flat.get("base_model_name_or_path")
    if isinstance(base, str) and base and f.base_model_name is None:
        f.base_model_name = base


def _ai_toolkit(p: _Parser, f: TrainingFacts) -> None:
    if "ai-toolkit" not in f.sources:
        return
    sw = p.json("software")
    if isinstance(sw, dict):
        f.software = sw
        name = sw.get("name")
        if isinstance(name, str) and name:
            f.trainer = name
            version = sw.get("version")
            f.trainer_version = str(version) if version is not None else None
    info = p.json("training_info")
    if isinstance(info, dict):
        step = _as_int(info.get("step"))
        epoch = _as_int(info.get("epoch"))
        if step is not None:
            f.steps = step
        if epoch is not None:
            f.epoch = epoch
    name = p.text("name")
    if name and f.output_name is None:
        f.output_name = name
    if f.title is None and name:
        f.title = name


def _onetrainer(p: _Parser, f: TrainingFacts) -> None:
    if "onetrainer" not in f.sources:
        return
    f.trainer = "OneTrainer"
    f.trainer_version = p.text("ot_revision") or p.text("ot_branch") or f.trainer_version


def _a1111_merge(p: _Parser, f: TrainingFacts) -> None:
    if "a1111-merge" not in f.sources:
        return
    recipe = p.json("sd_merge_recipe")
    if isinstance(recipe, dict):
        f.merge_recipe = recipe
    models = p.json("sd_merge_models")
    if isinstance(models, dict):
        for sha, info in models.items():
            info = info if isinstance(info, dict) else {}
            entry = {"sha256": str(sha), "name": info.get("name"), "legacy_hash": info.get("legacy_hash")}
            f.merge_models.append(entry)
            name = info.get("name")
            if isinstance(name, str) and name and name not in f.merged_from:
                f.merged_from.append(name)
    if f.trainer is None:
        f.trainer = "AUTOMATIC1111 checkpoint merger"


# ---------------------------------------------------------------------------------------------------
# hashes


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def normalize_hash(value: str | None) -> str | None:
    """Lower-case hex without a ``0x`` prefix or spaces; None when it is not hexadecimal."""
    if value is None:
        return None
    s = value.strip().lower()
    if s.startswith("0x"):
        s = s[2:]
    s = s.strip()
    if not s or not re.fullmatch(r"[0-9a-f]+", s):
        return None
    return s


def is_placeholder_hash(h: str) -> bool:
    """The sha256 of empty input (or a prefix of it, 8+ hex) or all zeros."""
    return (len(h) >= 8 and EMPTY_SHA256.startswith(h)) or set(h) == {"0"}


_BASE_KEYS = (("ss_sd_model_hash", "autov1"), ("ss_new_sd_model_hash", "sha256"), ("ss_vae_hash", "vae_autov1"),
              ("ss_new_vae_hash", "vae_sha256"))  # fmt: skip


def _base_hashes(p: _Parser, f: TrainingFacts) -> None:
    for key, name in _BASE_KEYS:
        raw = p.text(key)
        if raw is None:
            continue
        h = normalize_hash(raw)
        if h is None:
            p.findings.append(
                finding(R_HASH_MALFORMED.id, f"{key}={_clip(raw)!r} is not a hexadecimal digest", key=key, value=_clip(raw, 200))
            )
            continue
        if is_placeholder_hash(h):
            p.findings.append(
                finding(R_HASH_PLACEHOLDER.id, f"{key}={raw!r} is a placeholder (empty-input sha256 or zeros), not the base model's hash",
                        key=key, value=raw)  # fmt: skip
            )
            continue
        # a 10-hex value in ss_sd_model_hash is an AutoV2 (some tools write it there)
        if name == "autov1" and len(h) == 10:
            name = "autov2"
        if name == "autov1" and len(h) == 64:
            name = "sha256"
        f.base_model_hashes.setdefault(name, h)


@dataclass(frozen=True)
class HashCheck:
    """One embedded hash claim compared with the computed hash it stands for."""

    claim_key: str
    claimed: str
    computed_kind: str | None  # "autov3", "autov1"
    computed: str | None
    outcome: str  # match | mismatch | placeholder | unverifiable
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: self-claims: (key, computed hash it should equal, whether a mismatch proves anything)
_SELF_CLAIMS = (
    ("sshs_model_hash", "autov3", True),
    ("modelspec.hash_sha256", "autov3", True),
    ("sshs_legacy_hash", "autov1", False),
)


def kohya_legacy_hashes(tensors: Sequence[Any], metadata: Mapping[str, str] | None, data: Any) -> dict[str, int]:
    """The ``sshs_legacy_hash`` values kohya could have computed for this file: {hash: header length}.

    kohya hashes a copy serialised with only the ``ss_*`` metadata (before it adds ``sshs_*`` and
    ``modelspec.*``): ``sha256(copy[0x100000:0x110000])[:8]``. The copy's tensor data are the file's; only
    its header length differs, and that length does not depend on key order, so it can be rebuilt (with and
    without the 8-byte padding newer safetensors writes). ``tensors`` are the file's entries (``name``,
    ``dtype``, ``shape``, ``begin``, ``end``); ``data`` is the file's data section (bytes or memoryview).
    A window that would reach into the copy's header cannot be rebuilt and is left out.
    """
    ss = {k: v for k, v in (metadata or {}).items() if k.startswith("ss_")}
    entries: dict[str, Any] = {}
    for t in tensors:
        entries[str(t.name)] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [t.begin, t.end]}
    bodies = [{"__metadata__": ss, **entries}] if ss else [entries, {"__metadata__": {}, **entries}]
    lengths: set[int] = set()
    for body in bodies:
        n = len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        lengths |= {n, n + (-n % 8)}
    data_len = len(data)
    out: dict[str, int] = {}
    for n in sorted(lengths):
        total = 8 + n + data_len
        if total <= 0x100000:
            out.setdefault(EMPTY_SHA256[:8], n)
            continue
        start = 0x100000 - 8 - n
        if start < 0:
            continue
        window = bytes(data[start : start + min(0x10000, total - 0x100000)])
        out.setdefault(hashlib.sha256(window).hexdigest()[:8], n)
    return out


def check_hash_claims(
    metadata: Mapping[str, str] | None,
    hashes: Mapping[str, str | None],
    legacy_candidates: Mapping[str, int] | None = None,
) -> tuple[list[HashCheck], list[Finding]]:
    """Compare the file's hash claims about itself with ``hashes`` (``autov3``, ``autov1`` …).
    ``legacy_candidates`` (from :func:`kohya_legacy_hashes`) lets ``sshs_legacy_hash`` be verified."""
    checks: list[HashCheck] = []
    findings: list[Finding] = []
    if not metadata:
        return checks, findings
    for key, kind, decisive in _SELF_CLAIMS:
        raw = metadata.get(key)
        if not isinstance(raw, str) or not raw.strip():
            continue
        computed = hashes.get(kind)
        computed = computed.lower() if isinstance(computed, str) and computed else None
        h = normalize_hash(raw)
        if h is None:
            checks.append(HashCheck(key, raw, kind, computed, "unverifiable", "not a hexadecimal digest"))
            findings.append(
                finding(R_HASH_MALFORMED.id, f"{key}={_clip(raw)!r} is not a hexadecimal digest", key=key, value=_clip(raw, 200))
            )
            continue
        notes = []
        if raw.strip().lower().startswith("0x"):
            notes.append("0x prefix")
        if raw.strip() != raw.strip().lower():
            notes.append("upper case")
        full = 64 if kind == "autov3" else 8
        if len(h) < full:
            notes.append(f"truncated to {len(h)} hex")
        note = f" ({', '.join(notes)})" if notes else ""
        if computed is None:
            checks.append(HashCheck(key, raw, kind, None, "unverifiable", f"no {kind} computed for this file{note}"))
            continue
        if len(h) > len(computed) or len(h) < 8:
            outcome, reason = "unverifiable", f"{len(h)} hex digits cannot stand for a {len(computed)}-digit {kind}"
        elif computed.startswith(h):
            outcome, reason = "match", f"equals {kind}{note}"
        elif key == "sshs_legacy_hash" and legacy_candidates and h in legacy_candidates:
            n = legacy_candidates[h]
            computed = h
            outcome = "match"
            reason = (f"equals the AutoV1 of the copy kohya hashed (ss_* metadata only, header {n:,} bytes)"
                      + (", which is under 1 MiB: the empty-input hash" if h == EMPTY_SHA256[:8] else "") + note)  # fmt: skip
        elif is_placeholder_hash(h):
            outcome, reason = "placeholder", f"the sha256 of empty input, not a hash of this file{note}"
        elif not decisive:
            outcome = "unverifiable"
            reason = (f"differs from the file's {kind}; kohya hashes a re-serialised copy whose header lacks "
                      f"the sshs_* keys, so the bytes it hashed are not the file's{note}")  # fmt: skip
        else:
            outcome, reason = "mismatch", f"differs from the file's {kind} {computed[:16]}…{note}"
        checks.append(HashCheck(key, raw, kind, computed, outcome, reason))
        if outcome == "mismatch":
            findings.append(
                finding(
                    R_HASH_MISMATCH.id,
                    f"{key} claims {raw.strip()} but the tensor data hashes to {computed}",
                    key=key,
                    claimed=raw.strip(),
                    computed=computed,
                    computed_kind=kind,
                )
            )
        elif outcome == "placeholder":
            findings.append(
                finding(R_HASH_PLACEHOLDER.id, f"{key}={raw.strip()!r} is the sha256 of empty input, not a hash of this file",
                        key=key, value=raw.strip())  # fmt: skip
            )
    return checks, findings


# ---------------------------------------------------------------------------------------------------
# trigger words and consistency


def _add_trigger(f: TrainingFacts, word: str, source: str) -> None:
    w = " ".join("".join(ch for ch in word if ch.isprintable() or ch.isspace()).split()).strip(" ,")
    if not w or len(w) > 100:
        return
    if any(w.lower() == x.lower() for x in f.trigger_words):
        return
    f.trigger_words.append(w)
    f.trigger_sources[w] = source


def _trigger_words(p: _Parser, f: TrainingFacts) -> None:
    phrase = p.text("modelspec.trigger_phrase")
    if phrase:
        for part in phrase.split(","):
            _add_trigger(f, part, "modelspec.trigger_phrase")
    for d in f.datasets:
        if d.is_reg:
            continue
        if d.class_tokens:
            _add_trigger(f, d.class_tokens, f"class_tokens:{d.name}")
            continue
        m = _RX_FOLDER.match(d.name)
        token = m.group(2) if m else None
        if token and token.strip().lower() not in _GENERIC_FOLDERS:
            _add_trigger(f, token, f"folder:{d.name}")
    reg_names = {d.name for d in f.datasets if d.is_reg}
    for folder, counts in f.tag_frequency.items():
        if folder in reg_names or not counts:
            continue
        img = next((d.img_count for d in f.datasets if d.name == folder and d.img_count), None)
        top = max(counts.values())
        floor = max(1, math.ceil(0.9 * top))
        if img:
            floor = max(floor, math.ceil(0.5 * img))
        picks = [t for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= floor]
        picks = [t for t in picks if t.lower() not in _GENERIC_TAGS][:3]
        for t in picks:
            _add_trigger(f, t, f"tags:{folder}")
        # the folder's own token counts even without tag frequencies
        m = _RX_FOLDER.match(folder)
        if m and m.group(2).strip().lower() not in _GENERIC_FOLDERS and not any(d.name == folder for d in f.datasets):
            _add_trigger(f, m.group(2), f"folder:{folder}")


def _consistency(p: _Parser, f: TrainingFacts) -> None:
    train = [d for d in f.datasets if not d.is_reg]
    if f.num_train_images is None or not train:
        return
    if any(d.img_count is None or d.n_repeats is None for d in train):
        return
    expected = sum((d.img_count or 0) * (d.n_repeats or 0) for d in train)
    if expected != f.num_train_images:
        p.findings.append(
            finding(
                R_IMAGE_COUNT.id,
                f"ss_num_train_images={f.num_train_images} but the folders hold {expected} images x repeats "
                f"({', '.join(f'{d.name}: {d.img_count}x{d.n_repeats}' for d in train[:5])})",
                num_train_images=f.num_train_images,
                folders_total=expected,
            )
        )
