"""cli/_app.render_rows writes rows already in hand in a few large writes (issue 21: `ls` on 3,000 models
made 3,001 write() system calls with PYTHONUNBUFFERED), the same text as row by row, and still streams
rows that are being produced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli._app import BATCH_CHARS, render_rows


class Sink:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"a": i, "b": f"name_{i:05d}.safetensors", "c": None if i % 3 else 2.5} for i in range(n)]


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv"])
def test_rows_in_hand_go_out_in_few_writes_with_the_same_text(fmt: str) -> None:
    rows = _rows(3000)
    batched, one_by_one = Sink(), Sink()
    render_rows(rows, ["a", "b", "c"], fmt, out=batched)
    render_rows(iter(rows), ["a", "b", "c"], fmt, out=one_by_one)  # an iterator: written as produced
    text = "".join(batched.writes)
    assert text == "".join(one_by_one.writes)
    assert len(batched.writes) <= len(text) // BATCH_CHARS + 2
    # a table waits for every row anyway (its column widths): batched whatever the rows come in
    assert len(one_by_one.writes) == len(batched.writes) if fmt == "table" else len(one_by_one.writes) >= 3000
    if fmt == "jsonl":
        assert [json.loads(line)["a"] for line in text.splitlines()] == list(range(3000))
    if fmt == "table":
        assert text.splitlines()[0].split() == ["A", "B", "C"] and text.splitlines()[3000].startswith("2999  name_02999")


def test_rows_being_produced_are_written_before_the_last_is_made() -> None:
    sink = Sink()
    seen: list[int] = []

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(3):
            seen.append(len("".join(sink.writes)))
            yield {"a": i}

    render_rows(rows(), ["a"], "jsonl", out=sink)
    assert seen[0] == 0 and seen[1] > 0 and seen[2] > seen[1]
    assert "".join(sink.writes) == '{"a": 0}\n{"a": 1}\n{"a": 2}\n'


def test_rows_written_before_an_error_are_not_lost() -> None:
    sink = Sink()

    def rows() -> Iterator[dict[str, Any]]:
        yield {"a": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        render_rows(rows(), ["a"], "csv", out=sink)
    assert "".join(sink.writes) == "a\n1\n"


def test_show_and_ls_let_the_exit_skip_the_last_cycle_collections(tmp_path: Path) -> None:
    """`show` and `ls` (read and print only) freeze every live object at exit, so the interpreter's final
    collections do not traverse them (8-15 ms of each); other commands do not. In a fresh interpreter."""
    import subprocess
    import sys

    import numpy as np
    from click.testing import CliRunner

    from cli.main import root
    from tests.builders import write_safetensors

    reg = tmp_path / "r.duckdb"
    write_safetensors(tmp_path / "m" / "alpha.safetensors", {"w": np.arange(4, dtype=np.float32)})
    assert CliRunner().invoke(root, ["--db", str(reg), "scan", str(tmp_path / "m")]).exit_code == 0
    script = (
        "import atexit, gc, sys\n"
        "from cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "atexit._run_exitfuncs()\n"
        "print('frozen', gc.get_freeze_count() > 0)\n"
    )
    root = Path(__file__).resolve().parent.parent
    cases = ((["ls"], True), (["ls", "--format", "json"], True), (["show", "alpha.safetensors"], True), (["log"], False))
    for argv, frozen in cases:
        done = subprocess.run([sys.executable, "-c", script, "--db", str(reg), *argv], capture_output=True, text=True, cwd=root)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == f"frozen {frozen}", (argv, done.stdout[-300:])


# -- the table's text against a plain reference (cell by cell, str.ljust), over cells of every type ---------

_CELL_VALUES = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.text(st.sampled_from("ab -\n\t\u754c\u00e9\u0301"), max_size=12),  # line breaks, wide, combining
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
    st.datetimes(),
)


def _reference_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """What a table must read: every cell through _cell with line breaks as spaces, each column as wide as
    its widest cell or heading, cells padded with str.ljust, two spaces between columns, lines right-stripped."""
    from cli._app import _cell

    heads = [c.upper() for c in columns]
    cells = [[_cell(r.get(c)).replace("\n", " ") for c in columns] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [heads, *cells]]
    return "".join(line + "\n" for line in lines)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda k: st.tuples(
            st.lists(st.sampled_from(["a", "bb", "name", "x_y"]), min_size=k, max_size=k, unique=True),
            st.lists(st.lists(_CELL_VALUES, min_size=k, max_size=k), max_size=6),
        )
    )
)
def test_a_whole_table_reads_as_the_cell_by_cell_reference(spec: tuple[list[str], list[list[Any]]]) -> None:
    columns, values = spec
    rows = [dict(zip(columns, vs, strict=True)) for vs in values]
    sink = Sink()
    render_rows(rows, columns, "table", out=sink, width=None)
    assert "".join(sink.writes) == _reference_table(rows, columns)
