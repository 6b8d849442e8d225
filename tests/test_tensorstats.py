from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pytest

from registry.files.safetensors import read_header
from registry.tensorstats import CheckpointSide, TensorStat, diff_checkpoints, tensor_stats, tensor_summary
from tests.builders import write_safetensors


def _ref(x: np.ndarray) -> dict[str, float]:
    f = x[np.isfinite(x)].astype(np.float64)
    return {"l2": float(np.sqrt(np.sum(f * f))), "mean": float(f.mean()), "std": float(f.std()), "absmax": float(np.abs(f).max())}


def _check_moments(s: TensorStat, arr: np.ndarray, half: bool) -> None:
    """l2, mean and std against the float64 reference: to rounding for float64 sums; for 16-bit tensors
    (summed in float32) within the proven bound F32_SUM_BOUND: |Δ‖x‖²| ≤ B·‖x‖², |ΔΣx| ≤ B·Σ|x|,
    and the variance within 6·B (not cancelled: otherwise it is summed again in float64)."""
    from registry.tensorstats import F32_SUM_BOUND as B

    f = arr[np.isfinite(arr)].astype(np.float64)
    r = _ref(arr)
    l2, mean, std = s.l2, s.mean, s.std
    assert l2 is not None and mean is not None and std is not None
    if not half:
        assert l2 == pytest.approx(r["l2"], rel=1e-12)
        assert mean == pytest.approx(r["mean"], rel=1e-10, abs=1e-15)
        assert std == pytest.approx(r["std"], rel=1e-9)
        return
    assert abs(l2**2 - r["l2"] ** 2) <= B * r["l2"] ** 2
    assert abs(mean - r["mean"]) <= B * float(np.abs(f).mean())
    assert abs(std**2 - r["std"] ** 2) <= 6 * B * r["std"] ** 2 + 1e-300


def _bf16(x: np.ndarray) -> tuple[str, list[int], bytes]:
    u = (x.astype(np.float32).view(np.uint32) >> 16).astype("<u2")
    return "BF16", list(x.shape), u.tobytes()


@pytest.mark.parametrize("chunk", [64, 4096, 4 << 20])
def test_stats_match_numpy_across_chunk_sizes(tmp_path: Path, chunk: int) -> None:
    rng = np.random.default_rng(0)
    a32 = (rng.standard_normal((37, 53)) * 3 + 1.5).astype(np.float32)
    a16 = (rng.standard_normal(1001) * 0.02).astype(np.float16)
    a16[::7] = 0
    bf = rng.standard_normal((16, 9)).astype(np.float32)
    bf_exact = ((bf.view(np.uint32) >> 16) << 16).view(np.float32)
    ints = np.arange(-50, 50, dtype=np.int8)
    p = write_safetensors(tmp_path / "c.safetensors", {"a32": a32, "a16": a16, "bf": _bf16(bf), "i8": ints})
    st = {s.name: s for s in tensor_stats(p, read_header(p).tensors, chunk_bytes=chunk)}
    for name, arr in [("a32", a32), ("a16", a16), ("bf", bf_exact), ("i8", ints)]:
        s, r = st[name], _ref(arr)
        assert s.numel == arr.size
        _check_moments(s, arr, half=name in ("a16", "bf"))
        assert s.absmax == r["absmax"]
        assert s.zero_frac == np.count_nonzero(arr == 0) / arr.size
        assert (s.nan, s.inf, s.error) == (0, 0, None)
    assert st["a16"].zero_frac == 143 / 1001
    raw = p.read_bytes()
    h = read_header(p)
    for t in h.tensors:
        assert st[t.name].digest == "blake3:" + blake3.blake3(raw[t.offset : t.offset + t.nbytes]).hexdigest()


def test_nonfinite_half_precision(tmp_path: Path) -> None:
    h = np.array([0.5, np.nan, -np.inf, 0.0, -0.0, 2.0, np.inf], dtype=np.float16)
    bf = np.array([0.5, np.nan, -np.inf, 0.0, -3.0], dtype=np.float32)
    p = write_safetensors(tmp_path / "h.safetensors", {"h": h, "bf": _bf16(bf)})
    st = {s.name: s for s in tensor_stats(p, read_header(p).tensors)}
    assert (st["h"].nan, st["h"].inf, st["h"].zero_frac, st["h"].absmax, st["h"].mean) == (1, 2, 2 / 7, 2.0, 0.625)
    assert (st["bf"].nan, st["bf"].inf, st["bf"].zero_frac, st["bf"].absmax) == (1, 1, 1 / 5, 3.0)
    assert st["bf"].l2 == pytest.approx(math.sqrt(9.25), rel=1e-15)


def test_nonfinite_values_are_counted_and_excluded(tmp_path: Path) -> None:
    x = np.array([1.0, np.nan, -3.0, np.inf, 0.0, -np.inf, np.nan], dtype=np.float32)
    p = write_safetensors(tmp_path / "n.safetensors", {"model.diffusion_model.out.2.weight": x, "ok": np.ones(3, np.float32)})
    stats = tensor_stats(p, read_header(p).tensors, chunk_bytes=8)
    s = next(s for s in stats if s.name.endswith("weight"))
    assert (s.nan, s.inf) == (2, 2)
    assert s.mean == pytest.approx(-2 / 3, rel=1e-15)
    assert s.l2 == pytest.approx(math.sqrt(10.0), rel=1e-15)
    assert s.absmax == 3.0 and s.zero_frac == 1 / 7
    summary, findings = tensor_summary(stats)
    assert (summary["nonfinite_tensors"], summary["nan"], summary["inf"]) == (1, 2, 2)
    (f,) = findings
    assert f.rule_id == "stats.nonfinite-tensor" and f.evidence["tensors"] == ["model.diffusion_model.out.2.weight"]


def test_large_mean_small_spread_is_recomputed_around_the_mean(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = (1000.0 + rng.standard_normal(5000) * 1e-3).astype(np.float64)
    h = (1.0 + np.arange(-8, 8) * 2.0**-10).astype(np.float16)  # 1 ± a few ulp: cancels in Σx² − (Σx)²/n
    p = write_safetensors(tmp_path / "m.safetensors", {"x": x, "h": h})
    st = {s.name: s for s in tensor_stats(p, read_header(p).tensors, chunk_bytes=4096)}
    assert st["x"].std == pytest.approx(float(np.std(x)), rel=1e-9)
    assert st["x"].mean == pytest.approx(float(np.mean(x)), rel=1e-15)
    assert st["h"].std == pytest.approx(float(np.std(h.astype(np.float64))), rel=1e-12)


def test_f8_and_all_nan_and_empty_tensors(tmp_path: Path) -> None:
    f8 = ("F8_E4M3", [4], bytes([0x38, 0x40, 0xB8, 0x00]))  # 1, 2, -1, 0
    p = write_safetensors(tmp_path / "f.safetensors", {"f8": f8, "nan": np.full(3, np.nan, np.float32), "empty": np.zeros((0, 4), np.float32)})
    st = {s.name: s for s in tensor_stats(p, read_header(p).tensors)}
    assert (st["f8"].mean, st["f8"].absmax, st["f8"].zero_frac) == (0.5, 2.0, 0.25)
    assert st["f8"].l2 == pytest.approx(math.sqrt(6.0), rel=1e-15)
    assert (st["nan"].nan, st["nan"].mean, st["nan"].l2) == (3, None, None)
    assert (st["empty"].numel, st["empty"].l2, st["empty"].zero_frac) == (0, 0.0, None)


def test_undecodable_dtype_is_hashed_and_reported(tmp_path: Path) -> None:
    p = write_safetensors(tmp_path / "u.safetensors", {"c": ("C64", [2], b"\x00" * 16), "x": np.ones(2, np.float32)})
    stats = tensor_stats(p, read_header(p).tensors)
    c = next(s for s in stats if s.name == "c")
    assert c.l2 is None and c.digest is not None and "C64" in (c.error or "")
    summary, findings = tensor_summary(stats)
    assert summary["undecodable_tensors"] == 1 and [f.rule_id for f in findings] == ["stats.undecodable-tensor"]


def test_truncated_file_is_an_error_value(tmp_path: Path) -> None:
    p = write_safetensors(tmp_path / "t.safetensors", {"a": np.ones(4, np.float32), "b": np.ones(64, np.float32)})
    h = read_header(p)
    p.write_bytes(p.read_bytes()[:-16])
    st = {s.name: s for s in tensor_stats(p, h.tensors)}
    assert st["a"].l2 == 2.0 and st["b"].error == "tensor extends past the end of the file"


def _side(p: Path, with_path: bool = True) -> CheckpointSide:
    h = read_header(p)
    st = tensor_stats(p, h.tensors)
    return CheckpointSide(h.tensors, p if with_path else None, {s.name: s.digest for s in st if s.digest},
                          {s.name: s.l2 for s in st if s.l2 is not None})


def test_diff_of_two_checkpoints(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = {
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "model.diffusion_model.middle_block.1.proj_out.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "first_stage_model.decoder.conv_in.weight": np.ones(5, np.float32),
        "only_in_a": np.ones(2, np.float32),
        "reshaped": np.ones(4, np.float32),
    }
    tuned = dict(base)
    delta = rng.standard_normal((8, 8)).astype(np.float32) * 0.1
    tuned["model.diffusion_model.middle_block.1.proj_out.weight"] = base["model.diffusion_model.middle_block.1.proj_out.weight"] + delta
    tuned["first_stage_model.decoder.conv_in.weight"] = np.ones(5, np.float16)  # same values, other dtype
    del tuned["only_in_a"]
    tuned["only_in_b"] = np.ones(3, np.float32)
    tuned["reshaped"] = np.ones((2, 2), np.float32)
    pa = write_safetensors(tmp_path / "a.safetensors", base)
    pb = write_safetensors(tmp_path / "b.safetensors", tuned)
    rep = diff_checkpoints(_side(pa), _side(pb))
    by = {d.name: d for d in rep.tensors}
    same = by["model.diffusion_model.input_blocks.1.1.proj_in.weight"]
    assert (same.status, same.how, same.rel_change) == ("identical", "digest", 0.0)
    ch = by["model.diffusion_model.middle_block.1.proj_out.weight"]
    a = base["model.diffusion_model.middle_block.1.proj_out.weight"].astype(np.float64)
    b = tuned["model.diffusion_model.middle_block.1.proj_out.weight"].astype(np.float64)
    assert (ch.status, ch.how, ch.component, ch.block) == ("changed", "read", "unet", "middle")
    assert ch.rel_change == pytest.approx(np.linalg.norm(b - a) / np.linalg.norm(a), rel=1e-12)
    assert ch.cosine == pytest.approx(float(np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b)), rel=1e-12)
    vae = by["first_stage_model.decoder.conv_in.weight"]
    assert (vae.status, vae.how, vae.dtype_b) == ("identical", "read", "F16")
    assert by["only_in_a"].status == "only-a" and by["only_in_b"].status == "only-b"
    assert by["reshaped"].status == "shape-changed"
    s = rep.summary
    assert s["status"] == {"changed": 1, "identical": 2, "only-a": 1, "only-b": 1, "shape-changed": 1}
    assert s["identical_by_digest"] == 1
    assert s["bytes_read"] == 8 * 8 * 4 * 2 + 5 * 4 + 5 * 2
    assert s["top"][0]["tensor"] == "model.diffusion_model.middle_block.1.proj_out.weight"
    assert rep.by_block[0]["block"] == "middle" and rep.by_block[0]["diff_share"] == 1.0


def test_identical_tensors_need_no_file_when_digests_agree(tmp_path: Path) -> None:
    x = {"w": np.arange(10, dtype=np.float32), "v": np.ones(3, np.float32)}
    y = {"w": np.arange(10, dtype=np.float32), "v": np.zeros(3, np.float32)}
    pa = write_safetensors(tmp_path / "a.safetensors", x)
    pb = write_safetensors(tmp_path / "b.safetensors", y)
    rep = diff_checkpoints(_side(pa, with_path=False), _side(pb, with_path=False))
    by = {d.name: d for d in rep.tensors}
    assert (by["w"].status, by["w"].how) == ("identical", "digest")
    assert (by["v"].status, by["v"].how, by["v"].rel_change) == ("changed", "digest", None)
    assert rep.summary["bytes_read"] == 0


def test_split_chunks_on_two_threads_match_numpy(tmp_path: Path) -> None:
    """Chunks of at least SPLIT_BYTES are summed in two halves on two threads and hashed on a third;
    tensors spanning several such chunks (with NaN/Inf, zeros, a large mean) give numpy's figures."""
    from registry import tensorstats

    rng = np.random.default_rng(7)
    big16 = (rng.standard_normal(3 << 20) * 0.05 + 0.01).astype(np.float16)
    big16[5], big16[(3 << 20) - 3], big16[1 << 20] = np.nan, np.inf, 0
    big32 = (500.0 + rng.standard_normal(700_001) * 1e-3).astype(np.float32)  # cancels: second read
    bfv = rng.standard_normal(1 << 20).astype(np.float32)
    small = rng.standard_normal(33).astype(np.float32)
    p = write_safetensors(tmp_path / "big.safetensors", {"a": big16, "b": big32, "c": _bf16(bfv), "d": small})
    chunk = 2 << 20
    assert chunk >= tensorstats.SPLIT_BYTES * 2
    h = read_header(p)
    st = {s.name: s for s in tensor_stats(p, h.tensors, chunk_bytes=chunk)}
    bf_exact = ((bfv.view(np.uint32) >> 16) << 16).view(np.float32)
    for name, arr in [("a", big16), ("b", big32), ("c", bf_exact), ("d", small)]:
        s, r = st[name], _ref(arr)
        _check_moments(s, arr, half=name in ("a", "c"))
        assert s.absmax == r["absmax"]
        assert s.zero_frac == np.count_nonzero(arr == 0) / arr.size
    assert (st["a"].nan, st["a"].inf) == (1, 1)
    raw = p.read_bytes()
    for t in h.tensors:
        assert st[t.name].digest == "blake3:" + blake3.blake3(raw[t.offset : t.offset + t.nbytes]).hexdigest()


def test_f16_bit_conversion_is_exact_for_every_finite_code() -> None:
    from registry.tensorstats import bf16_to_f32, f16_to_f32

    codes = np.arange(65536, dtype=np.uint16)
    finite = codes[(codes & 0x7FFF) < 0x7C00]
    got = f16_to_f32(finite, np.empty(finite.size, dtype=np.uint32))
    want = finite.view(np.float16).astype(np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit for bit, ±0 and subnormals too
    got_bf = bf16_to_f32(codes, np.empty(codes.size, dtype=np.uint32))
    assert np.array_equal(got_bf.view(np.uint32), codes.astype(np.uint32) << 16)


@pytest.mark.parametrize("case", ["every-code", "one-giant", "decades", "bf16-wide"])
def test_float32_sums_stay_within_the_proven_bound(tmp_path: Path, case: str) -> None:
    """16-bit tensors are summed in float32 blocks; the figures stay within F32_SUM_BOUND of a float64
    reference on inputs chosen to stress the summation (every fp16 value, one huge value among tiny
    ones, magnitudes spread over ten decades), and bf16 outside the float32-safe range falls back to
    float64 (no overflow, exact)."""
    rng = np.random.default_rng(1)
    if case == "every-code":
        codes = np.arange(65536, dtype=np.uint16)
        arr = rng.permutation(np.tile(codes[(codes & 0x7FFF) < 0x7C00], 5)).view(np.float16)
    elif case == "one-giant":
        arr = np.full(300_001, 1e-3, dtype=np.float16)
        arr[123_457] = 60000.0
    elif case == "decades":
        arr = (rng.choice([-1.0, 1.0], 400_000) * 10.0 ** rng.uniform(-6, 4, 400_000)).astype(np.float16)
    else:
        arr = (rng.standard_normal(200_000) * 1e25).astype(np.float32)
        arr = ((arr.view(np.uint32) >> 16) << 16).view(np.float32)
    t = _bf16(arr) if arr.dtype == np.float32 else arr
    p = write_safetensors(tmp_path / "s.safetensors", {"x": t})
    s = tensor_stats(p, read_header(p).tensors)[0]
    _check_moments(s, arr.astype(np.float64), half=case != "bf16-wide")
    assert s.absmax == float(np.max(np.abs(arr.astype(np.float64))))
    assert s.zero_frac == np.count_nonzero(arr == 0) / arr.size


def test_half_tensor_with_a_dominant_mean_is_summed_again_in_float64(tmp_path: Path) -> None:
    """fp16 layer-norm-like weights (1 ± 1e-3): float32 sums would lose the spread, so the variance is
    summed again around the mean in float64 and matches the reference to float64 rounding."""
    arr = (1.0 + np.random.default_rng(2).standard_normal(50_000) * 1e-3).astype(np.float16)
    p = write_safetensors(tmp_path / "n.safetensors", {"w": arr})
    s = tensor_stats(p, read_header(p).tensors)[0]
    r = _ref(arr)
    assert s.std == pytest.approx(r["std"], rel=1e-9) and s.mean == pytest.approx(r["mean"], rel=1e-12)


# -- the same figures as one block per NumPy call, whatever the threads (issue 13) --------------------


def _codes_value(codes: np.ndarray, dtype: str) -> np.ndarray:
    """16-bit codes as float64 values through NumPy's own casts (independent of the bit tricks)."""
    with np.errstate(invalid="ignore"):  # signalling NaN codes
        if dtype == "F16":
            return codes.view(np.float16).astype(np.float64)
        return (codes.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _block_terms(values: np.ndarray) -> list[tuple[float, float]]:
    """(Σx, Σx²) of each block of SUM_BLOCK float32 values, one block per NumPy call (the old path)."""
    from registry.tensorstats import SUM_BLOCK

    x = values.astype(np.float32)
    return [
        (float(x[i : i + SUM_BLOCK].sum()), float(np.square(x[i : i + SUM_BLOCK]).sum())) for i in range(0, x.size, SUM_BLOCK)
    ]


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_grouped_block_sums_are_the_one_block_per_call_sums(dtype: str) -> None:
    """Several blocks widened per call and summed as rows of one reduction give every block's own
    pairwise sums bit for bit: whole groups, a partial last group, a partial last block, one value."""
    from registry.tensorstats import SUM_BLOCK, SUM_GROUP, _Moments, _Scratch

    rng = np.random.default_rng(13)
    for n in [1, 7, 129, SUM_BLOCK - 1, SUM_BLOCK, SUM_GROUP, SUM_GROUP + 1, 2 * SUM_GROUP + 3 * SUM_BLOCK + 12345]:
        vals = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 2, n)
        if dtype == "F16":
            codes = vals.astype(np.float16).view(np.uint16)
        else:
            codes = (vals.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        m = _Moments(_Scratch(), terms=[])
        m._sums_f32(codes, dtype)
        assert m.n == n and m.terms == _block_terms(_codes_value(codes, dtype)), n


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_every_16bit_code_alone_gives_its_exact_figures(dtype: str) -> None:
    """Each of the 65,536 codes as a chunk of its own (the integer paths: |x|max from the code's
    magnitude bits, zero / NaN / Inf from bit patterns, the float32 range test, the fused first pass):
    counts, |x|max, Σx and Σx² are the code's value through NumPy's casts, exactly, and the sums run in
    float32 exactly for the codes whose magnitude lies in the float32-safe range."""
    from registry.tensorstats import _F32_HI, _F32_LO, _Moments, _Scratch

    codes = np.arange(65536, dtype=np.uint16)
    vals = _codes_value(codes, dtype)
    raw = codes.astype("<u2").tobytes()
    sc = _Scratch()
    for c in range(65536):
        m = _Moments(sc)
        m.add(memoryview(raw)[2 * c : 2 * c + 2], dtype)
        v = float(vals[c])
        got = (m.nan, m.inf, m.zeros, m.n)
        if math.isnan(v):
            assert got == (1, 0, 0, 0), hex(c)
            continue
        if math.isinf(v):
            assert got == (0, 1, 0, 0), hex(c)
            continue
        assert got == (0, 0, int(v == 0), 1), hex(c)
        assert (m.absmax, m.s, m.sq) == (abs(v), v, v * v), hex(c)
        assert m.f32 == (_F32_LO[dtype] <= c & 0x7FFF <= _F32_HI[dtype]), hex(c)


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_every_16bit_code_in_one_chunk_matches_the_general_path(dtype: str) -> None:
    """Chunks holding every code (shuffled, so NaN/Inf and extremes fall in every group) or every
    finite code, or values only inside or only outside bf16's float32 range: the fused path either
    declines (and the general path runs) or gives the general path's figures bit for bit."""
    from registry import tensorstats as ts

    rng = np.random.default_rng(1)
    codes = np.arange(65536, dtype=np.uint16)
    nonfinite = 0x7C00 if dtype == "F16" else 0x7F80
    finite = codes[(codes & 0x7FFF) < nonfinite]
    cases = [rng.permutation(np.tile(codes, 3)), rng.permutation(np.tile(finite, 5)), finite[:3000]]
    if dtype == "BF16":
        mag = finite & 0x7FFF
        inside = finite[(mag >= ts._F32_LO["BF16"]) & (mag <= ts._F32_HI["BF16"])]
        cases += [rng.permutation(np.tile(inside, 4)), finite[(mag < ts._F32_LO["BF16"])], finite[mag > ts._F32_HI["BF16"]]]
    for u in cases:
        fused = ts._Moments(ts._Scratch(), terms=[])
        fused.add(memoryview(u.astype("<u2").tobytes()), dtype)
        general = ts._Moments(ts._Scratch(), terms=[])
        general._add_half_f32 = lambda *a: False  # type: ignore[method-assign]
        general.add(memoryview(u.astype("<u2").tobytes()), dtype)
        for k in ("n", "terms", "absmax", "zeros", "nan", "inf", "f32"):
            assert getattr(fused, k) == getattr(general, k), k
        v = _codes_value(u, dtype)
        fin = v[np.isfinite(v)]
        assert (fused.nan, fused.inf, fused.zeros) == (int(np.isnan(v).sum()), int(np.isinf(v).sum()), int((v == 0).sum()))
        assert fused.absmax == float(np.abs(fin).max())


def _old_sequential_stats(path: Path, chunk: int) -> dict[str, tuple[Any, ...]]:
    """The figures the way the code before the task graph computed them, written out directly: per
    tensor, chunks of ``chunk`` bytes, each at least SPLIT_BYTES split in two halves (first halves to one
    accumulator, second halves to another, then added), 16-bit values through NumPy's casts summed one
    float32 block per call, other dtypes in float64; BLAKE3 of the tensor's bytes with hashlib-style
    one-shot hashing. Where Σx² − (Σx)²/n cancels, the variance again in float64 around the mean, one
    whole chunk at a time."""
    from registry.stats import single_threaded_blas
    from registry.tensorstats import _CANCEL, _CANCEL32, _F32_HI, _F32_LO, SPLIT_BYTES

    single_threaded_blas()  # (as tensor_stats: a two-thread dot product rounds differently)
    raw = path.read_bytes()
    out: dict[str, tuple[Any, ...]] = {}
    for t in read_header(path).tensors:
        side = [[0, 0.0, 0.0], [0, 0.0, 0.0]]  # n, s, sq
        absmax, zeros, nan, inf, f32 = 0.0, 0, 0, 0, False
        data = raw[t.offset : t.offset + t.nbytes]
        halves: list[tuple[int, bytes]] = []
        for a in range(0, len(data), chunk):
            c = data[a : a + chunk]
            if len(c) >= SPLIT_BYTES:
                h = len(c) // 2 - (len(c) // 2) % 8
                halves += [(0, c[:h]), (1, c[h:])]
            else:
                halves.append((0, c))
        for k, c in halves:
            if t.dtype in ("F16", "BF16"):
                codes = np.frombuffer(c, "<u2")
                v = _codes_value(codes, t.dtype)
                fin = np.isfinite(v)
                nan += int(np.isnan(v).sum())
                inf += int(np.isinf(v).sum())
                zeros += int((v == 0).sum())
                v, codes = v[fin], codes[fin]
                if not v.size:
                    continue
                absmax = max(absmax, float(np.abs(v).max()))
                top = int((codes & 0x7FFF).max())
                in_range = _F32_LO[t.dtype] <= top <= _F32_HI[t.dtype]
                f32 = f32 or in_range
                terms = _block_terms(v) if in_range else [(float(v.sum()), float(np.dot(v, v)))]
            else:
                v = np.frombuffer(c, "<f4" if t.dtype == "F32" else "<f8").astype(np.float64)
                zeros += int((v == 0).sum())
                absmax = max(absmax, float(np.abs(v).max()))
                terms = [(float(v.sum()), float(np.dot(v, v)))]
            side[k][0] += v.size
            for s, sq in terms:
                side[k][1] += s
                side[k][2] += sq
        n, s, sq = side[0][0] + side[1][0], side[0][1] + side[1][1], side[0][2] + side[1][2]
        mean = s / n
        m2 = max(sq - s * s / n, 0.0)
        if sq > 0 and m2 < (_CANCEL32 if f32 else _CANCEL) * sq:
            n2, s2, sq2 = 0, 0.0, 0.0
            for a in range(0, len(data), chunk):
                c = data[a : a + chunk]
                if t.dtype in ("F16", "BF16"):
                    v = _codes_value(np.frombuffer(c, "<u2"), t.dtype)
                else:
                    v = np.frombuffer(c, "<f4" if t.dtype == "F32" else "<f8").astype(np.float64)
                v = v[np.isfinite(v)] - mean
                n2, s2, sq2 = n2 + v.size, s2 + float(v.sum()), sq2 + float(np.dot(v, v))
            mean += s2 / n2
            m2 = max(sq2 - s2 * s2 / n2, 0.0)
        std = math.sqrt(m2 / n)
        out[t.name] = (math.sqrt(sq), mean, std, absmax, zeros / t.numel, nan, inf, "blake3:" + blake3.blake3(data).hexdigest())
    return out


@pytest.mark.parametrize("chunk", [4 << 20, 3 << 20, 1 << 20])
def test_figures_are_the_sequential_one_block_per_call_figures(tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bit for bit the figures of the straightforward sequential computation, on 1 to 3 threads and with
    a ring of 1, 2 or the default buffers (so reads wait for slots and tasks finish in any order): fp16
    and bf16 tensors over several chunks (one with NaN, Inf and zeros; bf16 inside and outside the
    float32 range), float32 and float64 ones, small tensors read together, a partial last chunk."""
    from registry import tensorstats as ts

    rng = np.random.default_rng(21)
    a16 = (rng.standard_normal((5 << 20) // 2 + 777) * 0.05 + 0.01).astype(np.float16)
    a16[[3, 1 << 20, (2 << 20) + 5, 9]] = [np.nan, np.inf, -np.inf, 0]
    arrays: dict[str, Any] = {
        "a16": a16,
        "b16": (rng.standard_normal(3 << 20) * 0.02).astype(np.float16),
        "bf": _bf16(rng.standard_normal(1_700_001) * 0.02),
        "bf_wide": _bf16(rng.standard_normal(600_000) * 1e25),
        "f32": (rng.standard_normal(900_001) * 3 + 1.5).astype(np.float32),
        "f64": rng.standard_normal(300_003),
    }
    for j in range(30):
        arrays[f"small{j}"] = (rng.standard_normal(int(rng.integers(1, 3000))) * 0.1).astype([np.float16, np.float32][j % 2])
    p = write_safetensors(tmp_path / "c.safetensors", arrays)
    want = _old_sequential_stats(p, chunk)
    h = read_header(p)
    for ring, threads in [(ts.RING, 2), (1, 2), (2, 3), (ts.RING, 1)]:
        monkeypatch.setattr(ts, "RING", ring)
        for s in tensor_stats(p, h.tensors, chunk_bytes=chunk, threads=threads):
            got = (s.l2, s.mean, s.std, s.absmax, s.zero_frac, s.nan, s.inf, s.digest)
            assert got == want[s.name], (s.name, ring, threads)


def test_a_failing_read_stops_both_threads_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error in any task (here the file ending early) ends the run with that error, no thread left
    waiting."""
    import threading

    from registry import tensorstats as ts

    p = write_safetensors(tmp_path / "c.safetensors", {"a": np.ones(3 << 20, np.float16), "b": np.ones(5, np.float32)})
    h = read_header(p)
    real = ts._pread
    calls = {"n": 0}

    def flaky(fd: int, buf: bytearray, a: int, b: int, at: int = 0) -> memoryview:
        calls["n"] += 1
        if calls["n"] == 7:
            raise OSError("file ended at byte 12, expected 34")
        return real(fd, buf, a, b, at)

    monkeypatch.setattr(ts, "_pread", flaky)
    before = threading.active_count()
    with pytest.raises(OSError, match="file ended"):
        tensor_stats(p, h.tensors)
    assert threading.active_count() == before
