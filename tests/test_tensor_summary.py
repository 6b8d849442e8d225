"""The ``tensor_summary`` table (migration 0201) that the ``tensors`` record section reads: written with
the tensor rows, replaced on re-analysis, back-filled by the migration, equal to the tensors it sums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import numpy as np

from registry.scan import scan
from registry.sections.tensors import load
from registry.store.db import MIGRATIONS_DIR, connect
from tests.builders import write_safetensors

EXPECTED = {
    "count": 4,
    "parameters": 12 + 2 * 3 * 4 + 5 + 1,
    "bytes": 12 * 2 + 24 * 2 + 5 * 1 + 1 * 4,
    "by_dtype": {
        "F16": {"tensors": 2, "bytes": 72, "parameters": 36},
        "F32": {"tensors": 1, "bytes": 4, "parameters": 1},
        "I8": {"tensors": 1, "bytes": 5, "parameters": 5},
    },
}


def _file(root: Path) -> Path:
    return write_safetensors(
        root / "m.safetensors",
        {
            "down": np.zeros((3, 4), dtype=np.float16),
            "up": np.ones((2, 3, 4), dtype=np.float16),
            "q": np.arange(5, dtype=np.int8),
            "alpha": np.array(8.0, dtype=np.float32),  # a scalar: shape [] counts one parameter
        },
    )


def _direct(con: object, sha: str) -> list[tuple[object, ...]]:
    return con.execute(  # type: ignore[attr-defined]
        "SELECT dtype, count(*), sum(nbytes), sum(list_reduce(list_prepend(1, shape), lambda a, b: a * b)) "
        "FROM tensors WHERE blob_sha256 = ? GROUP BY dtype ORDER BY 1",
        [sha],
    ).fetchall()


def test_section_values_are_exact_and_equal_a_scan_of_the_tensors(tmp_path: Path, db: Path) -> None:
    f = _file(tmp_path)
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    scan([f], db)
    with connect(db, read_only=True) as con:
        assert load(con, sha) == EXPECTED
        summary = con.execute(
            "SELECT dtype, tensors, bytes, parameters FROM tensor_summary WHERE blob_sha256 = ? ORDER BY 1", [sha]
        ).fetchall()
        assert summary == _direct(con, sha)


def test_reanalysis_replaces_the_summary(tmp_path: Path, db: Path) -> None:
    f = _file(tmp_path)
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    scan([f], db)
    scan([f], db, rehash=True)
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM tensor_summary").fetchone() == (3,)
        assert load(con, sha) == EXPECTED


def test_the_migration_fills_the_summary_of_existing_tensors(tmp_path: Path, db: Path) -> None:
    f = _file(tmp_path)
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    scan([f], db)
    sql = (MIGRATIONS_DIR / "0201_tensor_summary.sql").read_text()
    with connect(db) as con:
        con.execute("DROP TABLE tensor_summary")  # as before the migration
        for stmt in duckdb.extract_statements(sql):
            con.execute(stmt.query)
        assert load(con, sha) == EXPECTED


def test_a_blob_without_tensors_has_no_section(tmp_path: Path, db: Path) -> None:
    f = tmp_path / "notes.bin"
    f.write_bytes(b"\x00" * 100)
    scan([f], db)
    with connect(db, read_only=True) as con:
        assert load(con, hashlib.sha256(f.read_bytes()).hexdigest()) is None
