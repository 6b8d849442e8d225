"""The report's charts, drawn as small self-contained SVG (no plotting library, no fonts to embed).

Every function takes plain numbers and returns an ``<svg>`` string; the output depends only on its
input (numbers are printed with fixed precision), so a report's HTML is reproducible.

The extractors (:func:`spectra_from_stats`, :func:`profile_from_stats`, :func:`intervals_from_probe`)
find the figures' data in record sections by shape rather than by exact field names, so that the
report keeps working while the statistics and probe sections grow; each documents what it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#637939",
)  # fmt: skip

FONT = "font-family=\"DejaVu Sans, sans-serif\""


def _f(x: float) -> str:
    """Coordinates with two decimals, without a trailing ``.00``."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _num(x: float) -> str:
    """A value label: 4 significant digits."""
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.4g}"


def _finite_positive(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(v) and v > 0:
            out.append(float(v))
    return out


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]


def empty_svg(message: str, width: int = 640, height: int = 60) -> str:
    parts = _svg_open(width, height, message)
    parts.append(
        f'<text x="{width // 2}" y="{height // 2 + 4}" text-anchor="middle" font-size="12" {FONT} '
        f'fill="#555555">{escape(message)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


# -- singular-value spectra ---------------------------------------------------------------------------


def spectrum_svg(
    series: Sequence[tuple[str, Sequence[float]]],
    title: str = "Singular-value spectra",
    width: int = 640,
    height: int = 320,
    normalise: bool = False,
) -> str:
    """Line chart of singular values σ₁ ≥ σ₂ ≥ … per module on a logarithmic axis.

    ``series`` is ``[(label, [σ₁, σ₂, …]), …]``; non-positive and non-finite values are left out (a log
    axis cannot show them). With ``normalise`` each series is divided by its σ₁.
    """
    cleaned: list[tuple[str, list[float]]] = []
    for label, values in series:
        vals = _finite_positive(values)
        if normalise and vals:
            top = vals[0]
            vals = [v / top for v in vals]
        if vals:
            cleaned.append((label, vals))
    if not cleaned:
        return empty_svg("no singular values to draw", width)
    left, right, top, bottom = 64, 60, 28, 40
    pw, ph = width - left - right, height - top - bottom
    all_vals = [v for _, vals in cleaned for v in vals]
    lo_exp = math.floor(math.log10(min(all_vals)))
    hi_exp = math.ceil(math.log10(max(all_vals)))
    if hi_exp == lo_exp:
        hi_exp += 1
    kmax = max(len(vals) for _, vals in cleaned)

    def x_of(i: int) -> float:  # i is 1-based
        return left + (0.5 * pw if kmax == 1 else (i - 1) / (kmax - 1) * pw)

    def y_of(v: float) -> float:
        return top + ph - (math.log10(v) - lo_exp) / (hi_exp - lo_exp) * ph

    parts = _svg_open(width, height, title)
    parts.append(f'<text x="{left}" y="16" font-size="13" font-weight="bold" {FONT}>{escape(title)}</text>')
    # grid and y ticks at powers of ten (thinned to at most 8 labels)
    step = max(1, math.ceil((hi_exp - lo_exp) / 8))
    for e in range(lo_exp, hi_exp + 1, step):
        y = y_of(10.0**e)
        parts.append(f'<line x1="{left}" y1="{_f(y)}" x2="{left + pw}" y2="{_f(y)}" stroke="#e0e0e0"/>')
        parts.append(
            f'<text x="{left - 6}" y="{_f(y + 4)}" text-anchor="end" font-size="10" {FONT}>1e{e}</text>'
        )
    # x ticks
    xstep = max(1, math.ceil(kmax / 10))
    for i in range(1, kmax + 1, xstep):
        x = x_of(i)
        parts.append(f'<line x1="{_f(x)}" y1="{top + ph}" x2="{_f(x)}" y2="{top + ph + 4}" stroke="#333333"/>')
        parts.append(f'<text x="{_f(x)}" y="{top + ph + 16}" text-anchor="middle" font-size="10" {FONT}>{i}</text>')
    parts.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333333" stroke-width="1"/>'
    )
    parts.append(
        f'<text x="{left + pw / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="11" {FONT}>'
        "index i of the singular value</text>"
    )
    ylabel = "σᵢ / σ₁" if normalise else "σᵢ"
    parts.append(
        f'<text x="14" y="{top + ph / 2:.0f}" font-size="11" {FONT} text-anchor="middle" '
        f'transform="rotate(-90 14 {top + ph / 2:.0f})">{ylabel} (log scale)</text>'
    )
    for n, (_label, vals) in enumerate(cleaned):
        colour = PALETTE[n % len(PALETTE)]
        pts = " ".join(f"{_f(x_of(i + 1))},{_f(y_of(v))}" for i, v in enumerate(vals))
        if len(vals) > 1:
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for i, v in enumerate(vals):
            parts.append(f'<circle cx="{_f(x_of(i + 1))}" cy="{_f(y_of(v))}" r="2" fill="{colour}"/>')
        ly = top + 10 + n * 14
        if ly < top + ph:
            parts.append(f'<rect x="{left + pw + 10}" y="{ly - 7}" width="10" height="3" fill="{colour}"/>')
            parts.append(
                f'<text x="{left + pw + 24}" y="{ly}" font-size="9" {FONT}>{n + 1}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def _shorten(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-(n - 1) :]


#: the quantities a per-block profile can carry, in words (axis labels never show a field name)
QUANTITY_WORDS = {
    "fro": "Frobenius norm of the update",
    "fro_norm": "Frobenius norm of the update",
    "frobenius": "Frobenius norm of the update",
    "frobenius_norm": "Frobenius norm of the update",
    "sum_fro": "sum of the modules' Frobenius norms of the update",
    "energy": "energy of the update (sum of squared singular values)",
    "energy_share": "share of the update's total energy",
    "norm": "norm of the update",
    "total_norm": "norm of the update, all modules together",
    "delta_norm": "norm of the update",
    "value": "value recorded per block",
}


def quantity_words(name: str) -> str:
    """A profile quantity's field name (``fro``) in words ("Frobenius norm of the update")."""
    return QUANTITY_WORDS.get(name, name.replace("_", " "))


# -- bar profile ----------------------------------------------------------------------------------------


def bar_profile_svg(
    bars: Sequence[tuple[str, float]],
    title: str = "Per-block profile",
    unit: str = "",
    width: int = 640,
) -> str:
    """Horizontal bars, one per label, scaled to the largest finite value (negatives drawn as zero)."""
    clean = [(lab, float(v)) for lab, v in bars if isinstance(v, int | float) and math.isfinite(v)]
    if not clean:
        return empty_svg("no per-block values to draw", width)
    # labels are drawn in full: the label column is as wide as the longest label (about 6 units a character)
    row, top, right = 16, 28, 80
    left = max(120, 14 + 6 * max(len(lab) for lab, _ in clean))
    width = max(width, left + 360 + right)
    height = top + row * len(clean) + 30
    pw = width - left - right
    vmax = max(max(v for _, v in clean), 0.0) or 1.0
    parts = _svg_open(width, height, title)
    parts.append(f'<text x="8" y="16" font-size="13" font-weight="bold" {FONT}>{escape(title)}</text>')
    for n, (label, v) in enumerate(clean):
        y = top + n * row
        w = max(v, 0.0) / vmax * pw
        parts.append(
            f'<text x="{left - 6}" y="{y + 11}" text-anchor="end" font-size="10" {FONT}>'
            f"{escape(label)}</text>"
        )
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{_f(w)}" height="{row - 4}" fill="{PALETTE[0]}"/>')
        parts.append(f'<text x="{_f(left + w + 4)}" y="{y + 11}" font-size="10" {FONT}>{_num(v)}</text>')
    axis_y = top + row * len(clean) + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + pw}" y2="{axis_y}" stroke="#333333"/>')
    if unit:
        parts.append(
            f'<text x="{left + pw / 2:.0f}" y="{axis_y + 18}" text-anchor="middle" font-size="11" {FONT}>'
            f"{escape(quantity_words(unit))}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


# -- intervals (probe metrics) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    metric: str
    series: str  # e.g. "LoRA off", "LoRA on"
    value: float
    low: float | None = None
    high: float | None = None


def interval_svg(intervals: Sequence[Interval], title: str = "Probe metrics", width: int = 640) -> str:
    """Dot-and-whisker chart: one row per metric, one dot per series, whiskers for the interval.

    Each metric row is scaled on its own (metrics have different units); the row's range is printed.
    """
    metrics: dict[str, list[Interval]] = {}
    for iv in intervals:
        if math.isfinite(iv.value):
            metrics.setdefault(iv.metric, []).append(iv)
    if not metrics:
        return empty_svg("no probe metrics to draw", width)
    series_names = sorted({iv.series for ivs in metrics.values() for iv in ivs})
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series_names)}
    row, top, left, right = 30, 44, 190, 110
    height = top + row * len(metrics) + 12
    pw = width - left - right
    parts = _svg_open(width, height, title)
    parts.append(f'<text x="8" y="16" font-size="13" font-weight="bold" {FONT}>{escape(title)}</text>')
    for i, s in enumerate(series_names):
        x = left + i * 110
        parts.append(f'<circle cx="{x}" cy="30" r="4" fill="{colours[s]}"/>')
        parts.append(f'<text x="{x + 8}" y="34" font-size="10" {FONT}>{escape(s)}</text>')
    for n, (metric, ivs) in enumerate(metrics.items()):
        y = top + n * row + row / 2
        nums = [iv.value for iv in ivs] + [b for iv in ivs for b in (iv.low, iv.high) if b is not None]
        nums = [v for v in nums if math.isfinite(v)]
        lo, hi = min(nums), max(nums)
        pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad

        def x_of(v: float, lo: float = lo, hi: float = hi) -> float:
            return left + (v - lo) / (hi - lo) * pw

        parts.append(
            f'<text x="{left - 6}" y="{_f(y + 4)}" text-anchor="end" font-size="10" {FONT}>'
            f"{escape(_shorten(metric, 32))}</text>"
        )
        parts.append(f'<line x1="{left}" y1="{_f(y)}" x2="{left + pw}" y2="{_f(y)}" stroke="#eeeeee"/>')
        for k, iv in enumerate(ivs):
            dy = (k - (len(ivs) - 1) / 2) * 6
            c = colours[iv.series]
            if iv.low is not None and iv.high is not None and math.isfinite(iv.low) and math.isfinite(iv.high):
                parts.append(
                    f'<line x1="{_f(x_of(iv.low))}" y1="{_f(y + dy)}" x2="{_f(x_of(iv.high))}" '
                    f'y2="{_f(y + dy)}" stroke="{c}" stroke-width="2"/>'
                )
            parts.append(f'<circle cx="{_f(x_of(iv.value))}" cy="{_f(y + dy)}" r="3.5" fill="{c}"/>')
        parts.append(
            f'<text x="{left + pw + 6}" y="{_f(y + 4)}" font-size="9" {FONT} fill="#555555">'
            f"{_num(lo + pad)} … {_num(hi - pad)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


# -- extracting figure data from record sections ---------------------------------------------------------

SV_KEYS = ("singular_values", "sv", "spectrum", "leading_singular_values", "top_singular_values", "sigma")
NAME_KEYS = ("name", "module", "key", "prefix", "label")
BLOCK_KEYS = ("block", "group", "label", "name", "component")
PROFILE_KEYS = ("profile", "blocks", "by_block", "per_block", "block_profile")
PROFILE_VALUE_KEYS = ("energy", "fro", "fro_norm", "frobenius", "frobenius_norm", "norm", "total_norm", "delta_norm", "sum_fro")


def _walk(value: Any, depth: int = 0) -> Iterable[Any]:
    """Every dict and list inside ``value`` (depth-first, bounded)."""
    if depth > 6:
        return
    if isinstance(value, Mapping):
        yield value
        for v in value.values():
            yield from _walk(v, depth + 1)
    elif isinstance(value, list):
        yield value
        for v in value[:100000]:
            if isinstance(v, Mapping | list):
                yield from _walk(v, depth + 1)


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, list) or not value:
        return None
    out: list[float] = []
    for v in value:
        if isinstance(v, bool):
            return None
        if isinstance(v, int | float):
            out.append(float(v))
        elif v in ("NaN", "Infinity", "-Infinity"):
            out.append(float(v.replace("Infinity", "inf")))
        else:
            return None
    return out


def spectra_from_stats(stats: Any, limit: int = 12) -> tuple[list[tuple[str, list[float]]], int]:
    """Modules with singular values in a statistics section: ``(top modules by σ₁, modules found)``.

    Accepts any dict inside the section that has a numeric list under one of :data:`SV_KEYS` and a name
    under one of :data:`NAME_KEYS`. The ``limit`` modules with the largest σ₁ are returned.
    """
    found: list[tuple[str, list[float]]] = []
    for node in _walk(stats):
        if not isinstance(node, Mapping):
            continue
        for k in SV_KEYS:
            nums = _numbers(node.get(k))
            if nums is not None:
                name = next((str(node[n]) for n in NAME_KEYS if isinstance(node.get(n), str)), f"module {len(found) + 1}")
                found.append((name, nums))
                break
    ranked = sorted(found, key=lambda s: -max(_finite_positive(s[1]) or [0.0]))
    return ranked[:limit], len(found)


def profile_from_stats(stats: Any) -> tuple[list[tuple[str, float]], str]:
    """Per-block bars from a statistics section: ``([(block, value)], value name)``.

    Accepts, under one of :data:`PROFILE_KEYS`: a mapping ``{block: number}``, a mapping
    ``{block: {value_key: number}}``, or a list of dicts with a label (:data:`BLOCK_KEYS`, ``component``
    and ``block`` joined when both are present) and a number under one of :data:`PROFILE_VALUE_KEYS`.
    """
    for node in _walk(stats):
        if not isinstance(node, Mapping):
            continue
        for key in PROFILE_KEYS:
            prof = node.get(key)
            bars, vname = _profile_bars(prof)
            if bars:
                return bars, vname
    return [], ""


def _profile_value(d: Mapping[str, Any]) -> tuple[float, str] | None:
    for vk in PROFILE_VALUE_KEYS:
        v = d.get(vk)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v), vk
    return None


def _profile_bars(prof: Any) -> tuple[list[tuple[str, float]], str]:
    bars: list[tuple[str, float]] = []
    vname = ""
    if isinstance(prof, Mapping):
        for label, v in prof.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                bars.append((str(label), float(v)))
                vname = vname or "value"
            elif isinstance(v, Mapping) and (pv := _profile_value(v)) is not None:
                bars.append((str(label), pv[0]))
                vname = vname or pv[1]
    elif isinstance(prof, list):
        for d in prof:
            if not isinstance(d, Mapping) or (pv := _profile_value(d)) is None:
                continue
            comp, block = d.get("component"), d.get("block")
            if isinstance(comp, str) and isinstance(block, str):
                label = f"{comp} {block}"
            else:
                label = next((str(d[k]) for k in BLOCK_KEYS if isinstance(d.get(k), str)), "?")
            bars.append((label, pv[0]))
            vname = vname or pv[1]
    return bars, vname


INTERVAL_LOW = ("ci_low", "low", "lo", "lower", "ci_lower")
INTERVAL_HIGH = ("ci_high", "high", "hi", "upper", "ci_upper")
SERIES_KEYS = ("off", "on", "base", "lora", "lora_off", "lora_on", "with_trigger", "without_trigger")


def intervals_from_probe(probe: Any) -> list[Interval]:
    """Metric values with intervals from a probe section.

    Accepts dicts ``{metric|name: str, value: number, ci_low/low: number, ci_high/high: number,
    series|condition: str}``, dicts ``{metric: str, on: {value, ci_low, ci_high}, off: {…}}``, and
    ``{ci: [low, high]}`` in place of separate bounds.
    """
    out: list[Interval] = []
    for node in _walk(probe):
        if not isinstance(node, Mapping):
            continue
        metric = node.get("metric") or node.get("name")
        if not isinstance(metric, str):
            continue
        if _is_number(node.get("value")):
            series = node.get("series") or node.get("condition") or "value"
            out.append(_interval(metric, str(series), node))
            continue
        for sk in SERIES_KEYS:
            sub = node.get(sk)
            if isinstance(sub, Mapping) and _is_number(sub.get("value")):
                out.append(_interval(metric, sk.replace("_", " "), sub))
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _interval(metric: str, series: str, d: Mapping[str, Any]) -> Interval:
    low = next((float(d[k]) for k in INTERVAL_LOW if _is_number(d.get(k))), None)
    high = next((float(d[k]) for k in INTERVAL_HIGH if _is_number(d.get(k))), None)
    ci = d.get("ci")
    if (low is None or high is None) and isinstance(ci, list) and len(ci) == 2 and all(map(_is_number, ci)):
        low, high = float(ci[0]), float(ci[1])
    return Interval(metric, series, float(d["value"]), low, high)
