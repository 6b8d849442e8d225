"""Builders of pickle-based model files for tests: benign PyTorch-like checkpoints and hostile files.

Everything here WRITES pickles (hand-assembled opcodes, or ``pickle.dumps`` of objects whose
``__reduce__`` names a callable); nothing here reads one back with ``pickle``. Torch is not needed: the
layout of ``torch.save`` output (zip with ``<prefix>/data.pkl`` and stored, 64-byte-aligned storages; or
the legacy magic-number format) is reproduced byte by byte.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def corpus_dir() -> Path | None:
    """The shared corpus (``tests.builders.CORPUS``, which ``$MODELREG_CORPUS`` overrides), or None."""
    from tests.builders import CORPUS

    return CORPUS if CORPUS.is_dir() else None


CORPUS_DIR = corpus_dir()

NP_TO_STORAGE = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("int16"): "ShortStorage",
    np.dtype("int8"): "CharStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


class P:
    """A pickle assembler: each method appends one opcode (and returns self, to chain)."""

    def __init__(self, proto: int | None = 2) -> None:
        self.b = bytearray()
        self._memo: dict[tuple[str, str], int] = {}
        self._next = 0
        if proto is not None and proto >= 2:
            self.b += bytes([0x80, proto])

    def raw(self, data: bytes) -> P:
        self.b += data
        return self

    # values
    def str(self, s: str) -> P:
        e = s.encode()
        if len(e) < 256:
            self.b += b"\x8c" + bytes([len(e)]) + e  # SHORT_BINUNICODE (protocol 4)
        else:
            self.b += b"X" + struct.pack("<I", len(e)) + e
        return self

    def ustr(self, s: str) -> P:
        """BINUNICODE (protocol 1+), what torch's protocol-2 pickles use."""
        e = s.encode()
        self.b += b"X" + struct.pack("<I", len(e)) + e
        return self

    def string0(self, s: str) -> P:
        """Protocol-0 STRING: a quoted literal on its own line."""
        self.b += b"S" + repr(s).encode() + b"\n"
        return self

    def binstring(self, s: str) -> P:
        e = s.encode("latin-1")
        self.b += b"U" + bytes([len(e)]) + e  # SHORT_BINSTRING
        return self

    def bytes_(self, data: bytes) -> P:
        self.b += b"C" + bytes([len(data)]) + data if len(data) < 256 else b"B" + struct.pack("<I", len(data)) + data
        return self

    def int(self, i: int) -> P:
        if 0 <= i < 256:
            self.b += b"K" + bytes([i])
        elif 0 <= i < 65536:
            self.b += b"M" + struct.pack("<H", i)
        elif -(2**31) <= i < 2**31:
            self.b += b"J" + struct.pack("<i", i)
        else:
            n = (i.bit_length() + 8) // 8
            self.b += b"\x8a" + bytes([n]) + i.to_bytes(n, "little", signed=True)
        return self

    def none(self) -> P:
        return self.raw(b"N")

    def false(self) -> P:
        return self.raw(b"\x89")

    def true(self) -> P:
        return self.raw(b"\x88")

    # structure
    def mark(self) -> P:
        return self.raw(b"(")

    def tuple(self) -> P:
        return self.raw(b"t")

    def tuple_n(self, n: int) -> P:
        return self.raw({0: b")", 1: b"\x85", 2: b"\x86", 3: b"\x87"}[n])

    def empty_dict(self) -> P:
        return self.raw(b"}")

    def empty_list(self) -> P:
        return self.raw(b"]")

    def setitem(self) -> P:
        return self.raw(b"s")

    def setitems(self) -> P:
        return self.raw(b"u")

    def append(self) -> P:
        return self.raw(b"a")

    def appends(self) -> P:
        return self.raw(b"e")

    def reduce(self) -> P:
        return self.raw(b"R")

    def build(self) -> P:
        return self.raw(b"b")

    def newobj(self) -> P:
        return self.raw(b"\x81")

    def binpersid(self) -> P:
        return self.raw(b"Q")

    def pop(self) -> P:
        return self.raw(b"0")

    def dup(self) -> P:
        return self.raw(b"2")

    def put(self, i: int) -> P:
        return self.raw(b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i))

    def get(self, i: int) -> P:
        return self.raw(b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i))

    def memoize(self) -> P:
        return self.raw(b"\x94")

    # imports
    def glob(self, module: str, name: str, memo: bool = False) -> P:
        """GLOBAL, memoised (BINPUT once, BINGET afterwards) when ``memo``, as torch's pickles are."""
        key = (module, name)
        if memo and key in self._memo:
            return self.get(self._memo[key])
        self.b += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        if memo:
            self._memo[key] = self._next
            self.put(self._next)
            self._next += 1
        return self

    def stack_global(self, module: str, name: str) -> P:
        return self.str(module).str(name).raw(b"\x93")

    def call(self, module: str, name: str, *args: Any) -> P:
        """``module.name(*args)`` with GLOBAL + args tuple + REDUCE (args: str, int, bytes)."""
        self.glob(module, name)
        self.mark()
        for a in args:
            self.value(a)
        return self.tuple().reduce()

    def value(self, a: Any) -> P:
        if isinstance(a, str):
            return self.ustr(a)
        if isinstance(a, bool):
            return self.true() if a else self.false()
        if isinstance(a, int):
            return self.int(a)
        if isinstance(a, bytes):
            return self.bytes_(a)
        if a is None:
            return self.none()
        raise TypeError(type(a))

    def stop(self) -> bytes:
        self.b += b"."
        return bytes(self.b)


def check_parses(data: bytes) -> None:
    """Validate a hand-made pickle with pickletools (a parser: it never imports or calls anything)."""
    pickletools.dis(data, out=io.StringIO())


# -- benign torch-like checkpoints -------------------------------------------------------------------


@dataclass(frozen=True)
class TensorRef:
    """A tensor in a checkpoint: a view of storage ``key`` (offset/stride in elements)."""

    name: str
    key: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int = 0
    parameter: bool = False


def contiguous(shape: Sequence[int]) -> tuple[int, ...]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def state_dict_from_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[list[TensorRef], dict[str, np.ndarray]]:
    refs, storages = [], {}
    for i, (name, arr) in enumerate(arrays.items()):
        key = str(i)
        storages[key] = np.ascontiguousarray(arr).reshape(-1)
        refs.append(TensorRef(name, key, tuple(arr.shape), contiguous(arr.shape)))
    return refs, storages


def _tensor(p: P, t: TensorRef, storages: Mapping[str, np.ndarray], legacy: bool) -> None:
    st = storages[t.key]
    p.glob("torch._utils", "_rebuild_tensor_v2", memo=True)
    p.mark()
    p.mark().ustr("storage").glob("torch", NP_TO_STORAGE[st.dtype], memo=True).ustr(t.key).ustr("cpu").int(st.size)
    if legacy:
        p.none()
    p.tuple().binpersid()
    p.int(t.offset)
    p.mark()
    for d in t.shape:
        p.int(d)
    p.tuple()
    p.mark()
    for s in t.stride:
        p.int(s)
    p.tuple()
    p.false()
    p.glob("collections", "OrderedDict", memo=True).tuple_n(0).reduce()
    p.tuple().reduce()


def state_dict_pickle(
    refs: Sequence[TensorRef],
    storages: Mapping[str, np.ndarray],
    container: str = "OrderedDict",
    legacy: bool = False,
    wrap: str | None = None,
    extra: Iterable[tuple[str, Any]] = (),
) -> bytes:
    """The pickle ``torch.save`` writes for a state dict (protocol 2, memoised globals).

    ``container``: ``OrderedDict``, ``dict`` or ``list``; ``wrap``: put the state dict under this key of an
    outer dict (``state_dict`` for Lightning checkpoints); ``extra``: more (key, str|int) items of the
    outer dict.
    """
    p = P(2)
    if wrap is not None:
        p.empty_dict().mark()
        for k, v in extra:
            p.ustr(k).value(v)
        p.ustr(wrap)
    if container == "OrderedDict":
        p.glob("collections", "OrderedDict", memo=True).tuple_n(0).reduce()
    elif container == "dict":
        p.empty_dict()
    else:
        p.empty_list()
    p.mark()
    for t in refs:
        if container != "list":
            p.ustr(t.name)
        if t.parameter:
            p.glob("torch._utils", "_rebuild_parameter", memo=True)
            p.mark()
            _tensor(p, TensorRef(t.name, t.key, t.shape, t.stride, t.offset, False), storages, legacy)
            p.true().glob("collections", "OrderedDict", memo=True).tuple_n(0).reduce().tuple().reduce()
        else:
            _tensor(p, t, storages, legacy)
    p.appends() if container == "list" else p.setitems()
    if wrap is not None:
        p.setitems()
    data = p.stop()
    check_parses(data)
    return data


# -- zip writing (byte by byte, so tests control every field) ------------------------------------------


@dataclass
class ZipEntry:
    name: str
    data: bytes
    method: int = 0
    flags: int = 0
    #: name written in the local header (default: ``name``)
    local_name: str | None = None
    #: CRC written in both headers (default: the real one)
    crc: int | None = None
    #: align the data to this many bytes with a padding extra field (torch uses 64)
    align: int = 64


def zip_bytes(entries: Sequence[ZipEntry], prefix: bytes = b"") -> bytes:
    out = bytearray(prefix)
    central = bytearray()
    for e in entries:
        payload = e.data
        if e.method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = c.compress(e.data) + c.flush()
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        lname = (e.local_name if e.local_name is not None else e.name).encode()
        cname = e.name.encode()
        off = len(out) - len(prefix)
        extra = b""
        if e.align:
            pad = (-(len(out) + 30 + len(lname) + 4)) % e.align
            extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, e.flags, e.method, 0, 0x21, crc, len(payload), len(e.data), len(lname), len(extra)
        )
        out += lname + extra + payload
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02", 20, 20, e.flags, e.method, 0, 0x21, crc, len(payload), len(e.data), len(cname), 0, 0, 0, 0, 0, off,
        )  # fmt: skip
        central += cname
    cd_off = len(out) - len(prefix)
    out += central
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), cd_off, 0)
    return bytes(out)


def torch_zip_bytes(
    arrays: Mapping[str, np.ndarray] | None = None,
    refs: Sequence[TensorRef] | None = None,
    storages: Mapping[str, np.ndarray] | None = None,
    prefix: str = "archive",
    container: str = "OrderedDict",
    wrap: str | None = None,
    data_pkl: bytes | None = None,
    extra_members: Sequence[ZipEntry] = (),
    pkl_entry: Mapping[str, Any] | None = None,
) -> bytes:
    """A zip laid out like ``torch.save``: ``data.pkl``, ``byteorder``, ``data/<key>``, ``version``."""
    if arrays is not None:
        refs, storages = state_dict_from_arrays(arrays)
    refs = list(refs or [])
    storages = dict(storages or {})
    pkl = data_pkl if data_pkl is not None else state_dict_pickle(refs, storages, container=container, wrap=wrap)
    entries = [ZipEntry(f"{prefix}/data.pkl", pkl, **dict(pkl_entry or {}))]
    entries.append(ZipEntry(f"{prefix}/byteorder", b"little"))
    for key, st in storages.items():
        entries.append(ZipEntry(f"{prefix}/data/{key}", st.astype(st.dtype.newbyteorder("<")).tobytes()))
    entries.append(ZipEntry(f"{prefix}/version", b"3\n"))
    entries.extend(extra_members)
    return zip_bytes(entries)


def legacy_torch_bytes(
    arrays: Mapping[str, np.ndarray] | None = None,
    refs: Sequence[TensorRef] | None = None,
    storages: Mapping[str, np.ndarray] | None = None,
    magic_pickle: bytes | None = None,
    trailing: bytes = b"",
) -> bytes:
    """The legacy (pre-1.6) ``torch.save`` format: five pickles, then each storage as u64 count + bytes."""
    import pickle  # writing only

    if arrays is not None:
        refs, storages = state_dict_from_arrays(arrays)
    refs = list(refs or [])
    storages = dict(storages or {})
    out = bytearray(magic_pickle if magic_pickle is not None else pickle.dumps(TORCH_MAGIC, protocol=2))
    out += pickle.dumps(1001, protocol=2)
    out += pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    out += state_dict_pickle(refs, storages, legacy=True)
    out += pickle.dumps(list(storages), protocol=2)
    for st in storages.values():
        out += struct.pack("<Q", st.size) + st.astype(st.dtype.newbyteorder("<")).tobytes()
    return bytes(out + trailing)


def npy_object_bytes(pickle_payload: bytes, shape: tuple[int, ...] = (1,)) -> bytes:
    header = repr({"descr": "|O", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + pickle_payload


# -- hostile payloads ---------------------------------------------------------------------------------


class Reduce:
    """An object whose pickle calls ``func(*args)`` on load (for ``pickle.dumps`` at any protocol)."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def canary_payloads(canary: str) -> dict[str, bytes]:
    """Pickles that would create the file ``canary`` if anything ever loaded them."""
    import builtins
    import pickle  # writing only

    cmd = f"touch {canary}"
    out: dict[str, bytes] = {}
    for proto in range(6):
        out[f"os.system p{proto}"] = pickle.dumps(Reduce(os.system, cmd), protocol=proto)
    out["builtins.exec"] = pickle.dumps(Reduce(builtins.exec, f"open({canary!r}, 'w').close()"), protocol=2)
    out["builtins.open"] = P(2).call("builtins", "open", canary, "w").stop()
    out["inst protocol 0"] = b"(S" + repr(cmd).encode() + b"\nios\nsystem\n."
    out["string-fed stack_global"] = P(4).string0("os").string0("system").raw(b"\x93").mark().ustr(cmd).tuple().reduce().stop()
    return out


def safetensors_with_length(n: int, meta: bool, pad: bool, data: bytes = b"\0\0\0\0\0\0\x80?") -> bytes:
    """A valid safetensors file whose header is exactly ``n`` bytes: one F32 tensor of 2 values; the
    header is stretched through a metadata value (``meta``) or the tensor's name, and ends in 1–7 spaces
    of padding (``pad``) or directly in ``}``."""

    def header(extra: int) -> bytes:
        d: dict[str, Any] = {}
        if meta:
            d["__metadata__"] = {"format": "pt", "note": "x" * extra}
        d["w" + ("" if meta else "_" * extra)] = {"dtype": "F32", "shape": [2], "data_offsets": [0, len(data)]}
        return json.dumps(d, separators=(",", ":")).encode()

    spaces = n % 7 + 1 if pad else 0
    h = header(n - spaces - len(header(0))) + b" " * spaces
    assert len(h) == n
    return struct.pack("<Q", n) + h + data


def safetensors_pickle_polyglot(payload: bytes) -> bytes:
    """A valid safetensors file that Python's pickle loader (and torch's loader with weights_only off, which
    reads a non-zip file as a legacy pickle) would run; it is only ever scanned here, never loaded: the header length is ``0x58 + 256·L``, so byte 0 is BINUNICODE
    with the 4-byte length ``L``; the string ends inside a metadata value made of SHORT_BINBYTES hops
    (``C`` + a printable length byte), and the last hop lands on the first tensor's data: the payload."""
    pre = b'{"__metadata__":{"p":"'
    tail = b'"},"a":{"dtype":"U8","shape":[%d],"data_offsets":[0,%d]}}' % (len(payload), len(payload))
    for L in range(len(pre) + 3, 400):  # the string must end inside the metadata value
        n = 0x58 + 256 * L
        land, end = 5 + L, 8 + n  # where the pickle resumes after the string; where tensor data starts
        k = (end - land) % 128 - 2  # the last hop; every hop before it skips 126 bytes
        if len(tail) <= k <= 126 and k not in (34, 92):  # a JSON string may not hold '"' or '\\' raw
            break
    hops = (end - land - k - 2) // 128
    text = pre + b"a" * (land - 8 - len(pre)) + (b"C~" + b"a" * 126) * hops + b"C" + bytes([k])
    text += b"b" * (k - len(tail)) + tail
    assert len(text) == n and end == 8 + len(text)
    return struct.pack("<Q", n) + text + payload
