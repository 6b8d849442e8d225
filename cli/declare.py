"""modelreg declare REF FILE: record a training-data declaration for a model (and check it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli._app import dumps, echo_err, read_registry, severity_option, write_registry

if TYPE_CHECKING:
    from registry.declarations import LoadedDeclaration
    from registry.findings import Finding


def _print_invalid(errors: list[tuple[str, str]], fmt: str, what: str) -> None:
    if fmt == "json":
        click.echo(dumps({"valid": False, "errors": [{"path": p, "message": m} for p, m in errors]}, indent=2))
        return
    n = len(errors)
    echo_err(f"modelreg: {what} is invalid ({n} problem{'s' if n != 1 else ''}); nothing was recorded:")
    width = max(len(p) for p, _ in errors)
    for p, m in errors:
        echo_err(f"  {p.ljust(width)}  {m}")


@click.command("declare")
@click.argument("ref", required=False)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--template", is_flag=True, help="Print a filled-in skeleton declaration (with REF: that model's hashes).")
@click.option("--check", "check_only", is_flag=True, help="Only validate FILE (no registry needed); nothing is recorded.")
@click.option("--recheck", is_flag=True, help="Check REF's current declaration again against the evidence known now.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True,
              help="Output format (--template: yaml unless json is asked for).")
@severity_option(help="Exit 1 when a contradiction at or above this severity is found (off by default).")
def command(ref: str | None, file: Path | None, template: bool, check_only: bool, recheck: bool, fmt: str, fail_on: str | None) -> None:
    """Record FILE (JSON or YAML) as a new version of the training-data declaration of model REF.

    The declaration is validated against schemas/training-declaration.schema.json first; a document
    with problems is refused with every problem listed by JSON path (exit 2) and nothing is recorded.
    Declarations are never edited or deleted: each `declare` adds a version, with its SHA-256 and an
    event in the registry's log, and is checked against the evidence (embedded training metadata,
    identification, hashes); the contradictions and overfitting indicators show in `modelreg show REF`.

    \b
    modelreg declare REF FILE        validate, record, check
    modelreg declare --check FILE    validate only
    modelreg declare --template      print a skeleton to fill in (YAML; --format json)
    modelreg declare --recheck REF   check the current declaration again
    """
    from registry.errors import UsageError

    if template:
        _template(ref, fmt)
        return
    if check_only:
        path = file or (Path(ref) if ref else None)
        if path is None:
            raise UsageError("--check needs a FILE")
        loaded = _load(path, fmt)
        if fmt == "json":
            click.echo(dumps({"valid": True, "sha256": loaded.sha256}, indent=2))
        else:
            click.echo(f"{path}: valid (schema {loaded.document['schemaVersion']}, sha256:{loaded.sha256})")
        return
    if recheck:
        if not ref:
            raise UsageError("--recheck needs a model REF")
        _recheck(ref, fmt, fail_on)
        return
    if not ref or file is None:
        raise UsageError("give a model REF and a declaration FILE (or --template / --check FILE / --recheck REF)")
    loaded = _load(file, fmt)

    from registry.store.declarations import record_declaration
    from registry.store.read import resolve_ref

    with write_registry() as con:
        sha = resolve_ref(con, ref)
        rec = record_declaration(con, sha, loaded)
    if fmt == "json":
        click.echo(
            dumps(
                {
                    "sha256": sha,
                    "version": rec.version,
                    "document_sha256": rec.sha256,
                    "event_hash": rec.event_hash,
                    "contradictions": [f.as_dict() for f in rec.check.findings],
                    "indicators": [i.as_dict() for i in rec.check.indicators],
                },
                indent=2,
            )
        )
    else:
        click.echo(f"recorded declaration v{rec.version} for {sha[:16]}… (document sha256:{rec.sha256})")
        _print_findings(rec.check.findings)
    _exit_on(rec.check.findings, fail_on)


def _print_findings(findings: list[Finding]) -> None:
    if not findings:
        click.echo("contradictions: none found")
        return
    click.echo(f"contradictions: {len(findings)}")
    for f in sorted(findings, key=lambda f: (-int(f.severity), f.rule_id, f.message)):
        click.echo(f"  {f.severity.label.upper():8} {f.rule_id}: {f.message}")


def _exit_on(findings: list[Finding], fail_on: str | None) -> None:
    if fail_on is None:
        return
    from registry.findings import Severity

    if any(f.severity >= Severity.parse(fail_on) for f in findings):
        raise click.exceptions.Exit(1)


def _recheck(ref: str, fmt: str, fail_on: str | None) -> None:
    from registry.store.declarations import recheck
    from registry.store.read import resolve_ref

    with write_registry() as con:
        sha = resolve_ref(con, ref)
        res = recheck(con, sha)
    if fmt == "json":
        click.echo(dumps({"sha256": sha, "version": res.version, "contradictions": [f.as_dict() for f in res.findings],
                          "indicators": [i.as_dict() for i in res.indicators]}, indent=2))
    else:
        click.echo(f"checked declaration v{res.version} of {sha[:16]}… again")
        _print_findings(res.findings)
    _exit_on(res.findings, fail_on)


def _template(ref: str | None, fmt: str) -> None:
    from registry.declarations import template

    sha = autov3 = None
    if ref:
        from registry.store.read import resolve_ref

        with read_registry() as con:
            sha = resolve_ref(con, ref)
            row = con.execute("SELECT autov3 FROM blobs WHERE sha256 = ?", [sha]).fetchone()
            autov3 = row[0] if row else None
    doc = template(sha256=sha, autov3=autov3)
    if fmt == "json":
        click.echo(dumps(doc, indent=2))
        return
    import yaml

    click.echo(
        "# Training-data declaration (schemas/training-declaration.schema.json). Replace every example\n"
        "# value, delete what does not apply, then: modelreg declare REF THIS_FILE\n"
        + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100),
        nl=False,
    )


def _load(path: Path, fmt: str) -> LoadedDeclaration:
    """Load and validate a declaration; an invalid one lists every error and exits 2."""
    from registry.declarations import load_declaration
    from registry.errors import DeclarationInvalid, UsageError

    try:
        return load_declaration(path)
    except DeclarationInvalid as e:
        _print_invalid(e.errors, fmt, str(path))
        raise click.exceptions.Exit(2) from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
