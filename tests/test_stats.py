"""LoRA/LyCORIS spectra: every form against singular values known by construction."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

from registry import stats
from registry.adapters import AdapterModule, group_modules
from registry.stats import (
    ModuleStats,
    boft_apply,
    cayley,
    figures,
    kohya_sv_fro_rank,
    lora_report,
    lowrank_sv,
    module_stats,
)

RTOL = 1e-10


def orth(m: int, k: int, seed: int) -> np.ndarray:
    """m×k with orthonormal columns."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, k)))
    return q


def run(tensors: Mapping[str, np.ndarray], meta: Mapping[str, str] | None = None) -> list[ModuleStats]:
    g = group_modules(tensors, {k: tuple(v.shape) for k, v in tensors.items()})
    return lora_report(g, lambda n: tensors[n], meta).modules


def only(tensors: Mapping[str, np.ndarray], meta: Mapping[str, str] | None = None) -> ModuleStats:
    mods = run(tensors, meta)
    assert len(mods) == 1
    return mods[0]


def assert_sv(m: ModuleStats, expected: np.ndarray | list[float]) -> None:
    exp = np.sort(np.asarray(expected, dtype=np.float64))[::-1]
    exp = exp[exp > 0]
    got = np.asarray(m.sv[: exp.size])
    assert got.size == exp.size, (m.sv, exp)
    np.testing.assert_allclose(got, exp, rtol=RTOL, atol=0)
    assert all(abs(x) < 1e-12 * exp[0] for x in m.sv[exp.size :])
    assert m.fro == pytest.approx(math.sqrt(float(np.sum(exp**2))), rel=RTOL)


SIGMA = np.array([5.0, 3.0, 2.0, 1.0, 0.5])


# -- figures ------------------------------------------------------------------------------------


def test_figures_of_a_known_spectrum() -> None:
    sv = np.array([4.0, 2.0, 1.0, 1.0])
    f = figures(sv)
    e = sv**2 / 22.0
    p = sv / 8.0
    assert f.fro == pytest.approx(math.sqrt(22.0), rel=1e-15)
    assert f.spectral == 4.0
    assert f.stable_rank == pytest.approx(22.0 / 16.0, rel=1e-15)
    assert f.eff_rank_energy == pytest.approx(math.exp(-float(np.sum(e * np.log(e)))), rel=1e-14)
    assert f.eff_rank_rv == pytest.approx(math.exp(-float(np.sum(p * np.log(p)))), rel=1e-14)
    assert f.top1_share == pytest.approx(16.0 / 22.0, rel=1e-15)
    # sv_fro: cumulative energy 16/22=.727, 20/22=.909, 21/22=.955, 1 → 0.81 needs 2, 0.9801 needs 4
    assert (f.rank90, f.rank99) == (2, 4)
    assert f.sv == [4.0, 2.0, 1.0, 1.0] and f.n_sv == 4


def test_flat_spectrum_has_effective_rank_k() -> None:
    f = figures(np.full(7, 0.3))
    assert f.eff_rank_energy == pytest.approx(7.0, rel=1e-13)
    assert f.eff_rank_rv == pytest.approx(7.0, rel=1e-13)
    assert f.stable_rank == pytest.approx(7.0, rel=1e-13)


def test_zero_spectrum() -> None:
    f = figures(np.zeros(4))
    assert (f.fro, f.spectral, f.eff_rank_energy, f.rank90, f.top1_share) == (0.0, 0.0, 0.0, 0, None)


def test_kohya_sv_fro_rule() -> None:
    sv = np.array([4.0, 3.0])  # energies .64, 1.0
    assert kohya_sv_fro_rank(sv, 0.79) == 1  # 0.64 >= 0.79**2
    assert kohya_sv_fro_rank(sv, 0.81) == 2
    assert kohya_sv_fro_rank(sv, 1.0) == 2
    assert kohya_sv_fro_rank(np.array([1e-7, 1e-8]), 0.9) == 1  # kohya's MIN_SV rule
    assert kohya_sv_fro_rank(np.array([]), 0.9) == 0
    assert kohya_sv_fro_rank(np.ones(10), 0.9) == 9  # 9/10 >= .81 > 8/10


def test_lowrank_sv_equals_dense_svd() -> None:
    rng = np.random.default_rng(1)
    u, d = rng.standard_normal((300, 12)), rng.standard_normal((170, 12))
    np.testing.assert_allclose(lowrank_sv(u, d), np.linalg.svd(u @ d.T, compute_uv=False)[:12], rtol=1e-11)


def test_single_threaded_blas_is_a_context_manager() -> None:
    with stats.single_threaded_blas():
        assert lowrank_sv(np.eye(3), np.eye(3)).tolist() == [1.0, 1.0, 1.0]


# -- lora -------------------------------------------------------------------------------------


def test_kohya_linear_lora_singular_values_and_figures() -> None:
    m, n, r = 40, 30, 5
    up = orth(m, r, 1) * SIGMA
    down = orth(n, r, 2).T
    k = "lora_unet_mid_block_attentions_0_proj_in"
    mod = only({f"{k}.lora_up.weight": up, f"{k}.lora_down.weight": down, f"{k}.alpha": np.array(2.0)})
    assert (mod.form, mod.rank, mod.alpha, mod.scale, mod.n_out, mod.n_in) == ("lora", 5, 2.0, 0.4, 40, 30)
    assert_sv(mod, 0.4 * SIGMA)
    assert mod.spectral == pytest.approx(2.0, rel=RTOL)
    assert mod.stable_rank == pytest.approx(float(np.sum(SIGMA**2)) / 25.0, rel=RTOL)
    e = SIGMA**2 / np.sum(SIGMA**2)
    assert mod.eff_rank_energy == pytest.approx(math.exp(-float(np.sum(e * np.log(e)))), rel=RTOL)
    p = SIGMA / SIGMA.sum()
    assert mod.eff_rank_rv == pytest.approx(math.exp(-float(np.sum(p * np.log(p)))), rel=RTOL)
    assert mod.top1_share == pytest.approx(25.0 / 39.25, rel=RTOL)
    # cumulative energy 25, 34, 38, 39, 39.25 of 39.25: .637 .866 .968 .994 1 → .81 at 2, .9801 at 4
    assert (mod.rank90, mod.rank99) == (2, 4)
    assert mod.balance == pytest.approx(math.sqrt(39.25) / math.sqrt(5.0), rel=RTOL)
    assert (mod.method, mod.exact, mod.component, mod.block, mod.nonfinite, mod.error) == ("factored", True, "unet", "mid", 0, None)


def test_lora_without_alpha_has_scale_one() -> None:
    up, down = orth(20, 5, 3) * SIGMA, orth(12, 5, 4).T
    mod = only({"x.lora_up.weight": up, "x.lora_down.weight": down})
    assert (mod.alpha, mod.scale) == (None, 1.0)
    assert_sv(mod, SIGMA)


def test_conv_lora_is_flattened() -> None:
    out_c, in_c, r = 16, 8, 5
    down = orth(in_c * 9, r, 5).T.reshape(r, in_c, 3, 3)
    up = (orth(out_c, r, 6) * SIGMA).reshape(out_c, r, 1, 1)
    mod = only({"c.lora_up.weight": up, "c.lora_down.weight": down, "c.alpha": np.array(5.0)})
    assert (mod.n_out, mod.n_in, mod.scale) == (16, 72, 1.0)
    assert_sv(mod, SIGMA)


def test_tucker_lora_mid() -> None:
    out_c, in_c, r = 12, 10, 4
    sig = np.array([3.0, 2.0, 1.5, 0.25])
    down = orth(in_c, r, 7).T.reshape(r, in_c, 1, 1)
    o = orth(r, r, 8)
    c = np.random.default_rng(9).standard_normal((3, 3))
    c /= np.linalg.norm(c)
    mid = o[:, :, None, None] * c[None, None, :, :]  # mid[:, :, k, l] = c_kl · O, Σ c² = 1
    up = (orth(out_c, r, 10) * sig).reshape(out_c, r, 1, 1)
    mod = only({"t.lora_up.weight": up, "t.lora_down.weight": down, "t.lora_mid.weight": mid, "t.alpha": np.array(2.0)})
    assert (mod.n_out, mod.n_in, mod.rank, mod.extra["tucker"]) == (12, 90, 4, True)
    assert_sv(mod, 0.5 * sig)


def test_lora_from_half_precision_files_matches_dense_svd() -> None:
    rng = np.random.default_rng(11)
    up = (rng.standard_normal((64, 8)) * 0.05).astype(np.float16)
    down = (rng.standard_normal((8, 48)) * 0.05).astype(np.float16)
    mod = only({"h.lora_up.weight": up, "h.lora_down.weight": down, "h.alpha": np.array(4, dtype=np.float16)})
    dense = np.linalg.svd(0.5 * up.astype(np.float64) @ down.astype(np.float64), compute_uv=False)[:8]
    np.testing.assert_allclose(mod.sv, dense, rtol=1e-9)


def test_peft_alpha_from_adapter_metadata() -> None:
    up, down = orth(20, 5, 12) * SIGMA, orth(12, 5, 13).T
    t = {"unet.a.to_q.lora_A.weight": down, "unet.a.to_q.lora_B.weight": up,
         "unet.b.to_k.lora_A.weight": down, "unet.b.to_k.lora_B.weight": up}
    meta = {"lora_adapter_metadata": '{"r": 5, "lora_alpha": 10, "alpha_pattern": {"to_k": 2.5}}'}
    a, b = run(t, meta)
    assert (a.alpha, a.scale, a.extra["alpha_source"]) == (10.0, 2.0, "peft-metadata")
    assert (b.alpha, b.scale) == (2.5, 0.5)
    assert_sv(a, 2.0 * SIGMA)
    (c,) = run({k: v for k, v in t.items() if ".a." in k}, {"lora_adapter_metadata": '{"lora_alpha": 10, "use_rslora": true}'})
    assert c.scale == pytest.approx(10 / math.sqrt(5), rel=1e-15)
    (d,) = run({k: v for k, v in t.items() if ".a." in k})
    assert d.scale == 1.0


def test_dora_magnitudes_are_summarised() -> None:
    up, down = orth(6, 5, 14) * SIGMA, orth(9, 5, 15).T
    mag = np.array([1.0, 2.0, 3.0, 6.0, 1.0, 5.0])
    mod = only({"d.lora_up.weight": up, "d.lora_down.weight": down, "d.dora_scale": mag.reshape(6, 1)})
    assert mod.extra["dora"] == {"n": 6, "mean": 3.0, "std": pytest.approx(float(np.std(mag)), rel=1e-15), "min": 1.0, "max": 6.0}
    assert_sv(mod, SIGMA)


def test_lora_diffusion_module() -> None:
    up, down = orth(20, 5, 16) * SIGMA, orth(12, 5, 17).T
    mod = only({"unet:0:up": up, "unet:0:down": down})
    assert (mod.convention, mod.scale) == ("lora_diffusion", 1.0)
    assert_sv(mod, SIGMA)


# -- LoHa ---------------------------------------------------------------------------------------


def test_loha_with_an_all_ones_second_factor_is_the_first() -> None:
    m, n, r = 30, 20, 5
    w1a, w1b = orth(m, r, 20) * SIGMA, orth(n, r, 21).T
    t = {"h.hada_w1_a": w1a, "h.hada_w1_b": w1b, "h.hada_w2_a": np.ones((m, 1)), "h.hada_w2_b": np.ones((1, n)),
         "h.alpha": np.array(10.0)}
    mod = only(t)
    assert (mod.form, mod.rank, mod.scale, mod.method, mod.extra["ranks"]) == ("loha", 5, 2.0, "factored", [5, 1])
    assert_sv(mod, 2.0 * SIGMA)


def test_loha_rank_one_closed_form() -> None:
    rng = np.random.default_rng(22)
    a1, a2, b1, b2 = (rng.standard_normal(k) for k in (25, 25, 15, 15))
    t = {"h.hada_w1_a": a1[:, None], "h.hada_w1_b": b1[None, :], "h.hada_w2_a": a2[:, None], "h.hada_w2_b": b2[None, :]}
    mod = only(t)
    # (a1 b1ᵀ) ⊙ (a2 b2ᵀ) = (a1⊙a2)(b1⊙b2)ᵀ: one singular value ‖a1⊙a2‖·‖b1⊙b2‖
    assert_sv(mod, [float(np.linalg.norm(a1 * a2) * np.linalg.norm(b1 * b2))])


def test_loha_factored_equals_formed_hadamard() -> None:
    rng = np.random.default_rng(23)
    m, n, r = 200, 150, 6
    t = {"h.hada_w1_a": rng.standard_normal((m, r)), "h.hada_w1_b": rng.standard_normal((r, n)),
         "h.hada_w2_a": rng.standard_normal((m, r)), "h.hada_w2_b": rng.standard_normal((r, n)), "h.alpha": np.array(3.0)}
    mod = only(t)
    dense = np.linalg.svd((t["h.hada_w1_a"] @ t["h.hada_w1_b"]) * (t["h.hada_w2_a"] @ t["h.hada_w2_b"]), compute_uv=False)
    assert mod.method == "factored" and mod.n_sv == 36
    np.testing.assert_allclose(mod.sv[:36], 0.5 * dense[:36], rtol=1e-9)


def test_loha_forms_the_product_when_it_is_small() -> None:
    m, n = 30, 4  # r1·r2 = 5 ≥ min(m, n) = 4
    w1a, w1b = orth(m, 4, 24) * SIGMA[:4], orth(n, 4, 25).T
    w1a = np.hstack([w1a, np.zeros((m, 1))])
    w1b = np.vstack([w1b, np.zeros((1, n))])
    t = {"h.hada_w1_a": w1a, "h.hada_w1_b": w1b, "h.hada_w2_a": np.ones((m, 1)), "h.hada_w2_b": np.ones((1, n))}
    mod = only(t)
    assert mod.method == "formed"
    assert_sv(mod, SIGMA[:4])


def test_loha_tucker() -> None:
    out_c, in_c, r = 14, 6, 4
    sig = np.array([2.0, 1.0, 0.5, 0.125])
    c = np.random.default_rng(26).standard_normal((3, 3))
    c /= np.linalg.norm(c)
    o = orth(r, r, 27)
    t1 = o[:, :, None, None] * c  # t1[:, :, k, l] = c_kl · O
    w1a = (orth(out_c, r, 28) * sig).T  # r × out
    w1b = orth(in_c, r, 29).T  # r × in, orthonormal rows
    t2 = np.ones((1, 1, 3, 3))
    t = {"h.hada_w1_a": w1a, "h.hada_w1_b": w1b, "h.hada_t1": t1,
         "h.hada_w2_a": np.ones((1, out_c)), "h.hada_w2_b": np.ones((1, in_c)), "h.hada_t2": t2}
    mod = only(t)
    assert (mod.n_out, mod.n_in, mod.extra["tucker"]) == (14, 54, True)
    assert_sv(mod, sig)


# -- LoKr ---------------------------------------------------------------------------------------


def test_lokr_singular_values_multiply() -> None:
    s1 = np.array([3.0, 1.0])
    w1 = orth(2, 2, 30) @ np.diag(s1) @ orth(3, 2, 31).T  # 2×3, σ = 3, 1
    s2 = np.array([2.0, 0.5, 0.25])
    w2a, w2b = orth(10, 3, 32) * s2, orth(8, 3, 33).T
    mod = only({"k.lokr_w1": w1, "k.lokr_w2_a": w2a, "k.lokr_w2_b": w2b, "k.alpha": np.array(6.0)})
    assert (mod.form, mod.rank, mod.scale, mod.n_out, mod.n_in, mod.method) == ("lokr", 3, 2.0, 20, 24, "kronecker")
    assert_sv(mod, 2.0 * np.outer(s1, s2).ravel())
    dense = np.linalg.svd(2.0 * np.kron(w1, w2a @ w2b), compute_uv=False)
    np.testing.assert_allclose(mod.sv[:6], dense[:6], rtol=1e-10)
    assert mod.balance == pytest.approx(math.sqrt(10.0) / math.sqrt(float(np.sum(s2**2))), rel=RTOL)


def test_lokr_whole_factors_have_scale_one_and_conv_w2() -> None:
    w1 = np.diag([4.0, 2.0])
    s2 = np.array([1.5, 0.5])
    w2 = (orth(3, 2, 34) * s2 @ orth(5 * 9, 2, 35).T).reshape(3, 5, 3, 3)
    mod = only({"k.lokr_w1": w1, "k.lokr_w2": w2, "k.alpha": np.array(7.0)})
    assert (mod.scale, mod.n_out, mod.n_in, mod.rank) == (1.0, 6, 90, None)
    assert_sv(mod, np.outer([4.0, 2.0], s2).ravel())
    dense = np.linalg.svd(np.kron(w1[:, :, None, None], w2).reshape(6, -1), compute_uv=False)
    np.testing.assert_allclose(mod.sv[:4], dense[:4], rtol=1e-10)


def test_lokr_tucker_w2_and_factored_w1() -> None:
    rng = np.random.default_rng(36)
    w1a, w1b = rng.standard_normal((2, 1)), rng.standard_normal((1, 2))
    t2 = rng.standard_normal((3, 3, 3, 3))
    w2a, w2b = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    mod = only({"k.lokr_w1_a": w1a, "k.lokr_w1_b": w1b, "k.lokr_w2_a": w2a, "k.lokr_w2_b": w2b, "k.lokr_t2": t2,
                "k.alpha": np.array(1.5)})
    w2 = np.einsum("ijkl,jr,ip->prkl", t2, w2b, w2a)  # ComfyUI's Tucker rebuild
    dense = np.linalg.svd(0.5 * np.kron((w1a @ w1b)[:, :, None, None], w2).reshape(8, -1), compute_uv=False)
    assert mod.scale == 0.5 and mod.rank == 3
    np.testing.assert_allclose(mod.sv[:3], dense[:3], rtol=1e-9)


# -- IA3, norm ----------------------------------------------------------------------------------


def test_ia3_vector_is_the_relative_change() -> None:
    d = np.array([0.5, -2.0, 0.0, 1.0])
    mod = only({"i.weight": d, "i.on_input": np.array(True)})
    assert (mod.form, mod.method, mod.rank, mod.extra["on_input"]) == ("ia3", "vector", 4, True)
    assert_sv(mod, [2.0, 1.0, 0.5])
    assert mod.extra["mean"] == -0.125 and mod.extra["min"] == -2.0 and mod.extra["max"] == 1.0
    peft = only({"q.ia3_l": np.array([1.0, 1.5, 0.75])})
    assert_sv(peft, [0.5, 0.25])


def test_norm_module() -> None:
    mod = only({"n.w_norm": np.array([3.0, -4.0]), "n.b_norm": np.array([1.0, 0.0])})
    assert (mod.form, mod.fro, mod.extra["bias_norm"]) == ("norm", 5.0, 1.0)


# -- GLoRA --------------------------------------------------------------------------------------


def test_glora_additive_part_spectra() -> None:
    out_c, in_c, r = 12, 9, 5
    b1, b2 = orth(out_c, r, 40) * SIGMA, orth(in_c, r, 41).T
    rng = np.random.default_rng(42)
    a1, a2 = rng.standard_normal((in_c, r)), rng.standard_normal((r, in_c))
    mod = only({"g.a1.weight": a1, "g.a2.weight": a2, "g.b1.weight": b1, "g.b2.weight": b2, "g.alpha": np.array(10.0)})
    assert (mod.form, mod.rank, mod.scale, mod.extra["glora_format"]) == ("glora", 5, 2.0, "new")
    assert_sv(mod, 2.0 * SIGMA)
    a_dense = np.linalg.svd(2.0 * a1 @ a2, compute_uv=False)
    assert mod.extra["a_spectral"] == pytest.approx(a_dense[0], rel=1e-10)
    assert mod.extra["a_fro"] == pytest.approx(float(np.linalg.norm(a_dense)), rel=1e-10)


# -- OFT / BOFT ---------------------------------------------------------------------------------


def _skew_blocks(ws: list[float]) -> np.ndarray:
    """2×2 blocks [[0, w], [0, 0]]: Q = [[0, w], [−w, 0]], a rotation by 2·atan(w)."""
    b = np.zeros((len(ws), 2, 2))
    b[:, 0, 1] = ws
    return b


def _cayley_sv(w: float) -> float:
    return 2 * abs(w) / math.sqrt(1 + w * w)  # |e^{iθ} − 1| with θ = 2 atan w


def test_oft_rotation_distances() -> None:
    ws = [0.1, 0.5, 2.0]
    mod = only({"o.oft_blocks": _skew_blocks(ws), "o.alpha": np.array(0.0)})
    assert (mod.form, mod.method, mod.n_out, mod.extra["blocks"], mod.extra["block_size"]) == ("oft", "blocks", 6, 3, 2)
    assert_sv(mod, [_cayley_sv(w) for w in ws for _ in range(2)])
    assert mod.extra["max_angle"] == pytest.approx(2 * math.atan(2.0), rel=1e-12)


def test_oft_constraint_and_rescale() -> None:
    ws = [0.3, 0.4]  # ‖Q‖_F = sqrt(2·0.09 + 2·0.16) = sqrt(0.5)
    alpha = 0.5 * math.sqrt(0.5)
    f = alpha / (math.sqrt(0.5) + 1e-8)
    mod = only({"o.oft_blocks": _skew_blocks(ws), "o.alpha": np.array(alpha)})
    assert_sv(mod, [_cayley_sv(w * f) for w in ws for _ in range(2)])
    c = 1.5
    res = only({"o.oft_blocks": _skew_blocks([0.5]), "o.rescale": np.full((2, 1), c)})
    theta = 2 * math.atan(0.5)
    expect = math.sqrt(c * c - 2 * c * math.cos(theta) + 1)  # |c·e^{iθ} − 1|, twice (normal matrix)
    assert_sv(res, [expect, expect])


def test_cayley_is_orthogonal() -> None:
    r, qn = cayley(np.random.default_rng(43).standard_normal((3, 4, 4)), None)
    for blk in r:
        np.testing.assert_allclose(blk @ blk.T, np.eye(4), atol=1e-12)
    assert qn > 0


def _boft_dense(r: np.ndarray) -> np.ndarray:
    """The BOFT product written independently with explicit permutation matrices."""
    m_f, nb, b, _ = r.shape
    n = nb * b
    total = np.eye(n)
    for i in range(m_f):
        k = 2**i * (b // 2)
        # row j of the permuted order takes original row perm[j]: (N, 2, k) → (N, k, 2)
        perm = np.arange(n).reshape(n // (2 * k), 2, k).transpose(0, 2, 1).ravel()
        p = np.eye(n)[perm]
        bd = np.zeros((n, n))
        for j in range(nb):
            bd[j * b : (j + 1) * b, j * b : (j + 1) * b] = r[i, j]
        total = p.T @ bd @ p @ total
    return total


def test_boft_butterfly_matches_explicit_permutations() -> None:
    rng = np.random.default_rng(44)
    blocks = rng.standard_normal((3, 4, 4, 4)) * 0.3  # 3 factors, 4 blocks of 4: n = 16
    r, _ = cayley(blocks, None)
    np.testing.assert_allclose(boft_apply(r, np.eye(16)), _boft_dense(r), atol=1e-13)
    mod = only({"b.oft_blocks": blocks})
    assert (mod.form, mod.method, mod.extra["factors"]) == ("boft", "formed", 3)
    dense = np.linalg.svd(_boft_dense(r) - np.eye(16), compute_uv=False)
    np.testing.assert_allclose(mod.sv[:16], dense, rtol=1e-10, atol=1e-14)


def test_boft_single_factor_has_the_block_spectrum() -> None:
    ws = [0.2, 1.0, 0.7, 0.05]
    blocks = _skew_blocks(ws)[None]  # one factor: permutation similarity keeps the singular values
    mod = only({"b.oft_blocks": blocks})
    assert mod.form == "boft"
    assert_sv(mod, [_cayley_sv(w) for w in ws for _ in range(2)])


def test_boft_large_is_bounded_not_formed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "BOFT_FORM_LIMIT", 4)
    mod = only({"b.oft_blocks": _skew_blocks([0.5, 0.5, 0.5, 0.5])[None]})
    assert (mod.method, mod.exact, mod.fro) == ("none", False, None)
    assert mod.extra["spectral_bound"] == pytest.approx(_cayley_sv(0.5), rel=1e-12)


# -- full diff ----------------------------------------------------------------------------------


def test_full_diff_exact() -> None:
    w = orth(20, 5, 50) * SIGMA @ orth(15, 5, 51).T
    mod = only({"f.diff": w, "f.diff_b": np.array([3.0, 4.0])})
    assert (mod.form, mod.method, mod.exact, mod.extra["bias_norm"]) == ("diff", "formed", True, 5.0)
    assert_sv(mod, SIGMA)


def test_full_diff_randomized_when_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "DIFF_EXACT_FLOPS", 10.0)
    sig = np.geomspace(10.0, 0.1, 12)
    w = orth(300, 12, 52) * sig @ orth(200, 12, 53).T  # rank 12 < 64: the subspace captures it exactly
    mod = only({"f.diff": w})
    assert (mod.method, mod.exact, mod.eff_rank_energy) == ("randomized", False, None)
    np.testing.assert_allclose(mod.sv[:12], sig, rtol=1e-10)
    assert mod.fro == pytest.approx(float(np.linalg.norm(sig)), rel=1e-12)
    assert mod.rank90 == kohya_sv_fro_rank(sig, 0.9)


# -- bad input ----------------------------------------------------------------------------------


def test_nonfinite_factor_is_a_finding_not_a_crash() -> None:
    up = orth(10, 3, 60)
    up[2, 1] = np.nan
    up[3, 0] = np.inf
    t = {"a.lora_up.weight": up, "a.lora_down.weight": orth(8, 3, 61).T, "b.lora_up.weight": orth(10, 3, 62),
         "b.lora_down.weight": orth(8, 3, 63).T}
    g = group_modules(t)
    rep = lora_report(g, lambda n: t[n])
    a, b = rep.modules
    assert (a.nonfinite, a.fro, a.method) == (2, None, "none")
    assert b.fro == pytest.approx(math.sqrt(3.0), rel=RTOL)
    (f,) = [f for f in rep.findings if f.rule_id == "stats.nonfinite-factor"]
    assert f.evidence == {"modules": ["a"], "values": 2}
    assert rep.summary["nonfinite_modules"] == 1


def test_zero_update_incomplete_and_mismatched_modules() -> None:
    t = {
        "z.lora_up.weight": np.zeros((4, 2)), "z.lora_down.weight": np.ones((2, 3)),
        "lonely.lora_down.weight": np.ones((2, 3)),
        "bad.lora_up.weight": np.ones((4, 2)), "bad.lora_down.weight": np.ones((3, 3)),
    }
    g = group_modules(t)
    rep = lora_report(g, lambda n: t[n])
    by = {m.key: m for m in rep.modules}
    assert by["z"].fro == 0.0 and by["z"].rank90 == 0
    assert by["bad"].error == "up [4, 2] and down [3, 3] ranks differ"
    assert sorted(f.rule_id for f in rep.findings) == ["stats.incomplete-module", "stats.module-unreadable", "stats.zero-update"]
    assert rep.summary["zero_modules"] == 1 and rep.summary["failed_modules"] == 1 and rep.summary["incomplete_modules"] == 1


def test_module_stats_never_raises_on_bad_shapes() -> None:
    mod = AdapterModule("k", "lokr", {"lokr_w1": "w1", "lokr_w2a": "a", "lokr_w2b": "b"}, "lycoris", "model", None)
    arrays = {"w1": np.eye(2), "a": np.ones((3, 2)), "b": np.ones((4, 5))}
    out = module_stats(mod, lambda n: arrays[n])
    assert out.error is not None and "do not fit" in out.error


# -- per file -----------------------------------------------------------------------------------


def test_summary_and_profile() -> None:
    t = {
        "lora_unet_down_blocks_0_x.lora_up.weight": orth(10, 2, 70) * [3.0, 0.0],
        "lora_unet_down_blocks_0_x.lora_down.weight": orth(6, 2, 71).T,
        "lora_unet_up_blocks_1_y.lora_up.weight": orth(10, 2, 72) * [4.0, 0.0],
        "lora_unet_up_blocks_1_y.lora_down.weight": orth(6, 2, 73).T,
        "lora_te1_text_model_encoder_layers_0_q.lora_up.weight": orth(10, 2, 74) * [1.0, 1.0],
        "lora_te1_text_model_encoder_layers_0_q.lora_down.weight": orth(6, 2, 75).T,
    }
    rep = lora_report(group_modules(t), lambda n: t[n])
    s = rep.summary
    assert s["n_modules"] == 3 and s["forms"] == {"lora": 3} and s["components"] == {"te1": 1, "unet": 2}
    assert s["total_fro"] == pytest.approx(math.sqrt(9 + 16 + 2), rel=RTOL)
    assert s["max_spectral"] == pytest.approx(4.0, rel=RTOL)
    assert s["ranks"] == [2] and s["sum_rank"] == 6
    assert s["mean_eff_rank"] == pytest.approx((1 + 1 + 2) / 3, rel=1e-9)
    prof = {(p["component"], p["block"]): p for p in rep.profile}
    assert [(p["component"], p["block"]) for p in rep.profile] == [
        ("te1", "(all)"), ("te1", "layer.0"), ("unet", "(all)"), ("unet", "down.0"), ("unet", "up.1")
    ]
    assert prof[("unet", "(all)")]["energy_share"] == pytest.approx(25 / 27, rel=RTOL)
    assert prof[("unet", "up.1")]["fro"] == pytest.approx(4.0, rel=RTOL)
    assert prof[("te1", "layer.0")]["mean_eff_rank"] == pytest.approx(2.0, rel=1e-12)


def test_rows_are_json_ready() -> None:
    mod = only({"x.lora_up.weight": orth(5, 2, 80) * [2.0, 1.0], "x.lora_down.weight": orth(4, 2, 81).T,
                "x.dora_scale": np.ones(5)})
    row = mod.as_row()
    assert row["module"] == "x" and row["sv"][:2] == pytest.approx([2.0, 1.0], rel=RTOL)
    assert isinstance(row["extra"], str) and '"dora"' in row["extra"]


# -- the stacked LoRA path (issue 21) -------------------------------------------------------------


def _module_by_module(tensors: Mapping[str, np.ndarray], meta: Mapping[str, str] | None = None) -> list[ModuleStats]:
    """The reference: every module through module_stats, spectra batched by run_batch (the path before
    the stacked one, and still the one for every module that is not a plain LoRA)."""
    g = group_modules(tensors, {k: tuple(v.shape) for k, v in tensors.items()})
    cfg = stats.peft_config_from_metadata(meta)
    batch: list[stats._Deferred] = []
    mods = [module_stats(m, lambda n: tensors[n], cfg, None, batch) for m in g.modules]
    stats.run_batch(batch)
    return mods


def _random_lora_file(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {}
    for i in range(int(rng.integers(1, 25))):
        r = int(rng.choice([1, 2, 3, 4, 8, 16]))
        m = int(rng.choice([r, 1, 5, 8, 32, 320]))
        n = int(rng.choice([r, 2, 7, 8, 32, 640]))
        dt = rng.choice([np.float16, np.float32, np.float64])
        up = (rng.standard_normal((m, r)) * 10.0 ** rng.uniform(-8, 3)).astype(dt)
        down = rng.standard_normal((r, n)).astype(dt)
        u = rng.random()
        if u < 0.1:
            up[:, 0] = 0  # a zero singular value: the entropy sums skip it
        elif u < 0.15:
            up[:] = 0  # an all-zero update
        elif u < 0.2:
            down[0, -1] = np.inf
        elif u < 0.25:
            up[-1, 0] = np.nan
        elif u < 0.3:
            up[0, 0] = 60000.0  # (finite in every dtype: a square above 2**31, near F16's largest)
        if rng.random() < 0.1:
            down = down.astype(np.float32)  # factors of two dtypes
            if rng.random() < 0.5:
                up[0, 0] = rng.choice([np.nan, np.inf])  # a non-finite F16 factor beside an F32 one
        if rng.random() < 0.2:
            up, down = up.reshape(m, r, 1, 1), down.reshape(r, n, 1, 1)
        k = f"lora_unet_down_blocks_0_attentions_{i}_proj_in"
        t[f"{k}.lora_up.weight"], t[f"{k}.lora_down.weight"] = up, down
        if rng.random() < 0.7:
            t[f"{k}.alpha"] = np.asarray(rng.choice([1.0, 4.0, 0.5, 0.0, np.nan]), dtype=np.float16)
    return t


@pytest.mark.parametrize("seed", range(12))
def test_stacked_lora_path_equals_module_by_module_bit_for_bit(seed: int) -> None:
    """Plain LoRA modules go through one preallocated float64 stack per shape and figures computed for
    the whole group; every row is identical (==, not approximately) to the module-by-module path's,
    whether the shapes come from the arrays, from a header map, or the factors are decoded into the
    stack from their bytes, F16 factors widened from their codes chunk by chunk (Inf and NaN codes among
    them, F16 values near the largest, F16 and F32 factors in one module)."""
    from registry.files.dtypes import decode_into

    t = _random_lora_file(seed)
    want = [m.as_row() for m in _module_by_module(t)]
    g = group_modules(t, {k: tuple(v.shape) for k, v in t.items()})
    shapes = {k: tuple(v.shape) for k, v in t.items()}
    st_dtype = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}

    def load_into(name: str, out: np.ndarray) -> None:
        a = t[name]
        decode_into(a.astype(a.dtype.newbyteorder("<")).tobytes(), st_dtype[a.dtype], out)

    def load_codes(name: str, out: np.ndarray) -> bool:
        a = t[name]
        if a.dtype != np.float16 or a.size != out.size:
            return False
        np.copyto(out, a.astype("<f2").view("<i2").ravel())
        return True

    for rep in (
        lora_report(g, lambda n: t[n]),
        lora_report(g, lambda n: t[n], shapes=shapes),
        lora_report(g, lambda n: t[n], shapes=shapes, load_into=load_into),
        lora_report(g, lambda n: t[n], shapes=shapes, load_into=load_into, load_codes=load_codes),
    ):
        got = [m.as_row() for m in rep.modules]
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert a.keys() == b.keys()
            for k in a:
                same = a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
                assert same, (a["module"], k, a[k], b[k])


def test_stacked_lora_path_matches_a_dense_svd() -> None:
    """Independent answer: the figures of a group of same-shape modules against a dense float64 SVD of
    each formed ΔW (relative error ≤ 1e-10)."""
    rng = np.random.default_rng(5)
    t: dict[str, np.ndarray] = {}
    for i in range(6):
        k = f"lora_unet_up_blocks_1_attentions_{i}_proj_out"
        t[f"{k}.lora_up.weight"] = rng.standard_normal((48, 6)).astype(np.float16)
        t[f"{k}.lora_down.weight"] = rng.standard_normal((6, 40)).astype(np.float16)
        t[f"{k}.alpha"] = np.asarray(3.0, dtype=np.float16)
    for m in run(t):
        k = m.key
        dw = 0.5 * t[f"{k}.lora_up.weight"].astype(np.float64) @ t[f"{k}.lora_down.weight"].astype(np.float64)
        sv = np.linalg.svd(dw, compute_uv=False)
        np.testing.assert_allclose(m.sv, sv[:6], rtol=1e-10)
        assert m.fro == pytest.approx(float(np.linalg.norm(dw)), rel=1e-10)
        assert m.eff_rank_energy == pytest.approx(math.exp(-sum(p * math.log(p) for p in sv[:6] ** 2 / np.sum(sv[:6] ** 2))), rel=1e-10)
        assert m.method == "factored" and m.scale == 0.5


def test_median_is_numpys_median() -> None:
    rng = np.random.default_rng(3)
    for n in range(1, 40):
        for _ in range(20):
            xs = list(rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6, n))
            assert stats._median(xs) == float(np.median(xs))
    assert stats._median([]) is None
    assert math.isnan(stats._median([1.0, float("nan"), 2.0]) or 0.0)


@pytest.mark.parametrize("seed", range(4))
def test_module_columns_are_the_rows_the_writer_would_store(seed: int) -> None:
    """``lora_modules`` goes to the writer as columns; each cell is what the dict row gave after the
    writer's per-cell cleaning (text, JSON, lists)."""
    from registry.store.write import _json_cell

    t = _random_lora_file(seed)
    t["lora_unet_caf\udce9_proj.lora_up.weight"] = np.ones((4, 2), np.float16)  # an undecodable name byte
    t["lora_unet_caf\udce9_proj.lora_down.weight"] = np.ones((2, 4), np.float16)
    mods = run(t)
    cols = stats.module_columns(mods)
    for i, m in enumerate(mods):
        row = {k: _json_cell(v) for k, v in m.as_row().items()}
        assert row.keys() == cols.keys()
        for k, v in row.items():
            assert cols[k][i] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(cols[k][i])), (k, v)
    assert "lora_unet_caf\\xe9_proj" in cols["module"]


def _factor(rng: np.random.Generator, rows: int, r: int, cond: float) -> np.ndarray:
    """A rows×r matrix with singular values spread geometrically from 1 to 1/cond."""
    q1, _ = np.linalg.qr(rng.standard_normal((rows, r)))
    q2, _ = np.linalg.qr(rng.standard_normal((r, r)))
    return (q1 * np.geomspace(1.0, 1.0 / cond, r)) @ q2


def test_lora_sv_stack_takes_the_gram_path_only_within_its_bound_and_matches_a_dense_svd(monkeypatch: pytest.MonkeyPatch) -> None:
    """``lora_sv_stack``: well-conditioned factors go through Cholesky cores of their Gram matrices,
    ill-conditioned, rank-deficient, all-zero or overflowing ones through Householder QR; every spectrum
    matches a dense SVD of the formed product (each singular value within 1e-7 of itself plus 1e-12 of σ1),
    the norms match ``np.linalg.norm``, and a module's values do not depend on the stack it is in."""
    rng = np.random.default_rng(13)
    m, r, n = 96, 6, 80
    cases = {
        "cond 1": (_factor(rng, m, r, 1.0), _factor(rng, n, r, 1.0).T),
        "cond 10": (_factor(rng, m, r, 10.0), _factor(rng, n, r, 3.0).T),
        "cond 1e4": (_factor(rng, m, r, 1e4), _factor(rng, n, r, 2.0).T),
        "cond 1e9": (_factor(rng, m, r, 1e9), _factor(rng, n, r, 1.0).T),
        "rank-deficient": (np.c_[_factor(rng, m, r - 1, 2.0), np.zeros(m)], _factor(rng, n, r, 2.0).T),
        "zero up": (np.zeros((m, r)), _factor(rng, n, r, 2.0).T),
        "huge": (_factor(rng, m, r, 2.0) * 1e200, _factor(rng, n, r, 2.0).T * 1e-190),
        "f16 random": (rng.standard_normal((m, r)).astype(np.float16).astype(np.float64),
                       rng.standard_normal((r, n)).astype(np.float16).astype(np.float64)),
    }  # fmt: skip
    qr_calls: list[int] = []
    real_qr = stats._qr_r_overwrite

    def counted(a: np.ndarray) -> np.ndarray:
        qr_calls.append(a.shape[0])
        return real_qr(a)

    monkeypatch.setattr(stats, "_qr_r_overwrite", counted)
    ups = np.stack([u for u, _ in cases.values()])
    downs = np.stack([d for _, d in cases.values()])
    svs, nu, nd = stats.lora_sv_stack(ups, downs)
    # the Gram path for "cond 1", "cond 10" and "f16 random"; QR (one call per factor) for the other five
    assert qr_calls == [5, 5]
    for j, (name, (u, d)) in enumerate(cases.items()):
        want = np.linalg.svd(u @ d, compute_uv=False)[:r]
        assert np.all(np.abs(svs[j] - want) <= 1e-7 * want + 1e-12 * want[0]), (name, svs[j], want)
        with np.errstate(over="ignore"):  # ("huge": both norms overflow, as np.linalg.norm's do)
            assert nu[j] == pytest.approx(float(np.linalg.norm(u)), rel=1e-12), name
            assert nd[j] == pytest.approx(float(np.linalg.norm(d)), rel=1e-12), name
        qr_calls.clear()
        one, n1, d1 = stats.lora_sv_stack(ups[j : j + 1].copy(), downs[j : j + 1].copy())
        assert one[0].tolist() == svs[j].tolist() and n1[0] == nu[j] and d1[0] == nd[j], name


def test_gram_path_error_bound_holds_near_its_limit() -> None:
    """Modules just inside the Gram path's admission (condition numbers up to where the worst-case bound
    reaches GRAM_TOL) keep every singular value, small ones included, within GRAM_TOL of the QR path's
    value relative to itself."""
    rng = np.random.default_rng(4)
    m, r, n = 2048, 8, 1280
    for cond in (2.0, 8.0, 30.0, 100.0):
        u = _factor(rng, m, r, cond)
        d = _factor(rng, n, r, cond).T
        gu, gd = stats._grams(u[None], d[None])
        got, _, _ = stats.lora_sv_stack(u[None], d[None], (gu, gd))
        ref = stats.lowrank_sv(u, d.T)
        lu, ld = np.linalg.cholesky(gu[0]), np.linalg.cholesky(gd[0])
        eps = np.finfo(np.float64).eps
        bound = (m + r + 2) * eps * np.trace(gu[0]) * np.sum(np.linalg.inv(lu) ** 2)
        bound += (n + r + 2) * eps * np.trace(gd[0]) * np.sum(np.linalg.inv(ld) ** 2)
        if bound <= stats.GRAM_TOL:  # admitted: every value relative to itself
            np.testing.assert_allclose(got[0], ref, rtol=stats.GRAM_TOL, atol=0)
        else:
            np.testing.assert_allclose(got[0], ref, rtol=0, atol=1e-13 * ref[0])


@pytest.mark.parametrize(
    "extra",
    [
        {"alpha_source": "tensor"},
        {"a": 1},
        {"a": 1.0},
        {"a": True},
        {"a": 1, "b": "x"},
        {"b": "x", "a": 1},
        {"a": math.nan},
        {"a": [1, 2]},
        {"a": {"b": 1}},
        {"a": np.float64(2.5)},
        {"a": "caf\udce9"},
    ],
)
def test_extra_text_is_the_json_of_the_dict_whether_remembered_or_not(extra: dict) -> None:
    """module_columns' ``extra`` text is remembered for dicts of plain values; the types are part of the
    key (1, 1.0 and True are equal keys with different JSON)."""
    import json

    from registry.paths import clean_text

    want = clean_text(json.dumps(stats._finite(extra), sort_keys=True, allow_nan=False))
    assert stats._extra_text(extra) == want
    assert stats._extra_text(dict(extra)) == want  # (a second time: from the memo where it is kept)


def test_f16_codes_with_inf_or_nan_leave_the_stack_as_numpys_cast_would() -> None:
    """Modules whose F16 factors hold Inf or NaN codes (beside an F16 or an F32 factor), and modules with
    large finite values (F16 near its largest, F32 above 2**16), read through ``load_codes``: every row is
    the module-by-module path's, the non-finite modules counted as such."""
    rng = np.random.default_rng(77)
    t: dict[str, np.ndarray] = {}
    cases = [("nan", np.float32), ("inf", np.float32), ("nan", np.float16), ("-inf", np.float16),
             ("big", np.float32), ("big", np.float16), ("plain", np.float32), ("plain", np.float16)]  # fmt: skip
    for i, (what, down_dt) in enumerate(cases * 2):
        up = (rng.standard_normal((32, 4)) * 0.05).astype(np.float16)
        down = (rng.standard_normal((4, 32)) * 0.05).astype(down_dt)
        if what in ("nan", "inf", "-inf"):
            up[i % 32, i % 4] = float(what)
        elif what == "big":
            up[0, 0] = 65504.0
            if down_dt == np.float32:
                down[0, 0] = 1e6
        k = f"lora_unet_down_blocks_0_attentions_{i}_proj_in"
        t[f"{k}.lora_up.weight"], t[f"{k}.lora_down.weight"] = up, down
    want = [m.as_row() for m in _module_by_module(t)]
    shapes = {k: tuple(v.shape) for k, v in t.items()}

    def load_into(name: str, out: np.ndarray) -> None:
        np.copyto(out, t[name].reshape(out.shape), casting="unsafe")

    def load_codes(name: str, out: np.ndarray) -> bool:
        a = t[name]
        if a.dtype != np.float16:
            return False
        np.copyto(out, a.view("<i2").ravel())
        return True

    rep = lora_report(group_modules(t, shapes), lambda n: t[n], shapes=shapes, load_into=load_into, load_codes=load_codes)
    got = [m.as_row() for m in rep.modules]
    bad = {f"lora_unet_down_blocks_0_attentions_{i}_proj_in" for i, (w, _) in enumerate(cases * 2) if w in ("nan", "inf", "-inf")}
    assert {g["module"] for g in got if g["nonfinite"] > 0} == bad and len(bad) == 8
    for a, b in zip(got, want, strict=True):
        for k in a:
            same = a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
            assert same, (a["module"], k, a[k], b[k])


def test_f16_codes_widen_to_numpys_float64_for_every_code() -> None:
    """``_widen_f16_codes`` against numpy's F16→float64 cast at all 65,536 codes: the same bits for each of
    the 63,488 finite ones (zeros, subnormals, both signs), and at least 2**16 in magnitude for Inf and NaN
    codes (which the stacked path then treats as non-finite)."""
    codes16 = np.arange(65536, dtype=np.uint16).view("<i2")
    want = codes16.view("<f2").astype(np.float64)
    work = np.empty(codes16.size, dtype=np.int32)
    np.copyto(work, codes16)
    got = np.empty(codes16.size)
    stats._widen_f16_codes(work, got)
    finite = np.isfinite(want)
    assert int(finite.sum()) == 63488
    assert np.array_equal(got[finite].view(np.uint64), want[finite].view(np.uint64))
    assert np.all(np.abs(got[~finite]) >= stats._F16_CODED_LIMIT)
    assert float(np.abs(got[finite]).max()) == 65504.0 < stats._F16_CODED_LIMIT
