"""Content-based format detection: the bytes decide, never the extension.

``sniff_bytes(head, size)`` names a format from the first bytes of a file (and its size);
``sniff(path)`` does the same and, for zip archives, looks at the central directory to tell a PyTorch
checkpoint from a TorchScript archive, a numpy ``.npz`` or any other zip. ``extension_mismatch`` turns a
disagreement between a file's name and its content into a finding.

Formats: ``safetensors``, ``pytorch-zip``, ``pytorch-legacy`` (magic-number pickle followed by more
pickles and raw storages), ``pickle`` (protocols 0–5), ``torchscript``, ``zip``, ``7z``, ``tar``, ``npy``,
``npz``, ``gguf``, ``torchscript-mobile`` (flatbuffer), ``gzip``, compressed streams (``zlib``, ``bzip2``, ``xz``, ``lzma``, ``zstd``, ``lz4``:
what ``joblib`` writes), ``git-lfs-pointer``, ``html``, ``text``, ``empty``, ``unknown``.
"""

from __future__ import annotations

import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.findings import Finding, Severity, finding, rule

SNIFF_BYTES = 4096

#: the first pickle of a legacy ``torch.save`` file holds this number
TORCH_MAGIC = 0x1950A86A20F9469CFC6C

#: formats whose loading can run a pickle (``torch.load``, ``pickle.load``, ``numpy.load(allow_pickle)``)
PICKLE_FORMATS = frozenset({"pytorch-zip", "pytorch-legacy", "pickle", "torchscript", "zip", "7z", "tar", "npy", "npz"})

#: single compressed streams (``joblib.dump(compress=…)`` writes a pickle this way)
COMPRESSED_FORMATS = frozenset({"gzip", "zlib", "bzip2", "xz", "lzma", "zstd", "lz4"})

R_EXT_MISMATCH = rule(
    "sniff.extension-mismatch",
    Severity.MEDIUM,
    "The file's extension disagrees with its content",
    "Loaders pick a reader by extension; a pickle named .safetensors or .bin is loaded with code execution "
    "by some of them. The content decides what the file is.",
)

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

#: what each extension promises
EXPECTED: dict[str, frozenset[str]] = {
    ".safetensors": frozenset({"safetensors"}),
    ".sft": frozenset({"safetensors"}),
    ".ckpt": frozenset({"pytorch-zip", "pytorch-legacy", "pickle"}),
    ".pt": frozenset({"pytorch-zip", "pytorch-legacy", "pickle", "torchscript", "torchscript-mobile"}),
    ".pth": frozenset({"pytorch-zip", "pytorch-legacy", "pickle", "torchscript"}),
    ".ptl": frozenset({"torchscript", "torchscript-mobile"}),
    ".bin": frozenset({"pytorch-zip", "pytorch-legacy", "pickle"}),
    ".pkl": frozenset({"pickle", "pytorch-legacy"}),
    ".pickle": frozenset({"pickle", "pytorch-legacy"}),
    ".joblib": frozenset({"pickle"}),
    ".npy": frozenset({"npy"}),
    ".npz": frozenset({"npz", "zip"}),
    ".gguf": frozenset({"gguf"}),
    ".zip": frozenset({"zip", "npz", "pytorch-zip", "torchscript"}),
    ".7z": frozenset({"7z"}),
    ".tar": frozenset({"tar"}),
    ".gz": frozenset({"gzip"}),
    ".bz2": frozenset({"bzip2"}),
    ".xz": frozenset({"xz"}),
    ".lzma": frozenset({"lzma", "xz"}),
    ".zst": frozenset({"zstd"}),
    ".lz4": frozenset({"lz4"}),
    ".json": frozenset({"text"}),
    ".yaml": frozenset({"text"}),
    ".yml": frozenset({"text"}),
    ".txt": frozenset({"text"}),
    ".md": frozenset({"text"}),
    ".html": frozenset({"html"}),
    ".htm": frozenset({"html"}),
}

#: extensions whose readers never run code: a pickle inside is a trap
_INERT_EXTENSIONS = frozenset({".safetensors", ".sft", ".gguf", ".npy", ".json", ".yaml", ".yml", ".txt", ".md"})
_CODE_FORMATS = frozenset({"pytorch-zip", "pytorch-legacy", "pickle", "torchscript", "torchscript-mobile"})


@dataclass(frozen=True)
class Sniffed:
    """What a file is, with the evidence the decision rests on."""

    format: str
    size: int
    detail: dict[str, Any] = field(default_factory=dict)


def _looks_like_pickle(head: bytes, size: int) -> tuple[bool, Any]:
    """Walk the head as a pickle; True when it reaches STOP, or runs out of head (not file) cleanly.

    Returns the value at STOP when there was one (to recognise the legacy torch magic number).
    """
    from registry.files.pickle_vm import VALID_OPCODES, Limits, walk

    if not head or head[0] not in VALID_OPCODES:
        return False, None
    w = walk(head, limits=Limits(max_ops=20_000, max_objects=20_000, max_value_bytes=SNIFF_BYTES))
    if w.complete:
        return True, w.result
    err = w.error
    truncated = err is not None and "truncated" in str(err)
    # the head ended before the pickle did: a pickle if the file goes on and the head parsed cleanly
    return bool(truncated and size > len(head) and len(head) >= 64), None


def _first_zip_name(head: bytes) -> str | None:
    if not head.startswith(b"PK\x03\x04") or len(head) < 30:
        return None
    n, m = struct.unpack_from("<HH", head, 26)
    raw = head[30 : 30 + n]
    return raw.decode("utf-8", "replace") if len(raw) == n else None


def _zip_kind(names: list[str]) -> str:
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    top = {n.split("/", 1)[0] for n in names if "/" in n}
    if any(n.endswith("/constants.pkl") or "/code/__torch__" in n for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") and n.count("/") == 1 for n in names) and len(top) >= 1:
        return "pytorch-zip"
    return "zip"


def _is_tar_header(head: bytes) -> bool:
    """A valid tar header block (ustar or the old v7 layout): what ``tarfile`` (and so the legacy
    ``torch.load`` path) accepts. Checked by the header checksum, not only the ``ustar`` magic."""
    if len(head) < 512 or head[:1] == b"\0":
        return False
    field = head[148:156].replace(b"\0", b" ").strip()
    if not field or any(c not in b"01234567" for c in field):
        return False
    stored = int(field, 8)
    block = head[:148] + b" " * 8 + head[156:512]
    return stored in (sum(block), sum(b - 256 if b > 127 else b for b in block))


def _is_text(head: bytes) -> bool:
    if not head:
        return False
    sample = head[:SNIFF_BYTES]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 3:
            return False
        text = sample[: e.start].decode("utf-8")
    if "\x00" in text:
        return False
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t\f")
    return printable >= 0.95 * max(1, len(text))


def _is_zlib(head: bytes) -> bool:
    """A zlib stream (RFC 1950): deflate method, a valid header check, and a head that inflates."""
    if len(head) < 3 or head[0] != 0x78 or (head[0] * 256 + head[1]) % 31 or head[1] & 0x20:
        return False
    try:
        zlib.decompressobj().decompress(head, 64)
    except zlib.error:
        return False
    return True


def _is_lzma_alone(head: bytes) -> bool:
    """The legacy ``.lzma`` header: properties byte, dictionary size, then a trial decode of the head."""
    if len(head) < 14 or head[0] >= 225:
        return False
    (dict_size,) = struct.unpack_from("<I", head, 1)
    if dict_size & (dict_size - 1) and dict_size != 0xFFFFFFFF or dict_size < 4096:
        return False
    try:
        lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(head, 64)
    except lzma.LZMAError:
        return False
    return True


def sniff_bytes(head: bytes, size: int, read: Reader | None = None) -> str:
    """Name the container format from the first bytes of a file and its size."""
    return sniff_head(head, size, read).format


#: ``read(n)`` returns the first ``n`` bytes of the content (fewer only at its end)
Reader = Callable[[int], bytes]

#: what byte 8 of a safetensors file may be: the header's JSON object, or whitespace before it
_ST_HEADER_START = (b"{", b" ", b"\t", b"\n", b"\r")


def safetensors_prefix(head: bytes, size: int) -> int | None:
    """The header length ``N`` when the head is shaped like a safetensors file: ``N`` fits the file (and
    the format's 100,000,000-byte limit) and byte 8 opens the header's JSON. Only a candidate: the header
    decides (:func:`safetensors_header_parses`)."""
    from registry.files.safetensors import MAX_HEADER_LEN

    if len(head) < 9 or head[8:9] not in _ST_HEADER_START:
        return None
    (n,) = struct.unpack_from("<Q", head)
    return n if 2 <= n <= min(size - 8, MAX_HEADER_LEN) else None


def safetensors_header_parses(head: bytes, n: int, size: int, read: Reader | None) -> bool:
    """True when the ``n``-byte header after the length prefix is what the strict parser accepts: UTF-8,
    one JSON object (its entries may still have findings). Reads at most ``8 + n`` bytes."""
    from registry.errors import SafetensorsError
    from registry.files.safetensors import parse_header

    if 8 + n <= len(head):
        raw = head[8 : 8 + n]
    elif read is not None:
        raw = read(8 + n)[8:]
    else:
        return False  # cannot tell from the head alone
    if len(raw) != n:
        return False
    try:
        parse_header(bytes(raw), n, size)
    except SafetensorsError:
        return False
    return True


def sniff_head(head: bytes, size: int, read: Reader | None = None) -> Sniffed:
    """Name the format of content from its head (and size).

    A file whose 8-byte header length and JSON header parse as safetensors is safetensors, whatever its
    first bytes also look like: the low bytes of the length can spell a pickle opcode (``\\x80`` PROTO,
    ``\\x84`` EXT4 …), a gzip or a zlib magic number. When the head alone is ambiguous, ``read`` supplies
    the header bytes (bounded: ``8 + N``); without it a header longer than the head cannot be checked.
    """
    s = _sniff_head(head, size)
    if s.format != "safetensors":
        n = safetensors_prefix(head, size)
        if n is not None and safetensors_header_parses(head, n, size, read):
            return Sniffed("safetensors", size, {"header_len": n, "prefix_also_reads_as": s.format})
    return s


def _sniff_head(head: bytes, size: int) -> Sniffed:
    if size == 0:
        return Sniffed("empty", 0)
    if head.startswith(b"version https://git-lfs"):
        return Sniffed("git-lfs-pointer", size)
    if head.startswith(_ZIP_MAGIC):
        first = _first_zip_name(head)
        kind = "zip"
        if first is not None:
            if first.endswith("/data.pkl") and first.count("/") == 1:
                kind = "pytorch-zip"
            elif first.endswith(".npy"):
                kind = "npz"
        return Sniffed(kind, size, {"first_member": first} if first else {})
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return Sniffed("7z", size)
    if head.startswith(b"GGUF"):
        return Sniffed("gguf", size, {"version": struct.unpack_from("<I", head, 4)[0]} if len(head) >= 8 else {})
    if head.startswith(b"\x93NUMPY"):
        return Sniffed("npy", size, {"version": list(head[6:8])})
    if head.startswith(b"\x1f\x8b"):
        return Sniffed("gzip", size)
    if head.startswith(b"\xfd7zXZ\x00"):
        return Sniffed("xz", size)
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return Sniffed("bzip2", size)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return Sniffed("zstd", size)
    if head.startswith(b"\x04\x22\x4d\x18"):
        return Sniffed("lz4", size)
    if _is_zlib(head):
        return Sniffed("zlib", size)
    if len(head) >= 8 and head[4:8] == b"PTMF":
        # a TorchScript mobile module (flatbuffer): torch.jit.load runs its bytecode
        return Sniffed("torchscript-mobile", size)
    if _is_tar_header(head):
        return Sniffed("tar", size)
    stripped = head.lstrip()[:64].lower()
    if stripped.startswith((b"<!doctype", b"<html", b"<head", b"<body")):
        return Sniffed("html", size)
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        ok, value = _looks_like_pickle(head, size)
        if value == TORCH_MAGIC and not isinstance(value, bool):
            return Sniffed("pytorch-legacy", size, {"protocol": head[1]})
        return Sniffed("pickle", size, {"protocol": head[1], "parsed_head": ok})
    if len(head) >= 9:
        (n,) = struct.unpack_from("<Q", head)
        if 2 <= n <= size - 8 and head[8:9] in (b"{", b" ", b"\t", b"\n", b"\r"):
            return Sniffed("safetensors", size, {"header_len": n})
        if head[8:9] == b"{":
            # header length out of range: still a (broken) safetensors file
            return Sniffed("safetensors", size, {"header_len": n, "broken": True})
    ok, value = _looks_like_pickle(head, size)
    if ok:
        # protocol 0/1 pickles have no PROTO opcode; they may even be printable text
        if value == TORCH_MAGIC and not isinstance(value, bool):
            return Sniffed("pytorch-legacy", size, {"protocol": 0})
        return Sniffed("pickle", size, {"protocol": 0})
    if head[:1] == b"]" and _is_lzma_alone(head):
        return Sniffed("lzma", size)
    if stripped.startswith(b"<?xml"):
        return Sniffed("html", size)
    if _is_text(head):
        return Sniffed("text", size)
    return Sniffed("unknown", size)


def sniff_file(path: str | os.PathLike[str]) -> Sniffed:
    """Sniff a file; zips are told apart by their central directory (bounded: names only)."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
        size = os.fstat(fh.fileno()).st_size
        s = sniff_head(head, size, file_reader(fh))
        if s.format in ("zip", "pytorch-zip", "npz"):
            try:
                fh.seek(0)
                with zipfile.ZipFile(fh) as z:
                    names = z.namelist()
            except Exception as e:  # noqa: BLE001 - any failure to list is evidence, not a crash
                return Sniffed(s.format, size, {**s.detail, "zip_error": f"{type(e).__name__}: {e}"})
            kind = _zip_kind(names)
            return Sniffed(kind, size, {**s.detail, "members": len(names)})
        return s


def file_reader(fh: Any) -> Reader:
    """A :data:`Reader` over an open binary file (it seeks; callers reposition afterwards)."""

    def read(n: int) -> bytes:
        fh.seek(0)
        return bytes(fh.read(n))

    return read


def sniff(path: str | os.PathLike[str]) -> str:
    """The format name of a file (see :func:`sniff_file` for the evidence)."""
    return sniff_file(path).format


def extension_mismatch(path: str | os.PathLike[str], fmt: str) -> Finding | None:
    """A finding when the extension promises a different format than the content is."""
    ext = Path(path).suffix.lower()
    expected = EXPECTED.get(ext)
    if expected is None or fmt in expected or fmt == "empty":
        return None
    if fmt in _CODE_FORMATS and ext in _INERT_EXTENSIONS:
        sev = Severity.HIGH
        why = "a loader that trusts the extension may unpickle it, and a scanner that trusts it may skip it"
    elif fmt in ("git-lfs-pointer", "html"):
        sev = Severity.MEDIUM
        why = "the download did not fetch the real file"
    elif fmt in _CODE_FORMATS:
        sev = Severity.MEDIUM
        why = "the content can run code when loaded"
    else:
        sev = Severity.LOW
        why = "readers chosen by extension will fail or misread it"
    return finding(
        R_EXT_MISMATCH.id,
        f"named {ext} but the content is {fmt}: {why}",
        severity=sev,
        extension=ext,
        content=fmt,
        expected=sorted(expected),
    )
