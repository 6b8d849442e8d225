"""What every command shares: the application object, output rendering and error mapping."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from registry.errors import AmbiguousRef, RegistryError
from registry.jsonout import dumps

FORMATS = ("table", "json", "jsonl", "csv")


@dataclass
class App:
    db_path: Path | None = None
    #: tables print every cell whole (``--no-truncate``): no wrapping, no cutting
    no_truncate: bool = False

    def registry_path(self) -> Path:
        from registry.store.db import default_db_path

        return self.db_path if self.db_path is not None else default_db_path()


def get_app(ctx: click.Context | None = None) -> App:
    ctx = ctx or click.get_current_context()
    obj = ctx.find_root().obj
    if not isinstance(obj, App):
        obj = App()
        ctx.find_root().obj = obj
    return obj


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def _cell(v: Any) -> str:
    t = type(v)
    if t is str:  # most cells: the same text as str(v) below, without the checks
        return v
    if t is int:
        return str(v)
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | dict):
        return dumps(v)
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def render_rows(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    out: Any = None,
    max_width: int = 60,
    width: int | None = None,
) -> None:
    """Write rows to stdout as a table, JSON array (streamed), JSON lines or CSV.

    A table is never cut silently: written to a pipe or file (or with ``--no-truncate``) every cell is
    whole; on a terminal of ``width`` columns (default: the terminal's) the widest columns are narrowed
    and their cells wrapped over several lines. Only when the terminal is too narrow to wrap (each
    column would keep fewer than :data:`MIN_WRAP` characters) are long cells cut to ``max_width`` with
    "…", as the hint on stderr says.
    """
    sink = out or sys.stdout
    # rows already in hand (or a table, which waits for them all) go out in a few large writes (with
    # PYTHONUNBUFFERED every write() is a system call); rows still being produced go out one by one
    out = _Batched(sink, BATCH_CHARS if fmt == "table" or isinstance(rows, list | tuple) else 0)
    try:
        if fmt == "json":
            out.write("[")
            first = True
            for r in rows:
                out.write(("\n  " if first else ",\n  ") + dumps({c: r.get(c) for c in columns}))
                first = False
            out.write("\n]\n" if not first else "]\n")
        elif fmt == "jsonl":
            for r in rows:
                out.write(dumps({c: r.get(c) for c in columns}) + "\n")
        elif fmt == "csv":
            import csv

            w = csv.writer(out, lineterminator="\n")
            w.writerow(columns)
            for r in rows:
                w.writerow([_cell(r.get(c)) for c in columns])
        else:
            cells = _table_cells(rows if isinstance(rows, list) else list(rows), columns)
            if width is None and not _no_truncate() and _isatty(sink):
                import shutil

                width = shutil.get_terminal_size().columns
            for line in table_lines(list(columns), cells, width, max_width):
                out.write(line + "\n")
    finally:
        out.flush()


def _table_cells(rows: list[dict[str, Any]], columns: Sequence[str]) -> list[list[str]]:
    """The text of every cell (:func:`_cell`, a line break shown as a space), row by row; built column by
    column, strings taken as they are without a call per cell (`ls` on 3,000 models: 33,000 cells)."""
    texts = []
    for c in columns:
        col = [v if type(v) is str else _cell(v) for v in [r.get(c) for r in rows]]
        if "\n" in "".join(col):
            col = [t.replace("\n", " ") for t in col]
        texts.append(col)
    return [list(row) for row in zip(*texts, strict=True)] if texts else [[] for _ in rows]


class _Batched:
    """Text written to ``sink`` in pieces of at least ``batch`` characters (:data:`BATCH_CHARS`) and on
    :meth:`flush`; ``batch`` 0: every piece as it comes."""

    def __init__(self, sink: Any, batch: int = 0) -> None:
        self.sink = sink
        self.batch = batch
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= self.batch:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self.parts:
            text = "".join(self.parts)
            self.parts.clear()
            self.size = 0
            self.sink.write(text)


#: how much text :class:`_Batched` gathers before writing it
BATCH_CHARS = 1 << 16


_SKIP_FINAL_COLLECTION = False


def skip_final_collection() -> None:
    """At exit, let the interpreter's last cycle collections skip every object alive then (``gc.freeze``
    in an exit handler): they traverse every module, class and function only to find nothing, 8-15 ms of
    a `show` or `ls` that itself takes under 200 ms. The process frees its memory when it ends; what is
    lost is the finalizer of an object left in a reference cycle, so only commands that read the registry
    and print call this (a file left open in a cycle would go unflushed)."""
    global _SKIP_FINAL_COLLECTION
    if not _SKIP_FINAL_COLLECTION:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _SKIP_FINAL_COLLECTION = True


#: the narrowest a wrapped column gets; below this a table is cut instead of wrapped
MIN_WRAP = 16


def _isatty(out: Any) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


def _no_truncate() -> bool:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return isinstance(obj, App) and obj.no_truncate


def table_lines(columns: list[str], cells: list[list[str]], width: int | None, max_width: int = 60) -> list[str]:
    """The lines of an aligned table. ``width`` None: every cell whole. Otherwise the widest columns are
    narrowed until the table fits ``width`` and their cells wrapped; if it cannot fit with every column
    at least :data:`MIN_WRAP` wide (or its natural width, if smaller), cells are cut to ``max_width``."""
    heads = [c.upper() for c in columns]
    if cells:  # column by column (zip(*cells)), without a Python step per cell
        natural = [max(len(h), max(map(len, col))) for h, col in zip(heads, zip(*cells, strict=True), strict=True)]
    else:
        natural = [len(h) for h in heads]
    widths = list(natural)
    if width is not None:
        room = width - 2 * (len(columns) - 1)
        floor = [min(n, max(MIN_WRAP, len(h))) for n, h in zip(natural, heads, strict=True)]
        if sum(floor) > room:  # too narrow to wrap: cut long cells, as before
            cells = [[_truncate(v, max_width) for v in row] for row in cells]
            widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
        else:
            while sum(widths) > room:
                i = max(range(len(widths)), key=lambda j: (widths[j] - floor[j] > 0, widths[j]))
                widths[i] = max(floor[i], widths[i] - (sum(widths) - room))
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip()]
    if widths == natural:  # every cell fits its column: one line per row, nothing wrapped
        # (one format call per row pads every cell as str.ljust does: to its column's width in characters)
        line = "  ".join(f"{{:<{w}}}" for w in widths).format
        lines.extend([line(*row).rstrip() for row in cells])
        return lines
    import textwrap

    for row in cells:
        parts = [
            textwrap.wrap(v, w, break_long_words=True, break_on_hyphens=False) or [""] if len(v) > w else [v]
            for v, w in zip(row, widths, strict=True)
        ]
        for k in range(max(len(p) for p in parts)):
            lines.append(
                "  ".join((p[k] if k < len(p) else "").ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip()
            )
    return lines


def _truncate(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def no_truncate_option() -> Any:
    """``--no-truncate``: every table cell whole, never wrapped or cut (also ``modelreg --no-truncate``)."""

    def set_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            get_app(ctx).no_truncate = True

    return click.option(
        "--no-truncate",
        is_flag=True,
        expose_value=False,
        callback=set_flag,
        help="Tables: print every cell whole (no wrapping or cutting to the terminal's width).",
    )


def format_option(choices: Sequence[str] = FORMATS, default: str = "table") -> Any:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="Output format.",
    )


INTERRUPTED = "modelreg: interrupted; everything committed so far is kept"


class _Interrupt:
    """Whether Ctrl-C came during the command (:func:`handle_errors` notes it), and whether this is the
    ``modelreg`` process itself (``cli.main.main``; not a test's ``CliRunner``)."""

    seen = False
    own_process = False


def _on_sigint(signum: int, frame: Any) -> None:
    _Interrupt.seen = True
    raise KeyboardInterrupt


def _after_command(signum: int, frame: Any) -> None:
    """Ctrl-C once the command is done, while the process exits: click would print "Aborted!" and exit 1,
    the code for findings at or above ``--fail-on``."""
    echo_err(INTERRUPTED)
    raise SystemExit(130)


@contextmanager
def own_process() -> Iterator[None]:
    """Around ``modelreg``'s whole run in its own process (``cli.main.main``; not a test's ``CliRunner``):
    a Ctrl-C after the command's work, while click winds down, exits 130 with the one line
    (:func:`_after_command`), not click's "Aborted!" and exit 1. Ctrl-C is left as it was afterwards (a test
    that calls ``main`` in its own process)."""
    import signal

    _Interrupt.own_process = True
    try:
        yield
    finally:
        _Interrupt.own_process = False
        if signal.getsignal(signal.SIGINT) is _after_command:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def handle_errors() -> Iterator[None]:
    """Known errors become one clear line and their exit code; unknown ones keep their traceback.

    Ctrl-C ends the command with one line and exit 130 whatever error it surfaces as: DuckDB turns it
    into errors of its own when it lands inside a statement (``RuntimeError("Query interrupted")``; a
    table of the statement "does not exist" when it lands while DuckDB looks up a Python variable), and
    the aborted transaction may refuse the next statement. So the command's SIGINT handler notes it
    before raising ``KeyboardInterrupt`` as Python's own does."""
    import signal
    import threading

    installed = threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if installed:
        signal.signal(signal.SIGINT, _on_sigint)
    _Interrupt.seen = False
    try:
        yield
    except AmbiguousRef as e:
        echo_err(f"modelreg: {e}")
        for c in e.candidates:
            echo_err(f"  {c}")
        raise click.exceptions.Exit(e.exit_code) from None
    except RegistryError as e:
        if _Interrupt.seen:  # (e.g. "creating the registry's schema failed: Query interrupted")
            echo_err(INTERRUPTED)
            raise click.exceptions.Exit(130) from None
        echo_err(f"modelreg: {e}")
        raise click.exceptions.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        echo_err(INTERRUPTED)
        raise click.exceptions.Exit(130) from None
    except Exception as e:
        if not (_Interrupt.seen or interrupted_query(e)):
            raise
        echo_err(INTERRUPTED)
        raise click.exceptions.Exit(130) from None
    finally:
        if installed:
            signal.signal(signal.SIGINT, _after_command if _Interrupt.own_process else signal.default_int_handler)


def interrupted_query(e: BaseException) -> bool:
    """Whether ``e`` is DuckDB's answer to Ctrl-C in the middle of a statement: DuckDB 2.x stops the
    statement and raises ``RuntimeError("Query interrupted")`` instead of the ``KeyboardInterrupt`` the
    signal would otherwise give (1.x: ``duckdb.InterruptException``); the statement's transaction is rolled
    back, as for any failed statement."""
    if type(e) is RuntimeError:
        return str(e) == "Query interrupted"
    return type(e).__name__ == "InterruptException" and type(e).__module__.lstrip("_").startswith("duckdb")


def text_table(pairs: Sequence[tuple[str, Any]], out: io.TextIOBase | Any = None) -> None:
    """Aligned ``key: value`` lines."""
    out = out or sys.stdout
    if not pairs:
        return
    width = max(len(k) for k, _ in pairs)
    for k, v in pairs:
        out.write(f"{k.ljust(width)}  {_cell(v)}\n")


def read_registry(app: App | None = None) -> Any:
    """Open the registry read-only, telling the user on stderr if it has to wait for a writer."""
    from registry.store.db import connect

    app = app or get_app()
    return connect(app.registry_path(), read_only=True, on_wait=echo_err)


def write_registry(app: App | None = None) -> Any:
    from registry.store.db import connect

    app = app or get_app()
    return connect(app.registry_path(), on_wait=echo_err, on_create=echo_err)


def severity_option(name: str = "--fail-on", default: str | None = None, help: str = "") -> Any:
    from registry.findings import Severity

    return click.option(
        name,
        "fail_on",
        type=click.Choice([s.label for s in Severity]),
        default=default,
        help=help or "Exit 1 when a finding at or above this severity is recorded.",
    )


@contextmanager
def file_progress(enabled: bool | None) -> Iterator[Any]:
    """A ``progress(bytes_done, bytes_total, path)`` callback drawing a bar on stderr, in bytes (by default
    only when stderr is a terminal). The bar appears with the first file that has a size to show, so a run
    with nothing to read draws none; it is closed when the block ends."""
    show = sys.stderr.isatty() if enabled is None else enabled
    bar: Any = None

    def on_progress(done: int, total: int | None, path: str) -> None:
        nonlocal bar
        if not show:
            return
        if bar is None:
            if not total:
                return
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                       dynamic_ncols=True, leave=False)  # fmt: skip
        if total is not None and bar.total != total:
            bar.total = total
            bar.n = 0  # a new scan pass (audit scans its plain files, then the HF cache)
        bar.set_postfix_str(Path(path).name[-40:], refresh=False)
        bar.update(done - bar.n)

    try:
        yield on_progress
    finally:
        if bar is not None:
            bar.close()
