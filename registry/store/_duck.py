"""The DuckDB module, imported as lightly as the command allows.

``python -c "import duckdb"`` (the Python package, 2.x) takes 0.13–0.18 s on the 2-core development
machine, a bare interpreter 0.03 s: the package builds its relation layer, expression builder and Arrow
sources, and reads its version through ``importlib.metadata``. It wraps a compiled module, ``_duckdb`` (a
top-level module beside it in site-packages; ``python -c "import _duckdb"`` 0.05 s), which *is* what the
package re-exports: ``duckdb.connect``, ``duckdb.Error`` and its subclasses, ``duckdb.DuckDBPyConnection``
and ``duckdb.extract_statements`` are the very objects of ``_duckdb``. So the store takes them from here: ``_duckdb`` when it is the compiled
module of the installed ``duckdb`` package and has every name the store uses, else the package itself.
Exceptions the engine raises are then the same classes either way, and a connection is the same type.

What only the package sets up: the Python relation methods it attaches to the connection type
(``con.sql``, ``con.table`` …) and Arrow scans (``con.register(name, arrow_table)``). :func:`full` imports
the package, which attaches them to every connection, open or not: a write open calls it (writes register
Arrow tables), and so does code that registers one on a read-only connection (the scan's count of covered
findings) or may be handed any connection (``refresh_listing``); the other modules that register Arrow
tables (write, events, audit) import the package themselves. ``show`` and ``ls`` never need it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

#: every name the store takes from this module (the module is the package when one is missing)
USED = (
    "connect", "DuckDBPyConnection", "extract_statements", "Error", "IOException", "CatalogException",
    "FatalException", "PermissionException",
)  # fmt: skip


def _compiled_of_package() -> ModuleType | None:
    """``_duckdb`` when it is the compiled module the installed ``duckdb`` package wraps (it sits beside
    the package's folder, in the same site-packages) and has every name in :data:`USED`; else None."""
    try:
        core = importlib.util.find_spec("_duckdb")
        pkg = importlib.util.find_spec("duckdb")
    except (ImportError, ValueError):
        return None
    if core is None or pkg is None or core.origin is None or pkg.origin is None:
        return None
    if os.path.dirname(core.origin) != os.path.dirname(os.path.dirname(pkg.origin)):
        return None
    try:
        import _duckdb
    except ImportError:
        return None
    if not all(hasattr(_duckdb, name) for name in USED):
        return None
    return _duckdb


def _load() -> ModuleType:
    loaded = sys.modules.get("duckdb")
    if loaded is not None:  # the package is loaded already: nothing to save
        return loaded
    core = _compiled_of_package()
    if core is not None:
        return core
    import duckdb as package

    return package


if TYPE_CHECKING:
    import duckdb
else:
    duckdb = _load()


def full() -> None:
    """Import the ``duckdb`` package, so that every connection (open or not) has its relation methods and
    can scan Arrow tables given to ``register``."""
    importlib.import_module("duckdb")


#: the name by which SQL given to :func:`with_arrow` reads its Arrow table
ARROW_IN = "_arrow_in"


def with_arrow(con: Any, sql: str, table: Any, params: list[Any] | None = None) -> Any:
    """Execute ``sql``, in which the name ``_arrow_in`` is the Arrow ``table``: DuckDB's replacement scan
    finds it among the local variables of the function that calls ``execute`` (this one). About half the
    cost of ``register``, ``execute`` and ``unregister`` (0.9 against 1.9 ms a statement with DuckDB 2.0:
    a commit runs a dozen), and a pending result does not stop it (``register`` needs :func:`registered`'s first step). Name
    the table once in ``sql``: each mention is looked up again."""
    _arrow_in = table  # noqa: F841 - read by DuckDB's replacement scan, by name
    return con.execute(sql, params) if params is not None else con.execute(sql)


@contextlib.contextmanager
def registered(con: Any, name: str, table: Any) -> Iterator[None]:
    """The Arrow ``table`` under ``name`` on ``con`` for the block (``register``, then ``unregister``).
    A result still pending is finished first (DuckDB 2 refuses ``register`` while one is). When the block
    fails inside a transaction (an error, or Ctrl-C: DuckDB 2.x's ``RuntimeError("Query interrupted")``),
    the aborted transaction refuses even ``unregister``: the block's error is the one raised, not that
    refusal (the caller rolls back; registering the name again later replaces the table)."""
    full()  # Arrow scans are set up by the duckdb package
    con.execute("SELECT 1").fetchall()
    con.register(name, table)
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)
        raise
    con.unregister(name)
