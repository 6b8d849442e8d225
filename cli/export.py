"""modelreg export REF --format cyclonedx|spdx|json: a model's record in standard formats."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli._app import read_registry


@click.command("export")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["cyclonedx", "spdx", "json"]), default="json", show_default=True,
              help="cyclonedx: CycloneDX 1.6 ML-BOM; spdx: SPDX 3.0.1 (AI, Dataset); json: the canonical record.")  # fmt: skip
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
def command(ref: str, fmt: str, out: Path | None) -> None:
    """Export one model's record: the canonical record.json (RFC 8785, as in an exhibit), a CycloneDX 1.6
    ML-BOM (machine-learning-model component with a model card, data components from the declared and
    embedded training datasets) or an SPDX 3.0.1 document (AIPackage, DatasetPackage, trainedOn)."""
    from registry.extras import require

    if fmt != "json":  # the canonical record needs only the core (RFC 8785)
        require("exhibit", f"export --format {fmt}")
    from registry.evidence import bom
    from registry.evidence.canonical import build_record, record_bytes
    from registry.store.read import resolve_ref

    with read_registry() as con:
        sha = resolve_ref(con, ref)
        record = build_record(con, sha)
    if fmt == "json":
        data = record_bytes(record)
    elif fmt == "cyclonedx":
        data = (json.dumps(bom.cyclonedx_bom(record), indent=2, ensure_ascii=False) + "\n").encode()
    else:
        data = (json.dumps(bom.spdx_document(record), indent=2, ensure_ascii=False) + "\n").encode()
    if out is not None:
        out.write_bytes(data)
        click.echo(f"wrote {fmt} export of sha256:{sha} to {out}", err=True)
    else:
        click.echo(data.decode(), nl=fmt == "json")
