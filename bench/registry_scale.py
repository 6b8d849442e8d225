"""Benchmark: the registry at scale (100,000 LoRA records of 800 tensors each).

Writes ``--models`` records (default 100,000) through the scan's own write path
(``registry.store.write.write_batch``: one transaction per batch of whole files, bulk rows through Arrow,
hash-chained events; a fresh ``connect()`` per batch as ``registry.scan`` does) into a new registry in a
temporary directory, and reports:

1. bulk write rate against a row-by-row baseline: the same rows (blob, 800 tensors, sighting, finding,
   events) written with one ``execute(INSERT … VALUES (?, …))`` per row, on a small sample
   (``--baseline-models``) in a registry of its own; target >= 20x;
2. ``show``-style lookup by hash prefix (``registry.store.read.resolve_ref``: AutoV2 = 10 hex of the
   SHA-256, 12-hex AutoV3 and BLAKE3 prefixes, typed bare as a user would) at ``--small`` models (1,000)
   and again at ``--models``, in the same registry as it grows; target: the large figure within 2x of the
   small one. The whole ``modelreg show`` path (read-only open + resolve_ref + every record section) is
   timed too;
3. database size per model (file size after the final checkpoint).

Records are realistic: tensor names, dtypes and shapes come from a real SD 1.5 kohya LoRA header
(``../shared/corpus/headers/sd15-kohya.json``, 792 keys, topped up to ``--tensors`` with ``.alpha``-style
scalars), its rank varied per model (4 … 128) so shapes and offsets differ; every record has its own
SHA-256/AutoV1/AutoV3/BLAKE3/CRC32, kohya metadata (from ``sdxl-kohya.json``, with a per-model session,
output name and seed) and one finding. Without the corpus a synthetic header of the same form is used.

    python bench/registry_scale.py [--models 100000] [--small 1000] [--batch 500] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from registry.analysis import analyzer_versions, derived_tables  # noqa: E402
from registry.findings import Finding, Severity  # noqa: E402
from registry.record import build_record  # noqa: E402
from registry.store.db import connect  # noqa: E402
from registry.store.events import GENESIS, actor, canonical, event_hash  # noqa: E402
from registry.store.read import resolve_ref  # noqa: E402
from registry.store.write import BlobRecord, FileWrite, SightingRecord, TensorRows, write_batch  # noqa: E402
from tests.builders import CORPUS  # noqa: E402

RANKS = (4, 8, 16, 32, 64, 128)
HOST = "bench-host"
DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4}


# ---------------------------------------------------------------------------------------------- records
def load_template(n_tensors: int) -> tuple[list[tuple[str, str, list[int]]], dict[str, str], str]:
    """(name, dtype, shape) for ``n_tensors`` tensors, kohya metadata, and where they came from."""
    hdr = CORPUS / "headers" / "sd15-kohya.json"
    meta_src = CORPUS / "headers" / "sdxl-kohya.json"
    if hdr.exists():
        doc = json.loads(hdr.read_text())
        keys = [(k, v["dtype"], list(v["shape"])) for k, v in doc["keys"].items()]
        source = f"{hdr} ({len(keys)} keys)"
    else:
        keys = []
        for i in range(n_tensors // 3):
            base = f"lora_unet_block_{i}"
            keys += [(f"{base}.alpha", "F16", []), (f"{base}.lora_down.weight", "F16", [32, 320]),
                     (f"{base}.lora_up.weight", "F16", [320, 32])]
        source = "synthetic kohya-style header (corpus absent)"
    i = 0
    while len(keys) < n_tensors:
        keys.append((f"lora_unet_extra_{i}.alpha", "F16", []))
        i += 1
    keys = keys[:n_tensors]
    meta = {}
    if meta_src.exists():
        meta = dict(json.loads(meta_src.read_text()).get("metadata") or {})
    if not meta:
        meta = {"ss_network_module": "networks.lora", "ss_network_dim": "32", "ss_network_alpha": "16",
                "ss_base_model_version": "sd_v1", "ss_output_name": "x"}
    return keys, meta, source


def tensor_rows(keys: list[tuple[str, str, list[int]]], rank: int, header_len: int) -> TensorRows:
    """The tensor table of one LoRA of ``rank`` (the template's rank dimension replaced)."""
    t = TensorRows()
    pos = 0
    for name, dtype, shape in keys:
        if name.endswith("lora_down.weight") and shape:
            shape = [rank, *shape[1:]]
        elif name.endswith("lora_up.weight") and len(shape) >= 2:
            shape = [shape[0], rank, *shape[2:]]
        n = 1
        for d in shape:
            n *= d
        nb = n * DTYPE_BYTES.get(dtype, 2)
        t.name.append(name)
        t.dtype.append(dtype)
        t.shape.append(list(shape))
        t.data_begin.append(pos)
        t.data_end.append(pos + nb)
        t.file_offset.append(8 + header_len + pos)
        t.nbytes.append(nb)
        pos += nb
    return t


class Generator:
    def __init__(self, n_tensors: int) -> None:
        self.keys, self.meta, self.source = load_template(n_tensors)
        self.header_len = 80_000
        self.by_rank = {r: tensor_rows(self.keys, r, self.header_len) for r in RANKS}
        self.analyzers = analyzer_versions()

    def record(self, i: int) -> FileWrite:
        seed = i.to_bytes(8, "little")
        sha = hashlib.sha256(b"file" + seed).hexdigest()
        rank = RANKS[i % len(RANKS)]
        t = self.by_rank[rank]
        size = 8 + self.header_len + (t.data_end[-1] or 0)
        meta = dict(self.meta)
        meta.update({
            "ss_session_id": str(1_000_000_000 + i),
            "ss_output_name": f"model_{i:06d}",
            "ss_network_dim": str(rank),
            "ss_seed": str(i * 7919 % 2**31),
        })
        hashes: dict[str, str | None] = {
            "sha256": sha,
            "autov1": hashlib.sha256(b"v1" + seed).hexdigest()[:8],
            "autov2": sha[:10],
            "autov3": hashlib.sha256(b"data" + seed).hexdigest(),
            "blake3": hashlib.sha256(b"b3" + seed).hexdigest(),
            "crc32": f"{zlib.crc32(seed):08x}",
            "git_sha1": None,
        }
        f = Finding("training.metadata-claim", Severity.INFO, f"bench: one finding for model {i}", {"n": i})
        blob = BlobRecord(
            sha256=sha, size=size, hashes=hashes, format="safetensors", header_len=self.header_len,
            n_tensors=len(t), metadata_json=json.dumps(meta), analyzers=self.analyzers, tensors=t,
            findings=[f], rows={},
        )
        path = f"/models/loras/set{i // 1000:03d}/model_{i:06d}.safetensors"
        s = SightingRecord(sha, HOST, path, size, 1_700_000_000_000_000_000 + i, 10_000 + i, 42)
        return FileWrite(s, blob)


# ---------------------------------------------------------------------------------------------- writing
def write_models(db: Path, gen: Generator, start: int, stop: int, batch: int) -> float:
    """Write models ``[start, stop)`` the way a scan does; return seconds taken."""
    derived = derived_tables()
    t0 = time.perf_counter()
    for lo in range(start, stop, batch):
        items = [gen.record(i) for i in range(lo, min(stop, lo + batch))]
        with connect(db) as con:
            write_batch(con, items, derived)
    return time.perf_counter() - t0


def write_row_by_row(db: Path, gen: Generator, n: int) -> tuple[float, int]:
    """The baseline: the same rows, one ``execute`` per row, one transaction per model."""
    with connect(db) as con:
        pass  # create + migrate
    con = duckdb.connect(str(db))
    rows = 0
    who = actor()
    seq, head = 0, GENESIS
    t0 = time.perf_counter()
    try:
        for i in range(n):
            w = gen.record(i)
            b, s = w.blob, w.sighting
            assert b is not None
            now = datetime.now(UTC)
            ts = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            con.execute("BEGIN TRANSACTION")
            con.execute(
                "INSERT INTO blobs (sha256, size, autov1, autov2, autov3, blake3, crc32, git_sha1, format, header_len,"
                " n_tensors, metadata, analyzers, first_seen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [b.sha256, b.size, b.hashes["autov1"], b.hashes["autov2"], b.hashes["autov3"], b.hashes["blake3"],
                 b.hashes["crc32"], b.hashes["git_sha1"], b.format, b.header_len, b.n_tensors, b.metadata_json,
                 b.analyzers, now],
            )
            t = b.tensors
            for k in range(len(t)):
                con.execute(
                    "INSERT INTO tensors VALUES (?,?,?,?,?,?,?,?,?)",
                    [b.sha256, k, t.name[k], t.dtype[k], t.shape[k], t.data_begin[k], t.data_end[k],
                     t.file_offset[k], t.nbytes[k]],
                )
            con.execute(
                "INSERT INTO sightings (blob_sha256, host, path, size, mtime_ns, inode, device, seen_at, source)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [s.sha256, s.host, s.path, s.size, s.mtime_ns, s.inode, s.device, now, s.source],
            )
            for f in b.findings:
                con.execute(
                    "INSERT INTO findings (blob_sha256, host, path, rule_id, severity, severity_rank, message,"
                    " evidence, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    [b.sha256, s.host, s.path, f.rule_id, f.severity.label, int(f.severity), f.message,
                     canonical(f.evidence), now],
                )
            for action, payload in (
                ("blob.add", {"sha256": b.sha256, "size": b.size, "format": b.format}),
                ("sighting.add", {"sha256": s.sha256, "host": s.host, "path": s.path}),
            ):
                seq += 1
                h = event_hash(seq, ts, who, action, b.sha256, payload, head)
                con.execute(
                    "INSERT INTO events VALUES (?, CAST(? AS TIMESTAMPTZ), ?, ?, ?, CAST(? AS JSON), ?, ?)",
                    [seq, ts, who, action, b.sha256, canonical(payload), head, h],
                )
                head = h
            con.execute("COMMIT")
            rows += 1 + len(t) + 1 + len(b.findings) + 2
    finally:
        con.close()
    return time.perf_counter() - t0, rows


# ---------------------------------------------------------------------------------------------- lookups
def lookup_refs(gen: Generator, n_models: int, k: int, rng: random.Random) -> list[tuple[str, str]]:
    """(ref, expected sha256) for ``k`` random models: AutoV2, AutoV3 and BLAKE3 prefixes in turn."""
    out = []
    for j in range(k):
        w = gen.record(rng.randrange(n_models))
        assert w.blob is not None
        h = w.blob.hashes
        ref = [h["autov2"], (h["autov3"] or "")[:12], (h["blake3"] or "")[:12]][j % 3]
        out.append((str(ref), w.blob.sha256))
    return out


def time_lookups(db: Path, refs: list[tuple[str, str]]) -> dict[str, float]:
    """Median milliseconds: resolve_ref on an open read-only connection, and the whole show path."""
    resolve: list[float] = []
    with connect(db, read_only=True) as con:
        resolve_ref(con, refs[0][0])  # warm
        for ref, want in refs:
            t = time.perf_counter()
            got = resolve_ref(con, ref)
            resolve.append(time.perf_counter() - t)
            if got != want:
                raise AssertionError(f"{ref} resolved to {got}, expected {want}")
    show: list[float] = []
    for ref, want in refs[: max(3, len(refs) // 4)]:
        t = time.perf_counter()
        with connect(db, read_only=True) as con:
            sha = resolve_ref(con, ref)
            rec = build_record(con, sha)
        show.append(time.perf_counter() - t)
        if sha != want or rec["file"]["sha256"] != want:
            raise AssertionError(f"show {ref} gave {sha}")
    return {"resolve_ms": statistics.median(resolve) * 1e3, "show_ms": statistics.median(show) * 1e3}


def db_size(db: Path) -> int:
    wal = Path(str(db) + ".wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100_000, help="records to write (default 100,000)")
    ap.add_argument("--small", type=int, default=1_000, help="registry size of the first lookup measurement")
    ap.add_argument("--tensors", type=int, default=800, help="tensors per model (default 800)")
    ap.add_argument("--batch", type=int, default=500, help="files per write transaction (the scan's default)")
    ap.add_argument("--baseline-models", type=int, default=20, help="models written row by row (baseline)")
    ap.add_argument("--lookups", type=int, default=300, help="lookups timed at each size")
    ap.add_argument("--dir", type=Path, default=None, help="where the temporary registries go")
    ap.add_argument("--keep", action="store_true", help="keep the registry (prints its path)")
    args = ap.parse_args(argv)
    if not 0 < args.small <= args.models:
        ap.error("--small must be between 1 and --models")

    gen = Generator(args.tensors)
    rng = random.Random(1)
    tmp = Path(tempfile.mkdtemp(prefix="modelreg-scale-", dir=args.dir))
    try:
        print(f"records: {args.models:,} models x {len(gen.keys)} tensors from {gen.source}; "
              f"batches of {args.batch}; duckdb {duckdb.__version__}; cpus={os.cpu_count()}; "
              f"load average {os.getloadavg()[0]:.2f}")

        base_db = tmp / "baseline.duckdb"
        bt, brows = write_row_by_row(base_db, gen, args.baseline_models)
        base_rate = args.baseline_models / bt
        print(f"row-by-row baseline: {args.baseline_models} models ({brows:,} rows) in {bt:.2f}s = "
              f"{base_rate:.2f} models/s, {brows / bt:,.0f} rows/s")

        db = tmp / "registry.duckdb"
        t_small = write_models(db, gen, 0, args.small, args.batch)
        small_refs = lookup_refs(gen, args.small, args.lookups, rng)
        small = time_lookups(db, small_refs)
        small_size = db_size(db)
        t_rest = write_models(db, gen, args.small, args.models, args.batch)
        total_t = t_small + t_rest
        rows_per_model = brows / args.baseline_models
        bulk_rate = args.models / total_t
        print(f"bulk write (write_batch): {args.models:,} models ({args.models * rows_per_model:,.0f} rows) in "
              f"{total_t:.1f}s = {bulk_rate:,.1f} models/s, {args.models * rows_per_model / total_t:,.0f} rows/s")
        print(f"(1) bulk / row-by-row write rate: {bulk_rate / base_rate:.1f}x (target >= 20x)")

        big_refs = lookup_refs(gen, args.models, args.lookups, rng)
        big = time_lookups(db, big_refs)
        print(f"lookup by hash prefix (AutoV2 10 hex, AutoV3/BLAKE3 12 hex), median of {args.lookups}:")
        print(f"    resolve_ref: {small['resolve_ms']:.2f} ms at {args.small:,} models, "
              f"{big['resolve_ms']:.2f} ms at {args.models:,}")
        print(f"    whole show (open + resolve + all sections): {small['show_ms']:.1f} ms at {args.small:,}, "
              f"{big['show_ms']:.1f} ms at {args.models:,}")
        print(f"(2) resolve_ref at {args.models:,} / at {args.small:,}: {big['resolve_ms'] / small['resolve_ms']:.2f}x "
              f"(target within 2x); whole show: {big['show_ms'] / small['show_ms']:.2f}x")

        size = db_size(db)
        with connect(db, read_only=True) as con:
            counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                      for t in ("blobs", "tensors", "sightings", "findings", "events")}
        print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        print(f"(3) database size: {size / 1e6:,.1f} MB = {size / args.models / 1024:.1f} KiB per model "
              f"(at {args.small:,} models: {small_size / args.small / 1024:.1f} KiB per model)")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        if args.keep:
            print(f"kept: {db}")
    finally:
        if not args.keep:
            for p in sorted(tmp.iterdir()):
                p.unlink()
            tmp.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
