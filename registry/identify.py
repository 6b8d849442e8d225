"""What a file is: kind, adapter type, key style and base architecture, each with its evidence.

Identification reads tensor names and shapes first (they cannot lie about what a loader will do with
the file) and embedded metadata second (it can, and often does). The public entry point is
:func:`identify`, a pure function over ``(name, shape)`` pairs and the ``__metadata__`` map; it returns
an :class:`Identity` and findings (metadata that contradicts the shapes, contradicting shape evidence).

How the answer is reached:

1. Every tensor name is split into a *module path* and, for adapters, an adapter *part* (``lora_down``,
   ``lora_A``, ``hada_w1_a``, ``lokr_w2``, ``oft_blocks``, ``diff`` …). Known prefixes (``lora_unet_``,
   ``lora_te1_``, ``transformer.``, ``diffusion_model.``, ``base_model.model.``, ``first_stage_model.`` …)
   give the component and the key style; the rest is normalised to ``_``-separated form, so kohya's
   ``lora_unet_down_blocks_0_attentions_0…`` and diffusers' ``unet.down_blocks.0.attentions.0…`` read the
   same.
2. Each module gets its input and output widths from its shapes (``lora_down [r, in]``, ``lora_up [out,
   r]``, ``lokr_w1 ⊗ lokr_w2``, a checkpoint weight ``[out, in]`` …).
3. Family rules look for decisive evidence: the cross-attention context width of a UNet's ``attn2.to_k``
   (768 SD1, 1024 SD2, 2048 SDXL base, 1280 SDXL refiner), SD3's ``joint_blocks``, Flux's
   ``double_blocks``/``single_blocks`` with hidden width 3072 and MLP width 12288, Wan's
   ``self_attn.q``/``ffn.0``, Qwen-Image's ``img_mlp``/``txt_mod`` … and the text encoders' widths
   (CLIP-L 768, OpenCLIP-H 1024, CLIP-G 1280, T5-XXL 4096).
4. When no rule is decisive the answer is ``unknown`` with the candidates and what was seen; a
   metadata claim can then fill in the architecture, marked ``source="metadata"`` and low confidence.

The confidence scale is ``high`` (a decisive width or key), ``medium`` (consistent structural evidence
that another family could share), ``low`` (metadata only) and ``none``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.findings import Finding, Severity, finding, rule

__all__ = [
    "ARCH_LABELS",
    "Evidence",
    "Identity",
    "KINDS",
    "identify",
    "identify_header",
    "normalize_arch_claim",
]

# re-exported: the kinds and labels live in a light module that `show` and `ls` import
from registry.archs import ARCH_LABELS, KINDS  # noqa: E402

_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}

R_META_ARCH = rule(
    "identify.metadata-arch-mismatch",
    Severity.MEDIUM,
    "Embedded metadata names a base architecture that the tensor shapes contradict",
    "Trainers write ss_base_model_version / ss_v2 / modelspec.architecture themselves, and some write a "
    "default (ai-toolkit wrote 'sd_1.5' into FLUX LoRAs). The shapes decide what a loader will accept.",
)
R_META_KIND = rule(
    "identify.metadata-kind-mismatch",
    Severity.MEDIUM,
    "Embedded metadata names a kind of model (LoRA, embedding …) that the tensors contradict",
)
R_META_DISAGREE = rule(
    "identify.metadata-claims-disagree",
    Severity.LOW,
    "The file's own metadata fields name different base architectures",
)
R_CONFLICT = rule(
    "identify.conflicting-evidence",
    Severity.LOW,
    "Parts of the file point to different base architectures",
    "For example a UNet part shaped for SDXL with a text-encoder part shaped for SD1. The file may be a "
    "bad merge or a mislabelled conversion.",
)
R_INTERNAL = rule(
    "identify.unforeseen-layout",
    Severity.LOW,
    "Identification stopped on a tensor layout none of its rules foresaw; the file is reported as unknown",
)
R_ADAPTER_IN_CKPT = rule(
    "identify.adapter-keys-in-checkpoint",
    Severity.INFO,
    "A full model also carries adapter (LoRA) tensors",
)


# ---------------------------------------------------------------------------------------------------
# public values


@dataclass(frozen=True)
class Evidence:
    """One observation that supports an answer: what it shows, the key and shape it was read from."""

    what: str
    key: str | None = None
    shape: tuple[int, ...] | None = None
    width: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"what": self.what}
        if self.key is not None:
            d["key"] = self.key
        if self.shape is not None:
            d["shape"] = list(self.shape)
        if self.width is not None:
            d["width"] = self.width
        return d


@dataclass(frozen=True)
class Identity:
    kind: str = "unknown"
    #: ``kohya-lora``, ``peft-lora``, ``diffusers-old-lora``, ``lora_diffusion``, ``xlabs-lora``, ``loha``,
    #: ``lokr``, ``dora``, ``ia3``, ``glora``, ``oft``, ``boft``, ``full-diff``, ``control-lora`` (adapters only)
    adapter_type: str | None = None
    #: naming convention of the keys: ``kohya``, ``diffusers``, ``peft``, ``comfy``, ``ldm``, ``sgm``, ``bfl``,
    #: ``lora_diffusion``, ``xlabs``, ``a1111-embedding``, ``sdxl-embedding``, ``diffusers-embedding``,
    #: ``hf-transformers``, ``openclip``, ``bare``
    key_style: str | None = None
    arch: str = "unknown"
    arch_variant: str | None = None
    components: tuple[str, ...] = ()
    #: confidence of ``arch``: high / medium / low / none
    confidence: str = "none"
    #: confidence of ``kind``
    kind_confidence: str = "none"
    #: where ``arch`` came from: ``shapes``, ``metadata`` or ``none``
    source: str = "none"
    evidence: tuple[Evidence, ...] = ()
    #: architectures the shapes allow when they do not decide one
    arch_candidates: tuple[str, ...] = ()
    #: what the metadata says: [{"key", "value", "arch", "variant", "kind"}]
    claims: tuple[Mapping[str, Any], ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "adapter_type": self.adapter_type,
            "key_style": self.key_style,
            "arch": self.arch,
            "arch_variant": self.arch_variant,
            "components": list(self.components),
            "confidence": self.confidence,
            "kind_confidence": self.kind_confidence,
            "source": self.source,
            "evidence": [e.to_dict() for e in self.evidence],
            "arch_candidates": list(self.arch_candidates),
            "claims": [dict(c) for c in self.claims],
            "details": dict(self.details),
        }

    @property
    def arch_label(self) -> str:
        label = ARCH_LABELS.get(self.arch)
        if label is None:
            label = self.arch.split(":", 1)[-1] if self.arch.startswith("other:") else self.arch
        return f"{label} ({self.arch_variant})" if self.arch_variant else label


# ---------------------------------------------------------------------------------------------------
# step 1: keys → modules


@dataclass
class _Mod:
    key: str  # a tensor key of this module (the one that defines its shape), for evidence
    path: str  # prefix stripped, "_"-separated
    component: str  # denoiser, te1, te2, te3, vae, controlnet, other
    style: str  # key style of the prefix
    algo: str | None  # adapter algorithm, None for plain weights
    in_w: int | None = None
    out_w: int | None = None
    ndim: int = 0
    shape: tuple[int, ...] = ()
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    #: the key and shape the output width was read from, when not ``key``/``shape``
    out_key: str | None = None
    out_shape: tuple[int, ...] | None = None


# (suffix, family, role); the longest matching suffix wins
_SUFFIXES: tuple[tuple[str, str, str], ...] = (
    (".lora_down.weight", "kohya", "down"),
    (".lora_up.weight", "kohya", "up"),
    (".lora_mid.weight", "kohya", "mid"),
    (".lora_A.weight", "peft", "down"),
    (".lora_B.weight", "peft", "up"),
    (".lora_A.default.weight", "peft", "down"),
    (".lora_B.default.weight", "peft", "up"),
    (".lora_embedding_A", "peft", "down_t"),
    (".lora_embedding_B", "peft", "up_t"),
    (".lora_magnitude_vector", "dora", "magnitude"),
    (".lora_magnitude_vector.weight", "dora", "magnitude"),
    (".lora.down.weight", "diffusers", "down"),
    (".lora.up.weight", "diffusers", "up"),
    (".lora_linear_layer.down.weight", "diffusers-old", "down"),
    (".lora_linear_layer.up.weight", "diffusers-old", "up"),
    ("_lora.down.weight", "diffusers-old", "down"),
    ("_lora.up.weight", "diffusers-old", "up"),
    (".hada_w1_a", "loha", "w1a"),
    (".hada_w1_b", "loha", "w1b"),
    (".hada_w2_a", "loha", "w2a"),
    (".hada_w2_b", "loha", "w2b"),
    (".hada_t1", "loha", "t1"),
    (".hada_t2", "loha", "t2"),
    (".lokr_w1", "lokr", "w1"),
    (".lokr_w1_a", "lokr", "w1a"),
    (".lokr_w1_b", "lokr", "w1b"),
    (".lokr_w2", "lokr", "w2"),
    (".lokr_w2_a", "lokr", "w2a"),
    (".lokr_w2_b", "lokr", "w2b"),
    (".lokr_t2", "lokr", "t2"),
    (".oft_blocks", "oft", "blocks"),
    (".oft_diag", "oft", "blocks"),
    (".oft_r", "oft", "blocks"),
    (".oft_R.weight", "oft", "blocks"),
    (".boft_R", "boft", "blocks"),
    (".boft_s", "boft", "scale"),
    (".rescale", "oft", "rescale"),
    (".a1.weight", "glora", "a1"),
    (".a2.weight", "glora", "a2"),
    (".b1.weight", "glora", "b1"),
    (".b2.weight", "glora", "b2"),
    (".diff", "full", "diff"),
    (".diff_b", "full", "diff_b"),
    (".dora_scale", "dora", "scale"),
    (".ia3_l", "ia3", "vec"),
    (".on_input", "ia3", "on_input"),
    (".alpha", "common", "alpha"),
)
_SUFFIX_MAP = {suffix: (fam, role) for suffix, fam, role in _SUFFIXES if suffix.startswith(".")}
_UNDERSCORE_SUFFIXES = tuple((suffix, fam, role) for suffix, fam, role in _SUFFIXES if not suffix.startswith("."))


#: per-name results of :func:`_match_suffix` and per-module-key results of :func:`_module_path` in this
#: process (a scan of many adapter files reads the same few layouts again and again); at most
#: ``_NAME_MEMO_MAX`` entries each (least recently used go first)
_NAME_MEMO_MAX = 100_000


@functools.lru_cache(maxsize=_NAME_MEMO_MAX)
def _match_suffix_memo(name: str) -> tuple[str, str, str] | None:
    return _match_suffix(name)


@functools.lru_cache(maxsize=_NAME_MEMO_MAX)
def _module_path(module_key: str) -> tuple[str, str, str]:
    """(normalised path, component, style) of an adapter module key, remembered per key."""
    rest, comp, style = _split_prefix(module_key)
    return _norm(rest), comp, style


def _match_suffix(name: str) -> tuple[str, str, str] | None:
    """The longest adapter suffix of ``name``: (suffix, family, role)."""
    parts = name.rsplit(".", 3)
    for k in (3, 2, 1):
        if len(parts) > k:
            suffix = "." + ".".join(parts[-k:])
            hit = _SUFFIX_MAP.get(suffix)
            if hit is not None:
                return suffix, hit[0], hit[1]
    for suffix, fam, role in _UNDERSCORE_SUFFIXES:
        if name.endswith(suffix):
            return suffix, fam, role
    return None

_RX_LORA_DIFFUSION = re.compile(r"^(unet|text_encoder|text_encoder_2):(\d+):(down|up)$")
_RX_XLABS = re.compile(r"^(.*)\.processor\.(qkv|proj)_lora(\d)\.(down|up)\.weight$")

# (prefix, component, style); checked in order
_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("lora_unet_", "denoiser", "kohya"),
    ("lora_transformer_", "denoiser", "kohya"),
    ("lora_prior_unet_", "denoiser", "kohya"),
    ("lora_te1_", "te1", "kohya"),
    ("lora_te2_", "te2", "kohya"),
    ("lora_te3_", "te3", "kohya"),
    ("lora_te_", "te1", "kohya"),
    ("lycoris_", "denoiser", "kohya"),
    ("base_model.model.", "denoiser", "peft"),
    ("model.diffusion_model.", "denoiser", "ldm"),
    ("diffusion_model.", "denoiser", "comfy"),
    ("unet.", "denoiser", "diffusers"),
    ("transformer.", "denoiser", "diffusers"),
    ("text_encoder.", "te1", "diffusers"),
    ("text_encoder_2.", "te2", "diffusers"),
    ("text_encoder_3.", "te3", "diffusers"),
    ("cond_stage_model.", "te1", "ldm"),
    ("conditioner.embedders.0.", "te1", "sgm"),
    ("conditioner.embedders.1.", "te2", "sgm"),
    ("conditioner.embedders.2.", "te3", "sgm"),
    ("text_encoders.clip_l.", "te1", "comfy"),
    ("text_encoders.clip_g.", "te2", "comfy"),
    ("text_encoders.t5xxl.", "te3", "comfy"),
    ("first_stage_model.", "vae", "ldm"),
    ("vae.", "vae", "comfy"),
    ("control_model.", "controlnet", "ldm"),
)

_RX_SEP = re.compile(r"[.:]")

_ADAPTER_FAMILIES = {
    "kohya", "peft", "diffusers", "diffusers-old", "lora_diffusion", "xlabs", "control-lora",
    "loha", "lokr", "oft", "boft", "glora", "full", "ia3", "dora",
}  # fmt: skip


_WRAPPERS = ("state_dict.", "module.", "model_state_dict.")


def _split_prefix(name: str) -> tuple[str, str, str]:
    # torch-lightning / DDP checkpoints wrap the state dict: "state_dict.model.diffusion_model…"
    for w in _WRAPPERS:
        if name.startswith(w):
            name = name[len(w) :]
            break
    for prefix, component, style in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :], component, style
    return name, "other", "bare"


def _norm(path: str) -> str:
    # old diffusers attention-processor LoRAs: "attn2.processor.to_k_lora" names the module attn2.to_k
    return _RX_SEP.sub("_", path).replace("_processor_", "_")


#: shapes already converted by :func:`_shape_of` (a file has a few distinct shapes, repeated per module)
_SHAPES: dict[Any, tuple[int, ...]] = {}


def _shape_of(shape: Any) -> tuple[int, ...]:
    try:
        return _SHAPES[shape]  # (a key equal to ``shape`` converts to the same integers)
    except (KeyError, TypeError):
        pass
    try:
        out = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        return ()
    if type(shape) is tuple and len(_SHAPES) < 10_000:
        _SHAPES[shape] = out
    return out


def _pairs(tensors: Iterable[Any]) -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = []
    for t in tensors:
        if isinstance(t, tuple | list) and len(t) >= 2:
            out.append((str(t[0]), _shape_of(t[1])))
        else:
            out.append((str(getattr(t, "name", "")), _shape_of(getattr(t, "shape", ()))))
    return out


@dataclass
class _Split:
    adapter: dict[str, _Mod]
    plain: list[_Mod]
    bundled_embeddings: list[str]
    adapter_tensors: int
    ignored: int
    n_tensors: int


def _split(pairs: list[tuple[str, tuple[int, ...]]], roles: Mapping[str, tuple[str, str, str]] | None = None) -> _Split:
    """Group tensors into adapter modules and plain weights. ``roles`` names the module, component and part
    of tensors whose names do not say it (the list indices of a ``lora_diffusion`` ``.pt`` file)."""
    adapter: dict[str, _Mod] = {}
    plain: list[_Mod] = []
    bundled: list[str] = []
    adapter_tensors = 0
    ignored = 0
    names = {n for n, _ in pairs}
    on_input_prefixes = {n[: -len(".on_input")] for n in names if n.endswith(".on_input")}
    # Stability's control-LoRAs name their factors <layer>.up / <layer>.down, beside a lora_controlnet marker
    control_lora = "lora_controlnet" in names

    def mod_for(module_key: str, fam: str, first_key: str) -> _Mod:
        m = adapter.get(module_key)
        if m is None:
            path, comp, style = _module_path(module_key)
            m = _Mod(key=first_key, path=path, component=comp, style=style, algo=None)
            adapter[module_key] = m
        return m

    for name, shape in pairs:
        if name.startswith("model_ema.") or name == "__metadata__":
            ignored += 1
            continue
        if name.startswith("bundle_emb."):
            bundled.append(name)
            adapter_tensors += 1
            continue
        m_ld = _RX_LORA_DIFFUSION.match(name) if ":" in name else None
        if roles is not None and name in roles:
            m_ld = _RX_LORA_DIFFUSION.match(":".join(roles[name]))
        if m_ld:
            comp = "denoiser" if m_ld.group(1) == "unet" else ("te2" if m_ld.group(1).endswith("_2") else "te1")
            module_key = f"{m_ld.group(1)}:{m_ld.group(2)}"
            m = adapter.get(module_key)
            if m is None:
                m = _Mod(key=name, path=module_key, component=comp, style="lora_diffusion", algo=None)
                adapter[module_key] = m
            m.parts[m_ld.group(3)] = shape
            m.keys[m_ld.group(3)] = name
            m.keys.setdefault("_family", "lora_diffusion")
            adapter_tensors += 1
            continue
        m_x = _RX_XLABS.match(name) if "_lora" in name and ".processor." in name else None
        if m_x:
            module_key = f"{m_x.group(1)}.{m_x.group(2)}{m_x.group(3)}"
            m = mod_for(module_key, "xlabs", name)
            m.style = "xlabs"
            m.parts[m_x.group(4)] = shape
            m.keys[m_x.group(4)] = name
            m.keys.setdefault("_family", "xlabs")
            adapter_tensors += 1
            continue
        base = name[: -len(".weight")] if name.endswith(".weight") else None
        if base is not None and base in on_input_prefixes:
            m = mod_for(base, "ia3", name)
            m.parts["vec"] = shape
            m.keys["vec"] = name
            m.keys.setdefault("_family", "ia3")
            adapter_tensors += 1
            continue
        hit = _match_suffix_memo(name)
        if hit is None and control_lora and name.endswith((".up", ".down")):
            hit = (".up", "control-lora", "up") if name.endswith(".up") else (".down", "control-lora", "down")
        if hit is not None:
            suffix, fam, role = hit
            module_key = name[: -len(suffix)]
            m = mod_for(module_key, fam, name)
            m.parts[role] = shape
            m.keys[role] = name
            if fam != "common":
                m.keys.setdefault("_family", fam)
                fams = m.keys.get("_families", "")
                if fam not in fams.split(","):
                    m.keys["_families"] = f"{fams},{fam}" if fams else fam
            adapter_tensors += 1
        else:
            rest, comp, style = _split_prefix(name)
            if rest.endswith(".weight"):
                rest = rest[: -len(".weight")]
            plain.append(
                _Mod(
                    key=name,
                    path=_norm(rest),
                    component=comp,
                    style=style,
                    algo=None,
                    in_w=shape[1] if len(shape) >= 2 else None,
                    out_w=shape[0] if len(shape) >= 1 else None,
                    ndim=len(shape),
                    shape=shape,
                )
            )
    # modules that only hold an alpha (or a rescale) are not adapters by themselves
    for k in [k for k, m in adapter.items() if "_family" not in m.keys]:
        m = adapter.pop(k)
        adapter_tensors -= len(m.parts)
        for role, shape in m.parts.items():
            plain.append(
                _Mod(key=m.keys[role], path=m.path + "_" + role, component=m.component, style=m.style,
                     algo=None, ndim=len(shape), shape=shape)
            )  # fmt: skip
    for m in adapter.values():
        _resolve_adapter_module(m)
    return _Split(adapter, plain, bundled, adapter_tensors, ignored, len(pairs))


def _resolve_adapter_module(m: _Mod) -> None:
    """Set ``algo``, ``in_w``, ``out_w``, ``shape`` and ``key`` of an adapter module from its parts."""
    p = m.parts
    fams = set(m.keys.get("_families", m.keys.get("_family", "")).split(",")) - {""}
    fam = m.keys.get("_family", "")

    def set_from(*roles: str) -> None:
        # the first of ``roles`` the file has (a pruned or damaged module may lack any one part)
        role = next((r for r in roles if r in p), None) or next((r for r in p if r != "alpha"), None) or next(iter(p))
        m.shape = p[role]
        m.ndim = len(p[role])
        m.key = m.keys[role]

    if "lokr" in fams:
        m.algo = "lokr"

        def factor(full: str, a: str, b: str) -> tuple[int | None, int | None]:
            if full in p and len(p[full]) >= 2:
                return p[full][0], p[full][1]
            if a in p and b in p and len(p[a]) >= 2 and len(p[b]) >= 2:
                if "t2" in p and full == "w2":  # tucker: w2_a [r, out2], w2_b [r, in2]
                    return p[a][1], p[b][1]
                return p[a][0], p[b][1]
            return None, None

        o1, i1 = factor("w1", "w1a", "w1b")
        o2, i2 = factor("w2", "w2a", "w2b")
        if o1 and o2:
            m.out_w = o1 * o2
        if i1 and i2:
            m.in_w = i1 * i2
        set_from("w2", "w2b", "w1", "w1b", "w2a", "w1a", "t2")
        m.ndim = 2 if "w2" not in p else len(p["w2"])
    elif "loha" in fams:
        m.algo = "loha"
        if "w1a" in p and "w1b" in p and len(p["w1a"]) >= 2 and len(p["w1b"]) >= 2:
            m.out_w = p["w1a"][1] if "t1" in p else p["w1a"][0]
            m.in_w = p["w1b"][1]
            m.out_key, m.out_shape = m.keys["w1a"], p["w1a"]
        set_from("w1b", "w2b", "w1a", "w2a")
    elif fams & {"oft", "boft"} and "blocks" in p:
        b = p["blocks"]
        m.algo = "boft" if ("boft" in fams or len(b) == 4) else "oft"
        if len(b) == 3:
            m.out_w = b[0] * b[1]
        elif len(b) == 4:
            m.out_w = b[1] * b[2]
        elif len(b) == 2:  # diag-oft / PEFT oft_r flattened
            m.out_w = None
        set_from("blocks")
    elif "glora" in fams and {"a1", "a2", "b1", "b2"} <= p.keys():
        m.algo = "glora"
        m.in_w = p["a1"][1] if len(p["a1"]) >= 2 else None
        m.out_w = p["a2"][0] if len(p["a2"]) >= 1 else None
        m.out_key, m.out_shape = m.keys["a2"], p["a2"]
        set_from("a1")
    elif "full" in fams and "diff" in p:
        m.algo = "full"
        d = p["diff"]
        m.out_w = d[0] if d else None
        m.in_w = d[1] if len(d) >= 2 else None
        set_from("diff")
    elif "ia3" in fams and "vec" in p:
        m.algo = "ia3"
        m.out_w = p["vec"][0] if p["vec"] else None
        set_from("vec")
    elif "down" in p or "up" in p:
        m.algo = {"kohya": "lora", "peft": "lora", "diffusers": "lora", "diffusers-old": "lora"}.get(fam, "lora")
        if "dora" in fams:
            m.algo = "dora"
        if "down" in p and len(p["down"]) >= 2:
            m.in_w = p["down"][1]
        if "up" in p and len(p["up"]) >= 1:
            m.out_w = p["up"][0]
            m.out_key, m.out_shape = m.keys["up"], p["up"]
        set_from("down" if "down" in p else "up")
    elif "down_t" in p or "up_t" in p:  # PEFT embedding LoRA: A [r, vocab], B [dim, r]
        m.algo = "lora"
        if "up_t" in p and p["up_t"]:
            m.out_w = p["up_t"][0]
        set_from("down_t" if "down_t" in p else "up_t")
    else:
        m.algo = fam or "unknown"
        role = next(iter(k for k in p if k != "alpha"), None) or next(iter(p))
        set_from(role)


# ---------------------------------------------------------------------------------------------------
# step 2: family rules over modules


@dataclass
class _Verdict:
    arch: str
    confidence: str
    evidence: list[Evidence]
    variant: str | None = None
    candidates: tuple[str, ...] = ()
    denoiser_name: str = "transformer"
    #: the kind of model this denoiser-like part makes the file (``motion_module``); None: a full model
    kind: str | None = None
    #: other architectures the same shapes fit, which only metadata can pick (FLUX.1 LoRA → Chroma)
    also: tuple[str, ...] = ()
    #: contradictions between parts of the file (each becomes an ``identify.conflicting-evidence`` finding)
    conflicts: tuple[str, ...] = ()


def _ev(what: str, m: _Mod | None = None, width: int | None = None, side: str = "in") -> Evidence:
    if m is None:
        return Evidence(what, width=width)
    if side == "out" and m.out_key is not None:
        return Evidence(what, key=m.out_key, shape=m.out_shape or None, width=width)
    return Evidence(what, key=m.key, shape=m.shape or None, width=width)


#: per pattern, whether it occurs in a module path: files of one architecture share their module paths, so a
#: scan of many LoRAs searches each (pattern, path) once; a memo that grows past ``_FIND_MEMO_MAX`` paths
#: starts over (the answers are a pure function of the two strings)
_FIND_MEMO: dict[re.Pattern[str], dict[str, bool]] = {}
_FIND_MEMO_MAX = 50_000


def _find(mods: Sequence[_Mod], rx: re.Pattern[str]) -> list[_Mod]:
    memo = _FIND_MEMO.get(rx)
    if memo is None or len(memo) > _FIND_MEMO_MAX:
        memo = _FIND_MEMO[rx] = {}
    out: list[_Mod] = []
    for m in mods:
        hit = memo.get(m.path)
        if hit is None:
            hit = memo[m.path] = rx.search(m.path) is not None
        if hit:
            out.append(m)
    return out


def _widest(mods: Sequence[_Mod], which: str) -> tuple[int | None, _Mod | None, Counter[int]]:
    c: Counter[int] = Counter()
    first: dict[int, _Mod] = {}
    for m in mods:
        w = m.in_w if which == "in" else m.out_w
        if w:
            c[w] += 1
            first.setdefault(w, m)
    if not c:
        return None, None, c
    w = c.most_common(1)[0][0]
    return w, first[w], c


def _max_index(mods: Sequence[_Mod], rx: re.Pattern[str]) -> int | None:
    best: int | None = None
    for m in mods:
        mm = rx.search(m.path)
        if mm:
            i = int(mm.group(1))
            best = i if best is None else max(best, i)
    return best


# -- SD UNet family -----------------------------------------------------------------------------------
_RX_UNET = re.compile(r"(^|_)(down_blocks|up_blocks|mid_block|input_blocks|output_blocks|middle_block)_")
#: an autoencoder's blocks carry the same names as a UNet's (``encoder.down_blocks.0``, ``decoder.mid.block_1``)
_RX_VAE_PATH = re.compile(r"^(encoder|decoder)_")
_RX_ATTN2_KV = re.compile(r"attn2_to_[kv]$")
_RX_ATTN1_Q = re.compile(r"attn1_to_q$")
_RX_SDXL_DEPTH = re.compile(r"(attentions_\d+|input_blocks_\d+_1|output_blocks_\d+_1|middle_block_1|mid_block_attentions_0)_transformer_blocks_([1-9])_")  # fmt: skip
_RX_SD12_LAYOUT = re.compile(
    r"(^|_)(down_blocks_0_attentions|down_blocks_3_|up_blocks_3_attentions|input_blocks_[12]_1_|output_blocks_(9|10|11)_1_)"
)
_RX_PROJ_IN = re.compile(r"(attentions_\d+|_\d+_1)_proj_(in|out)$")
_RX_IN_CONV = re.compile(r"(^|_)(input_blocks_0_0|conv_in)$")
_RX_ADM = re.compile(r"(^|_)(label_emb_0_0|add_embedding_linear_1)$")
_RX_TEMPORAL = re.compile(r"(time_stack|time_mixer|time_mix_blocks)")
_RX_MOTION = re.compile(r"(motion_modules|temporal_transformer)")
_RX_ENC_HID = re.compile(r"(^|_)encoder_hid_proj$")

CONTEXT_WIDTH_ARCH = {768: "sd1", 1024: "sd2", 2048: "sdxl-base", 1280: "sdxl-refiner"}
_CONTEXT_WHY = {
    768: "SD1.x (CLIP-L context)",
    1024: "SD2.x (OpenCLIP-H context)",
    2048: "SDXL base (CLIP-L + OpenCLIP-G context)",
    1280: "SDXL refiner (OpenCLIP-G context)",
}


_RX_LEVEL3 = re.compile(r"(^|_)(down_blocks|up_blocks)_3_")
_RX_CHANNEL = re.compile(r"(attn1_to_[qkv]|attn1_to_out_0|attn2_to_q|attn2_to_out_0|proj_in|proj_out|ff_net_0_proj)$")


def _channels(unet: Sequence[_Mod]) -> set[int]:
    """Channel widths of a UNet's transformer blocks (the layers whose input is the block width)."""
    out: set[int] = set()
    for m in _find(unet, _RX_CHANNEL):
        w = m.in_w or (None if m.path.endswith("ff_net_0_proj") else m.out_w)
        if w:
            out.add(w)
    return out


def _sdxl_also(arch: str, checkpoint: bool) -> tuple[str, ...]:
    # Kolors is an SDXL-shaped UNet behind a ChatGLM projection (encoder_hid_proj) that adapters rarely touch
    return ("other:kolors",) if arch == "sdxl-base" and not checkpoint else ()


def _motion_verdict(motion: Sequence[_Mod]) -> _Verdict:
    """An AnimateDiff motion module alone: no text context, so only the UNet's depth tells its base (four
    levels: the SD1.x motion modules v1-v3; three levels: the SDXL ones)."""
    ev = [_ev("AnimateDiff motion module (temporal transformers inside UNet blocks, no cross-attention context)", motion[0])]
    level3 = _find(motion, _RX_LEVEL3)
    if level3:
        ev.append(_ev("motion modules in a fourth UNet level (SD1.x layout; SDXL's UNet has three)", level3[0]))
        return _Verdict("sd1", "medium", ev, denoiser_name="unet", kind="motion_module")
    # the third up block is 320 channels wide in SDXL's three-level UNet and 640 in SD1.x's four-level one
    up2 = [m for m in motion if re.search(r"(^|_)up_blocks_2_", m.path) and (m.in_w or m.out_w)]
    w = (up2[0].in_w or up2[0].out_w) if up2 else None
    if up2 and w in (320, 640):
        arch = "sdxl-base" if w == 320 else "sd1"
        ev.append(_ev(f"third up block {w} channels wide ({'SDXL, three levels' if w == 320 else 'SD1.x, four levels'})", up2[0], w))
        return _Verdict(arch, "medium", ev, denoiser_name="unet", kind="motion_module")
    return _Verdict("unknown", "none", ev, candidates=("sd1", "sdxl-base"), denoiser_name="unet", kind="motion_module")


def _rule_unet(mods: Sequence[_Mod], checkpoint: bool) -> _Verdict | None:
    unet = [m for m in _find(mods, _RX_UNET) if not _RX_VAE_PATH.search(m.path)]
    if not unet or (len(unet) < 2 and not _find(unet, _RX_ATTN2_KV)):
        return None
    # AnimateDiff motion modules sit in the UNet's blocks but their attention (attn1 *and* attn2) is temporal
    # self-attention: its widths are channel counts, not a text context
    motion = _find(unet, _RX_MOTION)
    if motion:
        unet = [m for m in unet if not _RX_MOTION.search(m.path)]
        if not unet:
            return _motion_verdict(motion)
    ev: list[Evidence] = []
    kv = _find(unet, _RX_ATTN2_KV)
    ctx, ctx_mod, ctx_counts = _widest(kv, "in")
    sdxl_depth = _find(unet, _RX_SDXL_DEPTH)
    sd12 = _find(unet, _RX_SD12_LAYOUT)
    q_widths = _channels(unet)
    # SDXL base blocks are 320/640/1280 channels wide, the refiner's 384/768/1536: disjoint sets
    refiner_widths = bool(q_widths & {384, 768, 1536}) and not q_widths & {320, 640, 1280}
    base_widths = bool(q_widths & {320, 640, 1280}) and not q_widths & {384, 768, 1536}
    variant: str | None = None
    if _find(unet, _RX_TEMPORAL):
        t = _find(unet, _RX_TEMPORAL)[0]
        return _Verdict("other:svd", "medium", [_ev("temporal mixing layers in a UNet (Stable Video Diffusion)", t)],
                        denoiser_name="unet")  # fmt: skip
    enc_hid = _find(mods, _RX_ENC_HID)
    if enc_hid and enc_hid[0].in_w == 4096 and ctx == 2048:
        return _Verdict("other:kolors", "high",
                        [_ev("encoder_hid_proj maps a 4096-wide ChatGLM context into an SDXL-shaped UNet", enc_hid[0], 4096)],
                        denoiser_name="unet")  # fmt: skip
    if checkpoint:
        conv = _find(mods, _RX_IN_CONV)
        if conv and conv[0].in_w in (8, 9):
            variant = "inpaint" if conv[0].in_w == 9 else "instruct-pix2pix"
            ev.append(_ev(f"UNet input convolution takes {conv[0].in_w} channels ({variant})", conv[0], conv[0].in_w))
    if ctx is not None and ctx_mod is not None:
        arch = CONTEXT_WIDTH_ARCH.get(ctx)
        if len(ctx_counts) > 1:
            ev.append(Evidence(f"attn2 context widths disagree: {dict(ctx_counts)}"))
        if arch is None:
            ev.append(_ev(f"UNet cross-attention context width {ctx} matches no known SD family", ctx_mod, ctx))
            return _Verdict("unknown", "none", ev, denoiser_name="unet")
        ev.insert(0, _ev(f"UNet cross-attention context width {ctx}: {_CONTEXT_WHY[ctx]}", ctx_mod, ctx))
        families = {CONTEXT_WIDTH_ARCH[w] for w in ctx_counts if w in CONTEXT_WIDTH_ARCH}
        if len(families) > 1:
            # one UNet has one context width: two of them are two models' layers in one file
            cands = tuple(a for a in ARCH_LABELS if a in families)
            msg = f"the UNet's cross-attention layers take context widths of different families ({', '.join(cands)})"
            return _Verdict("unknown", "none", ev, candidates=cands, denoiser_name="unet", conflicts=(msg,))
        conf = "high" if len(ctx_counts) == 1 else "medium"
        if arch in ("sd1", "sd2") and sdxl_depth and not sd12:
            ev.append(_ev("but transformer depth > 1 inside a block, as in SDXL", sdxl_depth[0]))
            conf = "medium"
        if arch.startswith("sdxl") and sd12 and not sdxl_depth:
            ev.append(_ev("but the block layout is SD1/SD2's", sd12[0]))
            conf = "medium"
        if arch == "sdxl-base" and refiner_widths:
            arch = "sdxl-refiner"
            ev.append(Evidence(f"block widths {sorted(q_widths)} are the refiner's (384 channels)"))
        if arch == "sdxl-refiner" and not refiner_widths and q_widths:
            # 1280-wide context with SD channels: unusual; keep the refiner answer but lower it
            conf = "medium"
        if checkpoint:
            adm = _find(mods, _RX_ADM)
            if adm and adm[0].in_w in (2816, 2560):
                what = "SDXL base" if adm[0].in_w == 2816 else "SDXL refiner"
                ev.append(_ev(f"ADM (size/crop conditioning) input width {adm[0].in_w}: {what}", adm[0], adm[0].in_w))
            elif arch == "sdxl-base" and conf == "high":
                # a shard of a UNet: Kolors' blocks are SDXL's, only its ADM input (5632) and ChatGLM projection differ
                ev.append(Evidence("no ADM input layer to confirm SDXL base (Kolors has the same blocks)"))
                conf = "medium"
        return _Verdict(arch, conf, ev, variant=variant, denoiser_name="unet", also=_sdxl_also(arch, checkpoint))
    # no cross-attention key: structure only
    if sdxl_depth and not sd12:
        ev.append(_ev("transformer depth > 1 inside a UNet block (SDXL layout); no attn2 key to read the context width",
                      sdxl_depth[0]))  # fmt: skip
        if not (refiner_widths or base_widths):
            ev.append(Evidence("no block width to tell SDXL base (320/640/1280 channels) from the refiner (384/768/1536)"))
            return _Verdict("unknown", "none", ev, candidates=("sdxl-base", "sdxl-refiner"), denoiser_name="unet")
        arch = "sdxl-refiner" if refiner_widths else "sdxl-base"
        ev.append(Evidence(f"block widths {sorted(q_widths)} are the {'refiner' if refiner_widths else 'base'}'s"))
        return _Verdict(arch, "medium", ev, variant=variant, denoiser_name="unet", also=_sdxl_also(arch, checkpoint))
    if sd12 and not sdxl_depth:
        ev.append(_ev("SD1/SD2 UNet block layout (attention in the first down block)", sd12[0]))
        # a 1x1 convolution shows as 4-D only in plain weights and LoRA-style factors; LoHa/LoKr/OFT flatten it
        projs = [m for m in _find(unet, _RX_PROJ_IN) if m.algo in (None, "lora", "dora", "full", "glora")]
        ndims = {m.ndim for m in projs}
        if ndims == {4}:
            ev.append(_ev("proj_in/proj_out are 1x1 convolutions (SD1.x; SD2.x uses linear layers)", projs[0]))
            return _Verdict("sd1", "medium", ev, variant=variant, denoiser_name="unet")
        if ndims == {2}:
            ev.append(_ev("proj_in/proj_out are linear layers (SD2.x; SD1.x uses 1x1 convolutions)", projs[0]))
            return _Verdict("sd2", "medium", ev, variant=variant, denoiser_name="unet")
        return _Verdict("unknown", "none", ev, candidates=("sd1", "sd2"), denoiser_name="unet")
    m0 = unet[0]
    return _Verdict("unknown", "none", [_ev("UNet-style module names without a decisive width", m0)],
                    candidates=("sd1", "sd2", "sdxl-base"), denoiser_name="unet")  # fmt: skip


# -- FLUX-style double/single stream transformers -----------------------------------------------------
_RX_FLUX_BFL = re.compile(r"(^|_)(double_blocks_(\d+)_(img|txt)_(attn|mlp|mod)|single_blocks_(\d+)_(linear[12]|modulation|norm))")
_RX_FLUX_DIFF = re.compile(r"(^|_)single_transformer_blocks_(\d+)_")
# diffusers' double blocks are top-level transformer_blocks.N (a UNet's transformer_blocks sit inside its blocks)
_RX_DOUBLE_IDX = re.compile(r"(?:(?:^|_)double_blocks|^transformer_blocks)_(\d+)_")
_RX_SINGLE_IDX = re.compile(r"(?:^|_)(?:single_blocks|single_transformer_blocks)_(\d+)_")
_RX_FLUX_HIDDEN_IN = re.compile(
    r"(img_attn_qkv|img_attn_proj|txt_attn_qkv|txt_attn_proj|attn_to_[qkv]|attn_add_[qkv]_proj|linear1|qkv\d|proj\d)$"
)
_RX_FLUX_HIDDEN_OUT = re.compile(r"(img_attn_proj|txt_attn_proj|linear2|attn_to_out_0|attn_to_add_out)$")
_RX_FLUX_MLP_OUT = re.compile(r"(img_mlp_0|txt_mlp_0|ff_net_0_proj|ff_context_net_0_proj|proj_mlp)$")
_RX_FLUX_LINEAR1 = re.compile(r"single_blocks_\d+_linear1$")
_RX_FLUX_MLP_IN = re.compile(r"(img_mlp_2|txt_mlp_2|ff_net_2|ff_context_net_2)$")
_RX_HUNYUAN = re.compile(r"(img_mlp_fc[12]|txt_mlp_fc[12]|img_mod_linear|txt_mod_linear|individual_token_refiner|single_blocks_\d+_modulation_linear|img_attn_q_norm|token_refiner_refiner_blocks)")  # fmt: skip
_RX_FLUX2 = re.compile(r"(double_stream_modulation|single_stream_modulation|to_qkv_mlp_proj|ff_linear_in)")
_RX_CHROMA = re.compile(r"distilled_guidance_layer")
_RX_GUIDANCE = re.compile(r"(^|_)(guidance_in_(in|out)_layer|time_text_embed_guidance_embedder)")
_RX_TIME_IN = re.compile(r"(^|_)(time_in_in_layer|time_text_embed_timestep_embedder_linear_1)$")
_RX_IMG_IN = re.compile(r"(^|_)(img_in|x_embedder)$")
_RX_FLUX_MODULATION = re.compile(r"(img_mod_lin|txt_mod_lin|modulation_lin|norm1_linear|norm1_context_linear|norm_linear)$")
_RX_AURAFLOW_DIFF = re.compile(
    r"(^|_)joint_transformer_blocks_\d+_|(^|_)single_transformer_blocks_\d+_(attn_to_out_0|ff_linear_[12]|ff_out_projection|norm1_linear)$"
)


def _rule_flux(mods: Sequence[_Mod], checkpoint: bool) -> _Verdict | None:
    if _find(mods, _RX_AURAFLOW_DIFF):
        return None  # AuraFlow's diffusers names also have single_transformer_blocks (3072 wide)
    bfl = _find(mods, _RX_FLUX_BFL)
    diff = _find(mods, _RX_FLUX_DIFF)
    xl = [m for m in mods if m.style == "xlabs" and "double_blocks" in m.path]
    if not bfl and not diff and not xl:
        return None
    anchor = (bfl or diff or xl)[0]
    ev: list[Evidence] = []
    layout = "double/single-stream blocks (FLUX layout)"
    ev.append(_ev(f"{layout}", anchor))
    if _find(mods, _RX_FLUX2):
        f2 = _find(mods, _RX_FLUX2)[0]
        ev.append(_ev("FLUX.2 shared modulation / fused projections", f2))
        return _Verdict("other:flux2", "high", ev, variant=_flux2_variant(mods, ev))
    if _find(mods, _RX_HUNYUAN):
        h = _find(mods, _RX_HUNYUAN)[0]
        ev.append(_ev("HunyuanVideo module names (img_mlp.fc1 / img_mod.linear / token refiner)", h))
        return _Verdict("other:hunyuan-video", "high", ev)
    block_mods = [m for m in mods if _RX_DOUBLE_IDX.search(m.path) or _RX_SINGLE_IDX.search(m.path)] or list(mods)
    hidden, hmod, hcounts = _widest(_find(block_mods, _RX_FLUX_HIDDEN_IN), "in")
    hside = mside = "in"
    if hidden is None:
        hidden, hmod, hcounts = _widest(_find(block_mods, _RX_FLUX_HIDDEN_OUT), "out")
        hside = "out"
    mlp, mmod, _ = _widest(_find(block_mods, _RX_FLUX_MLP_OUT), "out")
    mside = "out"
    if mlp is None:
        mlp, mmod, _ = _widest(_find(block_mods, _RX_FLUX_MLP_IN), "in")
        mside = "in"
    mlp_note = ""
    if mlp is None and hidden is not None:
        # single blocks fuse qkv and the MLP input: linear1 is hidden -> 3 * hidden + mlp
        l1, l1mod, _ = _widest(_find(block_mods, _RX_FLUX_LINEAR1), "out")
        if l1 is not None and l1 > 3 * hidden:
            mlp, mmod, mside = l1 - 3 * hidden, l1mod, "out"
            mlp_note = f" (single-block linear1 output {l1} = 3 x {hidden} + {mlp})"
    dmax = _max_index(mods, _RX_DOUBLE_IDX)
    smax = _max_index(mods, _RX_SINGLE_IDX)
    if hidden is not None and hmod is not None:
        ev.append(_ev(f"hidden width {hidden}", hmod, hidden, hside))
    if mlp is not None and mmod is not None:
        ev.append(_ev(f"MLP width {mlp}{mlp_note}", mmod, mlp, mside))
    if dmax is not None or smax is not None:
        ev.append(Evidence(f"highest block indices: double {dmax}, single {smax} (FLUX.1 has 19 and 38 blocks)"))
    if hidden in (4096, 6144) or (hidden == 3072 and mlp is not None and mlp not in (12288,)):
        ev.append(Evidence("widths are not FLUX.1's (hidden 3072, MLP 12288)"))
        return _Verdict("other:flux2", "medium", ev, variant=_flux2_variant(mods, ev), candidates=("other:flux2",))
    if (dmax is not None and dmax > 18) or (smax is not None and smax > 37):
        if hidden == 3072 and (smax is None or smax <= 39) and (dmax is None or dmax <= 19):
            ev.append(Evidence("more blocks than FLUX.1 has; HunyuanVideo has 20 double and 40 single blocks"))
            return _Verdict("other:hunyuan-video", "medium", ev)
        return _Verdict("unknown", "none", ev + [Evidence("more blocks than FLUX.1 has")],
                        candidates=("other:hunyuan-video", "other:flux2"))  # fmt: skip
    if _find(mods, _RX_CHROMA) and not _find(mods, _RX_GUIDANCE):
        ev.append(_ev("distilled guidance layer instead of FLUX modulation (Chroma)", _find(mods, _RX_CHROMA)[0]))
        return _Verdict("other:chroma", "high", ev)
    if hidden is not None and hidden != 3072:
        return _Verdict("unknown", "none", ev + [Evidence("FLUX-like layout with a width FLUX.1 does not have")])
    variant: str | None = None
    if checkpoint:
        g = _find(mods, _RX_GUIDANCE)
        t = _find(mods, _RX_TIME_IN)
        img_in = _find(mods, _RX_IMG_IN)
        if g:
            variant = "dev"
            ev.append(_ev("guidance embedding present (guidance-distilled: FLUX.1-dev family)", g[0]))
        elif t:
            variant = "schnell"
            ev.append(_ev("timestep embedding without guidance embedding (FLUX.1-schnell)", t[0]))
        if img_in and img_in[0].in_w in (384, 128):
            kind = "fill" if img_in[0].in_w == 384 else "canny-depth"
            variant = f"{variant}-{kind}" if variant else kind
            ev.append(_ev(f"image input takes {img_in[0].in_w} features ({kind})", img_in[0], img_in[0].in_w))
    elif _find(mods, _RX_GUIDANCE):
        variant = "dev"
        ev.append(_ev("adapts the guidance embedding (FLUX.1-dev family)", _find(mods, _RX_GUIDANCE)[0]))
    also: tuple[str, ...] = ()
    if not checkpoint and not _find(mods, _RX_FLUX_MODULATION):
        # Chroma is FLUX.1 with the per-block modulation layers removed: an adapter that leaves them alone
        # fits both
        ev.append(Evidence("no modulation layer adapted: the same shapes fit Chroma (FLUX.1 without per-block modulation)"))
        also = ("other:chroma",)
    if hidden == 3072 and mlp == 12288:
        # HunyuanVideo's double/single blocks have the same widths and names (only 20/40 blocks instead of
        # 19/38): FLUX.1 is certain when its last block is seen or its image input is a linear layer
        # (HunyuanVideo's is a 3-D convolution); a shard or a LoRA on a few blocks stays medium
        img_in = [m for m in _find(mods, _RX_IMG_IN) if m.ndim == 2]
        if dmax == 18 or smax == 37 or img_in:
            return _Verdict("flux1", "high", ev, variant=variant, also=also)
        ev.append(Evidence("FLUX.1's last blocks (double 18, single 37) are not in the file; HunyuanVideo has the same widths"))
        return _Verdict("flux1", "medium", ev, variant=variant, also=also)
    if hidden == 3072:
        ev.append(Evidence("no MLP width to tell FLUX.1 from FLUX.2 Klein 4B (both 3072 wide)"))
        return _Verdict("flux1", "medium", ev, variant=variant, candidates=("flux1", "other:flux2"), also=also)
    if dmax == 18 and smax == 37:
        return _Verdict("flux1", "medium", ev, variant=variant, also=also)
    return _Verdict("unknown", "none", ev, candidates=("flux1", "other:flux2", "other:hunyuan-video"))


# FLUX.2 sizes (diffusers' Flux2Transformer2DModel defaults for dev; InvokeAI's Klein4B / Klein9B presets):
# variant: (hidden width, text context width, double blocks, single blocks)
_FLUX2_SIZES: dict[str, tuple[int, int, int, int]] = {
    "klein-4b": (3072, 7680, 5, 20),
    "klein-9b": (4096, 12288, 8, 24),
    "dev": (6144, 15360, 8, 48),
}
_FLUX2_WHY = {"klein-4b": "FLUX.2 [klein] 4B (24 heads x 128; Qwen3-4B context 3 x 2560)",
              "klein-9b": "FLUX.2 [klein] 9B (32 heads x 128; Qwen3-8B context 3 x 4096)",
              "dev": "FLUX.2 [dev] (48 heads x 128; Mistral Small 3.1 context 3 x 5120)"}  # fmt: skip
_RX_FLUX2_HIDDEN = re.compile(r"(img_attn_qkv|img_attn_proj|txt_attn_qkv|txt_attn_proj|attn_to_[qkv]|attn_add_[qkv]_proj|"
                              r"attn_to_out_0|attn_to_add_out|to_qkv_mlp_proj|linear1)$")  # fmt: skip
_RX_FLUX2_CTX = re.compile(r"(^|_)(context_embedder|txt_in)$")


def _flux2_variant(mods: Sequence[_Mod], ev: list[Evidence]) -> str | None:
    """Which FLUX.2 model a FLUX.2 file belongs to: the hidden width (3072 Klein 4B, 4096 Klein 9B, 6144 dev)
    or the text-context width, checked against the depth (5/20, 8/24 and 8/48 double/single blocks). The base
    and distilled Klein models have the same shapes. Appends its evidence to ``ev``; None when undecided."""
    blocks = [m for m in mods if _RX_DOUBLE_IDX.search(m.path) or _RX_SINGLE_IDX.search(m.path)]
    hidden, hmod, _ = _widest(_find(blocks, _RX_FLUX2_HIDDEN), "in")
    ctx, cmod, _ = _widest(_find(mods, _RX_FLUX2_CTX), "in")
    dmax, smax = _max_index(mods, _RX_DOUBLE_IDX), _max_index(mods, _RX_SINGLE_IDX)
    by_width = next((v for v, sz in _FLUX2_SIZES.items() if sz[0] == hidden), None)
    by_ctx = next((v for v, sz in _FLUX2_SIZES.items() if sz[1] == ctx), None)
    deep_enough = [v for v, sz in _FLUX2_SIZES.items() if (dmax is None or dmax < sz[2]) and (smax is None or smax < sz[3])]
    depth = f"highest block indices double {dmax}, single {smax}" if dmax is not None or smax is not None else None
    if by_width and hmod is not None:
        ev.append(_ev(f"hidden width {hidden}: {_FLUX2_WHY[by_width]}", hmod, hidden))
    if by_ctx and cmod is not None:
        ev.append(_ev(f"text context width {ctx}: {_FLUX2_WHY[by_ctx]}", cmod, ctx))
    named = by_width or by_ctx
    if by_width and by_ctx and by_width != by_ctx:
        ev.append(Evidence(f"hidden width says {by_width} but the text context says {by_ctx}: variant undecided"))
        return None
    if named is not None:
        sz = _FLUX2_SIZES[named]
        if named not in deep_enough:
            ev.append(Evidence(f"{depth}: more blocks than {named} has ({sz[2]} double, {sz[3]} single): variant undecided"))
            return None
        if depth:
            ev.append(Evidence(f"{depth}, within {named}'s {sz[2]} double and {sz[3]} single blocks"))
        return named
    if depth and len(deep_enough) == 1:
        v = deep_enough[0]
        ev.append(Evidence(f"{depth}: only {_FLUX2_WHY[v]} has that many blocks"))
        return v
    if depth and deep_enough:
        ev.append(Evidence(f"no width tells the FLUX.2 model apart; the depth ({depth}) allows {', '.join(deep_enough)}"))
    return None


# -- MM-DiT families that use transformer_blocks.N.attn.add_q_proj (diffusers) or joint_blocks (SGM) ----
_RX_SD3_SGM = re.compile(r"(^|_)joint_blocks_(\d+)_(x_block|context_block)_")
_RX_SD3_HIDDEN = re.compile(r"(x_block_attn_qkv|x_block_mlp_fc1|context_block_attn_qkv|x_block_attn_proj)$")
_RX_SD3_ATTN2 = re.compile(r"(x_block_attn2_|transformer_blocks_\d+_attn2_)")
_RX_MMDIT_DIFF = re.compile(r"(^|_)transformer_blocks_(\d+)_(attn_add_[qkv]_proj|attn_to_add_out|ff_context_|norm1_context_)")
_RX_QWEN = re.compile(r"(^|_)transformer_blocks_(\d+)_(img_mlp|txt_mlp|img_mod|txt_mod)_")
_RX_QWEN_TXT_IN = re.compile(r"(^|_)txt_in$")
_RX_TOP_JOINT_ATTN = re.compile(r"^transformer_blocks_(\d+)_attn_(to_[qkv]|to_out_0)$")
_RX_MMDIT_HIDDEN = re.compile(r"transformer_blocks_\d+_attn_(to_[qkv]|add_[qkv]_proj)$")
_RX_BLOCK_IDX = re.compile(r"(?:^|_)transformer_blocks_(\d+)_")


def _rule_mmdit(mods: Sequence[_Mod], checkpoint: bool) -> _Verdict | None:
    sgm = _find(mods, _RX_SD3_SGM)
    if sgm:
        ev = [_ev("joint_blocks with x_block/context_block (SD3 MM-DiT, SGM naming)", sgm[0])]
        hidden, hmod, _ = _widest(_find(mods, _RX_SD3_HIDDEN), "in")
        attn2 = _find(mods, _RX_SD3_ATTN2)
        variant = None
        if hidden is not None and hmod is not None:
            ev.append(_ev(f"hidden width {hidden}", hmod, hidden))
        if hidden == 2432:
            variant = "3.5-large"
        elif hidden == 1536:
            if attn2:
                variant = "3.5-medium"
                ev.append(_ev("x_block.attn2 (SD3.5 medium's MMDiT-X)", attn2[0]))
            elif checkpoint:
                variant = "3-medium"
        return _Verdict("sd3", "high", ev, variant=variant)
    qwen = _find(mods, _RX_QWEN)
    if qwen:
        ev = [_ev("transformer_blocks with img_mlp/txt_mlp/img_mod/txt_mod (Qwen-Image MMDiT)", qwen[0])]
        hidden, hmod, _ = _widest(_find(mods, _RX_MMDIT_HIDDEN), "in")
        if hidden is not None and hmod is not None:
            ev.append(_ev(f"hidden width {hidden}", hmod, hidden))
        txt_in = _find(mods, _RX_QWEN_TXT_IN)
        if txt_in and txt_in[0].in_w:
            ev.append(_ev(f"text input width {txt_in[0].in_w} (Qwen2.5-VL)", txt_in[0], txt_in[0].in_w))
        return _Verdict("other:qwen-image", "high" if hidden in (3072, None) else "medium", ev)
    diff = _find(mods, _RX_MMDIT_DIFF)
    joint_names = bool(diff)
    if not diff:
        # a LoRA on the image stream's attention only (the diffusers DreamBooth default: to_q/k/v/out)
        diff = _find(mods, _RX_TOP_JOINT_ATTN)
        if not diff:
            return None
    if _find(mods, _RX_FLUX_DIFF):
        return None  # FLUX's diffusers naming: the flux rule decides
    ev = [_ev("transformer_blocks with joint (added) attention, no single-stream blocks" if joint_names
              else "top-level transformer_blocks.N.attn.to_q/k/v (MM-DiT image-stream attention only)", diff[0])]  # fmt: skip
    hidden, hmod, _ = _widest(_find(mods, _RX_MMDIT_HIDDEN), "in")
    bmax = _max_index(mods, _RX_BLOCK_IDX)
    if hidden is not None and hmod is not None:
        ev.append(_ev(f"hidden width {hidden}", hmod, hidden))
    if bmax is not None:
        ev.append(Evidence(f"highest transformer block index {bmax}"))
    attn2 = _find(mods, _RX_SD3_ATTN2)
    if hidden in (1536, 2432):
        variant = "3.5-large" if hidden == 2432 else ("3.5-medium" if attn2 else ("3-medium" if checkpoint else None))
        if attn2 and hidden == 1536:
            ev.append(_ev("attn2 in the joint blocks (SD3.5 medium's MMDiT-X)", attn2[0]))
        ev.append(Evidence("SD3 widths (1536 medium, 2432 3.5-large)"))
        return _Verdict("sd3", "high" if joint_names else "medium", ev, variant=variant)
    if hidden == 3072:
        mlp, mmod, _ = _widest(_find(mods, _RX_FLUX_MLP_OUT), "out")
        if bmax is not None and bmax > 18:
            ev.append(Evidence("more joint blocks than FLUX.1's 19, 3072 wide: Qwen-Image (60 blocks)"))
            return _Verdict("other:qwen-image", "medium", ev)
        if mlp == 12288 and mmod is not None:
            ev.append(_ev("MLP width 12288 (FLUX.1 double blocks)", mmod, mlp, "out"))
            return _Verdict("flux1", "medium", ev, candidates=("flux1",))
        return _Verdict("unknown", "none", ev, candidates=("flux1", "other:qwen-image"))
    return _Verdict("unknown", "none", ev, candidates=("sd3", "flux1", "other:qwen-image"))


# -- Wan ---------------------------------------------------------------------------------------------
_RX_WAN = re.compile(r"^blocks_(\d+)_(self_attn_[qkvo]|cross_attn_([qkvo]|k_img|v_img)|ffn_[02])$")
_RX_WAN_DIFF = re.compile(r"^blocks_(\d+)_(attn[12]_(to_[qkv]|to_out_0|add_k_proj|add_v_proj)|ffn_net_0_proj|ffn_net_2)$")
_RX_WAN_Q = re.compile(r"(self_attn_q|attn1_to_q)$")
_RX_WAN_DIFF_CTX = re.compile(r"^blocks_\d+_attn2_to_k$")
_RX_WAN_IMG = re.compile(r"(k_img|v_img|add_k_proj|img_emb|image_embedder)")
_RX_WAN_PATCH = re.compile(r"(^|_)patch_embedding$")
_WAN_DIMS = {1536: "1.3b", 5120: "14b", 3072: "2.2-5b"}


def _rule_wan(mods: Sequence[_Mod], checkpoint: bool) -> _Verdict | None:
    wan = _find(mods, _RX_WAN) or _find(mods, _RX_WAN_DIFF)
    if not wan:
        return None
    named = bool(_find(mods, _RX_WAN))
    ev = [_ev("blocks.N.self_attn/cross_attn/ffn (Wan DiT)" if named else "blocks.N.attn1/attn2/ffn (Wan DiT, diffusers naming)", wan[0])]  # fmt: skip
    dim, dmod, _ = _widest(_find(mods, _RX_WAN_Q), "in")
    parts: list[str] = []
    if dim is not None and dmod is not None:
        size = _WAN_DIMS.get(dim)
        ev.append(_ev(f"model width {dim}" + (f" (Wan {size})" if size else ""), dmod, dim))
        if size:
            parts.append(size)
    img = _find(mods, _RX_WAN_IMG)
    if img:
        parts.append("i2v")
        ev.append(_ev("image cross-attention (i2v)", img[0]))
    if checkpoint:
        pe = _find(mods, _RX_WAN_PATCH)
        if pe and pe[0].in_w:
            ev.append(_ev(f"patch embedding takes {pe[0].in_w} channels", pe[0], pe[0].in_w))
    if not named:
        # diffusers names blocks.N.attn1/attn2 the same way in Hunyuan-DiT; Wan projects its text into the
        # model width before cross-attention, Hunyuan-DiT feeds 1024-wide CLIP/BERT features to attn2
        ctx, cmod, _ = _widest(_find(mods, _RX_WAN_DIFF_CTX), "in")
        if ctx is not None and cmod is not None and dim is not None and ctx != dim:
            ev.append(_ev(f"cross-attention takes {ctx}-wide context, not the model width {dim} (Wan's is)", cmod, ctx))
            if ctx == 1024 and dim in (1152, 1408):
                ev.append(Evidence("Hunyuan-DiT widths (1152 or 1408, 1024-wide text context)"))
                return _Verdict("other:hunyuan-dit", "medium", ev)
            return _Verdict("unknown", "none", ev, candidates=("other:wan", "other:hunyuan-dit"))
        if dim not in _WAN_DIMS:
            return _Verdict("unknown", "none", ev + [Evidence("a width Wan does not have")],
                            candidates=("other:wan", "other:hunyuan-dit"))  # fmt: skip
    return _Verdict("other:wan", "high", ev, variant="-".join(parts) or None)


# -- LTX, PixArt, Sana and other attn1/attn2 DiTs ---------------------------------------------------
_RX_TOP_ATTN = re.compile(r"^transformer_blocks_(\d+)_attn([12])_(to_[qkv]|to_out_0)$")
_RX_LTX_MARK = re.compile(r"(^|_)(adaln_single|caption_projection|scale_shift_table)")
_RX_LTX2 = re.compile(r"(audio_attn|audio_ff|audio_to_video|video_to_audio|audio_caption)")
_RX_SANA = re.compile(r"ff_conv_(inverted|depth|point)")


def _rule_attn12_dit(mods: Sequence[_Mod], checkpoint: bool) -> _Verdict | None:
    top = [m for m in mods if _RX_TOP_ATTN.search(m.path)]
    marks = _find(mods, _RX_LTX_MARK)
    if not top and not marks:
        return None
    if _find(mods, _RX_LTX2):
        return _Verdict("other:ltx2", "high", [_ev("audio/video cross-modal blocks (LTX-2)", _find(mods, _RX_LTX2)[0])])
    if _find(mods, _RX_SANA):
        return _Verdict("other:sana", "high", [_ev("inverted-convolution feed-forward (Sana)", _find(mods, _RX_SANA)[0])])
    ev: list[Evidence] = []
    hidden, hmod, _ = _widest([m for m in top if m.path.endswith(("attn1_to_q", "attn1_to_k", "attn1_to_v"))], "in")
    if hidden is not None and hmod is not None:
        ev.append(_ev(f"top-level transformer_blocks with attn1/attn2, hidden width {hidden}", hmod, hidden))
    elif top:
        ev.append(_ev("top-level transformer_blocks with attn1/attn2", top[0]))
    if marks and checkpoint:
        ev.append(_ev("adaln_single / caption_projection (PixArt-style DiT as used by LTX-Video)", marks[0]))
    if hidden in (2048, 4096):
        return _Verdict("other:ltx", "medium", ev + [Evidence("LTX-Video widths (2048 for 2B, 4096 for 13B)")])
    if hidden == 1152:
        return _Verdict("other:pixart", "medium", ev + [Evidence("PixArt width 1152")], candidates=("other:pixart", "other:sana"))  # fmt: skip
    if hidden == 2240:
        return _Verdict("other:sana", "medium", ev + [Evidence("Sana 1600M width 2240")])
    return _Verdict("unknown", "none", ev, candidates=("other:ltx", "other:pixart", "other:sana", "other:mochi"))


# -- other named families -----------------------------------------------------------------------------
_SIMPLE_FAMILIES: tuple[tuple[str, re.Pattern[str], str, bool], ...] = (
    # (arch, pattern, what, checkpoint_only)
    ("other:hidream", re.compile(r"(^|_)(double_stream_blocks|single_stream_blocks)_\d+_"), "double/single_stream_blocks (HiDream-I1)", False),  # fmt: skip
    ("other:auraflow", re.compile(r"(^|_)(double_layers|single_layers)_\d+_(attn|mlp|modC|modX)"), "double_layers/single_layers (AuraFlow)", False),  # fmt: skip
    ("other:auraflow", _RX_AURAFLOW_DIFF, "joint_transformer_blocks (AuraFlow, diffusers naming)", False),
    ("other:mochi", re.compile(r"(^|_)transformer_blocks_\d+_attn1_(add_[qkv]_proj|to_add_out)$|(^|_)time_embed_pooler_"), "joint attention inside attn1 (Mochi, diffusers naming)", False),  # fmt: skip
    ("other:hunyuan-dit", re.compile(r"(^|_)(mlp_t5|extra_embedder|blocks_\d+_attn1_Wqkv|blocks_\d+_skip_linear)"), "mlp_t5 / attn1.Wqkv / long skip connections (Hunyuan-DiT)", False),  # fmt: skip
    ("other:stable-cascade", re.compile(r"(^|_)(clip_txt_mapper|clf_1|down_blocks_\d+_\d+_channelwise)"), "channelwise blocks / clip mappers (Stable Cascade)", False),  # fmt: skip
    ("other:mochi", re.compile(r"(^|_)(t5_yproj|blocks_\d+_attn_qkv_x)"), "qkv_x / t5_yproj (Mochi)", False),
    ("other:pixart", re.compile(r"(^|_)(t_block_1|y_embedder_y_proj|blocks_\d+_cross_attn_q_linear)"), "t_block / cross_attn.q_linear (PixArt, original naming)", False),  # fmt: skip
)
_RX_LUMINA = re.compile(r"(^|_)layers_(\d+)_(attention_(qkv|to_q|to_k|to_v|out|to_out_0)|attn_(to_q|to_k|to_v|to_out_0)|feed_forward_(w[123]|linear_[123]))$")
_RX_LUMINA_MARK = re.compile(r"(^|_)(noise_refiner|context_refiner|cap_embedder)")
_RX_LUMINA_Q = re.compile(r"(attention_(qkv|to_q)|attn_to_q)$")


def _rule_lumina(mods: Sequence[_Mod], checkpoint: bool) -> _Verdict | None:
    lum = _find(mods, _RX_LUMINA)
    marks = _find(mods, _RX_LUMINA_MARK)
    if not lum or not (marks or any("attention_" in m.path or "_attn_" in m.path for m in lum)):
        return None
    ev = [_ev("layers.N.attention / feed_forward.w1-3 (Lumina-Next style DiT)", lum[0])]
    if marks:
        ev.append(_ev("noise/context refiner (Lumina 2 / Z-Image)", marks[0]))
    dim, dmod, _ = _widest(_find(mods, _RX_LUMINA_Q), "in")
    if dim is not None and dmod is not None:
        ev.append(_ev(f"model width {dim}", dmod, dim))
    if dim == 3840:
        return _Verdict("other:z-image", "high" if marks else "medium", ev)
    if dim == 2304:
        return _Verdict("other:lumina2", "high" if marks else "medium", ev)
    return _Verdict("unknown", "none", ev, candidates=("other:lumina2", "other:z-image"))


def _rule_simple(mods: Sequence[_Mod], checkpoint: bool) -> _Verdict | None:
    for arch, rx, what, ckpt_only in _SIMPLE_FAMILIES:
        if ckpt_only and not checkpoint:
            continue
        hits = _find(mods, rx)
        if hits:
            return _Verdict(arch, "high", [_ev(what, hits[0])])
    return None


_DENOISER_RULES = (_rule_mmdit, _rule_flux, _rule_unet, _rule_wan, _rule_attn12_dit, _rule_lumina, _rule_simple)


def _denoiser_verdict(mods: Sequence[_Mod], checkpoint: bool) -> tuple[_Verdict | None, list[_Verdict]]:
    verdicts = [v for r in _DENOISER_RULES if (v := r(mods, checkpoint)) is not None]
    if not verdicts:
        return None, []
    named = [v for v in verdicts if v.arch != "unknown"]
    if not named:
        return verdicts[0], verdicts
    best = max(named, key=lambda v: _RANK[v.confidence])
    rivals = [v for v in named if v.arch != best.arch and _RANK[v.confidence] >= _RANK[best.confidence]]
    if rivals:
        ev = best.evidence + [e for v in rivals for e in v.evidence]
        cands = tuple(dict.fromkeys([best.arch] + [v.arch for v in rivals]))
        msg = f"the denoiser's layers are shaped for different families ({', '.join(cands)})"
        return _Verdict("unknown", "none", ev, candidates=cands, conflicts=(msg,)), verdicts
    return best, verdicts


# -- text encoders --------------------------------------------------------------------------------------
# ``text_model.`` is optional: transformers 5 keeps CLIPTextModel's layers one level up in memory, and adapters
# made on such a model name them ``encoder.layers.N``
_RX_CLIP_HF = re.compile(r"(^|_)(text_model_)?(?<!vision_model_)(?<!visual_)encoder_layers_(\d+)_(self_attn_(q|k|v|out)_proj|mlp_fc[12])$")
_RX_CLIP_OC = re.compile(r"(^|_)resblocks_(\d+)_(attn_in_proj_weight|attn_in_proj|attn_out_proj|mlp_c_fc|mlp_c_proj)$")
_RX_T5 = re.compile(r"(^|_)(encoder_)?block_(\d+)_layer_\d+_(SelfAttention_[qkvo]|DenseReluDense_w[io](_[01])?)$", re.I)
_RX_LLM = re.compile(r"(^|_)(model_)?layers_(\d+)_(self_attn_[qkvo]_proj|mlp_(gate|up|down)_proj)$")
_RX_VISUAL = re.compile(r"(^|_)(visual|vision_model)_")
_RX_SHARED = re.compile(r"(^|_)(shared|encoder_embed_tokens)$")


@dataclass
class _TE:
    component: str
    family: str
    width: int
    layers: int | None
    evidence: Evidence


def _te_family(kind: str, width: int, layers: int | None, vocab: int | None) -> str:
    if kind == "clip":
        return {768: "clip-l", 1024: "openclip-h", 1280: "clip-g"}.get(width, f"clip-{width}")
    if kind == "t5":
        if vocab is not None and vocab > 200_000:
            return "umt5-xxl" if width == 4096 else f"umt5-{width}"
        return {4096: "t5-xxl", 2048: "t5-xl", 1024: "t5-large", 768: "t5-base"}.get(width, f"t5-{width}")
    return {3584: "qwen2.5-vl-7b", 2304: "gemma2-2b", 2560: "qwen3-4b"}.get(width, f"llm-{width}")


def _text_encoders(mods: Sequence[_Mod]) -> list[_TE]:
    found: dict[str, _TE] = {}
    groups: dict[tuple[str, str], list[tuple[_Mod, int, int | None]]] = {}
    for m in mods:
        comp = m.component if m.component.startswith("te") else ("te1" if m.component in ("other", "denoiser") else m.component)
        if not comp.startswith("te"):
            continue
        mm = _RX_CLIP_HF.search(m.path)
        if mm:
            sub = mm.group(4)
            if sub == "mlp_fc2":
                w = m.out_w
            elif sub == "mlp_fc1":
                w = m.in_w or (m.out_w // 4 if m.out_w else None)
            else:  # square projections: either side is the width (OFT / IA3 only give the output side)
                w = m.in_w or m.out_w
            if w:
                groups.setdefault((comp, "clip"), []).append((m, w, int(mm.group(3))))
            continue
        mm = _RX_CLIP_OC.search(m.path)
        if mm:
            sub = mm.group(3)
            w = m.out_w if sub == "mlp_c_proj" else m.in_w
            if w:
                groups.setdefault((comp, "clip"), []).append((m, w, int(mm.group(2))))
            continue
        mm = _RX_T5.search(m.path)
        if mm:
            sub = mm.group(4)
            w = m.out_w if sub.lower().startswith("denserelu") and sub.lower().endswith("wo") else m.in_w
            if sub.lower().startswith("selfattention_o"):
                w = m.out_w
            elif sub.lower().startswith("selfattention"):
                w = m.in_w or m.out_w
            if w:
                groups.setdefault((comp, "t5"), []).append((m, w, int(mm.group(3))))
            continue
        if _RX_VISUAL.search(m.path):
            continue
        mm = _RX_LLM.search(m.path)
        if mm:
            sub = mm.group(4)
            w = m.out_w if sub in ("self_attn_o_proj", "mlp_down_proj") else m.in_w
            if w:
                groups.setdefault((comp, "llm"), []).append((m, w, int(mm.group(3))))
    vocab = None
    for m in mods:
        if _RX_SHARED.search(m.path) and m.ndim == 2:
            vocab = m.out_w
    for (comp, kind), items in groups.items():
        c = Counter(w for _, w, _ in items)
        width = c.most_common(1)[0][0]
        layers = max(i for _, _, i in items if i is not None) + 1
        m0 = next(m for m, w, _ in items if w == width)
        fam = _te_family(kind, width, layers, vocab if kind == "t5" else None)
        if kind == "llm" and any(_RX_VISUAL.search(m.path) for m in mods) and width == 3584:
            fam = "qwen2.5-vl-7b"
        what = f"text encoder {comp}: {fam} (width {width}, {layers} layers seen)"
        te = _TE(comp, fam, width, layers, _ev(what, m0, width))
        prev = found.get(comp)
        if prev is None or len(items) > 0:
            found[comp] = te if prev is None else prev
    return sorted(found.values(), key=lambda t: t.component)


# which base architectures a set of text-encoder families allows
_TE_ARCHS: dict[str, tuple[str, ...]] = {
    "clip-l": ("sd1", "sdxl-base", "sd3", "flux1", "other:hunyuan-video"),
    "openclip-h": ("sd2",),
    "clip-g": ("sdxl-base", "sdxl-refiner", "sd3"),
    "t5-xxl": ("sd3", "flux1", "other:ltx", "other:pixart", "other:mochi", "other:auraflow"),
    "umt5-xxl": ("other:wan",),
    "qwen2.5-vl-7b": ("other:qwen-image",),
}


def _te_vote(tes: Sequence[_TE], styles: set[str]) -> tuple[tuple[str, ...], str]:
    """Architectures consistent with all text encoders present; and the confidence of a single answer."""
    fams = {t.family for t in tes}
    comps = {t.component for t in tes}
    if not fams:
        return (), "none"
    allowed: set[str] | None = None
    for f in fams:
        a = set(_TE_ARCHS.get(f, ()))
        if not a:
            return (), "none"
        allowed = a if allowed is None else allowed & a
    if not allowed:
        return (), "none"
    # SD1/SD2 kohya LoRAs use a single "lora_te_" text encoder; SDXL uses te1 (CLIP-L) + te2 (CLIP-G)
    if fams == {"clip-l"} and comps == {"te1"}:
        if "kohya" in styles and any(t.evidence.key and t.evidence.key.startswith("lora_te_") for t in tes):
            return ("sd1",), "medium"
        if any(t.evidence.key and t.evidence.key.startswith("cond_stage_model.") for t in tes):
            return ("sd1",), "medium"
    if fams == {"clip-l", "clip-g"}:
        allowed &= {"sdxl-base", "sd3"}
    if fams == {"clip-l", "clip-g", "t5-xxl"}:
        return ("sd3",), "medium"
    ordered = tuple(a for a in ARCH_LABELS if a in allowed)
    return ordered, ("medium" if len(ordered) == 1 else "none")


# -- embeddings, VAEs, controlnets -------------------------------------------------------------------------
_EMB_WIDTH_ARCH = {768: "sd1", 1024: "sd2"}


def _embedding(pairs: list[tuple[str, tuple[int, ...]]]) -> tuple[str, str, str, str, list[Evidence], tuple[str, ...], dict[str, Any]] | None:  # noqa: E501
    """(style, arch, confidence, ..., candidates, details) for a textual-inversion embedding, or None."""
    if not pairs or len(pairs) > 8:
        return None
    d = dict(pairs)
    names = set(d)

    def vec(shape: tuple[int, ...]) -> tuple[int, int] | None:
        if len(shape) == 2 and 0 < shape[0] <= 512 and shape[1] >= 256:
            return shape[0], shape[1]
        if len(shape) == 1 and shape[0] >= 256:
            return 1, shape[0]
        return None

    if names and names <= {"clip_l", "clip_g", "t5", "t5xxl"}:
        vecs = {n: vec(d[n]) for n in names}
        if any(x is None for x in vecs.values()):
            return None
        widths = {n: x[1] for n, x in vecs.items() if x is not None}
        want = {"clip_l": 768, "clip_g": 1280, "t5": 4096, "t5xxl": 4096}
        if any(widths[n] != want[n] for n in names):
            return None
        count = max(x[0] for x in vecs.values() if x is not None)
        comps = sorted({{"clip_l": "te1", "clip_g": "te2"}.get(n, "te3") for n in names})
        ev = [Evidence(f"embedding vectors for {n}, {widths[n]} wide", n, d[n], widths[n]) for n in sorted(names)]
        t5 = bool(names & {"t5", "t5xxl"})
        if names == {"clip_l", "clip_g"}:
            ev[0] = Evidence("SDXL embedding: clip_g vectors 1280 wide", "clip_g", d["clip_g"], 1280)
            ev[1] = Evidence("and clip_l vectors 768 wide", "clip_l", d["clip_l"], 768)
            return "sdxl-embedding", "sdxl-base", "high", "high", ev, (), {"vectors": count, "components": comps}
        if {"clip_l", "clip_g"} <= names and t5:
            return "te-keyed-embedding", "sd3", "medium", "high", ev, (), {"vectors": count, "components": comps}
        if names & {"clip_l"} and t5 and "clip_g" not in names:
            return "te-keyed-embedding", "flux1", "medium", "high", ev, (), {"vectors": count, "components": comps}
        cands = tuple(sorted(set.intersection(*(set(_TE_ARCHS["t5-xxl" if n.startswith("t5") else n.replace("_", "-")]) for n in names))))  # fmt: skip
        return "te-keyed-embedding", "unknown", "none", "medium", ev, cands, {"vectors": count, "components": comps}
    # A1111 / textual_inversion .pt: {"string_to_token": {"*": 265}, "string_to_param": {"*": [n, 768]}, ...};
    # the original repo stored the token id as a 0-dim tensor too
    params = [n for n in names if re.fullmatch(r"string_to_param[./].+", n)]
    side = {n for n in names if re.fullmatch(r"string_to_token([./].+)?|name|step|sd_checkpoint(_name)?", n)}
    for key in ["emb_params", *params[:1]]:
        if key in d and len(names - {key} - side) == 0:
            v = vec(d[key])
            if v is None:
                return None
            arch = _EMB_WIDTH_ARCH.get(v[1])
            ev = [Evidence(f"A1111 textual-inversion embedding: {v[0]} vectors {v[1]} wide", key, d[key], v[1])]
            if arch:
                ev.append(Evidence(f"width {v[1]} is {'CLIP-L (SD1.x)' if v[1] == 768 else 'OpenCLIP-H (SD2.x)'}"))
                return "a1111-embedding", arch, "high", "high", ev, (), {"vectors": v[0]}
            return "a1111-embedding", "unknown", "none", "high", ev, (), {"vectors": v[0]}
    if len(pairs) == 1:
        name, shape = pairs[0]
        v = vec(shape)
        if v is None or "." in name or "_" in name.strip("<>") and not name.startswith("<"):
            return None
        arch = _EMB_WIDTH_ARCH.get(v[1])
        ev = [Evidence(f"one token vector set {name!r}: {v[0]} vectors {v[1]} wide (diffusers textual inversion)", name, shape, v[1])]  # fmt: skip
        if arch:
            return "diffusers-embedding", arch, "medium", "medium", ev, (), {"vectors": v[0], "token": name}
        if v[1] == 1280:
            # SDXL's second text encoder (learned_embeds_2.safetensors): SDXL base, refiner or SD3's CLIP-G
            ev.append(Evidence("width 1280 is OpenCLIP bigG's (SDXL text_encoder_2, also in SD3)", width=1280))
            cands = ("sdxl-base", "sdxl-refiner", "sd3")
            return "diffusers-embedding", "unknown", "none", "medium", ev, cands, {"vectors": v[0], "token": name, "components": ("te2",)}  # fmt: skip
        return "diffusers-embedding", "unknown", "none", "medium", ev, (), {"vectors": v[0], "token": name}
    return None


_RX_VAE_ENC = re.compile(r"^encoder_(conv_in|down_\d+_block|down_blocks_\d+_resnets)")
_RX_VAE_DEC = re.compile(r"^decoder_(conv_in|conv_out|up_\d+_block|up_blocks_\d+_resnets)")
_RX_VAE_DEC_IN = re.compile(r"^decoder_conv_in$")
_RX_VAE_ENC_OUT = re.compile(r"^encoder_conv_out$")
_RX_TINY = re.compile(r"^(encoder|decoder)_layers_\d+_")


def _vae(mods: Sequence[_Mod]) -> tuple[str, str, list[Evidence], tuple[str, ...], dict[str, Any]] | None:
    enc = _find(mods, _RX_VAE_ENC)
    dec = _find(mods, _RX_VAE_DEC)
    tiny = _find(mods, _RX_TINY)
    if not (enc or dec) and not tiny:
        return None
    ev: list[Evidence] = []
    z: int | None = None
    dec_in = _find(mods, _RX_VAE_DEC_IN)
    enc_out = _find(mods, _RX_VAE_ENC_OUT)
    three_d = any(m.ndim == 5 for m in enc + dec)
    if dec_in and dec_in[0].in_w:
        z = dec_in[0].in_w
        ev.append(_ev(f"decoder input takes {z} latent channels", dec_in[0], z))
    elif enc_out and enc_out[0].out_w:
        z = enc_out[0].out_w // 2
        ev.append(_ev(f"encoder output {enc_out[0].out_w} = 2 x {z} latent channels (mean, log-variance)", enc_out[0], z, "out"))
    elif tiny:
        ev.append(_ev("tiny autoencoder (TAESD-style) layers", tiny[0]))
        return "unknown", "none", ev, (), {"latent_channels": None, "tiny": True}
    details: dict[str, Any] = {"latent_channels": z}
    if three_d:
        ev.append(Evidence("3-D convolutions (video VAE)"))
        details["video"] = True
        if z == 48:
            return "other:wan", "high", ev + [Evidence("48 latent channels: Wan 2.2 VAE")], (), details
        if z == 16:
            return "unknown", "none", ev, ("other:wan", "other:qwen-image"), details
        if z == 128:
            return "other:ltx", "medium", ev, (), details
        return "unknown", "none", ev, (), details
    if z == 4:
        ev.append(Evidence("4 latent channels: the SD1.x/SD2.x/SDXL autoencoder family (same shapes)"))
        return "unknown", "none", ev, ("sd1", "sd2", "sdxl-base", "sdxl-refiner"), details
    if z == 16:
        ev.append(Evidence("16 latent channels: the SD3 / FLUX.1 autoencoder family (same shapes)"))
        return "unknown", "none", ev, ("sd3", "flux1"), details
    if z == 32:
        return "other:flux2", "medium", ev + [Evidence("32 latent channels: FLUX.2 autoencoder")], (), details
    return "unknown", "none", ev, (), details


# -- tiny autoencoders (madebyollin/taesd) and A1111's VAE-approx preview decoder -------------------------
#: the prefixes a TAESD encoder/decoder state dict is found under: bare (taesd_*.pth), diffusers' AutoencoderTiny,
#: ComfyUI's TAESD wrapper
_TINY_PREFIXES = (("encoder.layers.", "encoder"), ("decoder.layers.", "decoder"),
                  ("taesd_encoder.", "encoder"), ("taesd_decoder.", "decoder"), ("", ""))  # fmt: skip
_RX_TINY_KEY = re.compile(r"^(\d+)\.(weight|bias|conv\.[024]\.(weight|bias)|skip\.weight|pool\.[013]\.(weight|bias))$")
_TINY_VARIANTS: dict[tuple[int, str], tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    # (latent channels, layout): (arch, arch candidates, variant candidates, why)
    (4, "f8"): ("unknown", ("sd1", "sd2", "sdxl-base", "sdxl-refiner"), ("taesd", "taesdxl"),
                "4 latent channels: TAESD (SD1.x/SD2.x) or TAESDXL (SDXL); both have these shapes, only the weights differ"),
    (16, "f8"): ("unknown", ("flux1", "sd3"), ("taef1", "taesd3"),
                 "16 latent channels: TAEF1 (FLUX.1) or TAESD3 (SD3); both have these shapes, only the weights differ"),
    (32, "f8-midblock-gn"): ("other:flux2", (), ("taef2",),
                             "32 latent channels with GroupNorm mid-blocks (pool.0/1/3): TAEF2, the FLUX.2 tiny autoencoder"),
    (32, "f32"): ("other:sana", (), ("taesana",),
                  "32 latent channels at 32x spatial scale (F32 layout): TAESana, for Sana's DC-AE f32c32"),
}  # fmt: skip


def _tiny_decoders(pairs: Sequence[tuple[str, tuple[int, ...]]]) -> Identity | None:
    return _vae_approx(pairs) or _tiny_autoencoder(pairs)


def _vae_approx(pairs: Sequence[tuple[str, tuple[int, ...]]]) -> Identity | None:
    """A1111's ``VAE-approx/model.pt`` (modules/sd_vae_approx.py ``VAEApprox``): eight plain convolutions
    ``conv1`` … ``conv8``, latent → 8 → 16 → 32 → 64 → 32 → 16 → 8 → 3 channels, kernels 7, 5, then 3."""
    d = dict(pairs)
    want = {f"conv{i}.{p}" for i in range(1, 9) for p in ("weight", "bias")}
    if set(d) != want:
        return None
    chain = [d[f"conv{i}.weight"] for i in range(1, 9)]
    outs = (8, 16, 32, 64, 32, 16, 8, 3)
    kernels = (7, 5, 3, 3, 3, 3, 3, 3)
    for i, w in enumerate(chain):
        if len(w) != 4 or w[0] != outs[i] or w[2:] != (kernels[i], kernels[i]) or (i and w[1] != outs[i - 1]):
            return None
        if d[f"conv{i + 1}.bias"] != (outs[i],):
            return None
    z = chain[0][1]
    ev = [Evidence("eight plain convolutions conv1..conv8 (latent -> 8 -> 16 -> 32 -> 64 -> 32 -> 16 -> 8 -> 3 channels, "
                   "kernels 7, 5, 3 …): A1111's VAEApprox preview decoder (VAE-approx/model.pt)", "conv1.weight", chain[0]),
          Evidence(f"conv1 takes {z} latent channels", "conv1.weight", chain[0], z)]  # fmt: skip
    arch, conf = "unknown", "none"
    cands: tuple[str, ...] = ()
    if z == 4:
        cands = ("sd1", "sd2", "sdxl-base", "sdxl-refiner")
        ev.append(Evidence("4 latent channels: the SD1.x/SD2.x/SDXL latent space; A1111 ships model.pt (SD1.x/2.x) and "
                           "vaeapprox-sdxl.pt (SDXL) with these same shapes"))  # fmt: skip
    elif z == 16:
        cands = ("sd3", "flux1")
        ev.append(Evidence("16 latent channels: the SD3 / FLUX.1 latent space (A1111 ships vaeapprox-sd3.pt)"))
    return Identity(kind="vae", key_style="a1111-vae-approx", arch=arch, arch_variant="preview-decoder", components=("vae",),
                    confidence=conf, kind_confidence="high", source="none", evidence=tuple(ev), arch_candidates=cands,
                    details={"latent_channels": z, "part": "decoder", "preview_decoder": "a1111-vae-approx"})  # fmt: skip


def _tiny_autoencoder(pairs: Sequence[tuple[str, tuple[int, ...]]]) -> Identity | None:
    """A TAESD-family encoder or decoder (madebyollin/taesd ``taesd.py``), or both in one file (diffusers'
    ``AutoencoderTiny``): an ``nn.Sequential`` of 3x3 convolutions (``N.weight``) and residual blocks
    (``N.conv.0/2/4``, ``N.skip``, and in TAEF2 the GroupNorm mid-block ``N.pool.0/1/3``). An encoder's first
    convolution takes 3 (RGB) channels and its last gives the latent channels; a decoder's first takes the
    latent channels and its last gives 3."""
    if len(pairs) < 8:
        return None
    groups: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for name, shape in pairs:
        prefix = next(p for p, _ in _TINY_PREFIXES if name.startswith(p))
        if not prefix and _RX_TINY_KEY.match(name) is None:
            return None  # (what _tiny_part says of the unprefixed group: not a TAESD key; stop at once)
        groups.setdefault(prefix, []).append((name, shape))
    if "" in groups and len(groups) > 1:
        return None
    parts = [_tiny_part(prefix, dict(_TINY_PREFIXES)[prefix], group) for prefix, group in groups.items()]
    if not parts or any(p is None for p in parts):
        return None
    found = [p for p in parts if p is not None]
    zs = {p[1] for p in found}
    layouts = {p[2] for p in found}
    names = [p[0] for p in found]
    if len(zs) != 1 or len(set(names)) != len(names):
        return None
    z = zs.pop()
    # a decoder shows the F32 layout and the mid-block norms as well as an encoder does; both must agree
    layout = "f8-midblock-gn" if "f8-midblock-gn" in layouts else ("f32" if "f32" in layouts else "f8")
    ev = [e for p in found for e in p[3]]
    part = "+".join(sorted(names, key=lambda n: n != "encoder"))
    details: dict[str, Any] = {"latent_channels": z, "part": part, "tiny": True, "layout": layout,
                               "block_widths": sorted({w for p in found for w in p[4]})}  # fmt: skip
    known = _TINY_VARIANTS.get((z, layout))
    arch, conf, variant = "unknown", "none", None
    cands: tuple[str, ...] = ()
    if known is not None:
        arch, cands, variants, why = known
        ev.append(Evidence(why, width=z))
        details["variant_candidates"] = list(variants)
        if len(variants) == 1:
            variant, conf = variants[0], "high"
    else:
        ev.append(Evidence(f"{z} latent channels in the {layout} layout: no published TAESD variant has these"))
    prefix0 = next(iter(groups))
    style = "diffusers" if prefix0.endswith("layers.") else ("comfy" if prefix0 else "taesd")
    return Identity(kind="vae", key_style=style, arch=arch, arch_variant=variant, components=("vae",), confidence=conf,
                    kind_confidence="high", source="shapes" if arch != "unknown" else "none", evidence=tuple(ev),
                    arch_candidates=cands, details=details)  # fmt: skip


def _tiny_part(
    prefix: str, hint: str, pairs: Sequence[tuple[str, tuple[int, ...]]]
) -> tuple[str, int, str, list[Evidence], set[int]] | None:
    """(part, latent channels, layout, evidence, block widths) of one TAESD encoder or decoder, or None."""
    idx: dict[int, dict[str, tuple[int, ...]]] = {}
    for n, shape in pairs:
        m = _RX_TINY_KEY.match(n[len(prefix) :])
        if m is None:
            return None
        idx.setdefault(int(m.group(1)), {})[m.group(0).split(".", 1)[1]] = shape
    convs = {i: p["weight"] for i, p in idx.items() if len(p.get("weight", ())) == 4}
    blocks = {i: p for i, p in idx.items() if "conv.0.weight" in p}
    if len(blocks) < 2 or len(convs) < 2 or any(i not in convs and i not in blocks for i in idx):
        return None
    if any(len(p["conv.0.weight"]) != 4 or p["conv.0.weight"][2:] != (3, 3) for p in blocks.values()):
        return None
    first_i, last_i = min(convs), max(convs)
    first, last = convs[first_i], convs[last_i]
    k_first, k_last = f"{prefix}{first_i}.weight", f"{prefix}{last_i}.weight"
    widths = {p["conv.0.weight"][0] for p in blocks.values()}
    ev: list[Evidence] = []
    if first[1] == 3 and last[0] != 3 and hint != "decoder":
        part, z = "encoder", last[0]
        ev.append(Evidence(f"tiny autoencoder encoder (TAESD layout): {len(blocks)} residual blocks, first convolution takes 3 "
                           "(RGB) channels", k_first, first))  # fmt: skip
        ev.append(Evidence(f"last convolution gives {z} latent channels", k_last, last, z))
        # F32Encoder: two stride-2 convolutions 3 -> 32 -> 64 before the first block
        layout = "f32" if first[0] == 32 and first_i + 2 in convs and convs[first_i + 2][:2] == (64, 32) else "f8"
    elif last[0] == 3 and first[1] != 3 and hint != "encoder":
        part, z = "decoder", first[1]
        ev.append(Evidence(f"tiny autoencoder decoder (TAESD layout): {len(blocks)} residual blocks, last convolution gives 3 "
                           "(RGB) channels", k_last, last))  # fmt: skip
        ev.append(Evidence(f"first convolution takes {z} latent channels", k_first, first, z))
        # F32Decoder: 256-wide blocks after the latent convolution
        layout = "f32" if first[0] == 256 else "f8"
    else:
        return None
    pooled = sorted(i for i, p in blocks.items() if "pool.0.weight" in p)
    if pooled:
        layout = "f8-midblock-gn"
        ev.append(Evidence(f"GroupNorm mid-blocks in {len(pooled)} residual blocks (pool.0/1/3)",
                           f"{prefix}{pooled[0]}.pool.0.weight", blocks[pooled[0]]["pool.0.weight"]))  # fmt: skip
    elif layout == "f32":
        what = "two stride-2 input convolutions 3 -> 32 -> 64" if part == "encoder" else "256-wide blocks after the latent input"
        ev.append(Evidence(f"F32 layout (32x spatial scale): {what}", k_first, first))
    return part, z, layout, ev, widths


_RX_CONTROL = re.compile(
    r"(^|_)(input_hint_block|zero_convs_\d+|middle_block_out|controlnet_cond_embedding|controlnet_down_blocks|"
    r"controlnet_mid_block|controlnet_blocks|controlnet_x_embedder|controlnet_single_blocks|lora_controlnet)"
)
_RX_IP = re.compile(r"(^|_)(ip_adapter_\d+_to_[kv]_ip|image_proj_|ip_adapter_double_stream)")
_RX_IP_K = re.compile(r"to_k_ip$")
_RX_T2I = re.compile(r"(^|_)(adapter_body_\d+_resnets|body_\d+_block[12]|adapter_conv_in)")


# ---------------------------------------------------------------------------------------------------
# metadata claims


def normalize_arch_claim(text: str | None) -> tuple[str | None, str | None, str | None]:
    """Map a metadata value (``ss_base_model_version``, ``modelspec.architecture`` …) to
    ``(arch, variant, kind)``; every part is None when the value says nothing recognisable."""
    if text is None:
        return None, None, None
    raw = str(text).strip()
    # placeholders that name no architecture (Civitai's "Other", empty trainer defaults)
    if not raw or raw.lower() in ("none", "null", "unknown", "other", "others", "custom", "n/a", "na", "-"):
        return None, None, None
    low = raw.lower()
    kind: str | None = None
    if "/" in low:
        low, _, suffix = low.partition("/")
        suffix = suffix.strip()
        kind = {
            "lora": "lora", "lycoris": "lycoris", "lora-lycoris": "lycoris", "lokr": "lycoris", "loha": "lycoris",
            "textual-inversion": "embedding", "ti": "embedding", "embedding": "embedding",
            "controlnet": "controlnet", "control-lora": "controlnet", "vae": "vae",
        }.get(suffix)  # fmt: skip
    s = re.sub(r"[\s.\-]+", "_", low)
    variant: str | None = None
    arch: str | None
    if any(w in s for w in ("pony", "illustrious", "noobai", "noob_ai", "animagine", "playground")):
        arch = "sdxl-base"
    elif s.startswith("sdxl") or "stable_diffusion_xl" in s or s.startswith("sd_xl"):
        arch = "sdxl-refiner" if "refiner" in s else "sdxl-base"
    elif re.match(r"^(sd_?v?3|sd3|stable_diffusion_v?3|stable_diffusion_3)", s):
        arch = "sd3"
        if "large" in s:
            variant = "3.5-large"
        elif "3_5" in s and "medium" in s:
            variant = "3.5-medium"
        elif "medium" in s:
            variant = "3-medium"
    elif re.match(r"^(sd_?v?2|sd2|stable_diffusion_v?2|stable_diffusion_2|v2_[01](_|$))", s):
        arch = "sd2"
    elif re.match(r"^(sd_?v?1|sd1|stable_diffusion_v?1|stable_diffusion_1|sd_?15|v1_[45](_|$))", s):
        arch = "sd1"  # … and the SD1.x checkpoint names themselves (v1-5-pruned-emaonly)
    elif re.match(r"^flux_?2|^flux_2", s):
        arch = "other:flux2"
    elif s.startswith("flux") or "flux_1" in s or "flux1" in s:
        arch = "flux1"
        if "schnell" in s or s.endswith("_s"):
            variant = "schnell"
        elif "dev" in s or "krea" in s or "kontext" in s or s.endswith("_d"):
            variant = "dev"
    elif "chroma" in s:
        arch = "other:chroma"
    elif s.startswith("wan") or "wan_2" in s or "wan2" in s:
        arch = "other:wan"
    elif "qwen" in s:
        arch = "other:qwen-image"
    elif s.startswith("ltx_2") or s.startswith("ltx2"):
        arch = "other:ltx2"
    elif s.startswith("ltx"):
        arch = "other:ltx"
    elif "hunyuan" in s and "video" in s:
        arch = "other:hunyuan-video"
    elif "hunyuan" in s and "dit" in s:
        arch = "other:hunyuan-dit"
    elif "hidream" in s:
        arch = "other:hidream"
    elif "lumina" in s:
        arch = "other:lumina2"
    elif "z_image" in s or "zimage" in s:
        arch = "other:z-image"
    elif "auraflow" in s or "aura_flow" in s:
        arch = "other:auraflow"
    elif "cascade" in s:
        arch = "other:stable-cascade"
    elif "pixart" in s:
        arch = "other:pixart"
    elif "sana" in s:
        arch = "other:sana"
    elif "kolors" in s:
        arch = "other:kolors"
    else:
        slug = re.sub(r"[^a-z0-9]+", "-", low).strip("-")[:40].strip("-")
        arch = f"other:{slug}" if slug else None
    return arch, variant, kind


def _claims(metadata: Mapping[str, str] | None) -> list[dict[str, Any]]:
    if not metadata:
        return []
    out: list[dict[str, Any]] = []
    for key in ("modelspec.architecture", "ss_base_model_version"):
        v = metadata.get(key)
        if isinstance(v, str) and v.strip():
            arch, variant, kind = normalize_arch_claim(v)
            out.append({"key": key, "value": v, "arch": arch, "variant": variant, "kind": kind})
    v2 = metadata.get("ss_v2")
    if isinstance(v2, str) and v2.strip().lower() == "true":
        out.append({"key": "ss_v2", "value": v2, "arch": "sd2", "variant": None, "kind": None})
    return out


def _clip(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _kind_class(kind: str) -> str:
    return "adapter" if kind in ("lora", "lycoris") else kind


# ---------------------------------------------------------------------------------------------------
# putting it together


def _adapter_type(split: _Split) -> tuple[str, dict[str, int]]:
    algos: Counter[str] = Counter()
    fams: Counter[str] = Counter()
    for m in split.adapter.values():
        algos[m.algo or "unknown"] += 1
        fams[m.keys.get("_family", "")] += 1
    lyco = [a for a in ("lokr", "loha", "dora", "oft", "boft", "glora", "ia3", "full") if algos[a]]
    # a LoRA may carry a few full-difference tensors (norms, biases): the majority decides
    if lyco and sum(algos[a] for a in lyco) * 2 >= sum(algos.values()):
        main = max(lyco, key=lambda a: algos[a])
        name = {"full": "full-diff"}.get(main, main)
        return name, dict(algos)
    fam = fams.most_common(1)[0][0] if fams else ""
    name = {
        "kohya": "kohya-lora",
        "peft": "peft-lora",
        "diffusers": "diffusers-old-lora",
        "diffusers-old": "diffusers-old-lora",
        "lora_diffusion": "lora_diffusion",
        "xlabs": "xlabs-lora",
        "control-lora": "control-lora",
    }.get(fam, "lora")
    return name, dict(algos)


def _key_style(mods: Iterable[_Mod]) -> str | None:
    mods = list(mods)
    c = Counter(m.style for m in mods)
    if not c:
        return None
    # a single-file checkpoint is named after its denoiser's prefix, not after its (often more numerous)
    # text-encoder tensors
    den = Counter(m.style for m in mods if m.component == "denoiser")
    style = (den or c).most_common(1)[0][0]
    if style == "ldm" and "sgm" in c:
        return "sgm"  # model.diffusion_model. beside conditioner.embedders.N. (SDXL's generative-models layout)
    if style == "bare":
        paths = [m.path for m in mods]
        if any(_RX_FLUX_BFL.search(p) for p in paths):
            return "bfl"
        if any(re.search(r"(^|_)(input_blocks|output_blocks|middle_block)_", p) for p in paths):
            return "ldm"
        if any(re.search(r"^(encoder|decoder)_((down|up)_\d+_block|mid_block_\d)", p) for p in paths):
            return "ldm"  # an LDM autoencoder (encoder.down.0.block.0 …)
        if any(_RX_CLIP_HF.search(p) or _RX_T5.search(p) or _RX_LLM.search(p) for p in paths):
            return "hf-transformers"
        if any(_RX_CLIP_OC.search(p) for p in paths):
            return "openclip"
        if any(re.search(r"(down_blocks|up_blocks|transformer_blocks|single_transformer_blocks)_\d+", p) for p in paths):
            return "diffusers"
    return style


def _module_naming(mods: Iterable[_Mod]) -> str | None:
    paths = [m.path for m in mods if m.component in ("denoiser", "other", "controlnet")]
    if not paths:
        return None
    if any(re.search(r"(^|_)(input_blocks|output_blocks|middle_block)_", p) for p in paths):
        return "ldm"
    if any(_RX_FLUX_BFL.search(p) or _RX_WAN.search(p) or _RX_SD3_SGM.search(p) for p in paths):
        return "original"
    if any(re.search(r"(^|_)(down_blocks|up_blocks|mid_block|transformer_blocks|single_transformer_blocks)_\d", p) for p in paths):  # fmt: skip
        return "diffusers"
    return None


def identify_header(header: Any, metadata: Mapping[str, str] | None = None) -> tuple[Identity, list[Finding]]:
    """:func:`identify` over a :class:`~registry.files.safetensors.SafetensorsHeader`."""
    return identify(header.tensors, header.metadata if metadata is None else metadata)


def identify(
    tensors: Iterable[Any], metadata: Mapping[str, str] | None = None
) -> tuple[Identity, list[Finding]]:
    """Identify a model from its tensors (``(name, shape)`` pairs or objects with ``.name``/``.shape``)
    and its embedded metadata. Pure: reads nothing else, never raises on odd input."""
    pairs = _pairs(tensors)
    try:
        return _identify(pairs, metadata)
    except Exception as exc:  # a layout no rule foresaw must not stop a scan: say so and what was seen
        what = f"identification stopped on an unforeseen layout ({type(exc).__name__}: {_clip(str(exc), 120)})"
        ident = Identity(kind="unknown", evidence=(Evidence(what, pairs[0][0] if pairs else None),),
                         details={"tensors": len(pairs)})  # fmt: skip
        return ident, [finding(R_INTERNAL.id, what, error=type(exc).__name__, tensors=len(pairs))]


#: files whose (name, shape) pairs :func:`_identify_shapes` remembers: the answer from the shapes is a pure
#: function of the pairs, and a collection's LoRAs share few layouts (one per trainer, architecture and rank)
SHAPES_MEMO_MAX = 32
#: layouts of more tensors than this are not remembered (the memo keeps its layouts' names alive: at most
#: about SHAPES_MEMO_MAX × this many)
SHAPES_MEMO_TENSORS = 20_000


def _identify(pairs: list[tuple[str, tuple[int, ...]]], metadata: Mapping[str, str] | None) -> tuple[Identity, list[Finding]]:
    claims = _claims(metadata)
    if len(pairs) <= SHAPES_MEMO_TENSORS:
        ident, findings = _identify_shapes(tuple(pairs))
    else:
        ident, findings = _identify_shapes.__wrapped__(tuple(pairs))
    # (the memo's answer is shared: a copy of what a caller may change, the findings and the details map)
    if findings:
        findings = copy.deepcopy(findings)
    ident = dataclasses.replace(ident, details=dict(ident.details))
    return _apply_claims(ident, claims, list(findings))


@functools.lru_cache(maxsize=SHAPES_MEMO_MAX)
def _identify_shapes(key: tuple[tuple[str, tuple[int, ...]], ...]) -> tuple[Identity, list[Finding]]:
    """Everything :func:`_identify` decides from the tensors alone (the metadata's claims come after);
    remembered for the last :data:`SHAPES_MEMO_MAX` layouts."""
    pairs = list(key)
    findings: list[Finding] = []
    if not pairs:
        return Identity(kind="unknown", evidence=(Evidence("the file has no tensors"),)), findings

    small = _tiny_decoders(pairs)
    if small is not None:
        return small, findings

    emb = _embedding(pairs)
    if emb is not None:
        style, arch, conf, kconf, ev, cands, details = emb
        ident = Identity(
            kind="embedding",
            key_style=style,
            arch=arch,
            confidence=conf,
            kind_confidence=kconf,
            source="shapes" if arch != "unknown" else "none",
            components=tuple(details.pop("components", ("te1",))),
            evidence=tuple(ev),
            arch_candidates=cands,
            details=details,
        )
        return ident, findings

    listed = _lora_list_roles(pairs)
    split = _split(pairs, listed[0] if listed else None)
    real = split.n_tensors - split.ignored
    adapter_share = split.adapter_tensors / real if real else 0.0
    control_lora = any(m.keys.get("_family") == "control-lora" for m in split.adapter.values())
    # IP-Adapter FaceID files carry a LoRA in every attention processor beside their image projection
    ip_adapter = bool(split.adapter) and bool(_find(split.plain, _RX_IP))
    if split.adapter and not ip_adapter and (control_lora or (adapter_share >= 0.5 and not _full_denoiser(split.plain))):
        ident = _identify_adapter(split)
    elif ip_adapter:
        ident = _identify_full(split)
        if ident.kind == "ip_adapter":
            n, m0 = len(split.adapter), next(iter(split.adapter.values()))
            ident = _replace(ident, evidence=ident.evidence + (_ev(f"and a LoRA on {n} attention projections (FaceID style)", m0),),
                             details={**ident.details, "lora_modules": n})  # fmt: skip
    else:
        ident = _identify_full(split)
        if split.adapter and ident.kind != "unknown":
            findings.append(
                finding(
                    R_ADAPTER_IN_CKPT.id,
                    f"{split.adapter_tensors} of {real} tensors are adapter (LoRA) tensors inside a {ident.kind}",
                    adapter_tensors=split.adapter_tensors,
                    example=next(iter(split.adapter.values())).key,
                )
            )
    if listed is not None and ident.kind in ("lora", "lycoris"):
        what = (f"a plain list of {len(pairs)} tensors in up/down pairs with one rank per pair "
                f"(lora_diffusion's .pt layout; {'text encoder' if listed[1] == 'text_encoder' else 'UNet'} modules)")  # fmt: skip
        ident = _replace(ident, evidence=(Evidence(what, pairs[0][0], pairs[0][1] or None),) + ident.evidence,
                         details={**ident.details, "container": "list"})  # fmt: skip
    ident, fs = _check_conflicts(ident)
    findings += fs
    return ident, findings


# marker tensors some checkpoints carry for their loaders (ComfyUI reads them): name → (variant, what)
_PREDICTION_MARKERS = (
    ("edm_vpred_sigma_max", "edm-v-pred", "edm_vpred.sigma_max: EDM v-prediction (CosXL style)"),
    ("v_pred", "v-pred", "v_pred marker tensor: a v-prediction model"),
    ("ztsnr", "ztsnr", "ztsnr marker tensor: zero terminal SNR noise schedule"),
    ("edm_mean", "playground-v2.5", "edm_mean/edm_std: EDM latent statistics (Playground v2.5)"),
)


def _prediction_markers(v: _Verdict, mods: Sequence[_Mod], details: dict[str, Any]) -> _Verdict:
    """A checkpoint's own marker tensors for its prediction type; the shapes cannot show it."""
    paths = {m.path: m for m in mods}
    parts = [v.variant] if v.variant else []
    ev = list(v.evidence)
    for name, variant, what in _PREDICTION_MARKERS:
        m = paths.get(name)
        if m is not None:
            parts.append(variant)
            ev.append(Evidence(what, m.key, m.shape or None))
            if variant != "ztsnr":
                details.setdefault("prediction", {"v-pred": "v", "edm-v-pred": "edm-v"}.get(variant, "edm"))
    if len(ev) == len(v.evidence):
        return v
    return dataclasses.replace(v, variant="-".join(parts), evidence=ev)


def _full_denoiser(plain: Sequence[_Mod]) -> bool:
    """Whether the plain (non-adapter) weights are a whole model by themselves: many of them, and the
    denoiser's input layer among them (a LoRA's extra plain tensors are norms, biases or embeddings)."""
    if len(plain) < 300:
        return False
    return any(m.ndim in (2, 4) and (_RX_IN_CONV.search(m.path) or _RX_IMG_IN.search(m.path)) for m in plain)


@dataclass
class _Partial:
    kind: str
    kind_conf: str
    adapter_type: str | None
    key_style: str | None
    verdict: _Verdict | None
    tes: list[_TE]
    te_vote: tuple[tuple[str, ...], str]
    components: list[str]
    evidence: list[Evidence]
    details: dict[str, Any]
    seen: Sequence[_Mod] = ()


_RX_DIGITS = re.compile(r"\d+")


def _seen(mods: Sequence[_Mod]) -> Evidence:
    """What an unrecognised denoiser looks like: its commonest module pattern and width."""
    pats = Counter(_RX_DIGITS.sub("N", m.path) for m in mods)
    widths = Counter(m.in_w for m in mods if m.in_w)
    top = ", ".join(p for p, _ in pats.most_common(3))
    w = widths.most_common(1)[0][0] if widths else None
    m0 = next((m for m in mods if m.in_w == w), mods[0])
    return _ev(f"no known family matches; commonest module patterns: {top}" + (f"; commonest input width {w}" if w else ""), m0, w)  # fmt: skip


def _finish(p: _Partial) -> Identity:
    v = p.verdict
    te_archs, te_conf = p.te_vote
    ev = list(p.evidence)
    arch, conf, variant, denoiser_name = "unknown", "none", None, "transformer"
    cands: tuple[str, ...] = ()
    if v is not None:
        ev += v.evidence
        arch, conf, variant, cands, denoiser_name = v.arch, v.confidence, v.variant, v.candidates, v.denoiser_name
    ev += [t.evidence for t in p.tes]
    details = dict(p.details)
    if v is not None and v.also and v.arch != "unknown":
        details["shapes_also_fit"] = list(v.also)
    if v is not None and v.conflicts:
        details["conflicts"] = list(v.conflicts)
    if arch == "unknown" and te_archs and not (v is not None and v.conflicts):
        if cands:
            narrowed = tuple(a for a in cands if a in te_archs)
            if len(narrowed) == 1:
                arch, conf = narrowed[0], "medium"
                ev.append(Evidence(f"text encoders narrow the candidates to {narrowed[0]}"))
                cands = ()
            elif narrowed:
                cands = narrowed
        elif v is None and len(te_archs) == 1:
            arch, conf = te_archs[0], te_conf
            ev.append(Evidence(f"architecture from the text encoders alone: {te_archs[0]}"))
        elif v is None:
            cands = te_archs
    if arch != "unknown":
        cands = ()
    elif v is None and p.seen:
        ev.append(_seen(p.seen))
    comps: list[str] = []
    for c in p.components:
        name = c
        if c == "denoiser":
            if arch in ("sd1", "sd2", "sdxl-base", "sdxl-refiner", "other:kolors", "other:svd") or denoiser_name == "unet":
                name = "unet"
            else:
                name = "transformer"
        if name not in comps:
            comps.append(name)
    if arch == "sdxl-refiner" and p.kind == "checkpoint" and "te1" in comps and "te2" not in comps:
        comps = ["te2" if c == "te1" else c for c in comps]  # the refiner's only text encoder is OpenCLIP-G
    return Identity(
        kind=p.kind,
        adapter_type=p.adapter_type,
        key_style=p.key_style,
        arch=arch,
        arch_variant=variant,
        components=tuple(comps),
        confidence=conf,
        kind_confidence=p.kind_conf,
        source="shapes" if arch != "unknown" else "none",
        evidence=tuple(ev),
        arch_candidates=tuple(cands),
        details=details,
    )


_COMP_ORDER = ("denoiser", "te1", "te2", "te3", "vae", "controlnet")


def _components(mods: Iterable[_Mod], tes: Sequence[_TE]) -> list[str]:
    seen = {m.component for m in mods}
    seen |= {t.component for t in tes}
    if "other" in seen:
        seen.discard("other")
        seen.add("denoiser")
    return [c for c in _COMP_ORDER if c in seen]


def _identify_adapter(split: _Split) -> Identity:
    mods = list(split.adapter.values())
    adapter_type, algos = _adapter_type(split)
    kind = "lycoris" if adapter_type in ("loha", "lokr", "dora", "ia3", "glora", "oft", "boft", "full-diff") else "lora"
    if split.adapter and any("lora_controlnet" in m.path for m in split.plain):
        kind, adapter_type = "controlnet", "control-lora"
    den = [m for m in mods if not m.component.startswith("te")]
    verdict, _ = _denoiser_verdict(den, checkpoint=False) if den else (None, [])
    if verdict is None and mods and all(m.style == "lora_diffusion" for m in mods):
        verdict = _lora_diffusion_verdict(mods)
    tes = _text_encoders([m for m in mods if m.component.startswith("te")])
    styles = {m.style for m in mods}
    key_style = _key_style(mods)
    ev = [Evidence(f"{len(mods)} adapted modules; adapter algorithms {algos}")]
    details: dict[str, Any] = {"modules": len(mods), "algorithms": algos}
    naming = _module_naming(mods)
    if naming:
        details["module_naming"] = naming
    if split.bundled_embeddings:
        details["bundled_embeddings"] = len(split.bundled_embeddings)
        ev.append(Evidence(f"carries {len(split.bundled_embeddings)} bundled embedding tensors", split.bundled_embeddings[0]))  # fmt: skip
    if any(m.ndim == 4 for m in mods):
        details["conv_layers"] = sum(1 for m in mods if m.ndim == 4)
    comps = _components(mods, tes)
    p = _Partial(kind, "high", adapter_type, key_style, verdict, tes, _te_vote(tes, styles), comps, ev, details, den)
    return _finish(p)


_RX_LD_UNET_WIDTHS = {768: "sd1", 1024: "sd2"}


def _lora_diffusion_verdict(mods: Sequence[_Mod]) -> _Verdict | None:
    """cloneofsimo ``lora_diffusion`` files index modules by number; the widths still tell the base."""
    unet = [m for m in mods if m.component == "denoiser"]
    te = [m for m in mods if m.component.startswith("te")]
    unet_in = Counter(m.in_w for m in unet if m.in_w)
    ev: list[Evidence] = []
    core = {320, 640, 1280}
    extra = set(unet_in) - core - {2560, 5120, 10240}
    te_w = Counter(m.in_w for m in te if m.in_w)
    if len(extra) == 1:
        w = next(iter(extra))
        m0 = next(m for m in unet if m.in_w == w)
        if w in _RX_LD_UNET_WIDTHS and set(unet_in) & core:
            ev.append(_ev(f"UNet modules with input width {w} beside 320/640/1280 channels: the cross-attention context ({_CONTEXT_WHY[w]})", m0, w))  # fmt: skip
            if te_w and te_w.most_common(1)[0][0] == w:
                m1 = next(m for m in te if m.in_w == w)
                ev.append(_ev(f"text-encoder modules {w} wide", m1, w))
            return _Verdict(_RX_LD_UNET_WIDTHS[w], "high" if te_w else "medium", ev, denoiser_name="unet")
        if w == 2048 and set(unet_in) & {640, 1280}:
            ev.append(_ev("UNet modules with input width 2048 (SDXL context)", m0, w))
            return _Verdict("sdxl-base", "medium", ev, denoiser_name="unet")
    if not unet and te:
        # lora_diffusion adapts the text encoder's attention projections (q, k, v, out): all square, one width
        widths = {(m.in_w, m.out_w) for m in te}
        if len(widths) == 1:
            w_in, w_out = next(iter(widths))
            if w_in == w_out and w_in in _RX_LD_UNET_WIDTHS:
                name = "CLIP-L (SD1.x's text encoder)" if w_in == 768 else "OpenCLIP-H (SD2.x's text encoder)"
                ev.append(_ev(f"{len(te)} square text-encoder modules {w_in} wide: {name}", te[0], w_in))
                return _Verdict(_RX_LD_UNET_WIDTHS[w_in], "medium", ev, denoiser_name="unet")
    return None


_RX_INDEX = re.compile(r"^\d+$")


def _lora_list_roles(pairs: Sequence[tuple[str, tuple[int, ...]]]) -> tuple[dict[str, tuple[str, str, str]], str] | None:
    """The modules of a ``lora_diffusion`` ``.pt`` file: a plain list of tensors, ``[up0, down0, up1, down1 …]``
    (cloneofsimo/lora's ``save_lora_weight``), whose names are only list indices. Every pair must be a LoRA
    factor pair: ``up [out, r(, 1, 1)]`` then ``down [r, in(, kh, kw)]`` with the same rank ``r`` below both
    widths. Returns the roles for :func:`_split` and the component (``unet`` or ``text_encoder``: a text
    encoder's adapted projections are all square and of one width)."""
    n = len(pairs)
    if n < 2 or n % 2 or not all(_RX_INDEX.match(name) for name, _ in pairs):
        return None
    shapes = dict(pairs)
    if set(shapes) != {str(i) for i in range(n)}:
        return None
    widths: set[tuple[int, int]] = set()
    for k in range(n // 2):
        up, down = shapes[str(2 * k)], shapes[str(2 * k + 1)]
        if len(up) not in (2, 4) or len(down) != len(up) or up[1] != down[0]:
            return None
        if len(up) == 4 and up[2:] != (1, 1):
            return None
        r, out_w, in_w = up[1], up[0], down[1]
        if not 0 < r < min(out_w, in_w):
            return None
        widths.add((in_w, out_w))
    square = {w for w in widths if w[0] == w[1]}
    comp = "text_encoder" if len(widths) == 1 and square and next(iter(square))[0] in (768, 1024, 1280) else "unet"
    roles = {str(i): (comp, str(i // 2), "up" if i % 2 == 0 else "down") for i in range(n)}
    return roles, comp


def _identify_full(split: _Split) -> Identity:
    mods = split.plain
    if not mods:
        return Identity(kind="unknown", evidence=(Evidence("no weight tensors"),))
    # controlnet / adapters for conditioning
    ctl = _find(mods, _RX_CONTROL)
    ip = _find(mods, _RX_IP)
    t2i = _find(mods, _RX_T2I)
    tes = _text_encoders(mods)
    styles = {m.style for m in mods}
    key_style = _key_style(mods)
    details: dict[str, Any] = {"tensors": split.n_tensors}
    naming = _module_naming(mods)
    if naming:
        details["module_naming"] = naming
    if ip and not ctl:
        kw, kmod, _ = _widest(_find(mods, _RX_IP_K), "in")
        ev = [_ev("IP-Adapter image projection / to_k_ip layers", ip[0])]
        v: _Verdict | None = None
        if kw is not None and kmod is not None:
            arch = CONTEXT_WIDTH_ARCH.get(kw)
            ev.append(_ev(f"to_k_ip input width {kw}" + (f": {_CONTEXT_WHY[kw]}" if arch else ""), kmod, kw))
            if arch:
                v = _Verdict(arch, "medium", [], denoiser_name="unet")
        if v is None and any("double_stream" in m.path for m in ip):
            v = _Verdict("flux1", "medium", [Evidence("double-stream IP layers (FLUX.1 IP-Adapter)")])
        return _finish(_Partial("ip_adapter", "high", None, key_style, v, [], ((), "none"), [], ev, details))
    if ctl:
        den = [m for m in mods if m.component != "vae"]
        v, _ = _denoiser_verdict(den, checkpoint=False)
        ev = [_ev("ControlNet layers (hint block / zero convolutions / controlnet blocks)", ctl[0])]
        return _finish(_Partial("controlnet", "high", None, key_style, v, [], ((), "none"), [], ev, details))
    if t2i and len(mods) < 400:
        ev = [_ev("T2I-Adapter body blocks", t2i[0])]
        return _finish(_Partial("t2i_adapter", "medium", None, key_style, None, [], ((), "none"), [], ev, details))

    vae_mods = [m for m in mods if m.component == "vae"]
    den_mods = [m for m in mods if m.component in ("denoiser", "other", "controlnet")]
    den_only = [m for m in den_mods if not _is_te_path(m.path)]
    verdict, _ = _denoiser_verdict(den_only, checkpoint=True) if den_only else (None, [])
    comps: list[str] = []
    if verdict is not None:
        comps.append("denoiser")
    comps += [t.component for t in tes if t.component not in comps]
    vae_info = _vae(vae_mods) if vae_mods else None
    if vae_info is not None or (verdict is None and not tes):
        vae_info = vae_info or _vae(den_mods)
        if vae_info is not None:
            comps.append("vae")
    te_vote = _te_vote(tes, styles)
    if verdict is not None and vae_info is not None and verdict.arch != "unknown":
        vae_arch, vae_cands = vae_info[0], vae_info[3]
        fits = vae_arch == verdict.arch or (vae_arch == "unknown" and (not vae_cands or verdict.arch in vae_cands))
        if not fits:
            z = vae_info[4].get("latent_channels")
            msg = f"the autoencoder ({z} latent channels) is not the one {verdict.arch} uses"
            verdict = dataclasses.replace(verdict, confidence=min(verdict.confidence, "medium", key=lambda c: _RANK[c]),
                                          conflicts=verdict.conflicts + (msg,))  # fmt: skip
    if verdict is not None and verdict.arch != "unknown":
        verdict = _prediction_markers(verdict, mods, details)
    if verdict is not None:
        kind = verdict.kind or "checkpoint"
        ev = [Evidence(f"full model weights ({split.n_tensors} tensors)" if kind == "checkpoint"
                       else f"{split.n_tensors} tensors")]  # fmt: skip
        if vae_info is not None:
            details["latent_channels"] = vae_info[4].get("latent_channels")
        return _finish(_Partial(kind, "high", None, key_style, verdict, tes, te_vote, comps, ev, details))
    if vae_info is not None and not tes:
        arch, conf, ev, cands, vd = vae_info
        details.update(vd)
        v = _Verdict(arch, conf, ev, candidates=cands) if arch != "unknown" or cands else _Verdict("unknown", "none", ev)
        return _finish(_Partial("vae", "high", None, key_style, v, [], ((), "none"), ["vae"], [], details))
    vision = _find(mods, _RX_VISION_LAYERS)
    if vision and not tes:
        w, wmod, _ = _widest(vision, "in")
        ev = [_ev(f"vision transformer layers only (CLIP-vision style image encoder, width {w})", wmod or vision[0], w)]
        details["width"] = w
        return _finish(_Partial("image_encoder", "high", None, key_style, None, [], ((), "none"), [], ev, details))
    if tes and not _find(den_only, _RX_UNET):
        ev = [Evidence(f"text encoder weights only ({', '.join(t.family for t in tes)})")]
        details["text_encoders"] = {t.component: t.family for t in tes}
        return _finish(_Partial("text_encoder", "high", None, key_style, None, tes, te_vote, [t.component for t in tes], ev, details))  # fmt: skip
    top = Counter(m.path.split("_", 1)[0] for m in mods).most_common(5)
    ev = [Evidence(f"{split.n_tensors} tensors with no recognised layout; top-level names {dict(top)}", mods[0].key, mods[0].shape or None)]  # fmt: skip
    return Identity(kind="unknown", key_style=key_style, evidence=tuple(ev), details=details)


_RX_VISION_LAYERS = re.compile(r"(^|_)(vision_model_encoder_layers_\d+_self_attn_q_proj|visual_blocks_\d+_attn_qkv|visual_transformer_resblocks_\d+_attn_in_proj_weight)$")  # fmt: skip


def _is_te_path(path: str) -> bool:
    return bool(_RX_CLIP_HF.search(path) or _RX_CLIP_OC.search(path) or _RX_T5.search(path) or _RX_LLM.search(path))


def _check_conflicts(ident: Identity) -> tuple[Identity, list[Finding]]:
    """A text encoder that rules out the denoiser's architecture is a finding (and lowers confidence)."""
    out: list[Finding] = [
        finding(R_CONFLICT.id, msg, candidates=list(ident.arch_candidates)) for msg in ident.details.get("conflicts") or ()
    ]
    if ident.arch == "unknown" or ident.source != "shapes":
        return ident, out
    te_ev = [e for e in ident.evidence if e.what.startswith("text encoder ")]
    fams = {e.what.split(": ", 1)[1].split(" ", 1)[0] for e in te_ev if ": " in e.what}
    for fam in fams:
        allowed = _TE_ARCHS.get(fam)
        if allowed is not None and ident.arch not in allowed:
            out.append(
                finding(
                    R_CONFLICT.id,
                    f"the denoiser is shaped for {ident.arch} but a text encoder is {fam}, which {ident.arch} does not use",
                    arch=ident.arch,
                    text_encoder=fam,
                )
            )
    if out and ident.confidence == "high":
        ident = _replace(ident, confidence="medium")
    return ident, out


def _replace(ident: Identity, **changes: Any) -> Identity:
    from dataclasses import replace

    return replace(ident, **changes)


def _apply_claims(ident: Identity, claims: list[dict[str, Any]], findings: list[Finding]) -> tuple[Identity, list[Finding]]:
    if claims:
        ident = _replace(ident, claims=tuple(claims))
    arch_claims = [c for c in claims if c["arch"]]
    distinct = {c["arch"] for c in arch_claims}
    if len(distinct) > 1:
        findings.append(
            finding(
                R_META_DISAGREE.id,
                "metadata fields name different architectures: "
                + ", ".join(f"{c['key']}={_clip(c['value'])!r}" for c in arch_claims),
                claims={c["key"]: _clip(c["value"], 500) for c in arch_claims},
            )
        )
    # shapes decided: a contradicting claim is a finding; a claim naming a family the same shapes also fit
    # (a FLUX.1-shaped adapter labelled Chroma) picks that family
    also = set(ident.details.get("shapes_also_fit") or ())
    if ident.source == "shapes" and ident.arch != "unknown" and also and len(distinct) == 1 and distinct <= also:
        pick = arch_claims[0]
        ev = ident.evidence + (Evidence(f"metadata {pick['key']}={_clip(pick['value'])!r} names {pick['arch']}, which these shapes also fit"),)  # fmt: skip
        ident = _replace(ident, arch=pick["arch"], arch_variant=pick["variant"], confidence="medium", source="metadata",
                         evidence=ev)  # fmt: skip
    elif ident.source == "shapes" and ident.arch != "unknown" and _RANK[ident.confidence] >= _RANK["medium"]:
        for c in arch_claims:
            if not _claim_agrees(c["arch"], ident.arch):
                findings.append(
                    finding(
                        R_META_ARCH.id,
                        f"metadata {c['key']}={_clip(c['value'])!r} says {c['arch']}, but the tensor shapes say "
                        f"{ident.arch} ({ident.confidence} confidence)",
                        claim_key=c["key"],
                        claim_value=_clip(c["value"], 500),
                        claimed_arch=c["arch"],
                        shape_arch=ident.arch,
                        confidence=ident.confidence,
                    )
                )
    elif ident.arch == "unknown" and arch_claims:
        cands = set(ident.arch_candidates)
        # prefer modelspec, then ss_base_model_version, then ss_v2
        pick = arch_claims[0]
        if cands and not any(_claim_agrees(c["arch"], a) for c in arch_claims for a in cands):
            for c in arch_claims:
                findings.append(
                    finding(
                        R_META_ARCH.id,
                        f"metadata {c['key']}={_clip(c['value'])!r} says {c['arch']}, but the tensor shapes allow only "
                        + ", ".join(sorted(cands)),
                        claim_key=c["key"],
                        claim_value=_clip(c["value"], 500),
                        claimed_arch=c["arch"],
                        shape_candidates=sorted(cands),
                    )
                )
        elif len(distinct) == 1 and ident.kind != "unknown" or (len(distinct) == 1 and not cands):
            conf = "medium" if pick["arch"] in cands else "low"
            ev = ident.evidence + (Evidence(f"architecture from metadata {pick['key']}={pick['value']!r}"),)
            ident = _replace(ident, arch=pick["arch"], arch_variant=pick["variant"], confidence=conf,
                             source="metadata", evidence=ev, arch_candidates=())  # fmt: skip
    # kind claims
    for c in claims:
        k = c.get("kind")
        if k and ident.kind != "unknown" and _kind_class(k) != _kind_class(ident.kind):
            findings.append(
                finding(
                    R_META_KIND.id,
                    f"metadata {c['key']}={_clip(c['value'])!r} says {k}, but the tensors are a {ident.kind}",
                    claim_key=c["key"],
                    claim_value=_clip(c["value"], 500),
                    claimed_kind=k,
                    kind=ident.kind,
                )
            )
    return ident, findings


def _claim_agrees(claim: str, shapes: str) -> bool:
    if claim == shapes:
        return True
    # FLUX-derived checkpoints are usually labelled FLUX
    return shapes == "other:chroma" and claim == "flux1"
