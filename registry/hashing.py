"""Every digest the ecosystem uses, computed in one read pass over a file.

Definitions (REFERENCE section 1):

* ``sha256``: the whole file; ``autov2`` is its first 10 hex digits.
* ``autov1``: sha256 of bytes ``[0x100000, 0x110000)``, first 8 hex digits (A1111's legacy
  ``model_hash``). A file shorter than 1 MiB hashes the empty string (``e3b0c442``); a file ending
  inside the window hashes what is there.
* ``autov3``: sha256 of ``file[data_start:]``, the tensor data of a safetensors file
  (``data_start = 8 + N``); ``None`` when the caller passes no ``data_start``.
* ``blake3``: the whole file.
* ``crc32``: zlib's CRC-32 of the whole file as 8 lowercase hex digits; :attr:`Hashes.civitai_crc32`
  gives Civitai's display form (bytes reversed, upper case).
* ``git_sha1``: ``sha1(b"blob <size>\\0" + data)``, the name Git (and the Hugging Face cache) gives a
  small non-LFS file; only for files up to ``git_sha1_limit`` bytes.

How it is fast: the file is read once, into a small ring of buffers, by the calling thread, while two
dedicated *lanes* (threads) feed the buffers to the hashers. hashlib, blake3 and the CRC functions
release the GIL on large buffers, so the two SHA-256 passes (whole file and tensor data) run on two
cores at once. Each hasher lives on exactly one lane, so its updates keep the file's order. Hashers are
spread over the lanes by their measured cost (SHA-256 dominates; BLAKE3 with AVX-512 and CRC-32 with
carry-less multiplication are cheap). CRC-32 uses ``isal`` (python-isal, ~60 GB/s) when installed and
``zlib`` otherwise. Files smaller than one buffer are hashed inline: starting threads would cost more
than it saves.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import stat
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from registry.errors import RegistryError

crc32_fn: Callable[[Any, int], int]
try:  # python-isal's CRC-32 is ~10x zlib's on CPUs with carry-less multiply; same values
    from isal import isal_zlib as _isal_zlib

    crc32_fn = _isal_zlib.crc32
    CRC32_IMPL = "isal"
except ImportError:  # pragma: no cover - depends on the environment
    crc32_fn = zlib.crc32
    CRC32_IMPL = "zlib"

AUTOV1_START = 0x100000
AUTOV1_END = 0x110000
#: below this size a file is hashed by the calling thread alone
INLINE_LIMIT = 1 << 20
#: buffers in the ring: one being read, the others queued or being hashed by the lanes
RING_BUFFERS = 4
N_LANES = 2


@dataclass(frozen=True)
class Hashes:
    """Plain lowercase hex digests of one file (prefixed forms such as ``blake3:`` belong to callers)."""

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
        """The CRC-32 as Civitai prints it: the zlib value's four bytes reversed, upper case."""
        return bytes.fromhex(self.crc32)[::-1].hex().upper()

    def as_dict(self) -> dict[str, str | None]:
        return {
            "sha256": self.sha256,
            "autov1": self.autov1,
            "autov2": self.autov2,
            "autov3": self.autov3,
            "blake3": self.blake3,
            "crc32": self.crc32,
            "git_sha1": self.git_sha1,
        }


class _Sink:
    """One hasher fed with the bytes ``[start, end)`` of the file (``end=None``: to the end)."""

    __slots__ = ("start", "end", "update", "cost")

    def __init__(self, update: Callable[[Any], object], start: int, end: int | None, cost: float) -> None:
        self.update = update
        self.start = start
        self.end = end
        self.cost = cost

    def feed(self, off: int, mv: memoryview) -> None:
        n = len(mv)
        lo = self.start - off
        if lo < 0:
            lo = 0
        hi = n if self.end is None else min(self.end - off, n)
        if lo >= hi:
            return
        self.update(mv if lo == 0 and hi == n else mv[lo:hi])


class _Crc:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any) -> None:
        self.value = crc32_fn(data, self.value)


class _Lane(threading.Thread):
    """A thread that feeds queued chunks, in order, to its sinks and hands each buffer back."""

    def __init__(self, sinks: list[_Sink], done: queue.SimpleQueue[int]) -> None:
        super().__init__(name="modelreg-hash-lane", daemon=True)
        self.sinks = sinks
        self.todo: queue.SimpleQueue[tuple[int, int, memoryview] | None] = queue.SimpleQueue()
        self.done = done
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.todo.get()
            if item is None:
                return
            idx, off, mv = item
            if self.error is None:
                try:
                    for sink in self.sinks:
                        sink.feed(off, mv)
                except BaseException as exc:  # handed to the reader thread, which re-raises it
                    self.error = exc
            self.done.put(idx)


def _spread(sinks: list[_Sink], loads: list[float]) -> list[list[_Sink]]:
    """Longest-processing-time-first assignment of sinks to lanes with the given starting loads."""
    loads = list(loads)
    lanes: list[list[_Sink]] = [[] for _ in loads]
    for sink in sorted(sinks, key=lambda s: -s.cost):
        i = loads.index(min(loads))
        lanes[i].append(sink)
        loads[i] += sink.cost
    return lanes


def hash_file(
    path: str | os.PathLike[str],
    data_start: int | None = None,
    *,
    chunk_size: int = 8 << 20,
    git_sha1_limit: int = 10 << 20,
    on_bytes: Callable[[int], None] | None = None,
) -> Hashes:
    """All digests of ``path`` from one read pass. See the module docstring for the definitions.

    ``data_start`` is where the tensor data of a safetensors file begins (``8 + N``); a value past the
    end of the file gives the empty-string digest, as A1111's reader does. Raises :class:`OSError`
    when the file cannot be opened or read, and :class:`RegistryError` when it is not a regular file or
    changes size or modification time while being read. ``on_bytes(n)``, when given, is called with the
    bytes read so far after each buffer of a file larger than one buffer (progress inside a large file).
    """
    if data_start is not None and data_start < 0:
        raise ValueError(f"data_start must be >= 0, not {data_start}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    p = Path(path)
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not regular
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise RegistryError(f"{p}: not a regular file, cannot hash it")
        size = st.st_size
        if hasattr(os, "posix_fadvise") and size > INLINE_LIMIT:
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)

        sinks, finish = _digests(size, data_start, git_sha1_limit)

        if size < INLINE_LIMIT or size <= chunk_size:
            total = _read_inline(fh, p, size, sinks, chunk_size)
        else:
            total = _read_lanes(fh, p, size, sinks, chunk_size, on_bytes)

        end = os.fstat(fh.fileno())
        if end.st_size != size or end.st_mtime_ns != st.st_mtime_ns:
            raise RegistryError(f"{p}: the file changed while it was being hashed; scan it again")

    return finish(total)


def hash_map(
    path: str | os.PathLike[str],
    fd: int,
    data_start: int | None = None,
    *,
    chunk_size: int = 8 << 20,
    git_sha1_limit: int = 10 << 20,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[Hashes, mmap.mmap]:
    """:func:`hash_file`'s digests of the regular file ``path``, open as ``fd``, read through a read-only memory map
    of it instead of into buffers: the same values and checks (not a regular file, changed while hashed),
    without copying the file's bytes into a ring of buffers (and without the first touch of those buffers
    in a fresh process). The lanes hash slices of the map, at most :data:`RING_BUFFERS` chunks ahead of the
    slowest lane. Returns the map with the digests (the caller closes it; a scan's analyzers read the file
    through it). Where the platform offers ``MAP_POPULATE``, every page is mapped at once.

    Only for files whose analysis maps them anyway: a file truncated while it is mapped makes the process
    fail on the next read of a page past the new end (``SIGBUS``), where :func:`hash_file` reports it."""
    if data_start is not None and data_start < 0:
        raise ValueError(f"data_start must be >= 0, not {data_start}")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise RegistryError(f"{path}: not a regular file, cannot hash it")
    size = st.st_size
    if size == 0:
        raise ValueError("hash_map needs a non-empty file (an empty one cannot be mapped)")
    populate = getattr(mmap, "MAP_POPULATE", 0)
    m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | populate, prot=mmap.PROT_READ)
    try:
        sinks, finish = _digests(size, data_start, git_sha1_limit)
        mv = memoryview(m)
        try:
            if size <= chunk_size:
                for sink in sinks:
                    sink.feed(0, mv)
            else:
                _map_lanes(mv, sinks, chunk_size, on_bytes)
        finally:
            mv.release()
        end = os.fstat(fd)
        if end.st_size != size or end.st_mtime_ns != st.st_mtime_ns:
            raise RegistryError(f"{path}: the file changed while it was being hashed; scan it again")
    except BaseException:
        m.close()
        raise
    return finish(size), m


def _map_lanes(mv: memoryview, sinks: list[_Sink], chunk_size: int, on_bytes: Callable[[int], None] | None) -> None:
    """:func:`_read_lanes` over a mapped file: the lanes get slices of the map, no copies."""
    done: queue.SimpleQueue[int] = queue.SimpleQueue()
    lanes = [_Lane(group, done) for group in _spread(sinks, [0.0] * N_LANES) if group]
    for lane in lanes:
        lane.start()
    size = len(mv)
    in_flight = 0  # chunks handed out and not yet hashed by every lane (each lane reports each chunk)
    try:
        for off in range(0, size, chunk_size):
            while in_flight >= RING_BUFFERS * len(lanes):
                done.get()
                in_flight -= 1
            for lane in lanes:
                if lane.error is not None:
                    raise lane.error
            chunk = mv[off : off + chunk_size]
            for lane in lanes:
                lane.todo.put((0, off, chunk))
            in_flight += len(lanes)
            del chunk
            if on_bytes is not None:
                on_bytes(min(off + chunk_size, size))
    finally:
        _stop_lanes(lanes)
    _raise_lane_error(lanes)


def _stop_lanes(lanes: list[_Lane]) -> None:
    """Let every lane finish what it was given and end (in a ``finally``: an error already raised wins)."""
    for lane in lanes:
        lane.todo.put(None)
    for lane in lanes:
        lane.join()


def _raise_lane_error(lanes: list[_Lane]) -> None:
    for lane in lanes:
        if lane.error is not None:
            raise lane.error


def hash_bytes(data: bytes, data_start: int | None = None, *, git_sha1_limit: int = 10 << 20) -> Hashes:
    """:func:`hash_file`'s digests of a file's whole content held in memory (a small file that the caller
    read whole, checking itself that it did not change meanwhile): the same values, without opening the
    file again."""
    if data_start is not None and data_start < 0:
        raise ValueError(f"data_start must be >= 0, not {data_start}")
    sinks, finish = _digests(len(data), data_start, git_sha1_limit)
    mv = memoryview(data)
    for sink in sinks:
        sink.feed(0, mv)
    return finish(len(data))


def _digests(size: int, data_start: int | None, git_sha1_limit: int) -> tuple[list[_Sink], Callable[[int], Hashes]]:
    """The sinks that compute every digest of a ``size``-byte file, and the function that reads their
    :class:`Hashes` once every byte was fed (given the byte count)."""
    whole = hashlib.sha256()
    v1 = hashlib.sha256()
    b3 = blake3.blake3()
    crc = _Crc()
    data = hashlib.sha256() if data_start is not None else None
    git = None
    if size <= git_sha1_limit:
        git = hashlib.sha1(usedforsecurity=False)
        git.update(b"blob %d\0" % size)
    crc_cost = 0.03 if CRC32_IMPL == "isal" else 0.3
    sinks = [
        _Sink(whole.update, 0, None, 1.0),
        _Sink(b3.update, 0, None, 0.22),
        _Sink(crc.update, 0, None, crc_cost),
        _Sink(v1.update, AUTOV1_START, AUTOV1_END, 0.0),
    ]
    if data is not None:
        assert data_start is not None
        sinks.append(_Sink(data.update, data_start, None, 1.0))
    if git is not None:
        sinks.append(_Sink(git.update, 0, None, 0.95))

    def finish(total: int) -> Hashes:
        sha = whole.hexdigest()
        return Hashes(
            sha256=sha,
            autov1=v1.hexdigest()[:8],
            autov2=sha[:10],
            autov3=data.hexdigest() if data is not None else None,
            blake3=b3.hexdigest(),
            crc32=f"{crc.value & 0xFFFFFFFF:08x}",
            git_sha1=git.hexdigest() if git is not None else None,
            size=total,
        )

    return sinks, finish


def _grew(p: Path, size: int) -> RegistryError:
    return RegistryError(f"{p}: the file grew past {size:,} bytes while it was being hashed; scan it again")


def _shrank(p: Path, size: int, total: int) -> RegistryError:
    return RegistryError(
        f"{p}: the file ended after {total:,} of {size:,} bytes while it was being hashed "
        "(it shrank); scan it again"
    )


def _read_inline(fh: Any, p: Path, size: int, sinks: list[_Sink], chunk_size: int) -> int:
    """Small files: read and hash in the calling thread (one buffer one byte larger than the file,
    so growth shows up as an over-long read)."""
    buf = bytearray(min(size, chunk_size) + 1)
    mv = memoryview(buf)
    total = 0
    while True:
        n = fh.readinto(mv)
        if not n:
            break
        if total + n > size:
            raise _grew(p, size)
        chunk = mv[:n]
        for sink in sinks:
            sink.feed(total, chunk)
        total += n
    if total != size:
        raise _shrank(p, size, total)
    return total


_rings = threading.local()


def _ring(chunk_size: int) -> list[memoryview]:
    """The calling thread's ring of read buffers, allocated once per thread and buffer size: a scan
    hashes thousands of files, and four fresh 8 MiB buffers per file cost more than reading a small one."""
    cached: dict[int, list[memoryview]] = getattr(_rings, "by_size", None) or {}
    views = cached.get(chunk_size)
    if views is None:
        views = [memoryview(bytearray(chunk_size)) for _ in range(RING_BUFFERS)]
        cached = {chunk_size: views}  # keep one size only: memory stays at RING_BUFFERS * chunk_size
        _rings.by_size = cached
    return views


def _read_lanes(
    fh: Any, p: Path, size: int, sinks: list[_Sink], chunk_size: int, on_bytes: Callable[[int], None] | None = None
) -> int:
    """Large files: this thread reads into a ring of buffers; lanes hash them concurrently."""
    done: queue.SimpleQueue[int] = queue.SimpleQueue()
    lanes = [_Lane(group, done) for group in _spread(sinks, [0.0] * N_LANES) if group]
    views = _ring(chunk_size)
    # pending[i]: how many lanes still hold buffer i
    pending = [0] * RING_BUFFERS
    free = list(range(RING_BUFFERS))
    for lane in lanes:
        lane.start()
    total = 0
    try:
        while True:
            while not free:
                i = done.get()
                pending[i] -= 1
                if pending[i] == 0:
                    free.append(i)
            for lane in lanes:
                if lane.error is not None:
                    raise lane.error
            idx = free.pop()
            n = fh.readinto(views[idx])
            if not n:
                break
            if total + n > size:
                raise _grew(p, size)
            chunk = views[idx][:n]
            pending[idx] = len(lanes)
            for lane in lanes:
                lane.todo.put((idx, total, chunk))
            total += n
            if on_bytes is not None:
                on_bytes(total)
    finally:
        _stop_lanes(lanes)
    _raise_lane_error(lanes)
    if total != size:
        raise _shrank(p, size, total)
    return total

