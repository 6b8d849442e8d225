"""modelreg scan PATH...: catalog files and folders into the registry."""

from __future__ import annotations

import click

from cli._app import echo_err, file_progress, get_app, severity_option
from cli._ray import ray_mapper, ray_options


@click.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--workers", "-j", type=click.IntRange(0, 64), default=0, show_default=True, help="Processes for hashing and analysis; 0 (the default): one per usable CPU core, when there are at least 4 files for each; 1: all in this process.")
@click.option("--rehash", is_flag=True, help="Read and analyse every file again, even unchanged ones.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
@severity_option(
    help="Exit 1 when any file this scan covered has a finding at or above this severity, findings recorded "
    "by earlier scans of the same content included (unchanged files too), so a second run gives the same "
    "verdict as the first (off by default)."
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary line.")
@ray_options
def command(
    paths: tuple[str, ...],
    workers: int,
    rehash: bool,
    progress: bool | None,
    fail_on: str | None,
    quiet: bool,
    ray_address: str | None = None,
    ray_max_tasks: int = 0,
    ray_window_mib: int = 8192,
) -> None:
    """Catalog model files (recursively for folders) into the registry.

    Unchanged files (same size, mtime and inode as last seen) are not read again. Every file that cannot
    be read, or is not a model, is still recorded with a finding that says why.

    hf://ORG/REPO[@REV][/PATH] catalogs a Hugging Face Hub repository without downloading weights
    (safetensors headers by range requests; LFS SHA-256 and model-card data from the API).
    """
    import os

    from registry.errors import UsageError
    from registry.findings import Severity
    from registry.scan import scan

    missing = [p for p in paths if not p.startswith("hf://") and not os.path.lexists(p)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}; nothing was scanned")
    mapper = ray_mapper(ray_address, ray_max_tasks, ray_window_mib, progress, "scan")
    app = get_app()
    remote = [p for p in paths if p.startswith("hf://")]
    remote_reached = False
    if remote:
        from cli._hubscan import scan_hub

        remote_reached = scan_hub(remote, quiet, fail_on)
        paths = tuple(p for p in paths if not p.startswith("hf://"))
        if not paths:
            if remote_reached:
                raise click.exceptions.Exit(1)
            return
    with file_progress(progress) as on_progress:
        summary = scan([str(p) for p in paths], app.registry_path(), workers=workers, rehash=rehash, progress=on_progress, on_wait=echo_err, on_create=echo_err, mapper=mapper)
    if mapper is not None and mapper.progress.files_total and not quiet:
        echo_err(mapper.progress.line())
    if not quiet:
        for rule_id, sev, path, message in summary.finding_list:
            click.echo(f"{sev.upper():8} {rule_id}  {path}: {message}")
    for path, took, step, step_took in summary.slow:
        click.echo(f"slow: {path} took {took:.1f}s, {step} {step_took:.1f}s of it")
    parts = [
        f"{summary.files} files",
        f"{summary.new_blobs} new",
        f"{summary.known_blobs} already known",
        f"{summary.unchanged} unchanged",
    ]
    if summary.rehashed:
        parts.append(f"{summary.rehashed} re-analysed")
    if summary.unreadable:
        parts.append(f"{summary.unreadable} unreadable")
    nf = sum(summary.findings.values())
    by = ", ".join(f"{summary.findings[s.label]} {s.label}" for s in reversed(Severity) if s.label in summary.findings)
    parts.append(f"{nf} findings" + (f" ({by})" if by else ""))
    reached = summary.covered_at_or_above(Severity.parse(fail_on)) if fail_on is not None else 0
    if fail_on is not None:
        parts.append(f"{reached} findings at or above {fail_on} across the {summary.files} files covered")
    click.echo("scanned: " + ", ".join(parts) + f" in {summary.elapsed:.1f}s")
    if fail_on is not None and (remote_reached or reached):
        raise click.exceptions.Exit(1)
