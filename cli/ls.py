"""modelreg ls: list registered models, with filters."""

from __future__ import annotations

from typing import Any

import click

from cli._app import format_option, read_registry, render_rows

SEVERITIES = ["info", "low", "medium", "high", "critical"]
COLUMNS = ["sha256", "autov2", "name", "format", "size", "n_tensors", "n_findings", "max_severity", "path"]


@click.command("ls")
@format_option()
@click.option("--file-format", "file_format", help="Only this container format (safetensors, pickle, zip …).")
@click.option("--name", "name_glob", help="Only paths whose file name matches this glob (e.g. '*.safetensors').")
@click.option("--min-severity", type=click.Choice(SEVERITIES), help="Only models with a finding at or above this severity.")
@click.option("--where", "where", help="Extra SQL condition on the `models` view, e.g. \"size > 1e9\".")
@click.option("--sort", type=click.Choice(["path", "size", "first_seen", "findings"]), default="path", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
def command(
    fmt: str,
    file_format: str | None,
    name_glob: str | None,
    min_severity: str | None,
    where: str | None,
    sort: str,
    limit: int | None,
) -> None:
    """List registered models (one row per content; PATH is where it was last seen)."""
    conds: list[str] = []
    params: list[Any] = []
    if file_format:
        conds.append("format = ?")
        params.append(file_format)
    if name_glob:
        conds.append("regexp_extract(path, '[^/]*$') GLOB ?")
        params.append(name_glob)
    if min_severity:
        conds.append("max_severity_rank >= ?")
        params.append(SEVERITIES.index(min_severity))
    if where:
        conds.append(f"({where})")
    order = {"path": "path", "size": "size DESC", "first_seen": "first_seen", "findings": "max_severity_rank DESC NULLS LAST, n_findings DESC"}[sort]
    sql = (
        "SELECT sha256, autov2, regexp_extract(path, '[^/]*$') AS name, format, size, n_tensors, n_findings, "
        "CASE max_severity_rank WHEN 0 THEN 'info' WHEN 1 THEN 'low' WHEN 2 THEN 'medium' WHEN 3 THEN 'high' "
        "WHEN 4 THEN 'critical' END AS max_severity, path FROM models"
    )
    if conds:
        sql += " WHERE " + " AND ".join(conds)
    sql += f" ORDER BY {order}, sha256"
    if limit:
        sql += f" LIMIT {int(limit)}"
    import duckdb

    from registry.errors import UsageError

    with read_registry() as con:
        try:
            cur = con.execute(sql, params)
        except duckdb.Error as e:
            raise UsageError(f"ls: bad filter: {str(e).splitlines()[0]}") from None
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    if fmt == "table":
        for r in rows:
            r["sha256"] = r["sha256"][:12]
    render_rows(rows, COLUMNS, fmt)
