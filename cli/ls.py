"""modelreg ls: list registered models, with filters."""

from __future__ import annotations

from typing import Any

import click

from cli._app import format_option, no_truncate_option, read_registry, render_rows
from registry.archs import KINDS

SEVERITIES = ["info", "low", "medium", "high", "critical"]
COLUMNS = ["sha256", "autov2", "name", "format", "kind", "arch", "size", "n_tensors", "n_findings", "max_severity", "path"]


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
    conds: list[str] = []
    params: list[Any] = []
    for col, op, val in [("mean_eff_rank", ">=", min_eff_rank), ("mean_eff_rank", "<=", max_eff_rank),
                         ("total_fro", ">=", min_norm), ("total_fro", "<=", max_norm)]:
        if val is not None:
            conds.append(f"sha256 IN (SELECT blob_sha256 FROM lora_summary WHERE {col} {op} ?)")
            params.append(val)
    if forms:
        conds.append("sha256 IN (SELECT blob_sha256 FROM lora_modules WHERE form IN (SELECT unnest(?)))")
        params.append(list(forms))
    if nonfinite:
        conds.append("sha256 IN (SELECT sha256 FROM model_weight_stats WHERE nonfinite > 0)")
    if file_format:
        conds.append("format = ?")
        params.append(file_format)
    if name_glob:
        conds.append("regexp_extract(path, '[^/]*$') GLOB ?")
        params.append(name_glob)
    if min_severity:
        conds.append("max_severity_rank >= ?")
        params.append(SEVERITIES.index(min_severity))
    if kind:
        kinds = ["lora", "lycoris"] if kind.lower() == "adapter" else [kind.lower()]
        conds.append("kind IN (SELECT unnest(?))")
        params.append(kinds)
    if arch:
        a = arch.lower()
        conds.append("(arch = ? OR arch LIKE ? OR arch = ?)")
        params += [a, f"{a}-%", f"other:{a}"]
    if trigger:
        conds.append(
            "sha256 IN (SELECT blob_sha256 FROM training_facts, unnest(trigger_words) AS t(w) "
            "WHERE contains(lower(w), lower(?)))"
        )
        params.append(trigger)
    if where:
        conds.append(f"({where})")
    order = {"path": "path", "size": "size DESC", "first_seen": "first_seen", "findings": "max_severity_rank DESC NULLS LAST, n_findings DESC"}[sort]
    import duckdb

    from registry.errors import UsageError

    with read_registry() as con:
        if used_in:
            from registry.trace.store import resolve_image

            conds.append("sha256 IN (SELECT model_sha256 FROM image_models WHERE image_sha256 = ?)")
            params.append(resolve_image(con, used_in))
        if base_ref:
            from registry.store.read import resolve_ref

            conds.append("sha256 IN (SELECT adapter_sha256 FROM base_links WHERE base_sha256 = ?)")
            params.append(resolve_ref(con, base_ref))
        sql = (
            "SELECT sha256, autov2, regexp_extract(path, '[^/]*$') AS name, format, size, n_tensors, n_findings, "
            "CASE max_severity_rank WHEN 0 THEN 'info' WHEN 1 THEN 'low' WHEN 2 THEN 'medium' WHEN 3 THEN 'high' "
            "WHEN 4 THEN 'critical' END AS max_severity, path, kind, arch || coalesce('/' || arch_variant, '') "
            "AS arch_label FROM models"
        )
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += f" ORDER BY {order}, sha256"
        if limit:
            sql += f" LIMIT {int(limit)}"
        try:
            cur = con.execute(sql, params)
        except duckdb.Error as e:
            raise UsageError(f"ls: bad filter: {str(e).splitlines()[0]}") from None
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["arch"] = r.pop("arch_label")
        if fmt == "table":
            r["sha256"] = r["sha256"][:12]
    render_rows(rows, COLUMNS, fmt)
