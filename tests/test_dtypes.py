from __future__ import annotations

import math

import numpy as np
import pytest

from registry.files.dtypes import ITEMSIZE, UnsupportedDtype, decode, decode_flat, f8_table


@pytest.mark.parametrize(
    "st,np_dtype",
    [("F16", np.float16), ("F32", np.float32), ("F64", np.float64), ("I8", np.int8), ("U8", np.uint8),
     ("I16", np.int16), ("U16", np.uint16), ("I32", np.int32), ("U32", np.uint32), ("I64", np.int64),
     ("U64", np.uint64), ("BOOL", np.bool_)],
)
def test_numpy_dtypes_round_trip(st: str, np_dtype: type) -> None:
    a = (np.arange(24) % 7 - 3).astype(np_dtype).reshape(2, 3, 4)
    out = decode(a.astype(np.dtype(np_dtype).newbyteorder("<")).tobytes(), st, (2, 3, 4))
    assert out.shape == (2, 3, 4)
    assert np.array_equal(out, a)
    if st in ("F16", "F32"):
        assert out.dtype == np.float32
    elif st == "F64":
        assert out.dtype == np.float64
    else:
        assert out.dtype == np_dtype


def test_big_endian_host_independent_bytes() -> None:
    # 1.0 as little-endian F32 is 00 00 80 3f
    assert decode(b"\x00\x00\x80\x3f", "F32", (1,))[0] == 1.0
    assert decode(b"\x00\x3c", "F16", (1,))[0] == 1.0
    assert decode(b"\x01\x00\x00\x00\x00\x00\x00\x00", "I64", ()).item() == 1


def test_bf16_known_values() -> None:
    codes = np.array([0x3F80, 0xC000, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x4049], dtype="<u2")
    out = decode(codes.tobytes(), "BF16", (7,))
    assert out.dtype == np.float32
    assert out[0] == 1.0 and out[1] == -2.0
    assert out[2] == math.inf and out[3] == -math.inf
    assert out[4] == np.float32(2.0**-133)  # smallest bf16 subnormal
    assert out[5] == 0.0 and math.copysign(1.0, float(out[5])) == -1.0
    assert out[6] == np.float32(3.140625)
    assert math.isnan(decode(b"\xc0\x7f", "BF16", (1,))[0])


@pytest.mark.parametrize(
    "dtype,code,value",
    [
        ("F8_E4M3", 0x38, 1.0), ("F8_E4M3", 0x7E, 448.0), ("F8_E4M3", 0x01, 2.0**-9), ("F8_E4M3", 0x08, 2.0**-6),
        ("F8_E4M3", 0xC0, -2.0), ("F8_E4M3", 0x7F, math.nan), ("F8_E4M3", 0xFF, math.nan), ("F8_E4M3", 0x78, 256.0),
        ("F8_E5M2", 0x3C, 1.0), ("F8_E5M2", 0x7B, 57344.0), ("F8_E5M2", 0x7C, math.inf), ("F8_E5M2", 0xFC, -math.inf),
        ("F8_E5M2", 0x7D, math.nan), ("F8_E5M2", 0x01, 2.0**-16),
        ("F8_E4M3FNUZ", 0x40, 1.0), ("F8_E4M3FNUZ", 0x7F, 240.0), ("F8_E4M3FNUZ", 0x80, math.nan),
        ("F8_E4M3FNUZ", 0x01, 2.0**-10), ("F8_E4M3FNUZ", 0xFF, -240.0),
        ("F8_E5M2FNUZ", 0x40, 1.0), ("F8_E5M2FNUZ", 0x7F, 57344.0), ("F8_E5M2FNUZ", 0x80, math.nan),
        ("F8_E5M2FNUZ", 0x01, 2.0**-17),
        ("F8_E8M0", 0x7F, 1.0), ("F8_E8M0", 0x00, 2.0**-127), ("F8_E8M0", 0xFE, 2.0**127), ("F8_E8M0", 0xFF, math.nan),
    ],
)
def test_f8_known_values(dtype: str, code: int, value: float) -> None:
    got = float(decode(bytes([code]), dtype, (1,))[0])
    if math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value


def test_f8_zero_signs() -> None:
    assert math.copysign(1.0, float(f8_table("F8_E4M3")[0x80])) == -1.0
    assert float(f8_table("F8_E4M3FNUZ")[0x00]) == 0.0
    # every non-NaN code of the fnuz formats is distinct (no −0)
    for dt in ("F8_E4M3FNUZ", "F8_E5M2FNUZ"):
        t = f8_table(dt)
        finite = t[~np.isnan(t)]
        assert len(np.unique(finite)) == 255


@pytest.mark.parametrize(
    "dtype,attr",
    [("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"), ("F8_E4M3FNUZ", "float8_e4m3fnuz"),
     ("F8_E5M2FNUZ", "float8_e5m2fnuz"), ("F8_E8M0", "float8_e8m0fnu")],
)
def test_f8_tables_match_ml_dtypes(dtype: str, attr: str) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (dev extra) is the independent reference")
    ref = np.arange(256, dtype=np.uint8).view(getattr(ml_dtypes, attr)).astype(np.float32)
    ours = f8_table(dtype)
    assert np.array_equal(ref, ours, equal_nan=True)
    assert np.array_equal(np.signbit(ref), np.signbit(ours))


def test_f8_decode_array_and_table_is_read_only() -> None:
    raw = bytes([0x38, 0x40, 0xB8])
    assert decode(raw, "F8_E4M3", (3,)).tolist() == [1.0, 2.0, -1.0]
    with pytest.raises(ValueError):
        f8_table("F8_E4M3")[0] = 5


@pytest.mark.parametrize("dtype", ["F4", "F6_E2M3", "F6_E3M2", "C64", "Q4"])
def test_unsupported_dtypes_raise_clearly(dtype: str) -> None:
    with pytest.raises(UnsupportedDtype) as e:
        decode(b"\0" * 8, dtype, (1,))
    assert dtype in str(e.value) and "supported are" in str(e.value)
    assert e.value.rule_id == "stats.unsupported-dtype"


def test_size_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="do not hold a F32 tensor of shape \\[3\\]"):
        decode(b"\0" * 8, "F32", (3,))
    with pytest.raises(ValueError):
        decode_flat(b"\0" * 3, "BF16")


def test_itemsizes() -> None:
    assert ITEMSIZE["BF16"] == 2 and ITEMSIZE["F8_E5M2"] == 1 and ITEMSIZE["I64"] == 8 and ITEMSIZE["BOOL"] == 1
