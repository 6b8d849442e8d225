"""The probe's generation throughput against a plain diffusers loop, same settings, same device.

    python bench/probe_gpu.py                  # on a GPU: SD 1.5 and SDXL architectures (random weights)
    python bench/probe_gpu.py --smoke          # on a CPU: the tiny pipeline, a minute at most

Models are built offline from their published configurations with random weights (nothing is
downloaded; timings are those of the real architectures). For each size:

1. plain: ``pipe(prompt=[…], generator=[torch.Generator("cpu").manual_seed(s) …])`` over the grid in
   batches, PIL images kept in memory — what a user would write;
2. probe: the probe's generation stage (``fill_grid``: the same batches plus the conditional-noise hook,
   PNG encoding, SHA-256, the content-addressed store and the journal) into a fresh store;

alternating plain/probe ``--repeats`` times after one warm-up batch each, and printing images/s and
the ratio probe/plain of the medians (target ≥ 0.9). Then one whole probe (LoRA off and on, an
open_clip ViT-B-32 embedder with random weights at full size, metrics with 1000 bootstrap resamples,
contact sheet) with its stage timings. Everything is also written as JSON to ``--out`` (default
``$OUT/probe_gpu.json`` when ``$OUT`` is set).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = [
    "a portrait photo of a doctor in a hospital corridor",
    "an elderly farmer in a wheat field at sunset",
    "a knight in shining armor holding a sword, fantasy illustration",
    "a red sports car parked on a street",
    "a bowl of fruit on a wooden table, still life",
    "a lighthouse on a rocky coast during a storm",
    "a cat sleeping on a sofa",
    "a city skyline at night with lights reflected in a river",
]


def log(msg: str) -> None:
    print(msg, flush=True)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_loop(pipe: Any, jobs: list[tuple[str, int]], steps: int, guidance: float, batch: int, device: str) -> float:
    import torch

    sync(device)
    t = time.perf_counter()
    images: list[Any] = []
    for i in range(0, len(jobs), batch):
        chunk = jobs[i : i + batch]
        out = pipe(
            prompt=[p for p, _ in chunk],
            negative_prompt=[""] * len(chunk),
            generator=[torch.Generator("cpu").manual_seed(s) for _, s in chunk],
            num_inference_steps=steps,
            guidance_scale=guidance,
        )
        images.extend(out.images)
    sync(device)
    return len(images) / (time.perf_counter() - t)


def probe_stage(pipe: Any, jobs: list[tuple[str, int]], settings: Any, device: str) -> float:
    from registry.probe.battery import Prompt
    from registry.probe.run import Grid, NullProgress, fill_grid
    from registry.probe.samples import SampleStore

    prompts = list(dict.fromkeys(p for p, _ in jobs))
    seeds = sorted({s for _, s in jobs})
    ps = [Prompt(f"b/{i}", t, "bench", "bench") for i, t in enumerate(prompts)]
    with tempfile.TemporaryDirectory() as d:
        store = SampleStore(Path(d))
        grid = Grid(store, "bench", {"bench": True})
        sync(device)
        t = time.perf_counter()
        recs, _ = fill_grid(pipe, grid, ps, seeds, "", settings, NullProgress(), "off")
        sync(device)
        return len(recs) / (time.perf_counter() - t)


def bench_size(size: str, args: argparse.Namespace, device: str, dtype: Any, results: dict[str, Any]) -> None:
    import torch

    from registry.probe.generate import GenSettings, prepare_pipeline
    from registry.probe.offline import build_pipeline, image_size

    t = time.perf_counter()
    pipe = build_pipeline(size, seed=0, device=device, dtype=dtype)
    settings = GenSettings(steps=args.steps, guidance=7.0, batch_size=args.batch, device=device, noise_steps=5,
                           dtype="float16" if dtype == torch.float16 else "float32")
    pipe = prepare_pipeline(pipe, settings)
    side = image_size(pipe)
    n_params = sum(p.numel() for c in pipe.components.values() if hasattr(c, "parameters") for p in c.parameters())
    log(f"[{size}] built in {time.perf_counter() - t:.1f}s: {n_params / 1e9:.2f} B parameters, {side}×{side}, "
        f"{args.steps} steps, batch {args.batch}, {dtype}")
    n_prompts = max(1, args.images // args.seeds)
    jobs = [(PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f", variant {i}"), s)
            for i in range(n_prompts) for s in range(args.seeds)]
    warm = jobs[: args.batch]
    plain_loop(pipe, warm, args.steps, 7.0, args.batch, device)
    probe_stage(pipe, warm, settings, device)
    plain, probe = [], []
    for r in range(args.repeats):
        plain.append(plain_loop(pipe, jobs, args.steps, 7.0, args.batch, device))
        probe.append(probe_stage(pipe, jobs, settings, device))
        log(f"[{size}] repeat {r + 1}: plain {plain[-1]:.3f} img/s, probe {probe[-1]:.3f} img/s")
    ratio = statistics.median(probe) / statistics.median(plain)
    log(f"[{size}] RATIO probe/plain = {ratio:.3f} (target >= 0.9) over {len(jobs)} images × {args.repeats} repeats")
    entry: dict[str, Any] = {"images": len(jobs), "side": side, "steps": args.steps, "batch": args.batch,
                             "dtype": str(dtype), "params": n_params, "plain_img_s": plain, "probe_img_s": probe,
                             "ratio": ratio}
    if device.startswith("cuda"):
        entry["max_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    results["sizes"][size] = entry
    if size == args.full:
        entry["full_probe"] = full_probe(pipe, size, args, settings)
    del pipe
    from registry.probe.generate import free_memory

    free_memory()


def full_probe(pipe: Any, size: str, args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    """One whole probe: LoRA off and on, embeddings, metrics, sheet; with stage timings."""
    from registry.probe.battery import Battery, combine, load_battery
    from registry.probe.embed import make_embedder
    from registry.probe.metrics import MetricSettings
    from registry.probe.offline import random_lora
    from registry.probe.run import ModelSource, ProbeRequest, run_probe
    from registry.probe.samples import SampleStore

    with tempfile.TemporaryDirectory() as d:
        lora = random_lora(pipe, Path(d) / "random.safetensors", rank=16)
        parts = []
        for name in ("people", "characters", "objects"):
            b = load_battery(name)
            parts.append(Battery(b.name, b.version, b.prompts[: args.full_prompts], b.description, "", b.parts))
        embedder = make_embedder(args.embedder, device=settings.device)
        req = ProbeRequest(
            base=ModelSource(f"offline:{size}", f"bench:{size}@seed0", load=lambda: pipe),
            battery=combine(parts, name="bench"),
            seeds=list(range(args.seeds)),
            embedder=embedder,
            adapter=lora,
            settings=settings,
            metric_settings=MetricSettings(n_boot=1000),
            trigger_words=["sks"],
        )
        t = time.perf_counter()
        res = run_probe(req, SampleStore(Path(d) / "store"))
        wall = time.perf_counter() - t
    n = len(res.samples)
    log(f"[{size}] full probe: {n} samples in {wall:.1f}s ({n / wall:.2f} img/s overall); stages {res.timings}")
    for line in res.summary:
        log(f"[{size}]   {line}")
    return {"samples": n, "wall_s": wall, "timings": res.timings, "summary": res.summary,
            "adapter": res.adapter, "notes": res.notes, "device": res.device, "versions": res.versions}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny pipeline on the CPU (checks that the script works)")
    ap.add_argument("--sizes", default="sd15,sdxl", help="comma list of: tiny, sd15, sdxl")
    ap.add_argument("--images", type=int, default=64, help="images per timed grid")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--full", default="sd15", help="size to run one whole probe on ('' for none)")
    ap.add_argument("--full-prompts", type=int, default=4, help="prompts per built-in battery in the whole probe")
    ap.add_argument("--embedder", default="open_clip:ViT-B-32", help="embedder of the whole probe")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import torch

    from registry.probe.generate import device_info, library_versions

    if args.smoke:
        args.sizes, args.images, args.seeds, args.steps, args.batch, args.repeats = "tiny", 16, 2, 4, 4, 2
        args.full, args.full_prompts, args.embedder = "tiny", 2, "pixel:16"
        torch.set_num_threads(1)  # a shared CPU: oversubscribed threads make timings noise
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    results: dict[str, Any] = {"device": device_info(device), "versions": library_versions(), "sizes": {},
                               "args": {k: str(v) for k, v in vars(args).items()}, "errors": {}}
    log(f"device: {results['device']}")
    log(f"versions: {results['versions']}")
    t0 = time.perf_counter()
    out = args.out or (Path(os.environ["OUT"]) / "probe_gpu.json" if os.environ.get("OUT") else None)

    def dump() -> None:
        # written after every size, so a run stopped at its time limit still returns what it measured
        results["total_s"] = time.perf_counter() - t0
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2, default=str))
            log(f"wrote {out}")

    for size in [s for s in args.sizes.split(",") if s]:
        try:
            bench_size(size, args, device, dtype, results)
        except Exception as e:  # noqa: BLE001 - report and go on to the next size
            results["errors"][size] = traceback.format_exc()
            log(f"[{size}] FAILED: {type(e).__name__}: {e}")
        dump()
    log(f"total {results['total_s']:.1f}s")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
