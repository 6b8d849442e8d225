"""scan on Ray (registry/distributed.py): a real two-node Ray cluster on 127.0.0.1 started by the tests.

The registry a Ray scan writes must equal a local scan's of the same files (every table, timing fields
aside), also when the second node is killed mid-scan; a file that fails twice becomes a finding. The
tests that need Ray skip when it is not installed (the ``ray`` extra); the Arrow round trip and the
"the core never imports ray" check run everywhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry.distributed import RayMapper, chunks, from_arrow, to_arrow
from registry.scan import Analysed, ScanItem, _init_worker, analyse_file, scan
from registry.store.db import connect
from registry.store.events import verify_chain
from tests.builders import raw_safetensors, write_safetensors
from tests.pickle_builders import canary_payloads, safetensors_pickle_polyglot

ROOT = Path(__file__).resolve().parents[1]

#: columns that hold wall-clock times or hashes over them (they differ between any two scans)
TIMING = {
    "first_seen", "seen_at", "created_at", "applied_at", "event_at", "prev_hash", "hash", "seconds",
    "elapsed_ms", "checked_at", "observed_at", "read_at", "traced_at", "event_hash",
}


def registry_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, timing columns left out, sorted."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with connect(db, read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY 1"
        ).fetchall()]
        for t in tables:
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position", [t]
            ).fetchall() if r[0] not in TIMING]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[t] = sorted((con.execute(f'SELECT {sel} FROM "{t}"').fetchall()), key=repr)
    return out


def lora_file(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {}
    for blk in ("down_blocks_0_attentions_0_proj_in", "up_blocks_1_attentions_0_proj_out"):
        k = f"lora_unet_{blk}"
        t[f"{k}.lora_down.weight"] = rng.standard_normal((4, 16)).astype(np.float16)
        t[f"{k}.lora_up.weight"] = rng.standard_normal((16, 4)).astype(np.float16)
        t[f"{k}.alpha"] = np.array(4.0, dtype=np.float16)
    return write_safetensors(path, t, {"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_output_name": f"l{seed}"})


def mixed_folder(root: Path, n_plain: int = 8) -> list[Path]:
    """Valid models (a duplicate among them), LoRAs, hostile and truncated files, non-models."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n_plain):
        out.append(write_safetensors(root / f"m{i:02d}.safetensors", {"w": np.full(64, i, dtype=np.float32)}, {"i": str(i)}))
    out.append(write_safetensors(root / "copy" / "m00.safetensors", {"w": np.full(64, 0, dtype=np.float32)}, {"i": "0"}))
    out.append(lora_file(root / "loras" / "a.safetensors", 1))
    out.append(lora_file(root / "loras" / "b.safetensors", 2))
    bad = {
        "hostile.ckpt": canary_payloads(str(root / "CANARY"))["os.system p2"],
        "polyglot.safetensors": safetensors_pickle_polyglot(canary_payloads(str(root / "CANARY"))["os.system p2"]),
        "truncated.safetensors": (root / "m01.safetensors").read_bytes()[:-20],
        "beyond.safetensors": raw_safetensors(b'{"a":1}', header_len=900),
        "empty.safetensors": b"",
        "lfs.safetensors": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 123\n",
        "page.safetensors": b"<!DOCTYPE html><html><body>Rate limited</body></html>",
        "benign.ckpt": b"\x80\x02}q\x00.",
    }
    for name, data in bad.items():
        (root / "bad" / name).parent.mkdir(exist_ok=True)
        (root / "bad" / name).write_bytes(data)
        out.append(root / "bad" / name)
    (root / "bad" / "dangling.safetensors").symlink_to(root / "missing")
    name = os.fsdecode(b"bad/caf\xe9.safetensors")  # a file name that is not UTF-8
    write_safetensors(root / name, {"x": np.ones(3, dtype=np.float16)})
    return out


# ----------------------------------------------------------------------------------------------------
# without Ray
# ----------------------------------------------------------------------------------------------------


def test_arrow_round_trip_is_exact(tmp_path: Path) -> None:
    """What a task sends (an Arrow batch) decodes to exactly the results analyse_file made."""
    mixed_folder(tmp_path / "m")
    _init_worker(set())
    results: list[Analysed] = []
    for p in sorted((tmp_path / "m").rglob("*")):
        if p.is_file() or p.is_symlink():
            st = os.stat(p) if p.exists() else os.lstat(p)
            results.append(analyse_file(str(p), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev))
    assert any(a.blob is not None and a.blob.columns.get("lora_modules") for a in results)
    assert any(a.path_findings for a in results)  # the dangling link
    back = from_arrow(to_arrow(results))
    assert repr(back) == repr(results)  # repr: NaN statistics compare equal as text
    # a known content travels without its blob
    _init_worker({results[0].sha256})  # type: ignore[arg-type]
    p = results[0].path
    st = os.stat(p)
    a = analyse_file(p, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    assert a.blob is None and repr(from_arrow(to_arrow([a]))) == repr([a])


def test_progress_line_and_eta() -> None:
    from registry.distributed import RayProgress

    p = RayProgress(files_done=3, files_total=12, bytes_done=2_500_000_000, bytes_total=10_000_000_000, elapsed_s=5.0, nodes=2)
    assert p.eta_s == 15.0  # 7.5 GB left at 0.5 GB/s
    assert p.line() == "ray: 3/12 files, 2.50/10.00 GB on 2 nodes, 5s, ETA 15s"
    p = RayProgress(files_done=1, files_total=2, bytes_done=1500, bytes_total=3000, elapsed_s=1.0, nodes=1, retried_files=1)
    assert p.line() == "ray: 1/2 files, 1.5/3.0 kB on 1 nodes, 1s, ETA 1s, 1 files retried"
    assert RayProgress().eta_s is None


def test_chunks_bound_files_and_bytes() -> None:
    def item(i: int, size: int) -> ScanItem:
        return ScanItem(f"/x/{i}", os.stat_result((0o100644, i, 1, 1, 0, 0, size, 0, 0, 0)))

    items = [item(i, s) for i, s in enumerate([10, 10, 10, 100, 5, 5, 5, 5, 5])]
    got = [[it.path for it in c.items] for c in chunks(items, chunk_files=3, chunk_bytes=30)]
    assert got == [["/x/0", "/x/1", "/x/2"], ["/x/3"], ["/x/4", "/x/5", "/x/6"], ["/x/7", "/x/8"]]
    assert [c.nbytes for c in chunks(items, 3, 30)] == [30, 100, 15, 10]


def test_the_core_never_imports_ray(tmp_path: Path) -> None:
    """scan, audit and the CLI without --ray do not import ray (it is an extra)."""
    (tmp_path / "m").mkdir()
    write_safetensors(tmp_path / "m" / "a.safetensors", {"w": np.zeros(2, dtype=np.float32)})
    code = textwrap.dedent(
        f"""
        import sys
        from click.testing import CliRunner
        import registry.scan, registry.audit, registry.store.write, cli.main
        r = CliRunner().invoke(cli.main.root, ["--db", {str(tmp_path / 'r.duckdb')!r}, "scan", "-j", "1", {str(tmp_path / 'm')!r}])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(cli.main.root, ["--db", {str(tmp_path / 'r.duckdb')!r}, "audit", {str(tmp_path / 'm')!r}])
        assert r.exit_code in (0, 1), r.output
        print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_missing_extra_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import registry.extras as extras
    from cli.main import root as cli

    monkeypatch.setitem(extras.EXTRAS, "ray", (("ray_not_installed_here", "ray"),))
    (tmp_path / "m").mkdir()
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "r.duckdb"), "scan", str(tmp_path / "m"), "--ray"])
    assert r.exit_code == 3
    assert "scan --ray needs the 'ray' extra (not installed: ray): pip install 'modelreg[ray]'" in r.output
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "r.duckdb"), "scan", str(tmp_path / "m"), "--ray", "nowhere"])
    assert r.exit_code == 2 and "expected auto, local, host:port" in r.output


# ----------------------------------------------------------------------------------------------------
# a real cluster: a head and a second node on 127.0.0.1
# ----------------------------------------------------------------------------------------------------

def _ray() -> Any:
    try:
        import ray as ray_mod
    except ImportError:
        pytest.skip("ray is not installed (the 'ray' extra: pip install 'modelreg[ray]')")
    return ray_mod


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    ray_mod = _ray()
    from ray.cluster_utils import Cluster

    old = os.environ.get("PYTHONPATH")
    # workers import registry from this checkout; fast failure detection so a killed node is noticed in
    # seconds, not the default tens of seconds
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + old if old else "")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "object_store_memory": 80 << 20,
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3, "health_check_initial_delay_ms": 0},
        },
    )
    try:
        ray_mod.init(address=c.address, logging_level="WARNING", log_to_driver=False)
        yield c
    finally:
        ray_mod.shutdown()
        c.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _second_node(c: Any, cpus: int = 1) -> Any:
    node = c.add_node(num_cpus=cpus, object_store_memory=80 << 20)
    c.wait_for_nodes()
    return node


def test_ray_scan_equals_local_scan_and_is_incremental(tmp_path: Path, cluster: Any) -> None:
    root = tmp_path / "m"
    mixed_folder(root)
    node = _second_node(cluster)
    try:
        local, onray = tmp_path / "local.duckdb", tmp_path / "ray.duckdb"
        s1 = scan([root], local, workers=2)
        m = RayMapper(chunk_files=3, max_tasks=3, max_bytes=10_000)
        s2 = scan([root], onray, mapper=m)
        assert m.progress.nodes == 2
        assert m.progress.files_done == m.progress.files_total == s1.files - 1  # the dangling link is not sent
        assert 2 <= m.peak_tasks <= 3 and m.peak_bytes <= 10_000  # every chunk here is under 10 kB
        assert s2.finding_list == s1.finding_list and s2.shas == s1.shas
        assert (s2.new_blobs, s2.known_blobs, s2.unreadable) == (s1.new_blobs, s1.known_blobs, s1.unreadable)
        assert registry_rows(onray) == registry_rows(local)
        with connect(onray, read_only=True) as con:
            assert verify_chain(con).ok
        assert not (root / "CANARY").exists()

        # incremental: nothing changed, nothing sent; one file changed, one file sent
        m = RayMapper()
        s3 = scan([root], onray, mapper=m)
        assert (s3.unchanged, m.progress.files_total) == (s1.files - 1, 0)
        write_safetensors(root / "m03.safetensors", {"w": np.full(64, 99, dtype=np.float32)})
        scan([root], local, workers=2)
        m = RayMapper()
        scan([root], onray, mapper=m)
        assert m.progress.files_total == 1
        assert registry_rows(onray) == registry_rows(local)
    finally:
        cluster.remove_node(node)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc: a Ray node's workers are its raylet's children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])  # the fields after the command's name
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _node_processes(node: Any) -> list[int]:
    """The pids of a ``ray.cluster_utils`` node: its own processes and everything they started."""
    pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
    return pids + [d for pid in pids for d in _descendants(pid)]


def _scan_killing_second_node(cluster: Any, root: Path, db: Path) -> tuple[Any, RayMapper, list[int]]:
    """Scan ``root`` on Ray and kill a freshly added second node, as a machine dies, once it has returned
    its first batch while one of its workers is running a chunk: every process of the node at once (its
    raylet, agents and workers, SIGKILL). Killing the raylet alone is not a dead machine: its workers
    notice only after a while and may first deliver the chunk they were running."""
    # two CPUs: when its first chunk returns, its second (started with it) is still running
    node = _second_node(cluster, cpus=2)
    killed: list[int] = []
    m = RayMapper(chunk_files=2, max_tasks=6, task_delay_s=0.5)
    stop = threading.Event()

    def kill_after_its_first_results() -> None:
        while not stop.is_set():
            if m.progress.by_node.get(node.node_id, 0) >= 1:
                pids = _node_processes(node)
                # Ray titles a worker process "ray::<function>" while it runs a task of that function
                if any(_cmdline(pid).startswith("ray::analyse_chunk") for pid in pids):
                    killed.append(m.progress.files_done)
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    cluster.remove_node(node, allow_graceful=False)  # the cluster forgets it (already dead)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_after_its_first_results, daemon=True)
    watcher.start()
    try:
        summary = scan([root], db, mapper=m)
    finally:
        stop.set()
        watcher.join()
        if not killed:
            cluster.remove_node(node)
    return summary, m, killed


def test_second_node_killed_mid_scan(tmp_path: Path, cluster: Any) -> None:
    root = tmp_path / "m"
    files = mixed_folder(root, n_plain=14)
    local = tmp_path / "local.duckdb"
    s1 = scan([root], local, workers=2)
    lost = 0
    # the kill lands while a worker of the node runs a chunk; that chunk may still have sent its result in
    # the instant between the check and the kill (then nothing is lost): the scenario is then run again,
    # at most three times
    for attempt in range(3):
        onray = tmp_path / f"ray{attempt}.duckdb"
        s2, m, killed = _scan_killing_second_node(cluster, root, onray)
        assert killed and killed[0] < m.progress.files_total  # the node died mid-scan
        assert m.progress.failed_files == 0
        # whatever was lost, the scan completed: every file registered once, the registry a local scan's
        assert s2.finding_list == s1.finding_list
        assert registry_rows(onray) == registry_rows(local)
        with connect(onray, read_only=True) as con:
            paths = [r[0] for r in con.execute("SELECT path FROM sightings").fetchall()]
        assert len(paths) == len(set(paths)) == len([f for f in files if f.exists()]) + 1  # + the non-UTF-8 name
        lost = m.progress.retried_files
        if lost:
            break
    assert lost > 0  # a kill took running tasks with it, and they were analysed again elsewhere


def test_a_file_failing_twice_becomes_a_finding(tmp_path: Path, cluster: Any) -> None:
    root = tmp_path / "m"
    mixed_folder(root, n_plain=3)
    retried: list[str] = []
    m = RayMapper(chunk_files=4, crash_names=("m01.safetensors",), on_retry=lambda p, why: retried.append(p))
    db = tmp_path / "ray.duckdb"
    s = scan([root], db, mapper=m)
    crashed = str(root / "m01.safetensors")
    # the chunk with the crashing file failed once: each of its files was sent again on its own
    assert crashed in retried and len(retried) > 1
    assert m.progress.failed_files == 1
    failed = [f for f in s.finding_list if f[0] == "scan.task-failed"]
    assert [f[:3] for f in failed] == [("scan.task-failed", "medium", crashed)]
    assert failed[0][3].startswith(f"{crashed}: analysis failed twice on the Ray cluster (")
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM sightings WHERE path = ?", [crashed]).fetchone() == (0,)
        rows = con.execute("SELECT rule_id FROM findings WHERE path = ? AND blob_sha256 IS NULL", [crashed]).fetchall()
    assert rows == [("scan.task-failed",)]
    # the other files of the failed chunk were analysed on their second try; the next scan tries it again
    assert s.unreadable == 2  # it and the dangling link
    m2 = RayMapper()
    s2 = scan([root], db, mapper=m2)
    assert m2.progress.files_total == 1 and s2.unreadable == 1


def test_probe_on_ray_shares_each_base_off_grid(tmp_path: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two LoRAs on one base as Ray tasks (no GPU here: CPU tasks, ``--ray-gpus-per-probe 0``, the tiny
    CPU pipeline of the probe tests): both runs recorded; the second reads the LoRA-off grid the first
    generated from the shared sample store."""
    import json

    from click.testing import CliRunner

    from cli.main import root as cli
    from registry.probe import missing_packages

    if missing_packages():
        pytest.skip(f"the probe extra is not installed (missing: {', '.join(missing_packages())})")
    import torch
    from safetensors.numpy import load_file, save_file

    from registry.probe.offline import build_pipeline, shapes_dataset, train_lora

    torch.set_num_threads(1)
    pipe = build_pipeline("tiny")
    pipe.save_pretrained(tmp_path / "base")
    one = train_lora(pipe, shapes_dataset(1, seed=1), "a photo of ohwx", tmp_path / "one.safetensors", steps=10)
    # a second LoRA: the same modules at half strength (another file, another hash)
    t = load_file(str(one))
    two = tmp_path / "two.safetensors"
    save_file({k: (v * 0.5 if "lora_B" in k or "lora_up" in k else v) for k, v in t.items()}, str(two))
    battery = tmp_path / "b.json"
    battery.write_text(json.dumps({"name": "b", "version": 1, "prompts": [
        {"id": "car", "text": "a red car", "category": "objects"},
        {"id": "dog", "text": "a dog on grass", "category": "objects"},
    ]}))
    db = tmp_path / "r.duckdb"
    args = ["--db", str(db), "probe", str(one), str(two), "--base", str(tmp_path / "base"), "--battery", str(battery),
            "--seeds", "0-1", "--steps", "2", "--embedder", "pixel:8", "--device", "cpu", "--bootstrap", "20",
            "--no-auto-prompts", "--ray", "--ray-gpus-per-probe", "0", "--format", "json"]
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    runs = json.loads(r.stdout)
    assert sorted(x["run_id"] for x in runs) == [1, 2]
    first, second = sorted(runs, key=lambda x: x["run_id"])
    off1 = {(s["prompt_id"], s["seed"]): s for s in first["samples"] if s["arm"] == "off"}
    off2 = {(s["prompt_id"], s["seed"]): s for s in second["samples"] if s["arm"] == "off"}
    assert len(off1) == len(off2) == 4
    assert not any(s["cached"] for s in off1.values())  # the first probe on the base generated the grid
    assert all(s["cached"] for s in off2.values())  # the second read it from the store
    assert {k: s["sha256"] for k, s in off1.items()} == {k: s["sha256"] for k, s in off2.items()}
    assert not any(s["cached"] for s in second["samples"] if s["arm"] == "on")
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM probe_runs").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM events WHERE action = 'probe.run'").fetchone() == (2,)
        assert verify_chain(con).ok
