from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry.paths import clean_obj
from registry.store.db import connect
from registry.store.events import (
    GENESIS,
    EventLog,
    canonical,
    event_hash,
    event_hash_of_text,
    payload_text,
    verify_chain,
)


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


class _Odd:
    def __str__(self) -> str:
        return "odd object"


#: payloads of every shape an event may carry: nested, unicode, floats (NaN too), tuples, numpy scalars,
#: objects written through ``str``, keys that are not strings (sorted otherwise once they are)
PAYLOADS: list[Any] = [
    {},
    {"i": 1, "text": "é ✓ \u2028", "nested": {"b": [1, 2.5, None, True]}},
    {"f": 0.1, "g": 1e300, "h": -0.0, "nan": math.nan, "inf": math.inf},
    {"t": (1, "a", (2.5, None)), "l": [{"z": 1, "a": 2}]},
    {"np_f": np.float64(0.1), "np_i": np.int64(7), "np_f16": np.float16(1.5), "obj": _Odd(), "b": b"\x00\xff"},
    {2: "two", 10: "ten", "x": {1: "a", 11: "b"}},
    {"bad": os.fsdecode(b"bad\xffname"), "ctrl": "a\nb\x00"},
    {"path_raw_hex": "ff", "sha256": "0" * 64, "size": 1 << 62, "findings": ["a.b", "c.d"]},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_payload_text_and_hash_are_those_of_the_normalised_payload(payload: Any) -> None:
    """The stored text and the hash are those the log computed by reading the payload back as JSON and
    hashing the whole event with ``event_hash`` (what ``verify_chain`` recomputes)."""
    norm = json.loads(canonical(clean_obj(payload)))
    assert payload_text(payload) == canonical(norm)
    args = (7, "2026-12-04T15:00:00.123456Z", "me@host", "blob.add")
    for subject in (None, "s", "é\""):
        want = event_hash(*args, subject, norm, "ab" * 32)
        assert event_hash_of_text(*args, subject, payload_text(payload), "ab" * 32) == want


def test_a_logged_batch_verifies_for_every_kind_of_payload(tmp_path: Path) -> None:
    with connect(tmp_path / "r.duckdb") as con:
        con.execute("BEGIN TRANSACTION")
        log = EventLog(con)
        now = datetime.now(UTC)
        for i, p in enumerate(PAYLOADS):
            log.append("test.event", None if i % 2 else f"s{i}", p, at=now if i < 4 else None)
        log.flush()
        con.execute("COMMIT")
        check = verify_chain(con)
        assert check.ok and check.n_events == len(PAYLOADS)


@pytest.mark.parametrize(
    "name",
    ["/m/plain.safetensors", "/m/a b~!.sft", "/m/tab\there", "/m/new\nline", "/m/del\x7f", "/m/é.safetensors",
     os.fsdecode(b"/m/bad\xffname"), "/m/\u2028sep", "/m/\x00nul"],
)
def test_display_and_raw_forms_of_plain_paths_are_those_of_the_bytes(name: str) -> None:
    """``display_path``/``raw_path`` take a shortcut for printable ASCII text: the same results as going
    through the bytes (the rule they document)."""
    from registry.paths import _escape_controls, display_path, raw_path

    b = os.fsencode(name)
    want = _escape_controls(b.decode("utf-8", "backslashreplace"))
    assert display_path(name) == want == display_path(b)
    assert raw_path(name) == (None if want.encode("utf-8") == b else b) == raw_path(b)
