"""modelreg ls: list registered models, with filters."""

from __future__ import annotations

import click

from cli._app import format_option, no_truncate_option, read_registry, render_rows, skip_final_collection
from registry.archs import KINDS
from registry.listing import COLUMNS, SEVERITIES


@click.command("ls")
@no_truncate_option()
@format_option()
@click.option("--file-format", "file_format", help="Only this container format (safetensors, pickle, zip …).")
@click.option("--name", "name_glob", help="Only paths whose file name matches this glob (e.g. '*.safetensors').")
@click.option("--min-severity", type=click.Choice(SEVERITIES), help="Only models with a finding at or above this severity.")
@click.option("--kind", type=click.Choice([*KINDS, "adapter"], case_sensitive=False), help="Only this kind; 'adapter' = lora or lycoris.")
@click.option("--arch", help="Only this base architecture: sd1, sd2, sdxl (base or refiner), sdxl-base, sd3, flux1, wan, qwen-image … or unknown.")
@click.option("--trigger", "trigger", metavar="WORD", help="Only models whose trigger words contain WORD (case-insensitive).")
@click.option("--used-in", "used_in", metavar="IMAGE", help="Only models a traced image is attributed to (image path or SHA-256 prefix; see `modelreg trace`).")
@click.option("--base", "base_ref", metavar="REF", help="Only adapters whose metadata names the registered model REF as their base.")
@click.option("--min-eff-rank", type=float, help="Adapters whose mean module effective rank (energy) is at least this.")
@click.option("--max-eff-rank", type=float, help="Adapters whose mean module effective rank (energy) is at most this.")
@click.option("--min-norm", type=float, help="Adapters whose total update norm (Frobenius, all modules) is at least this.")
@click.option("--max-norm", type=float, help="Adapters whose total update norm is at most this.")
@click.option("--form", "forms", multiple=True, help="Adapters with modules of this form (lora, loha, lokr, ia3, glora, oft, boft, diff); repeatable.")
@click.option("--nonfinite", is_flag=True, help="Only files with NaN/Inf weights (adapter factors or checkpoint tensors).")
@click.option("--where", "where", help="Extra SQL condition on the `models` view, e.g. \"size > 1e9\".")
@click.option("--sort", type=click.Choice(["path", "size", "first_seen", "findings"]), default="path", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
def command(
    fmt: str,
    file_format: str | None,
    name_glob: str | None,
    min_severity: str | None,
    kind: str | None,
    arch: str | None,
    trigger: str | None,
    base_ref: str | None,
    where: str | None,
    sort: str,
    limit: int | None,
    min_eff_rank: float | None = None,
    max_eff_rank: float | None = None,
    min_norm: float | None = None,
    max_norm: float | None = None,
    forms: tuple[str, ...] = (),
    nonfinite: bool = False,
    used_in: str | None = None,
) -> None:
    """List registered models (one row per content; PATH is where it was last seen)."""
    from registry.listing import ListQuery, list_models

    skip_final_collection()

    query = ListQuery(
        file_format=file_format, name_glob=name_glob, min_severity=min_severity, kind=kind, arch=arch,
        trigger=trigger, used_in=used_in, base_ref=base_ref, min_eff_rank=min_eff_rank,
        max_eff_rank=max_eff_rank, min_norm=min_norm, max_norm=max_norm, forms=forms, nonfinite=nonfinite,
        where=where, sort=sort, limit=limit,
    )  # fmt: skip
    with read_registry() as con:
        rows = list_models(con, query).rows
    if fmt == "table":
        for r in rows:
            r["sha256"] = r["sha256"][:12]
    render_rows(rows, COLUMNS, fmt)
