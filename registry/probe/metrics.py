"""The probe's figures, from embeddings and pixel distances (numpy only; no torch).

Confidence intervals are percentile bootstraps. The seed-paired figures resample prompts and seeds
(two-way, :func:`bootstrap2`); Vendi and the per-prompt figures (near-duplicates, fidelity, conditional
noise, reference similarity: means over a prompt's seeds) resample prompts (:func:`bootstrap`). On/off
figures are always computed on the same resample (paired), so the interval of a difference or ratio is
the interval of that difference or ratio, not of two separate figures.

Definitions (``../shared/REFERENCE.md`` section 7). Samples are paired by seed: with per-image
generators, samples of different prompts at the same seed start from the same noise, and a sample with
the LoRA on starts from the same noise as the same prompt and seed with it off. The seed-paired figures
use that design; their intervals come from a two-way bootstrap that resamples prompts *and* seeds as
units (:func:`bootstrap2`). Distances are cosine distances ``1 − cos`` of unit embeddings.

* **prompt dependence** (seed-paired): mean distance between samples of *different prompts at the same
  seed*: how much the image changes when only the prompt changes. ``ratio = on / off``: 1 = the prompt
  matters as much as in the base, 0 = the output no longer depends on the prompt (maximal
  concentration). ``concentration`` is the same measurement as a similarity (``1 − distance``) with
  ``collapse = (on − off) / (1 − off) = 1 − ratio``.
* **seed dependence**: mean distance between samples of *one prompt at different seeds*;
  ``ratio = on / off`` (0 = every seed gives the same image: the memorisation signature).
* **attraction**: mean cosine between samples of different prompts *and* different seeds (cells that
  share neither prompt nor noise). When the LoRA pulls everything toward one common point (one face, one
  character) that the base does not share, it rises: ``gain = (on − off) / (1 − off)``, 0 = no common
  pull, 1 = all samples the same image.
* **Vendi score** (Friedman & Dieng 2023): ``exp(H(λ))``, λ the eigenvalues of ``K/n`` with ``K`` the
  cosine kernel; 1 = all samples identical, n = all orthogonal. A resample's duplicated prompts weight
  their samples (weighted Vendi: the eigenvalues of ``diag(√w) K diag(√w) / Σw``).
* **seed collapse** (Carlini et al. 2023): within one prompt, two seeds are near-duplicates when their
  embeddings' cosine is at least ``cos_threshold`` *and* their tiled pixel distance (the largest RMS
  difference over a grid of tiles, pixels in [0, 1]) is at most ``pixel_threshold``. Per prompt: the
  share of seed pairs that are near-duplicates, and the largest group of mutual near-duplicates.
* **prompt fidelity** (CLIP-T): cosine of a sample's image embedding and its prompt's text embedding.
* **conditional-noise magnitude** (Wen et al. 2024): RMS of ``ε(x_t, prompt) − ε(x_t, ∅)`` over the
  first denoising steps; needs classifier-free guidance.
* **reference similarity** (CLIP-I / DINO as in DreamBooth): mean (and max) cosine of a sample to the
  user's reference images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: default thresholds for seed collapse (calibrated in tests/test_probe_known_answer.py)
COS_THRESHOLD = 0.90
PIXEL_THRESHOLD = 0.12
TILES = 4
#: the group of trigger-dependence figures (LoRA on, trigger prompts against the same prompts without);
#: distinct from the category "trigger" of the trigger prompts themselves (on against off)
TRIGGER_GROUP = "trigger-dependence"


@dataclass(frozen=True)
class Metric:
    name: str  # concentration, collapse, vendi, seed_dup_rate, …
    group: str  # "all" (the battery), a category, or "trigger-dependence"
    arm: str  # on, off, delta, ratio (and for trigger dependence: with, without)
    value: float | None
    lo: float | None
    hi: float | None
    n: int  # prompts (the bootstrap unit)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- primitives -------------------------------------------------------------------------------------


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float64."""
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def vendi_score(x: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Vendi score of the rows of ``x`` under the cosine kernel (rows are normalised here)."""
    x = normalize(np.asarray(x).reshape(len(x), -1))
    if x.shape[0] == 0:
        return float("nan")
    if x.shape[0] > x.shape[1]:  # more samples than dimensions: the D×D form has the same eigenvalues
        w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
        total = w.sum()
        if total <= 0:
            return float("nan")
        xs = x * np.sqrt(np.clip(w, 0, None) / total)[:, None]
        return _entropy_exp(np.linalg.eigvalsh(xs.T @ xs))
    return vendi_from_gram(x @ x.T, weights)


def vendi_from_gram(k: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Vendi score from a cosine Gram matrix ``k`` (unit diagonal) and optional sample weights: the
    eigenvalues of ``diag(√w) K diag(√w) / Σw``. Bootstrap resamples reuse one Gram matrix."""
    n = k.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = w > 0
    if not keep.any():
        return float("nan")
    sw = np.sqrt(w[keep] / w[keep].sum())
    m = k[np.ix_(keep, keep)] * np.outer(sw, sw)
    return _entropy_exp(np.linalg.eigvalsh(m))


def _entropy_exp(lam: np.ndarray) -> float:
    lam = np.clip(lam, 0.0, None)
    s = lam.sum()
    if s <= 0:
        return float("nan")
    lam = lam / s
    lam = lam[lam > 1e-15]
    return float(math.exp(-(lam * np.log(lam)).sum()))


def _distance(cos: np.ndarray) -> np.ndarray:
    """Cosine distance from cosines; round-off below 1e-12 is exactly 0 (identical samples)."""
    d = 1.0 - cos
    d[d < 1e-12] = 0.0
    return d


def same_seed_distances(emb: np.ndarray) -> np.ndarray:
    """``D[s, p, q]`` = cosine distance between prompt p's and prompt q's samples at seed s; ``emb`` is
    (P, S, D). The diagonal (p = q) is 0."""
    e = normalize(emb).transpose(1, 0, 2)  # (S, P, D)
    d = _distance(e @ e.transpose(0, 2, 1))
    idx = np.arange(d.shape[1])
    d[:, idx, idx] = 0.0
    return d


def same_prompt_distances(emb: np.ndarray) -> np.ndarray:
    """``D[p, s, t]`` = cosine distance between prompt p's samples at seeds s and t (diagonal 0)."""
    e = normalize(emb)
    d = _distance(e @ e.transpose(0, 2, 1))
    idx = np.arange(d.shape[1])
    d[:, idx, idx] = 0.0
    return d


def _pairs_weight(w: np.ndarray) -> float:
    """Weight of the ordered pairs of *different* units in a resample with unit counts ``w``."""
    return float(w.sum() ** 2 - (w * w).sum())


def prompt_dependence(d_seed: np.ndarray, wp: np.ndarray, ws: np.ndarray) -> float:
    """Weighted mean of ``D[s, p, q]`` over seeds and ordered pairs of different prompts."""
    den = ws.sum() * _pairs_weight(wp)
    if den <= 0:
        return float("nan")
    m = np.tensordot(ws, d_seed, axes=1)  # (P, P)
    return float(wp @ m @ wp / den)


def seed_dependence(d_prompt: np.ndarray, wp: np.ndarray, ws: np.ndarray) -> float:
    """Weighted mean of ``D[p, s, t]`` over prompts and ordered pairs of different seeds."""
    den = wp.sum() * _pairs_weight(ws)
    if den <= 0:
        return float("nan")
    m = np.tensordot(wp, d_prompt, axes=1)  # (S, S)
    return float(ws @ m @ ws / den)


def attraction(emb: np.ndarray, wp: np.ndarray, ws: np.ndarray, sq_norms: np.ndarray | None = None) -> float:
    """Weighted mean cosine over pairs of samples that differ in prompt *and* seed; ``emb`` is
    unit-normalised (P, S, D). Inclusion–exclusion over weighted sums (all pairs − same prompt − same
    seed + same cell), each a matrix–vector product, so a resample costs O(P·S·D). ``sq_norms``: the
    (P, S) squared norms of ``emb``, when the caller has them (they do not change between resamples)."""
    den = _pairs_weight(wp) * _pairs_weight(ws)
    if den <= 0:
        return float("nan")
    n_p, n_s, d = emb.shape
    by_seed = (wp @ emb.reshape(n_p, n_s * d)).reshape(n_s, d)  # Σ_p w_p e_ps, per seed
    by_prompt = np.einsum("psd,s->pd", emb, ws)  # Σ_s w_s e_ps, per prompt
    total = float(np.square(ws @ by_seed).sum())
    same_s = float((ws * ws) @ np.square(by_seed).sum(axis=1))
    same_p = float((wp * wp) @ np.square(by_prompt).sum(axis=1))
    norms = np.square(emb).sum(axis=2) if sq_norms is None else sq_norms
    same_ps = float((wp * wp) @ norms @ (ws * ws))
    return (total - same_p - same_s + same_ps) / den


def tiled_distance(a: np.ndarray, b: np.ndarray, tiles: int = TILES) -> float:
    """Largest per-tile RMS difference of two images (uint8 or [0, 1] floats), on a tiles×tiles grid."""
    fa = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0)
    fb = b.astype(np.float64) / (255.0 if b.dtype == np.uint8 else 1.0)
    h, w = fa.shape[:2]
    worst = 0.0
    ys = np.linspace(0, h, tiles + 1).astype(int)
    xs = np.linspace(0, w, tiles + 1).astype(int)
    for i in range(tiles):
        for j in range(tiles):
            d = fa[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] - fb[ys[i] : ys[i + 1], xs[j] : xs[j + 1]]
            if d.size:
                worst = max(worst, float(np.sqrt((d * d).mean())))
    return worst


def pairwise_tiled(images: Sequence[np.ndarray] | np.ndarray, tiles: int = TILES) -> np.ndarray:
    """Symmetric matrix of :func:`tiled_distance` between all images of one prompt."""
    n = len(images)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = tiled_distance(images[i], images[j], tiles)
    return out


def largest_clique(adj: np.ndarray) -> int:
    """Size of the largest clique of an undirected graph (Bron–Kerbosch with pivoting)."""
    n = adj.shape[0]
    if n == 0:
        return 0
    nbrs = [set(np.flatnonzero(adj[i]).tolist()) - {i} for i in range(n)]
    best = 1

    def bk(r: int, p: set[int], x: set[int]) -> None:
        nonlocal best
        if not p and not x:
            best = max(best, r)
            return
        if r + len(p) <= best:
            return
        pivot = max(p | x, key=lambda u: len(nbrs[u] & p))
        for v in list(p - nbrs[pivot]):
            bk(r + 1, p & nbrs[v], x & nbrs[v])
            p = p - {v}
            x = x | {v}

    bk(0, set(range(n)), set())
    return best


def seed_collapse(
    emb: np.ndarray, tile_dist: np.ndarray, cos_threshold: float = COS_THRESHOLD, pixel_threshold: float = PIXEL_THRESHOLD
) -> tuple[float, int]:
    """For one prompt: (share of seed pairs that are near-duplicates, largest near-duplicate group)."""
    e = normalize(emb)
    s = e.shape[0]
    if s < 2:
        return float("nan"), s
    cos = e @ e.T
    dup = (cos >= cos_threshold) & (tile_dist <= pixel_threshold)
    np.fill_diagonal(dup, False)
    pairs = s * (s - 1) / 2
    rate = float(np.triu(dup, 1).sum() / pairs)
    return rate, largest_clique(dup)


# -- bootstrap --------------------------------------------------------------------------------------


def bootstrap(
    stat: Callable[[np.ndarray], Sequence[float]],
    n_units: int,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[tuple[float, float, float]]:
    """Percentile bootstrap over units: ``stat(weights)`` returns several figures computed with unit
    weights (resample counts); returns ``(value, lo, hi)`` for each. Deterministic for a given seed."""
    full = np.asarray(stat(np.ones(n_units)), dtype=np.float64)
    if n_units < 2 or n_boot <= 0:
        return [(float(v), float("nan"), float("nan")) for v in full]
    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, full.size))
    for b in range(n_boot):
        w = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units).astype(np.float64)
        reps[b] = stat(w)
    return _percentiles(full, reps, level)


def bootstrap2(
    stat: Callable[[np.ndarray, np.ndarray], Sequence[float]],
    n_prompts: int,
    n_seeds: int,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[tuple[float, float, float]]:
    """Two-way percentile bootstrap for a crossed design: each resample draws prompts and seeds with
    replacement, independently (``stat(prompt_weights, seed_weights)``). Both are random units here: a
    figure should hold for other prompts *and* other seeds. Resamples in which a figure is undefined
    (e.g. one distinct seed, for a figure over pairs of different seeds) are left out of its interval."""
    full = np.asarray(stat(np.ones(n_prompts), np.ones(n_seeds)), dtype=np.float64)
    if (n_prompts < 2 and n_seeds < 2) or n_boot <= 0:
        return [(float(v), float("nan"), float("nan")) for v in full]
    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, full.size))
    for b in range(n_boot):
        wp = np.bincount(rng.integers(0, n_prompts, n_prompts), minlength=n_prompts).astype(np.float64)
        ws = np.bincount(rng.integers(0, n_seeds, n_seeds), minlength=n_seeds).astype(np.float64)
        reps[b] = stat(wp, ws)
    return _percentiles(full, reps, level)


def _percentiles(full: np.ndarray, reps: np.ndarray, level: float) -> list[tuple[float, float, float]]:
    alpha = (1.0 - level) / 2.0
    out = []
    for k, v in enumerate(full):
        col = reps[:, k]
        col = col[np.isfinite(col)]
        if col.size == 0:
            out.append((float(v), float("nan"), float("nan")))
        else:
            lo, hi = np.quantile(col, [alpha, 1.0 - alpha])
            out.append((float(v), float(lo), float(hi)))
    return out


def _wmean(v: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(v)
    tw = w[ok].sum()
    return float((v[ok] * w[ok]).sum() / tw) if tw > 0 else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 and math.isfinite(a) and math.isfinite(b) else float("nan")


def _collapse(on: float, off: float) -> float:
    return (on - off) / (1.0 - off) if off < 1.0 else float("nan")


# -- the figures of one probe -----------------------------------------------------------------------


@dataclass
class ProbeData:
    """Everything the metrics need, prompts in one fixed order.

    ``emb[arm]``: (P, S, D) image embeddings; ``tile_dist[arm]``: (P, S, S) tiled pixel distances;
    ``text``: (P, D) text embeddings of each prompt's fidelity text, or None (embedder without a text
    tower); ``reference``: (R, D) or None; ``cond_noise[arm]``: (P, S) or None (no CFG).
    """

    prompt_ids: list[str]
    categories: list[str]
    is_auto: list[bool]
    pairs: dict[int, int]  # index of a trigger prompt → index of the same prompt without trigger
    emb: dict[str, np.ndarray]
    tile_dist: dict[str, np.ndarray]
    text: np.ndarray | None = None
    reference: np.ndarray | None = None
    cond_noise: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class MetricSettings:
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95
    cos_threshold: float = COS_THRESHOLD
    pixel_threshold: float = PIXEL_THRESHOLD


def _emit(out: list[Metric], name: str, group: str, arms: Sequence[str], est: list[tuple[float, float, float]], n: int) -> None:
    for arm, (v, lo, hi) in zip(arms, est, strict=True):
        out.append(
            Metric(
                name, group, arm,
                None if not math.isfinite(v) else round(v, 6),
                None if not math.isfinite(lo) else round(lo, 6),
                None if not math.isfinite(hi) else round(hi, 6),
                n,
            )
        )


def _boot(stat: Callable[[np.ndarray], Sequence[float]], n: int, s: MetricSettings) -> list[tuple[float, float, float]]:
    return bootstrap(stat, n, n_boot=s.n_boot, seed=s.seed, level=s.level)


def _paired(a: np.ndarray, b: np.ndarray, ratio: bool = False) -> Callable[[np.ndarray], list[float]]:
    """Weighted means of two per-prompt series and their difference (or ratio), for one resample."""

    def stat(w: np.ndarray) -> list[float]:
        x, y = _wmean(a, w), _wmean(b, w)
        return [x, y, _ratio(x, y) if ratio else x - y]

    return stat


def _boot2(stat: Callable[[np.ndarray, np.ndarray], Sequence[float]], n_p: int, n_s: int, s: MetricSettings) -> list[tuple[float, float, float]]:
    return bootstrap2(stat, n_p, n_s, n_boot=s.n_boot, seed=s.seed, level=s.level)


def _seed_paired(d_on: np.ndarray, d_off: np.ndarray) -> Callable[[np.ndarray, np.ndarray], list[float]]:
    """Prompt dependence on, off, on/off; the same as concentration (1 − distance) on, off, delta, collapse."""

    def stat(wp: np.ndarray, ws: np.ndarray) -> list[float]:
        a, b = prompt_dependence(d_on, wp, ws), prompt_dependence(d_off, wp, ws)
        r = _ratio(a, b)
        return [a, b, r, 1.0 - a, 1.0 - b, b - a, 1.0 - r]

    return stat


def _seed_dep(d_on: np.ndarray, d_off: np.ndarray) -> Callable[[np.ndarray, np.ndarray], list[float]]:
    def stat(wp: np.ndarray, ws: np.ndarray) -> list[float]:
        a, b = seed_dependence(d_on, wp, ws), seed_dependence(d_off, wp, ws)
        return [a, b, _ratio(a, b)]

    return stat


def _attraction(e_on: np.ndarray, e_off: np.ndarray) -> Callable[[np.ndarray, np.ndarray], list[float]]:
    n_on, n_off = np.square(e_on).sum(axis=2), np.square(e_off).sum(axis=2)

    def stat(wp: np.ndarray, ws: np.ndarray) -> list[float]:
        a, b = attraction(e_on, wp, ws, n_on), attraction(e_off, wp, ws, n_off)
        return [a, b, a - b, _collapse(a, b)]

    return stat


def _vendi(k_on: np.ndarray, k_off: np.ndarray, n_seeds: int) -> Callable[[np.ndarray], list[float]]:
    def stat(w: np.ndarray) -> list[float]:
        ws = np.repeat(w, n_seeds)
        von, voff = vendi_from_gram(k_on, ws), vendi_from_gram(k_off, ws)
        return [von, voff, _ratio(von, voff)]

    return stat


def compute_metrics(data: ProbeData, settings: MetricSettings = MetricSettings()) -> list[Metric]:
    """Every figure with its interval, for the battery (``all``), each category and trigger pairs."""
    out: list[Metric] = []
    e_on, e_off = normalize(data.emb["on"]), normalize(data.emb["off"])
    n_prompts, n_seeds = e_on.shape[0], e_on.shape[1]
    groups: dict[str, list[int]] = {"all": [i for i in range(n_prompts) if not data.is_auto[i]]}
    for i, cat in enumerate(data.categories):
        groups.setdefault(cat, []).append(i)

    for group, idx in groups.items():
        if not idx:
            continue
        ix = np.asarray(idx)
        n = len(ix)
        if n >= 2:
            est = _boot2(_seed_paired(same_seed_distances(e_on[ix]), same_seed_distances(e_off[ix])), n, n_seeds, settings)
            _emit(out, "prompt_dependence", group, ["on", "off", "ratio"], est[:3], n)
            _emit(out, "concentration", group, ["on", "off", "delta", "collapse"], est[3:], n)
            est = _boot2(_attraction(e_on[ix], e_off[ix]), n, n_seeds, settings)
            _emit(out, "attraction", group, ["on", "off", "delta", "gain"], est, n)
        est = _boot2(_seed_dep(same_prompt_distances(e_on[ix]), same_prompt_distances(e_off[ix])), n, n_seeds, settings)
        _emit(out, "seed_dependence", group, ["on", "off", "ratio"], est, n)
        flat_on, flat_off = e_on[ix].reshape(n * n_seeds, -1), e_off[ix].reshape(n * n_seeds, -1)
        stat = _vendi(flat_on @ flat_on.T, flat_off @ flat_off.T, n_seeds)
        _emit(out, "vendi", group, ["on", "off", "ratio"], _boot(stat, n, settings), n)

    ix = np.asarray(groups["all"], dtype=int)
    n = len(ix)
    if n:
        # seed collapse, per prompt
        big = max(2, math.ceil(n_seeds / 2))
        dup = {a: np.zeros(n) for a in ("on", "off")}
        clique = {a: np.zeros(n) for a in ("on", "off")}
        for a, e in (("on", e_on), ("off", e_off)):
            for k, p in enumerate(ix):
                dup[a][k], size = seed_collapse(
                    e[p], data.tile_dist[a][p], settings.cos_threshold, settings.pixel_threshold
                )
                clique[a][k] = 1.0 if (n_seeds >= 2 and size >= big) else 0.0
        _emit(out, "seed_dup_rate", "all", ["on", "off", "delta"], _boot(_paired(dup["on"], dup["off"]), n, settings), n)
        est = _boot(_paired(clique["on"], clique["off"]), n, settings)
        _emit(out, "seed_collapsed_prompts", "all", ["on", "off"], est[:2], n)
        for name, per in _per_prompt_series(data, e_on, e_off).items():
            stat = _paired(per["on"][ix], per["off"][ix])
            _emit(out, name, "all", ["on", "off", "delta"], _boot(stat, n, settings), n)
        if data.cond_noise is not None:
            non = np.asarray(data.cond_noise["on"], dtype=np.float64).mean(axis=1)[ix]
            noff = np.asarray(data.cond_noise["off"], dtype=np.float64).mean(axis=1)[ix]
            _emit(out, "cond_noise", "all", ["on", "off", "ratio"], _boot(_paired(non, noff, ratio=True), n, settings), n)

    out.extend(_trigger_metrics(data, e_on, _per_prompt_series(data, e_on, e_off), settings))
    return out


def _per_prompt_series(data: ProbeData, e_on: np.ndarray, e_off: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per-prompt means over seeds: prompt fidelity and reference similarity (where available)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    n_seeds = e_on.shape[1]
    if data.text is not None:
        t = normalize(data.text)
        out["fidelity"] = {a: np.einsum("psd,pd->p", e, t) / n_seeds for a, e in (("on", e_on), ("off", e_off))}
    if data.reference is not None and len(data.reference):
        r = normalize(data.reference)
        out["reference_mean"], out["reference_max"] = {}, {}
        for a, e in (("on", e_on), ("off", e_off)):
            sims = e @ r.T  # (P, S, R)
            out["reference_mean"][a] = sims.mean(axis=(1, 2))
            out["reference_max"][a] = sims.max(axis=2).mean(axis=1)
    return out


def _trigger_metrics(
    data: ProbeData, e_on: np.ndarray, series: Mapping[str, Mapping[str, np.ndarray]], settings: MetricSettings
) -> list[Metric]:
    """Trigger dependence: the LoRA-on figures of trigger prompts against the same prompts without."""
    out: list[Metric] = []
    if not data.pairs:
        return out
    with_t = np.asarray(sorted(data.pairs))
    without = np.asarray([data.pairs[i] for i in with_t])
    n = len(with_t)
    if n >= 2:
        d_with, d_without = same_seed_distances(e_on[with_t]), same_seed_distances(e_on[without])
        est = _boot2(_seed_paired(d_with, d_without), n, e_on.shape[1], settings)
        _emit(out, "concentration", TRIGGER_GROUP, ["with", "without", "delta"], est[3:6], n)
    for name in ("fidelity", "reference_mean"):
        if name in series:
            stat = _paired(series[name]["on"][with_t], series[name]["on"][without])
            _emit(out, name, TRIGGER_GROUP, ["with", "without", "delta"], _boot(stat, n, settings), n)
    return out


def find(metrics: Sequence[Metric], name: str, group: str, arm: str) -> Metric | None:
    for m in metrics:
        if m.name == name and m.group == group and m.arm == arm:
            return m
    return None
