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


def test_loha_sketch_bounds_hold_against_a_dense_svd() -> None:
    """A LoHa whose exact spectrum costs more than EXACT_FLOPS is sketched: Frobenius exact, every kept
    σ̂ᵢ a lower bound and σᵢ ≤ √(σ̂ᵢ² + ρ²), entropy figures absent, the bound recorded."""
    g = _rng(5)
    o, i, r = 300, 260, 16
    # a decaying spectrum, like a trained update: scale the factor columns
    decay = np.exp(-np.arange(r) / 4.0)
    w1a, w1b = g.standard_normal((o, r)) * decay, g.standard_normal((r, i))
    w2a, w2b = g.standard_normal((o, r)) * decay, g.standard_normal((r, i))
    m = _only({"h.hada_w1_a": w1a, "h.hada_w1_b": w1b, "h.hada_w2_a": w2a, "h.hada_w2_b": w2b, "h.alpha": np.array(8.0)})
    assert (m.method, m.exact, m.max_rank) == ("sketched", False, 256)
    dense = 0.5 * (w1a @ w1b) * (w2a @ w2b)
    ref = np.linalg.svd(dense, compute_uv=False)
    assert m.fro == pytest.approx(float(np.linalg.norm(dense)), rel=EXACT_RTOL)
    got = np.asarray(m.sv)
    assert got.size == stats.SV_KEEP
    rho = m.extra["sketch"]["residual_bound"]
    assert np.all(got <= ref[: got.size] * (1 + 1e-5))
    assert np.all(ref[: got.size] <= np.sqrt(got**2 + rho**2) * (1 + 1e-5))
    assert m.sv_error is not None and ref[0] <= got[0] * (1 + m.sv_error) * (1 + 1e-5)
    assert m.eff_rank_energy is None and m.eff_rank_rv is None
    # the leading values are accurate on a decaying spectrum (well inside the bound)
    np.testing.assert_allclose(got[:8], ref[:8], rtol=1e-3)
    if m.rank90 is not None:
        assert m.rank90 >= _rank_rule(ref, 0.9)  # from lower bounds: never below the true rank90
    rep = lora_report(group_modules({"h.hada_w1_a": w1a, "h.hada_w1_b": w1b, "h.hada_w2_a": w2a, "h.hada_w2_b": w2b}),
                      lambda n: {"h.hada_w1_a": w1a, "h.hada_w1_b": w1b, "h.hada_w2_a": w2a, "h.hada_w2_b": w2b}[n])
    assert rep.summary["approximate_modules"] == 1 and rep.summary["max_sv_error"] == rep.modules[0].sv_error


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
        "σ1 within +25.0% (largest bound); effective ranks of sketched modules not computed, rank90/99 only "
        "where the leading values reach them"
    )
    assert "Effective rank" not in lines and "Rank for 90% / 99%" not in lines
