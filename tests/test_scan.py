from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from registry.errors import RegistryBusy
from registry.scan import scan
from registry.store import write as write_mod
from registry.store.db import connect
from registry.store.events import verify_chain
from tests.builders import raw_safetensors, write_safetensors


def counts(db: Path) -> dict[str, int]:
    with connect(db, read_only=True) as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("blobs", "sightings", "tensors", "findings", "events")
        }


def make_tree(root: Path) -> dict[str, Path]:
    a = write_safetensors(root / "a.safetensors", {"w": np.arange(6, dtype=np.float32)}, {"ss_output_name": "a"})
    b = write_safetensors(root / "sub" / "b.safetensors", {"x": np.ones((2, 2), dtype=np.float16), "y": np.zeros(3, dtype=np.int8)})
    return {"a": a, "b": b}


def test_scan_records_blobs_sightings_tensors_and_metadata(tmp_path: Path, db: Path) -> None:
    files = make_tree(tmp_path / "m")
    s = scan([tmp_path / "m"], db)
    assert (s.files, s.new_blobs, s.unchanged, s.unreadable) == (2, 2, 0, 0)
    with connect(db, read_only=True) as con:
        sha = hashlib.sha256(files["a"].read_bytes()).hexdigest()
        row = con.execute("SELECT format, n_tensors, metadata->>'ss_output_name', autov2 FROM blobs WHERE sha256 = ?", [sha]).fetchone()
        assert row == ("safetensors", 1, "a", sha[:10])
        t = con.execute("SELECT name, dtype, shape, data_begin, data_end, nbytes FROM tensors WHERE blob_sha256 = ?", [sha]).fetchall()
        assert t == [("w", "F32", [6], 0, 24, 24)]
        paths = sorted(r[0] for r in con.execute("SELECT path FROM sightings").fetchall())
        assert paths == sorted(str(p) for p in files.values())
        assert verify_chain(con).ok


def test_rescan_is_incremental_and_adds_no_rows(tmp_path: Path, db: Path) -> None:
    make_tree(tmp_path / "m")
    scan([tmp_path / "m"], db)
    before = counts(db)
    s = scan([tmp_path / "m"], db)
    assert (s.unchanged, s.new_blobs) == (2, 0)
    assert counts(db) == before


def test_rehash_reads_again_without_duplicating(tmp_path: Path, db: Path) -> None:
    make_tree(tmp_path / "m")
    scan([tmp_path / "m"], db)
    before = counts(db)
    s = scan([tmp_path / "m"], db, rehash=True)
    assert s.rehashed == 2 and s.unchanged == 0
    after = counts(db)
    assert after["blobs"] == before["blobs"] and after["tensors"] == before["tensors"]
    assert after["sightings"] == before["sightings"]  # one sighting per (host, path, content)


def test_changed_content_at_same_path_keeps_old_record(tmp_path: Path, db: Path) -> None:
    files = make_tree(tmp_path / "m")
    scan([tmp_path / "m"], db)
    old = hashlib.sha256(files["a"].read_bytes()).hexdigest()
    write_safetensors(files["a"], {"w": np.arange(7, dtype=np.float32)})
    os.utime(files["a"], ns=(1, 2))
    s = scan([tmp_path / "m"], db)
    assert s.new_blobs == 1 and s.unchanged == 1
    with connect(db, read_only=True) as con:
        shas = {r[0] for r in con.execute("SELECT blob_sha256 FROM sightings WHERE path = ?", [str(files["a"])]).fetchall()}
        assert old in shas and len(shas) == 2
        latest = con.execute("SELECT blob_sha256 FROM latest_sightings WHERE path = ?", [str(files["a"])]).fetchone()
        assert latest is not None and latest[0] != old


def test_same_content_twice_is_one_blob_two_sightings(tmp_path: Path, db: Path) -> None:
    files = make_tree(tmp_path / "m")
    (tmp_path / "m" / "copy.safetensors").write_bytes(files["a"].read_bytes())
    s = scan([tmp_path / "m"], db)
    assert s.new_blobs == 2
    c = counts(db)
    assert (c["blobs"], c["sightings"]) == (2, 3)


BAD = {
    "zero.safetensors": b"",
    "two.safetensors": b"\x01\x02",
    "huge.safetensors": raw_safetensors(b"{}", header_len=10**18),
    "beyond.safetensors": raw_safetensors(b'{"a":1}', header_len=900),
    "latin1.safetensors": raw_safetensors(b'{"\xe9":1}'),
    "notjson.safetensors": raw_safetensors(b"{nope}"),
    "overlap.safetensors": raw_safetensors(
        {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}},
        b"\0" * 4,
    ),
    "baddtype.safetensors": raw_safetensors({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
    "lfs.safetensors": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 123\n",
    "page.safetensors": b"<!DOCTYPE html><html><body>Rate limited</body></html>",
    "weights.ckpt": b"\x80\x02}q\x00.",
}
EXPECTED_RULE = {
    "zero.safetensors": "file.empty",
    "two.safetensors": "safetensors.too-short",
    "huge.safetensors": "safetensors.header-too-large",
    "beyond.safetensors": "safetensors.header-beyond-eof",
    "latin1.safetensors": "safetensors.header-not-utf8",
    "notjson.safetensors": "safetensors.header-not-json",
    "overlap.safetensors": "safetensors.overlap",
    "baddtype.safetensors": "safetensors.unknown-dtype",
    "lfs.safetensors": "file.git-lfs-pointer",
    "page.safetensors": "file.html-page",
}


def test_bad_input_never_stops_the_scan(tmp_path: Path, db: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    for name, data in BAD.items():
        (root / name).write_bytes(data)
    good = write_safetensors(root / "zgood.safetensors", {"w": np.zeros(2, dtype=np.float32)})
    os.mkfifo(root / "fifo.safetensors")
    (root / "dangling.safetensors").symlink_to(root / "missing")
    (root / "loop").symlink_to(root / "loop")
    (root / "dirloop").symlink_to(root)
    locked = root / "locked.safetensors"
    locked.write_bytes(b"x" * 16)
    locked.chmod(0)
    s = scan([root], db)
    by_path: dict[str, set[str]] = {}
    for rule_id, _sev, path, _msg in s.finding_list:
        by_path.setdefault(Path(path).name, set()).add(rule_id)
    for name, rule_id in EXPECTED_RULE.items():
        assert rule_id in by_path[name], (name, by_path.get(name))
    assert by_path["fifo.safetensors"] == {"file.not-regular"}
    assert by_path["dangling.safetensors"] == {"file.broken-symlink"}
    assert by_path["loop"] == {"file.symlink-loop"}
    assert by_path["dirloop"] == {"file.symlink-loop"}
    if os.geteuid() != 0:  # root reads files whatever their mode
        assert by_path["locked.safetensors"] == {"file.unreadable"}
    # the pickle scanner reads raw pickles: a benign one has no finding, and a recorded "safe" verdict
    assert "format.unsupported-code" not in by_path.get("weights.ckpt", set())
    with connect(db, read_only=True) as con:
        verdict = con.execute(
            "SELECT verdict FROM model_security WHERE path LIKE '%weights.ckpt'"
        ).fetchone()
    assert verdict == ("safe",)
    assert "zgood.safetensors" not in by_path
    assert str(good) in s.shas
    with connect(db, read_only=True) as con:
        assert verify_chain(con).ok
        recorded = {r[0] for r in con.execute("SELECT DISTINCT rule_id FROM findings").fetchall()}
    assert set(EXPECTED_RULE.values()) <= recorded
    before = counts(db)
    scan([root], db)
    assert counts(db) == before  # unreadable paths are not recorded twice


def test_workers_give_the_same_registry(tmp_path: Path) -> None:
    root = tmp_path / "m"
    for i in range(6):
        write_safetensors(root / f"f{i}.safetensors", {"w": np.full(4, i, dtype=np.float32)})
    one, two = tmp_path / "one.duckdb", tmp_path / "two.duckdb"
    s1 = scan([root], one, workers=1)
    s2 = scan([root], two, workers=2)
    assert s1.shas == s2.shas
    q = "SELECT sha256, autov3, blake3, crc32, n_tensors FROM blobs ORDER BY 1"
    with connect(one, read_only=True) as c1, connect(two, read_only=True) as c2:
        assert c1.execute(q).fetchall() == c2.execute(q).fetchall()


def test_failed_batch_leaves_nothing_half_written(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "m")
    real_insert = write_mod.insert_columns

    def explode(con, table, data):  # type: ignore[no-untyped-def]
        if table == "sightings":
            raise RuntimeError("simulated crash in the middle of a batch")
        return real_insert(con, table, data)

    monkeypatch.setattr(write_mod, "insert_columns", explode)
    with pytest.raises(RuntimeError):
        scan([tmp_path / "m"], db)
    assert counts(db) == {"blobs": 0, "sightings": 0, "tensors": 0, "findings": 0, "events": 0}
    monkeypatch.setattr(write_mod, "insert_columns", real_insert)
    s = scan([tmp_path / "m"], db)
    assert s.new_blobs == 2
    assert counts(db)["sightings"] == 2


def test_killed_scan_leaves_consistent_registry(tmp_path: Path, db: Path) -> None:
    root = tmp_path / "m"
    for i in range(40):
        write_safetensors(root / f"f{i:02}.safetensors", {"w": np.full(2048, i, dtype=np.float32)})
    code = textwrap.dedent(
        f"""
        import os, signal
        from registry.store import write
        from registry.scan import scan
        real = write.write_batch
        n = 0
        def kill_in_second_batch(con, items, derived=()):
            global n
            n += 1
            if n == 2:
                con.execute("BEGIN TRANSACTION")
                con.execute("INSERT INTO blobs (sha256, size, format, first_seen) VALUES ('x', 1, 'x', now())")
                os.kill(os.getpid(), signal.SIGKILL)
            return real(con, items, derived)
        write.write_batch = kill_in_second_batch
        import registry.scan as s
        s.write_batch = kill_in_second_batch
        scan([{str(root)!r}], __import__('pathlib').Path({str(db)!r}), batch_files=10, batch_seconds=3600)  # batches by count only, also on a loaded machine
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    c = counts(db)
    assert c["blobs"] == 10 and c["sightings"] == 10  # exactly the first committed batch
    with connect(db, read_only=True) as con:
        assert verify_chain(con).ok
    s = scan([root], db)
    assert (s.unchanged, s.new_blobs) == (10, 30)
    assert counts(db)["blobs"] == 40


def test_second_writer_gets_a_clear_message(tmp_path: Path, db: Path) -> None:
    with connect(db):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        waits: list[str] = []
        with pytest.raises(RegistryBusy) as e, connect(db, timeout=0.5, on_wait=waits.append):
            pass
        assert "is busy: another modelreg process" in str(e.value)
        assert waits == ["registry busy: another process is writing; waiting…"]
    finally:
        holder.kill()
        holder.wait()


def test_summary_names_slow_files_and_the_step_that_took_the_time(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses
    import time

    from click.testing import CliRunner

    from cli.main import root
    from registry import analysis
    from registry import scan as scan_mod

    real = analysis.load_analyzers()

    def slow_stats(ctx: analysis.FileContext) -> None:
        time.sleep(0.3)

    patched = [dataclasses.replace(a, run=slow_stats) if a.name == "stats" else a for a in real]
    monkeypatch.setattr(analysis, "_ANALYZERS", patched)
    monkeypatch.setattr(scan_mod, "SLOW_SECONDS", 0.25)
    p = write_safetensors(tmp_path / "m" / "a.safetensors", {"w": np.ones((2, 2), np.float32)})
    s = scan([tmp_path / "m"], db)
    assert len(s.slow) == 1
    path, took, step, step_took = s.slow[0]
    assert (path, step) == (str(p), "stats") and took >= step_took >= 0.3
    r = CliRunner().invoke(root, ["--db", str(tmp_path / "cli.duckdb"), "scan", "-q", str(tmp_path / "m")], catch_exceptions=False)
    assert r.exit_code == 0
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("slow: "))
    assert line.startswith(f"slow: {p} took ") and ", stats 0.3s of it" in line


def test_automatic_workers_follow_usable_cores_and_file_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import registry.scan as scan_mod

    monkeypatch.setattr(scan_mod, "usable_cpus", lambda: 8)
    assert scan_mod.effective_workers(3, 1) == 3  # an explicit -j is kept
    assert scan_mod.effective_workers(0, 0) == 1
    assert scan_mod.effective_workers(0, 7) == 1  # too few files to share
    assert scan_mod.effective_workers(0, 8) == 2
    assert scan_mod.effective_workers(0, 1000) == 8
    assert scan_mod.effective_workers(0, 2, 40 << 20) == 2  # two big files: a process each
    assert scan_mod.effective_workers(0, 3, 4 << 20) == 1


def test_progress_moves_inside_a_large_file(tmp_path: Path) -> None:
    """A single large file does not sit at 0 until it is done (issue 20): in-process scans report the
    bytes hashed so far, buffer by buffer; the last call says the whole file."""
    d = tmp_path / "big"
    d.mkdir()
    size = 20 << 20
    (d / "model.bin").write_bytes(os.urandom(size))
    calls: list[tuple[int, int | None]] = []
    scan([d], tmp_path / "r.duckdb", workers=0, progress=lambda done, total, path: calls.append((done, total)))
    assert calls[-1] == (size, size)
    inside = [done for done, _ in calls if 0 < done < size]
    assert len(inside) >= 2 and inside == sorted(inside)


def test_the_registry_inside_a_scanned_folder_is_not_scanned(tmp_path: Path) -> None:
    """--db inside the scanned folder: the database, its .wal and its head file are not models."""
    write_safetensors(tmp_path / "m.safetensors", {"w": np.zeros((2, 2), dtype=np.float32)})
    db = tmp_path / "r.duckdb"
    scan([tmp_path], db)
    # other names of the same files: a symbolic link to the database, a hard link to its head file
    (tmp_path / "link.safetensors").symlink_to(db)
    os.link(tmp_path / "r.duckdb.head", tmp_path / "head-copy.json")
    summary = scan([tmp_path], db, rehash=True)
    assert sorted(Path(p).name for p in summary.shas) == ["m.safetensors"]
    assert summary.files == 1 and not summary.finding_list


def test_a_reader_gets_in_while_a_scan_holds_its_connection(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan keeps one write connection across batches, and lets go as soon as another process waits for
    the registry (the waiter touches ``<registry>.waiting``); here it would otherwise hold it for good."""
    import time

    from registry import scan as scan_mod
    from registry.store.db import waiting_path

    monkeypatch.setattr(scan_mod, "HOLD_SECONDS", 3600.0)
    folder = tmp_path / "m"
    for i in range(20):
        write_safetensors(folder / f"f{i:02d}.safetensors", {"w": np.full(4, i, dtype=np.float32)})
    code = textwrap.dedent(f"""
        from pathlib import Path
        from registry.store.db import connect
        with connect(Path({str(db)!r}), read_only=True, timeout=60) as con:
            print(con.execute("SELECT count(*) FROM blobs").fetchone()[0])
    """)
    state: dict[str, object] = {"phase": 0}
    proc: list[subprocess.Popen[str]] = []

    def progress(done: int, total: int | None, path: str) -> None:
        deadline = time.monotonic() + 30
        if state["phase"] == 0 and path.endswith("f04.safetensors"):
            proc.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent))
            while not waiting_path(db).exists() and time.monotonic() < deadline:
                time.sleep(0.02)  # the scan holds its connection; the reader meets the lock and says so
            state["phase"] = 1 if waiting_path(db).exists() else -1
        elif state["phase"] == 1:
            proc[0].wait(timeout=30)  # the scan stays mid-way until the reader got in and finished
            state["phase"] = 2

    s = scan([folder], db, workers=1, batch_files=1, progress=progress)
    assert state["phase"] == 2 and s.new_blobs == 20
    out, _ = proc[0].communicate(timeout=30)
    assert proc[0].returncode == 0 and 5 <= int(out) < 20
    assert not waiting_path(db).exists()


def test_a_registry_that_cannot_be_created_stops_the_early_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no registry yet, the workers start before it is created; when it cannot be created the scan
    fails with the registry's own error, promptly, and nothing is left running or written."""
    import multiprocessing
    import time

    import registry.scan as scan_mod
    from registry.errors import RegistryError

    pools: list[object] = []

    class CountedPool(scan_mod._Pool):
        def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
            pools.append(self)
            super().__init__(*a, **k)

    monkeypatch.setattr(scan_mod, "_Pool", CountedPool)

    root = tmp_path / "m"
    for i in range(12):
        write_safetensors(root / f"f{i:02}.safetensors", {"w": np.full(64, i, dtype=np.float32)})
    (tmp_path / "not-a-folder").write_bytes(b"x")
    db = tmp_path / "not-a-folder" / "r.duckdb"
    t = time.monotonic()
    with pytest.raises((RegistryError, OSError)):
        scan([root], db, workers=2)
    assert time.monotonic() - t < 30
    assert len(pools) == 1  # the workers had started before the registry was tried
    assert not multiprocessing.active_children()
    assert not db.exists()


def test_ctrl_c_while_a_new_registry_is_created_stops_cleanly(tmp_path: Path) -> None:
    """A new registry is created in a thread while the workers start; Ctrl-C meanwhile ends the scan with
    KeyboardInterrupt once that thread is done with the registry (not with an error from closing it under
    the thread), leaves no worker running, and leaves the registry created and empty."""
    import signal
    import time

    root = tmp_path / "m"
    for i in range(12):
        write_safetensors(root / f"f{i:02}.safetensors", {"w": np.full(64, i, dtype=np.float32)})
    db = tmp_path / "r.duckdb"
    code = textwrap.dedent(
        f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from pathlib import Path
        from registry.store import db as dbmod
        from registry.scan import scan
        real = dbmod.create_schema
        def slow_create(con):
            print("creating", flush=True)
            time.sleep(1.5)  # the interrupt lands while this thread creates the registry
            return real(con)
        dbmod.create_schema = slow_create
        try:
            scan([{str(root)!r}], Path({str(db)!r}), workers=2)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(7)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "MODELREG_TEMPLATES": "0"},  # created statement by statement: slow_create runs
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"creating"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, err.decode()
    assert b"interrupted" in out and b"generator already executing" not in err
    c = counts(db)
    assert c["blobs"] == 0 and c["events"] == 0
    with connect(db, read_only=True) as con:
        assert verify_chain(con).ok


def test_stored_cells_skip_cleaning_only_when_cleaning_changes_nothing() -> None:
    """``_json_cell`` skips ``clean_obj`` for values it would not change; every kind of value below (text
    from undecodable file names, non-string keys, tuples, nesting, numpy scalars, non-ASCII text) is
    stored exactly as cleaning first and encoding after stores it."""
    import json as _json

    from registry.paths import clean_obj, clean_text
    from registry.store.write import _json_cell, _json_column

    def reference(v):  # type: ignore[no-untyped-def]
        if type(v) in (int, float, bool, type(None)):
            return v
        if isinstance(v, str):
            return clean_text(v)
        if isinstance(v, dict | list | tuple):
            v = clean_obj(v) if not isinstance(v, tuple) else tuple(clean_obj(list(v)))
        if isinstance(v, dict):
            return _json.dumps(v, sort_keys=True, default=str)
        if isinstance(v, list | tuple) and any(isinstance(x, dict | list | tuple) for x in v):
            return _json.dumps(v, sort_keys=True, default=str)
        if isinstance(v, tuple):
            return list(v)
        return v

    bad = "caf\udce9"
    values = [
        {"a": 1, "b": [1, 2.5, None, True]}, {"z": {"y": [1, {"x": "é"}]}}, {bad: 1}, {"k": bad}, [bad, "x"],
        {1: "a", 10: "b", 2: "c"}, {True: 1, None: 2}, {"t": (1, 2)}, (1, 2, 3), ("a", bad), ((1, 2), 3),
        [np.float64(1.5), np.int64(3)], {"n": np.float32(2.0)}, {"e": "\u00e9\u4e2d"}, {"\u00e9": 1}, [], {},
        [[1, 2], [3]], {"emoji": "\U0001f600"}, ["x", ("y", {"z": bad})], bad, "plain", 3, 2.5, None,
    ]  # fmt: skip
    for v in values:
        assert _json_cell(v) == reference(v), v
    # whole columns (insert_rows): numbers only, ASCII text only, non-ASCII or undecodable text, mixed
    columns = [
        [1, 2.5, None, True], ["a", None, "b"], ["é", None, "x"], [bad, "x"], [None, None], [], ["x", 3],
        [np.float64(1.5), 2], [(1, 2), None], [["a", "b"], None, []], [[1, 2.5, None, True], ["x", 3]],
        [["a", bad], ["b"]], [["é"]], [[["x"]], []], [[{"k": 1}]], [[np.int64(1)]], [("a",)], values,
    ]  # fmt: skip
    for col in columns:
        got = _json_column(list(col))
        assert got == [reference(v) for v in col], col
        assert [type(x) for x in got] == [type(reference(v)) for v in col], col


def test_rows_as_columns_gives_each_cell_as_the_writer_stores_it() -> None:
    """Rows become the columns insert_rows inserts, one row or many (a cell does not depend on its column),
    so a worker's columns joined end to end are the batch's."""
    from registry.store.write import _json_cell, rows_as_columns

    rows = [
        {"a": 1, "b": {"x": [1, 2]}, "c": "t\udce9xt"},
        {"a": 2.5, "d": [1, "z"], "b": None},
        {"c": "plain", "e": ({"k": 1},)},
    ]
    keys = ["a", "b", "c", "d", "e"]
    want = {k: [_json_cell(r.get(k)) for r in rows] for k in keys}
    assert rows_as_columns(rows) == want
    joined: dict[str, list] = {k: [] for k in keys}
    for r in rows:
        cols = rows_as_columns([r])
        for k in keys:
            joined[k].extend(cols.get(k, [None]))
    assert joined == want


def test_the_garbage_collector_is_as_the_caller_left_it_after_a_scan(tmp_path: Path, db: Path) -> None:
    """A scan collects garbage less often while it runs (registry.scan.SCAN_GC_THRESHOLDS, objects from
    before it frozen out of its collections); after it, finished or failed, the caller's settings are back."""
    import gc

    from registry.scan import SCAN_GC_THRESHOLDS

    old = gc.get_threshold()
    assert old != SCAN_GC_THRESHOLDS
    frozen = gc.get_freeze_count()
    write_safetensors(tmp_path / "a.safetensors", {"w": np.ones((2, 2), dtype=np.float32)})
    seen: list[tuple[int, ...]] = []
    scan([tmp_path], db, progress=lambda *_: seen.append(gc.get_threshold()))
    assert seen and set(seen) == {SCAN_GC_THRESHOLDS}
    assert gc.get_threshold() == old and gc.get_freeze_count() == frozen

    def boom(*_: object) -> None:
        raise RuntimeError("stop")

    write_safetensors(tmp_path / "c.safetensors", {"v": np.zeros((3,), dtype=np.float32)})
    with pytest.raises(RuntimeError, match="stop"):
        scan([tmp_path], db, progress=boom)
    assert gc.get_threshold() == old and gc.get_freeze_count() == frozen
