"""Benchmark: exact LoRA spectra, factored (ours) against forming ΔW and a full SVD (kohya-style).

An SDXL-shaped rank-32 kohya LoRA is built from the shapes of a real header
(``../shared/corpus/headers/sdxl-kohya.json``: 794 modules, UNet and text encoder, linear and 1×1 conv)
with random fp16 factors and written to a real safetensors file. Then, in the same run:

* **ours**: :func:`registry.stats.lora_report` on every module (QR of both factors + SVD of the r×r core,
  float64), from factors already decoded in memory; and once more end to end from the file (header,
  memory map, fp16 decoding, grouping, statistics);
* **baseline**: what ``networks/resize_lora.py`` does per module: form ``ΔW = scale·up·down`` and take a
  full SVD. Conservatively it runs in float64 and asks LAPACK for singular values only (kohya runs
  ``torch.linalg.svd`` in float32 with U and V, which is slower still).

Both run with BLAS limited to one thread (the same setting the library uses; ``--threads`` changes it for
both). Prints both times, the ratio, and the largest relative difference between the two sets of
singular values (the leading r of each module). ``--modules N`` times only the first N modules of both
(in file order) instead of the whole file.

LyCORIS cases (``--case loha`` / ``loha-decay`` / ``lokr``; ``all`` runs the four): an SDXL file with the
module layout of LyCORIS' full preset (1,052 modules: UNet attention, ResNet and sampler convolutions, both
text encoders; :mod:`bench.lycoris_layouts`) is written with random fp16 factors: a **LoHa** at rank 32
(r1·r2 = 1,024; random factors give a flat spectrum of 1,024 values, the hardest case for the sketch's
bounds), the same LoHa with a **decaying** spectrum as trained updates have (``loha-decay``: column j of
each ``hada_w*_a`` scaled by exp(−j/4)), and a **LoKr** with factor 8, a whole ``lokr_w1`` (8×8) and
``lokr_w2`` factored at rank 32. Ours runs end
to end from the file; the baseline (form ΔW = s·(W1a W1b) ⊙ (W2a W2b), or s·W1 ⊗ W2, and take a full SVD)
runs on every ``--sample``-th module and its time is scaled to the whole file (it would take a quarter of
an hour). Printed: both times, the largest relative error of the leading singular values against the
dense SVD, separately for modules computed exactly and for sketched ones (with the largest recorded
bound on σ1, largest and median).

    python bench/lora_spectra.py [--case all|lora|loha|loha-decay|lokr] [--header PATH] [--modules N] [--threads T] [--sample K]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.adapters import group_modules  # noqa: E402
from registry.files.dtypes import decode  # noqa: E402
from registry.files.safetensors import read_header  # noqa: E402
from registry.stats import lora_report  # noqa: E402
from tests.builders import CORPUS, write_safetensors  # noqa: E402

DEFAULT_HEADER = CORPUS / "headers" / "sdxl-kohya.json"  # MODELREG_CORPUS overrides the corpus location


def build_file(header: Path, out: Path, seed: int = 0) -> Path:
    keys = json.loads(header.read_text())["keys"]
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray | tuple[str, list[int], bytes]] = {}
    for name, entry in keys.items():
        shape = tuple(entry["shape"])
        if name.endswith(".alpha"):  # a 0-d tensor, as kohya writes it
            tensors[name] = ("F16", [], np.array(16.0, dtype="<f2").tobytes())
        else:
            tensors[name] = (rng.standard_normal(shape) * 0.02).astype(np.float16)
    return write_safetensors(out, tensors, {"ss_network_dim": "32", "ss_network_alpha": "16"})


def baseline(up: np.ndarray, down: np.ndarray, scale: float) -> np.ndarray:
    """kohya resize_lora: merge_linear/merge_conv (form up·down), then a full SVD of the product."""
    w = scale * (up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1))
    return np.linalg.svd(w, compute_uv=False)


def lycoris_case(kind: str, threads: int, sample: int) -> None:
    """The LoHa or LoKr case (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    from bench.lycoris_layouts import loha_tensors, lokr_tensors
    from registry.analysis import FileContext

    rng = np.random.default_rng(1)
    if kind == "lokr":
        tensors = lokr_tensors(32, 8, rng)
    else:  # loha: random factors (a flat spectrum); loha-decay: factor columns scaled by exp(−j/4)
        tensors = loha_tensors(32, rng, decay=4.0 if kind == "loha-decay" else None)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_safetensors(Path(tmp) / f"sdxl_{kind}.safetensors", tensors)
        size = path.stat().st_size
        with threadpool_limits(threads, user_api="blas"):
            t0, c0 = time.perf_counter(), time.process_time()
            ctx = FileContext(path, size, "safetensors", {}, header=read_header(path))
            ctx.tensors = list(ctx.header.tensors) if ctx.header else []
            by = {t.name: t for t in ctx.tensors}
            g = group_modules(by, {k: t.shape for k, t in by.items()})
            rep = lora_report(g, lambda k: decode(ctx.raw(by[k]), by[k].dtype, by[k].shape))
            ctx.close()
            t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
            n = len(rep.modules)
            picked = list(range(0, n, max(1, sample)))
            arrays = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
            t0, c0 = time.perf_counter(), time.process_time()
            dense: dict[int, np.ndarray] = {}
            for i in picked:
                p, m = g.modules[i].parts, rep.modules[i]
                w: np.ndarray
                if kind != "lokr":
                    w = (arrays[p["w1a"]] @ arrays[p["w1b"]]) * (arrays[p["w2a"]] @ arrays[p["w2b"]])
                else:
                    w = np.kron(arrays[p["lokr_w1"]], arrays[p["lokr_w2a"]] @ arrays[p["lokr_w2b"]])
                dense[i] = (m.scale or 1.0) * np.linalg.svd(w, compute_uv=False)
            t_base = (time.perf_counter() - t0) * n / len(picked)
            c_base = (time.process_time() - c0) * n / len(picked)
    err_exact = err_sketch = 0.0
    outside = n_sketched = 0
    for i, ref in dense.items():
        m = rep.modules[i]
        k = min(len(m.sv), stats_keep())
        got = np.asarray(m.sv[:k])
        e = float(np.max(np.abs(got - ref[:k]) / ref[:k]))
        if m.exact:
            err_exact = max(err_exact, e)
        else:
            err_sketch = max(err_sketch, e)
            # the recorded certain bound: σ̂ᵢ ≤ σᵢ ≤ √(σ̂ᵢ² + ρ²) (float32 rounding allowed on the lower side)
            rho = m.extra["sketch"]["residual_bound"]
            n_sketched += 1
            outside += int(np.any(got > ref[:k] * (1 + 1e-6)) or np.any(ref[:k] > np.sqrt(got**2 + rho**2)))
    methods = ", ".join(f"{k} {v}" for k, v in sorted(Counter(m.method for m in rep.modules).items()))
    bound = rep.summary.get("max_sv_error")
    print(f"\n{kind}: SDXL, {n} modules ({methods}), {size / 2**20:.0f} MiB, BLAS threads {threads}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    print(f"  ours end to end from the file:   {t_ours:8.2f} s wall, {c_ours:8.2f} s CPU (all threads; "
          f"{t_ours / n * 1e3:.1f} ms/module wall)")
    print(f"  baseline (form ΔW + full SVD):   {t_base:8.2f} s wall, {c_base:8.2f} s CPU (one thread; estimated "
          f"from {len(picked)} of {n} modules, every {max(1, sample)}th, scaled by {n / len(picked):.1f})")
    print(f"  speed-up: {t_base / t_ours:.1f}x wall, {c_base / c_ours:.1f}x CPU; CPU-bound time on {cores} idle cores "
          f"{c_ours / cores:.1f} s (load average {os.getloadavg()[0]:.1f})")
    print(f"  file in <= 10 s: wall {'met' if t_ours <= 10 else 'MISSED'}, CPU-bound estimate "
          f"{'met' if c_ours / cores <= 10 else 'MISSED'}")
    errs = sorted(m.sv_error for m in rep.modules if m.sv_error is not None)
    print(f"  largest rel. error of the leading singular values vs the dense SVD: exact modules {err_exact:.2e}"
          + (f", sketched modules {err_sketch:.2e} (recorded bound on σ1: largest +{bound:.1%}, median "
             f"+{errs[len(errs) // 2]:.1%})" if bound is not None and errs else ""))
    if n_sketched:
        print(f"  sampled sketched modules with a value outside its recorded bound: {outside} of {n_sketched}")


def stats_keep() -> int:
    from registry.stats import SV_KEEP

    return SV_KEEP


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=["all", "lora", "loha", "loha-decay", "lokr"], default="all")
    ap.add_argument("--header", type=Path, default=DEFAULT_HEADER)
    ap.add_argument("--modules", type=int, default=0, help="only the first N modules (0: the whole file)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for both methods")
    ap.add_argument("--sample", type=int, default=25, help="LyCORIS cases: the baseline runs on every K-th module")
    args = ap.parse_args()
    for kind in ("loha", "loha-decay", "lokr"):
        if args.case in (kind, "all"):
            lycoris_case(kind, args.threads, args.sample)
    if args.case not in ("lora", "all"):
        return 0
    if not args.header.exists():
        print(f"header {args.header} not found (the shared corpus is needed)", file=sys.stderr)
        return 2
    from threadpoolctl import threadpool_limits

    with tempfile.TemporaryDirectory() as tmp:
        path = build_file(args.header, Path(tmp) / "sdxl_rank32.safetensors")
        size = path.stat().st_size
        h = read_header(path)
        info = {t.name: t for t in h.tensors}
        raw = path.read_bytes()
        arrays = {t.name: decode(raw[t.offset : t.offset + t.nbytes], t.dtype, t.shape).astype(np.float64) for t in h.tensors}
        grouping = group_modules(info, {k: t.shape for k, t in info.items()})
        if args.modules:
            grouping.modules = grouping.modules[: args.modules]
        n = len(grouping.modules)
        print(f"file: {size / 1e6:.1f} MB, {len(info)} tensors, {n} modules timed, BLAS threads {args.threads}")

        with threadpool_limits(args.threads, user_api="blas"):
            t0 = time.perf_counter()
            rep = lora_report(grouping, lambda k: arrays[k])
            t_ours = time.perf_counter() - t0

            # end to end from the file: header, memory map, fp16 decoding, grouping, statistics
            from registry.analysis import FileContext

            t0 = time.perf_counter()
            ctx = FileContext(path, size, "safetensors", {}, header=read_header(path))
            ctx.tensors = list(ctx.header.tensors) if ctx.header else []
            by = {t.name: t for t in ctx.tensors}
            g2 = group_modules(by, {k: t.shape for k, t in by.items()})
            if args.modules:
                g2.modules = g2.modules[: args.modules]
            rep2 = lora_report(g2, lambda k: decode(ctx.raw(by[k]), by[k].dtype, by[k].shape))
            ctx.close()
            t_e2e = time.perf_counter() - t0

            worst = 0.0
            t0 = time.perf_counter()
            base_sv: dict[str, np.ndarray] = {}
            for mod in grouping.modules:
                p = mod.parts
                rank = arrays[p["down"]].shape[0]
                scale = float(arrays[p["alpha"]]) / rank if "alpha" in p else 1.0
                base_sv[mod.key] = baseline(arrays[p["up"]], arrays[p["down"]], scale)
            t_base = time.perf_counter() - t0

    for m in rep.modules:
        ref = base_sv[m.key][: m.rank or 0]
        ours = np.asarray(m.sv[: ref.size])
        worst = max(worst, float(np.max(np.abs(ours - ref) / ref)))
    same = all(a.sv == b.sv for a, b in zip(rep.modules, rep2.modules, strict=True))
    print(f"ours (factored, exact):         {t_ours:8.3f} s  ({t_ours / n * 1e3:.2f} ms/module)")
    print(f"ours end to end from the file:  {t_e2e:8.3f} s  (identical results: {same})")
    print(f"baseline (form ΔW + full SVD):  {t_base:8.3f} s  ({t_base / n * 1e3:.2f} ms/module)")
    print(f"speed-up: {t_base / t_ours:.1f}x (statistics), {t_base / t_e2e:.1f}x (end to end from the file)")
    print(f"max relative difference of singular values: {worst:.2e}")
    print(f"targets: speed-up >= 50x: {'met' if t_base / t_ours >= 50 else 'MISSED'}; "
          f"max rel. diff <= 1e-6: {'met' if worst <= 1e-6 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
