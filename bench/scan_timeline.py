"""Diagnostic: a wall-clock timeline of one scan into a new registry, and the scanning process's CPU by phase.

Builds the ``real`` (real-layout SD 1.5 / SDXL LoRAs) or ``tiny`` folder of ``bench/scan_throughput.py``
and scans it once with the default options, with the parent's steps wrapped to record when they start
and end (wall clock and this process's CPU, DuckDB's threads and the thread that creates a new registry
included: a step's CPU counts what the other threads did meanwhile), and each worker task's start and
end (the workers are forked, so they inherit the wrapping; ``time.perf_counter`` is the same monotonic
clock in every process). Prints the parent's garbage collections during the scan (count per generation and
their CPU), the events in time order, then the parent's wall and CPU per step.

    python bench/scan_timeline.py [--real 6] [--tiny 0] [--workers 0] [--existing]

``--existing`` scans into a registry that exists already (created empty before the timed scan).
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scan_throughput import build_real, build_tiny  # noqa: E402
from registry import scan as scanmod  # noqa: E402
from registry.store import anchor as anchormod  # noqa: E402
from registry.store import db as dbmod  # noqa: E402
from registry.store import listing_table, write  # noqa: E402

#: (wall start, wall end, cpu start, cpu end, name, depth, pid)
EVENTS: list[tuple[float, float, float, float, str, int, int]] = []
_LOCAL = threading.local()  # nesting depth per thread (a new registry is created in a thread of its own)


def _depth(step: int = 0) -> int:
    _LOCAL.depth = getattr(_LOCAL, "depth", 0) + step
    return int(_LOCAL.depth)


_WORKER_LOG = ""
#: the parent's garbage collections during the timed scan: count per generation, and their CPU seconds
_GC_N = [0, 0, 0]
_GC_CPU = [0.0, 0.0]  # total, start of the current one
_PARENT = os.getpid()


def _gc_tally(phase: str, info: dict[str, Any]) -> None:
    if os.getpid() != _PARENT:  # a forked worker inherits the callback
        return
    if phase == "start":
        _GC_CPU[1] = time.thread_time()
    else:
        _GC_CPU[0] += time.thread_time() - _GC_CPU[1]
        _GC_N[info["generation"]] += 1


def _wrap(owner: Any, attr: str, name: str | None = None) -> None:
    fn = getattr(owner, attr)
    label = name or attr

    @functools.wraps(fn)
    def wrapped(*a: Any, **k: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        _depth(1)
        try:
            return fn(*a, **k)
        finally:
            EVENTS.append((t, time.perf_counter(), c, time.process_time(), label, _depth(-1), os.getpid()))

    setattr(owner, attr, wrapped)


def _wrap_cm(owner: Any, attr: str, name: str) -> None:
    """A context manager's enter and exit as two steps (``name:open``, ``name:close``)."""
    fn = getattr(owner, attr)

    @functools.wraps(fn)
    def wrapped(*a: Any, **k: Any) -> Any:
        cm = fn(*a, **k)

        class Timed:
            def __enter__(self) -> Any:
                t, c = time.perf_counter(), time.process_time()
                _depth(1)
                try:
                    return cm.__enter__()
                finally:
                    EVENTS.append((t, time.perf_counter(), c, time.process_time(), name + ":open", _depth(-1), os.getpid()))

            def __exit__(self, *exc: Any) -> Any:
                t, c = time.perf_counter(), time.process_time()
                _depth(1)
                try:
                    return cm.__exit__(*exc)
                finally:
                    EVENTS.append((t, time.perf_counter(), c, time.process_time(), name + ":close", _depth(-1), os.getpid()))

        return Timed()

    setattr(owner, attr, wrapped)


def _worker_task(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def task(items: Any, rehash: bool = False) -> Any:
        t, c = time.perf_counter(), time.process_time()
        out = orig(items, rehash)
        with open(_WORKER_LOG, "a") as fh:
            fh.write(f"{t} {time.perf_counter()} {c} {time.process_time()} {len(items)} {os.getpid()}\n")
        return out

    return task


def instrument() -> None:
    scanmod.analyse_task = _worker_task(scanmod.analyse_task)  # type: ignore[assignment]
    _wrap(scanmod, "discover", "discover")
    _wrap(scanmod._Pool, "__init__", "pool start")
    _wrap(scanmod._Pool, "close", "pool close")
    _wrap(scanmod, "load_index")
    _wrap(scanmod, "_count_covered")
    _wrap(scanmod.HeldWriter, "commit", "commit")
    _wrap(scanmod.HeldWriter, "release", "release (close)")
    _wrap(scanmod, "write_batch")
    _wrap(scanmod, "update_after_write", "head file")
    _wrap_cm(scanmod, "connect", "connect")
    for name in ("migrate", "create_schema", "_refresh_views", "check_writable", "_open", "_schema_state"):
        _wrap(dbmod, name)
    _wrap(anchormod, "check_before_write")
    _wrap(listing_table, "rebuild_listing")
    _wrap(write, "refresh_listing")
    _wrap(write.EventLog, "flush", "events flush")
    _wrap(write, "insert_columns")
    _wrap(write, "_existing_sightings")
    _wrap(write, "existing_blobs")


def main() -> None:
    global _WORKER_LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=int, default=6)
    ap.add_argument("--tiny", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--existing", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        folder = root / "files"
        folder.mkdir()
        if args.tiny:
            build_tiny(folder, args.tiny)
        else:
            build_real(folder, args.real)
        for p in folder.iterdir():  # the page cache, as the throughput bench's floor pass leaves it
            p.read_bytes()
        db = root / "r.duckdb"
        if args.existing:
            scanmod.scan([], db)
        _WORKER_LOG = str(root / "workers.log")
        instrument()
        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        gc.callbacks.append(_gc_tally)
        t0, c0 = time.perf_counter(), time.process_time()
        scanmod.scan([folder], db, workers=args.workers)
        t1, c1 = time.perf_counter(), time.process_time()
        gc.callbacks.remove(_gc_tally)
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        tasks = [tuple(float(x) for x in line.split()) for line in Path(_WORKER_LOG).read_text().splitlines()]
    rows = [(s, e, cs, ce, n, dep, "parent") for s, e, cs, ce, n, dep, _ in EVENTS]
    for s, e, cs, ce, n, pid in tasks:
        rows.append((s, e, cs, ce, f"worker task ({int(n)} files)", 0, f"w{int(pid)}"))
    rows.sort()
    children = (ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime)
    in_tasks = sum(ce - cs for _, _, cs, ce, _, _ in tasks)
    print(
        f"scan: {(t1 - t0) * 1e3:.1f} ms wall, parent CPU {(c1 - c0) * 1e3:.1f} ms, workers' CPU {children * 1e3:.1f} ms "
        f"({in_tasks * 1e3:.1f} of it analysing files)"
    )
    print(f"parent GC: collections by generation {_GC_N}, {_GC_CPU[0] * 1e3:.1f} ms CPU")
    print(f"{'start':>8s} {'end':>8s} {'wall':>7s} {'cpu':>7s}  step")
    for s, e, cs, ce, n, dep, who in rows:
        print(f"{(s - t0) * 1e3:8.1f} {(e - t0) * 1e3:8.1f} {(e - s) * 1e3:7.1f} {(ce - cs) * 1e3:7.1f}  {'  ' * dep}{n} [{who}]")
    totals: dict[str, list[float]] = {}
    for s, e, cs, ce, n, dep, _ in EVENTS:
        if dep == 0 or n in ("write_batch", "migrate", "_refresh_views", "refresh_listing", "rebuild_listing"):
            tot = totals.setdefault(n, [0.0, 0.0, 0])  # type: ignore[list-item]
            tot[0] += e - s
            tot[1] += ce - cs
            tot[2] += 1
    print("\nparent steps (wall ms, CPU ms, calls):")
    for n, (w, c, k) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        print(f"  {n:24s} {w * 1e3:8.1f} {c * 1e3:8.1f} {int(k):5d}")


if __name__ == "__main__":
    main()
