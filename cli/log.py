"""modelreg log [REF] [--verify]: the registry's hash-chained event log (the chain of custody)."""

from __future__ import annotations

import click

from cli._app import format_option, read_registry, render_rows
from registry.store.events import EVENT_COLUMNS as COLUMNS


@click.command("log")
@click.argument("ref", required=False)
@click.option(
    "--verify",
    "verify",
    is_flag=True,
    help="Check the whole log: the hash chain, the head file beside the registry, and that blobs, "
    "sightings and findings agree with the events that created them; name every problem found.",
)
@click.option(
    "--rebuild-listing",
    "rebuild",
    is_flag=True,
    help="Recompute the listing table (what ls and the web list read) from the records, after --verify "
    "found it changed outside modelreg; the records and the log are not touched.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N entries.")
@format_option()
def command(ref: str | None, verify: bool, rebuild: bool, limit: int | None, fmt: str) -> None:
    """Show the event log (every change to the registry, each entry chained to the previous one by its
    hash); with REF only the entries about that model.

    \b
    --verify exits 1, naming what it found, when:
    - an entry was altered, removed or reordered in the middle of the chain (the chain alone proves this);
    - entries are missing at the end, or the log was rewritten from some point on with freshly computed
      hashes: found only with the head file (REGISTRY.head, replaced atomically after every commit, and
      carried in every exhibit and export); without it, verification cannot prove that the newest
      entries are all there nor that the log was not recomputed;
    - a blob, sighting or finding written by a scan was changed or deleted, or has no event that
      created it (rows compared with the digests in their events);
    - the listing table that ls and the web list read differs from the records it is computed from
      (--rebuild-listing recomputes it).
    Whoever can rewrite both the registry and its head file can rewrite history: keep a copy of the head
    (an exhibit, a CI log) elsewhere against that.
    """
    from cli._app import get_app
    from registry.store.events import event_rows

    if rebuild:
        from cli._app import write_registry
        from registry.errors import UsageError
        from registry.store.listing_table import rebuild_listing

        if not get_app().registry_path().exists():  # (a repair creates no registry)
            raise UsageError(f"no registry at {get_app().registry_path()} (scan something first, or check --db)")
        with write_registry() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                rebuild_listing(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            n = con.execute("SELECT count(*) FROM model_listing").fetchone()
        click.echo(f"listing rebuilt from the records: {n[0] if n else 0} models", err=True)
        if not verify and ref is None:
            return
    from registry.store.integrity import verify_registry
    from registry.store.read import resolve_ref

    with read_registry() as con:
        rows = event_rows(con, resolve_ref(con, ref) if ref is not None else None)
        check = verify_registry(con, get_app().registry_path()) if verify else None
    if limit is not None:
        rows = rows[-limit:]
    if not (verify and fmt == "table" and ref is None):
        render_rows(rows, COLUMNS, fmt)
    if check is None:
        return
    for note in check.notes:
        click.echo(f"note: {note}", err=True)
    chain = check.chain
    if not chain.ok:
        click.echo(
            f"chain BROKEN at event {chain.first_broken_seq}: {chain.reason}; "
            f"entries before it verify (last good hash {chain.head})",
            err=True,
        )
    for problem in check.problems:
        click.echo(f"FAILED: {problem}", err=True)
    if check.ok:
        anchored = f", matches the head file (seq {check.head.seq})" if check.head is not None else ", no head file"
        click.echo(
            f"chain ok: {chain.n_events} events, head {chain.head}{anchored}; blobs, sightings and findings agree with their events; the listing agrees with the records",
            err=fmt != "table",
        )
        return
    raise click.exceptions.Exit(1)
