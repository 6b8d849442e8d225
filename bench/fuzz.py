"""Long fuzz run of the safetensors header parser and the pickle scanner.

    python bench/fuzz.py [--examples N] [--seed S]

Runs the properties of ``tests/fuzz_targets.py`` (the CI run uses a few hundred examples each) with N
examples per target and prints, per target, the examples run, the time, the slowest input and the
verdict counts. Any escaping exception or an input slower than the bound fails the run (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from registry.files.pickles import scan_bytes  # noqa: E402
from tests import fuzz_targets as ft  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="run only the targets whose name contains this text")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="modelreg-fuzz-"))
    verdicts: Counter[str] = Counter()

    def scan_and_count(raw: bytes) -> None:
        ft.check_scan(raw)
        verdicts[scan_bytes(raw, "<fuzz>", ft.FUZZ_LIMITS).verdict] += 1

    targets = [
        ("safetensors header: random bytes", st.binary(max_size=2048), ft.check_safetensors_header),
        ("safetensors header: structured", ft.header_docs(), ft.check_safetensors_header),
        ("safetensors read_header: files", st.binary(max_size=512), lambda raw: ft.check_read_header(tmp, raw)),
        ("pickle walk: random bytes", st.binary(max_size=4096), ft.check_walk),
        ("pickle walk: opcode soup", ft.opcode_soup(), ft.check_walk),
        ("scanner: mutated real layouts", ft.mutated(ft.seed_files()), scan_and_count),
    ]
    failed = False
    print(f"{'target':<34} {'examples':>9} {'seconds':>8} {'slowest ms':>10}")
    stats = {"n": 0, "slowest": 0.0}

    def make_runner(strategy: st.SearchStrategy[bytes], check: Callable[[bytes], None]) -> Callable[[], None]:
        @seed(args.seed)
        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(strategy)
        def run(raw: bytes) -> None:
            t = time.perf_counter()
            check(raw)
            stats["slowest"] = max(stats["slowest"], time.perf_counter() - t)
            stats["n"] += 1

        return run  # type: ignore[no-any-return]

    for name, strategy, check in targets:
        if args.only and args.only not in name:
            continue
        stats.update(n=0, slowest=0.0)
        run = make_runner(strategy, check)
        t0 = time.perf_counter()
        try:
            run()
        except Exception as e:  # noqa: BLE001 - report and go on with the other targets
            failed = True
            inner = getattr(e, "exceptions", None) or [e]
            print(f"{name:<34} FAILED: {type(e).__name__}: {str(e)[:300]}")
            for sub in inner[:3]:
                print(f"    caused by {type(sub).__name__}: {str(sub)[:300]}")
            continue
        print(f"{name:<34} {stats['n']:>9} {time.perf_counter() - t0:>8.1f} {stats['slowest'] * 1e3:>10.1f}")
    print("scanner verdicts on mutated inputs:", dict(sorted(verdicts.items())))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
