"""Probe metrics on synthetic embeddings with values known in closed form (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.probe.metrics import (
    Metric,
    MetricSettings,
    ProbeData,
    attraction,
    bootstrap,
    bootstrap2,
    compute_metrics,
    find,
    largest_clique,
    normalize,
    pairwise_tiled,
    prompt_dependence,
    same_prompt_distances,
    same_seed_distances,
    seed_collapse,
    seed_dependence,
    tiled_distance,
    vendi_from_gram,
    vendi_score,
)
from registry.probe.summary import THRESHOLDS, fmt_interval, summarize


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


def test_seed_paired_figures_closed_form() -> None:
    # 3 prompts × 2 seeds; at seed 0 prompts 0 and 1 give the same sample, prompt 2 an orthogonal one;
    # at seed 1 all three prompts give one sample
    e = np.zeros((3, 2, 4))
    e[0, 0, 0] = e[1, 0, 0] = 1.0
    e[2, 0, 1] = 1.0
    e[:, 1, 2] = 2.0  # unnormalised on purpose
    d = same_seed_distances(e)
    assert d.shape == (2, 3, 3)
    # seed 0: pairs (0,1) 0, (0,2) 1, (1,2) 1; seed 1: all 0 → mean over 2 seeds × 6 ordered pairs
    assert prompt_dependence(d, np.ones(3), np.ones(2)) == pytest.approx(4 / 12)
    # seed 1 alone: no prompt dependence at all, exactly
    assert prompt_dependence(d, np.ones(3), np.array([0.0, 2.0])) == 0.0
    # a resample that drew prompt 0 twice and prompt 1 once: copies of one prompt are not "different"
    assert prompt_dependence(d, np.array([2.0, 1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert math.isnan(prompt_dependence(d, np.array([3.0, 0.0, 0.0]), np.ones(2)))
    # seed dependence: prompts 0 and 1 change from e0 to e2 (distance 1), prompt 2 from e1 to e2 (1)
    assert seed_dependence(same_prompt_distances(e), np.ones(3), np.ones(2)) == pytest.approx(1.0)
    assert math.isnan(seed_dependence(same_prompt_distances(e), np.ones(3), np.array([2.0, 0.0])))
    # attraction: pairs that differ in prompt and seed: every one is e0/e1 against e2 → cosine 0
    assert attraction(normalize(e), np.ones(3), np.ones(2)) == pytest.approx(0.0)


def _brute(e: np.ndarray, wp: np.ndarray, ws: np.ndarray) -> tuple[float, float, float]:
    """Prompt dependence, seed dependence and attraction by explicit loops over every pair of cells."""
    en = normalize(e)
    p_, s_ = e.shape[:2]
    num = np.zeros(3)
    den = np.zeros(3)
    for p in range(p_):
        for q in range(p_):
            for s in range(s_):
                for t in range(s_):
                    cos = float(en[p, s] @ en[q, t])
                    if p != q and s == t:
                        num[0] += wp[p] * wp[q] * ws[s] * (1 - cos)
                        den[0] += wp[p] * wp[q] * ws[s]
                    if p == q and s != t:
                        num[1] += wp[p] * ws[s] * ws[t] * (1 - cos)
                        den[1] += wp[p] * ws[s] * ws[t]
                    if p != q and s != t:
                        num[2] += wp[p] * wp[q] * ws[s] * ws[t] * cos
                        den[2] += wp[p] * wp[q] * ws[s] * ws[t]
    pd, sd, at = (num / np.where(den > 0, den, np.nan)).tolist()
    return pd, sd, at


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5), st.integers(2, 4), st.integers(0, 2**31 - 1))
def test_seed_paired_figures_match_explicit_pairs(n_p: int, n_s: int, seed: int) -> None:
    """The vectorised figures (and the inclusion–exclusion form of attraction) agree with explicit loops
    over pairs of cells, for unit weights (the point estimate)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n_p, n_s, 6))
    wp, ws = np.ones(n_p), np.ones(n_s)
    pd, sd, at = _brute(e, wp, ws)
    assert prompt_dependence(same_seed_distances(e), wp, ws) == pytest.approx(pd, abs=1e-12)
    assert seed_dependence(same_prompt_distances(e), wp, ws) == pytest.approx(sd, abs=1e-12)
    assert attraction(normalize(e), wp, ws) == pytest.approx(at, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.integers(2, 3), st.integers(0, 2**31 - 1))
def test_resample_weights_equal_duplicated_units(n_p: int, n_s: int, seed: int) -> None:
    """A bootstrap weight of k for a prompt (or seed) is the same as k copies of it that are *not*
    different prompts (seeds) of one another: check against the figures of an explicitly duplicated
    design, where copies are told apart by an id."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n_p, n_s, 5))
    wp = rng.integers(0, 3, n_p).astype(float)
    ws = rng.integers(0, 3, n_s).astype(float)
    pid = np.repeat(np.arange(n_p), wp.astype(int))
    sid = np.repeat(np.arange(n_s), ws.astype(int))
    big = e[pid][:, sid]
    en = normalize(big)
    num, den = np.zeros(3), np.zeros(3)
    for i in range(len(pid)):
        for j in range(len(pid)):
            for k in range(len(sid)):
                for m in range(len(sid)):
                    cos = float(en[i, k] @ en[j, m])
                    dp, ds = pid[i] != pid[j], sid[k] != sid[m]
                    if dp and k == m:
                        num[0] += 1 - cos
                        den[0] += 1
                    if i == j and ds:
                        num[1] += 1 - cos
                        den[1] += 1
                    if dp and ds:
                        num[2] += cos
                        den[2] += 1
    got = (prompt_dependence(same_seed_distances(e), wp, ws),
           seed_dependence(same_prompt_distances(e), wp, ws),
           attraction(normalize(e), wp, ws))
    want = [n / d if d else float("nan") for n, d in zip(num, den, strict=True)]
    for g, w in zip(got, want, strict=True):
        if math.isnan(w):
            assert math.isnan(g)
        else:
            assert g == pytest.approx(w, abs=1e-9)


def test_bootstrap2_deterministic_and_degenerate() -> None:
    x = np.arange(12, dtype=float).reshape(4, 3)

    def mean(wp: np.ndarray, ws: np.ndarray) -> list[float]:
        return [float(wp @ x @ ws / (wp.sum() * ws.sum()))]

    a = bootstrap2(mean, 4, 3, n_boot=300, seed=2)
    assert a == bootstrap2(mean, 4, 3, n_boot=300, seed=2)
    v, lo, hi = a[0]
    assert v == pytest.approx(5.5) and 0 <= lo < v < hi <= 11
    assert bootstrap2(lambda wp, ws: [1.5], 3, 2, n_boot=20) == [(1.5, 1.5, 1.5)]
    one = bootstrap2(lambda wp, ws: [7.0 * wp[0] * ws[0]], 1, 1, n_boot=20)
    assert one[0][0] == 7.0 and math.isnan(one[0][1]) and math.isnan(one[0][2])


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


def test_intervals_are_rounded_outward() -> None:
    assert fmt_interval(0.98, 0.975, 0.995) == "0.98 [0.97, 1.00]"
    # under a claim "below 1", the upper bound gets the digits it needs to show it
    assert fmt_interval(0.98, 0.975, 0.995, below=1.0) == "0.980 [0.975, 0.995]"
    assert fmt_interval(0.0021, 0.0004, 0.004, above=0.0) == "0.0021 [0.0004, 0.0040]"
    assert fmt_interval(0.29, 0.29, 0.29) == "0.29 [0.29, 0.29]"  # exact decimals stay exact
    assert fmt_interval(-0.0001, -0.0045, 0.0033) == "0.00 [-0.01, 0.01]"  # no "-0.00"
    assert fmt_interval(0.5, None, None) == "0.50" and fmt_interval(None, 0.1, 0.2) == "n/a"
    assert fmt_interval(0.5, 0.4, 0.6, digits=1) == "0.5 [0.4, 0.6]"


def _m(name: str, arm: str, v: float, lo: float, hi: float, group: str = "all") -> Metric:
    return Metric(name, group, arm, v, lo, hi, 10)


def test_issue_examples_no_zero_collapse_beside_slight() -> None:
    ms = [_m("concentration", "collapse", 0.0012, 0.0003, 0.0021),
          _m("prompt_dependence", "ratio", 0.9988, 0.9979, 0.9997),
          _m("attraction", "gain", 0.0, -0.01, 0.01)]
    head = summarize(ms)[0]
    assert head.startswith("Slight concentration")
    assert "collapse 0.0012 [0.0003, 0.0021]" in head and "on/off 0.9988 [0.9979, 0.9997]" in head
    assert "0.00 [0.00, 0.00]" not in head


bound = st.floats(-0.2, 1.2, allow_nan=False)


@st.composite
def metric_sets(draw: st.DrawFn) -> list[Metric]:
    ms = []
    for name, arm in (("concentration", "collapse"), ("attraction", "gain"), ("seed_dependence", "ratio"),
                      ("vendi", "ratio"), ("fidelity", "delta"), ("cond_noise", "ratio"), ("seed_dup_rate", "on"),
                      ("seed_dup_rate", "delta"), ("reference_mean", "delta")):
        if draw(st.booleans()):
            a, b = sorted((draw(bound), draw(bound)))
            ms.append(_m(name, arm, (a + b) / 2, a, b))
            if name == "concentration":
                ms.append(_m("prompt_dependence", "ratio", 1 - (a + b) / 2, 1 - b, 1 - a))
    return ms


@settings(max_examples=300, deadline=None)
@given(metric_sets())
def test_headline_never_contradicts_the_lines_below(ms: list[Metric]) -> None:
    text = summarize(ms)
    if not text:
        return
    head, rest = text[0], text[1:]
    col = find(ms, "concentration", "all", "collapse")
    if col is None:
        assert not head.startswith(("No measurable", "Slight", "Moderate", "Strong"))
        return
    if head.startswith("No measurable"):
        assert not any("overrides prompts" in t for t in rest)
        effects = [t for t in rest if t.startswith(("Seeds of one prompt give much", "Diversity collapses", "Diversity falls (",
                                                    "Memorisation signature", "Prompt fidelity drops",
                                                    "Conditional-noise magnitude falls", "Conditional-noise magnitude rises",
                                                    "Samples come closer"))]
        assert bool(effects) == ("other figures below show an effect" in head)
    else:
        # the figure that decided is printed with a bound that shows the claim
        import re

        gain = find(ms, "attraction", "all", "gain")
        nums = re.findall(r"collapse (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]", head)
        gnums = re.findall(r"attraction gain (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]", head)
        shown_lo = max(float(nums[0][1]), float(gnums[0][1]) if gnums and gain is not None else -1.0)
        floor = {"Slight": 0.0, "Moderate": min(THRESHOLDS["collapse_moderate"], THRESHOLDS["attraction_moderate"]),
                 "Strong": min(THRESHOLDS["collapse_strong"], THRESHOLDS["attraction_strong"])}[head.split()[0]]
        assert shown_lo > floor, head
