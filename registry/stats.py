"""Exact update spectra of LoRA and LyCORIS modules, per module and per file.

The update ΔW of a low-rank module is never formed. For ``ΔW = s · U · Dᵀ`` (``U`` m×r, ``D`` n×r) the
QR factorisations ``U = Q1 R1`` and ``D = Q2 R2`` give ``ΔW = Q1 (s R1 R2ᵀ) Q2ᵀ`` with orthonormal ``Q1``,
``Q2``, so the singular values of the r×r core ``s R1 R2ᵀ`` are exactly those of ΔW: O((m+n)r²) work in
float64 instead of an O(mn·min(m,n)) SVD of the formed product (REFERENCE.md section 6). LoRA modules take
R1, R2 from Cholesky factors of the Gram matrices UᵀU and DᵀD instead (one BLAS ``syrk`` pass, several
times cheaper than Householder QR) whenever a worst-case bound puts every singular value within
:data:`GRAM_TOL` (1e-7) of itself, and Householder QR otherwise (:func:`lora_sv_stack`). Each form:

``lora``
    kohya / PEFT / diffusers / lora_diffusion: ``U = up`` (flattened to m×r), ``D = downᵀ`` (convolutions
    flattened to ``out × in·k·k``); a Tucker core ``lora_mid`` folds into the down factor first (the
    product is still rank r). scale = alpha / rank, 1 without alpha (PEFT: ``lora_alpha`` from the
    ``lora_adapter_metadata`` config when present). DoRA magnitudes are summarised in ``extra``.
``loha``
    ΔW = s·(A1 B1) ⊙ (A2 B2). The Hadamard product of two rank-r products has the exact factorisation
    ``(A1 • A2)(B1ᵀ • B2ᵀ)ᵀ`` with the row-wise Kronecker (face-splitting) product, of rank ≤ r1·r2, so the
    factored method applies with r1·r2 columns. When r1·r2 ≥ min(m, n) the product is formed instead
    (it is then no bigger than the factors). Tucker ``hada_t1/t2`` fold into the factors the same way.
    Both exact methods cost O((m+n)·(r1·r2)²) or O(m·n·min(m,n)): at rank 32 (r1·r2 = 1,024) and SDXL
    widths that is about a second per module. When the exact cost exceeds :data:`EXACT_FLOPS` and the
    sketch (:func:`sketch_flops`) is cheaper, the module is ``sketched`` instead (``exact`` false; see
    :func:`loha_sketch`): ΔW (or ΔWᵀ, whichever is tall) formed once in float32 with shuffled, signed
    rows (same spectrum), its Frobenius norm summed in float64 while forming (exact up to the float32
    rounding of the product, ≲ 1e-6 relative), a sparse-sign sketch of the smaller side taken from a
    random sample of its rows (:data:`SKETCH_SAMPLE`), and one projection, the other rows' blocks
    projected while they are in cache, giving the leading :data:`SV_KEEP` singular values as
    Rayleigh–Ritz values (lower bounds). With the certain ρ² ≥ ‖ΔW‖_F² − ‖ΔW·P‖_F² (P the projector
    on the sketched subspace) every true σᵢ lies in [σ̂ᵢ, √(σ̂ᵢ² + ρ²)];
    ``sv_error`` is the resulting relative bound on σ1, ``extra['sketch']`` holds ρ and the intervals of
    σ1, the top-k energy share, rank90 and rank99 (:func:`rank_interval`); the rank columns hold a value
    only where the interval is one number, and the entropy-based figures (which need every σ) are empty.
    Sketched modules run one per job on :data:`SKETCH_WORKERS` threads (:class:`SketchRunner`) while the
    next modules are read and decoded.
``lokr``
    ΔW = s·(W1 ⊗ W2): the singular values are all products σᵢ(W1)·σⱼ(W2); W1 and W2 come from their
    own factors (factored method) or, when stored whole, from an SVD of the (small) stored matrix.
``ia3`` / ``norm``
    a vector d with ΔW = W0·diag(d) (IA3; PEFT's ``ia3_l`` multiplies, so d = l − 1): the figures are
    those of diag(d), the relative change, ‖ΔW‖ ≤ ‖W0‖·max|d|.
``glora``
    ΔW = s·(W0 A + B): the spectra are those of the additive low-rank part s·B (exact, factored); the
    multiplicative part s·A (relative to W0) is summarised in ``extra``.
``oft`` / ``boft``
    W' = diag(rescale)·R·W0 with R orthogonal (Cayley transform of skew blocks, constraint alpha); the
    figures are those of diag(rescale)·R − I, the relative change: per block for OFT, for the butterfly
    product (formed, n ≤ 2048) for BOFT, else per-factor bounds flagged approximate.
``diff``
    ΔW stored whole: exact SVD in float64 when min(m,n)²·max(m,n) ≤ 4·10⁹, else the leading 64 singular
    values by randomized subspace iteration (method ``randomized``; Frobenius exact; the entropy-based
    figures, which need every σ, are left empty).

Units. Every rank figure of a module counts singular directions of that module's ΔW. ``max_rank`` is the
largest rank the form can reach: LoRA / GLoRA min(r, out, in); LoHa min(r1·r2, out, in); LoKr
rank(W1)·rank(W2) (each factor's rank is min(its r, rows, cols), or min(rows, cols) when stored whole);
full / diff min(out, in); IA3 / norm / OFT / BOFT the vector or block size n. ``rank`` is the nominal
rank the file states (the LoRA r, LyCORIS' ``dim`` that divides alpha). Effective ranks, rank90 and
rank99 are computed from at most ``max_rank`` singular values (values past it are rounding), so none of
them exceeds ``max_rank``. File summaries give per-module figures as median and range, and label sums
as totals.

Figures per module: Frobenius ‖ΔW‖_F, spectral σ1, stable rank ‖ΔW‖_F²/σ1², energy effective rank
exp(H(σ²/Σσ²)), Roy–Vetterli effective rank exp(H(σ/Σσ)), top-1 energy share σ1²/Σσ², ``rank90`` /
``rank99`` by kohya's ``sv_fro`` rule (``networks/resize_lora.py``: the smallest k whose leading singular
values keep the given fraction of the Frobenius *norm*, i.e. Σᵢ≤ₖ σᵢ² ≥ t²·Σσ²; 0.9 keeps 81 % of the
energy), up/down norm balance ‖U‖_F/‖D‖_F, and the leading 64 singular values.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from typing import Any, cast

import numpy as np

from registry.adapters import AdapterModule, ModuleGrouping
from registry.findings import Finding, Severity, finding, rule
from registry.paths import clean_text

#: how many leading singular values a module keeps (enough to redraw its spectrum)
SV_KEEP = 64
#: kohya's MIN_SV: a spectrum whose σ1 is at most this counts as rank 1 in the sv_fro rule
KOHYA_MIN_SV = 1e-6
#: full SVD of a whole ``diff`` only when min(m,n)²·max(m,n) is at most this
DIFF_EXACT_FLOPS = 4e9
#: BOFT products are formed (n×n) only up to this n
BOFT_FORM_LIMIT = 2048
#: a LoHa module whose exact spectrum costs more floating-point operations than this is sketched
EXACT_FLOPS = 3e8
#: oversampling and power steps of the sketch (see :func:`sketch_flops` for what they cost)
SKETCH_OVERSAMPLE = 8
SKETCH_POWER = 0

R_NONFINITE = rule(
    "stats.nonfinite-factor",
    Severity.HIGH,
    "An adapter module holds NaN or Inf values",
    "A NaN or Inf in a factor poisons every output of the layer it patches; the file is broken.",
)
R_ZERO = rule(
    "stats.zero-update",
    Severity.LOW,
    "Adapter modules whose update is exactly zero",
    "An all-zero update (for example an untrained lora_up, or alpha 0) changes nothing when applied.",
)
R_INCOMPLETE = rule(
    "stats.incomplete-module",
    Severity.MEDIUM,
    "Adapter tensors that do not make a whole module",
    "For example a lora_down without its lora_up: loaders skip or reject such modules.",
)
R_MODULE_FAILED = rule(
    "stats.module-unreadable",
    Severity.MEDIUM,
    "Adapter modules whose tensors do not fit together",
    "Shapes of a module's factors disagree (or a dtype cannot be decoded), so it has no statistics.",
)

Loader = Callable[[str], np.ndarray]


#: the process-wide BLAS limit, once installed (kept for the life of the process)
_BLAS_LIMIT: object | None = None


def single_threaded_blas() -> AbstractContextManager[object]:
    """Limit BLAS to one thread, once per process. The matrices here are small (r ≤ a few hundred),
    where OpenBLAS threads cost more than they give, and on a loaded machine they thrash (measured 25×
    slower QR on 2 busy cores); a scan gets its parallelism from files in separate processes instead.
    Entering and leaving a limit costs about a millisecond (it walks the loaded libraries), a large share
    of a small file's time, so the first call installs the limit for the whole process and later calls
    do nothing. Returns a context manager (a no-op) so that callers can keep a ``with`` block."""
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl is a core dependency
            _BLAS_LIMIT = False
        else:
            _BLAS_LIMIT = threadpool_limits(1, user_api="blas")
    return nullcontext()


# -- spectra ------------------------------------------------------------------------------------


def lowrank_sv(u: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Singular values (descending, float64) of ``u @ d.T`` for ``u`` m×r and ``d`` n×r, never formed."""
    u = np.asarray(u, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    if u.shape[1] != d.shape[1]:
        raise ValueError(f"inner dimensions differ: {u.shape} and {d.shape}")
    if u.shape[1] == 0 or u.shape[0] == 0 or d.shape[0] == 0:
        return np.zeros(0)
    # mode "r" skips forming Q (only R is needed); numpy's stubs do not know that it returns an array
    r1 = cast(np.ndarray, np.linalg.qr(u, mode="r"))
    r2 = cast(np.ndarray, np.linalg.qr(d, mode="r"))
    return np.linalg.svd(r1 @ r2.T, compute_uv=False)


def full_sv(a: np.ndarray) -> np.ndarray:
    """All singular values of a matrix in float64 (descending)."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return np.zeros(0)
    return np.linalg.svd(a, compute_uv=False)


def randomized_sv(a: np.ndarray, k: int = SV_KEEP, oversample: int = 16, power: int = 4, seed: int = 0) -> np.ndarray:
    """Leading ``k`` singular values by randomized subspace iteration (Halko et al.), float64."""
    a = np.asarray(a, dtype=np.float64)
    m, n = a.shape
    ell = min(k + oversample, m, n)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(a @ rng.standard_normal((n, ell)))
    for _ in range(power):
        z, _ = np.linalg.qr(a.T @ q)
        q, _ = np.linalg.qr(a @ z)
    return np.linalg.svd(q.T @ a, compute_uv=False)[:k]


def kohya_sv_fro_rank(sv: np.ndarray, target: float) -> int:
    """kohya ``index_sv_fro`` + 1: smallest k with Σᵢ≤ₖσᵢ² / Σσ² ≥ target² (σ1 ≤ 1e-6 → 1; empty → 0)."""
    if sv.size == 0 or sv[0] == 0:
        return 0
    if sv[0] <= KOHYA_MIN_SV:
        return 1
    sq = sv.astype(np.float64) ** 2
    cum = np.cumsum(sq) / sq.sum()
    idx = int(np.searchsorted(cum, target * target, side="left"))
    return max(0, min(idx, sv.size - 1)) + 1


def _entropy_rank(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(math.exp(-float(np.sum(p * np.log(p)))))


@dataclass(frozen=True)
class SpectralFigures:
    fro: float | None
    spectral: float | None
    stable_rank: float | None
    eff_rank_energy: float | None
    eff_rank_rv: float | None
    top1_share: float | None
    rank90: int | None
    rank99: int | None
    sv: list[float]
    n_sv: int


def figures(
    sv: np.ndarray, fro: float | None = None, complete: bool = True, max_rank: int | None = None
) -> SpectralFigures:
    """Spectral figures from singular values. ``complete=False`` means ``sv`` holds only the leading
    values of a matrix whose Frobenius norm is ``fro``: figures that need every σ are then ``None``.
    ``max_rank`` (the largest rank the module's form can reach) keeps only that many values: any beyond
    it are rounding of a zero (e.g. an r×r core of a rank-r update with r > min(m, n))."""
    sv = np.sort(np.abs(np.asarray(sv, dtype=np.float64)))[::-1]
    if max_rank is not None:
        sv = sv[: max(max_rank, 0)]
    energy = float(np.sum(sv**2))
    if fro is None:
        fro = math.sqrt(energy)
    total = fro * fro
    lead = [float(x) for x in sv[:SV_KEEP]]
    if sv.size == 0 or total == 0.0 or sv[0] == 0.0:
        return SpectralFigures(0.0, 0.0, 0.0, 0.0, 0.0, None, 0, 0, lead, int(sv.size))
    s1 = float(sv[0])
    eff_e: float | None
    eff_rv: float | None
    r90: int | None
    r99: int | None
    if complete:
        eff_e = _entropy_rank(sv**2 / energy)
        eff_rv = _entropy_rank(sv / sv.sum())
        r90, r99 = kohya_sv_fro_rank(sv, 0.9), kohya_sv_fro_rank(sv, 0.99)
    else:
        eff_e = eff_rv = None
        cum = np.cumsum(sv**2) / total
        r90 = int(np.searchsorted(cum, 0.81, side="left")) + 1 if cum[-1] >= 0.81 else None
        r99 = int(np.searchsorted(cum, 0.9801, side="left")) + 1 if cum[-1] >= 0.9801 else None
    return SpectralFigures(
        fro=float(fro),
        spectral=s1,
        stable_rank=total / (s1 * s1),
        eff_rank_energy=eff_e,
        eff_rank_rv=eff_rv,
        top1_share=s1 * s1 / total,
        rank90=r90,
        rank99=r99,
        sv=lead,
        n_sv=int(sv.size),
    )


# -- modules ------------------------------------------------------------------------------------


@dataclass
class ModuleStats:
    key: str
    form: str
    convention: str
    component: str
    block: str | None
    #: ΔW viewed as a matrix: rows (output features) × columns (inputs × kernel)
    n_out: int | None = None
    n_in: int | None = None
    rank: int | None = None
    #: the largest rank this module's form can reach (see the module docstring, "Units")
    max_rank: int | None = None
    alpha: float | None = None
    scale: float | None = None
    fro: float | None = None
    spectral: float | None = None
    stable_rank: float | None = None
    eff_rank_energy: float | None = None
    eff_rank_rv: float | None = None
    top1_share: float | None = None
    rank90: int | None = None
    rank99: int | None = None
    balance: float | None = None
    sv: list[float] = field(default_factory=list)
    n_sv: int = 0
    #: how the singular values were obtained: factored, formed, kronecker, blocks, vector, randomized, none
    method: str = "none"
    exact: bool = True
    #: for a sketched spectrum: relative upper bound on the error of σ1 (true σ1 ∈ [σ̂1, σ̂1·(1 + sv_error)])
    sv_error: float | None = None
    dtype: str | None = None
    nonfinite: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def apply(self, f: SpectralFigures) -> None:
        self.fro, self.spectral, self.stable_rank = f.fro, f.spectral, f.stable_rank
        self.eff_rank_energy, self.eff_rank_rv, self.top1_share = f.eff_rank_energy, f.eff_rank_rv, f.top1_share
        self.rank90, self.rank99, self.sv, self.n_sv = f.rank90, f.rank99, f.sv, f.n_sv

    def as_row(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in _ROW_FIELDS}  # (dataclasses.asdict deep-copies: 5× slower)
        d["module"] = d.pop("key")
        d["sv"] = list(self.sv)
        d["extra"] = json.dumps(_finite(self.extra), sort_keys=True, allow_nan=False) if self.extra else None
        return d


_ROW_FIELDS = tuple(f.name for f in fields(ModuleStats))
_TEXT_FIELDS = ("key", "form", "convention", "component", "block", "method", "dtype", "error")


def module_columns(mods: list[ModuleStats]) -> dict[str, list[Any]]:
    """The ``lora_modules`` rows of ``mods`` as columns of storable values: what :meth:`ModuleStats.as_row`
    gives, after the writer's cleaning of each cell, without a dict per module."""
    cols: dict[str, list[Any]] = {}
    for f in _ROW_FIELDS:
        vals = [getattr(m, f) for m in mods]
        if f in _TEXT_FIELDS:  # (ASCII text is stored as it is: clean_text would return it unchanged)
            vals = [v if v is None or v.isascii() else clean_text(v) for v in vals]
        cols["module" if f == "key" else f] = vals
    cols["sv"] = [list(m.sv) for m in mods]
    cols["extra"] = [_extra_text(m.extra) if m.extra else None for m in mods]
    return cols


#: ``extra`` texts by their (key, type, value) items, for the few ``extra`` dicts of plain values that
#: thousands of modules share (``{"alpha_source": "tensor"}``)
_EXTRA_TEXT: dict[tuple[tuple[str, type, Any], ...], str] = {}


def _extra_text(extra: dict[str, Any]) -> str:
    """``clean_text(json.dumps(_finite(extra), sort_keys=True, allow_nan=False))``, remembered for dicts of
    text and whole numbers (the types are part of the key: ``1``, ``1.0`` and ``True`` are equal keys of
    different JSON)."""
    key = tuple((k, type(v), v) for k, v in extra.items())
    try:
        return _EXTRA_TEXT[key]
    except (KeyError, TypeError):  # (TypeError: an unhashable value)
        pass
    text = clean_text(json.dumps(_finite(extra), sort_keys=True, allow_nan=False))
    if len(_EXTRA_TEXT) < 1024 and all(type(v) in (str, int, bool) and type(k) is str for k, v in extra.items()):
        _EXTRA_TEXT[key] = text
    return text


def _finite(v: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, numpy scalars plain numbers."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class _Bad(Exception):
    """A module's tensors do not fit together."""


class _NonFinite(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _mat(a: np.ndarray) -> np.ndarray:
    """A tensor as a matrix: first axis rows, the rest flattened."""
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(-1, 1)
    return a.reshape(a.shape[0], -1)


def _fro(a: np.ndarray) -> float:
    if a.dtype == np.float32:  # pairwise float32 sum of the squares (relative error ≲ 1e-6)
        return math.sqrt(float(np.add.reduce(np.square(a.ravel()), dtype=np.float32)))
    return float(np.linalg.norm(a.ravel()))


def _peft_alpha(key: str, rank: int, cfg: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """(alpha, scale) for a PEFT module from its adapter config, or (None, None)."""
    if not cfg or "lora_alpha" not in cfg:
        return None, None
    alpha = float(cfg["lora_alpha"])
    dotted = key.replace(":", ".")
    for pat, val in (cfg.get("alpha_pattern") or {}).items():
        if re.search(rf"(^|\.){re.escape(str(pat))}$", dotted) or re.fullmatch(str(pat), dotted):
            alpha = float(val)
            break
    if cfg.get("use_rslora"):
        return alpha, alpha / math.sqrt(rank)
    return alpha, alpha / rank


@dataclass
class _Deferred:
    """A LoRA module whose spectrum waits for the batch of its shape: ΔW = u · dᵀ · scale."""

    out: ModuleStats
    u: np.ndarray
    d: np.ndarray
    scale: float


class _Module:
    """Reads one module's tensors as float64, counting non-finite values."""

    def __init__(
        self, mod: AdapterModule, load: Loader, batch: list[_Deferred] | None = None,
        sketches: SketchRunner | None = None,
    ) -> None:
        self.mod = mod
        self._load = load
        self.nonfinite = 0
        self.batch = batch
        self.sketches = sketches

    def has(self, role: str) -> bool:
        return role in self.mod.parts

    def get(self, role: str, narrow: bool = False) -> np.ndarray:
        """A tensor as float64; with ``narrow``, as float32 when that holds it exactly (a 16- or 32-bit
        float or a small integer type), which the LoHa sketch uses without widening."""
        raw = self._load(self.mod.parts[role])
        dt = getattr(raw, "dtype", None)
        exact32 = narrow and dt is not None and dt.kind in "fiub" and dt.itemsize <= (4 if dt.kind == "f" else 2)
        a = np.asarray(raw, dtype=np.float32 if exact32 else np.float64)
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            self.nonfinite += bad
        return a

    def scalar(self, role: str) -> float | None:
        if not self.has(role):
            return None
        a = self.get(role)
        if a.size != 1:
            raise _Bad(f"{role} holds {a.size} values, expected one")
        v = float(a.ravel()[0])
        return v if math.isfinite(v) else None


def _check(m: _Module) -> None:
    if m.nonfinite:
        raise _NonFinite(m.nonfinite)


def module_stats(
    mod: AdapterModule,
    load: Loader,
    peft_config: Mapping[str, Any] | None = None,
    dtypes: Mapping[str, str] | None = None,
    batch: list[_Deferred] | None = None,
    sketches: SketchRunner | None = None,
) -> ModuleStats:
    """Statistics of one module; never raises for bad data (the result then carries ``error`` or
    ``nonfinite``). ``dtypes`` (tensor name -> safetensors dtype) only labels the result. With ``batch``,
    a LoRA module's spectrum is left to :func:`run_batch` (one stacked QR and SVD per shape); with
    ``sketches``, a sketched LoHa module's is submitted to that :class:`SketchRunner` (its figures are
    written when the runner is closed)."""
    out = ModuleStats(mod.key, mod.form, mod.convention, mod.component, mod.block)
    if dtypes:
        out.dtype = ",".join(sorted({dtypes[n] for n in mod.parts.values() if n in dtypes})) or None
    m = _Module(mod, load, batch, sketches)
    try:
        _FORMS[mod.form](m, out, peft_config)
    except _NonFinite as e:
        out.nonfinite = e.count
        out.method = "none"
    except (_Bad, ValueError, np.linalg.LinAlgError) as e:
        out.error = str(e)
        out.method = "none"
    if m.nonfinite and not out.nonfinite:
        out.nonfinite = m.nonfinite
    return out


def _lora(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    # (PEFT embedding LoRA: A is r × num_embeddings, B is dim × r; (B·A)ᵀ has the same singular values)
    up, down = m.get("up"), m.get("down")
    u = _mat(up)
    if down.ndim == 0:
        raise _Bad("down factor is a scalar")
    rank = down.shape[0]
    d = down.reshape(rank, -1)
    if m.has("mid"):
        mid = m.get("mid")
        if mid.ndim != 4 or mid.shape[1] != rank:
            raise _Bad(f"lora_mid {list(mid.shape)} does not fit lora_down {list(down.shape)}")
        # D'[p, i, k, l] = Σ_q down[q, i] · mid[p, q, k, l]   (down is r × in × 1 × 1)
        d = np.einsum("qi,pqkl->pikl", d, mid).reshape(mid.shape[0], -1)
        out.extra["tucker"] = True
    if u.shape[1] != d.shape[0]:
        raise _Bad(f"up {list(up.shape)} and down {list(down.shape)} ranks differ")
    out.n_out, out.n_in, out.rank = u.shape[0], d.shape[1], rank
    out.max_rank = min(rank, u.shape[0], d.shape[1])
    alpha = m.scalar("alpha")
    if alpha is not None:
        scale = alpha / rank
        out.extra["alpha_source"] = "tensor"
    else:
        alpha, scale = _peft_alpha(m.mod.key, rank, cfg) if out.convention == "peft" else (None, None)
        if scale is not None:
            out.extra["alpha_source"] = "peft-metadata"
        elif m.has("alpha"):
            raise _NonFinite(max(m.nonfinite, 1))
        else:
            scale = 1.0
    scalar = m.scalar("scalar")
    if scalar is not None:
        scale *= scalar
        out.extra["scalar"] = scalar
    if m.has("dora_scale"):
        mag = m.get("dora_scale").ravel()
        _check(m)
        out.extra["dora"] = _vector_summary(mag)
    _check(m)
    out.alpha, out.scale = alpha, scale
    out.method = "factored"
    if u.shape[0] and d.shape[1] and rank:  # spectrum and balance from the factors' Gram matrices
        job = _Deferred(out, u, d, abs(scale))
        if m.batch is not None:
            m.batch.append(job)
        else:
            run_batch([job])
        return
    nu, nd = _fro(u), _fro(d)
    out.balance = nu / nd if nd > 0 else None
    out.apply(figures(abs(scale) * lowrank_sv(u, d.T), max_rank=out.max_rank))


def run_batch(batch: list[_Deferred]) -> None:
    """Spectra and balance of deferred LoRA modules, one stack per shape through :func:`lora_sv_stack`
    (whose result for a module does not depend on the stack: the values are those of the stacked path,
    :func:`_stacked_lora`, bit for bit)."""
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[_Deferred]] = {}
    for it in batch:
        groups.setdefault((it.u.shape, it.d.shape), []).append(it)
    for items in groups.values():
        try:
            svs, nus, nds = lora_sv_stack(
                np.stack([np.asarray(it.u, dtype=np.float64) for it in items]),
                np.stack([np.asarray(it.d, dtype=np.float64) for it in items]),
            )
            res = list(zip(svs, nus.tolist(), nds.tolist(), strict=True))
        except (ValueError, np.linalg.LinAlgError):
            res = []
            for it in items:  # one bad matrix: each on its own, failures recorded on the module
                try:
                    sv, nu, nd = lora_sv_stack(np.asarray(it.u, dtype=np.float64)[None], np.asarray(it.d, dtype=np.float64)[None])
                    res.append((sv[0], float(nu[0]), float(nd[0])))
                except (ValueError, np.linalg.LinAlgError) as e:
                    it.out.error, it.out.method = str(e), "none"
                    res.append((np.zeros(0), _fro(it.u), _fro(it.d)))
        for it, (sv, nu, nd) in zip(items, res, strict=True):
            it.out.balance = nu / nd if nd > 0 else None
            if it.out.error is None:
                it.out.apply(figures(it.scale * sv, max_rank=it.out.max_rank))


#: the roles of a plain LoRA module (no Tucker core, DoRA magnitude or scalar), read straight into stacks
_PLAIN_ROLES = frozenset({"up", "down", "alpha"})


def _plain_shape(mod: AdapterModule, shape_of: Callable[[str], tuple[int, ...] | None]) -> tuple[int, int, int] | None:
    """(m, r, n) of a plain LoRA module whose up factor is m×r and down factor r×n (trailing axes
    flattened as :func:`_lora` does), or None when the module needs the module-by-module path."""
    if mod.form != "lora" or "up" not in mod.parts or "down" not in mod.parts or not set(mod.parts) <= _PLAIN_ROLES:
        return None
    up, down = shape_of(mod.parts["up"]), shape_of(mod.parts["down"])
    if up is None or down is None or len(up) < 2 or len(down) < 2:
        return None
    m, r, n = up[0], math.prod(up[1:]), math.prod(down[1:])
    if r != down[0] or min(m, r, n) <= 0:
        return None
    if "alpha" in mod.parts:
        a = shape_of(mod.parts["alpha"])
        if a is None or math.prod(a) != 1:
            return None
    return m, r, n


#: float64 elements of the per-process scratch buffer the stacks live in (reused across groups and files:
#: fresh memory costs a page fault per 4 KiB on first touch); a larger group gets its own arrays
SCRATCH_MAX = 32 << 20
_SCRATCH: np.ndarray | None = None


def _scratch(n: int) -> np.ndarray:
    """``n`` float64 elements of scratch space (contents undefined), reused while no larger than
    :data:`SCRATCH_MAX`."""
    global _SCRATCH
    if n > SCRATCH_MAX:
        return np.empty(n)
    if _SCRATCH is None or _SCRATCH.size < n:
        _SCRATCH = np.empty(max(n, 1 << 16))
    return _SCRATCH[:n]


_CODES: np.ndarray | None = None


def _codes_scratch(n: int) -> np.ndarray:
    """``n`` int32 elements of per-process scratch space for F16 codes (as :func:`_scratch`)."""
    global _CODES
    if n > SCRATCH_MAX:
        return np.empty(n, dtype=np.int32)
    if _CODES is None or _CODES.size < n:
        _CODES = np.empty(max(n, 1 << 16), dtype=np.int32)
    return _CODES[:n]


#: an F16 code whose exponent bits are all ones (Inf, NaN) comes out of :func:`_widen_f16_codes` as a finite
#: value of at least this magnitude; every finite F16 value is below it (the largest is 65504)
_F16_CODED_LIMIT = 65536.0
_F16_CODED_TRACE = _F16_CODED_LIMIT * _F16_CODED_LIMIT
#: the float32 bits of an F16 code sign-extended to int32 and shifted left by 13: the sign (bit 31, set by the
#: sign extension with bits 28–30) and the 5 exponent and 10 mantissa bits (bits 13–27)
_F16_BITS_MASK = np.int32(-0x70000001)  # 0x8FFFFFFF
_F16_SCALE = np.float32(2.0**112)


def _widen_f16_codes(codes: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = codes`` read as F16 values, widened to float64 exactly, for codes given as sign-extended
    int32 (``np.copyto(int32_array, f16_array.view("<i2"))``); ``codes`` is overwritten. Moving the F16
    exponent and mantissa bits into a float32 (shift by 13) gives the value times 2**-112, normal and
    subnormal F16 values alike; multiplying by 2**112 is exact, and so is the widening to float64: the same
    bits as numpy's F16→float64 cast, for every finite code (checked for all 63,488 in the tests), at about
    half its cost. Inf and NaN codes come out as finite values of at least 2**16 (:data:`_F16_CODED_LIMIT`):
    callers that meet one treat the module as numpy's cast would let them (a non-finite factor)."""
    np.left_shift(codes, 13, out=codes)
    np.bitwise_and(codes, _F16_BITS_MASK, out=codes)
    f32 = codes.view(np.float32)
    np.multiply(f32, _F16_SCALE, out=f32)
    np.copyto(out, f32)


try:  # numpy's own kernels (what np.linalg.qr / cholesky / inv call after their checks)
    from numpy.linalg import _umath_linalg

    _QR_R_RAW: Any = getattr(_umath_linalg, "qr_r_raw", None)
    _QR_ERR: Any = getattr(np.linalg._linalg, "_raise_linalgerror_qr", None)
    _CHOL_LO: Any = getattr(_umath_linalg, "cholesky_lo", None)
    _INV: Any = getattr(_umath_linalg, "inv", None)
    _SVD: Any = getattr(_umath_linalg, "svd", None)
    _SVD_ERR: Any = getattr(np.linalg._linalg, "_raise_linalgerror_svd_nonconvergence", None)
except ImportError:  # pragma: no cover - another numpy layout: the public function
    _QR_R_RAW = _QR_ERR = _CHOL_LO = _INV = _SVD = _SVD_ERR = None


def _qr_r_overwrite(a: np.ndarray) -> np.ndarray:
    """``np.linalg.qr(a, mode="r")`` of a float64 stack that may be overwritten: numpy's QR kernel runs on
    ``a`` itself instead of on a copy (the same kernel, so the same values), then the upper triangle."""
    if _QR_R_RAW is None or _QR_ERR is None or a.dtype != np.float64:
        return cast(np.ndarray, np.linalg.qr(a, mode="r"))
    with np.errstate(call=_QR_ERR, invalid="call", over="ignore", divide="ignore", under="ignore"):
        _QR_R_RAW(a, signature="d->d")
    mn = min(a.shape[-2:])
    return np.triu(a[..., :mn, :])


def _svdvals(a: np.ndarray) -> np.ndarray:
    """``np.linalg.svd(a, compute_uv=False)`` of a float64 stack: numpy's own kernel and error handling,
    without the wrapper's checks (a sizeable part of a one-module file's statistics)."""
    if _SVD is None or _SVD_ERR is None or a.dtype != np.float64 or a.ndim < 2:
        return np.linalg.svd(a, compute_uv=False)
    with np.errstate(call=_SVD_ERR, invalid="call", over="ignore", divide="ignore", under="ignore"):
        return _SVD(a, signature="d->d")


#: the Gram path's admission: a module's spectrum comes from Cholesky factors of its Gram matrices only when
#: the worst-case bound on the relative error of *every* singular value (see :func:`lora_sv_stack`) is at
#: most this; the figures' promise is 1e-6, and typical errors are about 1e-14
GRAM_TOL = 1e-7
_EPS = float(np.finfo(np.float64).eps)


def lora_sv_stack(
    ups: np.ndarray, downs: np.ndarray, grams: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Singular values of each ``ups[j] @ downs[j]`` (``ups`` k×m×r, ``downs`` k×r×n, float64, finite), with
    the Frobenius norms of each factor: ``(svs k×min(m,r,n), ‖U‖_F, ‖D‖_F)``. Each module's result depends
    only on its own matrices (not on the stack around it), so any grouping gives the same values bit for bit.

    The Gram path (one pass over the factors in BLAS ``syrk``): G_U = UᵀU = L_U L_Uᵀ and
    G_D = D Dᵀ = L_D L_Dᵀ (Cholesky) make U = Q1 L_Uᵀ and Dᵀ = Q2 L_Dᵀ with orthonormal Q1, Q2, so
    σ(U·D) = σ(L_Uᵀ L_D), an r×r core. Rounding: the computed Grams and factors satisfy
    L̂L̂ᵀ = G + E with ‖E‖₂ ≤ c·tr(G), c = (m + r + 2)·ε for the Gram and the Cholesky together (n for
    D), so L̂ᵀ = W(I + F)^½ Lᵀ with W orthogonal and ‖F‖₂ ≤ ‖E‖₂·‖L̂⁻¹‖₂²; a multiplicative perturbation
    moves every singular value of the core by at most the relative (‖F_U‖ + ‖F_D‖)/2 (Eisenstat & Ipsen
    1995), small ones included. That bound, with ‖L̂⁻¹‖₂ ≤ ‖L̂⁻¹‖_F and a factor 2 of margin, must be at most
    :data:`GRAM_TOL` (the r×r SVD then adds its own normwise rounding, about ε·σ1, as on the QR path);
    a module whose bound is larger (ill-conditioned or rank-deficient factors, an
    all-zero factor, values whose squares overflow) or whose shape has m < r or n < r gets the Householder
    QR path instead (``numpy.linalg.qr`` of each factor, normwise backward stable at any condition)."""
    k, m, r = ups.shape
    n = downs.shape[2]
    if grams is None:
        grams = _grams(ups, downs)
    gu, gd = grams
    svs = np.empty((k, min(m, r, n)))
    gram_path = bool(k and r and m >= r and n >= r and _CHOL_LO is not None and _INV is not None)
    with np.errstate(all="ignore"):
        nu = np.sqrt(np.trace(gu, axis1=1, axis2=2))
        nd = np.sqrt(np.trace(gd, axis1=1, axis2=2))
        if gram_path:
            lu = _CHOL_LO(gu, signature="d->d")  # NaN where not positive definite
            ld = _CHOL_LO(gd, signature="d->d")
            bound = (m + r + 2) * _EPS * np.square(nu) * np.square(_INV(lu, signature="d->d")).sum(axis=(1, 2))
            bound += (n + r + 2) * _EPS * np.square(nd) * np.square(_INV(ld, signature="d->d")).sum(axis=(1, 2))
            ok = np.isfinite(bound) & (bound <= GRAM_TOL)  # (bound is twice the half-sum: the margin)
        else:
            ok = np.zeros(k, dtype=bool)
    if gram_path:
        sel = np.flatnonzero(ok)
        if sel.size == k:
            svs[:] = _svdvals(np.swapaxes(lu, 1, 2) @ ld)
        elif sel.size:
            svs[sel] = _svdvals(np.swapaxes(lu[sel], 1, 2) @ ld[sel])
    rest = np.flatnonzero(~ok)
    if rest.size:
        r1 = _qr_r_overwrite(ups[rest])  # (fancy indexing copies: the QR overwrites its input)
        r2 = _qr_r_overwrite(np.ascontiguousarray(np.swapaxes(downs[rest], 1, 2)))
        svs[rest] = np.linalg.svd(r1 @ np.swapaxes(r2, -1, -2), compute_uv=False)
        # norms that overflowed in the Gram: the scaled 2-norm of the factor instead
        for j in rest.tolist():
            if not (math.isfinite(nu[j]) and math.isfinite(nd[j])):
                with np.errstate(over="ignore"):  # (as np.linalg.norm's own overflow: inf)
                    nu[j], nd[j] = np.linalg.norm(ups[j].ravel()), np.linalg.norm(downs[j].ravel())
    return svs, nu, nd


def _grams(ups: np.ndarray, downs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UᵀU and D Dᵀ of each module of a stack (numpy calls BLAS ``syrk`` for a matrix times its own
    transpose)."""
    with np.errstate(all="ignore"):
        return np.swapaxes(ups, 1, 2) @ ups, downs @ np.swapaxes(downs, 1, 2)


#: float64 elements of factors decoded and reduced to Gram matrices at a time (4 MiB: the chunk stays in the
#: cache between the decoding and the BLAS pass, and a fresh worker does not fault in a stack of a whole group)
CHUNK_ELEMENTS = 1 << 19


@dataclass(frozen=True)
class _Source:
    """Where the stacked path reads one file's modules from (see :func:`lora_report`)."""

    load: Loader
    cfg: Mapping[str, Any] | None
    dtypes: Mapping[str, str] | None
    load_into: Callable[[str, np.ndarray], None] | None = None
    load_scalar: Callable[[str], float] | None = None
    load_codes: Callable[[str, np.ndarray], bool] | None = None


def _stacked_lora(
    plain: list[tuple[int, AdapterModule, tuple[int, int, int]]],
    load: Loader,
    cfg: Mapping[str, Any] | None,
    dtypes: Mapping[str, str] | None,
    load_into: Callable[[str, np.ndarray], None] | None = None,
    load_scalar: Callable[[str], float] | None = None,
    load_codes: Callable[[str, np.ndarray], bool] | None = None,
) -> tuple[dict[int, ModuleStats], list[int]]:
    """:func:`_stacked_many` for the modules of one file."""
    src = _Source(load, cfg, dtypes, load_into, load_scalar, load_codes)
    done, redo = _stacked_many([(i, mod, shape, src) for i, mod, shape in plain])
    return done, redo


@dataclass
class StackedFile:
    """One file's plain LoRA modules for :func:`stacked_lora_files` (the arguments of :func:`lora_report`
    with ``shapes``), and, once computed, what the stacked path gave for them."""

    grouping: ModuleGrouping
    load: Loader
    metadata: Mapping[str, str] | None
    dtypes: Mapping[str, str] | None
    shapes: Mapping[str, tuple[int, ...] | list[int]]
    load_into: Callable[[str, np.ndarray], None] | None = None
    load_scalar: Callable[[str], float] | None = None
    #: (plain modules with their shapes, their statistics by module index, the indices the stacked path
    #: left to the module-by-module one), filled by :func:`stacked_lora_files`
    result: tuple[list[tuple[int, AdapterModule, tuple[int, int, int]]], dict[int, ModuleStats], list[int]] | None = None
    #: see :func:`lora_report`'s ``load_codes``
    load_codes: Callable[[str, np.ndarray], bool] | None = None


def _plain_modules(grouping: ModuleGrouping, shapes: Mapping[str, tuple[int, ...] | list[int]]) -> list[tuple[int, AdapterModule, tuple[int, int, int]]]:
    def shape_of(name: str) -> tuple[int, ...] | None:
        s = shapes.get(name)
        return tuple(s) if s is not None else None

    return [(i, mod, sh) for i, mod in enumerate(grouping.modules) if (sh := _plain_shape(mod, shape_of)) is not None]


def stacked_lora_files(files: list[StackedFile]) -> None:
    """The stacked path for the plain LoRA modules of several files at once: modules of one shape share
    a stack whatever file they come from (a worker's task of small files: one numpy call per stack, not
    per file). A module's values do not depend on its stack, so each file's result is what
    :func:`lora_report` computes for it alone, bit for bit; :func:`lora_report` takes it through ``stacked``."""
    items: list[tuple[Any, AdapterModule, tuple[int, int, int], _Source]] = []
    plains = []
    with single_threaded_blas():
        for f, sf in enumerate(files):
            plain = _plain_modules(sf.grouping, sf.shapes)
            plains.append(plain)
            src = _Source(
                sf.load, peft_config_from_metadata(sf.metadata), sf.dtypes, sf.load_into, sf.load_scalar, sf.load_codes
            )
            items.extend(((f, i), mod, shape, src) for i, mod, shape in plain)
        done, redo = _stacked_many(items)
    for f, sf in enumerate(files):
        sf.result = (plains[f], {}, [])
    for (f, i), out in done.items():
        cast(tuple, files[f].result)[1][i] = out
    for f, i in redo:
        cast(tuple, files[f].result)[2].append(i)


def _stacked_many(
    plain: list[tuple[Any, AdapterModule, tuple[int, int, int], _Source]],
) -> tuple[dict[Any, ModuleStats], list[Any]]:
    """Statistics of plain LoRA modules, one shape group at a time, in chunks of about
    :data:`CHUNK_ELEMENTS`: the factors are decoded straight into a preallocated float64 stack (no
    per-module float64 copies, no ``np.stack``), the Gram matrices of both factors taken in one BLAS pass
    while the chunk is in cache (a non-finite value shows in them), the spectra from those
    (:func:`lora_sv_stack`: Cholesky cores, Householder QR where the Gram path's error bound is not met),
    and the spectral figures of the whole group at once (:func:`_figures_stack`). The values are those of
    the module-by-module path (:func:`module_stats` + :func:`run_batch`), bit for bit (a module's result
    does not depend on the stack it is in); a module that needs anything else (a non-finite value, an
    alpha that is not one finite number, a tensor that cannot be decoded) is returned in the second
    list, for that path to handle exactly as before."""
    done: dict[Any, ModuleStats] = {}
    redo: list[Any] = []
    groups: dict[tuple[int, int, int], list[tuple[Any, AdapterModule, _Source]]] = {}
    for i, mod, shape, src in plain:
        groups.setdefault(shape, []).append((i, mod, src))
    for (m, r, n), group in groups.items():
        per = r * (m + n)
        step = max(1, CHUNK_ELEMENTS // per)
        kept: list[tuple[Any, ModuleStats]] = []
        svs_parts: list[np.ndarray] = []
        for c0 in range(0, len(group), step):
            items = group[c0 : c0 + step]
            k = len(items)
            space = _scratch(k * per)
            ups = space[: k * m * r].reshape(k, m, r)
            downs = space[k * m * r :].reshape(k, r, n)  # each down factor as stored (r × n)
            keep = np.ones(k, dtype=bool)
            outs: list[ModuleStats] = []
            # F16 factors: their codes gathered as int32 and widened for the whole chunk at once after the loop
            # (_widen_f16_codes); ``coded[j]``: a factor of module j came that way; ``late``: the factors
            # of other dtypes, decoded into their slots once the chunk is widened
            # (only when every module of the chunk can be read so: the widening writes every slot)
            wide = all(src.load_codes is not None and src.load_into is not None for _, _, src in items)
            codes = _codes_scratch(k * per) if wide else None
            coded = np.zeros(k, dtype=bool)
            late: list[tuple[int, Callable[[str, np.ndarray], None], str, np.ndarray]] = []
            for j, (_i, mod, src) in enumerate(items):
                load, load_into, load_scalar, dtypes = src.load, src.load_into, src.load_scalar, src.dtypes
                out = ModuleStats(mod.key, mod.form, mod.convention, mod.component, mod.block)
                outs.append(out)
                try:
                    if codes is not None:
                        assert src.load_codes is not None and load_into is not None
                        up_name, down_name = mod.parts["up"], mod.parts["down"]
                        cu = src.load_codes(up_name, codes[j * m * r : (j + 1) * m * r])
                        cd = src.load_codes(down_name, codes[k * m * r + j * r * n : k * m * r + (j + 1) * r * n])
                        coded[j] = cu or cd
                        if not cu:
                            late.append((j, load_into, up_name, ups[j]))
                        if not cd:
                            late.append((j, load_into, down_name, downs[j]))
                    elif load_into is not None:
                        load_into(mod.parts["up"], ups[j])
                        load_into(mod.parts["down"], downs[j])
                    else:
                        ups[j] = np.asarray(load(mod.parts["up"])).reshape(m, r)
                        downs[j] = np.asarray(load(mod.parts["down"])).reshape(r, n)
                    alpha: float | None = None
                    if "alpha" in mod.parts:
                        if load_scalar is not None:
                            alpha = load_scalar(mod.parts["alpha"])
                        else:
                            a = np.asarray(load(mod.parts["alpha"]), dtype=np.float64)
                            alpha = float(a.ravel()[0]) if a.size == 1 else math.nan
                        if not math.isfinite(alpha):
                            raise _Bad("alpha")
                except Exception:  # noqa: BLE001 - the module-by-module path reports it exactly as before
                    keep[j] = False
                    continue
                if dtypes:
                    out.dtype = ",".join(sorted({dtypes[x] for x in mod.parts.values() if x in dtypes})) or None
                if alpha is not None:
                    scale = alpha / r
                    out.extra["alpha_source"] = "tensor"
                else:
                    alpha, sc = _peft_alpha(mod.key, r, src.cfg) if out.convention == "peft" else (None, None)
                    if sc is not None:
                        out.extra["alpha_source"] = "peft-metadata"
                        scale = sc
                    else:
                        scale = 1.0
                out.n_out, out.n_in, out.rank, out.max_rank = m, n, r, min(r, m, n)
                out.alpha, out.scale, out.method = alpha, scale, "factored"
            if codes is not None:
                _widen_f16_codes(codes, space)
                for j, into, name, slot in late:
                    try:
                        into(name, slot)
                    except Exception:  # noqa: BLE001 - as above
                        keep[j] = False
            gu, gd = _grams(ups, downs)
            # a non-finite value makes its Gram matrix non-finite (an overflowing square does too: such a
            # module stays here only if every value is finite)
            suspect = ~(np.isfinite(gu).all(axis=(1, 2)) & np.isfinite(gd).all(axis=(1, 2)))
            if coded.any():
                # an F16 Inf or NaN code widened by _widen_f16_codes is a finite value of at least 2**16 (every
                # finite F16 value is below): its square alone makes the trace of its factor's Gram at least
                # 2**32 (sums of non-negative squares only grow), so such a module is a suspect here
                with np.errstate(invalid="ignore"):
                    suspect |= coded & ((np.trace(gu, axis1=1, axis2=2) >= _F16_CODED_TRACE) | (np.trace(gd, axis1=1, axis2=2) >= _F16_CODED_TRACE))
            for j in np.flatnonzero(suspect & keep).tolist():
                keep[j] = bool(np.isfinite(ups[j]).all() and np.isfinite(downs[j]).all())
                if keep[j] and coded[j]:
                    keep[j] = bool(np.abs(ups[j]).max() < _F16_CODED_LIMIT and np.abs(downs[j]).max() < _F16_CODED_LIMIT)
            for j, (i, _, _) in enumerate(items):
                if not keep[j]:
                    redo.append(i)
            sel = np.flatnonzero(keep)
            if sel.size == 0:
                continue
            if sel.size < k:
                ups, downs, gu, gd = ups[sel], downs[sel], gu[sel], gd[sel]
                outs = [outs[j] for j in sel]
                items = [items[j] for j in sel]
            try:
                svs, nus, nds = lora_sv_stack(ups, downs, (gu, gd))
            except (ValueError, np.linalg.LinAlgError):
                redo.extend(i for i, _, _ in items)  # one bad matrix: each on its own, failures on the module
                continue
            for out, nu, nd in zip(outs, nus.tolist(), nds.tolist(), strict=True):
                out.balance = nu / nd if nd > 0 else None
            kept.extend((i, out) for (i, _, _), out in zip(items, outs, strict=True))
            svs_parts.append(svs)
        if not kept:
            continue
        svs_all = svs_parts[0] if len(svs_parts) == 1 else np.concatenate(svs_parts)
        scales = np.array([abs(cast(float, o.scale)) for _, o in kept])
        for (i, out), f in zip(kept, _figures_stack(scales[:, None] * svs_all, min(r, m, n)), strict=True):
            out.apply(f)
            done[i] = out
    return done, redo


def _figures_stack(svs: np.ndarray, max_rank: int) -> list[SpectralFigures]:
    """:func:`figures` of each row of ``svs`` (complete spectra of one shape group), the same values bit for
    bit, computed for the whole group at once. Rows with a zero singular value (whose entropy sums skip
    terms) go through :func:`figures` itself."""
    k = svs.shape[0]
    sv = np.sort(np.abs(np.asarray(svs, dtype=np.float64)), axis=1)[:, ::-1][:, : max(max_rank, 0)]
    if sv.shape[1] == 0:
        return [figures(svs[j], max_rank=max_rank) for j in range(k)]
    sq = sv**2
    add = np.add.reduce  # (what np.sum and ndarray.sum call, without their wrappers)
    energy = add(sq, axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        p = sq / energy[:, None]
        ent_e = add(p * np.log(p), axis=1)
        q = sv / add(sv, axis=1)[:, None]
        ent_rv = add(q * np.log(q), axis=1)
        cum = np.cumsum(sq, axis=1) / add(sq, axis=1)[:, None]
    plain = ((p[:, -1] > 0) & (q[:, -1] > 0) & np.isfinite(ent_e) & np.isfinite(ent_rv)).tolist()
    n = sv.shape[1]
    r90 = (np.minimum(add(cum < 0.9 * 0.9, axis=1), n - 1) + 1).tolist()
    r99 = (np.minimum(add(cum < 0.99 * 0.99, axis=1), n - 1) + 1).tolist()
    lead = sv[:, :SV_KEEP].tolist()
    # (Python numbers from here: tolist gives each float64 exactly)
    energies, ents_e, ents_rv = energy.tolist(), ent_e.tolist(), ent_rv.tolist()
    out: list[SpectralFigures] = []
    for j in range(k):
        if not plain[j]:
            out.append(figures(svs[j], max_rank=max_rank))
            continue
        fro = math.sqrt(energies[j])
        total = fro * fro
        s1 = lead[j][0]
        if total == 0.0:
            out.append(figures(svs[j], max_rank=max_rank))
            continue
        small = s1 <= KOHYA_MIN_SV
        out.append(
            SpectralFigures(
                fro=fro,
                spectral=s1,
                stable_rank=total / (s1 * s1),
                eff_rank_energy=math.exp(-ents_e[j]),
                eff_rank_rv=math.exp(-ents_rv[j]),
                top1_share=s1 * s1 / total,
                rank90=1 if small else r90[j],
                rank99=1 if small else r99[j],
                sv=lead[j],
                n_sv=n,
            )
        )
    return out


def _vector_summary(v: np.ndarray) -> dict[str, float]:
    return {
        "n": int(v.size),
        "mean": float(v.mean()) if v.size else 0.0,
        "std": float(v.std()) if v.size else 0.0,
        "min": float(v.min()) if v.size else 0.0,
        "max": float(v.max()) if v.size else 0.0,
    }


def _tucker_factor(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For W[p, r, k, l] = Σ_ij t[i,j,k,l]·a[i,p]·b[j,r] (LyCORIS Tucker), factors (U, D) with
    flat(W) = U · D: U = aᵀ (p × i), D[i, (r,k,l)] = Σ_j t[i,j,k,l]·b[j,r]."""
    if t.ndim != 4 or a.shape[0] != t.shape[0] or b.shape[0] != t.shape[1]:
        raise _Bad(f"Tucker core {list(t.shape)} does not fit factors {list(a.shape)}, {list(b.shape)}")
    d = np.einsum("ijkl,jr->irkl", t, b.reshape(b.shape[0], -1))
    return a.reshape(a.shape[0], -1).T, d.reshape(t.shape[0], -1)


def sketch_flops(n_out: int, n_in: int, r1: int, r2: int, k: int = SV_KEEP) -> float:
    """Floating-point operations of a LoHa sketch: forming (A1 B1) ⊙ (A2 B2) (2·m·n·(r1+r2)), one pass
    for the range (2·m·n·ℓ), two per power step and one for the projection QᵀΔW, ℓ = k + oversampling."""
    ell = min(k + SKETCH_OVERSAMPLE, n_out, n_in)
    if ell >= min(n_out, n_in):
        return math.inf
    return 2.0 * n_out * n_in * (r1 + r2 + ell * (1 + 2 * SKETCH_POWER) + 2)


def _loha(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    tucker = m.has("t1") and m.has("t2")
    # (read as float32 when that is exact: a sketched module needs nothing wider; exact paths widen below)
    w1a, w1b, w2a, w2b = (m.get(r, narrow=not tucker) for r in ("w1a", "w1b", "w2a", "w2b"))
    rank = w1b.shape[0]
    if tucker:
        a1, b1 = _tucker_factor(m.get("t1"), w1a, w1b)
        a2, b2 = _tucker_factor(m.get("t2"), w2a, w2b)
        out.extra["tucker"] = True
    else:
        a1, b1, a2, b2 = _mat(w1a), w1b.reshape(w1b.shape[0], -1), _mat(w2a), w2b.reshape(w2b.shape[0], -1)
    _check(m)
    if a1.shape[1] != b1.shape[0] or a2.shape[1] != b2.shape[0] or a1.shape[0] != a2.shape[0] or b1.shape[1] != b2.shape[1]:
        raise _Bad(f"LoHa factors do not fit: {list(a1.shape)}·{list(b1.shape)} ⊙ {list(a2.shape)}·{list(b2.shape)}")
    n_out, n_in = a1.shape[0], b1.shape[1]
    alpha = m.scalar("alpha")
    _check(m)
    scale = alpha / rank if alpha is not None else 1.0
    out.n_out, out.n_in, out.rank, out.alpha, out.scale = n_out, n_in, rank, alpha, scale
    r1, r2 = a1.shape[1], a2.shape[1]
    out.extra["ranks"] = [r1, r2]
    big_r = r1 * r2
    out.max_rank = min(big_r, n_out, n_in)
    lo, hi = min(n_out, n_in), max(n_out, n_in)
    if big_r < lo:  # (A1•A2)(B1ᵀ•B2ᵀ)ᵀ: two QRs of width r1·r2 and the SVD of their core
        exact_flops = 4.0 * (n_out + n_in) * big_r * big_r + 10.0 * big_r**3
    else:  # formed, then a dense SVD (values only)
        exact_flops = 2.0 * n_out * n_in * (r1 + r2) + 4.0 * lo * lo * hi
    sketch = exact_flops > EXACT_FLOPS and sketch_flops(n_out, n_in, r1, r2) < exact_flops
    if not sketch:
        a1, b1, a2, b2 = (np.asarray(x, dtype=np.float64) for x in (a1, b1, a2, b2))
    nb = _fro(b1) * _fro(b2)
    out.balance = _fro(a1) * _fro(a2) / nb if nb > 0 else None
    if sketch:
        out.method, out.exact = "sketched", False
        s1, t1, s2, t2 = (np.asarray(x, dtype=np.float32) for x in (a1, b1, a2, b2))
        job = _LohaJob(out, s1, t1, s2, t2, abs(scale))
        if m.sketches is None:
            _run_sketch(job)
            _LOHA_SCRATCH.__dict__.clear()  # (no runner keeps this thread's buffers for a next module)
        else:
            m.sketches.submit(job)
        return
    if big_r >= lo:
        sv = full_sv((a1 @ b1) * (a2 @ b2))
        out.method = "formed"
    else:
        # (A1 B1) ⊙ (A2 B2) = (A1 • A2)(B1ᵀ • B2ᵀ)ᵀ, • the row-wise Kronecker product
        p = (a1[:, :, None] * a2[:, None, :]).reshape(n_out, big_r)
        q = (b1.T[:, :, None] * b2.T[:, None, :]).reshape(n_in, big_r)
        sv = lowrank_sv(p, q)
        out.method = "factored"
    out.apply(figures(abs(scale) * sv, max_rank=out.max_rank))


@dataclass(frozen=True)
class Sketch:
    """Leading singular values of a sketched matrix with the bounds of :func:`loha_sketch`."""

    sv: np.ndarray
    fro: float
    #: ρ ≥ ‖A(I − P)‖₂ (P the projector on the sketched subspace): every true σᵢ (i ≤ len(sv)) lies in
    #: [svᵢ, √(svᵢ² + ρ²)]
    residual: float
    bound_kind: str
    rel_error_first: float
    rel_error_last: float


#: rounding allowance added to ρ² (relative to ‖ΔW‖_F²): the product, the projection and the sums run in
#: float32 (unit roundoff 6e-8; a float32 inner product of length n errs by at most about log₂(n)·6e-8
#: relative when summed pairwise), so 1e-5 covers the float32 parts with a wide margin
SKETCH_ROUNDING = 1e-5
#: factors of LoHa modules handed to the sketch threads and not yet done, at most this many bytes (float32)
SKETCH_PENDING_BYTES = 64 << 20
#: a row block of the formed update holds about this many bytes (whole slabs of ℓ rows): both products, the
#: squares and the bucket sums of a block stay in the core's caches (measured: 10% faster than 512 KiB
#: blocks, BLAS runs the K = r products better on more rows)
SKETCH_BLOCK_BYTES = 1280 << 10


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """An orthonormal basis (float64, same shape; columns of directions below 1e-5·‖y‖₂ zeroed) of the
    columns of each matrix of a stack, from the eigen-decomposition of the Gram matrix (LAPACK's
    Householder QR of a tall narrow float32 block cost a quarter of the old sketch's time). A second
    pass runs when the first cannot have reached orthogonality to 1e-8 (condition number above 1e4)."""
    q = y.astype(np.float64)
    for _ in range(2):
        w, v = np.linalg.eigh(np.swapaxes(q, -1, -2) @ q)
        top = w[..., -1:]
        keep = w > 1e-10 * top
        q = q @ (v * np.where(keep, 1.0 / np.sqrt(np.where(keep, w, 1.0)), 0.0)[..., None, :])
        low = np.min(np.where(keep, w, np.inf), axis=-1)
        if np.all(low >= 1e-8 * top[..., 0]):
            break
    return q


def _cholesky_factor(z: np.ndarray) -> np.ndarray | None:
    """R (ℓ×ℓ, float64) with Zᵀ·R orthonormal, for a sketch ``z`` (ℓ×n), by one Cholesky QR of the
    row-scaled float64 Gram matrix Z·Zᵀ (a third of an eigen-decomposition's time at ℓ = 72), or None where
    Z is nearly rank-deficient (a pivot of the scaled factor below 1e-4: condition number about 1e4 or
    more), for which :func:`_orthonormal` is the robust route. The orthogonality of the basis made with it
    is measured afterwards in any case (:func:`_gram_range`), so the bounds never rest on it."""
    zd = z.astype(np.float64)
    g = zd @ zd.T
    d = np.sqrt(np.diagonal(g))
    if d.size == 0 or not np.all(d > 0) or not np.all(np.isfinite(g)):
        return None
    try:
        low = np.linalg.cholesky(g / np.outer(d, d))
    except np.linalg.LinAlgError:
        return None
    piv = np.diagonal(low)
    if piv.min() < 1e-4 * piv.max():
        return None
    # Z·D⁻¹ = L·Q̃ᵀ, so Zᵀ·D⁻¹·L⁻ᵀ = Q̃
    return cast(np.ndarray, np.linalg.inv(low).T / d[:, None])


#: a float32 basis Q = fl(Zᵀ·R) is kept when the certain range [λmin, λmax] of QᵀQ's eigenvalues is at most
#: this wide (it moves σ̂ by at most half of it, relatively); wider (an ill-conditioned sketch amplifies
#: the float32 product's rounding), the product is taken in float64 and rounded once
BASIS_SPREAD = 1e-4


def _sketch_basis(z: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A nearly orthonormal float32 basis Q (n×ℓ', ℓ' ≤ ℓ) of the rows of the sketch ``z`` (ℓ×n) and certain
    bounds [λmin, λmax] on the eigenvalues of QᵀQ (:func:`_gram_range`): Cholesky QR with the product
    Zᵀ·R in float32 (float64 where that leaves a range wider than :data:`BASIS_SPREAD`), or, for a
    nearly dependent sketch (or a zero update), the eigen-decomposition basis without its empty
    directions."""
    r = _cholesky_factor(z)
    if r is not None:
        q = z.T @ r.astype(np.float32)
        lo, hi = _gram_range(q)
        if not hi - lo <= BASIS_SPREAD:
            q = (z.T.astype(np.float64) @ r).astype(np.float32)
            lo, hi = _gram_range(q)
        if 0.5 < lo <= hi < 2.0:
            return q, lo, hi
    q64 = _orthonormal(z.T)
    q = q64[:, np.any(q64 != 0.0, axis=0)].astype(np.float32)  # (directions it dropped)
    lo, hi = _gram_range(q) if q.shape[1] else (1.0, 1.0)
    return q, lo, hi


def _gram_range(q: np.ndarray) -> tuple[float, float]:
    """Certain bounds [λmin, λmax] on the eigenvalues of QᵀQ for a float32 basis Q (n×ℓ), by Gershgorin
    discs of the Gram matrix formed in float64 (the products of float32 values are exact there; the sums'
    rounding, at most n·2⁻⁵³ of ‖qᵢ‖‖qⱼ‖ per entry, is added to each disc)."""
    qd = q.astype(np.float64)
    g = qd.T @ qd
    diag = np.diagonal(g)
    norms = np.sqrt(diag)
    slack = (q.shape[0] + 2) * 2.0**-53 * norms * np.sum(norms)
    radius = np.sum(np.abs(g), axis=1) - np.abs(diag) + slack
    return float(np.min(diag - radius)), float(np.max(diag + radius))


@functools.lru_cache(maxsize=64)
def _row_mix(m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The random row order and signs of a sketch of m rows (the same for every module of m rows)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(m)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=m)
    perm.flags.writeable = signs.flags.writeable = False
    return perm, signs


#: per-thread scratch of the sketch (float32 buffers kept for the thread's next module: fresh pages would cost
#: a fault per 4 KiB)
_LOHA_SCRATCH = threading.local()


def _scratch32(name: str, size: int) -> np.ndarray:
    """This thread's float32 buffer ``name`` of at least ``size`` elements."""
    buf: np.ndarray | None = getattr(_LOHA_SCRATCH, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1 << 16), dtype=np.float32)
        setattr(_LOHA_SCRATCH, name, buf)
    return buf


def _block_rows(n: int, ell: int, m: int) -> int:
    """Rows of W per block: whole slabs of ℓ rows, about :data:`SKETCH_BLOCK_BYTES` in all."""
    return max(1, min(m, ell * max(1, SKETCH_BLOCK_BYTES // (4 * n * ell))))


def _slab_squares(blk: np.ndarray, ell: int, cols: np.ndarray) -> float:
    """Σ of the squares of a block (rows × n): over each slab of ≤ ℓ rows in float32 (≤ ℓ nonnegative terms
    per column, in any order: relative error at most ℓ·2⁻²⁴ ≈ 4e-6 at ℓ = 72, the squaring included), the
    column sums added in float64. ``cols``: float32 scratch of at least ⌈rows/ℓ⌉·n elements."""
    rows, n = blk.shape
    whole = rows // ell
    total = 0.0
    add = np.add.reduce
    if whole:  # (one call for the block's whole slabs)
        x = blk[: whole * ell].reshape(whole, ell, n)
        total += float(add(np.einsum("kij,kij->kj", x, x, out=cols[: whole * n].reshape(whole, n)), axis=None, dtype=np.float64))
    if rows > whole * ell:
        x = blk[whole * ell :]
        total += float(add(np.einsum("ij,ij->j", x, x, out=cols[:n]), dtype=np.float64))
    return total


def _form_rows(
    a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray, ell: int
) -> tuple[np.ndarray, float, np.ndarray]:
    """W = (A1 B1) ⊙ (A2 B2) (float32, m×n, in this thread's reusable buffer), ‖W‖_F² (:func:`_slab_squares`),
    and the bucket sums Z (ℓ×n) of W's rows (bucket j: rows j, j + ℓ, …). Row block by row block (whole
    slabs of ℓ rows), so that both products, the squares and the sums of a block stay in cache; per slab,
    Z gains the slab (contiguous rows, no strided sums)."""
    m, n = a1.shape[0], b1.shape[1]
    w = _scratch32("w", m * n)[: m * n].reshape(m, n)
    z = np.zeros((ell, n), dtype=np.float32)
    step = _block_rows(n, ell, m)
    tmp = _scratch32("t", step * n)[: step * n].reshape(step, n)
    cols = np.empty(-(-step // ell) * n, dtype=np.float32)
    total = 0.0
    for i in range(0, m, step):  # (2-D contiguous blocks: NumPy hands them to BLAS and its loops without copies)
        j = min(i + step, m)
        blk = w[i:j]
        np.matmul(a1[i:j], b1, out=blk)
        np.matmul(a2[i:j], b2, out=tmp[: j - i])
        np.multiply(blk, tmp[: j - i], out=blk)
        for s in range(0, j - i, ell):  # (i is a multiple of ℓ: row i + s goes to bucket s)
            e = min(s + ell, j - i)
            np.add(z[: e - s], blk[s:e], out=z[: e - s])
        total += _slab_squares(blk, ell, cols)
    return w, total, z


def _project_rows(
    a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray, q: np.ndarray, ell: int, out: np.ndarray
) -> float:
    """The rows of W = (A1 B1) ⊙ (A2 B2) formed block by block in cache and at once projected: W·Q into
    ``out`` (m×ℓ', float32); returns ‖W‖_F² (:func:`_slab_squares`). W itself is never stored."""
    m, n = a1.shape[0], b1.shape[1]
    step = _block_rows(n, ell, m)
    buf = _scratch32("t", 2 * step * n)
    x, y = buf[: step * n].reshape(step, n), buf[step * n : 2 * step * n].reshape(step, n)
    cols = np.empty(-(-step // ell) * n, dtype=np.float32)
    total = 0.0
    for i in range(0, m, step):
        j = min(i + step, m)
        blk = x[: j - i]
        np.matmul(a1[i:j], b1, out=blk)
        np.matmul(a2[i:j], b2, out=y[: j - i])
        np.multiply(blk, y[: j - i], out=blk)
        total += _slab_squares(blk, ell, cols)
        if q.shape[1]:
            np.matmul(blk, q, out=out[i:j])
    return total


#: rows of the shuffled update that make the co-range sketch: this many slabs of ℓ rows (a uniform random
#: sample of 16·ℓ = 1,152 rows at ℓ = 72, each bucket the signed sum of 16 rows; every row of an update
#: with less than a row block more); the other rows are projected as they are formed and never stored.
#: Measured on SDXL shapes with decaying spectra and uneven row norms: the Ritz values and ρ as close as
#: with every row in the sketch (or closer) at 16 slabs, σ̂1 up to 5× further off at 8
SKETCH_SAMPLE = 16
#: a sample holding less than this fraction of its share m₀/m of the squared norm (uniform rows hold about
#: their share: ±21% for 1,152 rows whose energies vary by a factor e^±4) is redone with every row in the
#: sketch: the update's energy lies in a few rows outside it
SKETCH_SHARE = 0.5


def loha_sketch(
    a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray,
    k: int = SV_KEEP, seed: int = 0, power: int | None = None, sample: bool = True,
) -> Sketch:
    """Leading ``k`` singular values of ΔW = (A1 B1) ⊙ (A2 B2) (matrices m×r1, r1×n, m×r2, r2×n, read as
    float32) by a randomized range finder (Halko, Martinsson & Tropp 2011, alg. 4.1, with ``power`` steps
    of alg. 4.4), on ΔW or, when it is wide, on ΔWᵀ (same singular values), so that the formed matrix W
    has m ≥ n rows and the sketched space is the smaller one:

    * the rows of A1 and A2 are permuted and (A1's) sign-flipped at random before W is formed, so the
      formed float32 matrix is W' = D·Π·W with D·Π orthogonal (the same singular values and Frobenius
      norm, summed in float64 while forming);
    * the co-range sketch Z = S·W'₀ of the first m₀ = :data:`SKETCH_SAMPLE`·ℓ rows W'₀ (the ℓ rows of
      largest ‖A1ᵢ‖·‖A2ᵢ‖ and a uniform random sample of the others; all m rows when fewer than a row
      block would be left, with power steps or
      without ``sample``, and again with all rows when the sample turns out to hold less than
      :data:`SKETCH_SHARE` of its share m₀/m of ‖ΔW‖_F², the energy being in rows it missed)
      with S a sparse sign embedding (each row added into one of ℓ buckets: whole rows, no
      multiplication), Q a nearly orthonormal basis of Zᵀ (n×ℓ, :func:`_sketch_basis`);
    * the one dense product B = W'·Q (m×ℓ): the m₀ sampled rows from their buffer, every other row block
      as soon as it is formed (in cache, never stored); the singular values of B (from the float64 Gram
      BᵀB) are Rayleigh–Ritz values, and ρ² ≥ ‖W'(I − P)‖₂² with P the projector on range(Q) is certain.

    The bounds hold for any Q, however it was found (the sample only decides how close they are): with
    certain bounds [λmin, λmax] on the eigenvalues of QᵀQ (:func:`_gram_range`; Q is float32 and only
    nearly orthonormal), σ̂ᵢ = σᵢ(B)/√λmax ≤ σᵢ(W'P) ≤ σᵢ(W'), and
    ρ² = ‖W‖_F² − ‖B‖_F²/λmax + σ₁(B)²·(1/λmin − 1/λmax) (+ :data:`SKETCH_ROUNDING`·‖W‖_F²), so that
    σᵢ² ≤ σᵢ(W'P)² + ‖W'(I − P)‖₂² ≤ σ̂ᵢ² + ρ² (Weyl)."""
    power = SKETCH_POWER if power is None else power
    a1, b1, a2, b2 = (np.asarray(x, dtype=np.float32) for x in (a1, b1, a2, b2))
    wide = a1.shape[0] < b1.shape[1]  # then W = ΔWᵀ = (B1ᵀ A1ᵀ) ⊙ (B2ᵀ A2ᵀ)
    m, n = (b1.shape[1], a1.shape[0]) if wide else (a1.shape[0], b1.shape[1])
    ell = min(k + SKETCH_OVERSAMPLE, m, n)
    perm, signs = _row_mix(m, seed)
    m0 = SKETCH_SAMPLE * ell
    if power or not sample or m - m0 < _block_rows(n, ell, m):  # (a power step needs all of W; a short rest is not worth a pass)
        m0 = m
    if m0 < m:  # the ℓ rows of largest ‖A1ᵢ‖·‖A2ᵢ‖ (a few dominant rows carry their own directions) go first
        r1s, r2s = (np.einsum("ij,ij->j", x, x) for x in (b1, b2)) if wide else (np.einsum("ij,ij->i", x, x) for x in (a1, a2))
        heavy = np.argpartition(r1s * r2s, m - ell)[m - ell :]
        lead = np.zeros(m, dtype=bool)
        lead[heavy] = True
        perm = np.concatenate([heavy, perm[~lead[perm]]])
    if wide:  # (the columns of B gathered along their rows, then seen transposed: BLAS takes either order)
        a1p, a2p = np.take(b1, perm, axis=1).T, np.take(b2, perm, axis=1).T
        b1c, b2c = np.ascontiguousarray(a1.T), np.ascontiguousarray(a2.T)
    else:
        a1p, a2p = np.take(a1, perm, axis=0), np.take(a2, perm, axis=0)
        b1c, b2c = np.ascontiguousarray(b1), np.ascontiguousarray(b2)
    np.multiply(a1p, signs[:, None], out=a1p)
    w, fro2, z = _form_rows(a1p[:m0], b1c, a2p[:m0], b2c, ell)
    sampled = fro2
    for _ in range(power):
        y = w @ _orthonormal(z.T).astype(np.float32)
        z = _orthonormal(y).astype(np.float32).T @ w
    q, lo, hi = _sketch_basis(z)
    b = _scratch32("b", m * q.shape[1])[: m * q.shape[1]].reshape(m, q.shape[1])
    if q.shape[1]:
        np.matmul(w, q, out=b[:m0])
    if m0 < m:
        fro2 += _project_rows(a1p[m0:], b1c, a2p[m0:], b2c, q, ell, b[m0:])
        if sampled < SKETCH_SHARE * (m0 / m) * fro2:  # the energy lies in rows the sample missed
            return loha_sketch(a1, b1, a2, b2, k, seed, power, sample=False)
    if q.shape[1]:
        bd = b.astype(np.float64)
        gram = bd.T @ bd
        ev = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
        captured, top = float(np.trace(gram)), float(ev[0])
    else:
        ev, captured, top = np.zeros(0), 0.0, 0.0
    sv = np.zeros(min(ell, k))
    got = np.sqrt(ev[: sv.size] / hi)
    sv[: got.size] = got
    rho = math.sqrt(max(fro2 - captured / hi, 0.0) + top * (1.0 / lo - 1.0 / hi) + SKETCH_ROUNDING * fro2)
    first = _rel_bound(float(sv[0]), rho) if sv.size else 0.0
    last = _rel_bound(float(sv[-1]), rho) if sv.size else 0.0
    return Sketch(sv, math.sqrt(fro2), rho, "frobenius (certain)", first, last)


def _rel_bound(x: float, rho: float) -> float:
    """Relative upper bound on the error of a lower bound x of σ with σ ≤ √(x² + ρ²)."""
    return (math.sqrt(x * x + rho * rho) - x) / x if x > 0 else (0.0 if rho == 0 else math.inf)



def rank_interval(sv: np.ndarray, fro: float, rho: float, max_rank: int, target: float) -> tuple[int, int]:
    """Bounds [lo, hi] on kohya's sv_fro rank (smallest j with Σᵢ≤ⱼ σᵢ² ≥ target²·‖ΔW‖_F²) from lower
    bounds ``sv`` (σ̂ᵢ ≤ σᵢ ≤ √(σ̂ᵢ² + ρ²)) of the leading values and the exact Frobenius norm.

    hi: the smallest j ≤ len(sv) whose lower-bound energy Σσ̂ᵢ² already reaches the target, else
    ``max_rank``. lo: the smallest j whose upper-bound energy reaches it, with σᵢ² ≤ σ̂ᵢ² + ρ² for the
    computed values and, past them, σᵢ ≤ σ_k (at most σ̂_k² + ρ² each); never above hi."""
    total = fro * fro
    if total == 0.0 or max_rank <= 0:
        return 0, 0
    need = target * target * total
    lower = np.cumsum(sv.astype(np.float64) ** 2)
    hit = np.nonzero(lower >= need)[0]
    hi = int(hit[0]) + 1 if hit.size else max_rank
    upper = np.cumsum(sv.astype(np.float64) ** 2 + rho * rho)
    hit = np.nonzero(upper >= need)[0]
    if hit.size:
        lo = int(hit[0]) + 1
    else:  # beyond the computed values: each further σᵢ² is at most σ̂_k² + ρ²
        per = float(sv[-1]) ** 2 + rho * rho if sv.size else total
        lo = sv.size + (math.ceil((need - float(upper[-1] if sv.size else 0.0)) / per) if per > 0 else max_rank)
    return min(max(lo, 1), hi, max_rank), min(hi, max_rank)


def sketch_figures(sk: Sketch, scale: float, max_rank: int) -> tuple[SpectralFigures, float | None, dict[str, Any]]:
    """Figures of a sketched module (scaled by ``scale`` ≥ 0): the spectral figures from the lower
    bounds, rank90 / rank99 where their bounds meet, the relative bound on σ1, and ``extra['sketch']``
    with the bounds of every derived figure."""
    sv, fro, rho = scale * sk.sv, scale * sk.fro, scale * sk.residual
    f = figures(sv, fro=fro, complete=False, max_rank=max_rank)
    r90 = rank_interval(sv, fro, rho, max_rank, 0.9)
    r99 = rank_interval(sv, fro, rho, max_rank, 0.99)
    total = fro * fro
    lead = float(np.sum(sv.astype(np.float64) ** 2))
    extra: dict[str, Any] = {
        "k": int(sv.size), "oversample": SKETCH_OVERSAMPLE, "power": SKETCH_POWER,
        "residual_bound": rho, "bound": sk.bound_kind, "sv_rel_error_last": sk.rel_error_last,
        "rank90": list(r90), "rank99": list(r99),
        # energy share of the leading k singular directions: [from the lower bounds, from the upper bounds]
        "topk_energy": [lead / total, min(1.0, (lead + sv.size * rho * rho) / total)] if total > 0 else [0.0, 0.0],
        # σ1 ∈ [σ̂1, √(σ̂1² + ρ²)]
        "spectral": [float(sv[0]), math.sqrt(float(sv[0]) ** 2 + rho * rho)] if sv.size else [0.0, 0.0],
    }
    f = SpectralFigures(
        f.fro, f.spectral, f.stable_rank, None, None, f.top1_share,
        r90[0] if r90[0] == r90[1] else None, r99[0] if r99[0] == r99[1] else None, f.sv, f.n_sv,
    )
    return f, (sk.rel_error_first if sv.size else None), extra


@dataclass
class _LohaJob:
    """A LoHa module whose spectrum waits for a sketch thread (float32 factors)."""

    out: ModuleStats
    a1: np.ndarray
    b1: np.ndarray
    a2: np.ndarray
    b2: np.ndarray
    scale: float

    @property
    def nbytes(self) -> int:
        return int(self.a1.nbytes + self.b1.nbytes + self.a2.nbytes + self.b2.nbytes)


def _run_sketch(job: _LohaJob) -> None:
    """Sketch one deferred module and write its figures (or its error) into its ModuleStats."""
    try:
        sk = loha_sketch(job.a1, job.b1, job.a2, job.b2)
    except (ValueError, np.linalg.LinAlgError, MemoryError) as e:
        job.out.error, job.out.method = f"sketch failed: {e}", "none"
        return
    f, err, extra = sketch_figures(sk, job.scale, job.out.max_rank or 0)
    job.out.apply(f)
    job.out.sv_error = err
    job.out.extra["sketch"] = extra


#: threads that sketch modules side by side while the caller reads the next ones (NumPy's matmul and
#: loops release the GIL; BLAS stays single-threaded)
SKETCH_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


class SketchRunner:
    """Runs deferred LoHa sketches (:func:`loha_sketch`, one module each) on :data:`SKETCH_WORKERS`
    threads as they are submitted, so that reading and decoding the next modules overlaps with sketching;
    the caller waits only while more than :data:`SKETCH_PENDING_BYTES` of factors are in flight, and in
    :meth:`close`. With one worker each job runs at once in the caller's thread. A module's figures do
    not depend on the thread, the order or the other modules."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = SKETCH_WORKERS if workers is None else max(1, workers)
        self._pool: Any = None
        self._inflight: deque[tuple[Any, int]] = deque()
        self._bytes = 0

    def submit(self, job: _LohaJob) -> None:
        if self.workers <= 1:
            _run_sketch(job)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sketch")
        self._inflight.append((self._pool.submit(_run_sketch, job), job.nbytes))
        self._bytes += job.nbytes
        while self._bytes > SKETCH_PENDING_BYTES and self._inflight:
            fut, nb = self._inflight.popleft()
            fut.result()
            self._bytes -= nb

    def close(self) -> None:
        """Wait for every submitted sketch; free the threads and their buffers."""
        try:
            while self._inflight:
                self._inflight.popleft()[0].result()
        finally:
            self._bytes = 0
            if self._pool is not None:
                self._pool.shutdown(wait=True)  # (the pool's threads take their buffers with them)
                self._pool = None
            _LOHA_SCRATCH.__dict__.clear()

    def __enter__(self) -> SketchRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lokr_part(m: _Module, which: str) -> tuple[np.ndarray | None, np.ndarray, int | None]:
    """(U, D) factors or (None, whole matrix) of one Kronecker factor, and its rank if factored."""
    whole = f"lokr_{which}"
    if m.has(whole):
        return None, m.get(whole), None
    a, b = m.get(f"lokr_{which}a"), m.get(f"lokr_{which}b")
    if which == "w2" and m.has("lokr_t2"):
        u, d = _tucker_factor(m.get("lokr_t2"), a, b)
    else:
        u, d = _mat(a), b.reshape(b.shape[0], -1)
    if u.shape[1] != d.shape[0]:
        raise _Bad(f"LoKr {which} factors do not fit: {list(a.shape)}·{list(b.shape)}")
    return u, d, d.shape[0]


def _lokr(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    u1, w1, rank1 = _lokr_part(m, "w1")
    u2, w2, rank2 = _lokr_part(m, "w2")
    _check(m)
    if u1 is None:
        w1m = _mat(w1)
        sv1 = full_sv(w1m)
        rows1, cols1 = w1m.shape
    else:
        sv1 = lowrank_sv(u1, w1.T)
        rows1, cols1 = u1.shape[0], w1.shape[1]
    if u2 is None:
        w2m = _mat(w2)
        sv2 = full_sv(w2m)
        rows2, cols2 = w2m.shape
    else:
        sv2 = lowrank_sv(u2, w2.T)
        rows2, cols2 = u2.shape[0], w2.shape[1]
    # ComfyUI/LyCORIS: the rank that divides alpha is w2's when w2 is factored, else w1's, else none
    dim = rank2 if rank2 is not None else rank1
    alpha = m.scalar("alpha")
    _check(m)
    scale = alpha / dim if (alpha is not None and dim is not None) else 1.0
    out.n_out, out.n_in = rows1 * rows2, cols1 * cols2
    out.rank, out.alpha, out.scale = dim, alpha, scale
    out.extra["w1_shape"] = [rows1, cols1]
    out.extra["w2_shape"] = [rows2, cols2]
    out.extra["w1_rank"] = rank1
    out.extra["w2_rank"] = rank2
    # each factor's reachable rank: min(its r, rows, cols), or min(rows, cols) when stored whole;
    # ΔW's is their product (the singular values of W1 ⊗ W2 are all products σᵢ(W1)·σⱼ(W2))
    rk1 = min(rows1, cols1) if rank1 is None else min(rank1, rows1, cols1)
    rk2 = min(rows2, cols2) if rank2 is None else min(rank2, rows2, cols2)
    sv1, sv2 = sv1[:rk1], sv2[:rk2]
    out.max_rank = rk1 * rk2
    out.extra["w1_max_rank"], out.extra["w2_max_rank"] = rk1, rk2
    f1, f2 = math.sqrt(float(np.sum(sv1**2))), math.sqrt(float(np.sum(sv2**2)))
    out.balance = f1 / f2 if f2 > 0 else None
    out.method = "kronecker"
    out.apply(figures(abs(scale) * np.outer(sv1, sv2).ravel(), max_rank=out.max_rank))


def _vector_module(m: _Module, out: ModuleStats, d: np.ndarray) -> None:
    _check(m)
    out.n_out = out.n_in = int(d.size)
    out.rank = out.max_rank = int(d.size)
    out.scale = 1.0
    out.method = "vector"
    out.extra.update(_vector_summary(d))
    out.apply(figures(np.abs(d)))


def _ia3(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    if m.has("ia3_l"):
        d = m.get("ia3_l").ravel() - 1.0  # PEFT: W' = W0 · l
        out.extra["multiplier"] = "l"
    else:
        d = m.get("weight").ravel()  # LyCORIS/A1111: ΔW = W0 · w
        on_input = m.get("on_input").ravel()
        out.extra["on_input"] = bool(on_input.size and on_input[0] != 0)
    _vector_module(m, out, d)


def _norm(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    d = m.get("w_norm").ravel()
    if m.has("b_norm"):
        out.extra["bias_norm"] = _fro(m.get("b_norm"))
    _vector_module(m, out, d)


def _glora(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    a1, a2, b1, b2 = (_mat(m.get(r)) for r in ("a1", "a2", "b1", "b2"))
    _check(m)
    new = b2.shape[0] == b1.shape[1] == a1.shape[1] == a2.shape[0]
    old = b2.shape[1] == b1.shape[0] == a1.shape[0] == a2.shape[1]
    if new:  # ΔW = W0·(a1·a2) + b1·b2
        rank = a2.shape[0]
        bu, bd, au, ad = b1, b2, a1, a2
    elif old:  # ΔW = b2·b1 + W0·(a2·a1)
        rank = a1.shape[0]
        bu, bd, au, ad = b2, b1, a2, a1
    else:
        raise _Bad(f"GLoRA factors do not fit: a1 {list(a1.shape)} a2 {list(a2.shape)} b1 {list(b1.shape)} b2 {list(b2.shape)}")
    alpha = m.scalar("alpha")
    _check(m)
    scale = alpha / rank if alpha is not None else 1.0
    out.n_out, out.n_in, out.rank, out.alpha, out.scale = bu.shape[0], bd.shape[1], rank, alpha, scale
    out.max_rank = min(rank, bu.shape[0], bd.shape[1])
    out.extra["glora_format"] = "new" if new else "old"
    a_fig = figures(abs(scale) * lowrank_sv(au, ad.T))
    out.extra["a_fro"], out.extra["a_spectral"], out.extra["a_sv"] = a_fig.fro, a_fig.spectral, a_fig.sv[:16]
    nd = _fro(bd)
    out.balance = _fro(bu) / nd if nd > 0 else None
    out.method = "factored"
    out.apply(figures(abs(scale) * lowrank_sv(bu, bd.T), max_rank=out.max_rank))


def cayley(blocks: np.ndarray, constraint: float | None) -> tuple[np.ndarray, float]:
    """Rotations R = (I+Q)(I−Q)⁻¹ of Q = B − Bᵀ for a stack of blocks (…, b, b), with the total
    Frobenius norm of Q clamped to ``constraint`` (> 0) as LyCORIS/ComfyUI do; returns (R, ‖Q‖_F)."""
    q = blocks - np.swapaxes(blocks, -1, -2)
    qn = float(np.linalg.norm(q.ravel()))
    if constraint is not None and constraint > 0:
        norm = qn + 1e-8
        if norm > constraint:
            q = q * (constraint / norm)
    eye = np.eye(blocks.shape[-1])
    # R = (I + Q)(I − Q)⁻¹  ⇔  Rᵀ = (I − Q)⁻ᵀ (I + Q)ᵀ = (I + Q)⁻¹ (I − Q) … solve instead of inverting
    r = np.swapaxes(np.linalg.solve(np.swapaxes(eye - q, -1, -2), np.swapaxes(eye + q, -1, -2)), -1, -2)
    return r, qn


def _rescale(m: _Module, n: int) -> np.ndarray | None:
    if not m.has("rescale"):
        return None
    s = m.get("rescale").ravel()
    if s.size != n:
        raise _Bad(f"rescale has {s.size} values for {n} rows")
    return s


def _oft(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    blocks = m.get("oft_blocks")
    if blocks.ndim != 3 or blocks.shape[1] != blocks.shape[2]:
        raise _Bad(f"oft_blocks {list(blocks.shape)} is not a stack of square blocks")
    alpha = m.scalar("alpha")
    _check(m)
    nb, b = blocks.shape[0], blocks.shape[1]
    n = nb * b
    rescale = _rescale(m, n)
    _check(m)
    r, qn = cayley(blocks, alpha)
    mats = np.swapaxes(r, -1, -2)  # ComfyUI: W'[k, m] = Σ_n r[k, n, m] W[k, n], i.e. Rᵀ per block
    if rescale is not None:
        mats = rescale.reshape(nb, b, 1) * mats
        out.extra["rescale"] = _vector_summary(rescale)
    delta = mats - np.eye(b)
    sv = np.linalg.svd(delta, compute_uv=False).ravel()
    out.n_out = out.n_in = n
    out.rank, out.max_rank, out.alpha, out.scale = n, n, alpha, 1.0
    out.extra.update(blocks=nb, block_size=b, q_norm=qn)
    out.extra["max_angle"] = _max_angle(r)
    out.method = "blocks"
    out.apply(figures(sv))


def _max_angle(r: np.ndarray) -> float:
    """Largest rotation angle (radians) of a stack of orthogonal blocks."""
    ev = np.linalg.eigvals(r)
    return float(np.max(np.abs(np.angle(ev)))) if ev.size else 0.0


def boft_apply(r: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply the BOFT butterfly product of rotations ``r`` (m × blocks × b × b) to the rows of ``x``
    (n × c), factor 0 first, with the permutations ComfyUI and LyCORIS use."""
    m_f, nb, b, _ = r.shape
    n, c = x.shape
    if nb * b != n:
        raise _Bad(f"BOFT blocks cover {nb * b} rows, the matrix has {n}")
    half = b // 2
    for i in range(m_f):
        k = (2**i) * half
        if n % (2 * k):
            raise _Bad(f"BOFT factor {i} needs rows in groups of {2 * k}; {n} rows")
        x = x.reshape(n // (2 * k), 2, k, c).transpose(0, 2, 1, 3).reshape(nb, b, c)
        x = np.einsum("bij,bjc->bic", r[i], x)
        x = x.reshape(n // (2 * k), k, 2, c).transpose(0, 2, 1, 3).reshape(n, c)
    return x


def _boft(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    blocks = m.get("oft_blocks")
    if blocks.ndim != 4 or blocks.shape[2] != blocks.shape[3]:
        raise _Bad(f"oft_blocks {list(blocks.shape)} is not a BOFT stack (m × blocks × b × b)")
    alpha = m.scalar("alpha")
    _check(m)
    m_f, nb, b = blocks.shape[0], blocks.shape[1], blocks.shape[2]
    n = nb * b
    rescale = _rescale(m, n)
    _check(m)
    r, qn = cayley(blocks, alpha)
    out.n_out = out.n_in = n
    out.rank, out.max_rank, out.alpha, out.scale = n, n, alpha, 1.0
    out.extra.update(factors=m_f, blocks=nb, block_size=b, q_norm=qn)
    per_factor = [float(np.max(np.linalg.svd(r[i] - np.eye(b), compute_uv=False))) for i in range(m_f)]
    out.extra["factor_spectral"] = per_factor
    if rescale is not None:
        out.extra["rescale"] = _vector_summary(rescale)
    if n <= BOFT_FORM_LIMIT:
        mat = boft_apply(r, np.eye(n))
        if rescale is not None:
            mat = rescale[:, None] * mat
        out.method = "formed"
        out.apply(figures(full_sv(mat - np.eye(n))))
    else:
        # ‖R − I‖₂ ≤ Σᵢ ‖Rᵢ − I‖₂ for a product of orthogonal factors; no exact spectrum without forming R
        out.method = "none"
        out.exact = False
        out.extra["spectral_bound"] = float(sum(per_factor))


def _diff(m: _Module, out: ModuleStats, cfg: Mapping[str, Any] | None) -> None:
    w = _mat(m.get("diff"))
    if m.has("diff_b"):
        out.extra["bias_norm"] = _fro(m.get("diff_b"))
    _check(m)
    rows, cols = w.shape
    out.n_out, out.n_in, out.rank, out.scale = rows, cols, min(rows, cols), 1.0
    out.max_rank = min(rows, cols)
    if min(rows, cols) ** 2 * max(rows, cols) <= DIFF_EXACT_FLOPS:
        out.method = "formed"
        out.apply(figures(full_sv(w)))
    else:
        out.method = "randomized"
        out.exact = False
        out.apply(figures(randomized_sv(w), fro=_fro(w), complete=False))


_FORMS: dict[str, Callable[[_Module, ModuleStats, Mapping[str, Any] | None], None]] = {
    "lora": _lora,
    "loha": _loha,
    "lokr": _lokr,
    "ia3": _ia3,
    "norm": _norm,
    "glora": _glora,
    "oft": _oft,
    "boft": _boft,
    "diff": _diff,
}


# -- per file ---------------------------------------------------------------------------------


@dataclass
class LoraReport:
    modules: list[ModuleStats]
    summary: dict[str, Any]
    profile: list[dict[str, Any]]
    findings: list[Finding]


def peft_config_from_metadata(metadata: Mapping[str, str] | None) -> dict[str, Any] | None:
    """The PEFT LoRA config diffusers embeds as ``lora_adapter_metadata`` (or None)."""
    if not metadata:
        return None
    raw = metadata.get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if isinstance(doc, dict) and "lora_alpha" in doc:
        return doc
    if isinstance(doc, dict):  # {adapter: config} or {"unet": config, …}: take the first usable one
        for v in doc.values():
            if isinstance(v, dict) and "lora_alpha" in v:
                return v
    return None


def _median(xs: list[float]) -> float | None:
    """``np.median`` of a list of floats, the same value (the middle one, or the two middle ones added and
    halved as ``np.mean`` does), without numpy's per-call overhead (a sizeable part of a small file)."""
    if not xs:
        return None
    s = sorted(xs)
    if s[0] != s[0] or s[-1] != s[-1] or any(x != x for x in s):
        return float(np.median(xs))  # NaN: numpy's answer
    h = len(s) // 2
    return float(s[h]) if len(s) % 2 else (s[h - 1] + s[h]) / 2.0


def _mean(xs: list[float]) -> float:
    """``float(np.mean(xs))`` of a non-empty list, the same value, without numpy's per-call overhead for the
    few values of a small file: numpy adds fewer than 8 values left to right (the base case of its pairwise
    sum) and divides the sum by the count. Only for positive values (where starting the sum from 0.0 or
    from the first value is the same); a zero, a negative value or a NaN takes numpy's own path."""
    n = len(xs)
    if n < 8 and all(x > 0 for x in xs):
        total = 0.0
        for x in xs:
            total += x
        return float(total / n)
    return float(np.mean(xs))


def _spread(values: list[Any]) -> dict[str, float | int] | None:
    """Median, range and count of a per-module figure (modules where it is known), or None."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    return {"n": len(xs), "median": cast(float, _median(xs)), "min": min(xs), "max": max(xs)}


def _counts(values: list[str]) -> dict[str, int]:
    """``dict(sorted(Counter(values).items()))``, without a Counter."""
    c: dict[str, int] = {}
    for v in values:
        c[v] = c.get(v, 0) + 1
    return dict(sorted(c.items())) if len(c) > 1 else c


_LORA_FAMILY_FORMS = frozenset({"lora", "loha", "lokr", "glora"})


def summarise(mods: list[ModuleStats]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-file totals and the profile by component and block. (The sums run over the modules in order,
    as ``sum`` of the same sequences did: the same values bit for bit.)"""
    ok = [m for m in mods if m.fro is not None]
    energy = sum([m.fro**2 for m in ok if m.fro is not None])
    effs = [m.eff_rank_energy for m in ok if m.eff_rank_energy is not None]
    # rank use: effective rank over the largest rank the form can reach (≤ 1 by construction)
    uses = [m.eff_rank_energy / m.max_rank for m in ok if m.eff_rank_energy is not None and m.max_rank]
    # totals over the modules whose rank90 and rank99 are both known, with the reachable ranks of the same
    known = [m for m in ok if m.rank90 is not None and m.rank99 is not None and m.max_rank is not None]
    errors = [m.sv_error for m in mods if m.sv_error is not None]
    family = _LORA_FAMILY_FORMS
    ranks = sorted({m.rank for m in mods if m.rank is not None and m.form in family})
    alphas = sorted({m.alpha for m in mods if m.alpha is not None})
    spectrals = [m.spectral for m in ok if m.spectral is not None]
    sketches = [m.extra["sketch"] for m in ok if m.extra and "sketch" in m.extra]
    summary: dict[str, Any] = {
        "n_modules": len(mods),
        "forms": _counts([m.form for m in mods]),
        "conventions": _counts([m.convention for m in mods]),
        "components": _counts([m.component for m in mods]),
        "ranks": ranks[:32],
        "alphas": alphas[:32],
        "total_fro": math.sqrt(energy),
        "max_spectral": max(spectrals) if spectrals else None,
        "mean_eff_rank": _mean(effs) if effs else None,
        "median_eff_rank": _median(effs),
        "mean_rank_use": _mean(uses) if uses else None,
        "sum_rank90": sum([m.rank90 for m in known if m.rank90 is not None]),
        "sum_rank99": sum([m.rank99 for m in known if m.rank99 is not None]),
        "sum_max_rank": sum([m.max_rank for m in known if m.max_rank is not None]),
        "rank_modules": len(known),
        "sum_rank": sum([m.rank for m in ok if m.rank is not None and m.form in family]),
        "per_module": {
            "rank": _spread([m.rank for m in ok]),
            "max_rank": _spread([m.max_rank for m in ok]),
            "eff_rank_energy": _spread(effs),
            "rank90": _spread([m.rank90 for m in ok]),
            "rank99": _spread([m.rank99 for m in ok]),
            # sketched modules: the certain bounds of their rank90 / rank99 ([lo, hi] in extra["sketch"])
            **{
                f"{name}_{end}": _spread([sk[name][i] for sk in sketches]) if sketches else None
                for name in ("rank90", "rank99") for i, end in ((0, "lo"), (1, "hi"))
            },
        },
        "max_sv_error": max(errors) if errors else None,
        "dora": sum([1 for m in mods if m.extra and "dora" in m.extra]),
        "nonfinite_modules": sum([1 for m in mods if m.nonfinite]),
        "zero_modules": sum([1 for m in ok if m.fro == 0.0]),
        "failed_modules": sum([1 for m in mods if m.error]),
        "approximate_modules": sum([1 for m in mods if not m.exact]),
    }
    groups: dict[tuple[str, str], list[ModuleStats]] = {}
    for m in mods:
        groups.setdefault((m.component, "(all)"), []).append(m)
        groups.setdefault((m.component, m.block or "(other)"), []).append(m)
    profile = []
    for (comp, block), ms in groups.items():
        good = [m for m in ms if m.fro is not None]
        e = sum([m.fro**2 for m in good if m.fro is not None])
        eff = [m.eff_rank_energy for m in good if m.eff_rank_energy is not None]
        spec = [m.spectral for m in good if m.spectral is not None]
        profile.append(
            {
                "component": comp,
                "block": block,
                "n_modules": len(ms),
                "fro": math.sqrt(e),
                "energy_share": e / energy if energy > 0 else None,
                "mean_eff_rank": _mean(eff) if eff else None,
                "max_spectral": max(spec) if spec else None,
            }
        )
    profile.sort(key=lambda p: (str(p["component"]), p["block"] != "(all)", _block_key(str(p["block"]))))
    return summary, profile


_BLOCK_ORDER = {k: i for i, k in enumerate(
    ["input", "down", "middle", "mid", "output", "up", "joint", "double", "single", "layer", "block"]
)}


def _block_key(block: str) -> tuple[int, str, int]:
    kind, _, idx = block.partition(".")
    return (_BLOCK_ORDER.get(kind, 99), kind, int(idx) if idx.isdigit() else -1)


def lora_report(
    grouping: ModuleGrouping,
    load: Loader,
    metadata: Mapping[str, str] | None = None,
    dtypes: Mapping[str, str] | None = None,
    shapes: Mapping[str, tuple[int, ...] | list[int]] | None = None,
    load_into: Callable[[str, np.ndarray], None] | None = None,
    load_scalar: Callable[[str], float] | None = None,
    stacked: tuple[list[tuple[int, AdapterModule, tuple[int, int, int]]], dict[int, ModuleStats], list[int]] | None = None,
    load_codes: Callable[[str, np.ndarray], bool] | None = None,
) -> LoraReport:
    """Statistics of every module of an adapter file, its summary, profile and findings. ``shapes``
    (tensor name -> shape, from the file's header) lets plain LoRA modules go into their shape group's
    stack without a first read; without it the shapes come from ``load``. ``load_into(name, out)``, when
    given with ``shapes``, decodes a tensor straight into a float64 slot of its stack
    (:func:`registry.files.dtypes.decode_into`). ``load_scalar(name)``, when given with ``shapes``, reads a
    plain LoRA module's alpha as one float: ``float(load(name))`` for a one-element tensor, NaN for any other
    (what the stacked path does with ``load`` otherwise). ``stacked``: what :func:`stacked_lora_files`
    computed for this file's plain modules (with ``shapes``), instead of computing it here. ``load_codes(name,
    out)``, with ``load_into``: when the tensor is a plain F16 tensor of ``out.size`` elements, copies its codes
    into the int32 array ``out`` sign-extended (``np.copyto(out, codes.view("<i2"))``) and returns True, else
    returns False (the tensor is then decoded by ``load_into``); the stacked path widens a chunk's codes at
    once (:func:`_widen_f16_codes`), the same values."""
    cfg = peft_config_from_metadata(metadata)
    arrays: dict[str, np.ndarray] = {}  # (callers without shapes: the arrays read to learn them)
    if shapes is None:

        def shape_of(name: str) -> tuple[int, ...] | None:
            try:
                arrays[name] = np.asarray(load(name))
            except Exception:  # noqa: BLE001 - the module-by-module path reports it
                return None
            return tuple(arrays[name].shape)
    else:
        known = shapes

        def shape_of(name: str) -> tuple[int, ...] | None:
            s = known.get(name)
            return tuple(s) if s is not None else None

    def cached(name: str) -> np.ndarray:
        return arrays[name] if name in arrays else load(name)

    with single_threaded_blas():
        if stacked is not None and shapes is not None:
            plain, done, redo = stacked
        else:
            plain = [(i, mod, sh) for i, mod in enumerate(grouping.modules) if (sh := _plain_shape(mod, shape_of)) is not None]
            done, redo = _stacked_lora(
                plain, cached, cfg, dtypes, *((load_into, load_scalar, load_codes) if shapes is not None else (None, None, None))
            )
        rest = set(redo) | (set(range(len(grouping.modules))) - {i for i, _, _ in plain})
        batch: list[_Deferred] = []
        slow: dict[int, Any] = {}
        # (sketched LoHa modules run on the runner's threads while the next modules are read)
        with SketchRunner() as sketches:
            for i in sorted(rest):
                slow[i] = module_stats(grouping.modules[i], load, cfg, dtypes, batch, sketches)
        run_batch(batch)
        mods = [done[i] if i in done else slow[i] for i in range(len(grouping.modules))]
    summary, profile = summarise(mods)
    summary["incomplete_modules"] = len(grouping.incomplete)
    summary["unassigned_tensors"] = len(grouping.unassigned)
    found: list[Finding] = []
    bad = [m for m in mods if m.nonfinite]
    if bad:
        found.append(
            finding(
                R_NONFINITE.id,
                f"{len(bad)} of {len(mods)} modules hold NaN or Inf values "
                f"({sum(m.nonfinite for m in bad):,} values; first: {bad[0].key})",
                modules=[m.key for m in bad[:20]],
                values=sum(m.nonfinite for m in bad),
            )
        )
    zero = [m for m in mods if m.fro == 0.0]
    if zero:
        found.append(
            finding(
                R_ZERO.id,
                f"{len(zero)} of {len(mods)} modules have an all-zero update (first: {zero[0].key})",
                modules=[m.key for m in zero[:20]],
                count=len(zero),
            )
        )
    if grouping.incomplete:
        first = next(iter(grouping.incomplete.items()))
        found.append(
            finding(
                R_INCOMPLETE.id,
                f"{len(grouping.incomplete)} adapter keys have tensors that make no whole module "
                f"(first: {first[0]} with only {', '.join(first[1])})",
                keys=dict(list(grouping.incomplete.items())[:20]),
            )
        )
    failed = [m for m in mods if m.error]
    if failed:
        found.append(
            finding(
                R_MODULE_FAILED.id,
                f"{len(failed)} module{'' if len(failed) == 1 else 's'} could not be analysed (first: {failed[0].key}: {failed[0].error})",
                modules={m.key: m.error for m in failed[:20]},
            )
        )
    return LoraReport(mods, summary, profile, found)
