"""Fuzz properties shared by the short CI run (tests/files/test_fuzz.py) and the long one (bench/fuzz.py).

Each ``check_*`` feeds one input to a parser and asserts the contract: only the documented error types
escape (``FormatError`` subclasses, or nothing at all for the scanner, which turns every problem into a
verdict), and the call ends within a time bound.
"""

from __future__ import annotations

import contextlib
import json
import pickle  # writing only
import struct
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from registry.errors import FormatError, SafetensorsError
from registry.files.pickle_vm import OPNAMES, Limits, walk
from registry.files.pickles import SCANNER_ERROR, VERDICTS, scan_bytes
from registry.files.safetensors import DTYPE_BITS, parse_header, read_header

#: CPU seconds one input may take (CPU time, so that a busy shared machine does not make the bound flaky)
TIME_BOUND = 5.0
FUZZ_LIMITS = Limits(max_ops=200_000, max_objects=200_000, max_member_bytes=8 << 20, max_total_bytes=32 << 20)


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    t0 = time.process_time()
    out = fn(*args)
    took = time.process_time() - t0
    assert took < TIME_BOUND, f"{fn.__name__} took {took:.2f}s"
    return out


def check_safetensors_header(raw: bytes) -> None:
    try:
        h = _timed(parse_header, raw, len(raw), 8 + len(raw) + 64)
    except SafetensorsError:
        return
    assert all(t.name != "__metadata__" for t in h.tensors)


def check_read_header(tmp: Path, raw: bytes) -> None:
    p = tmp / "f.safetensors"
    p.write_bytes(raw)
    with contextlib.suppress(SafetensorsError):
        _timed(read_header, p)


def check_walk(raw: bytes) -> None:
    w = _timed(walk, raw, 0, None, FUZZ_LIMITS)
    assert w.complete or w.error is not None
    if w.error is not None:
        assert isinstance(w.error, FormatError) and w.error.rule_id in ("pickle.malformed", "pickle.limit")


def check_scan(raw: bytes) -> None:
    r = _timed(scan_bytes, raw, "<fuzz>", FUZZ_LIMITS)
    assert r.verdict in VERDICTS
    assert not any(SCANNER_ERROR in u for u in r.unscannable), r.unscannable
    if r.verdict == "safe":
        assert not r.unscannable and all(g.safety.label == "safe" for g in r.globals)
    if r.recovery is not None:
        for t in r.recovery.tensors:
            if t.readable:
                info = t.to_tensor_info()
                assert info.offset >= 0 and info.offset + info.nbytes <= len(raw)


@st.composite
def header_docs(draw: st.DrawFn) -> bytes:
    """Header JSON that is nearly right: real field names, wrong types and values mixed in."""
    scalar = st.one_of(st.integers(-5, 2**66), st.text(max_size=8), st.none(), st.booleans(), st.floats(allow_nan=False))
    dtype = st.one_of(st.sampled_from(sorted(DTYPE_BITS)), st.text(max_size=6), st.integers())
    shape = st.one_of(st.lists(st.integers(-2, 2**40), max_size=4), scalar)
    offs = st.one_of(st.lists(st.integers(-2, 2**40), min_size=0, max_size=3), scalar)
    entry = st.one_of(
        st.fixed_dictionaries({"dtype": dtype, "shape": shape, "data_offsets": offs}),
        st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets", "extra"]), scalar, max_size=4),
        scalar,
    )
    meta = st.one_of(st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), scalar), max_size=3), scalar)
    doc = draw(st.dictionaries(st.one_of(st.just("__metadata__"), st.text(max_size=6)), st.one_of(entry, meta), max_size=5))
    text = json.dumps(doc)
    if draw(st.booleans()):
        text = " " * draw(st.integers(0, 3)) + text
    return text.encode()


@st.composite
def opcode_soup(draw: st.DrawFn) -> bytes:
    """Sequences of real opcodes with short plausible arguments."""
    codes = sorted(OPNAMES)
    out = bytearray(b"\x80" + bytes([draw(st.integers(0, 5))]))
    for _ in range(draw(st.integers(0, 60))):
        op = draw(st.sampled_from(codes))
        out.append(op)
        name = OPNAMES[op]
        if name in ("GLOBAL", "INST"):
            out += draw(st.sampled_from([b"os\nsystem\n", b"torch\nFloatStorage\n", b"a\n", b"\n\n"]))
        elif name in ("BININT1", "BINGET", "BINPUT", "SHORT_BINUNICODE", "SHORT_BINBYTES", "SHORT_BINSTRING", "PROTO", "EXT1", "LONG1"):
            out.append(draw(st.integers(0, 8)))
        elif name in ("BININT2", "EXT2"):
            out += struct.pack("<H", draw(st.integers(0, 8)))
        elif name in ("BININT", "BINUNICODE", "BINBYTES", "BINSTRING", "LONG_BINGET", "LONG_BINPUT", "EXT4", "LONG4"):
            out += struct.pack("<I", draw(st.integers(0, 8)))
        elif name in ("BINUNICODE8", "BINBYTES8", "BYTEARRAY8", "FRAME", "BINFLOAT"):
            out += struct.pack("<Q", draw(st.integers(0, 8)))
        elif name in ("INT", "LONG", "GET", "PUT", "FLOAT"):
            out += draw(st.sampled_from([b"1\n", b"0\n", b"x\n", b"-3\n"]))
        elif name in ("STRING", "UNICODE", "PERSID"):
            out += draw(st.sampled_from([b"'os'\n", b"'system'\n", b"abc\n", b"'\n"]))
        if draw(st.booleans()):
            out += draw(st.binary(max_size=3))
    if draw(st.booleans()):
        out.append(0x2E)
    return bytes(out)


@lru_cache(maxsize=1)
def _seeds() -> tuple[bytes, ...]:
    from tests.pickle_builders import (
        P,
        ZipEntry,
        legacy_torch_bytes,
        npy_object_bytes,
        torch_zip_bytes,
        zip_bytes,
    )

    arrays = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "a.bias": np.ones(2, np.float16)}
    evil = P(2).call("posix", "system", "id").stop()
    return (
        torch_zip_bytes(arrays),
        torch_zip_bytes(arrays, wrap="state_dict"),
        legacy_torch_bytes(arrays),
        pickle.dumps({"x": [1, 2.0, "s", b"b", (None, True)]}, protocol=0),
        pickle.dumps({"x": [1, 2.0, "s", b"b", (None, True)]}, protocol=4),
        npy_object_bytes(pickle.dumps([1, 2], protocol=2)),
        zip_bytes([ZipEntry("a.npy", npy_object_bytes(evil), method=8)]),
        evil,
    )


def seed_files() -> st.SearchStrategy[bytes]:
    return st.sampled_from(range(8)).map(lambda i: _seeds()[i])


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    """A seed file with a few bytes flipped, inserted, deleted, or the file cut short."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        else:
            del data[i:]
    return bytes(data)
