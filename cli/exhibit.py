"""modelreg exhibit REF -o DIR: a canonical, signed record with a PDF report, for legal filings."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click

from cli._app import echo_err, get_app, read_registry, write_registry


class DelayedProgress:
    """Progress on stderr for an exhibit that takes longer than ``after`` seconds.

    Steps that finish sooner print nothing; once ``after`` seconds have passed, the step under way is
    printed (with the elapsed time), and so is every later step, so a slow exhibit never sits silent.
    """

    def __init__(self, after: float = 2.0, write: Callable[[str], None] | None = None) -> None:
        self.after = after
        self.start = time.monotonic()
        self.step = "reading the registry"
        self.shown = False
        self._lock = threading.Lock()
        self._write = write or echo_err
        self._timer = threading.Timer(after, self._late)
        self._timer.daemon = True
        self._timer.start()

    def _emit(self, text: str) -> None:
        self._write(f"exhibit: {text} ({time.monotonic() - self.start:.1f} s)")

    def _late(self) -> None:
        with self._lock:
            self.shown = True
            self._emit(self.step + " …")

    def __call__(self, step: str) -> None:
        with self._lock:
            self.step = step
            if self.shown:
                self._emit(step + " …")

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            if self.shown:
                self._emit("done")


@click.command("exhibit")
@click.argument("ref")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New (or empty) folder to write the exhibit into.")  # fmt: skip
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
              help="ECDSA private key (PEM, P-256/384/521) to sign with offline. Its password, if any, is read "
                   "from MODELREG_KEY_PASSWORD.")  # fmt: skip
@click.option("--generate-key", is_flag=True, help="Create --key (ECDSA P-256, mode 0600) if it does not exist.")
@click.option("--sigstore", is_flag=True, help="Sign keylessly with Sigstore instead (needs the network and an OIDC identity).")
@click.option("--issuer", help="Who issues the exhibit (name, organisation), written into envelope.json.")
@click.option("--no-pdf", is_flag=True, help="Skip report.pdf (HTML only), e.g. where Pango is not installed.")
def command(
    ref: str, out: Path, key: Path | None, generate_key: bool, sigstore: bool, issuer: str | None, no_pdf: bool
) -> None:
    """Write an exhibit of one model into DIR: record.json (RFC 8785), envelope.json, report.html,
    report.pdf (PDF/A-3b carrying record.json), CycloneDX and SPDX exports, MANIFEST and an OpenSSF Model
    Signing signature (model.sig).

    The same registry state always gives a byte-identical record.json; the time and the signer live in
    envelope.json. Issuing is recorded in the registry (table exhibits, event exhibit.issue). Check an
    exhibit with `modelreg verify DIR`, `sha256sum -c MANIFEST` and `model_signing verify key`.
    """
    from registry.extras import require

    require("exhibit", "exhibit")
    from registry.errors import UsageError
    from registry.evidence import signing
    from registry.evidence.exhibit import PDF_NAME, record_issue, write_exhibit
    from registry.store.read import resolve_ref

    if generate_key:
        if key is None:
            raise UsageError("--generate-key needs --key PATH (where to create the key)")
        if not key.exists():
            info = signing.generate_key(key)
            echo_err(f"created signing key {key} (ECDSA {info.curve}, fingerprint {info.fingerprint})")
    db_path = get_app().registry_path()
    progress = DelayedProgress()
    try:
        with read_registry() as con:
            sha = resolve_ref(con, ref)
            result = write_exhibit(
            con,
            sha,
            out,
            key=key,
            key_password=os.environ.get("MODELREG_KEY_PASSWORD") or None,
            sigstore=sigstore,
            issuer=issuer,
            image_roots=[db_path.parent / "samples", db_path.parent / "store", db_path.parent],
            pdf=not no_pdf,
            progress=progress,
        )
        with write_registry() as con:
            exhibit_id = record_issue(con, result)
    finally:
        progress.close()
    click.echo(f"exhibit written to {out}: registry exhibit number {exhibit_id} (numbered across all models), "
               f"for the model file with SHA-256 {sha}")
    click.echo(f"  record.json sha256:{result.record_sha256}")
    for name in (PDF_NAME, signing.MANIFEST_NAME):
        if (out / name).is_file():
            click.echo(f"  {name} sha256:{signing.file_sha256(out / name)}")
    signer = result.signer
    if signer["method"] == "ecdsa-key":
        click.echo(f"  signed with ECDSA {signer['curve']} key, fingerprint {signer['public_key_sha256']}")
    elif signer["method"] == "sigstore":
        click.echo("  signed with Sigstore")
    click.echo("  files:")
    for name in result.files:
        click.echo(f"    {name}")
    for note in result.notes:
        echo_err(f"note: {note}")
