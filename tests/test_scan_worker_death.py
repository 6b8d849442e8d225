"""A pool worker that dies (a file truncated while it is memory-mapped: SIGBUS; a crash in a native
library) breaks the whole process pool. The scan then costs only that file: it gets a
``scan.task-failed`` finding and no record, and every other file is analysed and recorded as a scan
without the death records it."""

from __future__ import annotations

import faulthandler
import hashlib
import mmap
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import registry.scan as scan_mod
from registry.scan import scan
from registry.store.db import connect
from registry.store.events import verify_chain
from tests.builders import write_safetensors

_ORIGINAL = scan_mod.analyse_files


def _dies_on_victim(items: list[tuple[str, int, int, int, int]], rehash: bool = False) -> Any:
    """The pool's task function in a forked worker: a task holding ``victim.safetensors`` kills its
    process with SIGBUS (every time: with other files and alone)."""
    if any(os.path.basename(p) == "victim.safetensors" for p, *_ in items):
        faulthandler.disable()  # (pytest's traceback dump of the dying worker is noise in the test output)
        os.kill(os.getpid(), signal.SIGBUS)
    return _ORIGINAL(items, rehash)


def _truncates_victim(items: list[tuple[str, int, int, int, int]], rehash: bool = False) -> Any:
    """The real mechanism, once: the victim is mapped, truncated by someone else, and read through the
    map (SIGBUS from the kernel). Its second analysis finds it empty."""
    for p, *_ in items:
        if os.path.basename(p) == "victim.safetensors" and os.path.getsize(p) > 0:
            faulthandler.disable()
            with open(p, "r+b") as fh:
                m = mmap.mmap(fh.fileno(), 0)
                fh.truncate(0)
                m[len(m) - 1]  # SIGBUS: the page is beyond the end of the file now
    return _ORIGINAL(items, rehash)


def _folder(root: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(7)
    files = []
    for i in range(n):
        name = "victim" if i == n // 3 else f"f{i:03d}"
        t = {
            "lora_unet_x.lora_down.weight": rng.standard_normal((4, 8)).astype(np.float16),
            "lora_unet_x.lora_up.weight": rng.standard_normal((8, 4)).astype(np.float16),
        }
        files.append(write_safetensors(root / f"{name}.safetensors", t, {"ss_seed": str(i)}))
    return files


def _sightings(db: Path) -> dict[str, str | None]:
    with connect(db, read_only=True) as con:
        return {Path(p).name: s for p, s in con.execute("SELECT path, blob_sha256 FROM sightings").fetchall()}


def _path_findings(db: Path) -> dict[str, str]:
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT path, rule_id FROM findings WHERE blob_sha256 IS NULL").fetchall()
    return {Path(p).name: r for p, r in rows}


@pytest.mark.parametrize("n", [3, 40, 300])
def test_a_worker_that_dies_costs_only_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    files = _folder(tmp_path / "m", n)
    ref = scan([tmp_path / "m"], tmp_path / "ref.duckdb", workers=1)
    monkeypatch.setattr(scan_mod, "analyse_files", _dies_on_victim)
    db = tmp_path / "r.duckdb"
    s = scan([tmp_path / "m"], db, workers=2)
    assert s.files == len(files)
    assert s.unreadable == 1
    assert s.new_blobs == len(files) - 1
    assert [f[:2] for f in s.finding_list if f[0] == "scan.task-failed"] == [("scan.task-failed", "medium")]
    expected = {k: v for k, v in _sightings(tmp_path / "ref.duckdb").items() if k != "victim.safetensors"}
    assert _sightings(db) == expected  # (a file with no record has no sighting, only its finding)
    assert _path_findings(db) == {"victim.safetensors": "scan.task-failed"}
    with connect(db, read_only=True) as con:
        assert verify_chain(con).ok
    assert ref.files == len(files)


def test_a_file_truncated_while_mapped_is_found_empty_on_its_second_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _folder(tmp_path / "m", 40)
    monkeypatch.setattr(scan_mod, "analyse_files", _truncates_victim)
    db = tmp_path / "r.duckdb"
    s = scan([tmp_path / "m"], db, workers=2)
    assert (s.files, s.new_blobs, s.unreadable) == (len(files), len(files), 0)
    assert _sightings(db)["victim.safetensors"] == hashlib.sha256(b"").hexdigest()
    assert [(f[0], Path(f[2]).name) for f in s.finding_list] == [("file.empty", "victim.safetensors")]
    assert "scan.task-failed" not in {f[0] for f in s.finding_list}
