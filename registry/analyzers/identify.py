"""Analyzer ``identify`` (order 20): kind, adapter type, key style and base architecture of the file.

Sets ``ctx.facts["identity"]`` (a :class:`registry.identify.Identity`) for later analyzers and writes one
``identity`` row. Files without a tensor table (formats not read yet, HTML, LFS pointers) are skipped:
the scan records why elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

from registry.analysis import Analyzer, FileContext
from registry.identify import Identity, identify

#: ``json.dumps(v, default=str)``'s encoder, built once (not for every cell of every file)
_JSON = json.JSONEncoder(default=str)


def identity_row(ident: Identity) -> dict[str, Any]:
    d = ident.to_dict()
    return {
        "kind": d["kind"],
        "adapter_type": d["adapter_type"],
        "key_style": d["key_style"],
        "arch": d["arch"],
        "arch_variant": d["arch_variant"],
        "confidence": d["confidence"],
        "kind_confidence": d["kind_confidence"],
        "source": d["source"],
        "components": [str(c) for c in d["components"]],
        "arch_candidates": [str(c) for c in d["arch_candidates"]],
        # JSON text, so that empty lists stay JSON arrays (the writer only encodes non-empty ones)
        "evidence": _JSON.encode(d["evidence"]),
        "claims": _JSON.encode(d["claims"]),
        "details": _JSON.encode(d["details"]),
    }


def run(ctx: FileContext) -> None:
    if not ctx.tensors and ctx.format != "safetensors":
        return
    ident, findings = identify(ctx.tensors, ctx.metadata or None)
    ctx.facts["identity"] = ident
    ctx.findings.extend(findings)
    ctx.add_rows("identity", [identity_row(ident)])


ANALYZER = Analyzer("identify", 20, run, version="1", tables=("identity",))
