"""Image metadata readers: PNG text chunks, JPEG and WebP EXIF/XMP, C2PA presence. Pixels never decoded.

Every reader works on a bytes-like view of the file (a memory map), walks the container's own
structure (PNG chunks, JPEG segments up to the start of scan, RIFF chunks) with bounds on every length,
count and decompressed size, and turns anything malformed into a finding. Nothing raises on bad input.

* PNG: ``tEXt`` (Latin-1), ``zTXt`` (zlib, decompressed with ``decompressobj().decompress(data,
  max_length)`` so a bomb stops at the limit), ``iTXt`` (UTF-8, optionally compressed), ``eXIf``
  (EXIF), ``caBX`` (C2PA JUMBF). ``IDAT`` chunks are skipped by their length.
* JPEG: ``APP1`` EXIF and XMP, ``APP11`` JUMBF (C2PA), ``COM``; reading stops at ``SOS``.
* WebP: ``EXIF``, ``XMP `` and ``C2PA`` chunks; canvas size from ``VP8X``.
* EXIF: IFD0 ``ImageDescription``, ``Make``, ``Model``, ``Software``, ``XPComment``, and the Exif
  IFD's ``UserComment`` (``ASCII``/``UNICODE``/undefined prefix; UTF-16 of either byte order).
* XMP: the packet text is searched (no XML parser, so no entity expansion) for ``exif:UserComment``,
  ``dc:description`` and ``tiff:ImageDescription`` values.
"""

from __future__ import annotations

import html
import re
import struct
import zlib
from collections.abc import Callable

from registry.findings import finding
from registry.trace.facts import (
    R_BAD_UTF8,
    R_CHUNK_TOO_LARGE,
    R_DECOMPRESSION_BOMB,
    R_LIMIT,
    R_MALFORMED,
    R_NOT_IMAGE,
    C2paInfo,
    ImageMeta,
    TextEntry,
)

#: the largest text chunk / segment read, and the largest decompressed text
MAX_TEXT_BYTES = 16 << 20
#: total metadata text kept per image
MAX_TOTAL_TEXT = 32 << 20
#: chunks/segments walked per image
MAX_CHUNKS = 200_000
#: EXIF entries read per IFD
MAX_IFD_ENTRIES = 1000

PNG_SIG = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"caBX"}


def sniff(head: bytes) -> str:
    if head.startswith(PNG_SIG):
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return "unknown"


def read_metadata(data: bytes | memoryview) -> ImageMeta:
    """Every metadata text of an image held in ``data`` (bytes or a memory map)."""
    mv = memoryview(data)
    fmt = sniff(bytes(mv[:16]))
    meta = ImageMeta(format=fmt)
    budget = _Budget(meta)
    try:
        if fmt == "png":
            _read_png(mv, meta, budget)
        elif fmt == "jpeg":
            _read_jpeg(mv, meta, budget)
        elif fmt == "webp":
            _read_webp(mv, meta, budget)
        else:
            meta.findings.append(finding(R_NOT_IMAGE.id, "not a PNG, JPEG or WebP file (by its first bytes)"))
    except (IndexError, struct.error, ValueError) as e:  # a bound we did not foresee: stop, say so
        meta.findings.append(finding(R_MALFORMED.id, f"{fmt}: malformed structure ({type(e).__name__}: {e})"))
    return meta


class _Budget:
    def __init__(self, meta: ImageMeta) -> None:
        self.meta = meta
        self.left = MAX_TOTAL_TEXT

    def add(self, source: str, key: str, text: str) -> None:
        if len(text) > self.left:
            self.meta.findings.append(
                finding(R_LIMIT.id, f"{source} {key!r}: total metadata text over {MAX_TOTAL_TEXT} bytes; not kept")
            )
            return
        self.left -= len(text)
        self.meta.texts.append(TextEntry(source, key, text))


def _decode(raw: bytes, encoding: str, where: str, meta: ImageMeta) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        meta.findings.append(finding(R_BAD_UTF8.id, f"{where}: not valid {encoding}; bad bytes replaced", where=where))
        return raw.decode(encoding, errors="replace")


def _inflate(comp: bytes, where: str, meta: ImageMeta) -> bytes | None:
    d = zlib.decompressobj()
    try:
        out = d.decompress(comp, MAX_TEXT_BYTES)
    except zlib.error as e:
        meta.findings.append(finding(R_MALFORMED.id, f"{where}: zlib data does not decompress ({e})", where=where))
        return None
    if d.unconsumed_tail:
        meta.findings.append(
            finding(R_DECOMPRESSION_BOMB.id, f"{where}: {len(comp)} compressed bytes expand past {MAX_TEXT_BYTES} bytes; "
                    "not read", where=where, compressed=len(comp))  # fmt: skip
        )
        return None
    return out


# -- PNG ----------------------------------------------------------------------------------------------


def _read_png(mv: memoryview, meta: ImageMeta, budget: _Budget) -> None:
    pos = 8
    n = len(mv)
    count = 0
    while pos + 8 <= n:
        count += 1
        if count > MAX_CHUNKS:
            meta.findings.append(finding(R_LIMIT.id, f"png: more than {MAX_CHUNKS} chunks; stopped"))
            return
        length, ctype = struct.unpack(">I4s", mv[pos : pos + 8])
        if length > 0x7FFFFFFF or pos + 12 + length > n:
            meta.findings.append(
                finding(R_MALFORMED.id, f"png: chunk {ctype!r} at {pos} claims {length} bytes past the end of the file",
                        offset=pos)  # fmt: skip
            )
            return
        start = pos + 8
        if ctype == b"IHDR" and length >= 8:
            meta.width, meta.height = struct.unpack(">II", mv[start : start + 8])
        elif ctype in _TEXT_CHUNKS:
            if length > MAX_TEXT_BYTES:
                meta.findings.append(
                    finding(R_CHUNK_TOO_LARGE.id, f"png: {ctype.decode('latin-1')} chunk of {length} bytes at {pos} skipped",
                            offset=pos, size=length)  # fmt: skip
                )
            else:
                _png_text(ctype, bytes(mv[start : start + length]), meta, budget)
        elif ctype == b"IEND":
            return
        pos = start + length + 4


def _png_text(ctype: bytes, data: bytes, meta: ImageMeta, budget: _Budget) -> None:
    if ctype == b"eXIf":
        _read_exif(data, "png:eXIf", meta, budget)
        return
    if ctype == b"caBX":
        meta.c2pa = C2paInfo(True, "png:caBX", len(data), _claim_generator(data))
        return
    nul = data.find(b"\0", 0, 80)
    if nul < 1:
        meta.findings.append(finding(R_MALFORMED.id, f"png: {ctype.decode()} chunk without a keyword"))
        return
    key = data[:nul].decode("latin-1")
    rest = data[nul + 1 :]
    where = f"png:{ctype.decode()} {key!r}"
    if ctype == b"tEXt":
        budget.add("png:tEXt", key, rest.decode("latin-1"))
    elif ctype == b"zTXt":
        if not rest or rest[0] != 0:
            meta.findings.append(finding(R_MALFORMED.id, f"{where}: unknown compression method"))
            return
        raw = _inflate(rest[1:], where, meta)
        if raw is not None:
            budget.add("png:zTXt", key, raw.decode("latin-1"))
    else:  # iTXt: flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            meta.findings.append(finding(R_MALFORMED.id, f"{where}: truncated"))
            return
        flag, method = rest[0], rest[1]
        p1 = rest.find(b"\0", 2)
        p2 = rest.find(b"\0", p1 + 1) if p1 >= 0 else -1
        if p2 < 0:
            meta.findings.append(finding(R_MALFORMED.id, f"{where}: truncated language/keyword fields"))
            return
        body = rest[p2 + 1 :]
        if flag:
            if method != 0:
                meta.findings.append(finding(R_MALFORMED.id, f"{where}: unknown compression method"))
                return
            inflated = _inflate(body, where, meta)
            if inflated is None:
                return
            body = inflated
        budget.add("png:iTXt", key, _decode(body, "utf-8", where, meta))


# -- JPEG ---------------------------------------------------------------------------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_XMP_NS = b"http://ns.adobe.com/xap/1.0/\0"


def _read_jpeg(mv: memoryview, meta: ImageMeta, budget: _Budget) -> None:
    pos = 2
    n = len(mv)
    count = 0
    jumbf: list[bytes] = []
    while pos + 4 <= n:
        count += 1
        if count > MAX_CHUNKS:
            meta.findings.append(finding(R_LIMIT.id, f"jpeg: more than {MAX_CHUNKS} segments; stopped"))
            break
        if mv[pos] != 0xFF:
            meta.findings.append(finding(R_MALFORMED.id, f"jpeg: no segment marker at {pos}", offset=pos))
            break
        marker = mv[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata follows that we read
            break
        (length,) = struct.unpack(">H", mv[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > n:
            meta.findings.append(finding(R_MALFORMED.id, f"jpeg: segment 0x{marker:02X} at {pos} runs past the end",
                                         offset=pos))  # fmt: skip
            break
        seg = mv[pos + 4 : pos + 2 + length]
        if marker in _SOF and len(seg) >= 5:
            meta.height, meta.width = struct.unpack(">HH", seg[1:5])
        elif marker == 0xE1:
            head = bytes(seg[:29])
            if head.startswith(b"Exif\0\0"):
                _read_exif(bytes(seg[6:]), "exif", meta, budget)
            elif head.startswith(_XMP_NS):
                _read_xmp(bytes(seg[len(_XMP_NS) :]), meta, budget)
        elif marker == 0xEB and len(seg) >= 8 and bytes(seg[:2]) == b"JP":
            # ISO 19566-5 JUMBF in APP11: CI "JP", En (2), Z (4 sequence), then the box (continuations repeat the box header)
            jumbf.append(bytes(seg[8:]))
        elif marker == 0xFE:
            budget.add("jpeg:COM", "comment", _decode(bytes(seg), "utf-8", "jpeg:COM", meta))
        pos += 2 + length
    if jumbf:
        blob = b"".join(jumbf)
        if b"c2pa" in blob[:64] or b"jumb" in blob[:16]:
            meta.c2pa = C2paInfo(True, "jpeg:APP11", len(blob), _claim_generator(blob))


# -- WebP ---------------------------------------------------------------------------------------------


def _read_webp(mv: memoryview, meta: ImageMeta, budget: _Budget) -> None:
    n = min(len(mv), 8 + struct.unpack("<I", mv[4:8])[0])
    pos = 12
    count = 0
    while pos + 8 <= n:
        count += 1
        if count > MAX_CHUNKS:
            meta.findings.append(finding(R_LIMIT.id, f"webp: more than {MAX_CHUNKS} chunks; stopped"))
            return
        fourcc = bytes(mv[pos : pos + 4])
        (size,) = struct.unpack("<I", mv[pos + 4 : pos + 8])
        start = pos + 8
        if start + size > n:
            meta.findings.append(finding(R_MALFORMED.id, f"webp: chunk {fourcc!r} at {pos} runs past the end", offset=pos))
            return
        if fourcc == b"VP8X" and size >= 10:
            b = bytes(mv[start + 4 : start + 10])
            meta.width = 1 + int.from_bytes(b[0:3], "little")
            meta.height = 1 + int.from_bytes(b[3:6], "little")
        elif fourcc in (b"EXIF", b"XMP ", b"C2PA"):
            if size > MAX_TEXT_BYTES:
                meta.findings.append(finding(R_CHUNK_TOO_LARGE.id, f"webp: {fourcc.decode()} chunk of {size} bytes skipped",
                                             offset=pos, size=size))  # fmt: skip
            else:
                data = bytes(mv[start : start + size])
                if fourcc == b"EXIF":
                    _read_exif(data[6:] if data.startswith(b"Exif\0\0") else data, "exif", meta, budget)
                elif fourcc == b"XMP ":
                    _read_xmp(data, meta, budget)
                else:
                    meta.c2pa = C2paInfo(True, "webp:C2PA", size, _claim_generator(data))
        pos = start + size + (size & 1)


# -- EXIF ---------------------------------------------------------------------------------------------

#: IFD0 text tags (ComfyUI's SaveAnimatedWEBP writes "prompt:{json}" into Model and "workflow:{json}" into Make)
_IFD0_TAGS = {0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0131: "Software", 0x9C9C: "XPComment"}
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8}


def _read_exif(tiff: bytes, source: str, meta: ImageMeta, budget: _Budget) -> None:
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        meta.findings.append(finding(R_MALFORMED.id, f"{source}: not a TIFF header"))
        return
    bo = "<" if tiff[:2] == b"II" else ">"
    (first,) = struct.unpack(bo + "I", tiff[4:8])
    seen: set[int] = set()

    def walk(off: int, tags: dict[int, str], on_entry: Callable[[int, int, int, int], None]) -> None:
        if off in seen or off + 2 > len(tiff):
            if off not in seen:
                meta.findings.append(finding(R_MALFORMED.id, f"{source}: IFD offset {off} outside the EXIF data"))
            return
        seen.add(off)
        (count,) = struct.unpack(bo + "H", tiff[off : off + 2])
        if count > MAX_IFD_ENTRIES:
            meta.findings.append(finding(R_LIMIT.id, f"{source}: IFD with {count} entries; read the first {MAX_IFD_ENTRIES}"))
            count = MAX_IFD_ENTRIES
        for i in range(count):
            e = off + 2 + 12 * i
            if e + 12 > len(tiff):
                meta.findings.append(finding(R_MALFORMED.id, f"{source}: IFD entry {i} past the end"))
                return
            tag, typ, cnt = struct.unpack(bo + "HHI", tiff[e : e + 8])
            on_entry(tag, typ, cnt, e)

    def value(typ: int, cnt: int, e: int) -> bytes | None:
        size = _TYPE_SIZE.get(typ, 1) * cnt
        if size <= 4:
            return tiff[e + 8 : e + 8 + size]
        (voff,) = struct.unpack(bo + "I", tiff[e + 8 : e + 12])
        if size > MAX_TEXT_BYTES or voff + size > len(tiff):
            meta.findings.append(finding(R_MALFORMED.id, f"{source}: tag value of {size} bytes at {voff} outside the EXIF data"))
            return None
        return tiff[voff : voff + size]

    exif_ifd: list[int] = []

    def ifd0(tag: int, typ: int, cnt: int, e: int) -> None:
        if tag == _EXIF_IFD:
            (p,) = struct.unpack(bo + "I", tiff[e + 8 : e + 12])
            exif_ifd.append(p)
        elif tag in _IFD0_TAGS:
            raw = value(typ, cnt, e)
            if raw is None:
                return
            name = _IFD0_TAGS[tag]
            if tag == 0x9C9C:
                text = _decode(raw, "utf-16-le", f"{source}:{name}", meta)
            else:
                text = _decode(raw, "utf-8", f"{source}:{name}", meta)
            budget.add(f"{source}:{name}", name, text.rstrip("\0"))

    def sub(tag: int, typ: int, cnt: int, e: int) -> None:
        if tag == _USER_COMMENT:
            raw = value(typ, cnt, e)
            if raw is not None:
                budget.add(f"{source}:UserComment", "UserComment", decode_user_comment(raw, bo, source, meta))

    walk(first, _IFD0_TAGS, ifd0)
    for p in exif_ifd[:1]:
        walk(p, {}, sub)


def decode_user_comment(raw: bytes, byte_order: str, source: str, meta: ImageMeta) -> str:
    """EXIF UserComment: an 8-byte character code then the text.

    ``UNICODE\\0`` is UTF-16; the standard says in the file's byte order, but piexif (A1111, Forge) always
    writes big-endian, so the order is taken from a BOM, else from where the zero bytes of ASCII
    characters fall, else from the TIFF byte order."""
    code, body = raw[:8], raw[8:]
    where = f"{source}:UserComment"
    if code == b"UNICODE\0":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            enc = "utf-16-be" if body[:2] == b"\xfe\xff" else "utf-16-le"
            body = body[2:]
        else:
            sample = body[:512]
            even_zero = sample[0::2].count(0)
            odd_zero = sample[1::2].count(0)
            if even_zero != odd_zero:
                enc = "utf-16-be" if even_zero > odd_zero else "utf-16-le"
            else:
                enc = "utf-16-be" if byte_order == ">" else "utf-16-le"
        if len(body) % 2:
            body = body[:-1]
        return _decode(body, enc, where, meta).rstrip("\0")
    if code in (b"ASCII\0\0\0", b"\0" * 8):
        return _decode(body, "utf-8", where, meta).rstrip("\0")
    if code == b"JIS\0\0\0\0\0":
        return _decode(body, "shift_jis", where, meta).rstrip("\0")
    return _decode(raw, "utf-8", where, meta).rstrip("\0")


# -- XMP ----------------------------------------------------------------------------------------------

_XMP_FIELDS = ("exif:UserComment", "dc:description", "tiff:ImageDescription")


def _read_xmp(data: bytes, meta: ImageMeta, budget: _Budget) -> None:
    text = _decode(data, "utf-8", "xmp", meta)
    for name in _XMP_FIELDS:
        value = _xmp_value(text, name)
        if value is not None:
            budget.add("xmp", name, html.unescape(value))


def _xmp_value(text: str, name: str) -> str | None:
    """The first ``<name>…</name>`` element's text (its first ``rdf:li`` when it holds one) or ``name="…"``
    attribute, found with ``str.find`` (linear time however many times the name occurs)."""
    i = text.find(name)
    while i >= 0:
        if i > 0 and text[i - 1] == "<":  # element form
            gt = text.find(">", i)
            close = text.find("</" + name, gt)
            if gt < 0 or close < 0:
                return None
            inner = text[gt + 1 : close]
            li = inner.find("<rdf:li")
            if li >= 0:
                li_gt = inner.find(">", li)
                li_end = inner.find("</rdf:li>", li_gt)
                if li_gt >= 0 and li_end >= 0:
                    return inner[li_gt + 1 : li_end]
            return inner
        m = re.compile(r"\s*=\s*\"").match(text, i + len(name))  # attribute form
        if m is not None:
            end = text.find('"', m.end())
            return text[m.end() : end] if end >= 0 else None
        i = text.find(name, i + len(name))
    return None


# -- C2PA ---------------------------------------------------------------------------------------------


def _cbor_text_at(buf: bytes, p: int) -> str | None:
    """The CBOR text string (major type 3, definite length) starting at ``p``, or None."""
    if p >= len(buf) or buf[p] >> 5 != 3:
        return None
    ln = buf[p] & 0x1F
    p += 1
    if ln == 24:
        ln, p = buf[p] if p < len(buf) else 1 << 30, p + 1
    elif ln == 25:
        ln, p = int.from_bytes(buf[p : p + 2], "big"), p + 2
    elif ln > 25:
        return None
    if ln > 1024 or p + ln > len(buf):
        return None
    return buf[p : p + ln].decode("utf-8", errors="replace")


def _claim_generator(jumbf: bytes) -> str | None:
    """The claim's ``claim_generator`` (C2PA 1.x) or the first ``claim_generator_info`` name (2.x), read
    from the CBOR text after the key. Bounded, best effort and unverified (no signature check)."""
    key = b"\x6fclaim_generator"  # CBOR text of 15 bytes
    i = jumbf.find(key)
    if i >= 0:
        return _cbor_text_at(jumbf, i + len(key))
    i = jumbf.find(b"\x74claim_generator_info")
    if i >= 0:
        j = jumbf.find(b"\x64name", i, i + 4096)
        if j >= 0:
            return _cbor_text_at(jumbf, j + 5)
    return None
