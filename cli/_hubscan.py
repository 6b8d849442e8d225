"""The ``hf://`` branch of ``modelreg scan``: catalog Hub repositories without downloading weights."""

from __future__ import annotations

import click

from cli._app import get_app, write_registry


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 1000:
        return f"{n} B"
    x = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        x /= 1000
        if x < 1000 or unit == "TB":
            break
    return f"{x:.1f} {unit}"


def scan_hub(uris: list[str], quiet: bool, fail_on: str | None) -> bool:
    """Catalog each ``hf://`` reference into the registry and print what was found.

    Returns True when a finding at or above ``fail_on`` was recorded. Hub errors raise the registry's
    errors (one line and an exit code through the CLI).
    """
    from registry.extras import require

    require("hub", "scan hf://")
    from registry.findings import Severity
    from registry.hub import catalog_hf, parse_hf_uri
    from registry.store.remote import record_hub_catalog

    app = get_app()
    reached = False
    threshold = Severity.parse(fail_on) if fail_on else None
    for uri in uris:
        cat = catalog_hf(parse_hf_uri(uri))
        with write_registry(app) as con:
            record_hub_catalog(con, cat)
        headers = sum(1 for f in cat.files if f.header is not None)
        card = cat.card
        facts = []
        if card.get("license"):
            facts.append(f"license {card['license']}")
        if card.get("base_model"):
            facts.append("base model " + ", ".join(card["base_model"]))
        if card.get("datasets"):
            facts.append("datasets " + ", ".join(card["datasets"]))
        n_findings = 0
        for f in cat.files:
            if not quiet and (f.sha256 or f.header is not None):
                digest = f"sha256:{f.sha256[:16]}…" if f.sha256 else "(stored in git)"
                tensors = f"  {len(f.header.tensors)} tensors" if f.header is not None else ""
                click.echo(f"{digest:26} {f.path}  {_size(f.size)}{tensors}")
            for x in f.findings:
                n_findings += 1
                if not quiet:
                    click.echo(f"{x.severity.label.upper():8} {x.rule_id}  {f.url}: {x.message}")
                if threshold is not None and x.severity >= threshold:
                    reached = True
        click.echo(
            f"catalogued: hf://{cat.repo_id}@{cat.commit} ({cat.repo_url}): {len(cat.files)} files, "
            f"{headers} safetensors headers read by range requests, no weights downloaded"
            + (f"; {'; '.join(facts)}" if facts else "")
            + f"; {n_findings} findings"
        )
    return reached
