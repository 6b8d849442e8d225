"""Group the tensors of an adapter file (LoRA, LyCORIS …) into modules, and place each module.

A module is everything one adapted layer of the base model carries: for a kohya LoRA the three tensors
``<key>.lora_down.weight``, ``<key>.lora_up.weight`` and ``<key>.alpha``. :func:`group_modules` reads only
tensor names (and, where given, shapes: BOFT and OFT share a key and differ by rank), so it is cheap and
can run on a header alone.

Conventions recognised (REFERENCE.md section 5):

* kohya / LyCORIS-LoCon: ``.lora_down.weight``, ``.lora_up.weight``, ``.lora_mid.weight`` (Tucker core),
  ``.alpha``, ``.dora_scale``, ``.scalar``;
* PEFT / diffusers: ``.lora_A[.<adapter>].weight``, ``.lora_B[.<adapter>].weight``,
  ``.lora_magnitude_vector`` (DoRA), ``.lora_embedding_A/B``; older diffusers ``…to_k_lora.down.weight``,
  ``….lora.down.weight``, ``….lora_linear_layer.down.weight``;
* cloneofsimo ``lora_diffusion``: ``unet:N:down`` / ``unet:N:up`` (and ``text_encoder:N:…``);
* LyCORIS: LoHa ``hada_w1_a/b``, ``hada_w2_a/b``, ``hada_t1/t2``; LoKr ``lokr_w1[_a,_b]``,
  ``lokr_w2[_a,_b]``, ``lokr_t2``; IA3 ``weight`` + ``on_input`` (PEFT: ``ia3_l``); GLoRA
  ``a1,a2,b1,b2 .weight``; OFT ``oft_blocks`` (3-D) or ``oft_diag``, BOFT ``oft_blocks`` (4-D), both with
  optional ``rescale``; full ``diff`` / ``diff_b``; norms ``w_norm`` / ``b_norm``.

Each module gets a *component* (``unet``, ``transformer``, ``te1``, ``te2``, ``te3``, ``model``) and a
*block* (``down.N``, ``mid``, ``up.N``; ``input.N``, ``middle``, ``output.N``; ``double.N``, ``single.N``,
``joint.N``; ``layer.N`` in text encoders; ``block.N`` for other numbered blocks; ``None`` for the rest).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: (suffix regex, role, convention); the first match wins, so longer suffixes come first
_SUFFIXES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(p + r"$"), role, conv)
    for p, role, conv in [
        (r"\.lora_down\.weight", "down", "kohya"),
        (r"\.lora_up\.weight", "up", "kohya"),
        (r"\.lora_mid\.weight", "mid", "kohya"),
        (r"\.lora_A(?:\.[A-Za-z0-9_\-]+)?\.weight", "down", "peft"),
        (r"\.lora_B(?:\.[A-Za-z0-9_\-]+)?\.weight", "up", "peft"),
        (r"\.lora_B(?:\.[A-Za-z0-9_\-]+)?\.bias", "up_bias", "peft"),
        (r"\.lora_embedding_A(?:\.[A-Za-z0-9_\-]+)?", "down", "peft"),
        (r"\.lora_embedding_B(?:\.[A-Za-z0-9_\-]+)?", "up", "peft"),
        (r"\.lora_magnitude_vector(?:\.[A-Za-z0-9_\-]+)?(?:\.weight)?", "dora_scale", "peft"),
        (r"(?<=_lora)\.down\.weight", "down", "diffusers-old"),
        (r"(?<=_lora)\.up\.weight", "up", "diffusers-old"),
        (r"(?<=\.lora)\.down\.weight", "down", "diffusers-old"),
        (r"(?<=\.lora)\.up\.weight", "up", "diffusers-old"),
        (r"(?<=lora_linear_layer)\.down\.weight", "down", "diffusers-old"),
        (r"(?<=lora_linear_layer)\.up\.weight", "up", "diffusers-old"),
        (r"\.hada_w1_a", "w1a", "lycoris"),
        (r"\.hada_w1_b", "w1b", "lycoris"),
        (r"\.hada_w2_a", "w2a", "lycoris"),
        (r"\.hada_w2_b", "w2b", "lycoris"),
        (r"\.hada_t1", "t1", "lycoris"),
        (r"\.hada_t2", "t2", "lycoris"),
        (r"\.lokr_w1_a", "lokr_w1a", "lycoris"),
        (r"\.lokr_w1_b", "lokr_w1b", "lycoris"),
        (r"\.lokr_w1", "lokr_w1", "lycoris"),
        (r"\.lokr_w2_a", "lokr_w2a", "lycoris"),
        (r"\.lokr_w2_b", "lokr_w2b", "lycoris"),
        (r"\.lokr_w2", "lokr_w2", "lycoris"),
        (r"\.lokr_t2", "lokr_t2", "lycoris"),
        (r"\.a1\.weight", "a1", "lycoris"),
        (r"\.a2\.weight", "a2", "lycoris"),
        (r"\.b1\.weight", "b1", "lycoris"),
        (r"\.b2\.weight", "b2", "lycoris"),
        (r"\.oft_blocks", "oft_blocks", "lycoris"),
        (r"\.oft_diag", "oft_blocks", "lycoris"),
        (r"\.rescale", "rescale", "lycoris"),
        (r"\.on_input", "on_input", "lycoris"),
        (r"\.ia3_l(?:\.[A-Za-z0-9_\-]+)?(?:\.weight)?", "ia3_l", "peft"),
        (r"\.diff_b", "diff_b", "lycoris"),
        (r"\.diff", "diff", "lycoris"),
        (r"\.w_norm", "w_norm", "lycoris"),
        (r"\.b_norm", "b_norm", "lycoris"),
        (r"\.dora_scale", "dora_scale", "kohya"),
        (r"\.scalar", "scalar", "lycoris"),
        (r"\.alpha", "alpha", "kohya"),
        (r"\.weight", "weight", "lycoris"),  # IA3 only (kept when the key also has on_input)
    ]
]


def _literal_head(pattern: str) -> str:
    """The literal text every match of a suffix pattern starts with (after a leading look-behind): the
    pattern's characters up to its first operator, unescaped."""
    if pattern.startswith("(?<="):
        pattern = pattern[pattern.index(")") + 1 :]
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1].isalnum():
                break  # a class (\d …) or an anchor, not a literal
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in "()[]{}?*+|^$.":
            break
        out.append(c)
        i += 1
    if out and i < len(pattern) and pattern[i] in "?*{":
        out.pop()  # the last character is optional or repeated
    return "".join(out)


#: each suffix pattern with the literal text its match must contain: a name without that text is not
#: searched (most of the ~50 patterns fail this test for any one name)
_SUFFIX_TESTS = [(_literal_head(pat.pattern), pat, role, conv) for pat, role, conv in _SUFFIXES]

_SINGLE_BLOCKS = re.compile(r"single_(?:transformer_)?blocks")

_CLONEOFSIMO = re.compile(r"^(?P<comp>unet|text_encoder(?:_2)?):(?P<idx>\d+):(?P<role>down|up)$")

#: forms, in the words the record uses
FORMS = ("lora", "loha", "lokr", "ia3", "glora", "oft", "boft", "diff", "norm")


@dataclass(frozen=True)
class AdapterModule:
    """One adapted layer: its key, its form, and which tensor plays which role."""

    key: str
    form: str
    #: role -> tensor name (``down``, ``up``, ``alpha``, ``mid``, ``dora_scale``, ``w1a`` … see the module doc)
    parts: Mapping[str, str]
    convention: str
    component: str
    block: str | None

    @property
    def tucker(self) -> bool:
        return any(r in self.parts for r in ("mid", "t1", "t2", "lokr_t2"))

    @property
    def dora(self) -> bool:
        return "dora_scale" in self.parts


@dataclass
class ModuleGrouping:
    modules: list[AdapterModule] = field(default_factory=list)
    #: keys whose tensors do not make a whole module (e.g. ``lora_down`` without ``lora_up``): key -> roles
    incomplete: dict[str, list[str]] = field(default_factory=dict)
    #: tensor names that belong to no module (embeddings bundled in a LoRA, unknown extras)
    unassigned: list[str] = field(default_factory=list)

    @property
    def is_adapter(self) -> bool:
        return bool(self.modules)


#: names (and module keys) already read by :func:`_match_memo` / :func:`_place_memo` in this process: a scan
#: of many adapter files sees the same few layouts again and again, so each name is parsed once; at most
#: ``MEMO_MAX`` entries each (least recently used go first)
MEMO_MAX = 100_000


@functools.lru_cache(maxsize=MEMO_MAX)
def _match_memo(name: str) -> tuple[str, str, str] | None:
    """:func:`_match`, remembered per name."""
    return _match(name)


@functools.lru_cache(maxsize=MEMO_MAX)
def _place_memo(key: str, single: bool) -> tuple[str, str | None]:
    """:func:`place`, remembered per (key, single_blocks)."""
    return place(key, single_blocks=single)


def _match(name: str) -> tuple[str, str, str] | None:
    m = _CLONEOFSIMO.match(name)
    if m:
        return f"{m['comp']}:{m['idx']}", m["role"], "lora_diffusion"
    for lit, pat, role, conv in _SUFFIX_TESTS:
        if lit not in name:
            continue
        mm = pat.search(name)
        if mm:
            key = name[: mm.start()]
            if key:
                return key, role, conv
    return None


def _form(roles: set[str], ndim_blocks: int | None, key: str) -> str | None:
    if {"down", "up"} <= roles:
        return "lora"
    if {"w1a", "w1b", "w2a", "w2b"} <= roles:
        return "loha"
    if ("lokr_w1" in roles or {"lokr_w1a", "lokr_w1b"} <= roles) and (
        "lokr_w2" in roles or {"lokr_w2a", "lokr_w2b"} <= roles
    ):
        return "lokr"
    if {"a1", "a2", "b1", "b2"} <= roles:
        return "glora"
    if "oft_blocks" in roles:
        return "boft" if ndim_blocks == 4 else "oft"
    if "ia3_l" in roles or ({"weight", "on_input"} <= roles):
        return "ia3"
    if "diff" in roles:
        return "diff"
    if "w_norm" in roles:
        return "norm"
    return None


_ROLES_OF_FORM: dict[str, set[str]] = {
    "lora": {"down", "up", "mid", "alpha", "dora_scale", "scalar", "up_bias"},
    "loha": {"w1a", "w1b", "w2a", "w2b", "t1", "t2", "alpha", "dora_scale", "scalar"},
    "lokr": {"lokr_w1", "lokr_w1a", "lokr_w1b", "lokr_w2", "lokr_w2a", "lokr_w2b", "lokr_t2", "alpha", "dora_scale", "scalar"},
    "glora": {"a1", "a2", "b1", "b2", "alpha", "dora_scale"},
    "oft": {"oft_blocks", "rescale", "alpha", "dora_scale"},
    "boft": {"oft_blocks", "rescale", "alpha", "dora_scale"},
    "ia3": {"weight", "on_input", "ia3_l"},
    "diff": {"diff", "diff_b"},
    "norm": {"w_norm", "b_norm"},
}


#: groupings already computed in this process, by layout (every tensor name in order, and the number of
#: axes of the OFT tensors, the only shapes the grouping reads): at most ``_LAYOUTS_MAX`` layouts
_LAYOUTS: dict[tuple[tuple[str, ...], tuple[int, ...] | None], ModuleGrouping] = {}
_LAYOUTS_MAX = 64


def group_modules(names: Iterable[str], shapes: Mapping[str, tuple[int, ...]] | None = None) -> ModuleGrouping:
    """Group tensor names into modules; ``shapes`` (name -> shape) tells OFT from BOFT.

    A layout seen before in this process (the same names in the same order, the same OFT shapes) gets the
    grouping computed then (new lists and dicts around the same immutable modules)."""
    names = tuple(names)
    oft = tuple(len(shapes.get(n, ())) for n in names if "oft_" in n) if shapes is not None else None
    layout = (names, oft)
    known = _LAYOUTS.get(layout)
    if known is None:
        known = _group_modules(names, shapes)
        if len(_LAYOUTS) >= _LAYOUTS_MAX:
            _LAYOUTS.clear()
        _LAYOUTS[layout] = known
    return ModuleGrouping(
        list(known.modules), {k: list(v) for k, v in known.incomplete.items()}, list(known.unassigned)
    )


def _group_modules(names: Iterable[str], shapes: Mapping[str, tuple[int, ...]] | None) -> ModuleGrouping:
    by_key: dict[str, dict[str, str]] = {}
    conv_of: dict[str, str] = {}
    out = ModuleGrouping()
    for name in names:
        hit = _match_memo(name)
        if hit is None:
            out.unassigned.append(name)
            continue
        key, role, conv = hit
        roles = by_key.setdefault(key, {})
        if role in roles:  # two tensors for one role (e.g. lora_A.default and lora_A.other): keep the first
            out.unassigned.append(name)
            continue
        roles[role] = name
        if conv != "kohya":
            conv_of.setdefault(key, conv)
    single = any(_SINGLE_BLOCKS.search(k) for k in by_key if "single_" in k)
    for key, parts in by_key.items():
        ndim = None
        if shapes is not None and "oft_blocks" in parts:
            ndim = len(shapes.get(parts["oft_blocks"], ()))
        form = _form(set(parts), ndim, key)
        if form is None:
            if set(parts) <= {"weight"}:
                out.unassigned.extend(parts.values())
            else:
                out.incomplete[key] = sorted(parts)
            continue
        allowed = _ROLES_OF_FORM[form]
        kept = {r: n for r, n in parts.items() if r in allowed}
        out.unassigned.extend(n for r, n in parts.items() if r not in allowed)
        component, block = _place_memo(key, single)
        out.modules.append(AdapterModule(key, form, kept, conv_of.get(key, "kohya"), component, block))
    out.modules.sort(key=lambda m: m.key)
    return out


# -- placing a module in the model ---------------------------------------------------------------

_PREFIXES = ("base_model_model_", "model_")
#: lora_diffusion module keys and tensor names: ``text_encoder:3``, ``unet:12:up``
_LORA_DIFFUSION_KEY = re.compile(r"^(unet|text_encoder|text_encoder_2):\d+(?::(?:up|down))?$")

_TE = [
    (re.compile(r"^(?:lora_te3_|text_encoder_3_|te3_|t5xxl_|lora_t5_)"), "te3"),
    (re.compile(r"^(?:lora_te2_|text_encoder_2_|te2_|conditioner_embedders_1_)"), "te2"),
    (re.compile(r"^(?:lora_te1_|lora_te_|text_encoder_|te1_|te_|conditioner_embedders_0_|cond_stage_model_|clip_l_|lora_clip_)"), "te1"),
]

#: (pattern, block kind, text that every match of the pattern contains: a key without it is not searched,
#: most of the patterns fail that test for any one key)
_BLOCKS = [
    (re.compile(r"(?:^|_)down_blocks_(\d+)"), "down", "down_blocks_"),
    (re.compile(r"(?:^|_)mid_block(?:_|$)"), "mid", "mid_block"),
    (re.compile(r"(?:^|_)up_blocks_(\d+)"), "up", "up_blocks_"),
    (re.compile(r"(?:^|_)input_blocks_(\d+)"), "input", "input_blocks_"),
    (re.compile(r"(?:^|_)middle_block(?:_|$)"), "middle", "middle_block"),
    (re.compile(r"(?:^|_)output_blocks_(\d+)"), "output", "output_blocks_"),
    (re.compile(r"(?:^|_)double_blocks_(\d+)"), "double", "double_blocks_"),
    (re.compile(r"(?:^|_)single_blocks_(\d+)"), "single", "single_blocks_"),
    (re.compile(r"(?:^|_)single_transformer_blocks_(\d+)"), "single", "single_transformer_blocks_"),
    (re.compile(r"(?:^|_)joint_blocks_(\d+)"), "joint", "joint_blocks_"),
    (re.compile(r"(?:^|_)transformer_blocks_(\d+)"), "@transformer", "transformer_blocks_"),
    (re.compile(r"(?:^|_)encoder_layers_(\d+)"), "layer", "encoder_layers_"),
    (re.compile(r"(?:^|_)encoder_block_(\d+)"), "layer", "encoder_block_"),
    (re.compile(r"(?:^|_)layers_(\d+)"), "layer", "layers_"),
    (re.compile(r"(?:^|_)resblocks_(\d+)"), "layer", "resblocks_"),
    (re.compile(r"(?:^|_)([a-z]+)_blocks_(\d+)"), "@named", "_blocks_"),
    (re.compile(r"(?:^|_)blocks_(\d+)"), "block", "blocks_"),
]


def place(key: str, single_blocks: bool = False) -> tuple[str, str | None]:
    """``(component, block)`` of a module key (kohya underscores and dotted paths alike).

    ``single_blocks`` says the file also has single-stream blocks, so numbered ``transformer_blocks`` are
    FLUX's double-stream blocks rather than SD3's joint blocks.

    Early ``lora_diffusion`` files (cloneofsimo) number their modules ``text_encoder:<n>`` and ``unet:<n>``:
    the number is the module's index, not a text encoder's, so ``text_encoder:3`` is te1 (as identification
    says), never te3.
    """
    m_ld = _LORA_DIFFUSION_KEY.match(key)
    if m_ld:
        return {"unet": "unet", "text_encoder": "te1", "text_encoder_2": "te2"}[m_ld.group(1)], None
    k = re.sub(r"[.:]", "_", key).lower()
    for p in _PREFIXES:
        if k.startswith(p):
            k = k[len(p) :]
    component = "vae" if k.startswith(("first_stage_model_", "vae_")) else None
    for pat, comp in [] if component else _TE:
        if pat.search(k):
            component = comp
            break
    block: str | None = None
    kind = None
    for pat, name, text in _BLOCKS:
        if text not in k:
            continue
        m = pat.search(k)
        if m:
            kind = name
            idx = m.group(m.lastindex) if m.lastindex else None
            if name == "@named":
                kind = m.group(1) if m.group(1) not in {"model", "diffusion", "lora", "unet"} else "block"
            if name == "@transformer":
                kind = "layer" if component is not None else "double" if single_blocks else "joint"
            block = kind if idx is None else f"{kind}.{int(idx)}"
            break
    if component is None:
        if k.startswith(("lora_te", "text_model")) or "text_model_encoder" in k:
            component = "te1"
        elif kind in {"down", "mid", "up", "input", "middle", "output"}:
            component = "unet"
        elif (
            kind in {"double", "single", "joint"}
            or k.startswith(("transformer_", "lora_transformer_"))
            or (k.startswith("diffusion_model_") and kind is not None)
        ):
            component = "transformer"
        elif k.startswith(("unet_", "lora_unet_")) or k.startswith("unet"):
            component = "unet"
        else:
            component = "model"
    if component == "unet" and kind in {"double", "single", "joint"}:
        component = "transformer"  # kohya names FLUX modules lora_unet_double_blocks_…
    return component, block
