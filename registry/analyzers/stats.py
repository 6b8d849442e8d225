"""Analyzer ``stats`` (order 40): weight statistics of a safetensors file (or of a PyTorch pickle file whose
tensors the ``pickles`` analyzer recovered without unpickling).

Which statistics a file gets is decided from its tensor names: when adapter modules (LoRA, LyCORIS …,
see :mod:`registry.adapters`) make up the file, every module gets its exact update spectrum
(:mod:`registry.stats`), written to ``lora_modules`` with a ``lora_summary`` row and the
``lora_profile`` by component and block. Any other safetensors file (checkpoint, VAE, embedding …)
gets per-tensor statistics streamed from a memory map (:mod:`registry.tensorstats`) in ``tensor_stats``
and a ``checkpoint_summary`` row. When an earlier analyzer left ``ctx.facts["identity"]`` with a
``kind`` of ``checkpoint`` or ``lora``/``lycoris``/``adapter``, that decides instead.

Leaves ``ctx.facts["stats"]`` = ``{"kind": "adapter"|"checkpoint", **summary}`` for later analyzers.
"""

from __future__ import annotations

import math
import struct
import time
from typing import Any

import numpy as np

from registry.adapters import group_modules
from registry.analysis import Analyzer, FileContext
from registry.files.dtypes import decode, decode_into
from registry.stats import StackedFile, lora_report, module_columns, stacked_lora_files
from registry.tensorstats import tensor_stats, tensor_summary

TABLES = ("lora_modules", "lora_summary", "lora_profile", "tensor_stats", "checkpoint_summary")

#: dtypes a tensor is decoded from straight out of the file's map (little-endian, as safetensors stores them)
_DIRECT: dict[str, np.dtype[Any]] = {"F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
#: F16 tensors' codes, read as little-endian 16-bit integers (widened by the stacked path, registry.stats)
_F16_CODES = np.dtype("<i2")
#: one-element tensors (a LoRA module's alpha) read with ``struct``: (format, bytes)
_SCALAR = {k: (struct.Struct(f), struct.Struct(f).size) for k, f in (("F16", "<e"), ("F32", "<f"), ("F64", "<d"))}

_ADAPTER_KINDS = {"lora", "lycoris", "adapter", "loha", "lokr", "locon", "dora", "ia3", "oft", "boft", "glora"}


def _declared_kind(ctx: FileContext) -> str | None:
    ident = ctx.facts.get("identity")
    kind = ident.get("kind") if isinstance(ident, dict) else getattr(ident, "kind", None)
    if not isinstance(kind, str):
        return None
    k = kind.lower()
    if k in _ADAPTER_KINDS:
        return "adapter"
    if k == "checkpoint":
        return "checkpoint"
    return None


#: the key of ``ctx.facts`` under which :func:`precompute` leaves a file's plan for :func:`run`
_PLAN = "_stats_plan"


def _plan(ctx: FileContext) -> tuple[str, StackedFile | None] | None:
    """Which statistics the file gets ("adapter" with its modules and readers, or "checkpoint"), or None
    when it has no readable tensors."""
    # safetensors files, and pickle-based files whose tensors the pickles analyzer recovered (absolute offsets)
    readable = (ctx.format == "safetensors" and ctx.header is not None) or "container" in ctx.facts
    if not readable or not ctx.tensors:
        return None
    by_name = {t.name: t for t in ctx.tensors}
    grouping = group_modules(by_name, {k: t.shape for k, t in by_name.items()})
    in_modules = sum(len(m.parts) for m in grouping.modules)
    kind = _declared_kind(ctx)
    if kind is None:
        kind = "adapter" if grouping.modules and in_modules * 2 >= len(ctx.tensors) else "checkpoint"
    if not (kind == "adapter" and grouping.modules):
        return "checkpoint", None

    def load(name: str) -> Any:
        t = by_name[name]
        return decode(ctx.raw(t), t.dtype, t.shape)

    buf = ctx.buffer()  # (one view of the map for every tensor)
    end = len(buf)

    def load_into(name: str, out: np.ndarray) -> None:
        t = by_name[name]
        direct = _DIRECT.get(t.dtype)
        if direct is not None and t.nbytes == out.size * direct.itemsize and t.offset + t.nbytes <= end:
            # what decode_into does with ctx.raw(t), without slicing a view of the map per tensor
            np.copyto(out, np.frombuffer(buf, direct, out.size, t.offset).reshape(out.shape), casting="unsafe")
        else:
            decode_into(ctx.raw(t), t.dtype, out)

    def load_codes(name: str, out: np.ndarray) -> bool:
        t = by_name[name]
        if t.dtype != "F16" or t.nbytes != out.size * 2 or t.offset + t.nbytes > end:
            return False
        np.copyto(out, np.frombuffer(buf, _F16_CODES, out.size, t.offset))
        return True

    def load_scalar(name: str) -> float:
        t = by_name[name]
        fmt = _SCALAR.get(t.dtype)
        if fmt is not None and t.nbytes == fmt[1] and math.prod(t.shape) == 1 and t.offset + t.nbytes <= end:
            return float(fmt[0].unpack_from(buf, t.offset)[0])  # (exact: F16/F32 widen to float64 exactly)
        a = np.asarray(load(name), dtype=np.float64)
        return float(a.ravel()[0]) if a.size == 1 else math.nan

    return "adapter", StackedFile(
        grouping,
        load,
        ctx.metadata,
        {k: t.dtype for k, t in by_name.items()},
        {k: t.shape for k, t in by_name.items()},
        load_into,
        load_scalar,
        load_codes=load_codes,
    )


def precompute(ctxs: list[FileContext]) -> None:
    """Plan the statistics of several files (a worker's task) and compute their plain LoRA modules'
    spectra together, stacked by shape across the files (:func:`registry.stats.stacked_lora_files`):
    :func:`run` then finishes each file with the same values as alone. Run after the analyzers before
    this one. Any failure here leaves each file to compute its own (and report it) in :func:`run`."""
    files: list[StackedFile] = []
    for ctx in ctxs:
        try:
            plan = _plan(ctx)
        except Exception:  # noqa: BLE001 - run() meets it again and records it as the analyzer's failure
            continue
        ctx.facts[_PLAN] = plan
        if plan is not None and plan[1] is not None:
            files.append(plan[1])
    if len(files) < 2:
        return
    try:
        stacked_lora_files(files)
    except Exception:  # noqa: BLE001 - each file computes its own in run()
        for f in files:
            f.result = None


def run(ctx: FileContext) -> None:
    plan = ctx.facts.pop(_PLAN) if _PLAN in ctx.facts else _plan(ctx)
    if plan is None:
        return
    t0 = time.perf_counter()
    kind, sf = plan
    if sf is not None:
        rep = lora_report(
            sf.grouping, sf.load, sf.metadata, sf.dtypes, sf.shapes, sf.load_into, sf.load_scalar, stacked=sf.result,
            load_codes=sf.load_codes,
        )
        seconds = time.perf_counter() - t0
        ctx.add_columns("lora_modules", module_columns(rep.modules))
        ctx.add_rows("lora_summary", [{**rep.summary, "seconds": seconds}])
        ctx.add_rows("lora_profile", rep.profile)
        ctx.findings.extend(rep.findings)
        ctx.facts["stats"] = {"kind": "adapter", **rep.summary}
        return
    stats = tensor_stats(ctx.path, ctx.tensors)
    summary, found = tensor_summary(stats)
    seconds = time.perf_counter() - t0
    ctx.add_rows("tensor_stats", [s.as_row() for s in stats])
    ctx.add_rows("checkpoint_summary", [{**summary, "seconds": seconds}])
    ctx.findings.extend(found)
    ctx.facts["stats"] = {"kind": "checkpoint", **summary}


ANALYZER = Analyzer("stats", 40, run, version="2", tables=TABLES, batch=precompute)
