"""Benchmark: scan throughput with default options against a floor loop, in the same run.

Three folders are built in a temporary directory:

* ``real``: real-layout kohya LoRAs at full size (SD 1.5 rank 8: every UNet attention/projection and
  CLIP-L module of the architecture, ~9.5 MB; SDXL rank 8 with both text encoders, ~57 MB), random F16
  data;
* ``mib``: 1 MiB LoRA-like files (F16 down/up pairs, kohya metadata);
* ``tiny``: tiny files (one 4×8 LoRA pair, a few hundred bytes).

First the *fixed cost* of a scan is measured: one tiny file scanned into a new registry (creating it,
one commit, the close's checkpoint; 0.12-0.13 s on the 2-core development machine), about what every
scan pays however few its files are (a scan by worker processes creates the registry while they start,
and ends with one commit and the close as this one does). The folders are big enough that it is a small
part of their scans (the line after each folder's figures says how much: 6-11%), so that their figures
are the per-file throughput that issue 21's targets are about: 24 real-layout files, 200 1 MiB files and
5,000 tiny files by default. Smaller folders show the fixed cost too: 6 real-layout files (21% fixed
cost) gave 2.5-2.8x the floor where 24 give 1.9-2.0x, and 1,000 tiny files (22-27%) 0.45-0.54 ms per
file where 5,000 give 0.38 (``--real 6``, ``--tiny 1000``).

Each folder is scanned into a fresh registry with ``registry.scan.scan`` and the CLI's default
options (``workers=0``: as ``modelreg scan`` chooses it, one process per usable core), then the *floor* runs over the same
files: open, parse the safetensors header strictly, and compute every digest in one pass
(``registry.hashing.hash_file``), nothing else; ``--repeat`` rounds of both (3), and their medians
printed, with the range of the rounds' ratios (one round of 24 real files is ~1.9 s: a round's ratio
moves by up to ±15% on this shared machine). Before the rounds, the page cache and the imports of both are
warmed: the floor runs once, and the analyzers are imported (~40 ms, once per process: the imports of
a command are not throughput). Printed per folder: per-file ms, files/s, MB/s for
both, and the ratio scan / floor (targets from issue 21: real layouts ≤ 2.5×, 1 MiB files ≤ 12 ms per
file, tiny files ≤ 0.5 ms per file).

    python bench/scan_throughput.py [--real 24] [--mib 200] [--tiny 5000] [--workers N] [--repeat 3] [--fixed 9]

Times on a shared machine are noisy: the floor runs in the same process right after the scan, over
files that are in the page cache for both. The CPU seconds of both (this process and the scan's worker
processes) are printed too, with their ratio: on a machine that others load, that ratio moves much less
than the wall-clock one (it counts the work, not the waiting; with several workers the wall-clock
figure is the lower one).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.analysis import load_analyzers  # noqa: E402
from registry.files.safetensors import parse_header, read_header_bytes  # noqa: E402
from registry.hashing import hash_file  # noqa: E402
from registry.scan import effective_workers, scan  # noqa: E402
from tests.archspecs import clip_modules, lora_tensors, unet_modules  # noqa: E402
from tests.builders import safetensors_bytes  # noqa: E402


def _random_lora(shapes: dict[str, list[int]], rng: np.random.Generator, meta: dict[str, str]) -> bytes:
    tensors: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if not shape:
            tensors[name] = np.asarray(4.0, dtype=np.float16)
        else:
            tensors[name] = (rng.standard_normal(shape) * 0.01).astype(np.float16)
    return safetensors_bytes(tensors, meta)


def build_real(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    layouts = {
        "sd15": {**lora_tensors(unet_modules("sd1", "ldm"), rank=8, prefix="lora_unet_"),
                 **lora_tensors(clip_modules(768, 12), rank=8, prefix="lora_te_text_model_encoder_layers_")},
        "sdxl": {**lora_tensors(unet_modules("sdxl-base", "ldm"), rank=8, prefix="lora_unet_"),
                 **lora_tensors(clip_modules(768, 12), rank=8, prefix="lora_te1_text_model_encoder_layers_"),
                 **lora_tensors(clip_modules(1280, 32), rank=8, prefix="lora_te2_text_model_encoder_layers_")},
    }  # fmt: skip
    for i in range(n):
        arch = "sd15" if i % 2 == 0 else "sdxl"
        meta = {"ss_network_dim": "8", "ss_network_alpha": "4", "ss_base_model_version": "sd_v1" if arch == "sd15" else "sdxl_base_v1-0", "ss_seed": str(i)}
        (root / f"{arch}_{i}.safetensors").write_bytes(_random_lora(layouts[arch], rng, meta))


def build_mib(root: Path, n: int) -> None:
    rng = np.random.default_rng(1)
    rank, width = 8, 320
    pairs = max(1, (1 << 20) // (2 * rank * width * 2))
    for i in range(n):
        tensors: dict[str, np.ndarray] = {}
        for j in range(pairs):
            tensors[f"lora_unet_block_{j}.lora_down.weight"] = rng.standard_normal((rank, width)).astype(np.float16)
            tensors[f"lora_unet_block_{j}.lora_up.weight"] = rng.standard_normal((width, rank)).astype(np.float16)
        (root / f"mib_{i}.safetensors").write_bytes(safetensors_bytes(tensors, {"ss_network_dim": "8", "ss_seed": str(i)}))


def build_tiny(root: Path, n: int) -> None:
    rng = np.random.default_rng(2)
    for i in range(n):
        tensors = {
            "lora_unet_x.lora_down.weight": rng.standard_normal((4, 8)).astype(np.float16),
            "lora_unet_x.lora_up.weight": rng.standard_normal((8, 4)).astype(np.float16),
        }
        (root / f"tiny_{i}.safetensors").write_bytes(safetensors_bytes(tensors, {"ss_seed": str(i)}))


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the scan's worker processes)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def floor(files: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the floor loop."""
    t, c = time.perf_counter(), _cpu()
    for p in files:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            n, raw = read_header_bytes(fh, size)
            parse_header(raw, n, size)
        hash_file(p, 8 + n)
    return time.perf_counter() - t, _cpu() - c


def run(name: str, folder: Path, workers: int, db: Path, repeat: int = 3) -> tuple[float, float]:
    """``repeat`` rounds of a scan into a fresh registry followed by the floor; the medians of each."""
    files = sorted(folder.iterdir())
    total = sum(p.stat().st_size for p in files)
    floor(files)  # warm the page cache and the floor's imports
    load_analyzers()  # and the scan's (imported once per process, ~40 ms, as the floor's modules are)
    rounds: list[tuple[float, float, float, float]] = []
    for k in range(repeat):
        fresh = db.with_name(f"{db.stem}-{k}{db.suffix}")
        t, c = time.perf_counter(), _cpu()
        summary = scan([folder], fresh, workers=workers)
        t_scan, c_scan = time.perf_counter() - t, _cpu() - c
        assert summary.files == len(files), (summary.files, len(files))
        rounds.append((t_scan, c_scan, *floor(files)))
    t_scan, c_scan, t_floor, c_floor = (statistics.median(r[i] for r in rounds) for i in range(4))
    n = len(files)
    for label, secs, cpu in (("scan ", t_scan, c_scan), ("floor", t_floor, c_floor)):
        print(
            f"  {name:5s} {label}: {secs * 1e3 / n:8.2f} ms/file  {n / secs:9.1f} files/s  {total / secs / 1e6:8.1f} MB/s"
            f"   (CPU {cpu * 1e3 / n:8.2f} ms/file)"
        )
    j = effective_workers(workers, n, total)
    ratios = sorted(r[0] / r[2] for r in rounds)
    print(
        f"  {name:5s} ratio scan/floor: {t_scan / t_floor:.2f}x   CPU ratio {c_scan / max(c_floor, 1e-9):.2f}x   "
        f"({n} files, {total / 1e6:.1f} MB, -j {j}; medians of {repeat} rounds, ratio per round "
        f"{ratios[0]:.2f}-{ratios[-1]:.2f}x)"
    )
    return t_scan, t_floor


def fixed_cost(root: Path, rounds: int) -> float:
    """The median wall-clock seconds of a scan of one tiny file into a new registry (in this process, as
    ``modelreg scan`` does for one file): about what every scan pays however few its files are (creating the
    registry, one commit, the close's checkpoint), beside the file's own analysis (~0.5 ms)."""
    folder = root / "fixed"
    folder.mkdir()
    build_tiny(folder, 1)
    load_analyzers()
    scan([folder], root / "fixed-warm.duckdb")  # (the first creation builds the empty-registry template)
    took = []
    for k in range(rounds):
        t = time.perf_counter()
        scan([folder], root / f"fixed-{k}.duckdb")
        took.append(time.perf_counter() - t)
    secs = statistics.median(took)
    print(
        f"  fixed cost of a scan (one tiny file into a new registry; median of {rounds}): {secs * 1e3:.1f} ms "
        f"(range {min(took) * 1e3:.1f}-{max(took) * 1e3:.1f})"
    )
    return secs


def _at_least_one(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=int, default=24)
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--tiny", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=0, help="0 (the CLI default): automatic")
    ap.add_argument(
        "--repeat", type=_at_least_one, default=3, help="rounds per folder (scan into a fresh registry, then the floor); medians printed"
    )
    ap.add_argument("--fixed", type=int, default=9, help="rounds of the fixed-cost scan (one tiny file; 0: skip it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        fixed = fixed_cost(root, args.fixed) if args.fixed > 0 else None
        for name, n, build in (("real", args.real, build_real), ("mib", args.mib, build_mib), ("tiny", args.tiny, build_tiny)):
            if n <= 0:
                continue
            folder = root / name
            folder.mkdir()
            build(folder, n)
            t_scan, _ = run(name, folder, args.workers, root / f"{name}.duckdb", args.repeat)
            if fixed is not None:
                print(f"  {name:5s} the fixed cost is {100 * fixed / t_scan:.0f}% of this folder's scan")


if __name__ == "__main__":
    main()
