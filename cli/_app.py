"""What every command shares: the application object, output rendering and error mapping."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from registry.errors import AmbiguousRef, RegistryError

FORMATS = ("table", "json", "jsonl", "csv")


@dataclass
class App:
    db_path: Path | None = None

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


def _json_default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Decimal):
        return float(o)
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, default=_json_default, indent=indent, ensure_ascii=False)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def _cell(v: Any) -> str:
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
    rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str, out: Any = None, max_width: int = 60
) -> None:
    """Write rows to stdout as a table, JSON array (streamed), JSON lines or CSV."""
    out = out or sys.stdout
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
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])
    else:
        materialised = [[_truncate(_cell(r.get(c)), max_width) for c in columns] for r in rows]
        widths = [max([len(c)] + [len(row[i]) for row in materialised]) for i, c in enumerate(columns)]
        out.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
        for row in materialised:
            out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _truncate(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def format_option(choices: Sequence[str] = FORMATS, default: str = "table") -> Any:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="Output format.",
    )


@contextmanager
def handle_errors() -> Iterator[None]:
    """Known errors become one clear line and their exit code; unknown ones keep their traceback."""
    try:
        yield
    except AmbiguousRef as e:
        echo_err(f"modelreg: {e}")
        for c in e.candidates:
            echo_err(f"  {c}")
        raise click.exceptions.Exit(e.exit_code) from None
    except RegistryError as e:
        echo_err(f"modelreg: {e}")
        raise click.exceptions.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        echo_err("modelreg: interrupted; everything committed so far is kept")
        raise click.exceptions.Exit(130) from None


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
    """A ``progress(done, total, path)`` callback drawing a bar on stderr (by default only when stderr
    is a terminal); the bar is closed when the block ends."""
    show = sys.stderr.isatty() if enabled is None else enabled
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="file", file=sys.stderr, dynamic_ncols=True, leave=False)

    def on_progress(done: int, total: int | None, path: str) -> None:
        if bar is not None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.set_postfix_str(Path(path).name[-40:], refresh=False)
            bar.update(done - bar.n)

    try:
        yield on_progress
    finally:
        if bar is not None:
            bar.close()
