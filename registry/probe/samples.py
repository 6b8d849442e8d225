"""The content-addressed sample store: PNG files named by their SHA-256, beside the registry.

Layout under the store root (``<registry dir>/probe`` by default)::

    samples/ab/abcdef….png           one generated image, named by the SHA-256 of the PNG file
    embeddings/<embedder>/ab/abcd….npy   its embedding under one embedder (float32)
    grids/<key>.jsonl                 journal of one generation grid (a base or LoRA, battery, settings)
    sheets/…                          contact sheets are samples too (stored under samples/)

PNG files are written by :func:`encode_png` (8-bit RGB, one IDAT, the "Up" filter, zlib level 6), so
the same pixels always give the same bytes and hash, whatever Pillow version is installed.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZLIB_LEVEL = 6


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(img: np.ndarray) -> bytes:
    """An 8-bit RGB (H, W, 3) or greyscale (H, W) uint8 array as PNG bytes, deterministically."""
    a = np.ascontiguousarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"encode_png needs uint8 pixels, got {a.dtype}")
    if a.ndim == 2:
        color_type, channels = 0, 1
        a = a[:, :, None]
    elif a.ndim == 3 and a.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"encode_png needs (H, W) or (H, W, 3), got {a.shape}")
    h, w = a.shape[:2]
    rows = a.reshape(h, w * channels)
    up = rows.copy()
    up[1:] = rows[1:] - rows[:-1]  # filter 2 ("Up"), uint8 arithmetic wraps modulo 256
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, ZLIB_LEVEL)) + _chunk(b"IEND", b"")


def decode_png(data: bytes) -> np.ndarray:
    """Decode a PNG written by :func:`encode_png` (any PNG when Pillow is installed)."""
    try:
        return _decode_own(data)
    except ValueError:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))


def _decode_own(data: bytes) -> np.ndarray:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(PNG_SIGNATURE)
    w = h = color_type = -1
    idat = b""
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            w, h, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color_type not in (0, 2) or interlace:
                raise ValueError("unsupported PNG variant")
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    channels = 3 if color_type == 2 else 1
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * channels)
    if not (raw[:, 0] == 2).all():
        raise ValueError("PNG not written by encode_png")
    rows = np.cumsum(raw[:, 1:].astype(np.uint64), axis=0) % 256
    out = rows.astype(np.uint8).reshape(h, w, channels)
    return out if channels == 3 else out[:, :, 0]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (N, H, W, 3) to uint8, as diffusers' ``numpy_to_pil`` rounds them."""
    return np.asarray((np.clip(images, 0.0, 1.0) * 255.0).round(), dtype=np.uint8)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SampleStore:
    """PNG samples and their embeddings under one root, addressed by SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def sample_path(self, sha256: str) -> Path:
        return self.root / "samples" / sha256[:2] / f"{sha256}.png"

    def put_png(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        p = self.sample_path(sha)
        if not p.exists():
            _atomic_write(p, data)
        return sha

    def put(self, img: np.ndarray) -> str:
        return self.put_png(encode_png(img))

    def has(self, sha256: str) -> bool:
        return self.sample_path(sha256).exists()

    def get(self, sha256: str) -> np.ndarray:
        data = self.sample_path(sha256).read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise ValueError(f"sample {sha256} in the store is corrupt (its content hashes to {got})")
        return decode_png(data)

    # embeddings ------------------------------------------------------------------------------
    def _emb_path(self, embedder_key: str, sha256: str) -> Path:
        return self.root / "embeddings" / embedder_key / sha256[:2] / f"{sha256}.npy"

    def get_embedding(self, embedder_key: str, sha256: str) -> np.ndarray | None:
        p = self._emb_path(embedder_key, sha256)
        if not p.exists():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put_embedding(self, embedder_key: str, sha256: str, vec: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        np.save(buf, np.asarray(vec, dtype=np.float32), allow_pickle=False)
        _atomic_write(self._emb_path(embedder_key, sha256), buf.getvalue())

    def grid_path(self, key: str) -> Path:
        return self.root / "grids" / f"{key}.jsonl"


# -- contact sheet ----------------------------------------------------------------------------------


def _thumb(img: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(img)
    if im.size != (side, side):
        im = im.resize((side, side), Image.Resampling.BICUBIC if max(im.size) > side else Image.Resampling.NEAREST)
    return np.asarray(im.convert("RGB"))


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]], thumb: int = 128, label_width: int = 260, pad: int = 4
) -> np.ndarray:
    """One image: a row per ``(label, images)``, label text at the left, thumbnails to the right."""
    from PIL import Image, ImageDraw

    n_cols = max((len(imgs) for _, imgs in rows), default=0)
    width = label_width + n_cols * (thumb + pad) + pad
    height = len(rows) * (thumb + pad) + pad
    sheet = Image.new("RGB", (max(width, 1), max(height, 1)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (label, imgs) in enumerate(rows):
        y = pad + r * (thumb + pad)
        lines = _wrap(label, max(8, label_width // 7))
        for k, line in enumerate(lines[: max(1, thumb // 12)]):
            safe = line.encode("latin-1", "replace").decode("latin-1")  # the bitmap font is latin-1
            draw.text((pad, y + k * 12), safe, fill=(0, 0, 0))
        for c, img in enumerate(imgs):
            sheet.paste(Image.fromarray(_thumb(img, thumb)), (label_width + c * (thumb + pad), y))
    return np.asarray(sheet)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for wd in words:
        if cur and len(cur) + 1 + len(wd) > width:
            lines.append(cur)
            cur = wd
        else:
            cur = f"{cur} {wd}".strip()
    if cur:
        lines.append(cur)
    return lines or [""]
