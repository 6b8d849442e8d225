"""Registry integrity (issue 14): odd file names, concurrent scans, the anchored event log, named storage
failures, workers that die with their parent, schema and .wal problems, missing registries, --fail-on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import root
from registry.store import db as dbmod
from registry.store.anchor import head_path, read_head
from registry.store.events import GENESIS, event_hash
from tests.builders import write_safetensors

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def cli_proc(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args], cwd=REPO, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def tiny(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    return write_safetensors(path, {"w": rng.standard_normal((4, 4)).astype(np.float32)})


def lfs_pointer(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 123\n")
    return path


def count(db: Path, sql: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute(sql).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


# --- names the OS allows ----------------------------------------------------------------------------

ODD = {
    b"bad\xffname.safetensors": "bad\\xffname.safetensors",
    b"two\nlines.safetensors": "two\\nlines.safetensors",
    b"caf\xe9-latin1-\xc3\xa9-utf8.safetensors": "caf\\xe9-latin1-é-utf8.safetensors",
    b"plain-\xc3\xa9.safetensors": "plain-é.safetensors",
}


@pytest.mark.skipif(sys.platform != "linux", reason="file names as arbitrary bytes are a Linux property")
def test_names_that_are_not_utf8_are_scanned_stored_shown_and_found(tmp_path: Path, db: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for i, raw in enumerate(ODD):
        tiny(Path(os.fsdecode(os.fsencode(folder) + b"/" + raw)), i)
    lfs_pointer(Path(os.fsdecode(os.fsencode(folder) + b"/lfs\xfe.safetensors")))
    code, out, err = run("scan", str(folder))
    assert code == 0, err
    assert "scanned: 5 files, 5 new" in out
    assert f"{folder}/lfs\\xfe.safetensors: this is a Git LFS pointer" in out  # findings print the display form

    con = duckdb.connect(str(db), read_only=True)
    rows = {r[0]: (bytes(r[1]) if r[1] is not None else None) for r in con.execute("SELECT path, path_raw FROM sightings").fetchall()}
    events = [json.loads(p) for (p,) in con.execute("SELECT CAST(payload AS VARCHAR) FROM events WHERE action = 'sighting.add'").fetchall()]
    con.close()
    for raw, shown in ODD.items():
        display = f"{folder}/{shown}"
        exact = os.fsencode(folder) + b"/" + raw
        assert display in rows
        # lossless: the exact bytes are kept whenever the display form is not exactly them
        assert rows[display] == (None if display.encode() == exact else exact)
        ev = next(e for e in events if e["path"] == display)
        assert ev.get("path_raw_hex") == (None if display.encode() == exact else exact.hex())
        # show PATH with the name as the OS gives it, and with the display form typed by hand
        for ref in (os.fsdecode(exact), display):
            code, out, err = run("show", ref)
            assert code == 0, err
            assert display in out
    code, out, _ = run("ls")
    assert code == 0 and "bad\\xffname.safetensors" in out and "two\\nlines" in out
    # incremental: nothing is read again, nothing is added
    code, out, _ = run("scan", str(folder))
    assert "5 unchanged" in out
    assert count(db, "SELECT count(*) FROM sightings") == 5
    assert run("log", "--verify")[0] == 0


def test_two_names_with_the_same_display_form_stay_apart(tmp_path: Path, db: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    tiny(folder / "a\\xff.safetensors", 1)  # a real backslash, x, f, f
    tiny(Path(os.fsdecode(os.fsencode(folder) + b"/a\xff.safetensors")), 2)
    assert run("scan", str(folder))[0] == 0
    assert count(db, "SELECT count(DISTINCT (path, path_raw)) FROM sightings") == 2
    assert "2 unchanged" in run("scan", str(folder))[1]


# --- one sighting per (host, path, content), whatever runs at the same time -------------------------


def test_concurrent_scans_record_each_file_once(tmp_path: Path, db: Path) -> None:
    top = tmp_path / "m"
    for i in range(40):
        tiny(top / ("a" if i % 2 else "b") / f"f{i}.safetensors", i)
    # three at once: the same folder twice, and an overlapping sub-folder
    procs = [cli_proc("scan", "-q", str(top)), cli_proc("scan", "-q", str(top)), cli_proc("scan", "-q", str(top / "a"))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    assert count(db, "SELECT count(*) FROM sightings") == 40
    assert count(db, "SELECT count(*) FROM (SELECT host, path, blob_sha256 FROM sightings GROUP BY ALL HAVING count(*) > 1)") == 0
    assert count(db, "SELECT count(*) FROM events WHERE action = 'sighting.add'") == 40
    assert count(db, "SELECT count(*) FROM blobs") == 40
    code, out, _ = run("show", str(top / "a" / "f1.safetensors"))
    assert code == 0 and out.count(str(top / "a" / "f1.safetensors")) == 1
    assert run("log", "--verify")[0] == 0


def test_touched_file_updates_its_sighting_instead_of_adding_one(tmp_path: Path, db: Path) -> None:
    f = tiny(tmp_path / "m" / "x.safetensors", 1)
    assert run("scan", str(f))[0] == 0
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    assert run("scan", str(f))[0] == 0
    assert count(db, "SELECT count(*) FROM sightings") == 1
    assert count(db, "SELECT mtime_ns FROM sightings") == 1_000_000_000
    assert count(db, "SELECT count(*) FROM events WHERE action = 'sighting.update'") == 1
    assert run("log", "--verify")[0] == 0


# --- the anchored log -------------------------------------------------------------------------------


@pytest.fixture
def logged(tmp_path: Path, db: Path) -> Path:
    for i in range(3):
        tiny(tmp_path / "m" / f"f{i}.safetensors", i)
    lfs_pointer(tmp_path / "m" / "pointer.safetensors")
    assert run("scan", str(tmp_path / "m"))[0] == 0
    code, out, err = run("log", "--verify")
    assert code == 0, err
    return db


def verify_fails(*expected: str) -> str:
    code, _, err = run("log", "--verify")
    assert code == 1, err
    for e in expected:
        assert e in err, err
    return err


def tamper(db: Path, *sql: str) -> None:
    """Change the database behind modelreg's back (the head file is left alone)."""
    con = duckdb.connect(str(db))
    for s in sql:
        con.execute(s)
    con.close()


def test_head_file_is_written_beside_the_registry(logged: Path) -> None:
    head = read_head(logged)
    assert head is not None and head.seq == 8 and head.anchored_since == 0
    assert head.hash == str(duckdb.connect(str(logged), read_only=True).execute("SELECT hash FROM events WHERE seq = 8").fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize(("sql", "message"), [
    ("DELETE FROM events WHERE seq = 8", "event 8 missing: head file says seq 8, the log ends at 7"),
    ("DELETE FROM events WHERE seq >= 6", "events 6–8 missing: head file says seq 8, the log ends at 5"),
    ("DELETE FROM events", "events 1–8 missing: head file says seq 8, the log ends at 0"),
])
def test_truncation_is_named(logged: Path, sql: str, message: str) -> None:
    tamper(logged, sql)
    verify_fails(message)


def test_rewriting_with_fresh_hashes_is_found(logged: Path) -> None:
    con = duckdb.connect(str(logged))
    rows = con.execute(
        "SELECT seq, strftime(event_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ'), actor, action, subject, "
        "CAST(payload AS VARCHAR), prev_hash FROM events ORDER BY seq"
    ).fetchall()
    prev = GENESIS
    for seq, at, who, action, subject, payload, prev_hash in rows:
        p = json.loads(payload)
        if seq >= 5 and "size" in p:
            p["size"] = 1  # a forged history, every hash recomputed so that the chain alone is fine
        h = event_hash(seq, at, who, action, subject, p, prev if seq >= 5 else prev_hash)
        con.execute("UPDATE events SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?", [json.dumps(p), prev if seq >= 5 else prev_hash, h, seq])
        prev = h
    con.close()
    err = verify_fails("event 8 does not match the head file", "the log was rewritten at or before event 8")
    assert "chain BROKEN" not in err  # the chain itself was made consistent: only the anchor tells


def test_without_the_head_file_verification_says_what_it_cannot_prove(logged: Path) -> None:
    head_path(logged).unlink()
    tamper(logged, "DELETE FROM events WHERE seq = 8")
    code, _, err = run("log", "--verify")
    assert "no head file at" in err and "not that the newest entries are all there" in err
    # the deleted sighting event leaves a row without its event: the agreement check still sees it
    assert code == 1 and "sightings have no event that created them" in err


@pytest.mark.parametrize(("sql", "message"), [
    ("UPDATE blobs SET format = 'pickle' WHERE sha256 = (SELECT min(sha256) FROM blobs)", "1 blob rows differ from the events that created them"),
    ("UPDATE blobs SET autov1 = '00000000' WHERE sha256 = (SELECT min(sha256) FROM blobs)", "1 blob rows differ from the events that created them"),
    ("DELETE FROM blobs WHERE sha256 = (SELECT min(sha256) FROM blobs)", "1 blobs recorded by events are missing"),
    ("UPDATE sightings SET size = 1 WHERE id = (SELECT min(id) FROM sightings)", "1 sightings differ from the events that created them"),
    ("UPDATE sightings SET path = '/elsewhere' WHERE id = (SELECT min(id) FROM sightings)", "1 sightings recorded by events are missing"),
    ("DELETE FROM sightings WHERE id = (SELECT min(id) FROM sightings)", "1 sightings recorded by events are missing"),
    ("UPDATE findings SET severity = 'info'", "1 sets of findings differ from the events that created them"),
    ("DELETE FROM findings", "1 sets of findings differ from the events that created them"),
])
def test_rows_that_disagree_with_their_events_are_named(logged: Path, sql: str, message: str) -> None:
    tamper(logged, sql)
    verify_fails(message)


def test_writing_on_a_log_that_does_not_match_its_head_is_refused(logged: Path, tmp_path: Path) -> None:
    tamper(logged, "DELETE FROM events WHERE seq >= 6")
    code, _, err = run("scan", str(tiny(tmp_path / "n" / "new.safetensors", 9)))
    assert code == 3 and "does not match its head file: event 8 is missing; writing is refused" in err
    assert read_head(logged).seq == 8  # type: ignore[union-attr]


def test_log_help_states_what_is_proven_with_and_without_the_anchor() -> None:
    code, out, _ = run("log", "--help")
    assert code == 0
    assert "missing at the end" in out and "without it" in out and "head file" in out


# --- failures named ---------------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> object:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root and mount permission (not available here)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_no_space_is_named_and_nothing_committed_is_lost(tmp_path: Path, tmpfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = tmpfs / "reg" / "registry.duckdb"
    monkeypatch.setenv("MODELREG_DB", str(reg))
    first = tiny(tmp_path / "m" / "first.safetensors", 1)
    assert run("scan", str(first))[0] == 0
    filler = tmpfs / "filler"
    with open(filler, "wb") as fh:  # fill the file system
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    # checked before the analysis work: one line with the cause, exit 3
    code, out, err = run("scan", str(tiny(tmp_path / "n" / "second.safetensors", 2)))
    assert code == 3 and out == ""
    assert err.strip().splitlines() == [f"modelreg: cannot write registry {reg}: no space left on device; free some space, or move the registry with --db"]
    # and when space runs out during the commit itself (the pre-check let through): still one line
    monkeypatch.setattr(dbmod, "MIN_FREE_BYTES", 0)
    big = write_safetensors(tmp_path / "n" / "big.safetensors", {f"t{i}": np.random.default_rng(i).standard_normal((64, 64)).astype(np.float32) for i in range(400)})
    code, _, err = run("scan", str(big))
    assert code == 3 and len(err.strip().splitlines()) == 1 and "no space left on device" in err, err
    filler.unlink()
    code, out, err = run("show", str(first))
    assert code == 0 and "first.safetensors" in out, err
    assert run("log", "--verify")[0] == 0


def test_read_only_registry_is_named_before_any_work(tmp_path: Path, tmpfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = tmpfs / "registry.duckdb"
    monkeypatch.setenv("MODELREG_DB", str(reg))
    first = tiny(tmp_path / "m" / "first.safetensors", 1)
    assert run("scan", str(first))[0] == 0
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    code, _, err = run("scan", str(tiny(tmp_path / "n" / "second.safetensors", 2)))
    assert code == 3 and err.strip().splitlines() == [
        f"modelreg: cannot write registry {reg}: read-only file system; the registry is on a read-only file system; use --db to write elsewhere"
    ]
    code, out, _ = run("show", str(first))  # reading still works
    assert code == 0 and "first.safetensors" in out


def test_permission_denied_is_named() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another user")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="modelreg-perm-") as d:
        _permission_denied(Path(d))


def _permission_denied(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # the other user may read the model but not write the registry's folder
    reg_dir = tmp_path / "reg"
    reg_dir.mkdir(mode=0o755)
    model = tiny(tmp_path / "m" / "x.safetensors", 1)
    for p in (tmp_path / "m", model):
        p.chmod(p.stat().st_mode | 0o005)
    reg = reg_dir / "registry.duckdb"
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "cli.main", "--db", str(reg), "scan", str(model)],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)},
    )
    if "Permission denied" in r.stderr and "python" in r.stderr.lower() and "modelreg:" not in r.stderr:
        pytest.skip("the interpreter is not usable by another user here")
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"modelreg: cannot write registry {reg}: permission denied; check the permissions of the registry and its folder, or use --db"
    ]
    assert not reg.exists()


def test_a_failed_commit_is_reported_with_its_cause(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the disk fills up exactly at COMMIT (the original bug hid it behind a failed ROLLBACK)."""
    from registry.store import write

    real = write.write_batch

    def full_disk(con: duckdb.DuckDBPyConnection, items: object, derived: object = ()) -> None:
        real(con, items, derived)  # type: ignore[arg-type]
        raise duckdb.IOException('Could not write file "registry.duckdb.wal": No space left on device')

    monkeypatch.setattr("registry.scan.write_batch", full_disk)
    code, _, err = run("scan", str(tiny(tmp_path / "m" / "x.safetensors", 1)))
    assert code == 3 and err.strip().splitlines()[1:] == [
        f"modelreg: cannot write registry {db}: no space left on device; free some space, or move the registry with --db"
    ]


# --- workers die with their parent ------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_workers_die_within_two_seconds_of_kill_9_of_the_scan(tmp_path: Path, db: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(6):  # sparse files: seconds of hashing each, no disk used
        with open(big / f"f{i}.bin", "wb") as fh:
            fh.write(b"PK" + bytes([i]))
            fh.truncate(3 << 30)
    p = cli_proc("scan", "-j", "2", "--no-progress", str(big))
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = [c for c in _children(p.pid) if _alive(c) and "python" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
    assert len(workers) >= 2, "the scan did not start its workers"
    time.sleep(1.0)  # busy hashing now
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    time.sleep(2.0)
    alive = [w for w in workers if _alive(w)]
    for w in alive:  # clean up before failing
        os.kill(w, signal.SIGKILL)
    assert alive == []


# --- schema, .wal, missing registry -----------------------------------------------------------------


def test_newer_schema_reads_but_refuses_writes(tmp_path: Path, db: Path) -> None:
    f = tiny(tmp_path / "m" / "x.safetensors", 1)
    assert run("scan", str(f))[0] == 0
    tamper(db, "INSERT INTO migrations VALUES ('9900_from_the_future', now(), NULL)")
    code, out, _ = run("ls")
    assert code == 0 and "x.safetensors" in out
    code, _, err = run("scan", str(tiny(tmp_path / "m" / "y.safetensors", 2)))
    assert code == 3
    assert "was written by a newer modelreg (its schema has 9900_from_the_future" in err
    assert "reading works, writing is refused; upgrade modelreg" in err
    assert count(db, "SELECT count(*) FROM blobs") == 1


def test_damaged_wal_names_the_recovery_step(tmp_path: Path, db: Path) -> None:
    f = tiny(tmp_path / "m" / "x.safetensors", 1)
    assert run("scan", str(f))[0] == 0
    con = duckdb.connect(str(db))
    con.execute("SET checkpoint_threshold = '1GB'")
    con.execute("CREATE TABLE scratch AS SELECT range AS i FROM range(1000)")
    shutil.copy(db, tmp_path / "crash.duckdb")  # the files as a crash would leave them
    shutil.copy(str(db) + ".wal", tmp_path / "crash.duckdb.wal")
    con.close()
    wal = tmp_path / "crash.duckdb.wal"
    b = bytearray(wal.read_bytes())
    for i in range(100, len(b), 7):
        b[i] ^= 0x55
    wal.write_bytes(bytes(b))
    code, _, err = run("--db", str(tmp_path / "crash.duckdb"), "ls")
    assert code == 3
    assert f"its write-ahead log {wal} is damaged" in err
    assert f"mv '{wal}' '{wal}.damaged'" in err and "log --verify` names the events that were lost" in err


@pytest.mark.parametrize("command", [["ls"], ["show", "x"], ["log", "--verify"], ["query", "SELECT 1"], ["export", "x"]])
def test_read_commands_on_a_missing_registry(tmp_path: Path, command: list[str]) -> None:
    reg = tmp_path / "typo" / "registry.duckdb"
    code, out, err = run("--db", str(reg), *command)
    assert code == 2 and out == ""
    assert err == f"modelreg: no registry at {reg} (scan something first, or check --db)\n"
    assert not (tmp_path / "typo").exists()


def test_writing_commands_create_the_registry_and_say_so(tmp_path: Path) -> None:
    reg = tmp_path / "new" / "registry.duckdb"
    code, _, err = run("--db", str(reg), "scan", str(tiny(tmp_path / "m" / "x.safetensors", 1)))
    assert code == 0 and f"created a new registry at {reg}" in err
    code, _, err = run("--db", str(reg), "scan", str(tmp_path / "m"))
    assert code == 0 and "created" not in err


# --- --fail-on judges every covered file ------------------------------------------------------------


def test_scan_fail_on_gives_the_same_verdict_every_run(tmp_path: Path, db: Path) -> None:
    for i in range(3):
        lfs_pointer(tmp_path / "m" / f"p{i}.safetensors").write_bytes(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:" + bytes(str(i), "ascii") * 64 + b"\nsize 1\n"
        )
    tiny(tmp_path / "m" / "ok.safetensors", 1)
    for _ in range(2):
        code, out, _ = run("scan", "--fail-on", "high", str(tmp_path / "m"))
        assert code == 1 and "3 findings at or above high across the 4 files covered" in out
    code, out, _ = run("scan", "--fail-on", "high", str(tmp_path / "m" / "ok.safetensors"))
    assert code == 0 and "0 findings at or above high across the 1 files covered" in out


def test_audit_fail_on_gives_the_same_verdict_every_run(tmp_path: Path, db: Path) -> None:
    for i in range(3):
        lfs_pointer(tmp_path / "m" / f"p{i}.safetensors").write_bytes(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:" + bytes(str(i), "ascii") * 64 + b"\nsize 1\n"
        )
    for _ in range(2):
        code, _, err = run("audit", "--fail-on", "high", str(tmp_path / "m"))
        assert code == 1 and "; 3 at or above high" in err, err


@pytest.mark.skipif(sys.platform != "linux", reason="file names as arbitrary bytes are a Linux property")
def test_audit_handles_names_that_are_not_utf8(tmp_path: Path, db: Path) -> None:
    folder = tmp_path / "m"
    model = tiny(Path(os.fsdecode(os.fsencode(folder) + b"/x\xff.safetensors")), 1)
    Path(os.fsdecode(os.fsencode(folder) + b"/x\xff.civitai.info")).write_text("{}")
    for _ in range(2):
        code, out, err = run("audit", str(folder))
        assert code == 0, err
    assert "1 sidecars/previews" in err
    code, out, _ = run("show", os.fsdecode(os.fsencode(model)))
    assert code == 0 and f"{folder}/x\\xff.safetensors" in out
    assert run("log", "--verify")[0] == 0


def test_a_listing_changed_outside_modelreg_is_named_and_rebuilt(logged: Path) -> None:
    """``ls`` reads the listing table: a row changed behind modelreg's back fails --verify, naming the
    model, and --rebuild-listing recomputes it from the records (the log untouched)."""
    con = duckdb.connect(str(logged))
    sha = str(con.execute("SELECT min(sha256) FROM model_listing").fetchone()[0])  # type: ignore[index]
    n_events = con.execute("SELECT count(*) FROM events").fetchone()
    con.execute("UPDATE model_listing SET n_findings = 99, path = '/hidden' WHERE sha256 = ?", [sha])
    con.close()
    err = verify_fails(f"1 models are listed differently from their records ({sha[:12]})", "--rebuild-listing")
    assert "chain BROKEN" not in err
    code, _, err = run("log", "--rebuild-listing")
    assert code == 0 and "listing rebuilt from the records" in err, err
    code, out, err = run("log", "--verify")
    assert code == 0 and "chain ok" in out, err
    con = duckdb.connect(str(logged), read_only=True)
    assert con.execute("SELECT count(*) FROM events").fetchone() == n_events
    assert con.execute("SELECT path FROM model_listing WHERE sha256 = ?", [sha]).fetchone() != ("/hidden",)
    con.close()


def test_rebuilding_the_listing_creates_no_registry(tmp_path: Path, db: Path) -> None:
    code, _, err = run("log", "--rebuild-listing")
    assert code != 0 and f"no registry at {db}" in err, err
    assert not db.exists()
