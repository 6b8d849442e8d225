"""Everyday use (issue 20): tables that are never cut silently, usage errors for bad choices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli._app import MIN_WRAP, render_rows, table_lines
from cli.main import root
from tests.builders import write_safetensors


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


LONG = "x" * 30 + " " + "y" * 40 + " " + "z" * 50  # 122 characters


def test_table_without_a_width_keeps_every_cell_whole() -> None:
    lines = table_lines(["a", "message"], [["1", LONG]], None)
    assert lines == ["A  MESSAGE", "1  " + LONG]


def test_table_wraps_the_widest_column_to_the_terminal() -> None:
    lines = table_lines(["a", "message"], [["1", LONG], ["2", "short"]], 60)
    assert all(len(ln) <= 60 for ln in lines)
    # the message column is 60 - 1 - 2 = 57 wide: the words wrap at spaces, nothing is lost
    assert lines == ["A  MESSAGE", "1  " + "x" * 30, "   " + "y" * 40, "   " + "z" * 50, "2  short"]
    # a word longer than the column is broken, not cut
    assert table_lines(["a", "p"], [["1", "q" * 70]], 40)[1:] == ["1  " + "q" * 37, "   " + "q" * 33]


def test_table_too_narrow_to_wrap_cuts_with_an_ellipsis() -> None:
    cols = [f"c{i}" for i in range(6)]
    cells = [[LONG] * 6]
    lines = table_lines(cols, cells, 6 * MIN_WRAP, max_width=20)
    assert lines[1].split("  ")[0] == LONG[:19] + "…"


def test_render_rows_not_a_terminal_never_cuts() -> None:
    import io

    buf = io.StringIO()
    render_rows([{"path": "/m/" + "p" * 150}], ["path"], "table", out=buf, max_width=100)
    assert buf.getvalue().splitlines()[1] == "/m/" + "p" * 150


def test_ls_paths_longer_than_100_characters_are_whole(tmp_path: Path, db: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    f = write_safetensors(deep / "m.safetensors", {"w": np.zeros((2, 2), np.float32)})
    code, _, err = run("scan", str(f))
    assert code == 0, err
    code, out, _ = run("ls")
    assert code == 0 and str(f) in out
    code, out, _ = run("ls", "--no-truncate")
    assert code == 0 and str(f) in out


def test_no_truncate_on_a_narrow_terminal(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = write_safetensors(tmp_path / ("n" * 120 + ".safetensors"), {"w": np.zeros((2, 2), np.float32)})
    run("scan", str(f))
    monkeypatch.setattr("cli._app._isatty", lambda out: True)
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run("ls")
    lines = out.splitlines()
    assert code == 0 and str(f) not in out and all(len(ln) <= 160 for ln in lines) and len(lines) > 2
    col = lines[0].index("PATH")
    assert "".join(ln[col:] for ln in lines[1:]) == str(f)  # wrapped over several lines, whole
    code, out, _ = run("ls", "--no-truncate")
    assert code == 0 and str(f) in out
    code, out, _ = run("--no-truncate", "ls")
    assert code == 0 and str(f) in out


def test_ls_unknown_kind_is_a_usage_error(db: Path) -> None:
    code, out, err = run("ls", "--kind", "bogus")
    assert code == 2 and out == ""
    assert "'bogus' is not one of" in err and "'checkpoint'" in err and "'adapter'" in err
    code, out, _ = run("ls", "--kind", "LoRA", "--format", "json")
    assert code == 0 and json.loads(out) == []
