"""Tracing files: hash the image, read its metadata, parse each generator's facts, match references."""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from registry.findings import finding
from registry.trace.facts import R_NO_METADATA, R_NOT_IMAGE, R_UNREADABLE, ImageMeta, ImageTrace
from registry.trace.match import Matcher
from registry.trace.parsers import parse_generation
from registry.trace.readers import read_metadata, sniff


def trace_file(path: str | Path, matcher: Matcher | None = None) -> ImageTrace:
    """One image: SHA-256 of its bytes, its metadata and facts, and (with a matcher) every reference's match.
    Never raises for a bad file: the trace carries a finding instead."""
    p = str(path)
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                meta = ImageMeta(format="unknown")
                meta.findings.append(finding(R_NOT_IMAGE.id, "empty file"))
                return ImageTrace(p, hashlib.sha256(b"").hexdigest(), 0, meta, findings=list(meta.findings))
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                sha = hashlib.sha256(mm).hexdigest()
                meta = read_metadata(memoryview(mm))
    except OSError as e:
        meta = ImageMeta(format="unknown")
        f = finding(R_UNREADABLE.id, f"cannot read: {e.strerror or e}", path=p)
        return ImageTrace(p, None, 0, meta, findings=[f])
    t = ImageTrace(p, sha, size, meta)
    t.findings.extend(meta.findings)
    if meta.c2pa is not None:
        from registry.trace.c2pa_manifest import enrich

        enrich(meta.c2pa, p, meta.format, t.findings)
    if meta.format != "unknown":
        t.facts = parse_generation(meta.texts, t.findings)
        if not t.facts:
            t.findings.append(finding(R_NO_METADATA.id, "no generation metadata found (keys: "
                                      + (", ".join(sorted({x.key for x in meta.texts})[:20]) or "none") + ")"))  # fmt: skip
    if matcher is not None:
        for gf in t.facts:
            t.matches.extend(matcher.match(r) for r in gf.refs)
    return t


def iter_images(paths: Iterable[str | Path], on_skip: Iterable[str] | None = None) -> Iterator[tuple[str, bool]]:
    """``(path, explicit)`` of every file named or found under a folder (sorted, symlinks to folders not
    followed); files found in folders are kept only when their first bytes are PNG, JPEG or WebP."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    fp = os.path.join(root, name)
                    try:
                        with open(fp, "rb") as fh:
                            head = fh.read(16)
                    except OSError:
                        continue
                    if sniff(head) != "unknown":
                        yield fp, False
        else:
            yield str(p), True


def trace_paths(paths: Iterable[str | Path], matcher: Matcher | None = None) -> Iterator[ImageTrace]:
    for p, _explicit in iter_images(paths):
        yield trace_file(p, matcher)
