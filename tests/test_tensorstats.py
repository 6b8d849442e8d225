from __future__ import annotations

import math
from pathlib import Path

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
