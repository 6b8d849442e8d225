"""Strict safetensors header parser and validator.

The rules are those of the reference implementation (huggingface/safetensors ``tensor.rs``), checked in
its order, plus what a strict auditor reports and the reference tolerates (duplicate keys, unknown fields
in tensor entries). The header is read with a bounded read: a declared header length of 10^18 costs a
single 8-byte read.

Fatal problems (no tensor table can be recovered) raise :class:`SafetensorsError`; every other violation
becomes a :class:`Finding` on the returned header, so that one broken entry does not hide the rest.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from registry.errors import SafetensorsError
from registry.findings import Finding, Severity, finding, rule

MAX_HEADER_LEN = 100_000_000

#: element size in bits for every dtype the format defines
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "U16": 16,
    "I16": 16,
    "F16": 16,
    "BF16": 16,
    "U32": 32,
    "I32": 32,
    "F32": 32,
    "U64": 64,
    "I64": 64,
    "F64": 64,
    "C64": 64,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "F4": 4,
}

_KNOWN_ENTRY_FIELDS = {"dtype", "shape", "data_offsets"}

R_TOO_SHORT = rule("safetensors.too-short", Severity.HIGH, "File shorter than the 8-byte header length")
R_HEADER_TOO_LARGE = rule(
    "safetensors.header-too-large", Severity.HIGH, "Declared header length exceeds the 100,000,000-byte limit"
)
R_HEADER_BEYOND_EOF = rule("safetensors.header-beyond-eof", Severity.HIGH, "Header extends past the end of the file")
R_HEADER_NOT_UTF8 = rule("safetensors.header-not-utf8", Severity.HIGH, "Header is not valid UTF-8")
R_HEADER_NOT_JSON = rule("safetensors.header-not-json", Severity.HIGH, "Header is not valid JSON")
R_HEADER_NOT_OBJECT = rule("safetensors.header-not-object", Severity.HIGH, "Header JSON is not an object")
R_BAD_ENTRY = rule("safetensors.bad-entry", Severity.HIGH, "A tensor entry is malformed")
R_UNKNOWN_DTYPE = rule("safetensors.unknown-dtype", Severity.HIGH, "A tensor has a dtype the format does not define")
R_SIZE_MISMATCH = rule(
    "safetensors.size-mismatch", Severity.HIGH, "A tensor's byte range does not match its dtype and shape"
)
R_GAP = rule("safetensors.gap", Severity.HIGH, "Unused bytes between tensors")
R_OVERLAP = rule("safetensors.overlap", Severity.HIGH, "Tensors overlap in the data section")
R_TRUNCATED = rule("safetensors.truncated", Severity.HIGH, "File ends before the tensor data does")
R_TRAILING = rule(
    "safetensors.trailing-bytes", Severity.HIGH, "Bytes after the last tensor (possible polyglot file)"
)
R_DUPLICATE_KEY = rule(
    "safetensors.duplicate-key", Severity.MEDIUM, "The header repeats a key (the reference keeps the last)"
)
R_UNKNOWN_FIELD = rule("safetensors.unknown-field", Severity.LOW, "A tensor entry has fields the format does not define")
R_METADATA_TYPE = rule(
    "safetensors.metadata-not-strings", Severity.MEDIUM, "__metadata__ is not a map of strings to strings"
)
R_LEADING_WS = rule(
    "safetensors.leading-whitespace", Severity.INFO, "Header JSON starts with whitespace (accepted by the reference)"
)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry. ``begin``/``end`` are relative to the data section; ``offset`` is absolute."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    offset: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class SafetensorsHeader:
    header_len: int
    data_start: int
    file_size: int
    tensors: tuple[TensorInfo, ...]
    #: ``__metadata__`` as strings (non-string values are JSON-encoded and reported), or None when absent
    metadata: dict[str, str] | None
    #: ``__metadata__`` exactly as it stood in the header (any JSON value)
    raw_metadata: Any
    findings: tuple[Finding, ...]

    @property
    def valid(self) -> bool:
        """True when the reference implementation would load the file (no HIGH finding)."""
        return not any(f.severity >= Severity.HIGH for f in self.findings)

    @property
    def data_end(self) -> int:
        return self.data_start + max((t.end for t in self.tensors), default=0)


def _n(x: int) -> str:
    return f"{x:,}"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _pairs_hook_factory(dups: list[tuple[str, int]]) -> Any:
    depth_marker: list[int] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                dups.append((k, len(depth_marker)))
            seen[k] = v
        return seen

    return hook


def read_header_bytes(fh: BinaryIO, file_size: int) -> tuple[int, bytes]:
    """Return ``(N, header bytes)`` with bounded reads; raise :class:`SafetensorsError` on rules 1–3."""
    if file_size < 8:
        raise SafetensorsError(
            R_TOO_SHORT.id,
            f"file is {file_size} bytes long; a safetensors file starts with an 8-byte header length",
            file_size=file_size,
        )
    fh.seek(0)
    first = fh.read(8)
    if len(first) < 8:
        raise SafetensorsError(R_TOO_SHORT.id, "could not read the 8-byte header length", file_size=file_size)
    (n,) = struct.unpack("<Q", first)
    if n > MAX_HEADER_LEN:
        raise SafetensorsError(
            R_HEADER_TOO_LARGE.id,
            f"header length field says {_n(n)} bytes; the format allows at most {_n(MAX_HEADER_LEN)}",
            header_len=n,
        )
    if 8 + n > file_size:
        raise SafetensorsError(
            R_HEADER_BEYOND_EOF.id,
            f"header length field says {_n(n)} bytes but only {_n(file_size - 8)} bytes follow it "
            f"(file truncated, or not a safetensors file)",
            header_len=n,
            file_size=file_size,
        )
    raw = fh.read(n)
    if len(raw) != n:
        raise SafetensorsError(
            R_HEADER_BEYOND_EOF.id, f"file ended while reading the {_n(n)}-byte header", header_len=n
        )
    return n, raw


def parse_header(raw: bytes, header_len: int, file_size: int) -> SafetensorsHeader:
    """Validate header bytes (rules 4–7 and the strict extras) against the file size."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SafetensorsError(
            R_HEADER_NOT_UTF8.id, f"header is not UTF-8: invalid byte at header offset {e.start}", position=e.start
        ) from None
    findings: list[Finding] = []
    if text[:1].isspace():
        findings.append(finding(R_LEADING_WS.id, "header JSON begins with whitespace"))
    dups: list[tuple[str, int]] = []
    try:
        doc = json.loads(text, object_pairs_hook=_pairs_hook_factory(dups), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        detail = str(e).split(":")[0] if isinstance(e, json.JSONDecodeError) else str(e)
        pos = getattr(e, "pos", None)
        where = f" at header offset {pos}" if pos is not None else ""
        raise SafetensorsError(
            R_HEADER_NOT_JSON.id, f"header is not valid JSON ({detail}{where})", position=pos
        ) from None
    if not isinstance(doc, dict):
        raise SafetensorsError(
            R_HEADER_NOT_OBJECT.id, f"header JSON is a {type(doc).__name__}, not an object"
        )
    for key, _depth in dups:
        findings.append(
            finding(
                R_DUPLICATE_KEY.id,
                f"header repeats the key {key!r}; loaders keep the last occurrence, so two readers may disagree",
                key=key,
            )
        )
    data_start = 8 + header_len
    raw_meta = doc.get("__metadata__")
    metadata: dict[str, str] | None = None
    if "__metadata__" in doc:
        if isinstance(raw_meta, dict) and all(isinstance(v, str) for v in raw_meta.values()):
            metadata = dict(raw_meta)
        else:
            bad = (
                [k for k, v in raw_meta.items() if not isinstance(v, str)]
                if isinstance(raw_meta, dict)
                else []
            )
            if isinstance(raw_meta, dict):
                metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw_meta.items()}
                msg = f"__metadata__ values must be strings; {len(bad)} are not (first: {bad[0]!r})"
            else:
                msg = f"__metadata__ must be an object of strings, found {type(raw_meta).__name__}"
            findings.append(finding(R_METADATA_TYPE.id, msg, keys=bad[:20]))

    tensors: list[TensorInfo] = []
    for name, entry in doc.items():
        if name == "__metadata__":
            continue
        t = _parse_entry(name, entry, data_start, findings)
        if t is not None:
            tensors.append(t)

    # rule 6: contiguous, sorted by offset, no gaps or overlaps
    ordered = sorted(tensors, key=lambda t: (t.begin, t.end))
    pos = 0
    prev: TensorInfo | None = None
    for t in ordered:
        if t.begin > pos:
            where = f"after tensor {prev.name!r}" if prev else "at the start of the data section"
            findings.append(
                finding(
                    R_GAP.id,
                    f"{_n(t.begin - pos)} unused bytes {where}, before tensor {t.name!r}",
                    tensor=t.name,
                    gap_begin=pos,
                    gap_end=t.begin,
                )
            )
        elif t.begin < pos and prev is not None:
            findings.append(
                finding(
                    R_OVERLAP.id,
                    f"tensor {t.name!r} starts {_n(pos - t.begin)} bytes inside tensor {prev.name!r}",
                    tensor=t.name,
                    other=prev.name,
                    overlap=pos - t.begin,
                )
            )
        if t.end >= pos:
            pos = t.end
            prev = t

    # rule 7: the data ends exactly at the end of the file
    data_len = file_size - data_start
    if pos > data_len:
        last = max(tensors, key=lambda t: t.end)
        findings.append(
            finding(
                R_TRUNCATED.id,
                f"file ends {_n(pos - data_len)} bytes before tensor {last.name!r} does "
                f"(file is {_n(file_size)} bytes, the header needs {_n(data_start + pos)})",
                tensor=last.name,
                missing=pos - data_len,
                file_size=file_size,
                expected_size=data_start + pos,
            )
        )
    elif pos < data_len:
        findings.append(
            finding(
                R_TRAILING.id,
                f"{_n(data_len - pos)} bytes follow the last tensor; a safetensors file must end where its "
                f"data ends (extra bytes can hide a second file format)",
                trailing=data_len - pos,
                data_end=data_start + pos,
            )
        )
    return SafetensorsHeader(
        header_len=header_len,
        data_start=data_start,
        file_size=file_size,
        tensors=tuple(tensors),
        metadata=metadata,
        raw_metadata=raw_meta,
        findings=tuple(findings),
    )


def _parse_entry(name: str, entry: Any, data_start: int, findings: list[Finding]) -> TensorInfo | None:
    # the well-formed entry (nearly every one): the checks below in a few steps, with no finding to make
    if type(entry) is dict and len(entry) == 3:
        dtype, shape, offs = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if type(dtype) is str and type(shape) is list and type(offs) is list and len(offs) == 2:
            begin, end = offs
            bits = DTYPE_BITS.get(dtype)
            if (
                bits is not None
                and type(begin) is int
                and type(end) is int
                and 0 <= begin <= end
                and all(type(d) is int and d >= 0 for d in shape)
            ):
                bits *= math.prod(shape)
                if bits % 8 == 0 and bits // 8 == end - begin:
                    return TensorInfo(name, dtype, tuple(shape), begin, end, data_start + begin)
    return _parse_entry_checked(name, entry, data_start, findings)


def _parse_entry_checked(name: str, entry: Any, data_start: int, findings: list[Finding]) -> TensorInfo | None:
    if not isinstance(entry, dict):
        findings.append(
            finding(R_BAD_ENTRY.id, f"entry for tensor {name!r} is a {type(entry).__name__}, not an object", tensor=name)
        )
        return None
    missing = [f for f in ("dtype", "shape", "data_offsets") if f not in entry]
    if missing:
        findings.append(
            finding(R_BAD_ENTRY.id, f"tensor {name!r} lacks {', '.join(missing)}", tensor=name, missing=missing)
        )
        return None
    extra = sorted(set(entry) - _KNOWN_ENTRY_FIELDS)
    if extra:
        findings.append(
            finding(
                R_UNKNOWN_FIELD.id,
                f"tensor {name!r} has fields the format does not define: {', '.join(extra)}",
                tensor=name,
                fields=extra,
            )
        )
    dtype = entry["dtype"]
    shape = entry["shape"]
    offs = entry["data_offsets"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        findings.append(
            finding(R_BAD_ENTRY.id, f"tensor {name!r} has shape {shape!r}; expected a list of non-negative integers", tensor=name)
        )
        return None
    if (
        not isinstance(offs, list)
        or len(offs) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offs)
    ):
        findings.append(
            finding(R_BAD_ENTRY.id, f"tensor {name!r} has data_offsets {offs!r}; expected [begin, end]", tensor=name)
        )
        return None
    begin, end = offs
    if begin > end:
        findings.append(
            finding(R_BAD_ENTRY.id, f"tensor {name!r} ends (byte {end}) before it begins (byte {begin})", tensor=name)
        )
        return None
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        findings.append(
            finding(R_UNKNOWN_DTYPE.id, f"tensor {name!r} has dtype {dtype!r}, which the format does not define", tensor=name, dtype=dtype)
        )
        return TensorInfo(name, str(dtype), tuple(shape), begin, end, data_start + begin)
    numel = 1
    for d in shape:
        numel *= d
    bits = numel * DTYPE_BITS[dtype]
    if bits % 8:
        findings.append(
            finding(R_SIZE_MISMATCH.id, f"tensor {name!r}: {numel} elements of {dtype} do not fill whole bytes", tensor=name)
        )
    elif bits // 8 != end - begin:
        findings.append(
            finding(
                R_SIZE_MISMATCH.id,
                f"tensor {name!r} is {dtype} {list(shape)} = {_n(bits // 8)} bytes, but its data_offsets span {_n(end - begin)}",
                tensor=name,
                expected=bits // 8,
                actual=end - begin,
            )
        )
    return TensorInfo(name, dtype, tuple(shape), begin, end, data_start + begin)


def read_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Read and validate a safetensors file's header with bounded reads."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        n, raw = read_header_bytes(fh, size)
    return parse_header(raw, n, size)
