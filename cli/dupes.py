"""modelreg dupes [PATH...]: the same model kept more than once."""

from __future__ import annotations

from pathlib import Path

import click

from cli._app import dumps, echo_err, no_truncate_option, read_registry, render_rows

COLUMNS = ["group", "kind", "key", "size", "reclaimable", "name", "sidecar_names", "path"]


@click.command("dupes")
@no_truncate_option()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format.")
def command(paths: tuple[Path, ...], fmt: str) -> None:
    """Find duplicates among the scanned files of this host (under PATHs, if given).

    Byte-identical files (same SHA-256) with the bytes a user could reclaim by keeping one copy (hard
    links share their bytes and are counted once); files with the same tensors and different metadata
    (same AutoV3, the tensor-data digest), with the metadata keys that differ; and renamed copies, with
    the model name each copy's sidecar claims. Reads the registry: scan or audit the folders first. Files
    changed or gone since their scan are left out and counted.
    """
    import os

    from registry.dupes import find_dupes
    from registry.errors import UsageError

    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    with read_registry() as con:
        report = find_dupes(con, [str(p) for p in paths])
    if fmt == "json":
        click.echo(
            dumps(
                {
                    "files": report.files,
                    "stale": report.stale,
                    "reclaimable_bytes": report.reclaimable,
                    "groups": [g.as_dict() for g in report.groups],
                },
                indent=2,
            )
        )
    else:
        rows = []
        for i, g in enumerate(report.groups, 1):
            for j, c in enumerate(g.copies):
                names = "; ".join(f"{f}: {n!r}" if n else f for _, f, n in c.sidecars)
                rows.append(
                    {
                        "group": i,
                        "kind": g.kind + (" (renamed)" if g.renamed else "") if j == 0 else "",
                        "key": g.key[:12] if j == 0 else "",
                        "size": c.size,
                        "reclaimable": g.reclaimable if j == 0 else "",
                        "name": c.name,
                        "sidecar_names": names,
                        "path": c.path,
                    }
                )
        if rows:
            render_rows(rows, COLUMNS, "table")
        else:
            click.echo("no duplicates")
    identical = [g for g in report.groups if g.kind == "identical"]
    same = [g for g in report.groups if g.kind == "same-tensors"]
    echo_err(
        f"dupes: {report.files} files; {len(identical)} groups of byte-identical files, "
        f"{report.reclaimable:,} bytes reclaimable (hard links counted once); {len(same)} groups with the same "
        f"tensors and different metadata"
        + (f"; {report.stale} files changed or gone since their scan were left out (scan again)" if report.stale else "")
    )
