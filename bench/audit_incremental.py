"""Benchmark: a second audit of a tree where 990 of 1,000 model files are unchanged, against a full rescan.

Builds a tree of N safetensors files (LoRA-shaped, ``--size-mib`` each, in UI-like folders, one in ten
with a ``.civitai.info`` sidecar), then in one registry:

1. first audit (cold: every file read, hashed, analysed, recorded);
2. changes ``--changed`` files (new content, new mtime) and audits again (incremental: only those are read);
3. audits again with ``rehash=True`` (the full rescan: every file read and analysed again).

Prints the three times and the ratio full-rescan / incremental (target >= 20x). Times on shared machines
are noisy; the ratio is measured within one run.

    python bench/audit_incremental.py [--files 1000] [--changed 10] [--size-mib 1] [--workers 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.audit import audit  # noqa: E402
from tests.builders import safetensors_bytes  # noqa: E402


def lora_bytes(seed: int, size_mib: float) -> bytes:
    """A LoRA-shaped file of about ``size_mib`` MiB (F16 down/up pairs, kohya metadata)."""
    rng = np.random.default_rng(seed)
    rank, width = 8, 320
    pair_bytes = 2 * rank * width * 2
    pairs = max(1, int(size_mib * (1 << 20) / pair_bytes))
    tensors: dict[str, np.ndarray] = {}
    for i in range(pairs):
        tensors[f"lora_unet_block_{i}.lora_down.weight"] = rng.standard_normal((rank, width)).astype(np.float16)
        tensors[f"lora_unet_block_{i}.lora_up.weight"] = rng.standard_normal((width, rank)).astype(np.float16)
    return safetensors_bytes(tensors, {"ss_network_dim": str(rank), "ss_network_alpha": "4", "ss_seed": str(seed)})


def build_tree(root: Path, n: int, size_mib: float) -> list[Path]:
    folders = ["ComfyUI/models/loras", "ComfyUI/models/checkpoints", "webui/models/Lora", "webui/models/LyCORIS", "store"]
    paths = []
    template = lora_bytes(0, size_mib)
    for i in range(n):
        folder = root / folders[i % len(folders)] / f"set{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"model_{i:04d}.safetensors"
        # distinct content per file without regenerating it: the last 8 bytes of tensor data differ
        data = template[:-8] + i.to_bytes(8, "little")
        p.write_bytes(data)
        if i % 10 == 0:
            sha = hashlib.sha256(data).hexdigest()
            (folder / f"model_{i:04d}.civitai.info").write_text(
                json.dumps({"name": "v1", "model": {"name": f"m{i}"}, "files": [{"name": p.name, "primary": True, "hashes": {"SHA256": sha}}]})
            )
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--changed", type=int, default=10)
    ap.add_argument("--size-mib", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temporary tree")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="modelreg-bench-audit-"))
    try:
        tree = tmp / "tree"
        t = time.perf_counter()
        files = build_tree(tree, args.files, args.size_mib)
        total = sum(p.stat().st_size for p in files)
        print(f"tree: {len(files)} model files, {total / (1 << 20):.0f} MiB, built in {time.perf_counter() - t:.1f}s")
        db = tmp / "registry.duckdb"

        t = time.perf_counter()
        r1 = audit([str(tree)], db, workers=args.workers)
        first = time.perf_counter() - t
        assert r1.new_blobs == len(files), r1.new_blobs

        step = max(1, len(files) // max(1, args.changed))
        changed = files[::step][: args.changed]
        for i, p in enumerate(changed):
            data = bytearray(p.read_bytes())
            data[-1] ^= 0xFF
            data[-9] ^= i + 1
            p.write_bytes(bytes(data))
        t = time.perf_counter()
        r2 = audit([str(tree)], db, workers=args.workers)
        second = time.perf_counter() - t
        assert r2.unchanged == len(files) - len(changed), (r2.unchanged, len(files), len(changed))
        assert r2.new_blobs == len(changed), r2.new_blobs

        t = time.perf_counter()
        r3 = audit([str(tree)], db, workers=args.workers, rehash=True)
        full = time.perf_counter() - t
        assert r3.unchanged == 0

        print(f"first audit (cold, {r1.files} files):            {first:8.2f} s")
        print(f"second audit ({r2.unchanged} unchanged, {r2.new_blobs} changed): {second:8.2f} s")
        print(f"full rescan (rehash, {r3.files} files):          {full:8.2f} s")
        print(f"ratio full rescan / incremental audit: {full / second:.1f}x (target >= 20x)")
        print(f"findings reported: {len(r2.findings)}; sidecars read on the second audit: {r2.sidecars_read}, unchanged: {r2.sidecars_unchanged}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
