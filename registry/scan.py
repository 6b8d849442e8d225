"""The scan pipeline: discover → sniff → hash (one pass) → header → analyzers → write.

Workers (processes when ``workers > 1``) do everything up to "write" without the registry open; the main
process collects results and commits them in batches of whole files (about one per second) through one
write connection (:class:`HeldWriter`) that it lets go whenever another command waits for the registry.

Nothing is dropped silently: an unreadable path, a special file or a broken link becomes a recorded
finding, and a file whose format modelreg cannot read yet is recorded with its hashes and a
"format not yet supported" finding.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import mmap
import multiprocessing
import os
import signal
import socket
import stat as statmod
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.adapters import group_modules
from registry.analysis import (
    POPULATE_MAX,
    FileContext,
    analyzer_versions,
    batch_point,
    derived_tables,
    load_analyzers,
    run_analyzers,
)
from registry.errors import RegistryError, SafetensorsError
from registry.files import safetensors as st
from registry.files.sniff import SNIFF_BYTES, file_reader, sniff_bytes
from registry.findings import Finding, Severity, finding, from_error, rule
from registry.hashing import INLINE_LIMIT, hash_bytes, hash_file, hash_map
from registry.paths import clean_text, display_path, raw_path
from registry.store._duck import registered
from registry.store.anchor import head_path, update_after_write
from registry.store.db import connect, someone_waiting, waiting_path
from registry.store.write import (
    BlobRecord,
    ColumnBlock,
    FileWrite,
    SightingRecord,
    TensorRows,
    blob_event_text,
    rows_as_columns,
    write_batch,
)

#: a file that takes longer than this (seconds) is named in the scan summary with its slowest step
SLOW_SECONDS = 10.0

R_UNREADABLE = rule("file.unreadable", Severity.MEDIUM, "The file could not be read")
R_BROKEN_LINK = rule("file.broken-symlink", Severity.LOW, "A symbolic link points to nothing")
R_LINK_LOOP = rule("file.symlink-loop", Severity.LOW, "Symbolic links form a loop")
R_NOT_REGULAR = rule("file.not-regular", Severity.LOW, "Not a regular file (FIFO, device or socket); not opened")
R_EMPTY = rule("file.empty", Severity.MEDIUM, "The file is empty")
R_LFS = rule(
    "file.git-lfs-pointer", Severity.HIGH, "A Git LFS pointer, not the model (the download did not fetch the weights)"
)
R_HTML = rule("file.html-page", Severity.HIGH, "A saved web page or error page, not a model")
R_UNSUPPORTED = rule(
    "format.unsupported", Severity.LOW, "Format not yet supported: recorded with its hashes only"
)
R_UNSUPPORTED_CODE = rule(
    "format.unsupported-code",
    Severity.MEDIUM,
    "A format that can carry code was not scanned; treat it as unsafe to load",
)
#: a file whose analysis failed again when it was retried on its own: by the local pool (its worker process
#: died) or on a Ray cluster (registry.distributed: worker or node lost, or an error)
R_TASK_FAILED = rule(
    "scan.task-failed",
    Severity.MEDIUM,
    "The file's analysis failed again when retried on its own (worker process or node lost, or an error); "
    "it was not analysed",
    "Scan the file again; it is not registered until an analysis completes. A local worker process dies, "
    "for example, when the file is truncated or replaced while it is memory-mapped (the kernel then ends "
    "the process with SIGBUS) or when a native library crashes; the scan's other files are analysed and "
    "recorded.",
)
R_CHANGED = rule("file.changed-during-scan", Severity.LOW, "The file changed while it was being read")

_CODE_FORMATS = {"pickle", "zip", "7z", "pytorch-zip", "pytorch-legacy", "torchscript", "npy", "npz"}
_FORMAT_WORDS = {
    "pickle": "a raw Python pickle",
    "zip": "a zip archive (PyTorch checkpoints are zips of pickles)",
    "7z": "a 7z archive",
    "gguf": "a GGUF file",
    "npy": "a numpy array file",
    "unknown": "an unrecognised format",
}


@dataclass
class ScanItem:
    """A discovered path, with its lstat/stat or the finding that stops it."""

    path: str
    st: os.stat_result | None = None
    problem: Finding | None = None


@dataclass
class ScanSummary:
    files: int = 0
    new_blobs: int = 0
    known_blobs: int = 0
    unchanged: int = 0
    rehashed: int = 0
    unreadable: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    #: (rule_id, severity, path, message) for every finding recorded in this scan
    finding_list: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: (path, seconds, slowest step, its seconds) of every file that took more than SLOW_SECONDS
    slow: list[tuple[str, float, str, float]] = field(default_factory=list)
    #: sha256 per scanned path (unchanged files included)
    shas: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0
    #: findings by severity over every file this scan covered, findings recorded by earlier scans of
    #: the same content included (what ``--fail-on`` judges): content findings of each covered
    #: (path, blob), plus the path findings of files that could not be read now
    covered: dict[str, int] = field(default_factory=dict)

    def covered_at_or_above(self, sev: Severity) -> int:
        return sum(n for s, n in self.covered.items() if Severity.parse(s) >= sev)

    @property
    def max_severity(self) -> Severity | None:
        ranks = [Severity.parse(s) for s in self.findings]
        return max(ranks) if ranks else None

    def count_at_or_above(self, sev: Severity) -> int:
        return sum(n for s, n in self.findings.items() if Severity.parse(s) >= sev)


def discover(paths: Iterable[str | os.PathLike[str]]) -> Iterator[ScanItem]:
    """Walk files and folders recursively. Directory symlinks are followed once (loops reported)."""
    for raw in paths:
        p = os.path.abspath(os.fspath(raw))
        yield from _discover_one(p, set())


def _discover_one(p: str, seen_dirs: set[tuple[int, int]]) -> Iterator[ScanItem]:
    try:
        lst = os.lstat(p)
    except FileNotFoundError:
        yield ScanItem(p, None, finding(R_UNREADABLE.id, f"{p}: no such file or directory", error="ENOENT"))
        return
    except OSError as e:
        yield ScanItem(p, None, finding(R_UNREADABLE.id, f"{p}: {e.strerror}", error=e.errno))
        return
    st_: os.stat_result = lst
    if statmod.S_ISLNK(lst.st_mode):
        try:
            st_ = os.stat(p)
        except FileNotFoundError:
            target = _readlink(p)
            yield ScanItem(p, None, finding(R_BROKEN_LINK.id, f"{p} is a symbolic link to {target}, which does not exist", target=target))
            return
        except OSError as e:
            if e.errno == 40:  # ELOOP
                yield ScanItem(p, None, finding(R_LINK_LOOP.id, f"{p}: symbolic links loop back on themselves", target=_readlink(p)))
            else:
                yield ScanItem(p, None, finding(R_UNREADABLE.id, f"{p}: {e.strerror}", error=e.errno))
            return
    if statmod.S_ISDIR(st_.st_mode):
        key = (st_.st_dev, st_.st_ino)
        if key in seen_dirs:
            yield ScanItem(p, None, finding(R_LINK_LOOP.id, f"{p} leads back to a folder already being scanned (symlink loop)"))
            return
        seen_dirs = seen_dirs | {key}
        try:
            with os.scandir(p) as it:
                names = sorted(e.name for e in it)
        except OSError as e:
            yield ScanItem(p, None, finding(R_UNREADABLE.id, f"{p}: cannot list folder: {e.strerror}", error=e.errno))
            return
        for name in names:
            yield from _discover_one(os.path.join(p, name), seen_dirs)
        return
    if not statmod.S_ISREG(st_.st_mode):
        kind = (
            "a FIFO" if statmod.S_ISFIFO(st_.st_mode)
            else "a device" if statmod.S_ISCHR(st_.st_mode) or statmod.S_ISBLK(st_.st_mode)
            else "a socket" if statmod.S_ISSOCK(st_.st_mode)
            else "not a regular file"
        )
        yield ScanItem(p, None, finding(R_NOT_REGULAR.id, f"{p} is {kind}; not opened", kind=kind))
        return
    yield ScanItem(p, st_)


def _readlink(p: str) -> str:
    try:
        return os.readlink(p)
    except OSError:
        return "?"


def _i64(x: int) -> int:
    return x - (1 << 64) if x >= (1 << 63) else x


# ---------------------------------------------------------------------------------------------
# worker side


@dataclass
class Analysed:
    path: str
    size: int
    mtime_ns: int
    inode: int
    device: int
    blob: BlobRecord | None
    sha256: str | None
    path_findings: list[Finding]
    error: str | None = None
    #: wall seconds of the whole file, and of each step that took any (``hashing``, each analyzer)
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


_KNOWN: set[str] = set()


def _init_worker(known: set[str]) -> None:
    global _KNOWN
    _KNOWN = known
    load_analyzers()


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker process end when the scan that started it ends, even by ``kill -9``.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere a
    watchdog thread also checks every 0.2 s whether the parent is still the parent, and exits if not.
    """
    import sys
    import threading

    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):  # no libc (static builds): the watchdog still works
            import ctypes
            import signal

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.2)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="modelreg-parent-watchdog", daemon=True).start()


#: a pool worker's garbage-collector thresholds: a file's analysis allocates thousands of small objects
#: (header entries, modules, rows) and frees them by reference counting, so collections at the default
#: rate (every 700 allocations, a full one after every 100 of those) mostly walk live objects again
WORKER_GC_THRESHOLDS = (20_000, 20, 20)


#: True in a process pool's worker (set by its initializer)
_POOL_WORKER = False


def _init_pool_worker(known: set[str], parent_pid: int) -> None:
    global _POOL_WORKER
    _POOL_WORKER = True
    # Ctrl-C in a terminal reaches every process of the group, the workers too. A worker that it stopped
    # while sending a task's result to the scanning process left half a message in the pool's result pipe,
    # and the pool's reader thread waited for the rest forever: the scan hung after Ctrl-C (3 of 26 tries).
    # So a worker ignores it, except while it analyses (analyse_task): the analysis stops, and the
    # KeyboardInterrupt goes back whole, as the task's result.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    _init_worker(known)
    # the modules imported so far (analyzers, numpy …) stay for the life of the worker: out of every
    # collection's way (the worker is a process of its own, so this changes nothing of the caller's)
    gc.freeze()
    gc.set_threshold(*WORKER_GC_THRESHOLDS)


def analyse_file(
    path: str,
    size: int,
    mtime_ns: int,
    inode: int,
    device: int,
    rehash: bool = False,
    on_bytes: Callable[[int], None] | None = None,
) -> Analysed:
    """Everything a worker does for one regular file, timed. Never raises for bad content. ``on_bytes(n)``
    hears the bytes hashed so far (in-process scans: a bar that moves inside a large file)."""
    t0 = time.perf_counter()
    out = _analyse_file(path, size, mtime_ns, inode, device, rehash, on_bytes)
    out.seconds = time.perf_counter() - t0
    return out


def _analyse_file(
    path: str, size: int, mtime_ns: int, inode: int, device: int, rehash: bool, on_bytes: Callable[[int], None] | None
) -> Analysed:
    steps = _analyse_steps(path, size, mtime_ns, inode, device, rehash, on_bytes, None)
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value


def _mapped_adapter(header: st.SafetensorsHeader, size: int) -> bool:
    """Whether the statistics analyzer will read this safetensors file through a memory map of it: an
    adapter (at least half of its tensors in adapter modules, as that analyzer decides without an
    identification that says otherwise) that is mapped with every page at once (at most
    :data:`~registry.analysis.POPULATE_MAX` bytes) and larger than one inline hash. Such a file is hashed
    from that map (:func:`registry.hashing.hash_map`) and analysed through it. Only a choice of how to read
    the bytes: the digests and the analysis are the same either way. The grouping is remembered per layout
    (:func:`registry.adapters.group_modules`), so the analyzer's own grouping of the file costs nothing more."""
    if not (INLINE_LIMIT < size <= POPULATE_MAX) or not header.tensors or not getattr(mmap, "MAP_POPULATE", 0):
        return False
    shapes = {t.name: t.shape for t in header.tensors}
    try:
        grouping = group_modules(shapes, shapes)
    except Exception:  # noqa: BLE001 - the analyzer meets it again and records it; the file is read as any other
        return False
    return sum(len(m.parts) for m in grouping.modules) * 2 >= len(header.tensors)


def _analyse_steps(
    path: str,
    size: int,
    mtime_ns: int,
    inode: int,
    device: int,
    rehash: bool,
    on_bytes: Callable[[int], None] | None,
    split: int | None,
) -> Generator[FileContext, None, Analysed]:
    """:func:`analyse_file` as steps: with ``split`` (an analyzer order), it yields the file's context once
    the analyzers before that order have run, and goes on with the others when resumed (a worker's task
    runs the batch hook of the analyzer at ``split`` over all its files in between); without, it never
    yields. The generator's value is the :class:`Analysed` file."""
    out = Analysed(path, size, mtime_ns, _i64(inode), _i64(device), None, None, [])
    try:
        with open(path, "rb") as fh:
            before = os.fstat(fh.fileno())
            head = fh.read(SNIFF_BYTES)
            after = os.fstat(fh.fileno())
            size = after.st_size
            out.size = size
            # a small file read whole by this first read, unchanged meanwhile (size and modification time, as
            # hash_file checks): hashed and analysed from these bytes, not opened again
            whole = (
                len(head) == size == before.st_size
                and after.st_mtime_ns == before.st_mtime_ns
                and statmod.S_ISREG(after.st_mode)
            )
            fmt = sniff_bytes(head, size, file_reader(fh))
            if fmt == "unknown" and path.lower().endswith((".safetensors", ".sft")):
                fmt = "safetensors"  # named so and unrecognisable: the parser says precisely what is wrong
            header: st.SafetensorsHeader | None = None
            content_findings: list[Finding] = []
            data_start: int | None = None
            if fmt == "safetensors":
                try:
                    n, raw = st.read_header_bytes(fh, size)
                    data_start = 8 + n
                    header = st.parse_header(raw, n, size)
                    content_findings.extend(header.findings)
                except SafetensorsError as e:
                    content_findings.append(from_error(e.rule_id, str(e), e.evidence))
                    if e.rule_id not in (st.R_TOO_SHORT.id, st.R_HEADER_TOO_LARGE.id, st.R_HEADER_BEYOND_EOF.id):
                        data_start = 8 + int.from_bytes(head[:8], "little")
            t_hash = time.perf_counter()
            fmap: mmap.mmap | None = None
            if not whole and header is not None and _mapped_adapter(header, size):
                # an adapter that the statistics read through a map of the file: hashed from that map
                try:
                    h, fmap = hash_map(path, fh.fileno(), data_start, on_bytes=on_bytes)
                    out.steps["hashing"] = time.perf_counter() - t_hash
                except RegistryError as e:
                    out.path_findings.append(finding(R_UNREADABLE.id, f"{path}: {e}"))
                    return out
                except OSError:  # no map of this file (a file system without them): read it as any other
                    fmap = None
    except PermissionError:
        out.path_findings.append(finding(R_UNREADABLE.id, f"{path}: permission denied", error="EACCES"))
        return out
    except OSError as e:
        out.path_findings.append(finding(R_UNREADABLE.id, f"{path}: {e.strerror or e}", error=e.errno))
        return out
    if fmap is None:
        try:
            h = hash_bytes(head, data_start) if whole else hash_file(path, data_start, on_bytes=on_bytes)
            out.steps["hashing"] = time.perf_counter() - t_hash
        except (OSError, RegistryError) as e:
            out.path_findings.append(finding(R_UNREADABLE.id, f"{path}: {e}"))
            return out
    out.sha256 = h.sha256
    if h.sha256 in _KNOWN and not rehash:
        if fmap is not None:
            fmap.close()
        return out  # content already registered: a new sighting only
    if fmt == "empty":
        content_findings.append(finding(R_EMPTY.id, "the file is empty (0 bytes)"))
    elif fmt == "git-lfs-pointer":
        oid = _lfs_oid(head)
        content_findings.append(
            finding(
                R_LFS.id,
                "this is a Git LFS pointer file, not the model: the weights were never downloaded "
                "(run `git lfs pull`, or download the file itself)"
                + (f"; it points to sha256 {oid}" if oid else ""),
                oid=oid,
            )
        )
    elif fmt == "html":
        content_findings.append(
            finding(R_HTML.id, "this is a saved web page (HTML), not a model: the download probably failed or needed a login")
        )
    hashes = h.as_dict()
    # a file that the first read took whole (a few KiB): its analyzers read those bytes, not a map of it
    ctx = FileContext(Path(path), size, fmt, hashes, header=header, data=head if whole else None, _map=fmap)
    ctx.findings.extend(content_findings)
    if header is not None:
        ctx.tensors = list(header.tensors)
        ctx.metadata = dict(header.metadata or {})
    try:
        if split is None:
            run_analyzers(ctx)
        else:
            run_analyzers(ctx, orders=(-(1 << 30), split))
            yield ctx
            run_analyzers(ctx, orders=(split, 1 << 30))
    finally:
        ctx.close()
    out.steps.update(ctx.facts.get("seconds") or {})
    # a container analyzer may name the format more precisely (a zip that is a TorchScript archive …)
    fmt = str(ctx.facts.get("format") or fmt)
    if fmt not in ("safetensors", "empty", "git-lfs-pointer", "html") and not ctx.facts.get("handled"):
        words = _FORMAT_WORDS.get(fmt, f"format {fmt!r}")
        if fmt in _CODE_FORMATS:
            ctx.findings.append(
                finding(R_UNSUPPORTED_CODE.id, f"format not yet supported: {words}; it was not scanned for code, so do not load it", format=fmt)
            )
        else:
            ctx.findings.append(finding(R_UNSUPPORTED.id, f"format not yet supported: {words}; recorded with its hashes only", format=fmt))
    ts = ctx.tensors
    nothing: list[int | None] = [None] * len(ts)
    tensors = TensorRows(
        name=[t.name for t in ts],
        dtype=[t.dtype for t in ts],
        shape=[list(t.shape) for t in ts],
        data_begin=[t.begin for t in ts] if header is not None else nothing,
        data_end=[t.end for t in ts] if header is not None else list(nothing),
        file_offset=[t.offset for t in ts],
        nbytes=[t.nbytes for t in ts],
    )
    meta_json = None
    if header is not None and "__metadata__" in _raw_keys(header):
        meta_json = json.dumps(header.raw_metadata, ensure_ascii=False)
    elif ctx.metadata:
        meta_json = json.dumps(ctx.metadata, ensure_ascii=False)
    out.blob = BlobRecord(
        sha256=h.sha256,
        size=size,
        hashes=hashes,
        format=fmt,
        header_len=header.header_len if header is not None else (data_start - 8 if data_start else None),
        n_tensors=len(ctx.tensors) if (header is not None or ctx.tensors) else None,
        metadata_json=meta_json,
        analyzers=analyzer_versions(),
        tensors=tensors,
        findings=ctx.findings,
        **_rows_and_columns(ctx),
    )
    return out


def _rows_and_columns(ctx: FileContext) -> dict[str, Any]:
    """The analyzers' rows as storable columns (``rows_as_columns``): the JSON text of their dict cells is
    made here, in the worker, not by the one process that commits every file. A table given both ways
    (or no rows) stays as it was given."""
    rows: dict[str, list[dict[str, Any]]] = {}
    columns = dict(ctx.columns)
    for table, trows in ctx.rows.items():
        if trows and table not in columns:
            columns[table] = _one_row_columns(trows[0]) if len(trows) == 1 else rows_as_columns(trows)
        else:
            rows[table] = trows
    return {"rows": rows, "columns": columns}


_PLAIN_CELL = frozenset((int, float, bool, type(None)))
#: the writer's encoder for dict cells (``registry.store.write``: sorted keys, ``default=str``)
_CELL_JSON = json.JSONEncoder(sort_keys=True, default=str)


def _flat_dict(v: dict[Any, Any]) -> bool:
    """A dict of ASCII text keys to plain values, or to such dicts one level down (a summary's counts and
    per-figure spreads): what the writer stores as JSON text of the dict as it is."""
    for k, x in v.items():
        if type(k) is not str or not k.isascii():
            return False
        t = type(x)
        if t in _PLAIN_CELL or (t is str and x.isascii()):
            continue
        if t is not dict:
            return False
        for k2, y in x.items():
            if type(k2) is not str or not k2.isascii() or not (type(y) in _PLAIN_CELL or (type(y) is str and y.isascii())):
                return False
    return True


def _one_row_columns(row: dict[str, Any]) -> dict[str, list[Any]]:
    """``rows_as_columns([row])``, the same cells, with the common cells (numbers, ASCII text, flat lists,
    flat dicts) made without the writer's general cleaning walk; any other cell goes through it."""
    out: dict[str, list[Any]] = {}
    for k, v in row.items():
        t = type(v)
        if t in _PLAIN_CELL or (t is str and v.isascii()):
            out[k] = [v]
        elif t is dict and _flat_dict(v):
            out[k] = [_CELL_JSON.encode(v)]
        elif t is list and all(type(x) in _PLAIN_CELL or (type(x) is str and x.isascii()) for x in v):
            out[k] = [v]
        else:
            out[k] = rows_as_columns([{k: v}])[k]
    return out


#: a worker task takes consecutive small files up to this many bytes and files (one task per file would
#: cost more in scheduling and pickling than a tiny file's analysis)
CHUNK_BYTES = 4 << 20
CHUNK_FILES = 64


def analyse_files(items: list[tuple[str, int, int, int, int]], rehash: bool = False) -> list[Analysed]:
    """:func:`analyse_file` for each (path, size, mtime_ns, inode, device) of a worker task, in order, the
    same results. With several files, the analyzer with a ``batch`` hook (statistics: spectra stacked by
    shape across the files) does its work for all of them at once: each file is analysed up to that
    analyzer, the hook runs over their contexts, then each file is finished."""
    point = batch_point() if len(items) > 1 else None
    if point is None:
        return [analyse_file(p, size, mtime, ino, dev, rehash) for p, size, mtime, ino, dev in items]
    split, hook = point
    results: list[Analysed | None] = [None] * len(items)
    paused: list[tuple[int, Generator[FileContext, None, Analysed], FileContext, float]] = []
    try:
        for k, (p, size, mtime, ino, dev) in enumerate(items):
            t0 = time.perf_counter()
            steps = _analyse_steps(p, size, mtime, ino, dev, rehash, None, split)
            try:
                ctx = next(steps)
            except StopIteration as done:
                results[k] = done.value
                results[k].seconds = time.perf_counter() - t0  # type: ignore[union-attr]
            else:
                paused.append((k, steps, ctx, time.perf_counter() - t0))
        t0 = time.perf_counter()
        if len(paused) > 1:
            hook([ctx for _, _, ctx, _ in paused])
        share = (time.perf_counter() - t0) / max(len(paused), 1)
        while paused:
            k, steps, _, before = paused.pop(0)
            t0 = time.perf_counter()
            try:
                next(steps)
            except StopIteration as done:
                results[k] = done.value
                results[k].seconds = before + share + time.perf_counter() - t0  # type: ignore[union-attr]
            else:  # pragma: no cover - the steps yield once
                raise RuntimeError("analysis steps yielded twice")
    finally:
        for _, steps, _, _ in paused:
            steps.close()  # (an interrupted task: each context's map is closed)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


@contextlib.contextmanager
def _ctrl_c_stops_it() -> Iterator[None]:
    """In a pool worker (which otherwise ignores Ctrl-C): Ctrl-C raises KeyboardInterrupt inside the block."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def analyse_task(items: list[tuple[str, int, int, int, int]], rehash: bool = False) -> list[Analysed]:
    """A pool worker's task: :func:`analyse_files`, its results made cheap to hand over and to commit. The
    analyzers' columns of all the task's blobs go into one :class:`ColumnBlock` that every blob refers to
    (pickled once: a few long lists per table instead of ~120 one-row lists per small file), each blob
    carries the payload text of its event (``blob_event_text``: digests of its row and findings, made here
    rather than by the process that commits every file), and a file's step times are kept only when the
    scan summary names the file (slower than ``SLOW_SECONDS``). In a pool worker, Ctrl-C stops the
    analysis but never the sending of the result (see :func:`_init_pool_worker`)."""
    with _ctrl_c_stops_it() if _POOL_WORKER else contextlib.nullcontext():
        results = analyse_files(items, rehash)
    block = ColumnBlock()
    for a in results:
        if a.seconds <= SLOW_SECONDS:
            a.steps = {}
        b = a.blob
        if b is not None:
            b.event_text = blob_event_text(b)
            if b.block is None:
                b.block_index = block.add(b.sha256, b.columns)
                b.block, b.columns = block, {}
    return results


def _chunks(todo: list[ScanItem], workers: int) -> Iterator[list[ScanItem]]:
    """Consecutive files in tasks of at most ``CHUNK_BYTES`` / ``CHUNK_FILES`` (a big file alone), and at
    least four tasks per worker when there are enough files, so that the workers stay evenly busy."""
    most = max(1, min(CHUNK_FILES, len(todo) // (4 * max(workers, 1))))
    chunk: list[ScanItem] = []
    size = 0
    for it in todo:
        n = it.st.st_size if it.st is not None else 0
        if chunk and (len(chunk) >= most or size + n > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(it)
        size += n
    if chunk:
        yield chunk


class _Pool:
    """The worker processes of one scan with every task submitted at once, in the files' order, and given
    back in that order (so the registry's events are in that order whatever the workers, and the parent
    commits the first files while the workers analyse the rest: handing out the biggest tasks first
    balanced the workers better but left every commit for the end, measured slower)."""

    def __init__(self, todo: list[ScanItem], workers: int, known: set[str], rehash: bool) -> None:
        self.workers = workers
        self.taken = 0
        self.known = known
        self.rehash = rehash
        self.ex = self._executor(workers)
        #: seconds, files and bytes of the analyses whose results are in (see :meth:`core_free`)
        self.done_seconds = 0.0
        self.done_files = 0
        self.done_bytes = 0
        self.tasks: list[list[tuple[str, int, int, int, int]]] = []
        self.futures: list[Future[list[Analysed]]] = []
        try:
            for chunk in _chunks(todo, workers):
                task = [(it.path, it.st.st_size, it.st.st_mtime_ns, it.st.st_ino, it.st.st_dev) for it in chunk if it.st]
                self.tasks.append(task)
                self.futures.append(self.ex.submit(analyse_task, task, rehash))
        except BaseException:
            self.close()
            raise

    def _executor(self, workers: int) -> ProcessPoolExecutor:
        # BLAS limited to one thread here, before the workers are forked (they inherit it; every pool, the
        # recovery's one-worker pools too, is made here): limited in each worker instead, each walked the
        # loaded libraries for it (~7 ms) and OpenBLAS started a thread of its own there after the fork,
        # which spun on a core after its calls (measured: 30-60 ms of CPU per worker, over its first files,
        # on 2 cores). This process keeps the limit, as an in-process scan does (``single_threaded_blas``:
        # once per process).
        from registry.stats import single_threaded_blas  # (the analyzers import it anyway)

        single_threaded_blas()
        context: Any = _DaemonWorkers()  # (a multiprocessing context in all but its class)
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_pool_worker,
            initargs=(set(self.known), os.getpid()),
        )

    def results(self, idle: Callable[[], None]) -> Iterator[list[Analysed]]:
        """Each task's results in the files' order; ``idle()`` runs while waiting (a reader may get in).
        A worker that dies (the pool is then broken) costs only the file it was on: see :meth:`_recover`."""
        while self.taken < len(self.futures):
            fut = self.futures[self.taken]
            while True:
                try:
                    done = fut.result(timeout=0.25)
                    break
                except FutureTimeout:
                    idle()  # nothing to commit for now
                except BrokenProcessPool:
                    self._recover()
                    fut = self.futures[self.taken]
            self.taken += 1
            self.done_seconds += sum(a.seconds for a in done)
            self.done_files += len(done)
            self.done_bytes += sum(a.size for a in done)
            if self.taken == len(self.futures):
                # every result is in: the workers exit (about 30 ms) while this process commits the last
                # batch, instead of after it (``close`` then finds them gone)
                self.ex.shutdown(wait=False)
            yield done

    def _recover(self) -> None:
        """After a worker died: every task not finished failed with it. The first ``2 × workers + 1`` of
        them in order are the ones a worker could have started (the executor hands tasks out in order, at
        most one more than the workers ahead): their files are analysed again one at a time in a pool of
        one worker, so that a death is that file's, which gets a finding (``scan.task-failed``) and no
        record. The other failed tasks go to a new pool as they were."""
        self.ex.shutdown(wait=True, cancel_futures=True)
        # (a task the broken executor had not failed yet may have been cancelled by the shutdown instead)
        failed = [
            k
            for k in range(self.taken, len(self.futures))
            if not self.futures[k].done() or self.futures[k].cancelled() or self.futures[k].exception() is not None
        ]
        suspects = failed[: 2 * self.workers + 1]
        for k in suspects:
            redone: Future[list[Analysed]] = Future()
            redone.set_result(self._one_by_one(self.tasks[k]))
            self.futures[k] = redone
        self.ex = self._executor(self.workers)
        for k in failed[len(suspects) :]:
            self.futures[k] = self.ex.submit(analyse_task, self.tasks[k], self.rehash)

    def _one_by_one(self, task: list[tuple[str, int, int, int, int]]) -> list[Analysed]:
        out: list[Analysed] = []
        while len(out) < len(task):
            ex = self._executor(1)
            try:
                futs = [ex.submit(analyse_task, [item], self.rehash) for item in task[len(out) :]]
                for f in futs:
                    try:
                        out.extend(f.result())
                    except BrokenProcessPool:  # one worker, tasks in order: this file's analysis killed it
                        path, size, mtime, ino, dev = task[len(out)]
                        why = finding(
                            R_TASK_FAILED.id,
                            f"{path}: the worker process died while analysing this file alone; no hashes or "
                            "analysis of it were recorded",
                        )
                        out.append(Analysed(path, size, mtime, ino, dev, None, None, [why]))
                        break
            finally:
                ex.shutdown(wait=True, cancel_futures=True)
        return out

    def core_free(self) -> bool:
        """Whether fewer tasks than workers are left unfinished, the next task's results are not in yet, and
        those tasks will take longer than a commit's fixed cost: a core is (or is about to be) idle, so the
        parent's commit work now delays no analysis (the end of a scan, where committing everything at the
        very end left the cores idle while the parent wrote; results already in join the commit instead of
        paying a commit's fixed cost of their own). When the files still being analysed will be done
        sooner than :data:`COMMIT_FIXED_SECONDS` (the last few small files), waiting for them and writing
        them in the same commit ends the scan sooner than a commit now and another one after them."""
        if self.taken < len(self.futures) and self.futures[self.taken].done():
            return False
        busy = 0
        left: list[list[tuple[str, int, int, int, int]]] = []
        for k in range(self.taken, len(self.futures)):
            if not self.futures[k].done():
                busy += 1
                if busy >= self.workers:
                    return False
                left.append(self.tasks[k])
        return self.expected_seconds(left) >= COMMIT_FIXED_SECONDS

    def expected_seconds(self, tasks: list[list[tuple[str, int, int, int, int]]]) -> float:
        """The longest analysis time among ``tasks`` expected from the files analysed so far: the larger of
        their seconds per byte and per file times the task's bytes and files (infinite before any result:
        nothing to go by)."""
        if not self.done_files:
            return math.inf
        per_file = self.done_seconds / self.done_files
        per_byte = self.done_seconds / max(self.done_bytes, 1)
        return max((max(per_file * len(t), per_byte * sum(item[1] for item in t)) for t in tasks), default=0.0)

    def close(self) -> None:
        """Stop: tasks not started are cancelled; the workers finish the file they are on (after Ctrl-C in
        a terminal, which reaches them too, they stop it)."""
        self.ex.shutdown(wait=True, cancel_futures=True)


class _DaemonWorkers:
    """The default multiprocessing context (``fork`` on Linux: the workers inherit the analyzers this
    process imported), its processes made daemonic. A worker ignores Ctrl-C outside its analysis
    (:func:`_init_pool_worker`), so one that the executor never recorded (Ctrl-C right after the fork,
    before ``_spawn_process`` stored it) would never be told to stop, and this process, joining its
    non-daemonic children at exit, hung; a daemonic one is terminated there instead. The workers start
    no processes of their own (a daemonic process may not)."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def Process(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - the context's name for it
        p = self._ctx.Process(*args, **kwargs)
        p.daemon = True
        return p


class _Opening:
    """``fn()`` run in a thread of its own; :meth:`result` waits for it and gives its value or raises its
    exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        # (an Event, not Thread.join: a join that Ctrl-C interrupts can leave is_alive() saying False while
        # the thread still runs)
        self._done = threading.Event()
        threading.Thread(target=self._run, name="modelreg-open-registry", daemon=True).start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
            self._error = e
        finally:
            self._done.set()

    def wait(self) -> None:
        """Wait for the thread to end, through interruptions (Ctrl-C while waiting): it holds the writer."""
        while not self._done.is_set():
            with contextlib.suppress(BaseException):
                self._done.wait(0.05)

    def result(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


def _raw_keys(header: st.SafetensorsHeader) -> set[str]:
    return {"__metadata__"} if header.raw_metadata is not None or header.metadata is not None else set()


def _lfs_oid(head: bytes) -> str | None:
    for line in head.decode("utf-8", "replace").splitlines():
        if line.startswith("oid sha256:"):
            return line.split(":", 1)[1].strip()
    return None


# ---------------------------------------------------------------------------------------------
# driver


@dataclass(frozen=True)
class PathState:
    size: int
    mtime_ns: int
    inode: int | None
    sha256: str


PathKey = tuple[str, bytes | None]


def path_key(p: str) -> PathKey:
    """How the registry stores a path: its display form and, when they differ from it, its exact bytes."""
    return display_path(p), raw_path(p)


def load_index(
    db_path: Path, host: str, on_wait: Callable[[str], None] | None = None, con: Any = None
) -> tuple[dict[PathKey, PathState], set[str], set[tuple[str, str]]]:
    """Latest sighting per path on this host, the registered blobs, and recorded path-only findings
    (through ``con`` when given, e.g. the scan's write connection)."""
    with connect(db_path, read_only=True, on_wait=on_wait) if con is None else contextlib.nullcontext(con) as con:
        states = {
            (r[0], bytes(r[5]) if r[5] is not None else None): PathState(r[1], r[2], r[3], r[4])
            for r in con.execute(
                "SELECT path, size, mtime_ns, inode, blob_sha256, path_raw FROM latest_sightings WHERE host = ?", [host]
            ).fetchall()
        }
        known = {r[0] for r in con.execute("SELECT sha256 FROM blobs").fetchall()}
        path_findings = {
            (r[0], r[1])
            for r in con.execute(
                "SELECT path, message FROM findings WHERE blob_sha256 IS NULL AND host = ?", [host]
            ).fetchall()
        }
    return states, known, path_findings


#: with ``workers=0`` (automatic), each worker process gets at least this many files to analyse: below
#: that, starting processes costs more than the work they share
AUTO_FILES_PER_WORKER = 4


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: … or at least this many bytes (big files are worth a process each)
AUTO_BYTES_PER_WORKER = 16 << 20


def effective_workers(requested: int, n_files: int, n_bytes: int = 0) -> int:
    """Worker processes for ``n_files`` files (``n_bytes`` in all) to analyse: ``requested`` when it is
    positive, else one per usable CPU core, fewer when there are too few files for each to get
    ``AUTO_FILES_PER_WORKER`` files or ``AUTO_BYTES_PER_WORKER`` bytes (never more than the files)."""
    if requested > 0:
        return requested
    share = max(n_files // AUTO_FILES_PER_WORKER, min(n_bytes // AUTO_BYTES_PER_WORKER, n_files))
    return max(1, min(usable_cpus(), share))


#: about the fixed part of a commit's time (its DuckDB statements and transaction commit, whatever the number
#: of files: 30-45 ms on the 2-core development machine): see :meth:`_Pool.core_free`
COMMIT_FIXED_SECONDS = 0.03
#: the next batch waits at least this many times as long as the last commit took
COMMIT_SHARE = 10.0
#: a scan holds its write connection across batches at most this long before letting go for a moment
HOLD_SECONDS = 5.0
#: in-process scans let go of the registry before analysing a file at least this big (it takes a while)
RELEASE_BEFORE_BYTES = 64 << 20


class HeldWriter:
    """The scan's write connection, opened at the first commit and kept across batches (opening one costs
    about 0.1 s: the writability check, the schema check, the head-file check), let go when another
    process waits for the registry (:func:`registry.store.db.someone_waiting`), after ``HOLD_SECONDS``,
    and at the end. Every commit moves the head file (``anchor.update_after_write``) as a connection
    closed after each batch did, so a scan killed between batches leaves the head file at its last
    event."""

    def __init__(self, path: Path, on_wait: Callable[[str], None] | None) -> None:
        self.path = Path(path)
        self.on_wait = on_wait
        self._cm: contextlib.AbstractContextManager[Any] | None = None
        self.con: Any = None
        self.opened = 0.0
        self.opens = 0
        self.created = False
        #: the event log's last (seq, hash) as this connection's last commit left it (None: read it)
        self.head: tuple[int, str] | None = None

    def get(self, on_create: Callable[[str], None] | None = None) -> Any:
        """The held connection, opened (created, migrated, checked) when there is none."""
        if self.con is None:
            self.created = self.created or not self.path.exists()  # the head file is anchored from seq 0
            self._cm = connect(self.path, on_wait=self.on_wait, on_create=on_create)
            self.con = self._cm.__enter__()
            self.head = None
            self.opened = time.monotonic()
            self.opens += 1
        return self.con

    def commit(self, items: list[FileWrite], derived: Iterable[str]) -> None:
        self.get()
        try:
            # while this connection is held no other process can write, so the log's head after a commit
            # is the next one's start (not read again from a growing events table)
            known_head = {"head": self.head} if self.head is not None else {}
            self.head = write_batch(self.con, items, derived, **known_head)
            update_after_write(self.con, self.path, self.created, self.head)
            self.created = False
        except BaseException as e:
            cm, self._cm, self.con, self.head = self._cm, None, None, None
            assert cm is not None
            # the connection's own handler names storage failures (no space …) and closes it
            if not cm.__exit__(type(e), e, e.__traceback__):
                raise
            raise
        self.maybe_release()

    def maybe_release(self) -> None:
        """Let go when someone waits for the registry or the connection is held too long."""
        if self.con is not None and (time.monotonic() - self.opened >= HOLD_SECONDS or someone_waiting(self.path)):
            self.release()

    def release(self) -> None:
        if self._cm is not None:
            cm, self._cm, self.con, self.head = self._cm, None, None, None
            cm.__exit__(None, None, None)


#: ``progress(bytes_done, bytes_total, path)``, called after each file (unchanged files count as done)
ProgressFn = Callable[[int, int | None, str], None]

#: the scan's "map" step when it is not the local process pool: ``mapper(items, known, rehash)`` analyses
#: the new or changed files (each with its ``st``) and yields one :class:`Analysed` per item, in the order
#: given; ``known`` is the set of registered blob SHA-256s. The commit path (batches of whole files by the
#: one writer) is the same for every mapper. :class:`registry.distributed.RayMapper` runs it on Ray.
Mapper = Callable[[list[ScanItem], set[str], bool], Iterable[Analysed]]


#: the scanning process's garbage-collector thresholds while a scan runs (restored after it): its commits
#: build and drop large batches of rows, so at the default rate it collected every few hundred rows, and
#: each full collection walked every object of the process (~0.1 s per scan of 1,000 small files)
SCAN_GC_THRESHOLDS = (20_000, 50, 100)


@contextlib.contextmanager
def _relaxed_gc() -> Iterator[None]:
    """Collect garbage less often during a scan; the objects that existed before it (imported modules …)
    are left out of its collections (``gc.freeze``) unless the caller froze some already."""
    old = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(*SCAN_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        if freeze:
            gc.unfreeze()


@_relaxed_gc()
def scan(
    paths: Iterable[str | os.PathLike[str]],
    db_path: Path,
    *,
    workers: int = 1,
    rehash: bool = False,
    source: str = "scan",
    provenance: Callable[[str], dict[str, Any] | None] | None = None,
    progress: ProgressFn | None = None,
    on_wait: Callable[[str], None] | None = None,
    on_create: Callable[[str], None] | None = None,
    batch_seconds: float = 1.0,
    batch_files: int = 500,
    mapper: Mapper | None = None,
) -> ScanSummary:
    """Scan paths into the registry at ``db_path`` and return a summary.

    ``progress(bytes_done, bytes_total, path)`` is called after each file; ``provenance(path)`` may attach a
    provenance record (e.g. Hugging Face repo and revision) to a sighting. ``mapper`` replaces the local
    analysis (this process or a process pool) with another executor (see :data:`Mapper`).
    """
    t0 = time.monotonic()
    host = socket.gethostname()
    # before any analysis result is taken: create or migrate the registry, and find out now (not after an
    # hour of hashing) that it cannot be written: no space, permission denied, a newer schema, a damaged
    # .wal. That write connection reads the index too and stays for the first commit (see HeldWriter).
    writer = HeldWriter(Path(db_path), on_wait)
    # the registry's own files (database, write-ahead log, head file) are not models, even when --db
    # puts them inside a scanned folder
    own_paths = (db_path, str(db_path) + ".wal", head_path(Path(db_path)), waiting_path(Path(db_path)))
    own = {os.path.realpath(p) for p in own_paths}
    # a found file is one of them when it is the same file (device and inode, which discovery has: no
    # realpath per file, 30 µs each), and a path that could not be stat'ed when its real path is theirs
    own_ids = set()
    for p in own_paths:
        with contextlib.suppress(OSError):
            st_own = os.stat(p)
            own_ids.add((st_own.st_dev, st_own.st_ino))
    items = [
        it
        for it in discover(paths)
        if ((it.st.st_dev, it.st.st_ino) not in own_ids if it.st is not None else os.path.realpath(it.path) not in own)
    ]
    # A registry that does not exist yet holds nothing to skip: the workers start on every file while this
    # process creates it (creating one costs 0.1–0.4 s); they are stopped if it cannot be created.
    pool: _Pool | None = None
    opening: _Opening | None = None
    if mapper is None and not os.path.lexists(db_path) and not os.path.lexists(str(db_path) + ".wal"):
        early = [it for it in items if it.st is not None]
        n_early = effective_workers(workers, len(early), sum(it.st.st_size for it in early if it.st is not None))
        if n_early > 1 and len(early) > 1:
            # DuckDB creates the registry without holding the interpreter's lock: in a thread, on a core that
            # would otherwise wait while this one imports what the workers inherit
            opening = _Opening(lambda: load_index(db_path, host, on_wait, writer.get(on_create)))
            try:
                load_analyzers()  # imported once here, inherited by the forked workers
                pool = _Pool(early, n_early, set(), rehash)
            except BaseException:
                opening.wait()
                writer.release()
                raise
    try:
        if opening is not None:
            states, known, recorded_path_findings = opening.result()
        else:
            states, known, recorded_path_findings = load_index(db_path, host, on_wait, writer.get(on_create))
    except BaseException:
        if opening is not None:
            opening.wait()  # (interrupted while waiting: the thread holds the writer until it is done)
        writer.release()
        if pool is not None:
            pool.close()
        raise
    summary = ScanSummary()
    total = sum(it.st.st_size for it in items if it.st is not None)
    sizes = {it.path: it.st.st_size for it in items if it.st is not None}
    pending: list[FileWrite] = []
    last_commit = time.monotonic()
    derived = derived_tables()
    done = 0
    counted: set[str] = set()

    commit_took = 0.0

    def commit() -> None:
        nonlocal pending, last_commit, commit_took
        if pending:
            t = time.monotonic()
            writer.commit(pending, derived)
            commit_took = time.monotonic() - t
            for w in pending:
                if w.blob is not None:
                    known.add(w.blob.sha256)
        pending = []
        last_commit = time.monotonic()

    def tick(path: str) -> None:
        nonlocal done
        done += sizes.get(path, 0)
        if progress is not None:
            progress(done, total, path)

    def in_file(path: str) -> Callable[[int], None] | None:
        """Progress inside one file: the bytes of the files before it plus those hashed of it so far."""
        if progress is None:
            return None
        report = progress
        return lambda n: report(done + n, total, path)

    def record_findings(path: str, fs: list[Finding]) -> None:
        for f in fs:
            summary.findings[f.severity.label] = summary.findings.get(f.severity.label, 0) + 1
            summary.finding_list.append((f.rule_id, f.severity.label, display_path(path), clean_text(f.message)))

    unreadable_findings: list[Finding] = []

    def accept(a: Analysed) -> None:
        summary.files += 1
        if a.seconds > SLOW_SECONDS:
            step, took = max(a.steps.items(), key=lambda kv: kv[1], default=("reading", a.seconds))
            summary.slow.append((a.path, a.seconds, step, took))
        if a.sha256 is None:
            summary.unreadable += 1
            unreadable_findings.extend(a.path_findings)
            new = [f for f in a.path_findings if (display_path(a.path), clean_text(f.message)) not in recorded_path_findings]
            record_findings(a.path, a.path_findings)
            if new:
                pending.append(
                    FileWrite(SightingRecord(None, host, a.path, a.size, a.mtime_ns, a.inode, a.device, source, None, new))
                )
                recorded_path_findings.update((display_path(a.path), clean_text(f.message)) for f in new)
        else:
            summary.shas[a.path] = a.sha256
            if a.blob is not None and a.sha256 not in counted:
                counted.add(a.sha256)
                if a.sha256 in known:
                    summary.rehashed += 1
                else:
                    summary.new_blobs += 1
                record_findings(a.path, a.blob.findings)
            else:
                summary.known_blobs += 1
            prov = provenance(a.path) if provenance else None
            pending.append(
                FileWrite(
                    SightingRecord(a.sha256, host, a.path, a.size, a.mtime_ns, a.inode, a.device, source, prov, []),
                    a.blob,
                    reanalyze=rehash,
                )
            )
        tick(a.path)
        # about one batch a second, but the parent spends at most about a tenth of its time committing
        # (a commit has a fixed cost; the workers need the cores)
        wait = max(batch_seconds, COMMIT_SHARE * commit_took) if batch_seconds > 0 else 0.0
        if time.monotonic() - last_commit >= wait or len(pending) >= batch_files:
            commit()

    todo: list[ScanItem] = []
    for it in items:
        if it.st is None:
            assert it.problem is not None
            accept(Analysed(it.path, 0, 0, 0, 0, None, None, [it.problem]))
            continue
        prev = states.get(path_key(it.path))
        if (
            pool is None
            and not rehash
            and prev is not None
            and prev.size == it.st.st_size
            and prev.mtime_ns == it.st.st_mtime_ns
            and (prev.inode is None or prev.inode == _i64(it.st.st_ino))
        ):
            summary.files += 1
            summary.unchanged += 1
            summary.shas[it.path] = prev.sha256
            tick(it.path)
            continue
        todo.append(it)

    workers = effective_workers(workers, len(todo), sum(it.st.st_size for it in todo if it.st is not None))
    if pool is None and mapper is None and workers > 1 and len(todo) > 1:
        load_analyzers()
        pool = _Pool(todo, workers, known, rehash)
    try:
        if pool is not None:
            for done_chunk in pool.results(writer.maybe_release):
                for a in done_chunk:
                    accept(a)
                if pending and pool.core_free():
                    commit()  # a core would idle meanwhile: write now rather than all at the end
        elif mapper is not None:
            for a in mapper(todo, set(known), rehash):
                accept(a)
        elif workers <= 1 or len(todo) <= 1:
            _init_worker(known)
            for it in todo:
                assert it.st is not None
                if it.st.st_size >= RELEASE_BEFORE_BYTES:
                    writer.release()  # a long analysis: others may read or write meanwhile
                else:
                    writer.maybe_release()
                accept(
                    analyse_file(
                        it.path, it.st.st_size, it.st.st_mtime_ns, it.st.st_ino, it.st.st_dev, rehash, in_file(it.path)
                    )
                )
        commit()
    finally:
        if pool is not None:
            pool.close()
        # a crash (or Ctrl-C) still commits whatever complete files were analysed so far
        if pending:
            with contextlib.suppress(Exception):  # the original error matters more
                commit()
        if sys.exc_info()[0] is not None:
            with contextlib.suppress(Exception):
                writer.release()
    try:
        _count_covered(db_path, host, summary, unreadable_findings, on_wait, writer.get())
    finally:
        writer.release()
    summary.elapsed = time.monotonic() - t0
    return summary


def _count_covered(
    db_path: Path,
    host: str,
    summary: ScanSummary,
    unreadable: list[Finding],
    on_wait: Callable[[str], None] | None,
    con: Any = None,
) -> None:
    """Fill ``summary.covered``: every finding of every file this scan covered, known ones included.
    Findings tied to one path (sidecars, HF cache entries) count only for that path."""
    import pyarrow as pa

    counts: dict[str, int] = {}
    for f in unreadable:
        counts[f.severity.label] = counts.get(f.severity.label, 0) + 1
    if summary.shas:
        paths = sorted(summary.shas)
        with connect(db_path, read_only=True, on_wait=on_wait) if con is None else contextlib.nullcontext(con) as con:
            # (registered: Arrow scans, which a read-only open leaves unloaded with the duckdb package)
            covered = pa.table({"path": [display_path(p) for p in paths], "sha256": [summary.shas[p] for p in paths]})
            with registered(con, "_covered", covered):
                rows = con.execute(
                    "SELECT f.severity, count(*) FROM _covered c JOIN findings f ON f.blob_sha256 = c.sha256 "
                    "WHERE NOT (f.rule_id LIKE 'hf-cache.%' OR f.rule_id LIKE 'sidecar.%') "
                    "   OR (f.path = c.path AND f.host = ?) GROUP BY f.severity",
                    [host],
                ).fetchall()
        for sev, n in rows:
            counts[sev] = counts.get(sev, 0) + int(n)
    summary.covered = counts
