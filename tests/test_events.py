from __future__ import annotations

from pathlib import Path

from registry.store.db import connect
from registry.store.events import GENESIS, EventLog, verify_chain


def test_chain_verifies_and_names_first_broken_entry(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    with connect(db) as con:
        con.execute("BEGIN TRANSACTION")
        log = EventLog(con)
        for i in range(5):
            log.append("test.event", f"s{i}", {"i": i, "text": "é", "nested": {"b": [1, 2.5]}})
        log.flush()
        con.execute("COMMIT")
        check = verify_chain(con)
        assert check.ok and check.n_events == 5
        rows = con.execute("SELECT seq, prev_hash, hash FROM events ORDER BY seq").fetchall()
        assert rows[0][1] == GENESIS
        assert all(rows[i][1] == rows[i - 1][2] for i in range(1, 5))
        assert check.head == rows[-1][2]
        con.execute("UPDATE events SET payload = '{\"i\":99}' WHERE seq = 3")
        bad = verify_chain(con)
        assert not bad.ok and bad.first_broken_seq == 3
        assert "event 3 (test.event) was altered" in (bad.reason or "")


def test_deleted_entry_is_detected(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    with connect(db) as con:
        con.execute("BEGIN TRANSACTION")
        log = EventLog(con)
        for i in range(3):
            log.append("a", None, {"i": i})
        log.flush()
        con.execute("COMMIT")
        con.execute("DELETE FROM events WHERE seq = 2")
        bad = verify_chain(con)
        assert bad.first_broken_seq == 3 and "entry is missing" in (bad.reason or "")
