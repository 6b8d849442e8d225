"""Benchmark: a scan on Ray against a local ``-j 2`` scan of the same files, in the same run.

For each file size (1 MiB, 16 MiB, 256 MiB, 1 GiB by default) a folder of safetensors files (together
about ``--total-mib`` MiB, at least ``--min-files`` files) is built in a temporary directory: up to 64 MiB
LoRA-like files (rank-8 F16 down/up pairs of random data, kohya metadata: every LoRA module's spectrum is
computed), above it checkpoint-like files (4 MiB F16 tensors: per-tensor statistics); then each folder
is scanned into two fresh registries:

* **local**: ``registry.scan.scan(..., workers=2)`` (the process pool of ``modelreg scan -j 2``);
* **ray**: ``scan(..., mapper=RayMapper())`` on a Ray started once, before the timings, in this process
  with 2 CPUs (``ray.init(num_cpus=2)``: two workers on this machine). Ray's start-up (seconds) is printed
  separately and not in the figures: a cluster is long-lived, a scan is not.

Both orders alternate over ``--repeat`` rounds and the best time of each is kept. Printed per size:
files/s and GB/s of both, and the overhead ratio ray / local throughput (target >= 0.8). Files are in the
page cache for both (written just before): the figures are CPU throughput of hashing and analysis plus
the distribution overhead, not disk reads.

    python bench/ray_scan.py [--sizes-mib 1,16,256,1024] [--total-mib 1024] [--min-files 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.scan import scan  # noqa: E402
from tests.builders import safetensors_bytes  # noqa: E402


def lora_bytes(size: int, seed: int) -> bytes:
    """A kohya-like LoRA of about ``size`` bytes: rank-8 F16 down/up pairs of 1024-wide modules."""
    rng = np.random.default_rng(seed)
    rank, width = 8, 1024
    per_module = 2 * rank * width * 2
    n = max(1, size // per_module)
    tensors: dict[str, np.ndarray] = {}
    for i in range(n):
        k = f"lora_unet_down_blocks_{i // 64}_attentions_{i % 64}_proj_in"
        tensors[f"{k}.lora_down.weight"] = (rng.standard_normal((rank, width)) * 0.01).astype(np.float16)
        tensors[f"{k}.lora_up.weight"] = (rng.standard_normal((width, rank)) * 0.01).astype(np.float16)
        tensors[f"{k}.alpha"] = np.asarray(4.0, dtype=np.float16)
    return safetensors_bytes(tensors, {"ss_network_module": "networks.lora", "ss_network_dim": "8", "ss_output_name": f"b{seed}"})


def checkpoint_bytes(size: int, seed: int) -> bytes:
    """A checkpoint-like file of about ``size`` bytes: F16 1024×2048 tensors (4 MiB each) of random data."""
    rng = np.random.default_rng(seed)
    n = max(1, size // (4 << 20))
    block = (rng.standard_normal((1024, 2048)) * 0.02).astype(np.float16)
    tensors = {f"model.diffusion_model.blocks.{i}.weight": block + np.float16(i * 1e-3) for i in range(n)}
    return safetensors_bytes(tensors, {"format": "pt"})


#: up to this size the files are LoRAs (as LoRAs are: 1–200 MB); above it checkpoints (2–7 GB)
LORA_MAX = 64 << 20


def build(root: Path, size: int, count: int) -> int:
    root.mkdir(parents=True)
    total = 0
    for i in range(count):
        data = lora_bytes(size, seed=i) if size <= LORA_MAX else checkpoint_bytes(size, seed=i)
        (root / f"f{i:04d}.safetensors").write_bytes(data)
        total += len(data)
    return total


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes-mib", default="1,16,256,1024")
    ap.add_argument("--total-mib", type=int, default=1024, help="about this much data per size")
    ap.add_argument("--min-files", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()

    import ray

    from registry.distributed import RayMapper

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")
    base = Path(tempfile.mkdtemp(prefix="ray-scan-", dir=args.dir))
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    # warm the two workers (imports of registry and the analyzers), as in a running cluster
    list(RayMapper(chunk_files=1)(_warm_items(base / "warm"), set(), False))
    print(f"ray start-up (2 CPUs, workers warmed): {time.perf_counter() - t:.1f}s (not in the figures)")
    print(f"{'size':>8} {'files':>6} {'GB':>6} | {'local -j 2':>20} | {'ray, 2 workers':>20} | ratio")
    try:
        for mib in (int(x) for x in args.sizes_mib.split(",")):
            size = mib << 20
            count = max(args.min_files, args.total_mib // mib)
            folder = base / f"{mib}mib"
            total = build(folder, size, count)
            best_local = best_ray = float("inf")
            for r in range(args.repeat):
                order = ("local", "ray") if r % 2 == 0 else ("ray", "local")
                for which in order:
                    db = base / f"{which}-{mib}-{r}.duckdb"
                    if which == "local":
                        best_local = min(best_local, timed(lambda db=db, f=folder: scan([f], db, workers=2)))
                    else:
                        best_ray = min(best_ray, timed(lambda db=db, f=folder: scan([f], db, mapper=RayMapper())))
                    for p in (db, Path(str(db) + ".wal")):
                        p.unlink(missing_ok=True)
            gb = total / 1e9
            ratio = best_local / best_ray
            print(
                f"{mib:>5}MiB {count:>6} {gb:>6.2f} | {count / best_local:>7.2f} f/s {gb / best_local:>6.3f} GB/s |"
                f" {count / best_ray:>7.2f} f/s {gb / best_ray:>6.3f} GB/s | {ratio:.2f}"
                + ("" if ratio >= 0.8 else "  (below the 0.8 target)")
            )
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        ray.shutdown()


def _warm_items(d: Path) -> list:  # type: ignore[type-arg]
    from registry.scan import ScanItem

    d.mkdir()
    items = []
    for i in range(4):
        p = d / f"w{i}.safetensors"
        p.write_bytes(lora_bytes(1 << 16, seed=100 + i))
        items.append(ScanItem(str(p), os.stat(p)))
    return items


if __name__ == "__main__":
    main()
