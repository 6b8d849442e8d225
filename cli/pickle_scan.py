"""modelreg pickle-scan: scan files for pickle code statically, without the registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import click

from cli._app import format_option, no_truncate_option, render_rows

COLUMNS = ["verdict", "format", "path", "decided_by", "reason"]
_RANK = {"safe": 0, "suspicious": 1, "unscannable": 2, "dangerous": 3}


def _files(paths: tuple[str, ...]) -> Iterator[str]:
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for n in sorted(names):
                    full = os.path.join(root, n)
                    if os.path.isfile(full):
                        yield full
        else:
            yield p


@click.command("pickle-scan")
@no_truncate_option()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@format_option()
@click.option(
    "--fail-on",
    type=click.Choice(["suspicious", "unscannable", "dangerous"]),
    default="unscannable",
    show_default=True,
    help="Exit 1 when a file's verdict is this or worse (safe < suspicious < unscannable < dangerous).",
)
@click.option("--globals", "show_globals", is_flag=True, help="One row per imported name instead of per file.")
def command(paths: tuple[str, ...], fmt: str, fail_on: str, show_globals: bool) -> None:
    """Scan PATHS (files or folders) for code in pickles, statically: nothing is ever unpickled.

    Every file is read by content (a pickle named .safetensors is a pickle); PyTorch zips are read the
    way torch reads them, legacy checkpoints, numpy files, 7z, tar and gzip containers included. Verdicts:
    safe (only tensor-rebuilding names), suspicious (other names), unscannable (a part that cannot be
    read: never clean), dangerous (a name that runs code, touches files or the network).
    """
    from registry.files.pickles import scan_file

    worst = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal worst
        for path in _files(paths):
            r = scan_file(path, recover_tensors=False)
            worst = max(worst, _RANK[r.verdict])
            if show_globals:
                for g in r.distinct_globals():
                    yield {"verdict": g.safety.label, "format": r.format, "path": path,
                           "decided_by": g.qualname, "reason": f"{g.opcode} at {g.where()}: {g.reason}"}  # fmt: skip
                continue
            yield {
                "verdict": r.verdict,
                "format": r.format,
                "path": path,
                "decided_by": ", ".join(g.qualname for g in r.deciding[:5]),
                "reason": r.reason,
            }

    render_rows(rows(), COLUMNS, fmt, max_width=100)
    if worst >= _RANK[fail_on]:
        raise SystemExit(1)
