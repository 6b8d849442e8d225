"""modelreg probe REF --base BASE: what a LoRA (or a fine-tuned checkpoint) does to generation."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cli._app import dumps, echo_err, get_app, read_registry, write_registry

DEFAULT_EMBEDDER = "open_clip:ViT-B-32:openai"


def parse_seeds(text: str) -> list[int]:
    """``"0-3"`` → [0, 1, 2, 3]; ``"1,5,9-10"`` → [1, 5, 9, 10]; seeds are non-negative integers."""
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            a, sep, b = part.partition("-")
            lo, hi = int(a), int(b) if sep else int(a)
            if lo < 0 or hi < lo:
                raise ValueError(part)
            out.extend(range(lo, hi + 1))
    except ValueError:
        raise click.BadParameter(f"{text!r}: use non-negative integers and ranges like 0-7,12", param_hint="--seeds") from None
    if len(set(out)) != len(out):
        raise click.BadParameter(f"{text!r} repeats a seed", param_hint="--seeds")
    return out


class _Bars:
    """Progress bars with ETA on stderr (only on a terminal); notes always go to stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def stage(self, name: str, total: int) -> None:
        self.close()
        if self.enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=name, unit="img" if name.startswith(("generate", "embed")) else "it",
                            file=sys.stderr, dynamic_ncols=True, leave=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(f"modelreg: {message}", file=sys.stderr)
        else:
            echo_err(f"modelreg: {message}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _resolve_model(ref: str) -> tuple[str | None, str | None]:
    """(blob sha256, a path that holds it) when ``ref`` names a registered model, else (None, None)."""
    from registry.errors import NotFound
    from registry.store.read import latest_path, resolve_ref

    app = get_app()
    if not app.registry_path().exists():
        return None, None
    with read_registry(app) as con:
        try:
            sha = resolve_ref(con, ref)
        except NotFound:
            return None, None
        return sha, latest_path(con, sha)


@click.command("probe")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option("--base", "bases", required=True, multiple=True,
              help="The base: a registered checkpoint, a diffusers folder, a .safetensors checkpoint, or a Hub id in the local cache (repeatable with --ray).")
@click.option("--base-config", help="For a single-file base: a diffusers folder or cached Hub id with its configuration.")
@click.option("--checkpoint", is_flag=True, help="REF is a fine-tuned checkpoint: swap the whole model instead of toggling an adapter.")
@click.option("--battery", "batteries", multiple=True, default=("default",), show_default=True,
              help="Built-in battery (people, characters, objects, default) or a JSON/YAML file; repeatable.")
@click.option("--seeds", "seeds_text", default="0-3", show_default=True, help="Seeds per prompt: '0-7', '1,5,9'.")
@click.option("--trigger", "triggers", multiple=True, help="Trigger word(s); default: those in the file's training metadata.")
@click.option("--no-auto-prompts", is_flag=True, help="Do not add trigger-word and top-tag prompts.")
@click.option("--embedder", default=DEFAULT_EMBEDDER, show_default=True,
              help="open_clip:ARCH[:PRETRAINED_TAG|:WEIGHTS_FILE] (tags must be in the local cache) or pixel[:N].")
@click.option("--reference", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of reference images (a person's photos, an artist's works): how close samples come to them.")
@click.option("--steps", type=click.IntRange(1, 500), default=25, show_default=True)
@click.option("--guidance", type=float, default=7.0, show_default=True, help="Classifier-free guidance scale.")
@click.option("--width", type=click.IntRange(8, 4096), help="Image width (default: the base's native size).")
@click.option("--height", type=click.IntRange(8, 4096), help="Image height (default: the base's native size).")
@click.option("--scheduler", help="ddim, euler, euler_a, dpm++2m, pndm, lms, unipc (default: the base's own).")
@click.option("--batch-size", type=click.IntRange(1, 256), default=8, show_default=True, help="Images per batch (halved on out-of-memory).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N, mps.")
@click.option("--lora-scale", type=float, default=1.0, show_default=True)
@click.option("--bootstrap", "n_boot", type=click.IntRange(0, 100000), default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), help="Sample store (default: 'probe' beside the registry).")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), help="Also copy the contact sheet PNG here.")
@click.option("--progress/--no-progress", default=None, help="Progress bars on stderr (default: when stderr is a terminal).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[auto|local|ADDRESS]",
              help="Run every REF x --base probe as a Ray task (the 'ray' extra): 'auto' joins the running cluster, "
              "ADDRESS is host:port or ray://host:port, 'local' starts one here. The sample store (--store) must be a "
              "folder every node sees. The runs are recorded here, by this process.")
@click.option("--ray-gpus-per-probe", type=click.FloatRange(0, None), default=1.0, show_default=True,
              help="With --ray: GPUs each probe task reserves (0: CPU tasks, e.g. with --device cpu).")
def command(refs: tuple[str, ...], bases: tuple[str, ...], base_config: str | None, checkpoint: bool, batteries: tuple[str, ...], seeds_text: str,
            triggers: tuple[str, ...], no_auto_prompts: bool, embedder: str, reference: Path | None, steps: int,
            guidance: float, width: int | None, height: int | None, scheduler: str | None, batch_size: int, dtype: str,
            device: str, lora_scale: float, n_boot: int, store: Path | None, sheet: Path | None, progress: bool | None,
            fmt: str, ray_address: str | None = None, ray_gpus_per_probe: float = 1.0) -> None:
    """Generate with REF off and on over a prompt battery and measure how narrowly it concentrates.

    For each prompt and seed the base generates with the LoRA off and on from identical per-image
    generators; samples are PNGs in a content-addressed store beside the registry, and the LoRA-off grid
    is reused by every later probe on the same base and settings. Figures (prompt dependence at a fixed
    seed, seed dependence, attraction toward a common look, Vendi diversity, seed collapse, prompt
    fidelity, conditional-noise magnitude, trigger dependence, reference similarity) come with 95 %
    bootstrap intervals over prompts (and seeds) and a summary in words; the
    run, its samples, embeddings and figures are recorded in the registry (see `modelreg show REF`).
    An interrupted probe resumes where it stopped. Nothing is downloaded. Before anything loads, what the
    registry knows of REF and the base refuses embeddings, LyCORIS forms diffusers cannot load and adapters
    for another architecture, in one line.

    Needs the probe extra: pip install 'modelreg[probe]'.
    """
    from registry.errors import UsageError
    from registry.probe import require_extra

    require_extra()
    if ray_address is None and (len(refs) != 1 or len(bases) != 1):
        raise UsageError("several REFs or --base values need --ray (one probe per REF and base)")
    if ray_address is not None:
        from cli._ray import check_address
        from registry.extras import require

        check_address(ray_address)
        require("ray", "probe --ray")
        if sheet is not None and len(refs) * len(bases) > 1:
            raise UsageError("--sheet names one file: with several probes, read each run's sheet from the store")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    app = get_app()
    params = ProbeParams(
        checkpoint=checkpoint, base_config=base_config, batteries=batteries, seeds=parse_seeds(seeds_text),
        triggers=triggers, no_auto_prompts=no_auto_prompts, embedder=embedder, reference=reference, steps=steps,
        guidance=guidance, width=width, height=height, scheduler=scheduler, batch_size=batch_size, dtype=dtype,
        device=device, lora_scale=lora_scale, n_boot=n_boot,
    )
    # every pair resolved and pre-flighted before any task starts or anything heavy loads
    pairs = [_prepare(app, ref, base, checkpoint) for base in bases for ref in refs]
    store_root = store or app.registry_path().parent / "probe"
    if ray_address is None:
        sha, path, base_sha, base_ref = pairs[0]
        bars = _Bars(sys.stderr.isatty() if progress is None else progress)
        try:
            result = execute(path, base_ref, params, store_root, bars)
        finally:
            bars.close()
        _finish(app, sha, base_sha, result, store_root, sheet, fmt)
        return

    from registry.distributed import map_grouped

    jobs = [(base_ref, (path, base_ref, params, store_root)) for _, path, _, base_ref in pairs]
    echo_err(f"modelreg: ray: {len(jobs)} probes on {len(bases)} bases, {ray_gpus_per_probe:g} GPU each")
    failed = 0
    outs: list[dict[str, Any]] = []
    for i, result, err in map_grouped(probe_task, jobs, address=ray_address, num_gpus=ray_gpus_per_probe):
        sha, path, base_sha, base_ref = pairs[i]
        if err is not None:
            failed += 1
            first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            echo_err(f"modelreg: probe of {path} on {base_ref} failed: {first}")
            continue
        out = _finish(app, sha, base_sha, result, store_root, sheet, fmt if fmt == "text" else None)
        outs.append(out)
    if fmt == "json":
        click.echo(dumps(outs, indent=2))
    if failed:
        raise click.exceptions.Exit(3)


@dataclass(frozen=True)
class ProbeParams:
    """The probe options that shape a run (everything but where the model and base are)."""

    checkpoint: bool
    base_config: str | None
    batteries: tuple[str, ...]
    seeds: list[int]
    triggers: tuple[str, ...]
    no_auto_prompts: bool
    embedder: str
    reference: Path | None
    steps: int
    guidance: float
    width: int | None
    height: int | None
    scheduler: str | None
    batch_size: int
    dtype: str
    device: str
    lora_scale: float
    n_boot: int


def _prepare(app: Any, ref: str, base: str, checkpoint: bool) -> tuple[str, str, str | None, str]:
    """(model sha256, its path, base sha256 or None, the base as the run names it): the model registered
    (now, when it is a file not yet registered) and both pre-flighted against what the registry knows."""
    from registry.errors import UsageError

    sha, path = _resolve_model(ref)
    if sha is None:
        p = Path(ref)
        if not p.exists():
            raise UsageError(f"{ref!r} is neither a registered model nor a file")
        from registry.scan import scan

        echo_err(f"modelreg: registering {p} first")
        scan([str(p)], app.registry_path(), on_wait=echo_err)
        sha, path = _resolve_model(str(p.resolve()))
        if sha is None:
            raise UsageError(f"{ref}: could not register it")
    if path is None or not Path(path).exists():
        raise UsageError(f"model {sha[:16]} is registered but no longer found at {path}; scan its new place first")
    base_sha, base_path = _resolve_model(base)
    base_ref = base_path if base_sha and base_path and Path(base_path).exists() else base

    # pre-flight, before anything heavy is imported or loaded: what the registry knows of both
    from registry.probe import preflight

    with read_registry(app) as con:
        known = preflight.from_registry(con, sha)
        base_known = preflight.describe_base(con, base_sha, base_ref)
    preflight.check(known, Path(path), base_known, base_ref, checkpoint)
    return sha, path, base_sha, base_ref


def execute(path: str, base_ref: str, o: ProbeParams, store_root: Path, bars: Any) -> Any:
    """Load, generate, embed and measure one probe (here, or in a Ray task): a ProbeResult."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    dlog.set_verbosity_error()  # the probe checks adapter matches itself; diffusers' "no keys" logs are noise
    dlog.disable_progress_bar()  # loading bars; the probe shows its own
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()

    from registry.probe.battery import combine, hints_from_training, load_battery, top_tags
    from registry.probe.embed import make_embedder
    from registry.probe.generate import GenSettings, resolve_device
    from registry.probe.metrics import MetricSettings
    from registry.probe.run import ProbeRequest, run_probe, source_for
    from registry.probe.samples import SampleStore

    settings = GenSettings(steps=o.steps, guidance=o.guidance, width=o.width, height=o.height, batch_size=o.batch_size,
                           dtype=o.dtype, device=o.device, scheduler=o.scheduler, lora_scale=o.lora_scale)
    sample_store = SampleStore(store_root)
    # the embedder before the base: missing weights are one line, before minutes of loading
    emb = make_embedder(o.embedder, device=resolve_device(o.device))
    base_source = source_for(base_ref, sample_store, config=o.base_config, settings=settings)

    words: list[str] = list(o.triggers)
    tags: list[str] = []
    if not o.checkpoint and not o.no_auto_prompts:
        from registry.files.safetensors import read_header
        from registry.training import parse_training_metadata

        header = read_header(Path(path))
        facts, _ = parse_training_metadata(header.metadata or {})
        auto_words, _ = hints_from_training(facts)
        words = words or auto_words
        tags = top_tags(facts.tag_frequency, n=12, exclude=words)
        if words:
            bars.note(f"trigger words: {', '.join(words)}" + ("" if o.triggers else " (from the file's training metadata)"))
    battery = combine([load_battery(b) for b in o.batteries])
    request = ProbeRequest(
        base=base_source,
        battery=battery,
        seeds=o.seeds,
        embedder=emb,
        adapter=None if o.checkpoint else Path(path),
        checkpoint=source_for(path, sample_store, config=o.base_config, settings=settings) if o.checkpoint else None,
        settings=settings,
        reference_dir=o.reference,
        trigger_words=[] if o.no_auto_prompts else words,
        tags=[] if o.no_auto_prompts else tags,
        metric_settings=MetricSettings(n_boot=o.n_boot),
    )
    return run_probe(request, sample_store, bars)


def probe_task(path: str, base_ref: str, o: ProbeParams, store_root: Path) -> Any:
    """One probe as a Ray task (``probe --ray``): no network, no bars; the driver records the result."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    return execute(path, base_ref, o, store_root, _Bars(False))


def _finish(app: Any, sha: str, base_sha: str | None, result: Any, store_root: Path, sheet: Path | None,
            fmt: str | None) -> dict[str, Any]:
    """Record the run; print it as text (``fmt`` text), as JSON (json), or not at all (None); its dict."""
    from registry.probe.record import record_run, sample_path

    with write_registry(app) as con:
        run_id = record_run(con, sha, result, base_sha256=base_sha)
    sheet_path = sample_path(store_root, result.sheet_sha256) if result.sheet_sha256 else None
    if sheet and sheet_path:
        sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet.write_bytes(sheet_path.read_bytes())
    out = result.as_dict()
    out["run_id"] = run_id
    out["model_sha256"] = sha
    out["sheet_path"] = str(sheet_path) if sheet_path else None
    if fmt == "json":
        click.echo(dumps(out, indent=2))
    elif fmt == "text":
        _print_text(run_id, sha, result, sheet_path)
    return out


def _print_text(run_id: int, sha: str, result: Any, sheet_path: Path | None) -> None:
    from registry.sections.probe import HEADLINE, _fmt

    n_new = sum(1 for s in result.samples if not s.cached)
    click.echo(f"probe run #{run_id} of {sha[:16]}: {len(result.samples)} samples ({n_new} generated now), "
               f"{result.timings.get('total', 0):.1f}s on {result.device.get('name')}")
    by = {(m.name, m.group, m.arm): m.as_dict() for m in result.metrics}
    for name, group, arms, label in HEADLINE:
        if any((name, group, a) in by for a in arms):
            click.echo(f"  {label}: " + ", ".join(f"{a} {_fmt(by.get((name, group, a)))}" for a in arms))
    for line in result.summary:
        click.echo(f"- {line}")
    if sheet_path:
        click.echo(f"contact sheet: {sheet_path}")
