from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.evidence.canonical import build_record
from registry.evidence.report import METHODOLOGY, render_html
from registry.store.db import connect
from tests.evidence.registry_fixture import make_registry
from tests.evidence.test_canonical import FakeSection


class PairsSection(FakeSection):
    def render(self, value: Any) -> list[tuple[str, str]]:
        return [("Kind", str(value["kind"])), ("Architecture", str(value["architecture"]))]


def html_for(tmp_path: Path, sections: list[Any]) -> str:
    fx = make_registry(tmp_path)
    with connect(fx.db, read_only=True) as con:
        rec = build_record(con, fx.sha256, sections)
    env = {"created_at": "2024-06-01T10:00:00Z", "record_sha256": "ab" * 32, "signer": {"public_key_sha256": "cd" * 32}}
    return render_html(rec, env, sections)


def test_absent_analyses_say_not_analysed(tmp_path: Path) -> None:
    html = html_for(tmp_path, [])
    for heading in ("Provenance and outside claims", "Kind and architecture", "Security verdicts", "Weight statistics", "Probe runs",
                    "Declarations, contradictions and overfitting indicators"):  # fmt: skip
        assert heading in html
    assert html.count("Not analysed.") == 7
    assert "Not analysed. The weights were not analysed statistically (no spectra, no per-block profile)." in html
    assert "<svg" not in html  # nothing to draw
    for title, _how, _limits in METHODOLOGY:
        assert f"<h3>{title}</h3>" in html


def test_sections_render_with_their_figures(tmp_path: Path) -> None:
    sections = [
        PairsSection("identify", 20, {"kind": "lora", "architecture": "sdxl"}),
        FakeSection("stats", 40, {"modules": [{"name": "m1", "singular_values": [2.0, 1.0]}], "profile": {"up": 1.0}}),
        FakeSection("probe", 80, None),
        FakeSection("hub", 90, None, fail=True),
    ]
    html = html_for(tmp_path, sections)
    assert "<th>Kind</th><td>lora</td>" in html and "<th>Base architecture</th><td>sdxl</td>" in html
    assert html.count("<svg") == 2  # spectrum and profile
    assert "Figure 1." in html and "Figure 2." in html
    assert "(section “probe”)</span></h3><p class=\"absent\">Not analysed." in html
    assert "Could not be loaded: RuntimeError: table missing" in html
    assert "training.<wbr>hash-claim-mismatch" in html and "1 finding: 1 medium." in html
    assert "sha256sum -c MANIFEST" in html and "model_signing verify key" in html


def test_registered_sections_are_in_the_record_and_core_ones_not_repeated(tmp_path: Path) -> None:
    from registry.evidence.canonical import discover_sections, schema_errors
    from registry.record import load_sections

    fx = make_registry(tmp_path)
    sections = discover_sections()
    assert [s.name for s in sections] == [s.name for s in load_sections()]
    with connect(fx.db, read_only=True) as con:
        rec = build_record(con, fx.sha256)
    assert schema_errors(rec) == []
    for name in ("file", "sightings", "metadata", "tensors", "findings"):
        assert rec["sections"][name] is not None, name
    assert rec["sections"]["file"]["sha256"] == fx.sha256
    html = render_html(rec, None, sections)
    assert "(section “file”)" not in html and "Other analyses" not in html


def test_mixed_render_lines_become_rows(tmp_path: Path) -> None:
    class Mixed(FakeSection):
        def render(self, value: Any) -> list[Any]:
            return [("Version", "1 of 1"), "  [HIGH  ] declaration.x: <b>contradiction</b>"]

    html = html_for(tmp_path, [Mixed("declaration", 80, {"current": {}})])
    assert "<tr><th>Version</th><td>1 of 1</td></tr>" in html
    assert '<td colspan="2" class="line">  [HIGH  ] declaration.x: &lt;b&gt;contradiction&lt;/b&gt;</td>' in html


def test_summary_names_pickle_verdict_and_declaration_contradictions() -> None:
    from registry.evidence.report import _summary_extras

    record = {
        "sections": {
            "security": {"verdict": "dangerous", "reason": "imports posix.system"},
            "declaration": {"current": {"version": 2}, "contradictions": [{"rule_id": "a"}, {"rule_id": "b"}]},
        }
    }
    assert _summary_extras(record) == [
        ("Pickle security verdict", "dangerous: imports posix.system"),
        ("Training-data declaration", "version 2 on file; 2 contradiction(s) with the evidence"),
    ]
    assert _summary_extras({"sections": {}}) == [("Training-data declaration", "none filed")]
