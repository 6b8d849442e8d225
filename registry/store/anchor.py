"""The chain head anchored outside the database: ``<registry>.head`` beside the registry file.

The event log is hash-chained, so an entry altered or removed *in the middle* breaks the chain. But the
chain alone cannot show that its newest entries are all there (deleting the last rows leaves a valid,
shorter chain) or that it was not recomputed from some point on with fresh hashes. So after every commit
that added events, the writer replaces the head file atomically (write a temporary file, fsync, rename,
fsync the folder) with the last event's ``seq`` and ``hash``. ``log --verify`` compares the database
against it; exhibits and exports carry it.

The anchor protects against changes made to the database alone. Whoever can rewrite both files can
rewrite history; keep a copy of the head (an exhibit, a CI log, a signed note) somewhere else to protect
against that too.

The file is JSON: ``{"format": "modelreg-chain-head/1", "seq": N, "hash": H, "anchored_since": K,
"written_at": ISO-8601}``. ``anchored_since`` is the seq at which the file was first written (0 for a
registry created with it; a registry created before the head file existed is anchored from its first
write after the upgrade).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryCorrupt

if TYPE_CHECKING:
    import duckdb

FORMAT = "modelreg-chain-head/1"


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    anchored_since: int
    written_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seq": self.seq,
            "hash": self.hash,
            "anchored_since": self.anchored_since,
            "written_at": self.written_at,
        }


def head_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".head")


def read_head(db_path: Path) -> Head | None:
    """The head file's content; None when there is none. A file that cannot be parsed is an error."""
    p = head_path(db_path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        d = json.loads(text)
        if d.get("format") != FORMAT:
            raise ValueError(f"format {d.get('format')!r}")
        return Head(int(d["seq"]), str(d["hash"]), int(d.get("anchored_since", 0)), str(d.get("written_at", "")))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RegistryCorrupt(f"the chain head file {p} is unreadable ({e}); `modelreg log --verify` cannot check completeness") from None


def write_head(db_path: Path, head: Head) -> None:
    """Replace the head file atomically (temporary file in the same folder, fsync, rename, fsync folder)."""
    p = head_path(db_path)
    data = (json.dumps(head.as_dict(), sort_keys=True) + "\n").encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(p.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def db_head(con: duckdb.DuckDBPyConnection) -> tuple[int, str] | None:
    row = con.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def check_before_write(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    """Refuse to write on top of an event log that no longer matches its head file: appending would
    bury the evidence of what was removed or rewritten."""
    head = read_head(db_path)
    if head is None or head.seq == 0:
        return
    row = con.execute("SELECT hash FROM events WHERE seq = ?", [head.seq]).fetchone()
    if row is None or str(row[0]) != head.hash:
        what = "is missing" if row is None else "has a different hash"
        raise RegistryCorrupt(
            f"the event log of {db_path} does not match its head file: event {head.seq} {what}; "
            "writing is refused so that the evidence is kept. Run `modelreg log --verify` for details"
        )


def update_after_write(
    con: duckdb.DuckDBPyConnection, db_path: Path, created: bool, last: tuple[int, str] | None = None
) -> None:
    """After a write connection's work: move the head file to the database's last event (``last``, its
    (seq, hash), when the writer knows it: it appended it; else read from the database)."""
    cur = (last if last[0] > 0 else None) if last is not None else db_head(con)
    head = read_head(db_path)
    if head is not None and cur is not None and (head.seq, head.hash) == cur:
        return
    if head is not None and cur is None:
        return  # nothing to anchor (and nothing that check_before_write would let through)
    seq, h = cur if cur is not None else (0, "0" * 64)
    since = head.anchored_since if head is not None else (0 if created else seq)
    write_head(db_path, Head(seq, h, since, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
