"""modelreg query "SQL": read-only SQL against the registry's views."""

from __future__ import annotations

import click

from cli._app import format_option, no_truncate_option, read_registry, render_rows

ALLOWED = {"SELECT", "EXPLAIN"}


@click.command("query")
@no_truncate_option()
@click.argument("sql")
@format_option()
def command(sql: str, fmt: str) -> None:
    """Run read-only SQL against the registry.

    The stable query surface is the set of views documented in the README (models, model_files,
    model_tensors, model_findings, event_log, …). Any statement that would write is refused (exit 2).
    """
    import duckdb

    from registry.errors import UsageError

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise UsageError(f"query: {str(e).splitlines()[0]}") from None
    if not statements:
        raise UsageError("query: no SQL statement given")
    for st in statements:
        kind = st.type.name if hasattr(st.type, "name") else str(st.type)
        if kind not in ALLOWED:
            raise UsageError(f"query: only read-only statements are allowed (SELECT); refused a {kind} statement")
    with read_registry() as con:
        result = None
        for st in statements:
            try:
                result = con.execute(st.query)
            except duckdb.Error as e:
                raise UsageError(f"query failed: {str(e).splitlines()[0]}") from None
        assert result is not None
        cols = [d[0] for d in result.description]
        rows = [dict(zip(cols, r, strict=True)) for r in result.fetchall()]
    render_rows(rows, cols, fmt)
