"""Everyday use (issue 20): tables that are never cut silently, usage errors for bad choices."""

from __future__ import annotations

import hashlib
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
    empty = db.parent / "empty"
    empty.mkdir()
    assert run("scan", str(empty))[0] == 0  # an empty registry: `ls` on none exits 2 for another reason
    code, out, err = run("ls", "--kind", "bogus")
    assert code == 2 and out == ""
    assert "'bogus' is not one of" in err and "'checkpoint'" in err and "'adapter'" in err
    code, out, _ = run("ls", "--kind", "LoRA", "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_a_command_needing_an_extra_says_which_in_one_line(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: without the extra, exit 3 and one line naming the extra and how to install it."""
    import registry.extras

    real = registry.extras.find_spec
    monkeypatch.setattr(registry.extras, "find_spec", lambda m: None if m in ("weasyprint", "huggingface_hub") else real(m))
    code, out, err = run("verify", str(tmp_path))
    assert (code, out) == (3, "")
    assert err == "modelreg: verify needs the 'exhibit' extra (not installed: weasyprint): pip install 'modelreg[exhibit]'\n"
    code, _, err = run("scan", "hf://org/repo")
    assert code == 3 and err == (
        "modelreg: scan hf:// needs the 'hub' extra (not installed: huggingface_hub): pip install 'modelreg[hub]'\n"
    )
    f = write_safetensors(tmp_path / "m.safetensors", {"w": np.zeros((2, 2), np.float32)})
    run("scan", str(f))
    code, _, err = run("export", str(f), "--format", "spdx")
    assert code == 3 and "needs the 'exhibit' extra" in err
    code, out, _ = run("export", str(f))  # the canonical record needs only the core
    assert code == 0 and json.loads(out)["model"]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_core_commands_import_no_extra(tmp_path: Path) -> None:
    """Issue 20: scan, show, ls, query, audit, declare and dupes run without importing any extra's packages
    (in a fresh interpreter; the HF cache is absent here, so huggingface_hub is not needed either)."""
    import subprocess
    import sys

    f = write_safetensors(tmp_path / "m" / "m.safetensors", {"w": np.zeros((2, 2), np.float32)})
    decl = Path(__file__).resolve().parent.parent / "examples" / "declarations"
    example = sorted(decl.glob("*.yaml"))[0]
    script = (
        "import sys\n"
        "from cli.main import main\n"
        f"db = {str(tmp_path / 'r.duckdb')!r}\n"
        f"for args in (['scan', {str(f)!r}], ['show', 'm.safetensors'], ['ls'], ['query', 'SELECT 1'],\n"
        f"             ['audit', {str(tmp_path / 'm')!r}], ['declare', '--check', {str(example)!r}],\n"
        f"             ['dupes'], ['export', 'm.safetensors']):\n"
        "    try:\n        main(['--db', db, *args])\n    except SystemExit as e:\n"
        "        assert e.code in (0, None), (args, e.code)\n"
        "heavy = ('weasyprint', 'model_signing', 'OpenSSL', 'cryptography', 'pypdf', 'cyclonedx', 'spdx_python_model',\n"
        "         'huggingface_hub', 'torch', 'diffusers', 'open_clip', 'transformers')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("MODELREG_DB",)}
    env.update(HOME=str(tmp_path / "home"), MODELREG_CONFIG=str(tmp_path / "none.yaml"), HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_scan_progress_counts_bytes(tmp_path: Path, db: Path) -> None:
    """Issue 20: progress is in bytes (a big file weighs what it weighs), unchanged files count as done."""
    from registry.scan import scan

    small = write_safetensors(tmp_path / "m" / "s.safetensors", {"w": np.zeros((2, 2), np.float32)})
    big = write_safetensors(tmp_path / "m" / "b.safetensors", {"w": np.zeros((256, 256), np.float32)})
    calls: list[tuple[int, int | None, str]] = []
    scan([str(tmp_path / "m")], db, progress=lambda d, t, p: calls.append((d, t, p)))
    total = small.stat().st_size + big.stat().st_size
    assert [c[1] for c in calls] == [total, total]
    size = {str(small): small.stat().st_size, str(big): big.stat().st_size}
    assert calls[0][0] == size[calls[0][2]] and calls[1][0] == total  # each step is that file's bytes
    calls.clear()
    scan([str(tmp_path / "m")], db, progress=lambda d, t, p: calls.append((d, t, p)))  # unchanged: done at once
    assert calls[-1][:2] == (total, total)


def test_progress_bar_is_in_bytes_and_absent_when_there_is_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from cli._app import file_progress

    with file_progress(True) as on_progress:
        pass
    assert capsys.readouterr().err == ""  # no stray "0file" bar
    with file_progress(True) as on_progress:
        on_progress(0, 0, "x")
    assert capsys.readouterr().err == ""
    with file_progress(True) as on_progress:
        on_progress(3 << 20, 4 << 20, "/m/big.safetensors")
    err = capsys.readouterr().err
    assert "/4.00M" in err and "B/s" in err and "file" not in err  # a byte bar (tqdm throttles redraws)


def test_every_view_keyed_by_content_has_a_sha256_column(tmp_path: Path, db: Path) -> None:
    """Issue 20: the model's SHA-256 is `sha256` in every view; views that named it `blob_sha256` keep that
    name as an alias (views only gain columns), with the same values."""
    import duckdb

    f = write_safetensors(tmp_path / "m" / "x.safetensors", {"w": np.zeros((2, 2), np.float32)})
    run("scan", str(f))
    with duckdb.connect(str(db), read_only=True) as con:
        views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
        assert len(views) > 20
        keyed = []
        for v in views:
            cols = [r[0] for r in con.execute(f'DESCRIBE "{v}"').fetchall()]
            if "blob_sha256" in cols:
                keyed.append(v)
                assert "sha256" in cols, v
                assert con.execute(f'SELECT count(*) FROM "{v}" WHERE sha256 IS DISTINCT FROM blob_sha256').fetchone() == (0,), v
    assert {"model_tensors", "model_findings", "model_lora_modules", "declaration_history", "probe_latest", "sidecars"} <= set(keyed)


def test_documented_shell_completion_works() -> None:
    """The README's completion line: click emits a bash completion script for `modelreg`, and completing
    `modelreg du` offers `dupes`."""
    import os
    import subprocess
    import sys

    root_dir = Path(__file__).resolve().parent.parent
    code = "from cli.main import main; main()"
    env = dict(os.environ, _MODELREG_COMPLETE="bash_source")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root_dir, env=env)
    assert done.returncode == 0 and "_modelreg_completion()" in done.stdout
    env = dict(os.environ, _MODELREG_COMPLETE="bash_complete", COMP_WORDS="modelreg du", COMP_CWORD="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root_dir, env=env)
    assert done.stdout.splitlines() == ["plain,dupes"]
    readme = (root_dir / "README.md").read_text()
    assert 'eval "$(_MODELREG_COMPLETE=bash_source modelreg)"' in readme


def test_readme_has_no_paths_of_the_build_machine_and_its_pickle_scan_example_runs(tmp_path: Path) -> None:
    """Issue 20: README examples work in a fresh clone: no /work/… paths, and the pickle-scan example's
    inputs are made by the example itself or shipped in examples/."""
    import re

    root_dir = Path(__file__).resolve().parent.parent
    readme = (root_dir / "README.md").read_text()
    assert "/work/" not in readme and "../shared/corpus/" not in readme.replace("(`../shared/corpus`", "")
    m = re.search(r"^\$ printf '(.+?)' > evil\.pt", readme, re.M)
    assert m is not None
    evil = tmp_path / "evil.pt"
    evil.write_bytes(m.group(1).encode().decode("unicode_escape").encode())
    example = root_dir / "examples" / "models" / "loras" / "portrait_style_v1.safetensors"
    assert example.is_file()
    code, out, _ = run("pickle-scan", str(evil), str(example))
    assert code == 1
    assert out.splitlines()[1].startswith("dangerous  pickle") and "os.system" in out
