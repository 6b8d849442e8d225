"""modelreg show REF: one model's record."""

from __future__ import annotations

from typing import Any

import click

from cli._app import dumps, no_truncate_option, read_registry, skip_final_collection


@click.command("show")
@no_truncate_option()
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format.")
@click.option("--section", "sections", multiple=True, help="Only these sections (repeatable), e.g. --section file.")
@click.option("--modules", "modules", is_flag=True, help="Also list every adapter module with its spectral figures.")
def command(ref: str, fmt: str, sections: tuple[str, ...], modules: bool) -> None:
    """Print one model's record.

    REF is a full or unique-prefix SHA-256, an AutoV2 (10 hex), an AutoV1 or CRC32 (8 hex), an AutoV3 or
    BLAKE3 prefix (optionally written sha256:…, autov3:…, blake3:…, 0x…), a path, or a file name. An
    ambiguous REF lists the candidates and exits 2.
    """
    from registry.errors import UsageError
    from registry.record import build_record, load_sections
    from registry.store.read import resolve_ref

    skip_final_collection()
    known = [s.name for s in load_sections()]
    unknown = [s for s in sections if s not in known]
    if unknown:
        raise UsageError(f"unknown section {', '.join(map(repr, unknown))}; sections are: {', '.join(known)}")
    with read_registry() as con:
        sha = resolve_ref(con, ref)
        record = build_record(con, sha, set(sections) if sections else None)
        if modules:
            from registry.sections.stats import load_modules

            record["modules"] = load_modules(con, sha)
    if fmt == "json":
        click.echo(dumps({"sha256": sha, **record}, indent=2))
        return
    module_rows = record.pop("modules", None)
    titles = {s.name: (s.title or s.name) for s in load_sections()}
    renderers = {s.name: s.render for s in load_sections()}
    first = True
    for name, value in record.items():
        if not first:
            click.echo("")
        first = False
        click.secho(titles[name], bold=True)
        lines = renderers[name](value)
        pairs = [ln for ln in lines if isinstance(ln, tuple)]
        width = max((len(k) for k, _ in pairs), default=0)
        for ln in lines:
            if isinstance(ln, tuple):
                click.echo(f"  {ln[0].ljust(width)}  {ln[1]}")
            else:
                click.echo(f"  {ln}")
    if module_rows is not None:
        _print_modules(module_rows)


def _print_modules(rows: list[dict[str, object]]) -> None:
    from cli._app import render_rows

    click.echo("")
    click.secho(f"Modules ({len(rows)})", bold=True)
    cols = ["module", "form", "component", "block", "rank", "max_rank", "scale", "fro", "spectral", "eff_rank_energy", "rank90", "rank99"]
    def sketch_of(r: dict[str, object]) -> dict[str, Any] | None:
        extra = r.get("extra")
        return extra.get("sketch") if isinstance(extra, dict) else None

    if any(sketch_of(r) for r in rows):
        # sketched modules: σ1 is a lower bound (sv_error its relative bound), ranks are certain intervals
        rows = [dict(r) for r in rows]
        for r in rows:
            sk = sketch_of(r)
            for key in ("rank90", "rank99"):
                if sk and r.get(key) is None:
                    lo, hi = sk[key]
                    r[key] = f"{lo}–{hi}"
        cols += ["exact", "sv_error"]
    render_rows(rows, cols, "table", max_width=72)
