"""modelreg probe REF --base BASE: what a LoRA (or a fine-tuned checkpoint) does to generation."""

from __future__ import annotations

import os
import sys
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
@click.argument("ref")
@click.option("--base", "base", required=True,
              help="The base: a registered checkpoint, a diffusers folder, a .safetensors checkpoint, or a Hub id in the local cache.")
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
def command(ref: str, base: str, base_config: str | None, checkpoint: bool, batteries: tuple[str, ...], seeds_text: str,
            triggers: tuple[str, ...], no_auto_prompts: bool, embedder: str, reference: Path | None, steps: int,
            guidance: float, width: int | None, height: int | None, scheduler: str | None, batch_size: int, dtype: str,
            device: str, lora_scale: float, n_boot: int, store: Path | None, sheet: Path | None, progress: bool | None,
            fmt: str) -> None:
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
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    app = get_app()
    seeds = parse_seeds(seeds_text)

    # the probed model: registered (or registered now), and a path to it
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
    from registry.probe.record import record_run, sample_path
    from registry.probe.run import ProbeRequest, run_probe, source_for
    from registry.probe.samples import SampleStore

    settings = GenSettings(steps=steps, guidance=guidance, width=width, height=height, batch_size=batch_size,
                           dtype=dtype, device=device, scheduler=scheduler, lora_scale=lora_scale)
    store_root = store or app.registry_path().parent / "probe"
    sample_store = SampleStore(store_root)
    # the embedder before the base: missing weights are one line, before minutes of loading
    emb = make_embedder(embedder, device=resolve_device(device))
    base_source = source_for(base_ref, sample_store, config=base_config, settings=settings)

    words: list[str] = list(triggers)
    tags: list[str] = []
    if not checkpoint and not no_auto_prompts:
        from registry.files.safetensors import read_header
        from registry.training import parse_training_metadata

        header = read_header(Path(path))
        facts, _ = parse_training_metadata(header.metadata or {})
        auto_words, _ = hints_from_training(facts)
        words = words or auto_words
        tags = top_tags(facts.tag_frequency, n=12, exclude=words)
        if words:
            echo_err(f"modelreg: trigger words: {', '.join(words)}" + ("" if triggers else " (from the file's training metadata)"))
    battery = combine([load_battery(b) for b in batteries])
    request = ProbeRequest(
        base=base_source,
        battery=battery,
        seeds=seeds,
        embedder=emb,
        adapter=None if checkpoint else Path(path),
        checkpoint=source_for(path, sample_store, config=base_config, settings=settings) if checkpoint else None,
        settings=settings,
        reference_dir=reference,
        trigger_words=[] if no_auto_prompts else words,
        tags=[] if no_auto_prompts else tags,
        metric_settings=MetricSettings(n_boot=n_boot),
    )
    bars = _Bars(sys.stderr.isatty() if progress is None else progress)
    try:
        result = run_probe(request, sample_store, bars)
    finally:
        bars.close()
    with write_registry(app) as con:
        run_id = record_run(con, sha, result, base_sha256=base_sha)
    sheet_path = sample_path(store_root, result.sheet_sha256) if result.sheet_sha256 else None
    if sheet and sheet_path:
        sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet.write_bytes(sheet_path.read_bytes())
    if fmt == "json":
        out = result.as_dict()
        out["run_id"] = run_id
        out["model_sha256"] = sha
        out["sheet_path"] = str(sheet_path) if sheet_path else None
        click.echo(dumps(out, indent=2))
        return
    _print_text(run_id, sha, result, sheet_path)


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
