"""registry/store/_duck.py: the store takes DuckDB from the compiled ``_duckdb`` module when it is the one
the installed ``duckdb`` package wraps (issue 21: ``show``/``ls`` without the package's import cost), and
from the package otherwise; the objects are the same either way."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pytest

from registry.store import _duck
from tests.builders import write_safetensors

ROOT = Path(__file__).resolve().parent.parent


def test_every_name_the_store_uses_is_the_packages_own_object() -> None:
    core = _duck._compiled_of_package()
    if core is None:
        pytest.skip("this duckdb has no top-level _duckdb module beside its package (the package is used)")
    assert core.__name__ == "_duckdb"
    for name in _duck.USED:
        assert getattr(core, name) is getattr(duckdb, name), name
    # the exceptions the engine raises are the classes the package names, subclasses included
    con = core.connect(":memory:")
    with pytest.raises(duckdb.CatalogException):
        con.execute("SELECT * FROM no_such_table")
    assert issubclass(core.CatalogException, duckdb.Error) and isinstance(con, duckdb.DuckDBPyConnection)
    con.close()


def test_a_duckdb_missing_a_name_means_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_duck, "USED", (*_duck.USED, "no_such_name_in_duckdb"))
    assert _duck._compiled_of_package() is None


def test_a_duckdb_without_a_top_level_compiled_module_means_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None if name == "_duckdb" else real(name, package))
    assert _duck._compiled_of_package() is None


#: run in a fresh interpreter: ``show`` and ``ls`` through cli.main, then what was imported and which DuckDB
#: module the store took; with ``fallback`` the compiled module cannot be found (an older duckdb's layout)
_PROBE = """
import importlib.util, io, sys, contextlib
if {fallback!r}:
    real = importlib.util.find_spec
    importlib.util.find_spec = lambda name, package=None: None if name == "_duckdb" else real(name, package)
from cli.main import main
outputs = []
for argv in {argvs!r}:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main(["--db", {db!r}, *argv])
        except SystemExit as e:
            assert not e.code, (argv, e.code)
    outputs.append(buf.getvalue())
from registry.store import _duck
print(repr((outputs, _duck.duckdb.__name__, "duckdb" in sys.modules)))
"""


def _probe(db: Path, argvs: list[list[str]], fallback: bool) -> tuple[list[str], str, bool]:
    import ast

    done = subprocess.run([sys.executable, "-c", _PROBE.format(fallback=fallback, argvs=argvs, db=str(db))],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs, module, package_loaded = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return outputs, module, package_loaded


def test_show_and_ls_read_the_same_through_either_module(tmp_path: Path, db: Path) -> None:
    from click.testing import CliRunner

    from cli.main import root

    write_safetensors(tmp_path / "m" / "alpha.safetensors", {"w": np.arange(4, dtype=np.float32)}, {"k": "v"})
    write_safetensors(tmp_path / "m" / "beta.safetensors", {"w": np.arange(5, dtype=np.float32)})
    assert CliRunner().invoke(root, ["scan", str(tmp_path / "m")]).exit_code == 0
    argvs = [["ls"], ["ls", "--format", "json"], ["show", "alpha.safetensors"], ["show", "--format", "json", "beta.safetensors"]]

    light, module, package_loaded = _probe(db, argvs, fallback=False)
    if _duck._compiled_of_package() is not None:
        assert module == "_duckdb" and not package_loaded  # the package's 0.15-0.2 s import is not paid
    fallback, module_fb, package_loaded_fb = _probe(db, argvs, fallback=True)
    assert module_fb == "duckdb" and package_loaded_fb
    assert light == fallback  # byte for byte
    assert "alpha.safetensors" in light[0] and "beta.safetensors" in light[0]
    assert [r["name"] for r in json.loads(light[1])] == ["alpha.safetensors", "beta.safetensors"]
    assert "alpha.safetensors" in light[2] and json.loads(light[3])["file"]["size"] == (tmp_path / "m" / "beta.safetensors").stat().st_size


def test_a_write_open_after_a_light_read_can_register_arrow_tables(tmp_path: Path) -> None:
    """A read-only open stays on the compiled module; a write open in the same process loads the package,
    whose Arrow scans every connection then has (the writes register Arrow tables)."""
    from registry.store.db import connect

    reg = tmp_path / "r.duckdb"
    with connect(reg):  # creates the registry
        pass
    script = f"""
import sys
from pathlib import Path
from registry.store.db import connect
with connect(Path({str(reg)!r}), read_only=True) as con:
    con.execute("SELECT count(*) FROM blobs").fetchall()
light = "duckdb" in sys.modules
import pyarrow as pa
with connect(Path({str(reg)!r})) as con:
    con.execute("SELECT 1").fetchall()  # DuckDB 2: no register() while a result is pending
    con.register("_t", pa.table({{"a": [1, 2]}}))
    n = con.execute("SELECT sum(a) FROM _t").fetchone()[0]
print(light, n)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    light, n = done.stdout.split()
    assert n == "3"
    if _duck._compiled_of_package() is not None:
        assert light == "False"


def test_the_views_digest_is_hashlibs_sha256() -> None:
    """The store digests the views' text without hashlib where the interpreter has its own SHA-256 module
    (registry/store/db.py: hashlib loads OpenSSL); the digest is SHA-256 all the same, and the registry
    records it."""
    import hashlib

    from registry.store import db

    for data in (b"", b"abc", "CREATE VIEW x AS SELECT 1; -- é".encode(), bytes(range(256)) * 1000):
        assert db._sha256_hex(data) == hashlib.sha256(data).hexdigest()
    digest, parts = db._views_sql()
    from registry.store.listing_table import FILL_SQL

    assert digest == hashlib.sha256("\n--\n".join([*parts, FILL_SQL]).encode()).hexdigest()


def test_json_output_turns_decimals_into_numbers_without_importing_decimal_itself() -> None:
    from decimal import Decimal

    from registry.jsonout import dumps

    assert dumps({"a": Decimal("1.25"), "b": [Decimal("-3")]}) == '{"a": 1.25, "b": [-3.0]}'


def test_registered_raises_the_failed_statements_error_not_the_aborted_transactions() -> None:
    """A statement that fails inside a transaction aborts it, and DuckDB then refuses ``unregister`` too
    (``TransactionException: Current transaction is aborted``): ``registered`` raises the statement's
    own error, and the name can be registered again after the rollback. Without failure the name is
    gone after the block."""
    import pyarrow as pa

    con = duckdb.connect()
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("BEGIN TRANSACTION")
    with pytest.raises(duckdb.CatalogException, match="no_such_table"), _duck.registered(con, "_in", pa.table({"x": [1, 2]})):
        con.execute("INSERT INTO t SELECT x FROM _in")
        con.execute("SELECT * FROM no_such_table")
    # what the old try/finally raised instead: the refusal, which hid the cause
    with pytest.raises(duckdb.TransactionException, match="aborted"):
        con.unregister("_in")
    con.execute("ROLLBACK")
    with _duck.registered(con, "_in", pa.table({"x": [3]})):
        con.execute("INSERT INTO t SELECT x FROM _in")
    assert con.execute("SELECT x FROM t").fetchall() == [(3,)]
    with pytest.raises(duckdb.CatalogException):
        con.execute("SELECT * FROM _in")
    # a pending, half-fetched result does not stop it (DuckDB 2 refuses register() while one is)
    con.execute("SELECT * FROM range(10)").fetchone()
    with _duck.registered(con, "_in", pa.table({"x": [4]})):
        assert con.execute("SELECT x FROM _in").fetchall() == [(4,)]


def test_ctrl_c_inside_a_registered_block_in_a_transaction_is_the_interrupt() -> None:
    """Ctrl-C while a statement runs in a ``registered`` block inside a transaction: DuckDB 2.x raises
    ``RuntimeError("Query interrupted")`` (1.x: ``InterruptException``); that is what comes out, which the CLI
    turns into its one "interrupted" line, not the aborted transaction's refusal to unregister."""
    code = textwrap.dedent(
        """
        import os, signal, threading
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import pyarrow as pa
        from registry.store import _duck
        from cli._app import interrupted_query
        con = _duck.duckdb.connect()
        con.execute("SET threads = 1")  # DuckDB notices Ctrl-C for certain only on the calling thread
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("BEGIN TRANSACTION")
        try:
            with _duck.registered(con, "_in", pa.table({"x": [7]})):
                con.execute("INSERT INTO t SELECT x FROM _in")
                threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
                # (a statement that reads only DuckDB's own tables: it checks for the interrupt throughout)
                con.execute("SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3").fetchall()
        except BaseException as e:
            print(type(e).__name__, interrupted_query(e) or isinstance(e, KeyboardInterrupt), flush=True)
        con.execute("ROLLBACK")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == "True", out.stdout + out.stderr
    assert out.stdout.split()[0] in ("RuntimeError", "InterruptException", "KeyboardInterrupt")
