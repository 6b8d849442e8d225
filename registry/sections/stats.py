"""Section ``stats`` (titled "Weights"): what the weights say (LoRA update spectra, or checkpoint tensor
statistics).

For an adapter the value holds the per-file summary, ``by_component`` (each component's share of the
update energy), ``profile`` (one entry per block: ``component``, ``block``, ``fro``, ``energy_share`` …)
and ``top_modules`` (the modules with the largest spectral norms, each with its leading singular
values ``sv``), which the exhibit report draws as its spectrum and profile figures.
:func:`load_modules` lists every module (``modelreg show REF --modules``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb

#: modules (largest spectral norm first) whose spectra the record carries; ``--modules`` lists them all
TOP_MODULES = 12

MODULE_COLUMNS = [
    "module", "form", "component", "block", "rank", "max_rank", "alpha", "scale", "fro", "spectral", "stable_rank",
    "eff_rank_energy", "eff_rank_rv", "top1_share", "rank90", "rank99", "balance", "n_out", "n_in", "dtype",
    "method", "exact", "sv_error", "nonfinite", "error",
]


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    rows = _rows(con, "SELECT * EXCLUDE (blob_sha256) FROM lora_summary WHERE blob_sha256 = ?", [sha256])
    if rows:
        s = rows[0]
        for k in ("forms", "conventions", "components", "per_module"):
            s[k] = _json(s[k])
        prof = _rows(
            con,
            "SELECT component, block, n_modules, fro, energy_share, mean_eff_rank, max_spectral FROM lora_profile "
            "WHERE blob_sha256 = ? ORDER BY component, energy_share DESC NULLS LAST, block",
            [sha256],
        )
        s["by_component"] = [p for p in prof if p["block"] == "(all)"]
        s["profile"] = [p for p in prof if p["block"] != "(all)"]
        s["top_modules"] = _rows(
            con,
            "SELECT module, form, component, block, rank, max_rank, scale, fro, spectral, eff_rank_energy, exact, sv_error, sv "
            "FROM lora_modules WHERE blob_sha256 = ? AND spectral IS NOT NULL "
            "ORDER BY spectral DESC, module LIMIT ?",
            [sha256, TOP_MODULES],
        )
        return {"kind": "adapter", **s}
    rows = _rows(con, "SELECT * EXCLUDE (blob_sha256) FROM checkpoint_summary WHERE blob_sha256 = ?", [sha256])
    if rows:
        s = rows[0]
        s["dtypes"], s["components"] = _json(s["dtypes"]), _json(s["components"])
        s["nonfinite_list"] = _rows(
            con,
            "SELECT tensor, nan, inf FROM tensor_stats WHERE blob_sha256 = ? AND (nan > 0 OR inf > 0) "
            "ORDER BY nan + inf DESC, tensor LIMIT 20",
            [sha256],
        )
        s["largest"] = _rows(
            con,
            "SELECT tensor, absmax, l2, std FROM tensor_stats WHERE blob_sha256 = ? AND absmax IS NOT NULL "
            "ORDER BY absmax DESC, tensor LIMIT 5",
            [sha256],
        )
        return {"kind": "checkpoint", **s}
    return None


def load_modules(con: duckdb.DuckDBPyConnection, sha256: str) -> list[dict[str, Any]]:
    """Every module of an adapter with its figures (and leading singular values, ``sv``)."""
    rows = _rows(
        con,
        f"SELECT {', '.join(MODULE_COLUMNS)}, sv, extra FROM lora_modules WHERE blob_sha256 = ? ORDER BY module",
        [sha256],
    )
    for r in rows:
        r["extra"] = _json(r["extra"])
    return rows


def _g(x: float | None, spec: str = ".4g") -> str:
    return "–" if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _num(x: float, spec: str = "d") -> str:
    """An integer figure as an integer (a median of an even count may be a half), else ``spec``."""
    if spec == "d":
        return format(int(x), ",") if float(x).is_integer() else format(x, ".1f")
    return format(x, spec)


def _spread(d: dict[str, Any], spec: str) -> str:
    """A per-module figure: its median and range over the modules where it is known."""
    lo, hi = _num(d["min"], spec), _num(d["max"], spec)
    if lo == hi:
        return f"{_num(d['median'], spec)} (all {d['n']:,})"
    return f"median {_num(d['median'], spec)}, range {lo}–{hi} ({d['n']:,} modules)"


#: the largest rank each form can reach, as the reader should see it (registry.stats, "Units")
_REACH = {
    "lora": "LoRA min(r, out, in)", "glora": "GLoRA min(r, out, in)", "loha": "LoHa min(r1·r2, out, in)",
    "lokr": "LoKr rank(W1)·rank(W2)", "diff": "full min(out, in)", "ia3": "IA3 n", "norm": "norm n",
    "oft": "OFT n", "boft": "BOFT n",
}


def _reach_rule(forms: dict[str, int]) -> str:
    return "; ".join(_REACH.get(f, f) for f in forms)


def _exactness(v: dict[str, Any]) -> str:
    n, approx = v.get("n_modules") or 0, v.get("approximate_modules") or 0
    if not approx:
        return "every figure exact (float64 singular values of each module's update)"
    bound = v.get("max_sv_error")
    within = f"; σ1 within +{_pct(bound)} (largest bound)" if bound is not None else ""
    return (f"{n - approx:,} of {n:,} modules exact; {approx:,} sketched: Frobenius norm exact, leading "
            f"singular values are lower bounds{within}; effective ranks of sketched modules not computed, "
            "their rank90/99 given as intervals")


def _counts(d: dict[str, int] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (d or {}).items())


def render(v: dict[str, Any]) -> list[Line]:
    if v["kind"] == "checkpoint":
        return _render_checkpoint(v)
    lines: list[Line] = [
        ("Kind", f"adapter, {v['n_modules']:,} modules ({_counts(v['forms'])}; {', '.join(v['conventions'] or {})})"),
    ]
    ranks, alphas = v.get("ranks") or [], v.get("alphas") or []
    if ranks:
        lines.append(("Stated rank / alpha", f"{'/'.join(str(r) for r in ranks[:6])} / {'/'.join(_g(a) for a in alphas[:6]) or 'none (scale 1)'} (per module, as the file states them)"))
    lines.append(("Total update norm", f"{_g(v['total_fro'])} (Frobenius, all modules)"))
    lines.append(("Largest spectral norm", _g(v["max_spectral"])))
    spread = v.get("per_module") or {}
    reach = spread.get("max_rank")
    if reach:
        lines.append(("Reachable rank", f"per module {_spread(reach, 'd')}: {_reach_rule(v.get('forms') or {})}"))
    eff = spread.get("eff_rank_energy")
    if eff:
        use = f"; mean {_pct(v['mean_rank_use'])} of the reachable rank" if v.get("mean_rank_use") is not None else ""
        lines.append(("Effective rank", f"per module {_spread(eff, '.3g')} (exp of the entropy of σ²/Σσ²){use}"))
    elif v.get("mean_eff_rank") is not None:  # recorded before per-module spreads were kept
        lines.append(("Effective rank", f"per module mean {_g(v['mean_eff_rank'], '.3g')}, median {_g(v['median_eff_rank'], '.3g')}"))
    r90, r99 = spread.get("rank90"), spread.get("rank99")
    if r90 and r99:
        if _num(r90["min"]) == _num(r90["max"]) and _num(r99["min"]) == _num(r99["max"]):
            pair = f"{_num(r90['median'])} / {_num(r99['median'])} (all {r90['n']:,})"
        else:
            pair = (f"median {_num(r90['median'])} / {_num(r99['median'])}, range {_num(r90['min'])}–{_num(r90['max'])} / "
                    f"{_num(r99['min'])}–{_num(r99['max'])} ({r90['n']:,} modules)")
        lines.append(("Rank for 90% / 99%", f"per module {pair} (kohya sv_fro: smallest k keeping 90% / 99% of ‖ΔW‖_F)"))
    lo90, hi90, lo99, hi99 = (spread.get(f"rank{t}_{e}") for t in (90, 99) for e in ("lo", "hi"))
    if lo90 and hi90 and lo99 and hi99:
        lines.append(("  sketched modules", (
            f"rank for 90% between {_num(lo90['median'])} and {_num(hi90['median'])}, for 99% between "
            f"{_num(lo99['median'])} and {_num(hi99['median'])} (medians over {hi90['n']:,} "
            f"module{'' if hi90['n'] == 1 else 's'} of certain "
            "lower and upper bounds; per module the upper bound is the reachable rank where the leading "
            "values do not reach the share)"
        )))
    if v.get("sum_max_rank"):
        lines.append(("  totals", f"{v['sum_rank90']:,} / {v['sum_rank99']:,} of {v['sum_max_rank']:,} reachable, summed over {v['rank_modules']:,} modules"))
    lines.append(("Exactness", _exactness(v)))
    comps = sorted(v.get("by_component") or [], key=lambda p: str(p["component"]))
    if comps:
        lines.append(("Where it acts", ", ".join(f"{p['component']} {_pct(p['energy_share'])}" for p in comps)))
    blocks = sorted(v.get("profile") or [], key=lambda p: -(p["energy_share"] or 0.0))
    if blocks:
        lines.append(("Top blocks", ", ".join(f"{p['component']} {p['block']} {_pct(p['energy_share'])}" for p in blocks[:6])))
    problems = [
        f"{v[k]} {label}"
        for k, label in [
            ("nonfinite_modules", "with NaN/Inf"), ("zero_modules", "all-zero"), ("failed_modules", "unreadable"),
            ("incomplete_modules", "incomplete"), ("approximate_modules", "approximate"),
        ]
        if v.get(k)
    ]
    if problems:
        lines.append(("Modules", ", ".join(problems)))
    if v.get("dora"):
        lines.append(("DoRA", f"{v['dora']} modules carry magnitudes"))
    return lines


def _render_checkpoint(v: dict[str, Any]) -> list[Line]:
    lines: list[Line] = [
        ("Kind", f"tensors, {v['n_tensors']:,} ({_counts(v['dtypes'])}), {v['numel']:,} parameters"),
        ("Global L2 norm", _g(v["l2"])),
        ("Absolute max", _g(v["absmax"])),
    ]
    comps = v.get("components") or {}
    if len(comps) > 1:
        lines.append(("Components", ", ".join(f"{k} {c['numel']:,} params (L2 {_g(c['l2'])})" for k, c in comps.items())))
    if v.get("nonfinite_tensors"):
        first = ", ".join(t["tensor"] for t in v.get("nonfinite_list", [])[:3])
        lines.append(("NaN / Inf", f"{v['nonfinite_tensors']} tensors ({v['nan']:,} NaN, {v['inf']:,} Inf): {first}"))
    if v.get("zero_tensors"):
        lines.append(("All-zero tensors", str(v["zero_tensors"])))
    if v.get("undecodable_tensors"):
        lines.append(("No statistics", f"{v['undecodable_tensors']} tensors in undecodable dtypes"))
    for t in v.get("largest", [])[:3]:
        lines.append(("  largest |x|", f"{_g(t['absmax'])} in {t['tensor']}"))
    return lines


SECTION = Section("stats", 75, load, render, title="Weights")
