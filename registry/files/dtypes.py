"""Decode safetensors tensor bytes into numpy arrays without torch.

Every dtype the format defines is little-endian. Integers and BOOL decode to their numpy types; floats
decode to ``float32`` (``float64`` for F64). bfloat16 is the upper half of a float32, so it widens by a
16-bit shift. The five 8-bit float formats decode through 256-entry lookup tables built here from their
bit layouts (sign, exponent, mantissa, bias and the special-value rules of each), never from a library:

======================  ====  ====  ====  ===========================================================
dtype                   exp   man   bias  special values
======================  ====  ====  ====  ===========================================================
``F8_E4M3`` (e4m3fn)    4     3     7     no infinities; NaN = ``S.1111.111`` (0x7f, 0xff); max 448
``F8_E5M2``             5     2     15    IEEE-like: exponent 31 is ±inf (mantissa 0) or NaN
``F8_E4M3FNUZ``         4     3     8     no infinities, no −0: 0x80 is the only NaN
``F8_E5M2FNUZ``         5     2     16    no infinities, no −0: 0x80 is the only NaN
``F8_E8M0`` (e8m0fnu)   8     0     127   unsigned powers of two 2^(e−127); 0xff is NaN; no zero
======================  ====  ====  ====  ===========================================================

The sub-byte and complex dtypes (``F6_E2M3``, ``F6_E3M2``, ``F4``, ``C64``) raise
:class:`UnsupportedDtype`.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from registry.errors import FormatError

_NUMPY: dict[str, str] = {
    "BOOL": "|b1",
    "U8": "|u1",
    "I8": "|i1",
    "U16": "<u2",
    "I16": "<i2",
    "U32": "<u4",
    "I32": "<i4",
    "U64": "<u8",
    "I64": "<i8",
    "F16": "<f2",
    "F32": "<f4",
    "F64": "<f8",
}

#: 8-bit float formats: (exponent bits, mantissa bits, bias, kind)
_F8: dict[str, tuple[int, int, int, str]] = {
    "F8_E4M3": (4, 3, 7, "fn"),
    "F8_E5M2": (5, 2, 15, "ieee"),
    "F8_E4M3FNUZ": (4, 3, 8, "fnuz"),
    "F8_E5M2FNUZ": (5, 2, 16, "fnuz"),
    "F8_E8M0": (8, 0, 127, "e8m0"),
}

#: bytes per element of every dtype :func:`decode` supports
ITEMSIZE: dict[str, int] = {**{k: np.dtype(v).itemsize for k, v in _NUMPY.items()}, "BF16": 2, **dict.fromkeys(_F8, 1)}

FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64", *_F8})


class UnsupportedDtype(FormatError):
    """The tensor's dtype is defined by the format but this reader cannot decode it."""

    def __init__(self, dtype: str) -> None:
        super().__init__(
            "stats.unsupported-dtype",
            f"cannot decode dtype {dtype!r}: supported are {', '.join(sorted(ITEMSIZE))}",
            dtype=dtype,
        )
        self.dtype = dtype


def _minifloat_value(code: int, ebits: int, mbits: int, bias: int, kind: str) -> float:
    """The real value of one 8-bit float code (NaN/inf per ``kind``)."""
    if kind == "e8m0":
        return float("nan") if code == 0xFF else 2.0 ** (code - bias)
    sign = -1.0 if code >> 7 else 1.0
    exp = (code >> mbits) & ((1 << ebits) - 1)
    man = code & ((1 << mbits) - 1)
    emax = (1 << ebits) - 1
    nan = math.copysign(math.nan, sign)  # NaN keeps its sign bit, as the hardware formats do
    if kind == "fnuz" and code == 0x80:
        return nan
    if kind == "ieee" and exp == emax:
        return sign * math.inf if man == 0 else nan
    if kind == "fn" and exp == emax and man == (1 << mbits) - 1:
        return nan
    if exp == 0:  # subnormal (or zero)
        return sign * (man / (1 << mbits)) * 2.0 ** (1 - bias)
    return sign * (1.0 + man / (1 << mbits)) * 2.0 ** (exp - bias)


@cache
def f8_table(dtype: str) -> np.ndarray:
    """The 256-entry float32 lookup table of an 8-bit float dtype (exact: every value fits float32)."""
    ebits, mbits, bias, kind = _F8[dtype]
    table = np.array([_minifloat_value(c, ebits, mbits, bias, kind) for c in range(256)], dtype=np.float64)
    out = table.astype(np.float32)
    finite = np.isfinite(table)
    assert np.array_equal(out[finite].astype(np.float64), table[finite]), dtype
    out.setflags(write=False)
    return out


def decode_flat(raw: bytes | bytearray | memoryview, dtype: str) -> np.ndarray:
    """Decode raw little-endian bytes into a 1-D array (float32 for every float but F64).

    F32/F64/integers return a read-only view of ``raw`` where possible (no copy); the other floats are
    decoded into a new array.
    """
    if dtype in _NUMPY:
        np_dtype = np.dtype(_NUMPY[dtype])
        if len(raw) % np_dtype.itemsize:
            raise ValueError(f"{len(raw)} bytes are not a whole number of {dtype} elements")
        arr = np.frombuffer(raw, dtype=np_dtype)
        if dtype == "F16":
            return arr.astype(np.float32)
        return arr.astype(np_dtype.newbyteorder("="), copy=False)
    if dtype == "BF16":
        if len(raw) % 2:
            raise ValueError(f"{len(raw)} bytes are not a whole number of BF16 elements")
        u16 = np.frombuffer(raw, dtype="<u2")
        return (u16.astype(np.uint32) << 16).view(np.float32)
    if dtype in _F8:
        return f8_table(dtype)[np.frombuffer(raw, dtype=np.uint8)]
    raise UnsupportedDtype(dtype)


def decode(raw: bytes | bytearray | memoryview, dtype: str, shape: tuple[int, ...] | list[int]) -> np.ndarray:
    """Decode one tensor's bytes into an array of ``shape``; see the module docstring for the types."""
    if dtype not in ITEMSIZE:
        raise UnsupportedDtype(dtype)
    n = 1
    for d in shape:
        n *= int(d)
    if len(raw) != n * ITEMSIZE[dtype]:
        raise ValueError(
            f"{len(raw)} bytes do not hold a {dtype} tensor of shape {list(shape)} ({n * ITEMSIZE[dtype]} bytes)"
        )
    return decode_flat(raw, dtype).reshape(tuple(int(d) for d in shape))


def decode_into(raw: bytes | bytearray | memoryview, dtype: str, out: np.ndarray) -> None:
    """Decode one tensor's bytes straight into ``out`` (any float or integer array of the tensor's element
    count, e.g. a slot of a preallocated float64 stack), converting as ``np.asarray(decode(...), out.dtype)``
    would, without the intermediate array for F16/F32/F64 (widening F16 to float64 directly is exact)."""
    if dtype not in ITEMSIZE:
        raise UnsupportedDtype(dtype)
    if len(raw) != out.size * ITEMSIZE[dtype]:
        raise ValueError(f"{len(raw)} bytes do not hold {out.size} {dtype} elements ({out.size * ITEMSIZE[dtype]} bytes)")
    src = np.frombuffer(raw, dtype=np.dtype(_NUMPY[dtype])) if dtype in ("F16", "F32", "F64") else decode_flat(raw, dtype)
    np.copyto(out, src.reshape(out.shape), casting="unsafe")
