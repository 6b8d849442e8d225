"""modelreg audit [PATH...]: audit downloaded models where users keep them."""

from __future__ import annotations

from pathlib import Path

import click

from cli._app import dumps, echo_err, file_progress, get_app, no_truncate_option, render_rows
from cli._ray import ray_mapper, ray_options

AUDIT_FORMATS = ("table", "json", "jsonl", "sarif")


@click.command("audit")
@no_truncate_option()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(AUDIT_FORMATS),
    default="table",
    show_default=True,
    help="Output format (sarif: SARIF 2.1.0 for code-scanning tools).",
)
@click.option(
    "--fail-on",
    "fail_on",
    type=click.Choice(["info", "low", "medium", "high", "critical"]),
    default="high",
    show_default=True,
    help="Exit 1 when a finding at or above this severity is reported.",
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings reach --fail-on (errors still exit 2 or 3).")
@click.option("--workers", "-j", type=click.IntRange(0, 64), default=0, show_default=True, help="Processes for hashing and analysis; 0 (the default): one per usable CPU core, when there are at least 4 files for each; 1: all in this process.")
@click.option("--rehash", is_flag=True, help="Read and analyse every file again, even unchanged ones.")
@click.option(
    "--civitai",
    is_flag=True,
    help="Also ask Civitai's by-hash API about each file it has not answered about yet (online; recorded with "
    "time and URL; API key from CIVITAI_API_KEY or CIVITAI_TOKEN; retried with backoff, at most 2 requests/s).",
)
@click.option(
    "--offline",
    is_flag=True,
    envvar="MODELREG_OFFLINE",
    help="Make no network request at all (env MODELREG_OFFLINE=1); --civitai is then a usage error.",
)
@click.option(
    "--civitai-url",
    envvar="MODELREG_CIVITAI_URL",
    default=None,
    help="Civitai base URL (default https://civitai.com; env MODELREG_CIVITAI_URL).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MODELREG_CONFIG",
    default=None,
    help="modelreg config file with 'roots:' and 'installs:' (default: <user config dir>/modelreg/config.yaml).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
@click.option(
    "--sarif-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="SARIF: paths under this folder get URIs relative to it (uriBaseId ROOT; default: the working directory).",
)
@ray_options
def command(
    paths: tuple[Path, ...],
    fmt: str,
    fail_on: str,
    exit_zero: bool,
    workers: int,
    rehash: bool,
    civitai: bool,
    civitai_url: str | None,
    config_path: Path | None,
    progress: bool | None,
    sarif_root: Path | None = None,
    offline: bool = False,
    ray_address: str | None = None,
    ray_max_tasks: int = 0,
    ray_window_mib: int = 8192,
) -> None:
    """Audit model files: find them, scan them into the registry, check them, report every finding.

    Without PATHs, searches the places where users keep models: the Hugging Face cache (HF_HUB_CACHE,
    HF_HOME), A1111/Forge, ComfyUI (with extra_model_paths.yaml), InvokeAI, Fooocus and SwarmUI folders,
    and the roots of modelreg's config file; the places searched are listed on stderr.

    Files are scanned incrementally (unchanged files are not read again). Hugging Face cache blobs are
    verified against their content-hash names, and sidecars (.civitai.info, .cm-info.json) against the
    computed hashes. The audit never writes to the files it audits.

    Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it, 2 usage error,
    3 runtime failure.
    """
    import os

    from registry import __version__
    from registry.audit import audit
    from registry.errors import UsageError
    from registry.files.layouts import Discovery
    from registry.findings import Severity, all_rules
    from registry.sarif import sarif_log

    if civitai and offline:
        raise UsageError("--civitai asks Civitai online, --offline forbids the network: choose one")
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}; nothing was audited")
    mapper = ray_mapper(ray_address, ray_max_tasks, ray_window_mib, progress, "audit")
    app = get_app()
    def on_places(discovery: Discovery | None, targets: list[tuple[str, Path]]) -> None:
        if discovery is None:
            return
        echo_err("searched:")
        for p in discovery.searched:
            mark = "found  " if p.exists else "absent "
            echo_err(f"  {mark} {p.kind:9} {p.path}  ({p.why})")
        for where, problem in discovery.problems:
            echo_err(f"  problem  {where}: {problem}")
        if not discovery.existing:
            echo_err("no model places found; pass folders to audit, or list them under 'roots:' in the config file")

    with file_progress(progress) as on_progress:
        report = audit(
            [str(p) for p in paths] or None,
            app.registry_path(),
            config_path=config_path,
            workers=workers,
            rehash=rehash,
            civitai=civitai,
            civitai_url=civitai_url,
            progress=on_progress,
            on_wait=echo_err,
            on_places=on_places,
            on_create=echo_err,
            mapper=mapper,
        )
    if mapper is not None and mapper.progress.files_total:
        echo_err(mapper.progress.line())

    threshold = Severity.parse(fail_on)
    reached = report.count_at_or_above(threshold)
    code = 1 if reached and not exit_zero else 0
    columns = ["severity", "rule_id", "path", "blob_sha256", "message", "evidence"]
    if fmt == "sarif":
        log = sarif_log(
            report.findings,
            tool_version=__version__,
            rules=all_rules(),
            invocation={"exit_code": code, "arguments": ["audit", *[str(p) for p in paths]]},
            base=sarif_root,
        )
        click.echo(dumps(log, indent=2))
    elif fmt in ("json", "jsonl"):
        render_rows(report.findings, columns, fmt)
    elif report.findings:
        render_rows(report.findings, ["severity", "rule_id", "path", "message"], "table", max_width=100)
    else:
        click.echo("no findings")

    by = report.by_severity()
    sev_text = ", ".join(f"{by[s.label]} {s.label}" for s in reversed(Severity) if s.label in by)
    parts = [
        f"{report.files} files",
        f"{report.new_blobs} new",
        f"{report.unchanged} unchanged",
    ]
    if report.hf_files:
        parts.append(f"{report.hf_files} in the Hugging Face cache")
    if report.hf_text_files:
        parts.append(f"{report.hf_text_files} of them text files verified only")
    if report.companions:
        parts.append(f"{report.companions} sidecars/previews")
    if report.other_files:
        parts.append(f"{report.other_files} other text/empty files not scanned")
    if report.unreadable:
        parts.append(f"{report.unreadable} unreadable")
    if report.civitai_lookups:
        parts.append(f"{report.civitai_lookups} Civitai lookups")
    if report.civitai_failed or report.civitai_skipped:
        echo_err(
            f"modelreg: Civitai: {report.civitai_failed} lookups got no answer ({report.civitai_error})"
            + (f", {report.civitai_skipped} not tried after that" if report.civitai_skipped else "")
            + "; they are asked again on the next --civitai run (--offline to audit without the network)"
        )
    echo_err(
        "audited: " + ", ".join(parts) + f"; {len(report.findings)} findings"
        + (f" ({sev_text})" if sev_text else "")
        + f"; {reached} at or above {fail_on} in {report.elapsed:.1f}s"
    )
    if code:
        raise click.exceptions.Exit(code)
