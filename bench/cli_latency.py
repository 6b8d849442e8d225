"""Benchmark: ``modelreg ls`` and ``modelreg show`` as fresh processes on a 3,000-model registry.

Builds (once, with ``--registry``) a registry of ``--models`` LoRA records with ``bench/serve.py``'s
builder (the scan's own write path; real SD 1.5 kohya layout, every hash, kohya metadata, identity and
training facts, one finding each), then runs each command ``--runs`` times as a new Python process, the
way a user's shell does (``modelreg`` is ``python -c "from cli.main import main; main()"``), interleaved
round by round with two baselines run the same way in the same rounds: a bare interpreter
(``python -c pass``) and ``python -c "import duckdb"``. Printed: the median wall time of each, the
median CPU time (user + system, of the child), and the ratio to ``import duckdb``.

Targets (issue 21, this 2-core machine): ``show`` <= 200 ms, ``ls`` <= 150 ms (median wall).

Bytecode: the children read compiled bytecode from a private cache (``PYTHONPYCACHEPREFIX`` in a
temporary folder, filled by one warm-up run of each command), as an installed package does (pip compiles
it at install). ``--source`` runs them with ``PYTHONDONTWRITEBYTECODE`` instead, compiling every module
of the project from its source in every run (how this repository's development environment runs).

``--compare CHECKOUT`` times the same commands with another checkout's code (e.g. the code before a
change) in the same rounds, and says whether each command's output is byte-identical between the two.

    python bench/cli_latency.py [--models 3000] [--registry PATH] [--runs 15] [--compare CHECKOUT] [--source]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serve import ensure_registry  # noqa: E402

TARGETS_MS = {"ls": 150.0, "show": 200.0}
ROOT = Path(__file__).resolve().parent.parent
MAIN = "import sys; from cli.main import main; sys.exit(main())"


def pick_ref(db: Path) -> tuple[str, str]:
    """(AutoV2, file name) of the model in the middle of the listing by path, read once here."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM model_listing").fetchone()
        row = con.execute(
            "SELECT autov2, name FROM model_listing ORDER BY path, sha256 LIMIT 1 OFFSET ?", [int(n[0]) // 2 if n else 0]
        ).fetchone()
    assert row is not None, "empty registry"
    return str(row[0]), str(row[1])


def child_env(code: Path, db: Path, cache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    env.update(PYTHONPATH=str(code), MODELREG_DB=str(db), COLUMNS="200")
    if cache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def run_once(argv: list[str], env: dict[str, str], capture: bool = False) -> tuple[float, float, bytes]:
    """(wall seconds, child CPU seconds, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.PIPE)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv[3:]} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout if capture else b""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=3_000, help="registry size (default 3,000)")
    ap.add_argument("--tensors", type=int, default=800, help="tensors per model (default 800)")
    ap.add_argument("--registry", type=Path, default=None, help="keep and reuse the registry at this path")
    ap.add_argument("--dir", type=Path, default=None, help="where a temporary registry goes")
    ap.add_argument("--runs", type=int, default=15, help="fresh processes per command (default 15)")
    ap.add_argument("--compare", type=Path, default=None, help="another checkout: timed in the same rounds")
    ap.add_argument("--source", action="store_true", help="no bytecode cache: compile the project's modules every run")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="modelreg-cli-", dir=args.dir) as tmp:
        db = args.registry if args.registry is not None else Path(tmp) / "registry.duckdb"
        db.parent.mkdir(parents=True, exist_ok=True)
        ensure_registry(db, args.models, args.tensors, 500)
        autov2, name = pick_ref(db)
        py = sys.executable
        commands = {"ls": ["ls"], "show": ["show", autov2], "show --format json": ["show", "--format", "json", autov2]}
        codes = {"this": ROOT} | ({"compare": args.compare.resolve()} if args.compare else {})
        caches = {label: (None if args.source else Path(tmp) / f"pyc-{label}") for label in codes}
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([py, "-c", "pass"], child_env(ROOT, db, caches["this"])),
            "python -c 'import duckdb'": ([py, "-c", "import duckdb"], child_env(ROOT, db, caches["this"])),
        }
        for label, code in codes.items():
            for cname, cargv in commands.items():
                key = cname if label == "this" else f"{cname} [compare]"
                cases[key] = ([py, "-c", MAIN, *cargv], child_env(code, db, caches[label]))

        # warm-up (fills the bytecode caches and the OS cache), and the outputs compared
        outputs = {key: run_once(a, env, capture=True)[2] for key, (a, env) in cases.items()}
        print(f"registry: {db} ({args.models:,} models); show REF = {autov2} ({name})")
        print(f"{args.runs} rounds, each command once per round as a fresh process; bytecode: "
              f"{'none (compiled from source each run)' if args.source else 'cached, as installed'}; "
              f"load average at start {os.getloadavg()[0]:.2f} (cpus={os.cpu_count()})", flush=True)  # fmt: skip
        walls: dict[str, list[float]] = {k: [] for k in cases}
        cpus: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for key, (a, env) in cases.items():
                w, c, _out = run_once(a, env)
                walls[key].append(w)
                cpus[key].append(c)
        load_end = os.getloadavg()[0]

    base = statistics.median(walls["python -c 'import duckdb'"])
    print(f"\n{'command':32s} {'wall p50':>9s} {'CPU p50':>8s} {'/ import duckdb':>16s}  target")
    for key in cases:
        w, c = statistics.median(walls[key]) * 1e3, statistics.median(cpus[key]) * 1e3
        cmd = key.removesuffix(" [compare]")
        target = TARGETS_MS.get(cmd.split()[0]) if key not in ("python -c pass", "python -c 'import duckdb'") else None
        verdict = "" if target is None else f"<= {target:.0f} ms: {'met' if w <= target else 'NOT met'}"
        if target is not None and args.models != 3_000:
            verdict = f"(the target, <= {target:.0f} ms, is for 3,000 models)"
        print(f"{key:32s} {w:7.0f}ms {c:6.0f}ms {w / 1e3 / base:15.2f}x  {verdict}")
    if args.compare:
        for cname in commands:
            same = outputs[cname] == outputs[f"{cname} [compare]"]
            print(f"output of `{cname}`: {'byte-identical' if same else 'DIFFERS'} between this code and the compared checkout")
    print(f"load average at the end: {load_end:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
