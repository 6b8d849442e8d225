"""modelreg verify DIR: check an exhibit (and optionally the model file) independently of the registry."""

from __future__ import annotations

from pathlib import Path

import click

from cli._app import dumps


@click.command("verify")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
              help="The model file: re-hash it and re-read its header to confirm the record.")  # fmt: skip
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
              help="The signer's public key (PEM), obtained independently. Default: signer.pub.pem in DIR.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def command(folder: Path, model: Path | None, key: Path | None, fmt: str) -> None:
    """Check an exhibit: MANIFEST, signature, envelope, record against its schema and canonical form, the
    record inside the PDF, and with --model the model file itself. One PASS/FAIL/SKIP line per check.

    Exit codes: 0 every check passed (or was skipped), 1 a check failed, 2 usage error.
    Needs no registry: DIR is all it reads.
    """
    from registry.extras import require

    require("exhibit", "verify")
    from registry.evidence.verify import all_passed, verify_exhibit

    checks = verify_exhibit(folder, model=model, public_key=key)
    ok = all_passed(checks)
    if fmt == "json":
        click.echo(dumps({"ok": ok, "checks": [c.__dict__ for c in checks]}, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{c.outcome.upper():4}  {c.name.ljust(width)}  {c.detail}")
        click.echo("exhibit verified" if ok else "exhibit FAILED verification")
    if not ok:
        raise click.exceptions.Exit(1)
