"""Probe metrics on synthetic embeddings with values known in closed form (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from registry.probe.metrics import (
    MetricSettings,
    ProbeData,
    bootstrap,
    compute_metrics,
    cross_prompt_mean,
    find,
    largest_clique,
    pairwise_tiled,
    prompt_gram,
    seed_collapse,
    tiled_distance,
    vendi_from_gram,
    vendi_score,
)
from registry.probe.summary import THRESHOLDS, summarize


def test_vendi_identical_is_one() -> None:
    x = np.tile(np.array([[0.3, -1.2, 2.0, 0.5]]), (7, 1))
    assert vendi_score(x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_vendi_orthogonal_is_n(n: int) -> None:
    x = np.eye(n, 32) * 3.0  # orthogonal rows of any length
    assert vendi_score(x) == pytest.approx(n, rel=1e-9)


def test_vendi_two_clusters_and_weights() -> None:
    # k copies of e1 and k copies of e2: two equal eigenvalues 1/2 → Vendi 2
    x = np.vstack([np.tile([1.0, 0, 0], (4, 1)), np.tile([0, 1.0, 0], (4, 1))])
    assert vendi_score(x) == pytest.approx(2.0, rel=1e-9)
    # weights 3:1 between the two orthogonal items → exp(H(3/4, 1/4))
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert vendi_score(np.eye(2), np.array([3.0, 1.0])) == pytest.approx(math.exp(h), rel=1e-9)
    # zero weight drops an item
    assert vendi_score(np.eye(3), np.array([1.0, 1.0, 0.0])) == pytest.approx(2.0, rel=1e-9)
    # the Gram form used by the bootstrap agrees with the direct one
    rng = np.random.default_rng(0)
    y = rng.normal(size=(9, 30))
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    w = np.array([0, 1, 2, 0, 1, 1, 3, 0, 1], dtype=float)
    assert vendi_from_gram(yn @ yn.T, w) == pytest.approx(vendi_score(y, w), rel=1e-9)


def test_vendi_two_vectors_at_angle() -> None:
    # K = [[1, c], [c, 1]] / 2 has eigenvalues (1 ± c) / 2
    c = 0.6
    x = np.array([[1.0, 0.0], [c, math.sqrt(1 - c * c)]])
    lam = np.array([(1 + c) / 2, (1 - c) / 2])
    assert vendi_score(x) == pytest.approx(math.exp(-(lam * np.log(lam)).sum()), rel=1e-9)
    # the n > D branch (covariance) agrees with the n ≤ D branch (Gram)
    rng = np.random.default_rng(3)
    y = rng.normal(size=(20, 4))
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    lam2 = np.linalg.eigvalsh(yn @ yn.T / 20)
    lam2 = lam2[lam2 > 1e-15]
    assert vendi_score(y) == pytest.approx(math.exp(-(lam2 * np.log(lam2)).sum()), rel=1e-9)


def test_cross_prompt_mean_closed_form() -> None:
    # 3 prompts × 2 seeds; prompt p's samples are all e_p except prompt 2 = (e0 + e1)/√2
    e = np.zeros((3, 2, 3))
    e[0, :, 0] = 1
    e[1, :, 1] = 1
    e[2, :, :2] = 1 / math.sqrt(2)
    g = prompt_gram(e)
    # pairs: (0,1) 0, (0,2) 1/√2, (1,2) 1/√2 → mean over ordered pairs = (2·0 + 4/√2) / 6
    assert cross_prompt_mean(g, np.ones(3)) == pytest.approx((4 / math.sqrt(2)) / 6)
    # a resample that drew prompt 0 twice and prompt 1 once: copies of one prompt are not "different"
    assert cross_prompt_mean(g, np.array([2.0, 1.0, 0.0])) == pytest.approx(0.0)
    assert math.isnan(cross_prompt_mean(g, np.array([3.0, 0.0, 0.0])))


def test_bootstrap_deterministic_and_degenerate() -> None:
    v = np.array([1.0, 2.0, 3.0, 4.0, 10.0])

    def mean(w: np.ndarray) -> list[float]:
        return [float((w * v).sum() / w.sum())]

    a = bootstrap(mean, 5, n_boot=500, seed=1)
    b = bootstrap(mean, 5, n_boot=500, seed=1)
    assert a == b
    value, lo, hi = a[0]
    assert value == pytest.approx(4.0)
    assert 1.0 <= lo < value < hi <= 10.0
    const = bootstrap(lambda w: [2.5], 4, n_boot=50)
    assert const == [(2.5, 2.5, 2.5)]
    one = bootstrap(lambda w: [7.0 * w[0]], 1, n_boot=50)  # one unit: a value but no interval
    assert one[0][0] == 7.0 and math.isnan(one[0][1]) and math.isnan(one[0][2])


def test_tiled_distance() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    assert tiled_distance(a, a) == 0.0
    b = a.copy()
    b[:2, :2] = 255  # one whole tile of a 4×4 grid differs fully
    assert tiled_distance(a, b) == pytest.approx(1.0)
    c = a.copy()
    c[0, 0] = 255  # one pixel of a 2×2 tile: RMS = sqrt(1/4)
    assert tiled_distance(a, c) == pytest.approx(0.5)
    m = pairwise_tiled([a, b, c])
    assert m.shape == (3, 3) and m[0, 1] == m[1, 0] == pytest.approx(1.0) and m[0, 0] == 0


def test_largest_clique() -> None:
    adj = np.zeros((6, 6), bool)
    for i, j in [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5)]:
        adj[i, j] = adj[j, i] = True
    assert largest_clique(adj) == 3
    assert largest_clique(np.zeros((4, 4), bool)) == 1
    full = np.ones((5, 5), bool)
    assert largest_clique(full) == 5


def test_seed_collapse() -> None:
    e = np.array([[1.0, 0, 0], [1.0, 0.01, 0], [0, 1.0, 0], [1.0, 0, 0.02]])
    close = np.zeros((4, 4))
    rate, group = seed_collapse(e, close, cos_threshold=0.9, pixel_threshold=0.1)
    assert rate == pytest.approx(3 / 6) and group == 3
    far = np.full((4, 4), 0.5)
    assert seed_collapse(e, far, 0.9, 0.1) == (0.0, 1)


def _synthetic(concentrated: bool, n_prompts: int = 12, n_seeds: int = 4, dim: int = 64, seed: int = 0) -> ProbeData:
    rng = np.random.default_rng(seed)
    off = rng.normal(size=(n_prompts, n_seeds, dim))
    subject = rng.normal(size=dim) * 3
    on = off * 0.3 + subject if concentrated else rng.normal(size=(n_prompts, n_seeds, dim))
    tiles_off = np.full((n_prompts, n_seeds, n_seeds), 0.4)
    tiles_on = np.full((n_prompts, n_seeds, n_seeds), 0.05 if concentrated else 0.4)
    text = rng.normal(size=(n_prompts, dim))
    return ProbeData(
        prompt_ids=[f"p{i}" for i in range(n_prompts)],
        categories=["people"] * (n_prompts // 2) + ["objects"] * (n_prompts - n_prompts // 2),
        is_auto=[False] * n_prompts,
        pairs={},
        emb={"off": off, "on": on},
        tile_dist={"off": tiles_off, "on": tiles_on},
        text=text,
        reference=subject[None, :],
        cond_noise={"off": np.full((n_prompts, n_seeds), 1.0), "on": np.full((n_prompts, n_seeds), 2.0 if concentrated else 1.0)},
    )


def test_compute_metrics_separates_concentrated_from_varied() -> None:
    s = MetricSettings(n_boot=200)
    conc = compute_metrics(_synthetic(True), s)
    var = compute_metrics(_synthetic(False), s)
    c1 = find(conc, "concentration", "all", "collapse")
    c2 = find(var, "concentration", "all", "collapse")
    assert c1 is not None and c2 is not None
    assert c1.lo is not None and c2.hi is not None and c1.lo > c2.hi
    assert c1.value is not None and c1.value > 0.8
    v1 = find(conc, "vendi", "all", "ratio")
    assert v1 is not None and v1.value is not None and v1.value < 0.5
    dup = find(conc, "seed_dup_rate", "all", "on")
    assert dup is not None and dup.value == pytest.approx(1.0)
    assert find(var, "seed_dup_rate", "all", "on").value == pytest.approx(0.0)  # type: ignore[union-attr]
    noise = find(conc, "cond_noise", "all", "ratio")
    assert noise is not None and noise.value == pytest.approx(2.0)
    ref = find(conc, "reference_mean", "all", "delta")
    assert ref is not None and ref.lo is not None and ref.lo > 0.5
    # per-category groups exist with their own prompt counts
    people = find(conc, "concentration", "people", "on")
    assert people is not None and people.n == 6
    text = summarize(conc, {"trigger": "no trigger words known"})
    assert text[0].startswith("Strong concentration")
    assert any(t.startswith("Diversity collapses") for t in text)
    assert any(t.startswith("Memorisation signature") for t in text)
    assert any("Conditional-noise magnitude rises" in t for t in text)
    assert text[-1] == "Not measured: trigger (no trigger words known)."
    assert summarize(var)[0].startswith("No measurable concentration")


def test_trigger_pairs() -> None:
    d = _synthetic(False, n_prompts=6)
    rng = np.random.default_rng(5)
    subject = rng.normal(size=64) * 3
    on = d.emb["on"].copy()
    on[3:] = on[3:] * 0.2 + subject  # prompts 3..5 carry the trigger and collapse
    d.emb["on"] = on
    d.is_auto = [False, False, False, True, True, True]
    d.categories = ["people"] * 3 + ["trigger"] * 3
    d.pairs = {3: 0, 4: 1, 5: 2}
    ms = compute_metrics(d, MetricSettings(n_boot=200))
    delta = find(ms, "concentration", "trigger-dependence", "delta")
    assert delta is not None and delta.lo is not None and delta.lo > THRESHOLDS["trigger_delta"]
    # the "all" group leaves automatic prompts out
    assert find(ms, "concentration", "all", "on").n == 3  # type: ignore[union-attr]
    assert any(t.startswith("The effect depends on the trigger words") for t in summarize(ms))
