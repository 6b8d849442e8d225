"""Checkpoint tensor statistics, streamed, and the difference of two checkpoints.

:func:`tensor_stats` reads a safetensors file's tensors sequentially in chunks of a few MiB into a small
ring of reusable buffers, decoding each chunk (bf16/fp16/fp8 without torch, see
:mod:`registry.files.dtypes`), so memory stays at a few chunks whatever the file size (a 7 GB checkpoint
is analysed in well under 1 GB RSS). The work is a graph of small tasks on two threads: each half
chunk's read and BLAKE3 (in file order per tensor) and its moments, which are recorded per half and
added in file order at the end, so the figures do not depend on which thread ran what. The same pass
hashes each tensor's bytes (BLAKE3), so a later :func:`diff_checkpoints` can tell identical tensors
apart without reading them again.

Per tensor: element count, L2 norm, mean, standard deviation (population), absolute maximum, zero
fraction, NaN and Inf counts; moments and maxima are over the finite values. Sums of fp16/bf16 tensors
run in float32 blocks within :data:`F32_SUM_BOUND` of the exact sums (see ``_Moments._sums_f32``); the
rest, and the second pass around the mean where the mean dominates, in float64.
"""

from __future__ import annotations

import heapq
import math
import mmap
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import blake3
import numpy as np

from registry.adapters import place
from registry.files.dtypes import ITEMSIZE, UnsupportedDtype, decode_flat
from registry.files.safetensors import TensorInfo
from registry.findings import Finding, Severity, finding, rule

#: bytes of one chunk (of the stored dtype); a multiple of every element size
CHUNK_BYTES = 4 << 20
DIGEST_PREFIX = "blake3:"

R_NONFINITE_TENSOR = rule(
    "stats.nonfinite-tensor",
    Severity.HIGH,
    "Checkpoint tensors hold NaN or Inf values",
    "A NaN or Inf in a weight propagates through every computation that uses it; the model is broken.",
)
R_UNDECODABLE = rule(
    "stats.undecodable-tensor",
    Severity.INFO,
    "Tensors in a dtype the statistics cannot decode",
    "Sub-byte (F4, F6) and complex dtypes are hashed but get no statistics.",
)


@dataclass
class TensorStat:
    name: str
    dtype: str
    shape: list[int]
    numel: int
    l2: float | None = None
    mean: float | None = None
    std: float | None = None
    absmax: float | None = None
    zero_frac: float | None = None
    nan: int = 0
    inf: int = 0
    digest: str | None = None
    component: str | None = None
    block: str | None = None
    error: str | None = None

    def as_row(self) -> dict[str, Any]:
        d = asdict(self)
        d["tensor"] = d.pop("name")
        return d


#: 16-bit floats: code -> float64 tables (for single values), and the smallest non-finite magnitude code
with np.errstate(invalid="ignore"):  # the NaN codes are signalling NaNs; widening them is harmless
    _F16_LUT = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float64)
    _BF16_LUT = (np.arange(65536, dtype=np.uint32) << 16).view(np.float32).astype(np.float64)
_HALF = {"F16": (_F16_LUT, 0x7C00), "BF16": (_BF16_LUT, 0x7F80)}
#: relative cancellation in Σx² − (Σx)²/n beyond which the variance is recomputed around the mean
_CANCEL = 1e-6
#: the same for sums run in float32: below half, |mean| dominates and the variance is summed again in
#: float64 around the mean (above it, the variance errs by at most 6·F32_SUM_BOUND relative)
_CANCEL32 = 0.5
#: relative error bound of the float32 block sums (see ``_Moments._sums_f32``): |ΔΣx| ≤ bound·Σ|x|,
#: |ΔΣx²| ≤ bound·Σx²
F32_SUM_BOUND = 32 * 2.0**-24
#: 16-bit magnitude codes whose values are summed in float32: fp16 always (all squares are normal
#: float32 values); bf16 when |x|max lies in [2⁻³⁰, 2⁴⁸] (squares lost below float32's range then weigh
#: under 1e-10 of the total, and a block's Σx² stays below float32's maximum)
_F32_LO = {"F16": 0, "BF16": (127 - 30) << 7}
_F32_HI = {"F16": 0x7BFF, "BF16": (127 + 48) << 7}
#: 2¹¹²: an fp16 code shifted into a float32's exponent and significand bits, times this, is its value
_F16_SCALE = np.float32(2.0**112)


def f16_to_f32(u: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Finite fp16 codes (uint16) as float32 values, through ``out`` (uint32, same size): sign-extended
    into int32 and shifted by 13, bits 31..28 hold the sign and 27..13 the exponent and significand;
    clearing bits 30..28 leaves the float32 whose value is the fp16 value times 2⁻¹¹², for normal and
    subnormal codes alike; times 2¹¹² is exact. Four passes instead of NumPy's float16 cast."""
    np.copyto(out.view(np.int32), u.view(np.int16), casting="unsafe")
    np.left_shift(out, 13, out=out)
    np.bitwise_and(out, 0x8FFFFFFF, out=out)
    x = out.view(np.float32)
    np.multiply(x, _F16_SCALE, out=x)
    return x


def bf16_to_f32(u: np.ndarray, out: np.ndarray) -> np.ndarray:
    """bf16 codes (uint16) as float32 values (the upper half of a float32), through ``out`` (uint32)."""
    np.copyto(out, u, casting="unsafe")
    np.left_shift(out, 16, out=out)
    return out.view(np.float32)


class _Scratch:
    """Reusable chunk buffers: fresh large arrays per chunk would cost a page fault per 4 KiB."""

    def __init__(self) -> None:
        self.f64 = np.empty(0, dtype=np.float64)
        self.u16 = np.empty(0, dtype=np.uint16)
        self.u32 = np.empty(0, dtype=np.uint32)

    def floats(self, n: int) -> np.ndarray:
        if self.f64.size < n:
            self.f64 = np.empty(n, dtype=np.float64)
        return self.f64[:n]


    def halves(self, n: int) -> np.ndarray:
        if self.u16.size < n:
            self.u16 = np.empty(n, dtype=np.uint16)
        return self.u16[:n]

    def words(self, n: int) -> np.ndarray:
        if self.u32.size < n:
            self.u32 = np.empty(n, dtype=np.uint32)
        return self.u32[:n]


@dataclass
class _Moments:
    """Sums over the finite values of one tensor, of ``x − shift``: count, Σ, Σ², plus |x|max, zeros,
    NaN and Inf counts (the last four only in the first pass)."""

    scratch: _Scratch
    shift: float = 0.0
    n: int = 0
    s: float = 0.0
    sq: float = 0.0
    absmax: float = 0.0
    zeros: int = 0
    nan: int = 0
    inf: int = 0
    #: whether some sums ran in float32 (see :meth:`_sums_f32`; a larger cancellation margin then applies)
    f32: bool = False
    #: when a list, the (Σx, Σx²) terms of the sums are recorded here in order instead of added to ``s``
    #: and ``sq``: a part of a tensor computed on any thread, added later in file order (:meth:`absorb`)
    terms: list[tuple[float, float]] | None = None

    def add(self, raw: memoryview, dtype: str, first: bool = True) -> None:
        if dtype in _HALF:
            self._add_half(raw, dtype, first)
            return
        x = decode_flat(raw, dtype)
        if first:
            self.zeros += int(np.count_nonzero(x == 0))  # (4x faster than counting nonzero floats; NaN is neither)
        if x.size == 0:
            return
        lo, hi = float(x.min()), float(x.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN propagates into min/max, ±Inf is an extreme
            fin = np.isfinite(x)
            if first:
                nan = int(np.count_nonzero(np.isnan(x)))
                self.nan += nan
                self.inf += int(x.size - np.count_nonzero(fin)) - nan
            x = x[fin]
            if x.size == 0:
                return
            lo, hi = float(x.min()), float(x.max())
        if first:
            self.absmax = max(self.absmax, hi, -lo)
        x64 = self.scratch.floats(x.size)
        np.copyto(x64, x, casting="unsafe")  # float64 copy, shifted in place
        self._sums(x64)

    def _add_half(self, raw: memoryview, dtype: str, first: bool) -> None:
        # magnitude order of IEEE-style codes is integer order of (code & 0x7fff): |x|max, zeros and
        # NaN/Inf come from cheap 2-byte integer passes; only the sums need the float64 values
        lut, nonfinite = _HALF[dtype]
        u = np.frombuffer(raw, dtype="<u2")
        if not self.shift and self._add_half_f32(u, dtype, first):
            return
        mag = np.bitwise_and(u, 0x7FFF, out=self.scratch.halves(u.size))
        top = int(mag.max()) if mag.size else 0
        if first:
            self.zeros += int(mag.size - np.count_nonzero(mag))
        if top >= nonfinite:
            bad = mag >= nonfinite
            if first:
                n_bad = int(np.count_nonzero(bad))
                inf = int(np.count_nonzero(mag == nonfinite))
                self.inf += inf
                self.nan += n_bad - inf
            keep = ~bad
            u, mag = u[keep], mag[keep]
            top = int(mag.max()) if mag.size else 0
        if u.size == 0:
            return
        if first:
            self.absmax = max(self.absmax, float(lut[top]))
        if not self.shift and _F32_LO[dtype] <= top <= _F32_HI[dtype]:
            self._sums_f32(u, dtype)
            return
        x64 = self.scratch.floats(u.size)
        if dtype == "F16":
            np.copyto(x64, u.view("<f2"), casting="unsafe")
        else:  # bfloat16 is the upper half of a float32
            w = self.scratch.words(u.size)
            np.copyto(w, u, casting="unsafe")
            np.left_shift(w, 16, out=w)
            np.copyto(x64, w.view(np.float32), casting="unsafe")
        self._sums(x64)

    def _sums_f32(self, u: np.ndarray, dtype: str) -> None:
        """Σx and Σx² of finite 16-bit codes ``u`` in float32, block by block (:data:`SUM_BLOCK` values),
        each block's sums pairwise (NumPy's ``add.reduce`` along a contiguous axis) and added to float64
        totals in block order.

        The values and their squares are exact in float32 (an 11- or 8-bit significand squared fits 24
        bits; the ranges of :data:`_F32_LO` / :data:`_F32_HI` keep every square and block sum finite and
        normal enough), so only the summation rounds: with NumPy's pairwise scheme (eight interleaved
        accumulators over runs of 128, then halving) a block of 2¹⁶ values errs by at most
        (16 + 3 + 9)·2⁻²⁴ ≈ 1.7e-6 of Σ|x| (of Σx² for the squares); :data:`F32_SUM_BOUND` is the
        bound the tests hold every figure to. fp16 codes become float32 through :func:`f16_to_f32`.

        :data:`SUM_GROUP` values (eight blocks) are widened and squared per NumPy call, and their blocks
        summed by one ``add.reduce`` over the rows of a (blocks, SUM_BLOCK) view: each row is the same
        contiguous pairwise sum as a block on its own, so the figures are those of one block per call,
        bit for bit (tested), at an eighth of the calls.
        """
        conv = f16_to_f32 if dtype == "F16" else bf16_to_f32
        n = int(u.size)
        for i in range(0, n, SUM_GROUP):
            self._add_terms(self._group_terms(u[i : i + SUM_GROUP], conv))
        self.n += n
        self.f32 = True

    def _group_terms(self, ub: np.ndarray, conv: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[tuple[float, float]]:
        """The (Σx, Σx²) terms of the blocks of one group of at most :data:`SUM_GROUP` codes."""
        m = int(ub.size)
        x = conv(ub, self.scratch.words(m))
        k = m // SUM_BLOCK
        whole = x[: k * SUM_BLOCK].reshape(k, SUM_BLOCK)
        s = np.add.reduce(whole, axis=1).tolist()
        if m > k * SUM_BLOCK:
            s.append(float(x[k * SUM_BLOCK :].sum()))
        np.square(x, out=x)  # in place: the group's values and squares in one buffer (cache)
        sq = np.add.reduce(whole, axis=1).tolist()
        if m > k * SUM_BLOCK:
            sq.append(float(x[k * SUM_BLOCK :].sum()))
        return list(zip(s, sq, strict=True))

    def _add_half_f32(self, u: np.ndarray, dtype: str, first: bool) -> bool:
        """The common case of :meth:`_add_half` in one sweep of :data:`SUM_GROUP` codes at a time (each
        group's integer passes and float32 sums while its codes are in cache): when every code is finite
        and |x|max in the float32 range of :data:`_F32_LO` / :data:`_F32_HI`, add the same figures as
        the general path and return True; otherwise add nothing and return False (the general path
        then handles the chunk)."""
        if not u.size:
            return False
        _, nonfinite = _HALF[dtype]
        hi_ok = min(nonfinite - 1, _F32_HI[dtype])
        conv = f16_to_f32 if dtype == "F16" else bf16_to_f32
        sc = self.scratch
        top = zeros = 0
        terms: list[tuple[float, float]] = []
        for i in range(0, int(u.size), SUM_GROUP):
            ub = u[i : i + SUM_GROUP]
            # (the magnitudes borrow the buffer the group is widened into next: less memory in cache)
            mag = np.bitwise_and(ub, 0x7FFF, out=sc.words(ub.size).view(np.uint16)[: ub.size])
            gtop = int(mag.max())
            if gtop > hi_ok:
                return False
            top = max(top, gtop)
            if first and not mag.min():
                zeros += int(mag.size - np.count_nonzero(mag))
            terms.extend(self._group_terms(ub, conv))
        if top < _F32_LO[dtype]:
            return False
        if first:
            self.zeros += zeros
            self.absmax = max(self.absmax, float(_HALF[dtype][0][top]))
        self.n += int(u.size)
        self._add_terms(terms)
        self.f32 = True
        return True

    def _add_terms(self, terms: Iterable[tuple[float, float]]) -> None:
        if self.terms is not None:
            self.terms.extend(terms)
            return
        for a, b in terms:
            self.s += a
            self.sq += b

    def _sums(self, x64: np.ndarray) -> None:
        """Add float64 values (modified in place when shifted)."""
        if self.shift:
            x64 -= self.shift
        self.n += int(x64.size)
        self._add_terms([(float(x64.sum()), float(np.dot(x64, x64)))])

    def absorb(self, p: _Moments) -> None:
        """Add a recorded part (``terms``) of the same tensor: the same float64 additions, in the same
        order, as if its chunk had been added to this one directly."""
        assert p.terms is not None
        self.n += p.n
        self._add_terms(p.terms)
        self.absmax = max(self.absmax, p.absmax)
        self.zeros, self.nan, self.inf = self.zeros + p.zeros, self.nan + p.nan, self.inf + p.inf
        self.f32 = self.f32 or p.f32

    def merge(self, o: _Moments) -> None:
        """Add the sums of another part of the same tensor (same shift)."""
        self.n, self.s, self.sq = self.n + o.n, self.s + o.s, self.sq + o.sq
        self.absmax = max(self.absmax, o.absmax)
        self.zeros, self.nan, self.inf = self.zeros + o.zeros, self.nan + o.nan, self.inf + o.inf
        self.f32 = self.f32 or o.f32

    def m2(self) -> float:
        """Σ(x − mean)² from the sums (exact up to rounding unless it cancelled; see :data:`_CANCEL`)."""
        return max(self.sq - self.s * self.s / self.n, 0.0) if self.n else 0.0

    def cancelled(self) -> bool:
        return self.n > 0 and self.sq > 0 and self.m2() < (_CANCEL32 if self.f32 else _CANCEL) * self.sq


@contextmanager
def _mapped(path: str | os.PathLike[str]) -> Iterator[tuple[mmap.mmap | None, memoryview]]:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            yield None, memoryview(b"")
            return
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        mv = memoryview(mm)
        try:
            yield mm, mv
        finally:
            mv.release()
            mm.close()


def _chunks(t: TensorInfo, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    step = max(ITEMSIZE.get(t.dtype, 1), chunk_bytes - chunk_bytes % 8)
    for a in range(t.offset, t.offset + t.nbytes, step):
        yield a, min(a + step, t.offset + t.nbytes)


#: elements per block of the float32 sums (the figures depend on it: see ``_Moments._sums_f32``)
SUM_BLOCK = 1 << 16
#: elements widened, squared (in place) and summed per NumPy call: eight blocks, 2 MiB of float32
SUM_GROUP = 8 * SUM_BLOCK

#: chunks at least this big are split in two halves whose moments run on two threads
SPLIT_BYTES = 1 << 20


def _pread(fd: int, buf: bytearray, a: int, b: int, at: int = 0) -> memoryview:
    """Bytes [a, b) of the file into ``buf`` from offset ``at`` (positional: safe from several threads)."""
    mv = memoryview(buf)[at : at + b - a]
    got = 0
    while got < b - a:
        n = os.preadv(fd, [mv[got:]], a + got)
        if not n:
            raise OSError(f"file ended at byte {a + got}, expected {b}")
        got += n
    return mv


#: read buffers in flight, each half a chunk: reads run up to this many halves ahead of the oldest
#: unfinished one (16 MiB: enough slack that neither thread waits for the other, and few enough that
#: the buffers stay in the L3 cache between the read and the sums)
RING = 8
#: bytes per read call: each is hashed right after, while in the reading core's L2 cache
READ_BYTES = 256 << 10


class _Task:
    __slots__ = ("prio", "fn", "waits", "then")

    def __init__(self, prio: tuple[int, int], fn: Callable[[], None]) -> None:
        self.prio, self.fn, self.waits = prio, fn, 0
        self.then: list[_Task] = []


class _Graph:
    """A small dependency scheduler: every task runs once the tasks it waits for are done, the ready one
    with the lowest priority first, on ``threads`` threads (the caller's among them). The first error
    stops the run and is raised by :meth:`run`."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.ready: list[tuple[tuple[int, int], int, _Task]] = []
        self.left = 0
        self.seq = 0
        self.error: BaseException | None = None

    def add(self, prio: tuple[int, int], fn: Callable[[], None], waits: Iterable[_Task | None] = ()) -> _Task:
        t = _Task(prio, fn)
        for w in waits:
            if w is not None:
                w.then.append(t)
                t.waits += 1
        if not t.waits:
            self._push(t)
        self.left += 1
        return t

    def _push(self, t: _Task) -> None:
        self.seq += 1
        heapq.heappush(self.ready, (t.prio, self.seq, t))

    def _work(self) -> None:
        while True:
            with self.cond:
                while not self.ready and self.left and self.error is None:
                    self.cond.wait()
                if self.error is not None or not self.ready:
                    return
                task = heapq.heappop(self.ready)[2]
            try:
                task.fn()
            except BaseException as e:  # noqa: BLE001 - re-raised by run() in the caller's thread
                with self.cond:
                    self.error = self.error or e
                    self.cond.notify_all()
                return
            with self.cond:
                self.left -= 1
                woke = 0
                for t in task.then:
                    t.waits -= 1
                    if not t.waits:
                        self._push(t)
                        woke += 1
                if woke or not self.left:
                    self.cond.notify_all()

    def run(self, threads: int) -> None:
        helpers = [threading.Thread(target=self._work, name=f"tensorstats-{k}", daemon=True) for k in range(threads - 1)]
        for h in helpers:
            h.start()
        try:
            self._work()
        except BaseException as e:  # e.g. KeyboardInterrupt while waiting: the helpers stop too
            with self.cond:
                self.error = self.error or e
                self.cond.notify_all()
            raise
        finally:
            for h in helpers:
                h.join()
        if self.error is not None:
            raise self.error


def tensor_stats(
    path: str | os.PathLike[str],
    tensors: Sequence[TensorInfo],
    chunk_bytes: int = CHUNK_BYTES,
    digests: bool = True,
    threads: int = 2,
) -> list[TensorStat]:
    """Statistics of every tensor (in file order), streamed in chunks read into a ring of reusable buffers.

    One pass, as a graph of small tasks on ``threads`` threads (NumPy's loops, BLAKE3 and reads release
    the GIL): per chunk its read, its BLAKE3 (after the tensor's previous chunk) and its moments, in two
    halves for chunks of :data:`SPLIT_BYTES` or more; runs of smaller chunks (small tensors) are read
    together and done as one task. Reads go up to :data:`RING` chunks ahead. Each half's sums are
    recorded and added in file order at the end, so the figures are the same bit for bit whatever
    thread ran what and when. Memory stays at the ring and per-thread scratch whatever the file size (no
    memory map, so no resident pages of the file)."""
    from registry.stats import single_threaded_blas

    single_threaded_blas()
    step = max(8, chunk_bytes - chunk_bytes % 8)
    ordered = sorted(tensors, key=lambda t: t.offset)
    out: list[TensorStat] = []
    # every chunk of every readable tensor, in file order: (tensor index, start, end)
    plan: list[tuple[int, int, int]] = []
    with open(path, "rb", buffering=0) as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        for i, t in enumerate(ordered):
            comp, block = place(t.name)
            st = TensorStat(t.name, t.dtype, list(t.shape), t.numel, component=comp, block=block)
            out.append(st)
            if t.offset + t.nbytes > size:
                st.error = "tensor extends past the end of the file"
                continue
            if t.dtype not in ITEMSIZE:
                st.error = str(UnsupportedDtype(t.dtype))
            plan.extend((i, a, b) for a, b in _chunks(t, step))
        hashers: dict[int, Any] = {}
        # per tensor and side (first / second half of split chunks), the recorded parts in chunk order
        parts: dict[int, tuple[list[_Moments], list[_Moments]]] = {}
        for i, _, _ in plan:
            if i not in hashers:
                hashers[i] = blake3.blake3() if digests else None
                if ordered[i].dtype in ITEMSIZE:
                    parts[i] = ([], [])
        _run_plan(fd, plan, ordered, step, hashers, parts, threads)
        buf = bytearray(step)
        for i in hashers:
            t = ordered[i]
            mom = None
            if i in parts:
                mom = (_Moments(_Scratch()), _Moments(_Scratch()))
                for side in (0, 1):
                    for p in parts[i][side]:
                        mom[side].absorb(p)
            # (a second read, when needed, goes to a buffer of its own)
            _finish(out[i], hashers[i], mom, partial(_reread, fd, buf, t, step), t)
        # tensors without chunks (no bytes)
        for i, t in enumerate(ordered):
            if i in hashers or out[i].error == "tensor extends past the end of the file":
                continue
            if t.nbytes == 0:
                h0 = blake3.blake3() if digests else None
                _finish(out[i], h0, (_Moments(_Scratch()), _Moments(_Scratch())) if t.dtype in ITEMSIZE else None, partial(iter, ()), t)
    return out


def _run_plan(
    fd: int,
    plan: list[tuple[int, int, int]],
    ordered: Sequence[TensorInfo],
    step: int,
    hashers: dict[int, Any],
    parts: dict[int, tuple[list[_Moments], list[_Moments]]],
    threads: int,
) -> None:
    """Read, hash and sum every chunk of ``plan`` (see :func:`tensor_stats`), filling ``hashers`` and
    ``parts``.

    The file is cut into units, each read into one buffer of a ring: each half of a chunk of
    :data:`SPLIT_BYTES` or more, and runs of adjacent smaller chunks. A half is read and hashed by one
    task (the tensor's hashes in file order; the bytes are still in that core's cache) and summed by
    another; a run of small chunks is one task."""
    # units: (side, chunks) — side 0/1: one half of a split chunk; -1: a run of small chunks
    units: list[tuple[int, list[tuple[int, int, int]]]] = []
    for i, a, b in plan:
        if b - a >= SPLIT_BYTES:
            half = (b - a) // 2
            half -= half % 8
            units.append((0, [(i, a, a + half)]))
            units.append((1, [(i, a + half, b)]))
            continue
        last = units[-1] if units else None
        if last is not None and last[0] < 0 and last[1][-1][2] == a and b - last[1][0][1] <= max(step, CHUNK_BYTES) // 2:
            last[1].append((i, a, b))
        else:
            units.append((-1, [(i, a, b)]))
    cap = max((u[-1][2] - u[0][1] for _, u in units), default=0)
    bufs = [bytearray(cap) for _ in range(min(RING, len(units)))]
    views: list[memoryview | None] = [None] * len(units)
    local = threading.local()

    def scratch() -> _Scratch:
        sc: _Scratch | None = getattr(local, "scratch", None)
        if sc is None:
            sc = local.scratch = _Scratch()
        return sc

    def read(k: int) -> memoryview:
        v = views[k] = _pread(fd, bufs[k % len(bufs)], units[k][1][0][1], units[k][1][-1][2])
        return v

    def read_hash(k: int) -> None:
        # a quarter of L2 at a time: each piece is hashed while the read's copy is still in this core's cache
        h = hashers[units[k][1][0][0]]
        a, b = units[k][1][0][1], units[k][1][-1][2]
        buf = bufs[k % len(bufs)]
        for lo in range(a, b, READ_BYTES):
            hi = min(lo + READ_BYTES, b)
            v = _pread(fd, buf, lo, hi, lo - a)
            if h is not None:
                h.update(v)
        views[k] = memoryview(buf)[: b - a]

    def moments(k: int, into: list[_Moments], at: int) -> None:
        v = views[k]
        assert v is not None
        p = _Moments(scratch(), terms=[])
        p.add(v, ordered[units[k][1][0][0]].dtype)
        into[at] = p

    def run_small(k: int, slots: list[tuple[list[_Moments], int] | None]) -> None:
        v = read(k)
        base = units[k][1][0][1]
        for (i, a, b), slot in zip(units[k][1], slots, strict=True):
            h = hashers[i]
            if h is not None:
                h.update(v[a - base : b - base])
            if slot is not None:
                p = _Moments(scratch(), terms=[])
                p.add(v[a - base : b - base], ordered[i].dtype)
                slot[0][slot[1]] = p

    def placeholder(i: int, side: int) -> tuple[list[_Moments], int]:
        """A place for a part in ``parts[i][side]`` (in chunk order), filled by its task."""
        lst = parts[i][side]
        lst.append(_Moments(_Scratch()))
        return lst, len(lst) - 1

    g = _Graph()
    hashed: dict[int, _Task] = {}  # per tensor, the task that hashes its latest bytes so far
    unit_tasks: list[list[_Task]] = []
    for k, (side, chunks) in enumerate(units):
        free = unit_tasks[k - len(bufs)] if k >= len(bufs) else []  # the buffer's previous unit is done
        if side >= 0:
            i = chunks[0][0]
            r = g.add((0, k), partial(read_hash, k), (*free, hashed.get(i)))
            hashed[i] = r
            tasks = [r]
            if i in parts:
                tasks.append(g.add((1, k), partial(moments, k, *placeholder(i, side)), (r,)))
        else:
            slots = [placeholder(c[0], 0) if c[0] in parts else None for c in chunks]
            r = g.add((0, k), partial(run_small, k, slots), (*free, *(hashed.get(c[0]) for c in chunks)))
            for c in chunks:
                hashed[c[0]] = r
            tasks = [r]
        unit_tasks.append(tasks)
    g.run(max(1, threads))


def _reread(fd: int, buf: bytearray, t: TensorInfo, step: int) -> Iterator[memoryview]:
    for a, b in _chunks(t, step):
        yield _pread(fd, buf, a, b)


def _finish(
    st: TensorStat, h: Any, mom: tuple[_Moments, _Moments] | None, reread: Callable[[], Iterator[memoryview]], t: TensorInfo
) -> None:
    """Fill ``st`` from a tensor's digest and the moments of its two halves."""
    if h is not None:
        st.digest = DIGEST_PREFIX + h.hexdigest()
    if mom is None:
        return
    m = mom[0]
    m.merge(mom[1])
    st.nan, st.inf = m.nan, m.inf
    st.zero_frac = m.zeros / t.numel if t.numel else None
    if t.numel == 0:
        st.l2 = 0.0
    if not m.n:
        return
    st.absmax = m.absmax
    st.l2 = math.sqrt(m.sq)
    mean = m.s / m.n
    m2 = m.m2()
    if m.cancelled():
        # |mean| ≫ std: Σx² − (Σx)²/n lost its digits; sum again around the mean (a second read)
        again = _Moments(m.scratch, shift=mean)
        for view in reread():
            again.add(view, t.dtype, first=False)
        mean += again.s / again.n
        m2 = again.m2()
    st.mean = mean
    st.std = math.sqrt(m2 / m.n)


def tensor_summary(stats: Sequence[TensorStat]) -> tuple[dict[str, Any], list[Finding]]:
    """Per-file totals (and a component profile) of :func:`tensor_stats` results, with findings."""
    total_sq = sum((s.l2 or 0.0) ** 2 for s in stats)
    comps: dict[str, dict[str, Any]] = {}
    for s in stats:
        c = comps.setdefault(s.component or "model", {"n_tensors": 0, "numel": 0, "l2_sq": 0.0})
        c["n_tensors"] += 1
        c["numel"] += s.numel
        c["l2_sq"] += (s.l2 or 0.0) ** 2
    dtypes: dict[str, int] = {}
    for s in stats:
        dtypes[s.dtype] = dtypes.get(s.dtype, 0) + 1
    bad = [s for s in stats if s.nan or s.inf]
    undecodable = [s for s in stats if s.error]
    summary: dict[str, Any] = {
        "n_tensors": len(stats),
        "numel": sum(s.numel for s in stats),
        "dtypes": dict(sorted(dtypes.items())),
        "l2": math.sqrt(total_sq),
        "absmax": max((s.absmax for s in stats if s.absmax is not None), default=None),
        "nonfinite_tensors": len(bad),
        "nan": sum(s.nan for s in stats),
        "inf": sum(s.inf for s in stats),
        "zero_tensors": sum(1 for s in stats if s.zero_frac == 1.0),
        "undecodable_tensors": len(undecodable),
        "components": {
            k: {"n_tensors": v["n_tensors"], "numel": v["numel"], "l2": math.sqrt(v["l2_sq"])}
            for k, v in sorted(comps.items())
        },
    }
    found: list[Finding] = []
    if bad:
        found.append(
            finding(
                R_NONFINITE_TENSOR.id,
                f"{len(bad)} of {len(stats)} tensors hold NaN or Inf ({summary['nan']:,} NaN, "
                f"{summary['inf']:,} Inf; first: {bad[0].name})",
                tensors=[s.name for s in bad[:20]],
                nan=summary["nan"],
                inf=summary["inf"],
            )
        )
    if undecodable:
        found.append(
            finding(
                R_UNDECODABLE.id,
                f"{len(undecodable)} tensors have no statistics (first: {undecodable[0].name}: {undecodable[0].error})",
                tensors=[s.name for s in undecodable[:20]],
            )
        )
    return summary, found


# -- difference of two checkpoints ------------------------------------------------------------


@dataclass
class CheckpointSide:
    """One side of a diff: its tensors, and where available the file and per-tensor digests/norms."""

    tensors: Sequence[TensorInfo]
    path: Path | None = None
    digests: Mapping[str, str] = field(default_factory=dict)
    l2: Mapping[str, float] = field(default_factory=dict)


@dataclass
class TensorDiff:
    name: str
    status: str  # identical | changed | shape-changed | only-a | only-b | unknown
    how: str  # digest | read | none
    dtype_a: str | None = None
    dtype_b: str | None = None
    shape_a: list[int] | None = None
    shape_b: list[int] | None = None
    numel: int = 0
    l2_a: float | None = None
    l2_b: float | None = None
    diff_l2: float | None = None
    rel_change: float | None = None
    cosine: float | None = None
    component: str | None = None
    block: str | None = None


@dataclass
class DiffReport:
    tensors: list[TensorDiff]
    summary: dict[str, Any]
    by_block: list[dict[str, Any]]


def _pair_moments(
    mva: memoryview, ta: TensorInfo, mvb: memoryview, tb: TensorInfo, chunk_elems: int
) -> tuple[float, float, float, float]:
    """(‖a‖², ‖b‖², ‖b−a‖², a·b) of two tensors with the same element count, streamed."""
    aa = bb = dd = ab = 0.0
    ia, ib = ITEMSIZE[ta.dtype], ITEMSIZE[tb.dtype]
    for start in range(0, ta.numel, chunk_elems):
        stop = min(start + chunk_elems, ta.numel)
        va = mva[ta.offset + start * ia : ta.offset + stop * ia]
        vb = mvb[tb.offset + start * ib : tb.offset + stop * ib]
        x = decode_flat(va, ta.dtype).astype(np.float64)
        y = decode_flat(vb, tb.dtype).astype(np.float64)
        va.release()
        vb.release()
        aa += float(np.dot(x, x))
        bb += float(np.dot(y, y))
        ab += float(np.dot(x, y))
        y -= x
        dd += float(np.dot(y, y))
    return aa, bb, dd, ab


def diff_checkpoints(a: CheckpointSide, b: CheckpointSide, chunk_bytes: int = CHUNK_BYTES) -> DiffReport:
    """Per-tensor relative change ‖B−A‖/‖A‖ (and cosine) of two checkpoints, matched by name.

    Tensors whose digests (from :func:`tensor_stats`) agree are identical without reading; the rest are
    read from both files when both paths are given, else reported ``unknown`` (or ``changed`` when the
    digests are known to differ)."""
    ta = {t.name: t for t in a.tensors}
    tb = {t.name: t for t in b.tensors}
    out: list[TensorDiff] = []
    read_bytes = 0
    with ExitStack() as stack:
        mva = stack.enter_context(_mapped(a.path))[1] if a.path is not None else None
        mvb = stack.enter_context(_mapped(b.path))[1] if b.path is not None else None
        chunk_elems = max(1, chunk_bytes // 4)
        for name in sorted(set(ta) | set(tb)):
            x, y = ta.get(name), tb.get(name)
            comp, block = place(name)
            if x is None or y is None:
                t = x or y
                assert t is not None
                out.append(
                    TensorDiff(
                        name,
                        "only-a" if y is None else "only-b",
                        "none",
                        dtype_a=x.dtype if x else None,
                        dtype_b=y.dtype if y else None,
                        shape_a=list(x.shape) if x else None,
                        shape_b=list(y.shape) if y else None,
                        numel=t.numel,
                        l2_a=a.l2.get(name) if x else None,
                        l2_b=b.l2.get(name) if y else None,
                        component=comp,
                        block=block,
                    )
                )
                continue
            d = TensorDiff(
                name,
                "unknown",
                "none",
                x.dtype,
                y.dtype,
                list(x.shape),
                list(y.shape),
                x.numel,
                a.l2.get(name),
                b.l2.get(name),
                component=comp,
                block=block,
            )
            out.append(d)
            if x.shape != y.shape:
                d.status = "shape-changed"
                continue
            da, db = a.digests.get(name), b.digests.get(name)
            if da and db and da == db and x.dtype == y.dtype:
                d.status, d.how, d.diff_l2, d.rel_change = "identical", "digest", 0.0, 0.0
                if d.l2_a is not None:
                    d.cosine = 1.0 if d.l2_a > 0 else None
                continue
            readable = (
                mva is not None
                and mvb is not None
                and x.dtype in ITEMSIZE
                and y.dtype in ITEMSIZE
                and x.offset + x.nbytes <= len(mva)
                and y.offset + y.nbytes <= len(mvb)
            )
            if readable:
                assert mva is not None and mvb is not None
                aa, bb, dd, ab = _pair_moments(mva, x, mvb, y, chunk_elems)
                read_bytes += x.nbytes + y.nbytes
                d.how = "read"
                d.l2_a, d.l2_b, d.diff_l2 = math.sqrt(aa), math.sqrt(bb), math.sqrt(dd)
                d.rel_change = d.diff_l2 / d.l2_a if aa > 0 else (0.0 if dd == 0 else math.inf)
                d.cosine = ab / math.sqrt(aa * bb) if aa > 0 and bb > 0 else None
                d.status = "identical" if dd == 0.0 else "changed"
            elif da and db:
                d.status, d.how = ("changed" if da != db else "identical"), "digest"
    return DiffReport(out, *_diff_summary(out, read_bytes))


def _diff_summary(diffs: list[TensorDiff], read_bytes: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    counts: dict[str, int] = {}
    for d in diffs:
        counts[d.status] = counts.get(d.status, 0) + 1
    measured = [d for d in diffs if d.diff_l2 is not None and d.l2_a is not None]
    base_sq = sum((d.l2_a or 0.0) ** 2 for d in measured)
    diff_sq = sum((d.diff_l2 or 0.0) ** 2 for d in measured)
    groups: dict[tuple[str, str], list[TensorDiff]] = {}
    for d in measured:
        groups.setdefault((d.component or "model", d.block or "(other)"), []).append(d)
    by_block: list[dict[str, Any]] = []
    for (comp, block), ds in groups.items():
        b_sq = sum((d.l2_a or 0.0) ** 2 for d in ds)
        d_sq = sum((d.diff_l2 or 0.0) ** 2 for d in ds)
        by_block.append(
            {
                "component": comp,
                "block": block,
                "n_tensors": len(ds),
                "n_changed": sum(1 for d in ds if d.status == "changed"),
                "rel_change": math.sqrt(d_sq / b_sq) if b_sq > 0 else None,
                "diff_share": d_sq / diff_sq if diff_sq > 0 else 0.0,
            }
        )
    by_block.sort(key=lambda g: -float(g["diff_share"] or 0.0))
    changed = [d for d in measured if d.status == "changed" and d.rel_change is not None]
    changed.sort(key=lambda d: -(d.rel_change or 0.0))
    summary = {
        "n_tensors": len(diffs),
        "status": dict(sorted(counts.items())),
        "identical_by_digest": sum(1 for d in diffs if d.status == "identical" and d.how == "digest"),
        "bytes_read": read_bytes,
        "rel_change": math.sqrt(diff_sq / base_sq) if base_sq > 0 else None,
        "top": [{"tensor": d.name, "rel_change": d.rel_change} for d in changed[:10]],
    }
    return summary, by_block


def side_from_registry(con: Any, sha256: str) -> CheckpointSide:
    """One side of a diff from the registry: the blob's tensors, its per-tensor digests and norms (from
    ``tensor_stats``), and a path on this host that still holds the same file (same size and mtime as
    when it was last seen), or None."""
    import socket

    rows = con.execute(
        "SELECT name, dtype, shape, data_begin, data_end, file_offset FROM tensors WHERE blob_sha256 = ? ORDER BY idx",
        [sha256],
    ).fetchall()
    tensors = [
        TensorInfo(n, d, tuple(int(x) for x in s), int(b or 0), int(e or 0), int(o or 0)) for n, d, s, b, e, o in rows
    ]
    digests: dict[str, str] = {}
    norms: dict[str, float] = {}
    for name, digest, l2 in con.execute(
        "SELECT tensor, digest, l2 FROM tensor_stats WHERE blob_sha256 = ?", [sha256]
    ).fetchall():
        if digest:
            digests[name] = digest
        if l2 is not None:
            norms[name] = float(l2)
    path: Path | None = None
    size_row = con.execute("SELECT size FROM blobs WHERE sha256 = ?", [sha256]).fetchone()
    for p, mtime in con.execute(
        "SELECT path, mtime_ns FROM sightings WHERE blob_sha256 = ? AND host = ? ORDER BY seen_at DESC, id DESC",
        [sha256, socket.gethostname()],
    ).fetchall():
        try:
            st = os.stat(p)
        except OSError:
            continue
        if size_row and st.st_size == size_row[0] and st.st_mtime_ns == mtime:
            path = Path(p)
            break
    return CheckpointSide(tensors, path, digests, norms)
