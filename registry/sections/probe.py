"""Section ``probe``: the latest probe of this model (what generation shows), its headline figures with
95 % intervals, the plain-words summary, and how many runs there are."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from registry.evidence.canonical import iso_utc
from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb

HEADLINE = [
    ("prompt_dependence", "all", ("off", "on", "ratio"), "Prompt dependence (same seed)"),
    ("concentration", "all", ("off", "on", "collapse"), "Same-seed concentration"),
    ("attraction", "all", ("off", "on", "gain"), "Attraction (other prompt and seed)"),
    ("seed_dependence", "all", ("off", "on", "ratio"), "Seed dependence (same prompt)"),
    ("vendi", "all", ("off", "on", "ratio"), "Vendi diversity"),
    ("seed_dup_rate", "all", ("off", "on"), "Near-duplicate seed pairs"),
    ("fidelity", "all", ("off", "on", "delta"), "Prompt fidelity"),
    ("cond_noise", "all", ("off", "on", "ratio"), "Conditional-noise magnitude"),
    ("reference_mean", "all", ("off", "on", "delta"), "Reference similarity"),
    ("concentration", "trigger-dependence", ("without", "with", "delta"), "Trigger dependence"),
]


def _iso(v: Any) -> Any:
    return iso_utc(v) if isinstance(v, datetime) else v


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    # most models have no probe run: answer that without importing the probe's record code (numpy)
    if con.execute("SELECT 1 FROM probe_runs WHERE blob_sha256 = ? LIMIT 1", [sha256]).fetchone() is None:
        return None
    from registry.probe.record import metrics, runs, sample_path, samples

    rs = runs(con, sha256)
    if not rs:
        return None
    r = rs[0]
    cfg = r["config"]
    return {
        "run_id": r["id"],
        "n_runs": len(rs),
        "finished_at": _iso(r["finished_at"]),
        "mode": r["mode"],
        "base": {"ref": r["base_ref"], "key": r["base_key"]},
        "battery": r["battery"],
        "n_prompts": r["n_prompts"],
        "seeds": cfg.get("seeds"),
        "settings": cfg.get("settings"),
        "scheduler": (cfg.get("scheduler") or {}).get("class"),
        "embedder": cfg.get("embedder"),
        "device": r["device"],
        "versions": r["versions"],
        "timings": r["timings"],
        "adapter": r["adapter"],
        "summary": r["summary"],
        "skipped": r["skipped"],
        "notes": r["notes"],
        "metrics": metrics(con, r["id"]),
        # every sample of the run by SHA-256 (the PNG in the sample store), with its batch (size, key and
        # place): on a GPU a sample's pixels depend on its batch (docs/probe.md)
        "samples": [
            {k: x[k] for k in ("arm", "prompt_id", "seed", "sha256", "batch_size", "batch_key", "batch_position", "cached")}
            for x in samples(con, r["id"])
        ],
        "sheet": str(sample_path(r["store_root"], r["sheet_sha256"])) if r["sheet_sha256"] else None,
        "sheet_sha256": r["sheet_sha256"],
        "event_hash": r["event_hash"],
    }


def _fmt(m: dict[str, Any] | None) -> str:
    """Value and interval, bounds rounded outward (lower down, upper up) to 3 decimals."""
    from registry.probe.summary import fmt_interval

    if m is None:
        return "n/a"
    return fmt_interval(m["value"], m["lo"], m["hi"], digits=3)


def _runs(n: int) -> str:
    return "its only run" if n == 1 else f"the latest of {n} runs"


def render(v: dict[str, Any]) -> list[Line]:
    s = v.get("settings") or {}
    dev = v.get("device") or {}
    size = f"{s.get('width')}×{s.get('height')}" if s.get("width") else "native size"
    lines: list[Line] = [
        ("Latest run", f"run #{v['run_id']} ({_runs(v['n_runs'])} of this model), {v['finished_at']}, "
                       f"{v['mode']} against {v['base']['ref']}"),
        ("Settings", f"{v['battery']}: {v['n_prompts']} prompts × {len(v.get('seeds') or [])} seeds, "
                     f"{s.get('steps')} steps, guidance {s.get('guidance')}, {v.get('scheduler')}, {size}"),
        ("Device", f"{dev.get('name')} ({dev.get('device')}), torch {(v.get('versions') or {}).get('torch')}, "
                   f"diffusers {(v.get('versions') or {}).get('diffusers')}"),
        ("Embedder", (v.get("embedder") or {}).get("key", "?")),
    ]
    by = {(m["name"], m["group"], m["arm"]): m for m in v["metrics"]}
    for name, group, arms, label in HEADLINE:
        if not any((name, group, a) in by for a in arms):
            continue
        lines.append((label, ", ".join(f"{a} {_fmt(by.get((name, group, a)))}" for a in arms)))
    smp = v.get("samples") or []
    if smp:
        per_arm: dict[str, int] = {}
        for x in smp:
            per_arm[x["arm"]] = per_arm.get(x["arm"], 0) + 1
        sizes = sorted({x["batch_size"] for x in smp if x.get("batch_size") is not None})
        lines.append(("Samples", f"{len(smp)} ({', '.join(f'{n} {a}' for a, n in per_arm.items())}), each by SHA-256 in "
                                 f"the JSON record; {'batch size' if len(sizes) == 1 else 'batch sizes'} "
                                 f"{', '.join(map(str, sizes)) or 'not recorded'}"))
    if v.get("sheet"):
        lines.append(("Contact sheet", v["sheet"]))
    lines.extend(v.get("summary") or [])
    return lines


SECTION = Section("probe", 78, load, render, title="Probe (what generation shows)")
