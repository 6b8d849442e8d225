"""Benchmark: the web view (``modelreg serve``) on a registry of 100,000 models.

Builds (once) a registry of ``--models`` LoRA records through the scan's own write path, reusing
``bench/registry_scale.py``'s record generator (real SD 1.5 kohya tensor layout, 800 tensors, every hash,
kohya metadata, one finding each) and adding what a web page shows and searches: the ``identity`` and
``training_facts`` rows the real ``identify`` and ``training`` analyzers compute from each record's tensors
and metadata (trigger words from ``ss_tag_frequency`` folders, tags, titles, output names), and file
names made of words a user would search for.

Then it times, over the real ASGI app in this process (HTTP requests through the app's own routing,
templates and JSON twins), the p50/p95 page time of the list page, search pages and model pages, and
the same query run directly through the library in the same run (the baseline). Target: p95 <= 200 ms
for each page kind.

    python bench/serve.py [--models 100000] [--registry PATH] [--dir DIR] [--requests 40] [--compare CHECKOUT]

``--registry PATH`` keeps the built registry at PATH and reuses it on the next run (rebuilt when the
recorded model count or builder version differ).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.registry_scale import RANKS, Generator, write_models  # noqa: E402
from registry.analysis import FileContext, load_analyzers  # noqa: E402
from registry.files.safetensors import TensorInfo  # noqa: E402
from registry.store.write import FileWrite  # noqa: E402

TARGET_MS = 200

#: bump when the records the builder writes change (a kept registry is then rebuilt)
BUILD_VERSION = 1

#: words for names, titles and tags (a free-text search for one of them hits ~1/len of the models per
#: field it appears in)
WORDS = (
    "portrait", "anime", "landscape", "cyberpunk", "watercolor", "ink", "pixel", "realistic", "fantasy",
    "armor", "knight", "dragon", "forest", "city", "neon", "sketch", "oil", "painting", "castle", "ocean",
    "sunset", "robot", "mecha", "cat", "dog", "flower", "garden", "winter", "summer", "autumn", "spring",
    "gothic", "vintage", "retro", "film", "photo", "studio", "lighting", "style", "character", "concept",
    "detail", "texture", "fabric", "leather", "metal", "glass", "crystal", "smoke", "fire", "water",
    "cloud", "mountain", "desert", "jungle", "temple", "shrine", "kimono", "uniform", "dress", "hat",
    "glasses", "freckles", "redhead", "blonde", "silver", "golden", "emerald", "ruby", "sapphire", "chibi",
    "lineart", "flat", "cel", "shading", "3d", "render", "clay", "paper", "origami", "mosaic", "stained",
    "tarot", "poster", "comic", "manga", "noir", "pastel", "vivid", "muted", "moody", "bright", "dark",
    "cinematic", "macro", "aerial", "isometric", "lowpoly", "voxel", "steampunk", "dieselpunk", "solarpunk",
)  # fmt: skip
GENERIC_TAGS = ("1girl", "solo", "looking at viewer", "simple background", "upper body", "smile", "outdoors")


def tensor_infos(gen: Generator, rank: int) -> list[TensorInfo]:
    t = gen.by_rank[rank]
    return [
        TensorInfo(t.name[k], t.dtype[k], tuple(t.shape[k]), int(t.data_begin[k] or 0), int(t.data_end[k] or 0),
                   int(t.file_offset[k] or 0))
        for k in range(len(t))
    ]


class ServeGenerator(Generator):
    """``registry_scale``'s records, with the rows and names a web page shows and searches."""

    def __init__(self, n_tensors: int) -> None:
        super().__init__(n_tensors)
        analyzers = {a.name: a for a in load_analyzers()}
        self.identify = analyzers["identify"]
        self.training = analyzers["training"]
        self.infos = {r: tensor_infos(self, r) for r in RANKS}
        # identify reads tensor names and shapes (the same for every model of a rank) and the metadata's
        # architecture claims (the same for every model): run once per rank, as the scan would per file
        self.identity: dict[int, tuple[list[dict[str, Any]], list[Any]]] = {}
        for r in RANKS:
            w = super().record(RANKS.index(r))
            assert w.blob is not None
            ctx = FileContext(Path("/bench"), w.blob.size, "safetensors", w.blob.hashes, tensors=self.infos[r],
                              metadata=json.loads(w.blob.metadata_json or "{}"))
            self.identify.run(ctx)
            self.identity[r] = (ctx.rows["identity"], ctx.findings)

    def words(self, i: int) -> dict[str, Any]:
        rng = random.Random(i)
        a, b = rng.sample(WORDS, 2)
        tags = rng.sample(WORDS, 6)
        trigger = f"{a[:3]}{b[:3]}{i % 997}"
        return {"a": a, "b": b, "tags": tags, "trigger": trigger, "version": 1 + i % 7}

    def record(self, i: int) -> FileWrite:
        w = super().record(i)
        b = w.blob
        assert b is not None
        v = self.words(i)
        rank = RANKS[i % len(RANKS)]
        meta = json.loads(b.metadata_json or "{}")
        name = f"{v['a']}_{v['b']}_v{v['version']}_{i:06d}"
        folder = f"10_{v['trigger']} {v['a']}"
        freq = {v["trigger"]: 40, v["a"]: 38}
        freq.update({t: 30 - k * 4 for k, t in enumerate(v["tags"])})
        freq.update({t: 20 for t in GENERIC_TAGS[: 2 + i % 5]})
        meta.update({
            "ss_output_name": name,
            "modelspec.title": f"{v['a'].title()} {v['b'].title()} v{v['version']}",
            "ss_tag_frequency": json.dumps({folder: freq}),
            "ss_dataset_dirs": json.dumps({folder: {"n_repeats": 10, "img_count": 20 + i % 80}}),
            "ss_num_train_images": str(10 * (20 + i % 80)),
        })
        b.metadata_json = json.dumps(meta)
        ident_rows, ident_findings = self.identity[rank]
        ctx = FileContext(Path("/bench"), b.size, "safetensors", b.hashes, tensors=self.infos[rank], metadata=meta)
        self.training.run(ctx)
        b.rows = {"identity": [dict(r) for r in ident_rows], **ctx.rows}
        b.findings = [*b.findings, *ident_findings, *ctx.findings]
        s = w.sighting
        s.path = f"/models/loras/{v['a']}/{name}.safetensors"
        return w


def build(db: Path, models: int, tensors: int, batch: int) -> float:
    """Write ``models`` records into a new registry at ``db``; return seconds taken."""
    gen = ServeGenerator(tensors)
    t = write_models(db, gen, 0, models, batch)
    Path(str(db) + ".bench.json").write_text(json.dumps({"models": models, "version": BUILD_VERSION}))
    return t


def ensure_registry(db: Path, models: int, tensors: int, batch: int) -> None:
    stamp = Path(str(db) + ".bench.json")
    if db.exists() and stamp.exists():
        info = json.loads(stamp.read_text())
        if info == {"models": models, "version": BUILD_VERSION}:
            print(f"registry: reusing {db} ({models:,} models)")
            return
    for p in (db, Path(str(db) + ".wal"), stamp):
        if p.exists():
            p.unlink()
    print(f"registry: building {models:,} models at {db} (load average {os.getloadavg()[0]:.2f}) …", flush=True)
    secs = build(db, models, tensors, batch)
    print(f"registry: built in {secs:.0f}s ({models / secs:,.0f} models/s)", flush=True)


# ---------------------------------------------------------------------------------------------- timing
def pct(xs: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``xs``, in milliseconds."""
    ys = sorted(xs)
    return ys[min(len(ys) - 1, max(0, int(round(q * len(ys) + 0.5)) - 1))] * 1e3


def page_cases(gen: ServeGenerator, models: int, n: int, rng: random.Random) -> dict[str, list[dict[str, str]]]:
    """Query parameters of the pages timed, by kind: the list (first page, deep pages, other sorts),
    searches (common words, a unique trigger, filters) and model pages (random models)."""
    lists = [{}, {"sort": "size"}, {"sort": "findings"}, {"sort": "name", "desc": "1"}]
    lists += [{"page": str(rng.randrange(2, models // 50))} for _ in range(4)]
    searches: list[dict[str, str]] = []
    for _ in range(4):
        i = rng.randrange(models)
        v = gen.words(i)
        searches += [{"q": v["a"]}, {"q": v["trigger"]}, {"trigger": v["trigger"][:5]},
                     {"q": v["b"], "kind": "lora", "arch": "sd1", "sort": "size"}]  # fmt: skip
    shas = []
    for _ in range(n):
        w = Generator.record(gen, rng.randrange(models))  # (the hashes only: the base record suffices)
        assert w.blob is not None
        shas.append(w.blob.sha256)
    return {
        "list": [lists[k % len(lists)] for k in range(n)],
        "search": [searches[k % len(searches)] for k in range(n)],
        "model": [{"ref": s} for s in shas],
    }


def library_call(db: Path, kind: str, params: dict[str, str]) -> Any:
    """What the page asks of the library, on a read-only connection opened for it (in this process it
    joins the database the app's shared read connection keeps open, as a second reader in the app would;
    with code before that pool, it opens the registry as the app then did per request)."""
    from starlette.datastructures import QueryParams

    from registry.listing import list_models
    from registry.record import build_record
    from registry.store.db import connect
    from registry.store.read import resolve_ref
    from registry.web.app import list_query

    with connect(db, read_only=True) as con:
        if kind == "model":
            sha = resolve_ref(con, params["ref"])
            return build_record(con, sha)
        query, _page, _per = list_query(QueryParams(params))
        return list_models(con, query, count=True)


def measure(db: Path, cases: dict[str, list[dict[str, str]]]) -> dict[str, dict[str, float]]:
    from urllib.parse import urlencode

    from starlette.testclient import TestClient

    from registry.web.app import create_app

    client = TestClient(create_app(db), base_url="http://127.0.0.1")
    out: dict[str, dict[str, float]] = {}
    for kind, plist in cases.items():
        http: list[float] = []
        cpu: list[float] = []
        lib: list[float] = []
        # one warm-up of each (the first open reads the catalog; the OS cache fills)
        for params in plist[:2]:
            library_call(db, kind, params)
        for params in plist:
            url = f"/model/{params['ref']}" if kind == "model" else "/?" + urlencode(params)
            t, c = time.perf_counter(), time.process_time()
            r = client.get(url)
            http.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            if r.status_code != 200:
                raise AssertionError(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
            t = time.perf_counter()
            res = library_call(db, kind, params)
            lib.append(time.perf_counter() - t)
            # the page shows what the library returns (its JSON twin carries the same rows)
            if kind != "model":
                twin = client.get(url + "&format=json" if "?" in url else url + "?format=json").json()
                if [x["sha256"] for x in twin["rows"]] != [x["sha256"] for x in res.rows] or twin["total"] != res.total:
                    raise AssertionError(f"{url}: the page's rows differ from the library's")
        out[kind] = {"n": len(plist), "http_p50": pct(http, 0.5), "http_p95": pct(http, 0.95),
                     "cpu_p50": pct(cpu, 0.5), "cpu_p95": pct(cpu, 0.95),
                     "lib_p50": pct(lib, 0.5), "lib_p95": pct(lib, 0.95)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100_000, help="registry size (default 100,000)")
    ap.add_argument("--tensors", type=int, default=800, help="tensors per model (default 800)")
    ap.add_argument("--batch", type=int, default=500, help="files per write transaction")
    ap.add_argument("--registry", type=Path, default=None, help="keep and reuse the registry at this path")
    ap.add_argument("--dir", type=Path, default=None, help="where a temporary registry goes")
    ap.add_argument("--requests", type=int, default=40, help="requests timed per page kind (default 40)")
    ap.add_argument("--build-only", action="store_true", help="build the registry and stop")
    ap.add_argument("--compare", type=Path, default=None,
                    help="another checkout of modelreg (e.g. the code before a change): time the same requests with "
                         "its code on the same registry, right after (it must read this registry's schema)")
    args = ap.parse_args(argv)

    tmp: Path | None = None
    if args.registry is None:
        tmp = Path(tempfile.mkdtemp(prefix="modelreg-serve-", dir=args.dir))
        db = tmp / "registry.duckdb"
    else:
        db = args.registry
        db.parent.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        ensure_registry(db, args.models, args.tensors, args.batch)
        if args.build_only:
            print(f"done in {time.perf_counter() - t0:.0f}s")
            return 0
        gen = ServeGenerator(args.tensors)
        cases = page_cases(gen, args.models, args.requests, random.Random(7))
        print(f"timing {args.requests} requests per page kind over the ASGI app in this process "
              f"(code: {Path(__file__).resolve().parent.parent}); load average {os.getloadavg()[0]:.2f}")
        res = measure(db, cases)
        print(f"{'page':8s} {'HTTP p50':>9s} {'HTTP p95':>9s} {'CPU p50':>8s} {'CPU p95':>8s} {'library p50':>12s} "
              f"{'library p95':>12s} {'p95 ratio':>9s}  target p95 <= {TARGET_MS} ms")
        for kind, m in res.items():
            ok = "met" if m["http_p95"] <= TARGET_MS else "MISSED"
            print(f"{kind:8s} {m['http_p50']:7.0f}ms {m['http_p95']:7.0f}ms {m['cpu_p50']:6.0f}ms {m['cpu_p95']:6.0f}ms "
                  f"{m['lib_p50']:10.0f}ms {m['lib_p95']:10.0f}ms {m['http_p95'] / m['lib_p95']:8.2f}x  {ok}")
        print("(CPU: this process's CPU time per page, all threads: what the page costs whatever the other load)")
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (cpus={os.cpu_count()})")
        if args.compare is not None:
            # the same pages and queries through another checkout's code, in a child process, right after
            print(f"\ncompared checkout {args.compare} (the same requests, in a child process):", flush=True)
            out = subprocess.run(
                [sys.executable, str(args.compare / "bench" / "serve.py"), "--registry", str(db), "--models",
                 str(args.models), "--tensors", str(args.tensors), "--requests", str(args.requests)],
                env={**os.environ, "PYTHONPATH": str(args.compare)}, cwd=args.compare, capture_output=True, text=True,
            )  # fmt: skip
            print(out.stdout + out.stderr[-2000:], end="")
    finally:
        if tmp is not None:
            for p in sorted(tmp.iterdir()):
                p.unlink()
            tmp.rmdir()


if __name__ == "__main__":
    raise SystemExit(main())
