"""Creating a registry: the whole schema in one transaction (``registry.store.db.create_schema``, issue 21)
gives the catalog that applying the migrations one by one gives, with the same ``migrations`` and ``meta``
rows; a failure leaves nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from registry.errors import RegistryError
from registry.store import db as dbmod
from registry.store.db import connect, create_schema, migrate

#: (name, query) of every part of the catalog compared; object ids and other positions left out
CATALOG = {
    "tables": "SELECT schema_name, table_name, has_primary_key, column_count, index_count, check_constraint_count, "
    "sql, temporary FROM duckdb_tables() WHERE NOT internal",
    "columns": "SELECT schema_name, table_name, column_name, column_index, column_default, is_nullable, data_type, "
    "numeric_precision, numeric_scale FROM duckdb_columns() WHERE NOT internal",
    "indexes": "SELECT schema_name, index_name, table_name, is_unique, is_primary, expressions, sql "
    "FROM duckdb_indexes()",
    "views": "SELECT schema_name, view_name, column_count, sql, temporary FROM duckdb_views() WHERE NOT internal",
    "constraints": "SELECT schema_name, table_name, constraint_index, constraint_type, constraint_text, "
    "expression, constraint_column_names FROM duckdb_constraints()",
    "sequences": "SELECT schema_name, sequence_name, start_value, min_value, max_value, increment_by, cycle, "
    "last_value, sql FROM duckdb_sequences()",
    "migrations": "SELECT name, sha256 FROM migrations",
    "meta": "SELECT key, value FROM meta",
    "listing": "SELECT count(*) FROM model_listing",
}


def catalog(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in CATALOG.items()}


def _fresh(tmp_path: Path, name: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(tmp_path / name))


def test_the_schema_at_once_is_the_schema_step_by_step(tmp_path: Path) -> None:
    step = _fresh(tmp_path, "step.duckdb")
    applied_step = migrate(step, at_once=False)
    once = _fresh(tmp_path, "once.duckdb")
    applied_once = migrate(once, at_once=True)
    want = sorted(f.stem for f in dbmod.MIGRATIONS_DIR.glob("*.sql"))
    assert applied_step == applied_once == want
    a, b = catalog(step), catalog(once)
    assert len(a["tables"]) > 20 and len(a["views"]) > 10 and a["indexes"] and a["sequences"]  # a real schema
    assert {r[0] for r in a["migrations"]} == set(want)
    assert a == b
    # and the same after both are closed (checkpointed) and opened again (DuckDB writes a view's text anew
    # when it loads it, e.g. the columns of an EXCLUDE in another order, so compared with each other)
    step.close()
    once.close()
    a2 = catalog(_fresh(tmp_path, "step.duckdb"))
    b2 = catalog(_fresh(tmp_path, "once.duckdb"))
    assert a2 == b2, "after a reopen"
    # each migration's row records the SHA-256 of its file's text, as a replay does
    rows = dict(a["migrations"])
    for f in dbmod.MIGRATIONS_DIR.glob("*.sql"):
        assert rows[f.stem] == dbmod._sha256_hex(f.read_text(encoding="utf-8").encode())


def test_a_new_registry_gets_the_schema_at_once_and_an_old_one_is_migrated_step_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str] | None] = []
    real = dbmod.create_schema

    def spy(con: duckdb.DuckDBPyConnection) -> list[str] | None:
        calls.append(real(con))
        return calls[-1]

    monkeypatch.setattr(dbmod, "create_schema", spy)
    db = tmp_path / "r.duckdb"
    n = len(list(dbmod.MIGRATIONS_DIR.glob("*.sql")))
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM migrations").fetchone() == (n,)
        # one transaction: every row has the same time
        assert con.execute("SELECT count(DISTINCT applied_at) FROM migrations").fetchone() == (1,)
    assert len(calls) == 1 and calls[0] is not None and len(calls[0]) == n
    # a registry some migrations behind: the missing ones are applied one by one, the others kept
    with connect(db) as con:
        con.execute("DELETE FROM migrations WHERE name = '1800_model_listing'")
        con.execute("DROP TABLE model_listing")
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM model_listing").fetchone() == (0,)
        assert con.execute("SELECT count(DISTINCT applied_at) FROM migrations").fetchone() == (2,)
    assert calls[1:] == [None]  # tried (the migrations table exists: nothing done), then step by step


def test_creating_over_an_existing_schema_changes_nothing(tmp_path: Path) -> None:
    """Two processes may both find no registry and create it: the one that gets the lock second finds
    the schema there and leaves it as it is."""
    con = _fresh(tmp_path, "r.duckdb")
    assert create_schema(con) is not None
    con.execute("INSERT INTO meta VALUES ('marker', 'kept')")
    before = catalog(con)
    times = con.execute("SELECT name, applied_at FROM migrations ORDER BY name").fetchall()
    assert create_schema(con) is None
    assert catalog(con) == before
    assert con.execute("SELECT name, applied_at FROM migrations ORDER BY name").fetchall() == times
    assert migrate(con) == []  # nothing pending; the connection is in no transaction
    con.execute("BEGIN TRANSACTION")
    con.execute("ROLLBACK")


def test_a_failed_creation_leaves_no_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(dbmod.MIGRATIONS_DIR, migrations)
    (migrations / "9999_broken.sql").write_text("CREATE TABLE late (x INTEGER);\nALTER TABLE no_such_table ADD COLUMN y INT;\n")
    monkeypatch.setattr(dbmod, "MIGRATIONS_DIR", migrations)
    con = _fresh(tmp_path, "r.duckdb")
    with pytest.raises(RegistryError, match="no_such_table"):
        create_schema(con)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT internal").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone() == (0,)
    # the connection is usable (no transaction left open), and the creation can be run again once fixed
    (migrations / "9999_broken.sql").unlink()
    assert create_schema(con)[-1] == sorted(f.stem for f in dbmod.MIGRATIONS_DIR.glob("*.sql"))[-1] != "9999_broken"
