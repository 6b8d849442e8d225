"""One probe run: the LoRA-off grid (cached), the LoRA-on grid, embeddings, figures, summary, contact
sheet. Resumable (every finished batch is journaled) and deterministic (same inputs, device, software
and batches → the same sample hashes; on a GPU the batch size and order change the last bits of pixels).

Grids are journals ``grids/<key>.jsonl`` in the sample store, keyed by the model's content identity and
the generation settings (steps, guidance, size, scheduler, dtype, device, library versions); each line
is one finished batch, and each sample in it is keyed by (prompt text, negative prompt, seed). So the
LoRA-off samples of a base are generated once and reused by every later probe on that base with the
same settings, whatever the battery; an interrupted run picks up after its last finished batch.

The library never prints: progress and notes go through a :class:`Progress` the caller supplies.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from registry.errors import UsageError
from registry.probe import PROBE_VERSION
from registry.probe.battery import Battery, Prompt
from registry.probe.embed import Embedder
from registry.probe.metrics import Metric, MetricSettings, ProbeData, compute_metrics, pairwise_tiled
from registry.probe.samples import SampleStore, contact_sheet, decode_png, encode_png

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class Progress(Protocol):
    def stage(self, name: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def note(self, message: str) -> None: ...


class NullProgress:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        self.notes.append(message)


@dataclass
class ModelSource:
    """A model to generate with: what the user named, its content identity, and how to load it."""

    ref: str
    key: str  # "sha256:…" for a file, "tree-sha256:…" for a folder, or any stable identity
    load: Callable[[], Any] | None = None  # returns a ready pipeline; default: generate.load_pipeline(ref)


@dataclass
class ProbeRequest:
    base: ModelSource
    battery: Battery
    seeds: Sequence[int]
    embedder: Embedder
    adapter: Path | None = None  # a LoRA file (mode "lora")
    checkpoint: ModelSource | None = None  # a whole model to compare against the base (mode "checkpoint")
    settings: Any = None  # generate.GenSettings; None → defaults
    reference_dir: Path | None = None
    trigger_words: Sequence[str] = ()
    tags: Sequence[str] = ()
    metric_settings: MetricSettings = field(default_factory=MetricSettings)
    sheet_prompts: int = 48
    sheet_thumb: int = 128

    @property
    def mode(self) -> str:
        return "checkpoint" if self.checkpoint is not None else "lora"


@dataclass
class SampleRecord:
    arm: str
    prompt_id: str
    prompt: str
    seed: int
    sha256: str
    cond_noise: float | None
    batch_size: int
    cached: bool
    #: the batch the sample was generated in (:func:`batch_key`) and its place there, from 0
    batch_key: str | None = None
    batch_position: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class ProbeResult:
    config: dict[str, Any]
    versions: dict[str, str]
    device: dict[str, Any]
    timings: dict[str, float]
    samples: list[SampleRecord]
    metrics: list[Metric]
    summary: list[str]
    skipped: dict[str, str]
    notes: list[str]
    adapter: dict[str, Any] | None
    sheet_sha256: str | None
    embeddings: dict[str, np.ndarray]  # sample sha256 → vector (also cached in the store)
    started_at: str
    finished_at: str
    store_root: str

    def metric(self, name: str, group: str, arm: str) -> Metric | None:
        for m in self.metrics:
            if (m.name, m.group, m.arm) == (name, group, arm):
                return m
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "versions": self.versions,
            "device": self.device,
            "timings": self.timings,
            "samples": [s.as_dict() for s in self.samples],
            "metrics": [m.as_dict() for m in self.metrics],
            "summary": self.summary,
            "skipped": self.skipped,
            "notes": self.notes,
            "adapter": self.adapter,
            "sheet_sha256": self.sheet_sha256,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "store_root": self.store_root,
        }


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(obj: Any) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def tree_fingerprint(root: Path, store: SampleStore | None = None) -> str:
    """Content identity of a folder (a diffusers pipeline): SHA-256 over (relative path, SHA-256) of every
    file. File digests are remembered by (size, mtime) in the store, so a 7 GB base is read once."""
    root = Path(root).resolve()
    memo_path = store.root / "fingerprints.json" if store else None
    memo: dict[str, Any] = {}
    if memo_path and memo_path.exists():
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
    entries = []
    changed = False
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        st = p.stat()
        mkey = str(p)
        hit = memo.get(mkey)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            sha = hit[2]
        else:
            sha = file_sha256(p)
            memo[mkey] = [st.st_size, st.st_mtime_ns, sha]
            changed = True
        entries.append([p.relative_to(root).as_posix(), sha])
    if memo_path and changed:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(memo, sort_keys=True))
        os.replace(tmp, memo_path)
    return "tree-sha256:" + digest(entries)


def source_for(ref: str | Path, store: SampleStore, config: str | None = None, settings: Any = None) -> ModelSource:
    """A :class:`ModelSource` for a file, a folder or a Hub id in the local cache."""
    p = Path(ref)
    if p.is_file():
        key = "sha256:" + file_sha256(p)
    elif p.is_dir():
        key = tree_fingerprint(p, store)
    else:
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(str(ref), local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any failure means: not available offline
            raise UsageError(
                f"base {ref!r} is not a file, a folder or a Hub id in the local cache ({type(e).__name__})"
            ) from None
        key = tree_fingerprint(Path(local), store)

    def load() -> Any:
        from registry.probe.generate import GenSettings, load_pipeline

        return load_pipeline(ref, settings or GenSettings(), config=config)

    return ModelSource(ref=str(ref), key=key, load=load)


# -- grids ------------------------------------------------------------------------------------------


def job_key(prompt: str, negative: str, seed: int) -> str:
    return digest([prompt, negative, int(seed)])[:32]


def batch_key(grid: str, job_keys: Sequence[str]) -> str:
    """The batch of these jobs, in this order, in grid ``grid`` (one line of its journal; the LoRA-off and
    LoRA-on grids have the same job keys): on a GPU a sample's pixels depend on its batch, not only on its
    own inputs."""
    return digest([grid, list(job_keys)])[:16]


def _batch_entries(grid: str, jobs: list[dict[str, Any]], batch_size: int | None) -> list[dict[str, Any]]:
    """A journal line's jobs as grid entries: each with the line's batch size, batch key and its place."""
    key = batch_key(grid, [j["key"] for j in jobs])
    return [{**j, "batch_size": batch_size, "batch_key": key, "batch_position": i} for i, j in enumerate(jobs)]


class Grid:
    """The journal of one (model, settings) grid: job key → (sha256, cond noise, batch size, batch key and
    place in the batch)."""

    def __init__(self, store: SampleStore, key: str, header: dict[str, Any]) -> None:
        self.store = store
        self.key = key
        self.path = store.grid_path(key)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a torn last line from a kill: that batch is redone
                    for e in _batch_entries(key, rec.get("jobs", []), rec.get("batch_size")):
                        if store.has(e["sha256"]):
                            self.entries.setdefault(e["key"], e)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as fh:
                fh.write(canonical({"grid": header}) + "\n")

    def append(self, jobs: list[dict[str, Any]], batch_size: int, seconds: float) -> None:
        rec = {"jobs": jobs, "batch_size": batch_size, "seconds": round(seconds, 4),
               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(canonical(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for e in _batch_entries(self.key, jobs, batch_size):
            self.entries.setdefault(e["key"], e)


def _grid_header(model_key: str, settings: Any, pipe: Any, device: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    from registry.probe.generate import scheduler_record

    s = settings.as_dict()
    return {
        "model": model_key,
        "steps": s["steps"],
        "guidance": s["guidance"],
        "width": s["width"],
        "height": s["height"],
        "noise_steps": s["noise_steps"],
        "lora_scale": s["lora_scale"],
        "dtype": str(getattr(pipe, "dtype", s["dtype"])),
        "scheduler": scheduler_record(pipe),
        "device": {k: device.get(k) for k in ("device", "name")},
        "versions": {k: versions.get(k) for k in ("torch", "diffusers", "transformers", "peft")},
        "probe": PROBE_VERSION,
    }


def fill_grid(
    pipe: Any,
    grid: Grid,
    prompts: Sequence[Prompt],
    seeds: Sequence[int],
    negative: str,
    settings: Any,
    progress: Progress,
    arm: str,
) -> tuple[list[SampleRecord], int]:
    """Generate every (prompt, seed) missing from ``grid``; returns the arm's samples in grid order."""
    from concurrent.futures import ThreadPoolExecutor

    from registry.probe.generate import Job, run_jobs

    jobs = [Job(i, p.text, int(s)) for i, (p, s) in enumerate((p, s) for p in prompts for s in seeds)]
    keys = [job_key(j.prompt, negative, j.seed) for j in jobs]
    cached = {k for k in keys if k in grid.entries}
    missing = [j for j, k in zip(jobs, keys, strict=True) if k not in grid.entries]
    progress.stage(f"generate {arm}", len(jobs))
    progress.advance(len(jobs) - len(missing))
    bs_used = settings.batch_size
    if missing:
        pool = ThreadPoolExecutor(max_workers=4)  # PNG encoding and hashing overlap the next batch
        pending: list[tuple[list[Any], list[Future[str]], list[float | None], int, float]] = []
        t_last = [time.perf_counter()]

        def finish(item: tuple[list[Any], list[Future[str]], list[float | None], int, float]) -> None:
            batch, futures, noise, bs, seconds = item
            recs = [
                {"key": job_key(j.prompt, negative, j.seed), "sha256": f.result(), "cond_noise": n}
                for j, f, n in zip(batch, futures, noise, strict=True)
            ]
            grid.append(recs, bs, seconds)
            progress.advance(len(batch))

        def done(batch: Sequence[Any], images: np.ndarray, noise: np.ndarray | None, bs: int) -> None:
            now = time.perf_counter()
            seconds, t_last[0] = now - t_last[0], now
            values: list[float | None] = (
                [None] * len(batch) if noise is None else [round(float(x), 6) for x in noise]
            )
            futures = [pool.submit(_store_png, grid.store, im) for im in images]
            pending.append((list(batch), futures, values, bs, seconds))
            while len(pending) > 1:  # one batch's PNGs are written while the device works on the next
                finish(pending.pop(0))

        try:
            bs_used = run_jobs(pipe, missing, settings, negative, done, note=progress.note)
            while pending:
                finish(pending.pop(0))
        finally:
            pool.shutdown(wait=True)
    out = []
    for j, k in zip(jobs, keys, strict=True):
        e = grid.entries[k]
        p = prompts[j.index // len(seeds)]
        out.append(SampleRecord(arm, p.id, p.text, j.seed, e["sha256"], e.get("cond_noise"),
                                int(e.get("batch_size") or bs_used), k in cached,
                                e.get("batch_key"), e.get("batch_position")))
    return out, bs_used


def _store_png(store: SampleStore, img: np.ndarray) -> str:
    return store.put_png(encode_png(img))


# -- the run ----------------------------------------------------------------------------------------


def _reference_images(ref_dir: Path) -> list[tuple[str, np.ndarray]]:
    from PIL import Image, UnidentifiedImageError

    if not ref_dir.is_dir():
        raise UsageError(f"--reference {ref_dir}: not a folder")
    out = []
    for p in sorted(ref_dir.rglob("*")):
        if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        data = p.read_bytes()
        try:
            import io

            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError):
            continue
        out.append((hashlib.sha256(data).hexdigest(), arr))
    if not out:
        raise UsageError(f"--reference {ref_dir}: no readable images ({', '.join(IMAGE_SUFFIXES)})")
    return out


def _embed_all(
    store: SampleStore, embedder: Embedder, shas: Sequence[str], progress: Progress, batch: int = 64
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    todo = []
    for s in dict.fromkeys(shas):
        v = store.get_embedding(embedder.key, s)
        if v is None:
            todo.append(s)
        else:
            out[s] = v
    progress.stage("embed", len(out) + len(todo))
    progress.advance(len(out))
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        vecs = embedder.embed_images([store.get(s) for s in chunk])
        for s, v in zip(chunk, vecs, strict=True):
            store.put_embedding(embedder.key, s, v)
            out[s] = np.asarray(v, dtype=np.float32)
        progress.advance(len(chunk))
    return out


def _load(source: ModelSource, settings: Any) -> Any:
    from registry.probe.generate import load_pipeline, prepare_pipeline

    if source.load is not None:
        return prepare_pipeline(source.load(), settings)
    return load_pipeline(source.ref, settings)


def run_probe(request: ProbeRequest, store: SampleStore, progress: Progress | None = None) -> ProbeResult:
    """Run (or resume) one probe and return everything it measured."""
    from registry.probe.battery import expand
    from registry.probe.generate import (
        GenSettings,
        attach_adapter,
        device_info,
        library_versions,
        resolve_device,
    )
    from registry.probe.summary import summarize

    sink: Progress = progress or NullProgress()
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        sink.note(msg)

    class _P:
        def stage(self, name: str, total: int) -> None:
            sink.stage(name, total)

        def advance(self, n: int = 1) -> None:
            sink.advance(n)

        def note(self, message: str) -> None:
            note(message)

    prog = _P()
    settings = request.settings or GenSettings()
    if len(request.seeds) < 2:
        raise UsageError("the probe needs at least 2 seeds per prompt (seed collapse compares seeds)")
    if len(set(request.seeds)) != len(request.seeds):
        raise UsageError("seeds must be distinct")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    battery = expand(request.battery, request.trigger_words, request.tags)
    prompts = list(battery.prompts)
    negative = battery.negative_prompt
    versions = library_versions()
    device = device_info(resolve_device(settings.device))

    adapter_key = None
    if request.mode == "lora":
        if request.adapter is None:
            raise UsageError("nothing to probe: give an adapter file or a checkpoint")
        adapter_key = "sha256:" + file_sha256(Path(request.adapter))

    from registry.probe.generate import free_memory

    # the base; in lora mode the adapter is attached (and proved to take effect) before anything is
    # generated, then disabled for the LoRA-off grid: PEFT's disabled layers compute the base layer alone
    t = time.perf_counter()
    pipe = _load(request.base, settings)
    timings["load_base"] = time.perf_counter() - t
    off_header = _grid_header(request.base.key, settings, pipe, device, versions)
    adapter_report = None
    if request.mode == "lora":
        assert request.adapter is not None and adapter_key is not None
        t = time.perf_counter()
        report = attach_adapter(pipe, Path(request.adapter), scale=settings.lora_scale)
        for w in report.warnings:
            note(w)
        adapter_report = report.as_dict()
        timings["load_adapter"] = time.perf_counter() - t
        pipe.disable_lora()
    off_grid = Grid(store, digest(off_header), off_header)
    t = time.perf_counter()
    off, _ = fill_grid(pipe, off_grid, prompts, request.seeds, negative, settings, prog, "off")
    timings["generate_off"] = time.perf_counter() - t

    if request.mode == "lora":
        pipe.enable_lora()
        on_key = f"{request.base.key}+lora:{adapter_key}"
    else:
        assert request.checkpoint is not None
        del pipe
        free_memory()
        t = time.perf_counter()
        pipe = _load(request.checkpoint, settings)
        timings["load_checkpoint"] = time.perf_counter() - t
        on_key = request.checkpoint.key
    on_header = _grid_header(on_key, settings, pipe, device, versions)
    on_grid = Grid(store, digest(on_header), on_header)
    t = time.perf_counter()
    on, _ = fill_grid(pipe, on_grid, prompts, request.seeds, negative, settings, prog, "on")
    timings["generate_on"] = time.perf_counter() - t
    if request.mode == "lora":
        from contextlib import suppress

        with suppress(Exception):  # a caller-owned pipeline is left as it was found
            pipe.delete_adapters(["probe"])
    del pipe
    free_memory()

    # embeddings, pixel distances, figures
    t = time.perf_counter()
    emb_map = _embed_all(store, request.embedder, [s.sha256 for s in off + on], prog)
    texts = request.embedder.embed_texts([p.fidelity_text or p.text for p in prompts])
    ref = None
    ref_shas: list[str] = []
    if request.reference_dir is not None:
        refs = _reference_images(Path(request.reference_dir))
        ref_shas = [s for s, _ in refs]
        ref = request.embedder.embed_images([a for _, a in refs])
    timings["embed"] = time.perf_counter() - t

    t = time.perf_counter()
    n_p, n_s = len(prompts), len(request.seeds)
    emb = {a: np.stack([emb_map[s.sha256] for s in recs]).reshape(n_p, n_s, -1) for a, recs in (("off", off), ("on", on))}
    tiles: dict[str, np.ndarray] = {}
    prog.stage("pixel distances", 2 * n_p)
    for a, recs in (("off", off), ("on", on)):
        mats = []
        for p in range(n_p):
            imgs = [store.get(r.sha256) for r in recs[p * n_s : (p + 1) * n_s]]
            mats.append(pairwise_tiled(imgs))
            prog.advance(1)
        tiles[a] = np.stack(mats)
    noise_vals = {a: [r.cond_noise for r in recs] for a, recs in (("off", off), ("on", on))}
    has_noise = all(v is not None for vals in noise_vals.values() for v in vals)
    index = {p.id: i for i, p in enumerate(prompts)}
    data = ProbeData(
        prompt_ids=[p.id for p in prompts],
        categories=[p.category for p in prompts],
        is_auto=[p.source == "auto" for p in prompts],
        pairs={i: index[p.pair] for i, p in enumerate(prompts) if p.pair and p.pair in index},
        emb=emb,
        tile_dist=tiles,
        text=texts,
        reference=ref,
        cond_noise={a: np.asarray(v, dtype=np.float64).reshape(n_p, n_s) for a, v in noise_vals.items()} if has_noise else None,
    )
    metrics = compute_metrics(data, request.metric_settings)
    timings["metrics"] = time.perf_counter() - t
    skipped: dict[str, str] = {}
    if texts is None:
        skipped["fidelity"] = f"the embedder {request.embedder.key} has no text tower"
    if not has_noise:
        skipped["cond_noise"] = "the base does not use classifier-free guidance at these settings (guidance ≤ 1 or a guidance-distilled model)"
    if ref is None:
        skipped["reference"] = "no --reference folder given"
    if not data.pairs:
        skipped["trigger"] = "no trigger words known for this model"

    # contact sheet
    t = time.perf_counter()
    rows = []
    for p in range(min(n_p, request.sheet_prompts)):
        for a, recs in (("off", off), ("on", on)):
            rows.append((f"{prompts[p].text}  [{a}]", [store.get(r.sha256) for r in recs[p * n_s : (p + 1) * n_s]]))
    sheet_sha = store.put(contact_sheet(rows, thumb=request.sheet_thumb)) if rows else None
    timings["sheet"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    timings = {k: round(v, 4) for k, v in timings.items()}

    config = {
        "mode": request.mode,
        "probe_version": PROBE_VERSION,
        "base": {"ref": request.base.ref, "key": request.base.key},
        "adapter": {"ref": str(request.adapter), "key": adapter_key} if request.mode == "lora" else None,
        "checkpoint": {"ref": request.checkpoint.ref, "key": request.checkpoint.key} if request.checkpoint else None,
        "battery": {"name": battery.name, "parts": list(battery.parts), "version": battery.version,
                    "negative_prompt": negative},
        "prompts": [p.as_dict() for p in prompts],
        "seeds": [int(s) for s in request.seeds],
        "trigger_words": list(request.trigger_words),
        "tags": list(request.tags),
        "settings": settings.as_dict(),
        "grids": {"off": off_grid.key, "on": on_grid.key},
        "scheduler": off_header["scheduler"],
        "embedder": request.embedder.describe(),
        "reference": {"dir": str(request.reference_dir), "images": ref_shas} if request.reference_dir else None,
        "metrics": {"n_boot": request.metric_settings.n_boot, "seed": request.metric_settings.seed,
                    "level": request.metric_settings.level, "cos_threshold": request.metric_settings.cos_threshold,
                    "pixel_threshold": request.metric_settings.pixel_threshold},
    }
    samples = off + on
    return ProbeResult(
        config=config,
        versions=versions,
        device=device,
        timings=timings,
        samples=samples,
        metrics=metrics,
        summary=summarize(metrics, skipped, mode=request.mode),
        skipped=skipped,
        notes=notes,
        adapter=adapter_report,
        sheet_sha256=sheet_sha,
        embeddings={s.sha256: emb_map[s.sha256] for s in samples},
        started_at=started,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        store_root=str(store.root),
    )


def load_sample(store: SampleStore, sha256: str) -> np.ndarray:
    return decode_png(store.sample_path(sha256).read_bytes())
