"""Every rank figure of every adapter form against a dense SVD of the formed update (property tests),
and the real LoKr files of the shared corpus.

The reference is independent of :mod:`registry.stats`: the update ΔW is formed in float64 from the
random factors, its singular values come from ``numpy.linalg.svd`` and its rank from
``numpy.linalg.matrix_rank``; rank90/rank99 and the effective rank are recomputed here from those
values. Random factors are generic, so the reachable rank of the form is the rank of ΔW.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import stats
from registry.adapters import group_modules
from registry.files.dtypes import decode
from registry.files.safetensors import read_header
from registry.stats import ModuleStats, lora_report

EXACT_RTOL = 1e-6
PROPS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only(tensors: Mapping[str, np.ndarray]) -> ModuleStats:
    g = group_modules(tensors, {k: tuple(v.shape) for k, v in tensors.items()})
    rep = lora_report(g, lambda n: tensors[n])
    assert len(rep.modules) == 1, rep.modules
    return rep.modules[0]


def _rank_rule(sv: np.ndarray, t: float) -> int:
    cum = np.cumsum(sv**2) / np.sum(sv**2)
    return int(np.argmax(cum >= t * t - 1e-15)) + 1


def _check_exact(m: ModuleStats, dense: np.ndarray) -> None:
    """All figures of ``m`` against the dense SVD of ``dense`` (the formed update)."""
    ref = np.linalg.svd(dense, compute_uv=False)
    reach = int(np.linalg.matrix_rank(dense))
    assert m.exact and m.error is None and m.sv_error is None
    assert m.max_rank == reach, (m.form, m.max_rank, reach, dense.shape)
    ref = ref[:reach]
    got = np.asarray(m.sv)
    k = min(got.size, stats.SV_KEEP)
    assert got.size == min(reach, stats.SV_KEEP)
    np.testing.assert_allclose(got[:k], ref[:k], rtol=EXACT_RTOL, atol=1e-9 * ref[0])
    assert m.fro == pytest.approx(float(np.linalg.norm(dense)), rel=EXACT_RTOL)
    assert m.spectral == pytest.approx(float(ref[0]), rel=EXACT_RTOL)
    p = ref**2 / np.sum(ref**2)
    eff = math.exp(-float(np.sum(p * np.log(p))))
    assert m.eff_rank_energy == pytest.approx(eff, rel=EXACT_RTOL)
    assert m.rank90 == _rank_rule(ref, 0.9) and m.rank99 == _rank_rule(ref, 0.99)
    # never above the reachable rank
    assert m.eff_rank_energy is not None and m.eff_rank_rv is not None and m.rank99 is not None and m.rank90 is not None
    assert m.eff_rank_energy <= reach * (1 + 1e-12) and m.eff_rank_rv <= reach * (1 + 1e-12)
    assert m.rank90 <= m.rank99 <= reach and m.n_sv <= reach


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


dims = st.integers(1, 24)


@PROPS
@given(o=dims, i=dims, r=st.integers(1, 12), conv=st.booleans(), seed=st.integers(0, 2**31))
def test_lora_every_figure_matches_a_dense_svd(o: int, i: int, r: int, conv: bool, seed: int) -> None:
    g = _rng(seed)
    k = 3 if conv else 1
    up = g.standard_normal((o, r, 1, 1) if conv else (o, r))
    down = g.standard_normal((r, i, k, k) if conv else (r, i))
    m = _only({"x.lora_up.weight": up, "x.lora_down.weight": down})
    assert (m.form, m.rank) == ("lora", r)
    _check_exact(m, up.reshape(o, r) @ down.reshape(r, -1))


@PROPS
@given(o=st.integers(1, 30), i=st.integers(1, 30), r1=st.integers(1, 6), r2=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_loha_every_figure_matches_a_dense_svd(o: int, i: int, r1: int, r2: int, seed: int) -> None:
    g = _rng(seed)
    w1a, w1b = g.standard_normal((o, r1)), g.standard_normal((r1, i))
    w2a, w2b = g.standard_normal((o, r2)), g.standard_normal((r2, i))
    m = _only({"h.hada_w1_a": w1a, "h.hada_w1_b": w1b, "h.hada_w2_a": w2a, "h.hada_w2_b": w2b})
    assert m.form == "loha" and m.max_rank == min(r1 * r2, o, i)
    _check_exact(m, (w1a @ w1b) * (w2a @ w2b))


@PROPS
@given(
    a=st.integers(1, 6), b=st.integers(1, 6), c=st.integers(1, 12), d=st.integers(1, 12),
    r1=st.one_of(st.none(), st.integers(1, 8)), r2=st.one_of(st.none(), st.integers(1, 8)),
    seed=st.integers(0, 2**31),
)
def test_lokr_every_figure_matches_a_dense_svd(a: int, b: int, c: int, d: int, r1: int | None, r2: int | None, seed: int) -> None:
    g = _rng(seed)
    t: dict[str, np.ndarray] = {}
    if r1 is None:
        w1 = t["k.lokr_w1"] = g.standard_normal((a, b))
    else:
        t["k.lokr_w1_a"], t["k.lokr_w1_b"] = g.standard_normal((a, r1)), g.standard_normal((r1, b))
        w1 = t["k.lokr_w1_a"] @ t["k.lokr_w1_b"]
    if r2 is None:
        w2 = t["k.lokr_w2"] = g.standard_normal((c, d))
    else:
        t["k.lokr_w2_a"], t["k.lokr_w2_b"] = g.standard_normal((c, r2)), g.standard_normal((r2, d))
        w2 = t["k.lokr_w2_a"] @ t["k.lokr_w2_b"]
    m = _only(t)
    rk1 = min(a, b) if r1 is None else min(r1, a, b)
    rk2 = min(c, d) if r2 is None else min(r2, c, d)
    assert m.form == "lokr" and m.max_rank == rk1 * rk2
    _check_exact(m, np.kron(w1, w2))


@PROPS
@given(o=dims, i=dims, seed=st.integers(0, 2**31))
def test_full_diff_every_figure_matches_a_dense_svd(o: int, i: int, seed: int) -> None:
    w = _rng(seed).standard_normal((o, i))
    m = _only({"f.diff": w})
    assert m.form == "diff" and m.max_rank == min(o, i)
    _check_exact(m, w)


def _loha_t(w1a: np.ndarray, w1b: np.ndarray, w2a: np.ndarray, w2b: np.ndarray, name: str = "h") -> dict[str, np.ndarray]:
    return {f"{name}.hada_w1_a": w1a, f"{name}.hada_w1_b": w1b, f"{name}.hada_w2_a": w2a, f"{name}.hada_w2_b": w2b}


def _check_sketch(m: ModuleStats, dense: np.ndarray) -> np.ndarray:
    """Every recorded bound of a sketched module holds against the dense SVD of the formed update."""
    ref = np.linalg.svd(dense, compute_uv=False)
    assert (m.method, m.exact) == ("sketched", False)
    assert m.max_rank is not None and m.max_rank == int(np.linalg.matrix_rank(dense))
    ref = ref[: m.max_rank]
    assert m.fro == pytest.approx(float(np.linalg.norm(dense)), rel=EXACT_RTOL)  # the exact figure
    got = np.asarray(m.sv)
    assert got.size == stats.SV_KEEP
    sk = m.extra["sketch"]
    rho = sk["residual_bound"]
    assert np.all(got <= ref[: got.size] * (1 + 1e-6))  # Rayleigh–Ritz: lower bounds
    assert np.all(ref[: got.size] <= np.sqrt(got**2 + rho**2))  # within the recorded bound
    assert m.sv_error is not None and ref[0] <= got[0] * (1 + m.sv_error)
    assert sk["spectral"][0] <= ref[0] <= sk["spectral"][1]
    topk = float(np.sum(ref[: got.size] ** 2) / np.sum(ref**2))
    assert sk["topk_energy"][0] * (1 - 1e-6) <= topk <= sk["topk_energy"][1] * (1 + 1e-6)
    for key, t in (("rank90", 0.9), ("rank99", 0.99)):
        lo, hi = sk[key]
        assert lo <= _rank_rule(ref, t) <= hi <= m.max_rank, (key, lo, _rank_rule(ref, t), hi)
        assert getattr(m, key) in (None, _rank_rule(ref, t))  # a value only where the bounds meet
    assert m.eff_rank_energy is None and m.eff_rank_rv is None
    return ref


def test_loha_sketch_bounds_hold_on_a_decaying_spectrum() -> None:
    """A LoHa whose exact spectrum costs more than EXACT_FLOPS is sketched: Frobenius exact, every kept
    σ̂ᵢ a lower bound and σᵢ ≤ √(σ̂ᵢ² + ρ²), the rank intervals hold the true ranks, the bound recorded."""
    g = _rng(5)
    o, i, r = 300, 260, 16
    # a decaying spectrum, like a trained update: scale the factor columns
    decay = np.exp(-np.arange(r) / 4.0)
    w1a, w1b = g.standard_normal((o, r)) * decay, g.standard_normal((r, i))
    w2a, w2b = g.standard_normal((o, r)) * decay, g.standard_normal((r, i))
    t = {**_loha_t(w1a, w1b, w2a, w2b), "h.alpha": np.array(8.0)}
    m = _only(t)
    assert m.max_rank == 256
    ref = _check_sketch(m, 0.5 * (w1a @ w1b) * (w2a @ w2b))
    # on a decaying spectrum the leading values are close (well inside the bound), and the leading values
    # already hold 90% of the norm: the upper end of the rank90 interval is found among them
    np.testing.assert_allclose(m.sv[:8], ref[:8], rtol=2e-2)
    assert m.extra["sketch"]["rank90"][1] <= stats.SV_KEEP
    rep = lora_report(group_modules(t), lambda n: t[n])
    assert rep.summary["approximate_modules"] == 1 and rep.summary["max_sv_error"] == rep.modules[0].sv_error


def test_loha_sketch_bound_is_needed_on_a_flat_spectrum() -> None:
    """Random factors give a slowly decaying spectrum of r1·r2 values: 64 leading values from a 72-column
    sketch then miss much of σ1, so a figure reported without its bound (or with a bound taken from the
    sketch's own residual) would be wrong; the recorded certain bound still holds."""
    g = _rng(11)
    o, i, r = 420, 380, 16
    f = [g.standard_normal(s) for s in ((o, r), (r, i), (o, r), (r, i))]
    m = _only(_loha_t(*f))
    ref = _check_sketch(m, (f[0] @ f[1]) * (f[2] @ f[3]))
    got = np.asarray(m.sv)
    assert ref[0] > got[0] * 1.01  # the sketch alone is more than 1% low: the bound matters
    assert np.max(ref[: got.size] / got - 1) > 0.05
    lo, hi = m.extra["sketch"]["rank90"]
    assert lo < hi and m.rank90 is None  # an interval, not a figure


@PROPS
@given(o=st.integers(150, 260), i=st.integers(150, 260), r1=st.integers(10, 14), r2=st.integers(10, 14),
       decay=st.floats(0.0, 0.5), seed=st.integers(0, 2**31))
def test_loha_sketch_bounds_hold_for_random_factors(o: int, i: int, r1: int, r2: int, decay: float, seed: int) -> None:
    g = _rng(seed)
    w1a = g.standard_normal((o, r1)) * np.exp(-decay * np.arange(r1))
    w2a = g.standard_normal((o, r2)) * np.exp(-decay * np.arange(r2))
    w1b, w2b = g.standard_normal((r1, i)), g.standard_normal((r2, i))
    m = _only(_loha_t(w1a, w1b, w2a, w2b))
    if m.method != "sketched":  # the cost model kept it exact: then every figure is exact
        _check_exact(m, (w1a @ w1b) * (w2a @ w2b))
        return
    _check_sketch(m, (w1a @ w1b) * (w2a @ w2b))


def test_loha_sketch_on_threads_equals_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sketched modules run on the runner's threads while the next modules are read (here with a pending
    limit small enough that the reader waits): each gets exactly the figures it gets alone, wide and tall
    modules alike, whatever the thread or the order."""
    monkeypatch.setattr(stats, "SKETCH_PENDING_BYTES", 100_000)
    g = _rng(3)
    t: dict[str, np.ndarray] = {}
    for j in range(6):
        o, i = (300, 280) if j % 2 else (280, 330)
        t.update(_loha_t(*(g.standard_normal(s) for s in ((o, 16), (16, i), (o, 16), (16, i))), name=f"m{j}"))
    for workers in (1, 2, 3):
        monkeypatch.setattr(stats, "SKETCH_WORKERS", workers)
        rep = lora_report(group_modules(t), lambda n: t[n])
        assert len(rep.modules) == 6 and all(m.method == "sketched" for m in rep.modules)
        for m in rep.modules:
            alone = stats.loha_sketch(*(t[f"{m.key}.hada_{w}"] for w in ("w1_a", "w1_b", "w2_a", "w2_b")))
            assert m.sv == [float(x) for x in alone.sv] and m.fro == alone.fro
            assert m.extra["sketch"]["residual_bound"] == alone.residual


def test_loha_sketch_of_a_low_rank_update_captures_it_whole() -> None:
    """An update of rank 12 < ℓ: the sketch's columns are dependent, so the Cholesky basis gives way to the
    eigen-decomposition one (dropping the empty directions); the 12 values are then the exact ones, the
    rest certain zeros, and ρ is rounding only."""
    g = _rng(8)
    f = [g.standard_normal(s) for s in ((400, 3), (3, 350), (400, 4), (4, 350))]
    sk = stats.loha_sketch(*f)
    ref = np.linalg.svd((f[0] @ f[1]) * (f[2] @ f[3]), compute_uv=False)
    assert sk.sv.size == stats.SV_KEEP
    np.testing.assert_allclose(sk.sv[:12], ref[:12], rtol=1e-4)
    assert np.all(sk.sv[12:] <= 1e-5 * ref[0])
    assert sk.residual <= 1e-2 * ref[0]
    assert np.all(ref[: stats.SV_KEEP] <= np.sqrt(sk.sv**2 + sk.residual**2))
    assert sk.fro == pytest.approx(float(np.linalg.norm(ref)), rel=1e-6)


@PROPS
@given(o=st.integers(150, 700), i=st.integers(150, 700), r=st.integers(10, 16), decay=st.floats(0.0, 0.5),
       sample=st.integers(1, 4), block=st.sampled_from([1, 60_000, 200_000]), seed=st.integers(0, 2**31))
def test_loha_sketch_bounds_hold_when_rows_are_projected_as_formed(
    o: int, i: int, r: int, decay: float, sample: int, block: int, seed: int
) -> None:
    """With a co-range sketch of only ``sample`` slabs of ℓ rows (a random sample of the update's rows),
    every other row block is projected as soon as it is formed and never stored: every recorded bound
    still holds against the dense SVD, tall and wide, whatever the block size; the Frobenius norm is the
    one summed over all rows."""
    mp = pytest.MonkeyPatch()
    mp.setattr(stats, "SKETCH_SAMPLE", sample)
    mp.setattr(stats, "SKETCH_BLOCK_BYTES", block)
    try:
        g = _rng(seed)
        w1a = g.standard_normal((o, r)) * np.exp(-decay * np.arange(r))
        w2a = g.standard_normal((o, r)) * np.exp(-decay * np.arange(r))
        w1b, w2b = g.standard_normal((r, i)), g.standard_normal((r, i))
        dense = (w1a @ w1b) * (w2a @ w2b)
        sk = stats.loha_sketch(w1a, w1b, w2a, w2b)
        ref = np.linalg.svd(dense, compute_uv=False)
        k = sk.sv.size
        assert k == stats.SV_KEEP
        assert sk.fro == pytest.approx(float(np.linalg.norm(dense)), rel=1e-6)
        assert np.all(sk.sv <= ref[:k] * (1 + 1e-6))
        assert np.all(ref[:k] <= np.sqrt(sk.sv**2 + sk.residual**2))
        # the same module with the whole update in the sketch: the same norm, its own certain bounds
        mp.setattr(stats, "SKETCH_SAMPLE", 10**6)
        whole = stats.loha_sketch(w1a, w1b, w2a, w2b)
        assert whole.fro == pytest.approx(sk.fro, rel=1e-6)
        assert np.all(ref[:k] <= np.sqrt(whole.sv**2 + whole.residual**2))
    finally:
        mp.undo()


@pytest.mark.parametrize("wide", [False, True])
def test_loha_sketch_sample_holds_the_dominant_rows(wide: bool) -> None:
    """Five rows hold nearly all of the update's energy, each with its own direction: the sample of the
    sketch takes the rows of largest ‖A1ᵢ‖·‖A2ᵢ‖ first, so none is missed (a uniform sample of 1,152 of
    3,000 rows almost always misses some, and σ̂1 was then 17% low); σ̂1 is as close as with every row
    in the sketch, and the bounds hold."""
    g = _rng(30)
    m, n, r = 3000, 300, 12
    f = [g.standard_normal(s) for s in ((m, r), (r, n), (m, r), (r, n))]
    f[0][[7, 400, 1500, 2222, 2999]] *= 300.0
    if wide:
        f = [f[1].T, f[0].T, f[3].T, f[2].T]
    ref = np.linalg.svd((f[0] @ f[1]) * (f[2] @ f[3]), compute_uv=False)[: stats.SV_KEEP]
    sk = stats.loha_sketch(*f)
    whole = stats.loha_sketch(*f, sample=False)
    assert 1 - sk.sv[0] / ref[0] < 1e-3 and 1 - whole.sv[0] / ref[0] < 1e-2
    assert sk.residual <= whole.residual
    for s in (sk, whole):
        assert np.all(s.sv <= ref * (1 + 1e-6)) and np.all(ref <= np.sqrt(s.sv**2 + s.residual**2))


def test_loha_sketch_redoes_a_sample_that_missed_the_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sample holding less than SKETCH_SHARE of its share of ‖ΔW‖_F² is redone with every row in the
    sketch: the result is then that of ``sample=False``, value for value."""
    g = _rng(31)
    f = [g.standard_normal(s) for s in ((3000, 10), (10, 260), (3000, 10), (10, 260))]
    whole = stats.loha_sketch(*f, sample=False)
    monkeypatch.setattr(stats, "SKETCH_SHARE", 1e9)  # every sample "misses"
    redone = stats.loha_sketch(*f)
    assert redone.sv.tolist() == whole.sv.tolist() and (redone.fro, redone.residual) == (whole.fro, whole.residual)
    monkeypatch.setattr(stats, "SKETCH_SHARE", 0.0)
    kept = stats.loha_sketch(*f)
    assert kept.sv.tolist() != whole.sv.tolist()


def test_project_rows_equals_the_dense_product() -> None:
    """The fused pass (form a block, square it, project it) against W·Q and ‖W‖_F² in float64, with blocks
    of one slab, several and a partial last one."""
    g = _rng(21)
    m, n, r, ell = 530, 190, 9, 24
    a1, a2 = (g.standard_normal((m, r)).astype(np.float32) for _ in range(2))
    b1, b2 = (g.standard_normal((r, n)).astype(np.float32) for _ in range(2))
    q = np.linalg.qr(g.standard_normal((n, ell)))[0].astype(np.float32)
    w = (a1.astype(np.float64) @ b1) * (a2.astype(np.float64) @ b2)
    for block in (1, 4 * n * ell * 2, 4 * n * 500):
        mp = pytest.MonkeyPatch()
        mp.setattr(stats, "SKETCH_BLOCK_BYTES", block)
        try:
            out = np.full((m, ell), np.nan, dtype=np.float32)
            fro2 = stats._project_rows(a1, b1, a2, b2, q, ell, out)
        finally:
            mp.undo()
        assert fro2 == pytest.approx(float(np.sum(w * w)), rel=1e-6)
        np.testing.assert_allclose(out, w @ q, rtol=0, atol=1e-4 * float(np.abs(w).max()) * math.sqrt(n))


@pytest.mark.parametrize("cond", [1.0, 1e2, 3e3, 1e6])
def test_sketch_basis_is_certified_at_any_conditioning(cond: float) -> None:
    """The float32 basis of a sketch spans its rows, and the recorded [λmin, λmax] holds QᵀQ's eigenvalues
    (measured in float64 here), from a well-conditioned sketch to a nearly dependent one (then the float64
    product or the eigen-decomposition basis); the range stays narrow enough not to move the bounds."""
    g = _rng(int(cond))
    ell, n = 40, 300
    u = np.linalg.qr(g.standard_normal((ell, ell)))[0]
    v = np.linalg.qr(g.standard_normal((n, ell)))[0]
    z = ((u * np.geomspace(1.0, 1.0 / cond, ell)) @ v.T).astype(np.float32)
    q, lo, hi = stats._sketch_basis(z)
    qd = q.astype(np.float64)
    ev = np.linalg.eigvalsh(qd.T @ qd)
    assert lo <= ev[0] and ev[-1] <= hi
    assert hi - lo <= 2 * stats.BASIS_SPREAD
    # Zᵀ lies in range(Q): the part of it outside is rounding
    zt = z.T.astype(np.float64)
    proj = qd @ np.linalg.solve(qd.T @ qd, qd.T @ zt)
    assert np.linalg.norm(zt - proj) <= 1e-4 * np.linalg.norm(zt)


@PROPS
@given(n=st.integers(1, 400), ell=st.integers(1, 40), noise=st.floats(0.0, 1e-2), seed=st.integers(0, 2**31))
def test_gram_range_bounds_the_basis_eigenvalues(n: int, ell: int, noise: float, seed: int) -> None:
    """The certain [λmin, λmax] of QᵀQ for a nearly orthonormal float32 basis holds the eigenvalues."""
    g = _rng(seed)
    ell = min(ell, n)
    q, _ = np.linalg.qr(g.standard_normal((n, ell)))
    q32 = (q + noise * g.standard_normal((n, ell))).astype(np.float32)
    lo, hi = stats._gram_range(q32)
    ev = np.linalg.eigvalsh(q32.astype(np.float64).T @ q32.astype(np.float64))
    assert lo <= ev[0] and ev[-1] <= hi
    lo, hi = stats._gram_range(q.astype(np.float32))  # an orthonormal basis rounded to float32: tight
    assert 1 - 1e-4 < lo <= hi < 1 + 1e-4


def test_zero_loha_update_is_sketched_as_zero() -> None:
    g = _rng(4)
    f = [g.standard_normal((300, 16)), np.zeros((16, 280)), g.standard_normal((300, 16)), g.standard_normal((16, 280))]
    m = _only(_loha_t(*f))
    assert (m.method, m.fro, m.spectral, m.rank90) == ("sketched", 0.0, 0.0, 0)


@PROPS
@given(n=st.integers(1, 60), k=st.integers(1, 60), rho_frac=st.floats(0.0, 1.0), decay=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**31))
def test_rank_interval_holds_the_true_rank(n: int, k: int, rho_frac: float, decay: float, seed: int) -> None:
    """Any lower bounds σ̂ᵢ ≤ σᵢ ≤ √(σ̂ᵢ² + ρ²) of the leading k values give an interval holding kohya's rank."""
    g = _rng(seed)
    true = np.sort(g.random(n) * np.exp(-decay * np.arange(n)))[::-1] + 1e-3
    k = min(k, n)
    fro = float(np.sqrt(np.sum(true**2)))
    rho = rho_frac * float(true[0])
    low = np.sqrt(np.clip(true[:k] ** 2 - g.random(k) * rho**2, 0.0, None))
    low = np.sort(low)[::-1]
    for t in (0.9, 0.99):
        lo, hi = stats.rank_interval(low, fro, rho, n, t)
        assert 1 <= lo <= _rank_rule(true, t) <= hi <= n
    if rho == 0 and k == n:  # the whole spectrum, exactly: the interval is the rank
        assert stats.rank_interval(true, fro, 0.0, n, 0.9) == (_rank_rule(true, 0.9),) * 2


def test_summary_spreads_and_totals_use_the_reachable_rank() -> None:
    g = _rng(9)
    t = {
        "a.lokr_w1": g.standard_normal((4, 4)),
        "a.lokr_w2_a": g.standard_normal((6, 2)), "a.lokr_w2_b": g.standard_normal((2, 5)),
        "b.lora_up.weight": g.standard_normal((7, 3)), "b.lora_down.weight": g.standard_normal((3, 9)),
    }
    rep = lora_report(group_modules(t, {k: v.shape for k, v in t.items()}), lambda n: t[n])
    s = rep.summary
    by = {m.key: m for m in rep.modules}
    assert (by["a"].rank, by["a"].max_rank, by["b"].max_rank) == (2, 8, 3)
    assert s["per_module"]["max_rank"] == {"n": 2, "median": 5.5, "min": 3.0, "max": 8.0}
    assert s["sum_max_rank"] == 11 and s["rank_modules"] == 2
    assert s["sum_rank90"] == sum(m.rank90 or 0 for m in rep.modules) <= 11
    assert s["mean_rank_use"] is not None and s["mean_rank_use"] <= 1.0


# -- real LoKr files -----------------------------------------------------------------------------

CORPUS = Path(os.environ.get("MODELREG_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
LOKR = [CORPUS / "loras" / f"smart_falcon_{f}_lokr.safetensors" for f in (4, 16)]


@pytest.mark.parametrize("path", LOKR, ids=lambda p: p.name)
def test_real_lokr_rank_figures_are_sane(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"corpus file {path.name} absent (set MODELREG_CORPUS)")
    h = read_header(path)
    raw = path.read_bytes()
    by = {t.name: t for t in h.tensors}

    def load(n: str) -> np.ndarray:
        ti = by[n]
        return decode(raw[ti.offset : ti.offset + ti.nbytes], ti.dtype, ti.shape)

    g = group_modules(by, {k: t.shape for k, t in by.items()})
    rep = lora_report(g, load, h.metadata)
    assert len(rep.modules) == 350 and all(m.form == "lokr" and m.exact for m in rep.modules)
    for m in rep.modules:
        assert m.max_rank is not None and m.rank90 is not None and m.rank99 is not None
        assert m.rank90 <= m.rank99 <= m.max_rank
        assert m.eff_rank_energy is not None and m.eff_rank_energy <= m.max_rank
    s = rep.summary
    assert s["mean_rank_use"] <= 1.0 and s["sum_rank90"] <= s["sum_rank99"] <= s["sum_max_rank"]
    # a sample of modules against a dense SVD of the formed Kronecker update
    for m in rep.modules[::35]:
        p = g.modules[[x.key for x in g.modules].index(m.key)].parts
        w1 = load(p["lokr_w1a"]).astype(np.float64) @ load(p["lokr_w1b"]).astype(np.float64)
        w2 = load(p["lokr_w2a"]).astype(np.float64) @ load(p["lokr_w2b"]).astype(np.float64)
        assert m.scale is not None
        dense = m.scale * np.kron(w1, w2)
        if not np.any(dense):
            continue
        ref = np.linalg.svd(dense, compute_uv=False)
        k = min(len(m.sv), 16)
        np.testing.assert_allclose(m.sv[:k], ref[:k], rtol=EXACT_RTOL, atol=1e-9 * ref[0])
        assert m.fro == pytest.approx(float(np.linalg.norm(dense)), rel=EXACT_RTOL)


def test_weights_section_says_which_figures_are_exact() -> None:
    from registry.sections.stats import render

    base = {
        "kind": "adapter", "n_modules": 10, "forms": {"loha": 10}, "conventions": {"kohya": 10}, "ranks": [32],
        "alphas": [32.0], "total_fro": 3.0, "max_spectral": 1.0, "mean_rank_use": None, "mean_eff_rank": None,
        "per_module": {"max_rank": {"n": 10, "median": 1024.0, "min": 640.0, "max": 1024.0},
                       "rank90": None, "rank99": None, "eff_rank_energy": None},
        "sum_max_rank": 0, "approximate_modules": 8, "max_sv_error": 0.25,
    }
    lines = dict(render(base))
    assert lines["Reachable rank"] == "per module median 1,024, range 640–1,024 (10 modules): LoHa min(r1·r2, out, in)"
    assert lines["Exactness"] == (
        "2 of 10 modules exact; 8 sketched: Frobenius norm exact, leading singular values are lower bounds; "
        "σ1 within +25.0% (largest bound); effective ranks of sketched modules not computed, their rank90/99 "
        "given as intervals"
    )
    assert "Effective rank" not in lines and "Rank for 90% / 99%" not in lines
    spread = {"rank90_lo": (3, 9), "rank90_hi": (40, 1024), "rank99_lo": (8, 30), "rank99_hi": (900, 1024)}
    base["per_module"].update({k: {"n": 8, "median": float(a), "min": float(a), "max": float(b)} for k, (a, b) in spread.items()})
    assert dict(render(base))["  sketched modules"] == (
        "rank for 90% between 3 and 40, for 99% between 8 and 900 (medians over 8 modules of certain lower and "
        "upper bounds; per module the upper bound is the reachable rank where the leading values do not reach "
        "the share)"
    )
