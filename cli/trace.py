"""modelreg trace IMAGE|FOLDER…: the models an image names, matched against the registry."""

from __future__ import annotations

from typing import Any

import click

from cli._app import echo_err, file_progress, format_option, read_registry, render_rows, write_registry

COLUMNS = ["image", "image_sha256", "generator", "role", "name", "weight", "hash", "status", "match_kind",
           "model_sha256", "model_name", "note", "c2pa"]  # fmt: skip
RECORD_BATCH = 2000


def _rows(t: Any, fmt: str) -> list[dict[str, Any]]:
    base = {
        "image": t.path.rsplit("/", 1)[-1] if fmt == "table" else t.path,
        "image_sha256": (t.sha256 or "")[:12] if fmt == "table" else t.sha256,
        "generator": t.generator,
        "c2pa": _c2pa(t),
    }
    if not t.matches:
        why = ("unreadable" if t.sha256 is None else "not-an-image" if t.meta.format == "unknown"
               else "no-references" if t.facts else "no-metadata")  # fmt: skip
        return [{**base, "status": why}]
    out = []
    for m in t.matches:
        r = m.ref
        out.append(
            {
                **base,
                "role": r.role,
                "name": r.name,
                "weight": r.weight,
                "hash": ", ".join(h.value for h in r.hashes) or None,
                "status": m.status,
                "match_kind": m.match_kind,
                "model_sha256": (m.model_sha256 or "")[:12] if fmt == "table" else m.model_sha256,
                "model_name": m.model_name,
                "note": m.note,
            }
        )
    return out


def _c2pa(t: Any) -> str | None:
    c = t.meta.c2pa
    if c is None:
        return None
    state = c.validation_state or "present, unvalidated"
    return f"{state}: {c.claim_generator}" if c.claim_generator else state


@click.command("trace")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@format_option()
@click.option("--record/--no-record", default=True, show_default=True,
              help="Record the images and their links to models in the registry.")  # fmt: skip
@click.option("--detail", is_flag=True,
              help="One JSON object per image (facts, every match, C2PA, findings) instead of one row per reference; "
              "with --format json or jsonl.")  # fmt: skip
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
def command(paths: tuple[str, ...], fmt: str, record: bool, detail: bool, progress: bool | None) -> None:
    """Trace images to the models that made them.

    Reads each image's metadata (PNG tEXt/iTXt/zTXt, JPEG and WebP EXIF UserComment and XMP, C2PA
    presence; pixels are never decoded), parses what A1111/Forge, ComfyUI, InvokeAI, Fooocus, NovelAI and
    SwarmUI wrote, and matches every model reference against the registry by every hash form and by
    name. One row per reference: STATUS is matched (by hash), weak (name only), conflict (hash and name
    name different models), ambiguous, not-found or inactive (muted/bypassed node). FOLDERs are walked;
    files in them that are not PNG, JPEG or WebP (by their bytes) are skipped.
    """
    from registry.errors import UsageError
    from registry.findings import Severity
    from registry.trace.match import Matcher
    from registry.trace.trace import iter_images, trace_file

    if detail and fmt not in ("json", "jsonl"):
        raise UsageError("--detail needs --format json or jsonl")
    # recording writes, so it may create the registry (and says so); --no-record only reads one
    with (write_registry() if record else read_registry()) as con:
        matcher = Matcher.from_registry(con)
    files = list(iter_images(paths))
    traces = []
    with file_progress(progress) as on_progress:
        for i, (p, _explicit) in enumerate(files):
            traces.append(trace_file(p, matcher))
            on_progress(i + 1, len(files), p)
    for t in traces:
        for f in t.findings:
            if f.severity >= Severity.LOW:
                echo_err(f"modelreg: {t.path}: {f.message} [{f.rule_id}]")
    if record:
        from registry.trace.store import record_traces

        with write_registry() as con:
            n = 0
            for i in range(0, len(traces), RECORD_BATCH):
                n += record_traces(con, traces[i : i + RECORD_BATCH])
        echo_err(f"modelreg: recorded {n} image(s)")
    if detail:
        import sys

        from cli._app import dumps

        docs = [t.to_dict() for t in traces]
        if fmt == "jsonl":
            for d in docs:
                sys.stdout.write(dumps(d) + "\n")
        else:
            sys.stdout.write(dumps(docs, indent=2) + "\n")
        return
    rows = [r for t in traces for r in _rows(t, fmt)]
    render_rows(rows, COLUMNS, fmt)
