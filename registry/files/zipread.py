"""Read zip archives the way PyTorch does, not the way Python's ``zipfile`` does.

PyTorch's reader (miniz) trusts the central directory and does not care about what makes ``zipfile``
refuse a member: a CRC that does not match, an encryption flag on a member that is not encrypted, a
local header whose name differs from the central directory's. Scanners built on ``zipfile`` skip such
members; the loader reads them. So this module takes the member list from the central directory (parsed
by ``zipfile``, which handles zip64 and prefixed archives) and reads every member's bytes itself from the
local header on: compression method and sizes from the central directory, CRC and flag bits ignored, and
every disagreement recorded as a :class:`Quirk` so the scanner can report the trick.
"""

from __future__ import annotations

import bz2
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from registry.errors import FormatError

_LOCAL = struct.Struct("<4sHHHHHIIIHH")

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14


class ZipReadError(FormatError):
    """The archive (or one member) cannot be read."""


@dataclass
class Member:
    name: str
    header_offset: int
    compress_type: int
    compress_size: int
    file_size: int
    flag_bits: int
    crc: int
    #: absolute offset of the first data byte (None when the local header is unreadable)
    data_offset: int | None = None
    local_name: str | None = None
    local_compress_type: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def encrypted(self) -> bool:
        return bool(self.flag_bits & 0x1)

    @property
    def stored(self) -> bool:
        return self.compress_type == STORED


@dataclass(frozen=True)
class Quirk:
    """A property of the archive a strict reader rejects and PyTorch tolerates (evidence of a trick)."""

    member: str
    kind: str
    message: str


def read_central_directory(fh: Any, buf: Any, limit: int) -> tuple[list[Member], list[Quirk]]:
    """List members (central directory) and locate their data (local headers) in ``buf``."""
    try:
        zf = zipfile.ZipFile(fh)
    except Exception as e:  # noqa: BLE001 - zipfile raises many types on hostile input; all mean "unreadable"
        raise ZipReadError("zip.unreadable", f"the zip central directory cannot be read: {e}") from None
    infos = zf.infolist()
    zf.close()
    if len(infos) > limit:
        raise ZipReadError("pickle.limit", f"archive lists {len(infos):,} members (limit {limit:,})")
    size = len(buf)
    members: list[Member] = []
    quirks: list[Quirk] = []
    seen: dict[str, int] = {}
    for zi in infos:
        m = Member(
            name=zi.filename,
            header_offset=zi.header_offset,
            compress_type=zi.compress_type,
            compress_size=zi.compress_size,
            file_size=zi.file_size,
            flag_bits=zi.flag_bits,
            crc=zi.CRC,
        )
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] == 2:
            quirks.append(Quirk(m.name, "duplicate-name", f"the central directory lists {m.name!r} more than once"))
        off = m.header_offset
        if off < 0 or off + _LOCAL.size > size:
            m.problems.append("local header lies outside the file")
        else:
            sig, _ver, lflags, lmethod, _t, _d, _crc, _cs, _us, nlen, xlen = _LOCAL.unpack_from(buf, off)
            if sig != b"PK\x03\x04":
                m.problems.append(f"no local header signature at offset {off}")
            else:
                raw = bytes(buf[off + _LOCAL.size : off + _LOCAL.size + nlen])
                enc = "utf-8" if lflags & 0x800 else "cp437"
                m.local_name = raw.decode(enc, "replace")
                m.local_compress_type = lmethod
                m.data_offset = off + _LOCAL.size + nlen + xlen
                if m.data_offset + m.compress_size > size:
                    m.problems.append(
                        f"data ({m.compress_size:,} bytes at {m.data_offset:,}) runs past the end of the file"
                    )
                if m.local_name != m.name:
                    quirks.append(
                        Quirk(
                            m.name,
                            "name-mismatch",
                            f"local header names {m.local_name!r}, central directory {m.name!r}",
                        )
                    )
                if lmethod != m.compress_type:
                    quirks.append(
                        Quirk(m.name, "method-mismatch", f"local header method {lmethod}, central {m.compress_type}")
                    )
                if (lflags & 0x1) != (m.flag_bits & 0x1):
                    quirks.append(Quirk(m.name, "flag-mismatch", "local and central encryption flags differ"))
        members.append(m)
    return members, quirks


def member_head(buf: Any, m: Member, n: int = 64) -> bytes | None:
    """The first ``n`` bytes of a member's content (None when they cannot be had cheaply)."""
    if m.data_offset is None or m.problems:
        return None
    raw_end = m.data_offset + m.compress_size
    if m.compress_type == STORED:
        return bytes(buf[m.data_offset : min(raw_end, m.data_offset + n)])
    if m.compress_type == DEFLATED:
        d = zlib.decompressobj(-15)
        try:
            return d.decompress(bytes(buf[m.data_offset : min(raw_end, m.data_offset + 65536)]), n)
        except zlib.error:
            return None
    return None


@dataclass(frozen=True)
class Region:
    """Bytes ``buf[start:end]``; ``absolute`` when ``start`` is an offset in the scanned file itself."""

    buf: Any
    start: int
    end: int
    absolute: bool

    def __len__(self) -> int:
        return self.end - self.start

    def tobytes(self) -> bytes:
        return bytes(self.buf[self.start : self.end])

    def head(self, n: int) -> bytes:
        return bytes(self.buf[self.start : min(self.end, self.start + n)])


def member_bytes(buf: Any, m: Member, max_bytes: int) -> Region:
    """A member's content: stored members as a zero-copy region of ``buf`` (absolute offsets), deflate
    and bzip2 members decompressed up to ``max_bytes`` (more raises :class:`ZipReadError`, rule
    ``pickle.limit``)."""
    if m.data_offset is None or m.problems:
        raise ZipReadError("zip.unreadable", f"member {m.name!r}: {'; '.join(m.problems) or 'no data'}")
    start, end = m.data_offset, m.data_offset + m.compress_size
    if m.compress_type == STORED:
        if m.compress_size > max_bytes:
            raise ZipReadError("pickle.limit", f"member {m.name!r} is {m.compress_size:,} bytes (limit {max_bytes:,})")
        return Region(buf, start, end, True)
    raw = bytes(buf[start:end])
    try:
        if m.compress_type == DEFLATED:
            d = zlib.decompressobj(-15)
            out = d.decompress(raw, max_bytes + 1)
        elif m.compress_type == BZIP2:
            b = bz2.BZ2Decompressor()
            out = b.decompress(raw, max_length=max_bytes + 1)
        else:
            raise ZipReadError(
                "zip.unsupported-method", f"member {m.name!r} uses compression method {m.compress_type}"
            )
    except (zlib.error, OSError, EOFError, ValueError) as e:
        raise ZipReadError("zip.unreadable", f"member {m.name!r} does not decompress: {e}") from None
    if len(out) > max_bytes:
        raise ZipReadError("pickle.limit", f"member {m.name!r} decompresses past {max_bytes:,} bytes (zip bomb?)")
    return Region(out, 0, len(out), False)
