"""Builders of tiny real model files for tests (no file in the repository needs to be a model).

``write_safetensors`` writes a valid file byte by byte (independently of the ``safetensors`` package, so
tests can compare against it); ``raw_safetensors`` lets a test write any header, valid or not.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

NP_TO_ST = {
    np.dtype("float16"): "F16",
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("int16"): "I16",
    np.dtype("int32"): "I32",
    np.dtype("int64"): "I64",
    np.dtype("bool"): "BOOL",
}

#: ../shared/corpus beside the checkout; MODELREG_CORPUS overrides (e.g. for a git worktree elsewhere)
CORPUS = Path(os.environ.get("MODELREG_CORPUS") or Path(__file__).resolve().parent.parent.parent / "shared" / "corpus")


def raw_safetensors(header: Mapping[str, Any] | bytes, data: bytes = b"", header_len: int | None = None) -> bytes:
    """Bytes of a safetensors-like file: 8-byte length, header (dict or raw bytes), data."""
    hb = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    n = len(hb) if header_len is None else header_len
    return struct.pack("<Q", n) + hb + data


def safetensors_bytes(
    tensors: Mapping[str, np.ndarray | tuple[str, list[int], bytes]],
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """A valid safetensors file. Values are numpy arrays, or ``(dtype, shape, raw bytes)`` for dtypes
    numpy lacks (BF16, F8_*)."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    chunks: list[bytes] = []
    pos = 0
    for name, value in tensors.items():
        if isinstance(value, tuple):
            dtype, shape, raw = value
        else:
            arr = np.asarray(value)  # (np.ascontiguousarray would turn a 0-d alpha into shape [1])
            if not arr.flags.c_contiguous:
                arr = arr.copy(order="C")
            dtype, shape, raw = NP_TO_ST[arr.dtype], list(arr.shape), arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + len(raw)]}
        chunks.append(raw)
        pos += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)  # align the data section like the reference writer does
    return struct.pack("<Q", len(hb)) + hb + b"".join(chunks)


def write_safetensors(
    path: Path,
    tensors: Mapping[str, np.ndarray | tuple[str, list[int], bytes]],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes(tensors, metadata))
    return path


def header_json_to_file(header_json: Path, out: Path, fill: str = "zeros", seed: int = 0) -> Path:
    """Turn a corpus header (``{source, keys: {name: {dtype, shape}}, metadata}``) into a real file."""
    doc = json.loads(header_json.read_text())
    rng = np.random.default_rng(seed)
    from registry.files.safetensors import DTYPE_BITS

    tensors: dict[str, tuple[str, list[int], bytes]] = {}
    for name, entry in doc["keys"].items():
        n = 1
        for d in entry["shape"]:
            n *= d
        nbytes = n * DTYPE_BITS[entry["dtype"]] // 8
        if fill == "zeros":
            raw = bytes(nbytes)
        else:
            raw = (rng.standard_normal(n).astype(np.float32) * 0.01).astype(np.float16).tobytes()
            if entry["dtype"] == "F32":
                raw = (rng.standard_normal(n).astype(np.float32) * 0.01).tobytes()
            elif entry["dtype"] == "BF16":
                raw = ((rng.standard_normal(n).astype(np.float32) * 0.01).view(np.uint32) >> 16).astype(np.uint16).tobytes()
            raw = raw[:nbytes].ljust(nbytes, b"\0")
        tensors[name] = (entry["dtype"], list(entry["shape"]), raw)
    return write_safetensors(out, tensors, doc.get("metadata") or None)
