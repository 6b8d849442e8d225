"""Checks of the probe that only a GPU can answer, on the SD 1.5 architecture built offline (random weights).

    python bench/probe_gpu_checks.py            # on a GPU
    python bench/probe_gpu_checks.py --smoke    # on a CPU: the tiny pipeline, reproducibility parts only

1. Reproducibility: the same grid (prompts × seeds, settings, batch size) generated twice into fresh
   stores; how many sample hashes agree. Then (1b) the same grid with the prompts in reverse order, so
   that every sample has other partners and another position in its batch of the same size.
2. Batch size: the same grid at another batch size; how many sample hashes agree with (1), and how far
   the pixels are apart (mean and largest difference in 8-bit levels); (2b) that grid twice. The grid
   journal keys a sample by (prompt, negative prompt, seed) and records the batch size beside it, so this
   says whether a grid resumed or halved at another batch size holds the same pixels.
3. The figures: one whole probe (a random rank-16 LoRA, the built-in batteries' first prompts, one
   embedder object for both) at batch 8 and at batch 2, in fresh stores; every figure's change, against
   the width of its confidence interval, and whether the summary lines are the same.
4. Running out of GPU memory (GPU only): the allocator is capped a little above what batch 2 needs, the
   grid is asked for at batch 16, and the probe's own halving (``run_jobs``) must finish it, saying so;
   its hashes are compared with an uncapped run at the batch size it settled on.

Prints each result and writes them as JSON to ``--out`` (default ``$OUT/probe_gpu_checks.json`` when
``$OUT`` is set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.probe_gpu import PROMPTS as _ALL_PROMPTS  # noqa: E402
from bench.probe_gpu import log  # noqa: E402

PROMPTS = _ALL_PROMPTS[:4]


def grid_hashes(
    pipe: Any, settings: Any, seeds: list[int], notes: list[str], prompts: list[str] | None = None,
    suffix: Callable[[], str] = lambda: "",
) -> tuple[list[str], int, float, list[Any]]:
    """Generate the grid into a fresh store with the probe's own code; (hashes in grid order, batch used,
    seconds, images in grid order)."""
    from registry.probe.battery import Prompt
    from registry.probe.run import Grid, NullProgress, fill_grid
    from registry.probe.samples import SampleStore

    class Notes(NullProgress):
        def note(self, msg: str) -> None:
            msg += suffix()
            notes.append(msg)
            log(f"  probe says: {msg}")

    ps = [Prompt(f"c/{i}", t, "check", "check") for i, t in enumerate(prompts or PROMPTS)]
    with tempfile.TemporaryDirectory() as d:
        store = SampleStore(Path(d))
        grid = Grid(store, "check", {"check": True})
        t = time.perf_counter()
        recs, bs = fill_grid(pipe, grid, ps, seeds, "", settings, Notes(), "off")
        took = time.perf_counter() - t
        return [r.sha256 for r in recs], bs, took, [store.get(r.sha256) for r in recs]


def pixel_difference(a: list[Any], b: list[Any]) -> dict[str, float]:
    """How far two grids' images are apart, in 8-bit levels: mean and largest absolute difference, and the
    share of pixel values that differ at all."""
    import numpy as np

    d = np.abs(np.stack(a).astype(np.int16) - np.stack(b).astype(np.int16))
    return {"mean_levels": round(float(d.mean()), 4), "max_levels": int(d.max()),
            "share_differing": round(float((d > 0).mean()), 6)}


def whole_probe(pipe: Any, settings: Any, lora: Path, embedder: Any, seeds: list[int], prompts: int) -> Any:
    """One whole probe into a fresh store (the probe's own ``run_probe``)."""
    from registry.probe.battery import Battery, combine, load_battery
    from registry.probe.metrics import MetricSettings
    from registry.probe.run import ModelSource, ProbeRequest, run_probe
    from registry.probe.samples import SampleStore

    parts = []
    for name in ("people", "characters", "objects"):
        b = load_battery(name)
        parts.append(Battery(b.name, b.version, b.prompts[:prompts], b.description, "", b.parts))
    req = ProbeRequest(
        base=ModelSource("offline:check", "check@seed0", load=lambda: pipe),
        battery=combine(parts, name="check"),
        seeds=seeds,
        embedder=embedder,
        adapter=lora,
        settings=settings,
        metric_settings=MetricSettings(n_boot=1000),
        trigger_words=["sks"],
    )
    with tempfile.TemporaryDirectory() as d:
        return run_probe(req, SampleStore(Path(d)))


def figure_changes(a: Any, b: Any) -> dict[str, Any]:
    """Each figure of probe ``a`` against the same figure of ``b``: the largest change, and the largest
    change as a share of the figure's confidence-interval width in ``a``."""
    by = {(m.name, m.group, m.arm): m for m in b.metrics}
    worst, worst_share, n = 0.0, 0.0, 0
    rows = []
    for m in a.metrics:
        o = by.get((m.name, m.group, m.arm))
        if o is None or m.value is None or o.value is None:
            continue
        n += 1
        d = abs(m.value - o.value)
        width = (m.hi - m.lo) if m.hi is not None and m.lo is not None else None
        share = d / width if width else None
        worst = max(worst, d)
        if share is not None:
            worst_share = max(worst_share, share)
        rows.append({"figure": f"{m.name}/{m.group}/{m.arm}", "a": m.value, "b": o.value, "change": d,
                     "interval_a": [m.lo, m.hi], "interval_b": [o.lo, o.hi], "share_of_interval": share})
    by_change = sorted(rows, key=lambda r: -r["change"])[:5]
    by_share = sorted(rows, key=lambda r: -(r["share_of_interval"] or 0.0))[:5]
    return {"figures": n, "largest_change": worst, "largest_share_of_interval": worst_share,
            "same_summary": a.summary == b.summary, "top": by_change, "top_share": by_share}


def agree(a: list[str], b: list[str]) -> int:
    return sum(x == y for x, y in zip(a, b, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny pipeline on the CPU")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import dataclasses

    import torch

    from registry.probe.generate import (
        GenSettings,
        device_info,
        free_memory,
        library_versions,
        prepare_pipeline,
    )
    from registry.probe.offline import build_pipeline

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    size = "tiny" if device == "cpu" else "sd15"
    dtype = torch.float16 if device == "cuda" else torch.float32
    res: dict[str, Any] = {"device": device_info(device), "versions": library_versions(), "size": size}
    log(f"device: {res['device']}")
    pipe = build_pipeline(size, seed=0, device=device, dtype=dtype)
    base = GenSettings(steps=args.steps if device == "cuda" else 4, guidance=7.0, batch_size=8, device=device,
                       noise_steps=5, dtype="float16" if dtype == torch.float16 else "float32")
    pipe = prepare_pipeline(pipe, base)
    seeds = [0, 1]
    notes: list[str] = []

    h1, _, s1, im1 = grid_hashes(pipe, base, seeds, notes)
    h1b, _, _, _ = grid_hashes(pipe, base, seeds, notes)
    res["repeat_same_batch"] = {"samples": len(h1), "agree": agree(h1, h1b), "seconds": s1}
    log(f"1. same grid, batch 8, twice: {agree(h1, h1b)} of {len(h1)} sample hashes agree")
    # the same samples, the same batch size, other partners and positions in the batch: the prompts in
    # reverse order, so every sample sits elsewhere in its batch
    hr, _, _, imr = grid_hashes(pipe, base, seeds, notes, prompts=PROMPTS[::-1])
    n_p, n_s = len(PROMPTS), len(seeds)
    back = [(n_p - 1 - i // n_s) * n_s + i % n_s for i in range(len(hr))]  # reversed grid -> original order
    hr = [hr[back[i]] for i in range(len(hr))]
    imr = [imr[back[i]] for i in range(len(imr))]
    res["same_batch_other_positions"] = {"agree": agree(h1, hr), "samples": len(h1), **pixel_difference(im1, imr)}
    log(f"1b. batch 8, other positions in the batch: {agree(h1, hr)} of {len(h1)} agree; "
        f"pixels {pixel_difference(im1, imr)}")

    if device == "cuda":
        free_memory()
        torch.cuda.reset_peak_memory_stats()
        resident = torch.cuda.memory_reserved()
    h2, _, _, im2 = grid_hashes(pipe, dataclasses.replace(base, batch_size=2), seeds, notes)
    res["batch_2_vs_8"] = {"agree": agree(h1, h2), "samples": len(h1), **pixel_difference(im1, im2)}
    log(f"2. batch 2 against batch 8: {agree(h1, h2)} of {len(h1)} sample hashes agree; "
        f"pixels {pixel_difference(im1, im2)}")
    h2b, _, _, _ = grid_hashes(pipe, dataclasses.replace(base, batch_size=2), seeds, notes)
    res["repeat_batch_2"] = {"agree": agree(h2, h2b), "samples": len(h2)}
    log(f"2b. batch 2, twice: {agree(h2, h2b)} of {len(h2)} agree")
    # the cap of check 4 (set_per_process_memory_fraction) bounds what the caching allocator reserves, so
    # it is set from reserved memory, not from the smaller allocated figure; taken before check 3
    peak2 = torch.cuda.max_memory_reserved() if device == "cuda" else 0

    from registry.probe.embed import make_embedder
    from registry.probe.offline import random_lora

    with tempfile.TemporaryDirectory() as d:
        lora = random_lora(pipe, Path(d) / "random.safetensors", rank=16)
        embedder = make_embedder("open_clip:ViT-B-32" if device == "cuda" else "pixel", device=device)
        n_prompts = 2 if device == "cuda" else 1
        pa = whole_probe(pipe, base, lora, embedder, [0, 1, 2, 3], n_prompts)
        pb = whole_probe(pipe, dataclasses.replace(base, batch_size=2), lora, embedder, [0, 1, 2, 3], n_prompts)
    ha = [x.sha256 for x in pa.samples]
    hb = [x.sha256 for x in pb.samples]
    res["figures_batch_8_vs_2"] = {"samples": len(ha), "hashes_agree": agree(ha, hb), **figure_changes(pa, pb),
                                   "summary_8": pa.summary, "summary_2": pb.summary}
    fc = res["figures_batch_8_vs_2"]
    log(f"3. whole probe at batch 8 vs 2: {len(ha)} samples, {fc['hashes_agree']} hashes agree; {fc['figures']} "
        f"figures, largest change {fc['largest_change']:.3g}, {fc['largest_share_of_interval']:.3g} of its "
        f"interval; same summary: {fc['same_summary']}")
    for r in fc["top"] + fc["top_share"]:
        log(f"   {r}")
    for x, y in zip(pa.summary, pb.summary, strict=False):
        if x != y:
            log(f"   summary at batch 8: {x}\n   summary at batch 2: {y}")
    del pa, pb, embedder
    if device == "cuda":
        free_memory()

    if device == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        cap = resident + 1.5 * (peak2 - resident)
        free_memory()
        torch.cuda.set_per_process_memory_fraction(cap / total)
        log(f"4. reserved at rest {resident / 2**30:.2f} GiB, batch-2 peak reserved {peak2 / 2**30:.2f} GiB; "
            f"allocator capped at {cap / 2**30:.2f} GiB; asking for batch 16")
        # what is left after the probe gives memory back, at each of its notes
        suffix = lambda: (f" [then allocated {torch.cuda.memory_allocated() / 2**30:.2f} GiB, "  # noqa: E731
                          f"reserved {torch.cuda.memory_reserved() / 2**30:.2f} GiB]")
        n0 = len(notes)
        try:
            h3, bs3, s3, _ = grid_hashes(pipe, dataclasses.replace(base, batch_size=16), seeds, notes, suffix=suffix)
            h2s = h2
            if bs3 != 2:
                h2s, _, _, _ = grid_hashes(pipe, dataclasses.replace(base, batch_size=bs3), seeds, notes)
            res["oom_halving"] = {"finished": True, "batch_used": bs3, "notes": notes[n0:], "seconds": s3,
                                  "agree_with_same_batch": agree(h3, h2s), "samples": len(h3),
                                  "cap_bytes": cap, "batch2_peak_bytes": peak2, "resident_bytes": resident}
            log(f"   finished at batch {bs3} after {len(notes) - n0} notes; {agree(h3, h2s)} of {len(h3)} hashes "
                f"agree with an uncapped run at batch {bs3}")
        except Exception as e:  # noqa: BLE001 - the finding is the failure itself
            res["oom_halving"] = {"finished": False, "error": f"{type(e).__name__}: {e}", "notes": notes[n0:]}
            log(f"   FAILED: {type(e).__name__}: {e}")
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
    out = args.out or (Path(os.environ["OUT"]) / "probe_gpu_checks.json" if os.environ.get("OUT") else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2, default=str))
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
