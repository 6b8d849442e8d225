"""The probe's figures, from embeddings and pixel distances (numpy only; no torch).

Every figure is a mean over prompts (a prompt's samples across seeds are not independent, prompts are
the unit), and every confidence interval is a percentile bootstrap over prompts: a resample draws
prompts with replacement, and on/off figures are always computed on the same resample (paired), so
the interval of a difference is the interval of the difference, not of two separate figures.

Definitions (``../shared/REFERENCE.md`` section 7):

* **cross-prompt concentration**: mean cosine similarity of two samples of *different* prompts
  (all seed pairs). ``collapse = (on − off) / (1 − off)``: 0 = as varied as the base, 1 = every prompt
  gives the same image.
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


@dataclass(frozen=True)
class Metric:
    name: str  # concentration, collapse, vendi, seed_dup_rate, …
    group: str  # "all" (the battery), a category, or "trigger"
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


def prompt_gram(emb: np.ndarray) -> np.ndarray:
    """``G[p, q]`` = mean cosine between the samples of prompt p and of prompt q; ``emb`` is (P, S, D)."""
    e = normalize(emb)
    means = e.mean(axis=1)
    return np.asarray(means @ means.T)


def cross_prompt_mean(gram: np.ndarray, w: np.ndarray) -> float:
    """Mean of ``gram`` over ordered pairs of resampled prompts that are different prompts."""
    tot = w @ gram @ w - (w * w * np.diag(gram)).sum()
    cnt = w.sum() ** 2 - (w * w).sum()
    return float(tot / cnt) if cnt > 0 else float("nan")


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


def compute_metrics(data: ProbeData, settings: MetricSettings = MetricSettings()) -> list[Metric]:
    """Every figure with its interval, for the battery (``all``), each category and trigger pairs."""
    out: list[Metric] = []
    e_on, e_off = normalize(data.emb["on"]), normalize(data.emb["off"])
    n_prompts = len(data.prompt_ids)
    groups: dict[str, list[int]] = {"all": [i for i in range(n_prompts) if not data.is_auto[i]]}
    for i, c in enumerate(data.categories):
        groups.setdefault(c, []).append(i)
    bs = {"n_boot": settings.n_boot, "seed": settings.seed, "level": settings.level}

    # per-prompt figures used by several groups
    dup = {a: np.zeros(n_prompts) for a in ("on", "off")}
    clique = {a: np.zeros(n_prompts) for a in ("on", "off")}
    n_seeds = e_on.shape[1]
    big = max(2, math.ceil(n_seeds / 2))
    for a, e in (("on", e_on), ("off", e_off)):
        for p in range(n_prompts):
            dup[a][p], c = seed_collapse(e[p], data.tile_dist[a][p], settings.cos_threshold, settings.pixel_threshold)
            clique[a][p] = 1.0 if (n_seeds >= 2 and c >= big) else 0.0
    fid: dict[str, np.ndarray] | None = None
    if data.text is not None:
        t = normalize(data.text)
        fid = {a: np.einsum("psd,pd->p", e, t) / n_seeds for a, e in (("on", e_on), ("off", e_off))}
    ref_mean = ref_max = None
    if data.reference is not None and len(data.reference):
        r = normalize(data.reference)
        ref_mean, ref_max = {}, {}
        for a, e in (("on", e_on), ("off", e_off)):
            sims = e @ r.T  # (P, S, R)
            ref_mean[a] = sims.mean(axis=(1, 2))
            ref_max[a] = sims.max(axis=2).mean(axis=1)
    noise = None
    if data.cond_noise is not None:
        noise = {a: np.asarray(data.cond_noise[a], dtype=np.float64).mean(axis=1) for a in ("on", "off")}

    for group, idx in groups.items():
        if not idx:
            continue
        ix = np.asarray(idx)
        n = len(ix)
        g_on, g_off = prompt_gram(e_on[ix]), prompt_gram(e_off[ix])
        if n >= 2:

            def conc(w: np.ndarray, g_on: np.ndarray = g_on, g_off: np.ndarray = g_off) -> list[float]:
                on, off = cross_prompt_mean(g_on, w), cross_prompt_mean(g_off, w)
                return [on, off, on - off, _collapse(on, off)]

            _emit(out, "concentration", group, ["on", "off", "delta", "collapse"], bootstrap(conc, n, **bs), n)

        flat_on = e_on[ix].reshape(n * n_seeds, -1)
        flat_off = e_off[ix].reshape(n * n_seeds, -1)
        k_on, k_off = flat_on @ flat_on.T, flat_off @ flat_off.T

        def vendi(w: np.ndarray, k_on: np.ndarray = k_on, k_off: np.ndarray = k_off) -> list[float]:
            ws = np.repeat(w, n_seeds)
            von, voff = vendi_from_gram(k_on, ws), vendi_from_gram(k_off, ws)
            return [von, voff, _ratio(von, voff)]

        _emit(out, "vendi", group, ["on", "off", "ratio"], bootstrap(vendi, n, **bs), n)

        if group != "all":
            continue
        d_on, d_off, c_on, c_off = dup["on"][ix], dup["off"][ix], clique["on"][ix], clique["off"][ix]

        def seeds(w: np.ndarray) -> list[float]:
            a, b = _wmean(d_on, w), _wmean(d_off, w)
            return [a, b, a - b, _wmean(c_on, w), _wmean(c_off, w)]

        est = bootstrap(seeds, n, **bs)
        _emit(out, "seed_dup_rate", group, ["on", "off", "delta"], est[:3], n)
        _emit(out, "seed_collapsed_prompts", group, ["on", "off"], est[3:], n)

        for name, per in (("fidelity", fid), ("reference_mean", ref_mean), ("reference_max", ref_max)):
            if per is None:
                continue
            pon, poff = per["on"][ix], per["off"][ix]

            def diff(w: np.ndarray, pon: np.ndarray = pon, poff: np.ndarray = poff) -> list[float]:
                a, b = _wmean(pon, w), _wmean(poff, w)
                return [a, b, a - b]

            _emit(out, name, group, ["on", "off", "delta"], bootstrap(diff, n, **bs), n)

        if noise is not None:
            non, noff = noise["on"][ix], noise["off"][ix]

            def ratio(w: np.ndarray) -> list[float]:
                a, b = _wmean(non, w), _wmean(noff, w)
                return [a, b, _ratio(a, b)]

            _emit(out, "cond_noise", group, ["on", "off", "ratio"], bootstrap(ratio, n, **bs), n)

    out.extend(_trigger_metrics(data, e_on, fid, ref_mean, settings))
    return out


def _trigger_metrics(
    data: ProbeData,
    e_on: np.ndarray,
    fid: Mapping[str, np.ndarray] | None,
    ref_mean: Mapping[str, np.ndarray] | None,
    settings: MetricSettings,
) -> list[Metric]:
    """Trigger dependence: the LoRA-on figures of trigger prompts against the same prompts without."""
    out: list[Metric] = []
    if not data.pairs:
        return out
    with_t = np.asarray(sorted(data.pairs))
    without = np.asarray([data.pairs[i] for i in with_t])
    n = len(with_t)
    bs = {"n_boot": settings.n_boot, "seed": settings.seed, "level": settings.level}
    if n >= 2:
        g_with, g_without = prompt_gram(e_on[with_t]), prompt_gram(e_on[without])

        def conc(w: np.ndarray) -> list[float]:
            a, b = cross_prompt_mean(g_with, w), cross_prompt_mean(g_without, w)
            return [a, b, a - b]

        _emit(out, "concentration", "trigger", ["with", "without", "delta"], bootstrap(conc, n, **bs), n)
    for name, per in (("fidelity", fid), ("reference_mean", ref_mean)):
        if per is None:
            continue
        a_, b_ = per["on"][with_t], per["on"][without]

        def diff(w: np.ndarray, a_: np.ndarray = a_, b_: np.ndarray = b_) -> list[float]:
            a, b = _wmean(a_, w), _wmean(b_, w)
            return [a, b, a - b]

        _emit(out, name, "trigger", ["with", "without", "delta"], bootstrap(diff, n, **bs), n)
    return out


def find(metrics: Sequence[Metric], name: str, group: str, arm: str) -> Metric | None:
    for m in metrics:
        if m.name == name and m.group == group and m.arm == arm:
            return m
    return None
