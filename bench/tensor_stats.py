"""Benchmark: checkpoint tensor statistics against a plain read of the same bytes, with peak RSS.

Generates an fp16 safetensors "checkpoint" of ``--size-gb`` GB (SD-like tensor shapes, the data a
repeated random block), then measures, each in a fresh child process so that its peak resident set
(``VmHWM``) is its own:

* **read**: a plain sequential ``readinto`` of the data section into one reusable 4 MiB buffer (the
  fastest way to touch every byte; the baseline);
* **stats**: :func:`registry.tensorstats.tensor_stats` on every tensor (chunked reads into a ring of
  reusable buffers, fp16 decoding, moments, zero/NaN/Inf counts and BLAKE3 per tensor, as a task graph
  on two threads);
* with ``--compare CHECKOUT``: the same function from another checkout (e.g. main) on the same file,
  alternating with this one, and whether every per-tensor figure and digest is the same bit for bit.

The file is read once before timing, so both runs see the page cache in the same state (when it fits
in memory; the run prints the machine's memory). Prints times, throughputs, the ratios, CPU time and
peak RSS. On a shared machine, ``--repeat N`` runs each side N times, alternating, and reports the
fastest run of each (the one least disturbed by other load).

    python bench/tensor_stats.py [--size-gb 7] [--dir /tmp] [--keep] [--compare ../main] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# a UNet-ish mix of shapes (fp16): big linear/conv weights and many small norms/biases
SHAPES = [(1280, 1280), (5120, 1280), (1280, 5120), (640, 640, 3, 3), (1280, 1280, 3, 3), (1280,), (320, 320), (2560, 1280)]


def generate(path: Path, size: int) -> int:
    """Write a valid safetensors file of about ``size`` bytes; return the tensor count."""
    entries: list[tuple[str, tuple[int, ...]]] = []
    total = 0
    i = 0
    while total < size:
        shape = SHAPES[i % len(SHAPES)]
        n = int(np.prod(shape))
        entries.append((f"model.diffusion_model.blocks.{i // len(SHAPES)}.t{i % len(SHAPES)}.weight", shape))
        total += 2 * n
        i += 1
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    pos = 0
    for name, shape in entries:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    block = (np.random.default_rng(0).standard_normal(8 << 20) * 0.05).astype("<f2").tobytes()  # 16 MiB
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(hb)) + hb)
        left = pos
        while left:
            k = min(left, len(block))
            fh.write(block[:k])
            left -= k
    return len(entries)


# peak RSS of this process: VmHWM (ru_maxrss would carry the parent's peak across fork + exec on Linux)
HWM = """
import resource
def hwm():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

CHILD_READ = HWM + """
import json, resource, os, sys, time
path, start = sys.argv[1], int(sys.argv[2])
buf = bytearray(4 << 20); mv = memoryview(buf); total = 0
t0 = time.perf_counter()
with open(path, "rb", buffering=0) as fh:
    fh.seek(start)
    while True:
        n = fh.readinto(mv)
        if not n: break
        total += n
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": dt, "bytes": total, "maxrss_kb": hwm(), "cpu": ru.ru_utime + ru.ru_stime}))
"""

CHILD_STATS = HWM + """
import hashlib, json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from registry.files.safetensors import read_header
from registry.tensorstats import tensor_stats, tensor_summary
path = sys.argv[1]
ru0 = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = ru0.ru_utime + ru0.ru_stime
t0 = time.perf_counter()
h = read_header(path)
st = tensor_stats(path, h.tensors)
summary, _ = tensor_summary(st)
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
# every per-tensor figure and digest, exactly (repr of the floats), as one fingerprint
rows = hashlib.sha256(json.dumps([[s.name, s.numel, repr(s.l2), repr(s.mean), repr(s.std), repr(s.absmax), repr(s.zero_frac),
                                   s.nan, s.inf, s.digest] for s in st]).encode()).hexdigest()
print(json.dumps({"seconds": dt, "bytes": sum(t.nbytes for t in h.tensors), "n": len(st), "l2": summary["l2"],
                  "maxrss_kb": hwm(), "cpu": ru.ru_utime + ru.ru_stime - cpu0, "rows": rows}))
"""


def child(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=7.0)
    ap.add_argument("--dir", type=Path, default=None, help="where to write the generated file (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--compare", type=Path, default=None,
                    help="another checkout of modelreg (e.g. the main branch) whose tensor statistics run on the same file")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating; the fastest is reported")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(dir=args.dir)
    path = Path(tmp) / "checkpoint.safetensors"
    try:
        t0 = time.perf_counter()
        n = generate(path, int(args.size_gb * 1e9))
        size = path.stat().st_size
        with open(path, "rb") as fh:
            start = 8 + struct.unpack("<Q", fh.read(8))[0]
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        print(f"generated {size / 1e9:.2f} GB, {n} fp16 tensors in {time.perf_counter() - t0:.1f} s; "
              f"machine memory {mem / 1e9:.1f} GB, {os.cpu_count()} CPUs")
        child(CHILD_READ, str(path), str(start))  # warm the page cache equally for both
        r = child(CHILD_READ, str(path), str(start))
        runs: list[dict[str, Any]] = []
        old_runs: list[dict[str, Any]] = []
        for _ in range(max(1, args.repeat)):
            runs.append(child(CHILD_STATS, str(path), str(ROOT)))
            if args.compare:
                old_runs.append(child(CHILD_STATS, str(path), str(args.compare)))
        s = min(runs, key=lambda x: float(x["seconds"]))
        old = min(old_runs, key=lambda x: float(x["seconds"])) if old_runs else None
        if len({x["rows"] for x in runs}) > 1:
            print("WARNING: the runs of this checkout disagree with each other")
        r2 = child(CHILD_READ, str(path), str(start))
        read_s = min(r["seconds"], r2["seconds"])
        gb = r["bytes"] / 1e9
        print(f"plain read:   {read_s:7.2f} s  {gb / read_s:6.2f} GB/s  peak RSS {r['maxrss_kb'] / 1024:7.1f} MiB")
        print(f"tensor stats: {s['seconds']:7.2f} s  {gb / s['seconds']:6.2f} GB/s  peak RSS {s['maxrss_kb'] / 1024:7.1f} MiB"
              f"  ({int(s['n'])} tensors{f'; fastest of {len(runs)}' if len(runs) > 1 else ''})")
        rate = gb / s["seconds"]
        print(f"throughput target >= 1.5 GB/s: {'met' if rate >= 1.5 else 'MISSED'} ({rate:.2f} GB/s; "
              f"CPU load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        print(f"CPU time: stats {s['cpu']:.2f} s ({s['cpu'] / gb:.2f} CPU-s/GB, all threads), plain read "
              f"{r['cpu']:.2f} s; CPU-bound rate on {cores} idle cores: {gb * cores / s['cpu']:.2f} GB/s "
              "(the figure that does not depend on other load)")
        if old is not None:
            same = "identical" if old["l2"] == s["l2"] else f"relative difference {abs(old['l2'] - s['l2']) / old['l2']:.1e}"
            rows = "identical" if old.get("rows") == s["rows"] else "DIFFERENT"
            print(f"compared checkout: {old['seconds']:.2f} s, {gb / old['seconds']:.2f} GB/s, {old['cpu']:.2f} CPU-s "
                  f"({old['cpu'] / gb:.2f} CPU-s/GB); this one takes {s['seconds'] / old['seconds']:.2f}x its time "
                  f"({old['seconds'] / s['seconds']:.2f}x its speed) and {s['cpu'] / old['cpu']:.2f}x its CPU time; "
                  f"global L2 norm {same}; every per-tensor figure and digest {rows}")
        print(f"stats / read time: {s['seconds'] / read_s:.2f}x; stats peak RSS {s['maxrss_kb'] / 1024:.0f} MiB "
              f"for a {size / 1e9:.1f} GB file (target: well under 1024 MiB: "
              f"{'met' if s['maxrss_kb'] / 1024 < 1024 else 'MISSED'})")
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
