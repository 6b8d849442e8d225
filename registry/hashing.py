"""All digests the ecosystem uses, from one read pass (see REFERENCE section 1)."""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import asdict, dataclass

import blake3

from registry.errors import RegistryError


@dataclass(frozen=True)
class Hashes:
    sha256: str
    autov1: str
    autov2: str
    autov3: str | None
    blake3: str
    crc32: str
    git_sha1: str | None
    size: int

    @property
    def civitai_crc32(self) -> str:
        return bytes.fromhex(self.crc32)[::-1].hex().upper()

    def as_dict(self) -> dict[str, str | None]:
        d = asdict(self)
        d.pop("size")
        return d


def hash_file(
    path: str | os.PathLike[str],
    data_start: int | None = None,
    *,
    chunk_size: int = 8 << 20,
    git_sha1_limit: int = 10 << 20,
) -> Hashes:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        whole = hashlib.sha256()
        data = hashlib.sha256() if data_start is not None else None
        b3 = blake3.blake3()
        crc = 0
        git = hashlib.sha1(b"blob %d\0" % size) if size <= git_sha1_limit else None
        pos = 0
        while True:
            chunk = fh.read(chunk_size)
            if not chunk:
                break
            whole.update(chunk)
            b3.update(chunk)
            crc = zlib.crc32(chunk, crc)
            if git is not None:
                git.update(chunk)
            if data is not None and data_start is not None:
                end = pos + len(chunk)
                if end > data_start:
                    data.update(chunk[max(0, data_start - pos) :])
            pos += len(chunk)
        if pos != size:
            raise RegistryError(f"{os.fspath(path)} changed size while being read ({size} -> {pos} bytes)")
        fh.seek(0x100000)
        autov1 = hashlib.sha256(fh.read(0x10000)).hexdigest()[:8]
    sha = whole.hexdigest()
    return Hashes(
        sha256=sha,
        autov1=autov1,
        autov2=sha[:10],
        autov3=data.hexdigest() if data is not None else None,
        blake3=b3.hexdigest(),
        crc32=f"{crc & 0xFFFFFFFF:08x}",
        git_sha1=git.hexdigest() if git is not None else None,
        size=size,
    )
