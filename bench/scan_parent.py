"""Diagnostic: the scanning process's CPU for tiny files, given the workers' results (issue 21).

Builds the ``tiny`` folder of ``bench/scan_throughput.py`` and cuts it into tasks as ``_chunks`` does for
two workers. Into a registry that exists already (its creation is not timed), it times ``scan`` with a
mapper that runs those tasks (``registry.scan.analyse_task``) in a pool of two forked worker processes and
takes their results as the scan's own pool does, at two batch sizes (``--small`` and ``--large`` files a
commit), alternating, and prints per file: the hand-over alone (this process's CPU while it only takes the
pool's results: multiprocessing's transfer and unpickling of the workers' results), the whole scan in this
process, and ``write_batch``; from the two batch sizes, the fixed CPU of a commit and the CPU of a file in
a commit.

    python bench/scan_parent.py [--files 1000] [--small 50] [--large 500] [--reps 3]

CPU seconds of this process (its threads included: DuckDB's, and the pool's that receive the results; not
the workers'); the minimum of the repetitions.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import pickle
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scan_throughput import build_tiny  # noqa: E402
from registry import scan as scanmod  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--small", type=int, default=50, help="files a commit, first run")
    ap.add_argument("--large", type=int, default=500, help="files a commit, second run")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    n = args.files
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        folder = root / "files"
        folder.mkdir()
        build_tiny(folder, n)
        items = [it for it in scanmod.discover([folder]) if it.st is not None]
        scanmod._init_worker(set())  # (inherited by the forked workers)
        tasks = [
            [(it.path, it.st.st_size, it.st.st_mtime_ns, it.st.st_ino, it.st.st_dev) for it in chunk if it.st]
            for chunk in scanmod._chunks(items, 2)
        ]
        # the size of what the workers send: this process pickles results it made itself (dumps only)
        pickled = sum(len(pickle.dumps(scanmod.analyse_task(t), pickle.HIGHEST_PROTOCOL)) for t in tasks)
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as ex:
            real_write = scanmod.write_batch
            spent = [0.0, 0]

            def timed_write(*a: Any, **k: Any) -> Any:
                c = time.process_time()
                try:
                    return real_write(*a, **k)
                finally:
                    spent[0] += time.process_time() - c
                    spent[1] += 1

            scanmod.write_batch = timed_write

            def mapper(todo: Any, known: Any, rehash: bool) -> Iterator[scanmod.Analysed]:
                for results in ex.map(scanmod.analyse_task, tasks):
                    yield from results

            got: dict[int, dict[str, list[float]]] = {}
            for rep in range(args.reps):
                for batch in (args.small, args.large):
                    db = root / f"r{rep}_{batch}.duckdb"
                    scanmod.scan([], db)
                    gc.collect()
                    c = time.process_time()
                    for _ in mapper([], set(), False):
                        pass
                    handover = time.process_time() - c
                    spent[0], spent[1] = 0.0, 0
                    c = time.process_time()
                    summary = scanmod.scan([folder], db, mapper=mapper, batch_seconds=1e9, batch_files=batch)
                    whole = time.process_time() - c
                    assert summary.new_blobs == n, summary.new_blobs
                    g = got.setdefault(batch, {"handover": [], "scan": [], "write_batch": [], "commits": []})
                    g["handover"].append(handover)
                    g["scan"].append(whole)
                    g["write_batch"].append(spent[0])
                    g["commits"].append(spent[1])
    print(f"{n} tiny files, {len(tasks)} worker tasks ({pickled / n / 1e3:.2f} kB a file pickled)")
    for batch, g in got.items():
        print(
            f"  {batch:4d} files a commit ({int(min(g['commits']))} commits): hand-over {min(g['handover']) * 1e6 / n:6.1f} µs/file, "
            f"scan {min(g['scan']) * 1e6 / n:7.1f} µs/file, write_batch {min(g['write_batch']) * 1e6 / n:7.1f} µs/file"
        )
    small, large = got[args.small], got[args.large]
    k_small, k_large = min(small["commits"]), min(large["commits"])
    w_small, w_large = min(small["write_batch"]), min(large["write_batch"])
    if k_small != k_large:
        fixed = (w_small - w_large) / (k_small - k_large)
        per_file = (w_large - fixed * k_large) / n
        print(f"  write_batch: {fixed * 1e3:.1f} ms fixed a commit, {per_file * 1e6:.1f} µs a file")


if __name__ == "__main__":
    main()
