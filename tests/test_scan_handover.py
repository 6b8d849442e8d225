"""The hand-over from pool workers to the scanning process (issue 21): a worker task's analyzer rows go
over as one block of columns per table for all its files, and the writer stores exactly the rows it
stored from one set of columns per file, whichever of the block's files it writes."""

from __future__ import annotations

import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from registry import scan as scan_mod
from registry.store.write import BlobRecord, ColumnBlock, join_columns
from tests.builders import write_safetensors
from tests.test_scan_contents import dump


def test_a_block_gives_back_each_blobs_rows() -> None:
    a = {"t": {"x": [1, 2], "y": ["p", "q"]}, "u": {"z": [1.5]}}
    b = {"t": {"x": [3], "w": [[1, 2]]}}  # a column the first lacks, one it has missing; no "u" rows
    c = {"u": {"z": [2.5, 3.5]}, "v": {"k": ["only"]}}  # no "t" rows; a table the others lack
    d = {"t": {"x": [4], "y": ["r"]}, "u": {"z": [4.5]}, "v": {"k": ["again"]}}  # after others' columns
    block = ColumnBlock()
    assert [block.add(sha, cols) for sha, cols in (("A", a), ("B", b), ("C", c))] == [0, 1, 2]
    assert block.counts == {"t": [2, 1, 0], "u": [1, 0, 2], "v": [0, 0, 1]}
    whole = ColumnBlock()
    for sha, cols in (("A", a), ("B", b), ("C", c), ("D", d)):
        whole.add(sha, cols)
    assert whole.take([3]) == {
        "t": {"blob_sha256": ["D"], "x": [4], "y": ["r"], "w": [None]},
        "u": {"blob_sha256": ["D"], "z": [4.5]},
        "v": {"blob_sha256": ["D"], "k": ["again"]},
    }
    assert whole.take([0, 1, 2, 3])["u"] == {"blob_sha256": ["A", "C", "C", "D"], "z": [1.5, 2.5, 3.5, 4.5]}
    # the pool's hand-over (to a worker process and back, as multiprocessing does it) leaves the cache out
    assert "_fast" in whole.__dict__ and "_fast" not in _handed_over(_same, whole).__dict__

    def joined(*files: tuple[str, dict[str, dict[str, list[Any]]]]) -> dict[str, dict[str, list[Any]]]:
        out: dict[str, dict[str, list[Any]]] = {}
        for sha, cols in files:
            for table, tcols in cols.items():
                join_columns(out, table, {"blob_sha256": [sha] * len(next(iter(tcols.values()))), **tcols})
        return out

    assert block.take([0, 1, 2]) == joined(("A", a), ("B", b), ("C", c))
    assert whole.take([0, 1, 2, 3]) == joined(("A", a), ("B", b), ("C", c), ("D", d))
    assert block.take([0, 1, 2])["t"] == {
        "blob_sha256": ["A", "A", "B"], "x": [1, 2, 3], "y": ["p", "q", None], "w": [None, None, [1, 2]],
    }  # fmt: skip
    assert block.take([0, 2]) == {
        "t": {"blob_sha256": ["A", "A"], "x": [1, 2], "y": ["p", "q"], "w": [None, None]},
        "u": {"blob_sha256": ["A", "C", "C"], "z": [1.5, 2.5, 3.5]},
        "v": {"blob_sha256": ["C"], "k": ["only"]},
    }
    assert block.take([1]) == {"t": {"blob_sha256": ["B"], "x": [3], "y": [None], "w": [[1, 2]]}}
    assert block.take([]) == {}


def _same(x: Any) -> Any:
    return x


def _handed_over(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` run in a forked worker process of a process pool (the scan's kind), its result handed
    back to this process by the pool: objects this test made, never a file's bytes."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as ex:
        return ex.submit(fn, *args).result(timeout=120)


def _tiny(path: Path, rng: np.random.Generator, seed: int, rank: int = 2) -> None:
    write_safetensors(
        path,
        {
            "lora_unet_x.lora_down.weight": rng.standard_normal((rank, 4)).astype(np.float16),
            "lora_unet_x.lora_up.weight": rng.standard_normal((4, rank)).astype(np.float16),
        },
        {"ss_seed": str(seed)},
    )


def _table_columns(blob: BlobRecord) -> dict[str, dict[str, list[Any]]]:
    """A blob's rows as columns per table, wherever they are held (without ``blob_sha256``)."""
    if blob.block is None:
        return blob.columns
    taken = blob.block.take([blob.block_index])
    return {t: {k: v for k, v in cols.items() if k != "blob_sha256"} for t, cols in taken.items()}


def test_a_task_hands_over_one_block_with_each_files_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(5):
        _tiny(tmp_path / f"f{i}.safetensors", rng, i, rank=1 + i % 3)
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json")
    paths = sorted(tmp_path.iterdir())
    items = [(str(p), p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino, p.stat().st_dev) for p in paths]
    scan_mod._init_worker(set())
    each = scan_mod.analyse_files(items)
    # the task run by a pool worker, its results handed back by the pool
    handed = _handed_over(scan_mod.analyse_task, items)
    assert [a.path for a in handed] == [a.path for a in each]
    blocks = [a.blob.block for a in handed if a.blob is not None]
    assert len(blocks) == 6 and blocks[0] is not None and all(b is blocks[0] for b in blocks)  # pickled once
    volatile = {("lora_summary", "seconds"), ("pickle_scans", "elapsed_ms")}
    for a, b in zip(handed, each, strict=True):
        assert a.steps == {} and a.sha256 == b.sha256
        assert a.blob is not None and b.blob is not None and a.blob.columns == {}
        got, want = _table_columns(a.blob), b.blob.columns
        assert sorted(got) == sorted(want) and ("lora_modules" in got) == ("broken" not in a.path)
        for table in want:
            assert {k for k in got[table]} == set(want[table])
            for k, v in want[table].items():
                if (table, k) not in volatile:
                    assert got[table][k] == v, (a.path, table, k)
        assert a.blob.findings == b.blob.findings


def test_the_event_text_a_worker_makes_is_the_one_the_writer_made() -> None:
    """``blob_event_text`` (made by a pool worker) against the payload the writer built from the blob's
    ``findings`` rows before: findings with text from undecodable file names, non-ASCII text, nested and
    non-JSON evidence, and none at all."""
    import json as _json
    from datetime import UTC, datetime

    from registry.findings import Finding, Severity
    from registry.store.events import payload_text
    from registry.store.write import (
        TensorRows,
        blob_digest,
        blob_event_text,
        blob_row,
        finding_row,
        findings_digest,
    )

    findings = [
        Finding("file.unreadable", Severity.MEDIUM, "bad name \udcff here", {"path": "/m/\udcfe.safetensors"}),
        Finding("stats.zero-update", Severity.LOW, "Größe ≥ 1", {"modules": ["a", "b"], "n": 2, "nested": {"x": [1.5, None]}}),
        Finding("format.unsupported", Severity.LOW, "odd evidence", {"when": datetime(2020, 1, 2, tzinfo=UTC), 3: (1, 2)}),
    ]
    for fs in (findings, []):
        b = BlobRecord(
            sha256="a" * 64, size=123, hashes={"autov3": "b" * 12, "blake3": "c" * 64, "crc32": "0badf00d"},
            format="safetensors", header_len=40, n_tensors=2, metadata_json='{"k": "v"}', analyzers="stats=2",
            tensors=TensorRows(), findings=fs, rows={},
        )  # fmt: skip
        rows = [finding_row(f, b.sha256, "host", "/m/x.safetensors", datetime.now(UTC)) for f in fs]
        before = payload_text(
            {
                "sha256": b.sha256, "size": b.size, "format": b.format, "autov3": b.hashes.get("autov3"),
                "blake3": b.hashes.get("blake3"), "findings": len(fs),
                "findings_sha256": findings_digest((r["rule_id"], r["severity"], r["message"], r["evidence"]) for r in rows),
                "blob_row_sha256": blob_digest(blob_row(b)), "analyzers": b.analyzers,
            }
        )  # fmt: skip
        assert blob_event_text(b) == before
        assert _json.loads(before)["findings"] == len(fs)


def test_duplicates_within_a_task_and_any_batch_size_store_the_same_rows(tmp_path: Path) -> None:
    """Copies of one file in the same worker task (the second is not written again) and commits that cut a
    task's files into several batches store what a scan in one process stores."""
    rng = np.random.default_rng(4)
    root = tmp_path / "m"
    root.mkdir()
    for i in range(40):
        _tiny(root / f"a{i:02d}.safetensors", rng, i, rank=1 + i % 3)
    shutil.copy(root / "a00.safetensors", root / "a00 copy.safetensors")  # next to it: the same task
    shutil.copy(root / "a05.safetensors", root / "z copy.safetensors")  # another task
    (root / "a10.safetensors").write_bytes(b"")
    want = None
    for name, kw in (("j1", {"workers": 1}), ("j2", {"workers": 2}), ("b1", {"workers": 2, "batch_seconds": 0.0}),
                     ("b3", {"workers": 2, "batch_files": 3})):  # fmt: skip
        db = tmp_path / f"{name}.duckdb"
        scan_mod.scan([root], db, **kw)
        got = dump(db, root)
        assert len(got["lora_modules"]) == 1 + 39 and len(got["sightings"]) == 1 + 42
        if want is None:
            want = got
        else:
            assert got == want, name


def test_the_held_writer_reads_the_log_head_again_after_letting_go(tmp_path: Path, monkeypatch: Any) -> None:
    """Between two commits of a scan another writer appends an event (the scan had let go of the
    registry): the scan's next events follow it, and the chain is whole."""
    from registry.store.db import connect
    from registry.store.events import append_event, verify_chain

    rng = np.random.default_rng(6)
    root = tmp_path / "m"
    root.mkdir()
    for i in range(6):
        _tiny(root / f"f{i}.safetensors", rng, i)
    db = tmp_path / "r.duckdb"
    real = scan_mod.HeldWriter.commit
    commits: list[int] = []

    def commit_then_let_another_write(self: Any, items: Any, derived: Any) -> None:
        real(self, items, derived)
        commits.append(len(items))
        if len(commits) == 2:
            self.release()
            with connect(db) as con:
                con.execute("BEGIN TRANSACTION")
                append_event(con, "test.interleaved", None, {"n": 1})
                con.execute("COMMIT")

    monkeypatch.setattr(scan_mod.HeldWriter, "commit", commit_then_let_another_write)
    scan_mod.scan([root], db, workers=1, batch_files=2, batch_seconds=3600)
    assert commits == [2, 2, 2]
    with connect(db, read_only=True) as con:
        assert verify_chain(con).ok
        actions = [r[0] for r in con.execute("SELECT action FROM events ORDER BY seq").fetchall()]
    assert actions.count("test.interleaved") == 1 and actions.count("sighting.add") == 6
    assert actions.index("test.interleaved") < len(actions) - 4  # the last two files' events follow it
