"""The analyzer plug-in point of the scan pipeline.

A scan reads each file once (hashes, sniffed format, safetensors header) and then hands a
:class:`FileContext` to every analyzer, in ``order``. Analyzers live one per module in
``registry/analyzers/``; each module exposes ``ANALYZER = Analyzer(...)`` and is discovered by name, so
adding one touches no central list.

An analyzer reads from the context (tensors, metadata, raw tensor bytes through a memory map, facts left
by earlier analyzers), and writes back:

* ``ctx.findings``: :class:`~registry.findings.Finding` objects about the file's content;
* ``ctx.rows[table]``: rows (dicts) for a blob-keyed table created by the analyzer's migration; the
  writer adds the ``blob_sha256`` column and inserts all rows of a table in one Arrow insert
  (``ctx.columns[table]``, through :meth:`FileContext.add_columns`: the same as columns of storable
  values, inserted without per-cell work);
* ``ctx.facts[key]``: values for later analyzers (e.g. ``identity`` for statistics);
* ``ctx.tensors`` / ``ctx.metadata``: a container analyzer (pickles) fills these for non-safetensors files;
* ``ctx.facts["handled"] = True``: a container analyzer understood a non-safetensors format (otherwise the
  scan records "format not yet supported").

Declare the tables an analyzer fills in ``Analyzer.tables`` so that ``scan --rehash`` replaces them.

Analyzers run in worker processes without the registry open; they must not touch the database.
An exception inside an analyzer becomes an ``analyzer.crashed`` finding; the scan goes on.
"""

from __future__ import annotations

import contextlib
import importlib
import mmap
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.files.safetensors import SafetensorsHeader, TensorInfo
from registry.findings import Finding, Severity, finding, rule

R_ANALYZER_CRASHED = rule(
    "analyzer.crashed", Severity.MEDIUM, "An analyzer failed on this file; its results are missing"
)


#: files up to this size are mapped with ``MAP_POPULATE`` (Linux): analyzers read all of such a file
POPULATE_MAX = 512 << 20


@dataclass
class FileContext:
    path: Path
    size: int
    #: sniffed container format (``safetensors``, ``pytorch-zip``, ``pickle`` …)
    format: str
    #: hex digests by name (``sha256``, ``autov3`` …), or empty when the file could not be hashed
    hashes: dict[str, str | None]
    header: SafetensorsHeader | None = None
    tensors: list[TensorInfo] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: rows given as columns (:meth:`add_columns`), for tables with many rows per file
    columns: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    #: the whole file's bytes, when the scan read them all already (a small file): :meth:`buffer` serves
    #: them instead of mapping the file
    data: bytes | None = field(default=None, repr=False)
    _map: mmap.mmap | None = field(default=None, repr=False)
    _fh: Any = field(default=None, repr=False)

    # -- raw access ---------------------------------------------------------------------------
    def buffer(self) -> memoryview:
        """A read-only memory map of the whole file (opened lazily, closed by :meth:`close`), or a view of
        :attr:`data` when given."""
        if self.data is not None:
            return memoryview(self.data)
        if self._map is None:
            if self.size == 0:
                return memoryview(b"")
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
            populate = getattr(mmap, "MAP_POPULATE", 0) if self.size <= POPULATE_MAX else 0
            if populate:  # map every page now, in one go: faulting them in one by one costs ~2 ms per MB
                self._map = mmap.mmap(self._fh.fileno(), 0, flags=mmap.MAP_SHARED | populate, prot=mmap.PROT_READ)
            else:
                self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        return memoryview(self._map)

    def raw(self, t: TensorInfo) -> memoryview:
        """The bytes of one tensor (absolute offset ``t.offset``, length ``t.nbytes``)."""
        buf = self.buffer()
        if t.offset + t.nbytes > len(buf):
            raise ValueError(f"tensor {t.name!r} extends past the end of the file")
        return buf[t.offset : t.offset + t.nbytes]

    def add_rows(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.rows.setdefault(table, []).extend(rows)

    def add_columns(self, table: str, columns: dict[str, list[Any]]) -> None:
        """Rows given as columns (name -> one value per row, every list as long): the writer inserts them
        without looking at each cell, so the values must be storable as they are (text through
        :func:`registry.paths.clean_text`, JSON columns as JSON text, lists of numbers as lists)."""
        have = self.columns.get(table)
        if have is None:
            self.columns[table] = {k: list(v) for k, v in columns.items()}
        else:
            if set(have) != set(columns):
                raise ValueError(f"columns of {table} differ: {sorted(have)} and {sorted(columns)}")
            for k, v in columns.items():
                have[k].extend(v)

    def close(self) -> None:
        if self._map is not None:
            # a numpy view may still reference the map; the OS then frees it when the process ends
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass(frozen=True)
class Analyzer:
    name: str
    #: lower runs first: containers ~10, identification ~20, training ~30, statistics ~40
    order: int
    run: Callable[[FileContext], None]
    #: bump when the analyzer's output changes, so ``scan --rehash`` can tell old results apart
    version: str = "1"
    #: blob-keyed tables this analyzer fills (cleared for a blob before ``scan --rehash`` rewrites it)
    tables: tuple[str, ...] = ()
    #: optional: work for several files at once (a worker's task of small files), run on their contexts
    #: after every earlier analyzer and before this one; ``run`` then finishes each file with the same
    #: results as alone. Must not raise (a failure leaves ``run`` to do all the work).
    batch: Callable[[list[FileContext]], None] | None = None


_ANALYZERS: list[Analyzer] | None = None


def load_analyzers() -> list[Analyzer]:
    """Import every module of ``registry.analyzers`` and return their analyzers in order."""
    global _ANALYZERS
    if _ANALYZERS is None:
        import registry.analyzers as pkg

        found: list[Analyzer] = []
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            mod = importlib.import_module(f"registry.analyzers.{info.name}")
            a = getattr(mod, "ANALYZER", None)
            if isinstance(a, Analyzer):
                found.append(a)
        _ANALYZERS = sorted(found, key=lambda a: (a.order, a.name))
    return _ANALYZERS


def run_analyzers(ctx: FileContext, only: set[str] | None = None, orders: tuple[int, int] | None = None) -> None:
    """Run every analyzer on ``ctx`` (those of ``only``; those whose ``order`` lies in ``[lo, hi)`` of
    ``orders``, for a scan that runs the later ones for several files at once); a crash becomes a
    finding, never an exception."""
    seconds: dict[str, float] = ctx.facts.setdefault("seconds", {})
    for a in load_analyzers():
        if only is not None and a.name not in only:
            continue
        if orders is not None and not orders[0] <= a.order < orders[1]:
            continue
        t0 = time.perf_counter()
        try:
            a.run(ctx)
        except MemoryError:
            ctx.findings.append(
                finding(R_ANALYZER_CRASHED.id, f"analyzer {a.name!r} ran out of memory", analyzer=a.name)
            )
        except Exception as e:  # noqa: BLE001 - any analyzer failure is recorded, not raised
            ctx.findings.append(
                finding(
                    R_ANALYZER_CRASHED.id,
                    f"analyzer {a.name!r} failed: {type(e).__name__}: {e}",
                    analyzer=a.name,
                    error=type(e).__name__,
                )
            )
        finally:
            seconds[a.name] = time.perf_counter() - t0


def batch_point() -> tuple[int, Callable[[list[FileContext]], None]] | None:
    """The order and ``batch`` hook of the first analyzer that has one (see :class:`Analyzer`), or None."""
    for a in load_analyzers():
        if a.batch is not None:
            return a.order, a.batch
    return None


def analyzer_versions() -> str:
    return ",".join(f"{a.name}={a.version}" for a in load_analyzers())


def derived_tables() -> set[str]:
    """Every blob-keyed table written by analyzers."""
    out: set[str] = set()
    for a in load_analyzers():
        out.update(a.tables)
    return out
