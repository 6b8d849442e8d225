"""modelreg diff A B: how two registered checkpoints differ, tensor by tensor."""

from __future__ import annotations

from typing import Any

import click

from cli._app import dumps, format_option, no_truncate_option, read_registry, render_rows

COLUMNS = ["tensor", "status", "rel_change", "cosine", "l2_a", "l2_b", "component", "block", "how"]


@click.command("diff")
@no_truncate_option()
@click.argument("a")
@click.argument("b")
@format_option()
@click.option("--top", type=click.IntRange(min=0), default=15, show_default=True, help="Changed tensors to list (table output).")
@click.option("--all", "show_all", is_flag=True, help="List every tensor, not only the most changed.")
def command(a: str, b: str, fmt: str, top: int, show_all: bool) -> None:
    """Compare two registered models (e.g. a fine-tune and its base) tensor by tensor.

    For every tensor name: the relative change ‖B−A‖/‖A‖ and the cosine between them, then where the
    model changed most (by component and block). Tensors whose BLAKE3 digests (recorded by the scan)
    agree are identical without being read; the others are read from both files, which must still be
    where they were last seen on this host (else their change is reported as unknown).
    """
    from registry.store.read import resolve_ref
    from registry.tensorstats import diff_checkpoints, side_from_registry

    with read_registry() as con:
        sha_a, sha_b = resolve_ref(con, a), resolve_ref(con, b)
        side_a, side_b = side_from_registry(con, sha_a), side_from_registry(con, sha_b)
    rep = diff_checkpoints(side_a, side_b)
    rows: list[dict[str, Any]] = [{"tensor": d.name, **{k: v for k, v in vars(d).items() if k != "name"}} for d in rep.tensors]
    if fmt != "table":
        if fmt == "json":
            click.echo(dumps({"a": sha_a, "b": sha_b, "summary": rep.summary, "by_block": rep.by_block, "tensors": rows}, indent=2))
        else:
            render_rows(rows, COLUMNS + ["dtype_a", "dtype_b", "shape_a", "shape_b", "diff_l2"], fmt)
        return
    s = rep.summary
    click.echo(f"A  {sha_a}  {side_a.path or '(file not available here)'}")
    click.echo(f"B  {sha_b}  {side_b.path or '(file not available here)'}")
    status = ", ".join(f"{v} {k}" for k, v in s["status"].items())
    click.echo(f"tensors: {s['n_tensors']} ({status}); {s['identical_by_digest']} identical by digest, "
               f"{s['bytes_read'] / 1e6:,.1f} MB read")
    if s["rel_change"] is not None:
        click.echo(f"overall relative change ‖B−A‖/‖A‖: {s['rel_change']:.4g}")
    if rep.by_block:
        click.echo("")
        click.secho("Where it changed most", bold=True)
        render_rows(rep.by_block[:top or None], ["component", "block", "n_tensors", "n_changed", "rel_change", "diff_share"], "table")
    listed = rows if show_all else sorted(
        (r for r in rows if r["status"] != "identical"), key=lambda r: -(r["rel_change"] or 0.0)
    )[:top]
    if listed:
        click.echo("")
        click.secho("Tensors" if show_all else "Most changed tensors", bold=True)
        render_rows(listed, COLUMNS, "table", max_width=80)
