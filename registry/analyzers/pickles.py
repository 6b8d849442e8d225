"""Analyzer ``pickles`` (order 10): static scan of pickle-based files, and their tensors.

For every pickle-family format (PyTorch zip and legacy files, raw pickles, TorchScript, numpy, zip, 7z,
tar, and gzip / zlib / bzip2 / xz / lzma streams) it runs :func:`registry.files.pickles.scan_file` — which never unpickles anything — and

* records one ``pickle_scans`` row (verdict, reason, deciding names with offsets, streams, members,
  tricks seen) and one ``pickle_globals`` row per distinct imported name;
* adds the scan's findings (dangerous import = critical, unscannable part or evasion trick = high,
  names outside the allowlist = medium);
* for files judged safe or suspicious, fills ``ctx.tensors`` with the tensors recovered symbolically
  (absolute offsets, so ``ctx.raw(t)`` returns their bytes) and ``ctx.facts["container"]``, so that
  identification and statistics run on ``.ckpt``/``.pt`` files as on safetensors;
* marks the format handled (``ctx.facts["handled"]``) and reports the refined format
  (``ctx.facts["format"]``: a zip is told apart as pytorch-zip, torchscript or npz).

Every file also gets the extension check (a pickle named ``.safetensors`` is a finding). Safetensors files
always get a ``pickle_scans`` row (``safe`` unless bytes the header does not account for hold a pickle or
an archive, or the file is a crafted safetensors/pickle polyglot), and files of other formats a cheap
check that their first bytes are not also a pickle that imports names.
"""

from __future__ import annotations

import json
from typing import Any

from registry.analysis import Analyzer, FileContext
from registry.files.pickle_vm import VALID_OPCODES
from registry.files.pickles import VERDICT_RANK, PickleScan, find_appended_zip, scan_file
from registry.files.sniff import COMPRESSED_FORMATS, PICKLE_FORMATS, extension_mismatch

SCANNER_VERSION = "2"
_SKIP_EXTENSION_CHECK = {"html", "git-lfs-pointer", "empty"}
_SCANNED = PICKLE_FORMATS | COMPRESSED_FORMATS | {"torchscript-mobile"}


#: ``json.dumps(v, sort_keys=True, default=str)``'s encoder, built once (not for every cell of every file)
_JSON = json.JSONEncoder(sort_keys=True, default=str)


def _json(v: Any) -> str:
    if not v and type(v) in (list, dict):  # (most files: nothing to list; the encoder's own text)
        return "[]" if type(v) is list else "{}"
    return _JSON.encode(v)


def _rows(scan: PickleScan) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rec = scan.recovery
    row = {
        "verdict": scan.verdict,
        "verdict_rank": VERDICT_RANK[scan.verdict],
        "reason": scan.reason,
        "format": scan.format,
        "deciding": _json([g.as_dict() for g in scan.deciding]),
        "globals": _json([g.as_dict() for g in scan.distinct_globals()[:500]]),
        "streams": _json([s.as_dict() for s in scan.streams[:200]]),
        "members": scan.members[:2000],
        "unscannable": scan.unscannable[:100],
        "evasions": scan.evasions[:100],
        "container": _json(scan.container),
        "tensors_recovered": len(rec.tensors) if rec else None,
        "tensors_readable": sum(1 for t in rec.tensors if t.readable) if rec else None,
        "state_dict_key": rec.state_dict_key if rec else None,
        "elapsed_ms": round(scan.elapsed_s * 1e3, 3),
        "scanner_version": SCANNER_VERSION,
    }
    counts: dict[tuple[str, str, str | None], int] = {}
    for g in scan.globals:
        key = (g.module, g.name, g.member)
        counts[key] = counts.get(key, 0) + 1
    imports = [
        {
            "module": g.module,
            "name": g.name,
            "member": g.member,
            "first_offset": g.offset,
            "absolute": g.absolute,
            "opcode": g.opcode,
            "occurrences": counts[(g.module, g.name, g.member)],
            "safety": g.safety.label,
            "reason": g.reason,
        }
        for g in scan.distinct_globals()[:5000]
    ]
    return row, imports


def _record(ctx: FileContext, scan: PickleScan) -> None:
    row, imports = _rows(scan)
    ctx.add_rows("pickle_scans", [row])
    if imports:
        ctx.add_rows("pickle_globals", imports)
    ctx.findings.extend(scan.findings)
    ctx.facts["pickle_verdict"] = scan.verdict


def run(ctx: FileContext) -> None:
    if ctx.format not in _SKIP_EXTENSION_CHECK:
        f = extension_mismatch(ctx.path, ctx.format)
        if f is not None:
            ctx.findings.append(f)
    if ctx.format in _SCANNED:
        scan = scan_file(ctx.path, data=ctx.data)
        _record(ctx, scan)
        ctx.facts["handled"] = True
        ctx.facts["format"] = scan.format
        rec = scan.recovery
        if rec is not None:
            infos = rec.tensor_infos()
            if infos and not ctx.tensors:
                ctx.tensors = infos
            if rec.scalars and not ctx.metadata:
                ctx.metadata = dict(rec.scalars)
            ctx.facts["container"] = {
                "format": scan.format,
                **scan.container,
                "root": rec.root,
                "state_dict_key": rec.state_dict_key,
                "tensors": len(rec.tensors),
                "tensors_readable": len(infos),
                "tensors_outside_state_dict": len(rec.other),
                "problems": rec.problems[:20],
            }
        return
    if ctx.format == "safetensors":
        # always recorded, so that a safe safetensors file has the verdict ``safe`` (not "not scanned"):
        # the scan looks where the header does not account for the bytes (gaps, trailing data, an appended
        # zip, a header that does not parse) and at the pickle a loader would read from byte 0
        _record(ctx, scan_file(ctx.path, recover_tensors=False, safetensors_header=ctx.header, data=ctx.data))
        return
    # other formats: is the start of the file also a pickle that imports something, or is a zip archive
    # appended to it (a polyglot)?
    if ctx.size and ctx.format not in ("empty",):
        buf = ctx.buffer()
        if buf[0] in VALID_OPCODES or find_appended_zip(buf, 0, len(buf)) is not None:
            scan = scan_file(ctx.path, recover_tensors=False, data=ctx.data)
            if scan.streams or scan.evasions or scan.unscannable:
                _record(ctx, scan)


ANALYZER = Analyzer("pickles", 10, run, version=SCANNER_VERSION, tables=("pickle_scans", "pickle_globals"))
