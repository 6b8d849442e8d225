"""modelreg log [REF] [--verify]: the registry's hash-chained event log (the chain of custody)."""

from __future__ import annotations

from typing import Any

import click

from cli._app import format_option, read_registry, render_rows

COLUMNS = ["seq", "event_at", "actor", "action", "subject", "payload", "hash"]


@click.command("log")
@click.argument("ref", required=False)
@click.option("--verify", "verify", is_flag=True, help="Recompute the whole chain and name the first broken entry.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N entries.")
@format_option()
def command(ref: str | None, verify: bool, limit: int | None, fmt: str) -> None:
    """Show the event log (every change to the registry, each entry chained to the previous one by its
    hash); with REF only the entries about that model. --verify checks the whole chain and exits 1 when an
    entry was altered, removed or reordered, naming the first broken one."""
    from registry.store.events import verify_chain
    from registry.store.read import resolve_ref

    with read_registry() as con:
        sql = "SELECT seq, event_at, actor, action, subject, CAST(payload AS VARCHAR) AS payload, hash FROM events"
        params: list[Any] = []
        if ref is not None:
            sha = resolve_ref(con, ref)
            sql += " WHERE subject = ? OR CAST(payload AS VARCHAR) LIKE '%' || ? || '%'"
            params += [sha, sha]
        sql += " ORDER BY seq"
        cur = con.execute(sql, params)
        cols = [d[0] for d in cur.description or []]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        check = verify_chain(con) if verify else None
    if limit is not None:
        rows = rows[-limit:]
    if not (verify and fmt == "table" and ref is None):
        render_rows(rows, COLUMNS, fmt)
    if check is None:
        return
    if check.ok:
        click.echo(f"chain ok: {check.n_events} events, head {check.head}", err=fmt != "table")
        return
    click.echo(
        f"chain BROKEN at event {check.first_broken_seq}: {check.reason}; "
        f"entries before it verify (last good hash {check.head})",
        err=True,
    )
    raise click.exceptions.Exit(1)
