from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from registry.evidence import figures

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    return root


def test_spectrum_draws_each_series_on_a_log_axis() -> None:
    svg = figures.spectrum_svg([("a", [100.0, 10.0, 1.0]), ("b", [1.0, 0.0, math.nan, 0.01])])
    root = parse(svg)
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    pts_a = [tuple(map(float, p.split(","))) for p in lines[0].get("points", "").split()]
    assert len(pts_a) == 3
    # equal ratios give equal steps on a log axis
    assert math.isclose(pts_a[1][1] - pts_a[0][1], pts_a[2][1] - pts_a[1][1], abs_tol=0.02)
    # b keeps only its positive finite values (1.0 and 0.01)
    assert len(lines[1].get("points", "").split()) == 2
    assert len(root.findall(f"{SVG}circle")) == 5
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "1e-2" in labels and "1e2" in labels
    assert svg == figures.spectrum_svg([("a", [100.0, 10.0, 1.0]), ("b", [1.0, 0.0, math.nan, 0.01])])


def test_spectrum_without_data() -> None:
    root = parse(figures.spectrum_svg([("a", [0.0, -1.0])]))
    assert [t.text for t in root.iter(f"{SVG}text")] == ["no singular values to draw"]


def test_bar_profile_scales_to_the_largest() -> None:
    root = parse(figures.bar_profile_svg([("down", 1.0), ("up", 4.0), ("bad", math.inf)], unit="fro"))
    bars = [r for r in root.findall(f"{SVG}rect") if r.get("height") != root.get("height")]
    widths = [float(r.get("width", "0")) for r in bars]
    assert len(widths) == 2 and math.isclose(widths[1], 4 * widths[0], rel_tol=1e-3)


def test_interval_chart() -> None:
    ivs = [figures.Interval("m", "off", 1.0, 0.5, 1.5), figures.Interval("m", "on", 3.0, 2.5, 3.5)]
    root = parse(figures.interval_svg(ivs))
    assert len(root.findall(f"{SVG}circle")) == 2 + 2  # legend dots + points


def test_extract_spectra_and_profile() -> None:
    stats = {
        "modules": [
            {"name": "small", "singular_values": [0.1, 0.05]},
            {"name": "big", "sv": [5.0, 1.0]},
            {"name": "not a spectrum", "singular_values": ["x"]},
        ],
        "profile": [{"component": "unet", "block": "up", "fro_norm": 2.0}, {"block": "mid", "fro_norm": 1.0}],
    }
    spectra, n = figures.spectra_from_stats(stats)
    assert n == 2 and [name for name, _ in spectra] == ["big", "small"]
    bars, vname = figures.profile_from_stats(stats)
    assert bars == [("unet up", 2.0), ("mid", 1.0)] and vname == "fro_norm"
    assert figures.profile_from_stats({"by_block": {"down": 3, "up": {"energy": 0.5}}}) == ([("down", 3.0), ("up", 0.5)], "value")
    assert figures.spectra_from_stats(None) == ([], 0)


def test_extract_probe_intervals() -> None:
    probe = {
        "runs": [
            {"metrics": [
                {"metric": "vendi", "off": {"value": 8.0, "ci": [7.0, 9.0]}, "on": {"value": 2.0, "ci_low": 1.0, "ci_high": 3.0}},
                {"name": "fidelity", "value": 0.3, "series": "on"},
            ]}
        ]
    }  # fmt: skip
    assert figures.intervals_from_probe(probe) == [
        figures.Interval("vendi", "off", 8.0, 7.0, 9.0),
        figures.Interval("vendi", "on", 2.0, 1.0, 3.0),
        figures.Interval("fidelity", "on", 0.3, None, None),
    ]
