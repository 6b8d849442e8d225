"""`modelreg declare` end to end: a real file is scanned, declared, checked and shown; declarations
are append-only and every recording is in the hash-chained event log."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from click.testing import CliRunner

from cli.main import root
from registry import declarations as d
from registry.store.db import connect
from registry.store.declarations import training_facts, verify_document
from registry.store.events import verify_chain
from registry.training import DatasetDir, parse_training_metadata
from tests.builders import write_safetensors

BASE = "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6ffb79c80c4fb"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "declarations"

METADATA = {
    "ss_network_module": "networks.lora",
    "ss_network_dim": "16",
    "ss_network_alpha": "8",
    "ss_dataset_dirs": json.dumps({"10_anya": {"n_repeats": 10, "img_count": 15}, "5_street": {"n_repeats": 5, "img_count": 4}}),
    "ss_num_train_images": "170",
    "ss_num_reg_images": "0",
    "ss_num_epochs": "10",
    "ss_epoch": "8",
    "ss_steps": "680",
    "ss_max_train_steps": "850",
    "ss_total_batch_size": "2",
    "ss_tag_frequency": json.dumps({"10_anya": {"ohwx": 15, "1girl": 15, "pink hair": 14}, "5_street": {"street": 4}}),
    "ss_sd_model_name": "sd_xl_base_1.0.safetensors",
    "ss_new_sd_model_hash": BASE,
    "modelspec.license": "CreativeML OpenRAIL-M",
    "modelspec.trigger_phrase": "ohwx",
}


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def lora(tmp_path: Path) -> tuple[Path, str]:
    t = {
        "lora_unet_a.lora_down.weight": np.ones((16, 32), np.float16),
        "lora_unet_a.lora_up.weight": np.ones((32, 16), np.float16),
        "lora_unet_a.alpha": np.array(8.0, np.float16),
    }
    p = write_safetensors(tmp_path / "models" / "anya_lora.safetensors", t, METADATA)
    return p, hashlib.sha256(p.read_bytes()).hexdigest()


def consistent(sha: str) -> dict[str, Any]:
    return {
        "schemaVersion": "1.0",
        "model": {"sha256": sha, "license": "CreativeML-OpenRAIL-M"},
        "declarant": {"name": "Jane Doe"},
        "date": "2025-03-14",
        "baseModels": [{"name": "SDXL 1.0 base", "hashes": {"sha256": BASE}}],
        "training": {"method": "lora", "triggerWords": ["ohwx"], "settings": {"networkRank": 16, "epochs": 10}},
        "datasets": [
            {"name": "Anya", "license": "CC-BY-4.0", "itemCount": 15, "repeats": 10,
             "description": "drawings of my character, pink hair"},
            {"name": "Backgrounds", "license": "CC0-1.0", "itemCount": 4, "repeats": 5, "description": "street scenes"},
        ],
    }


def scanned(tmp_path: Path) -> str:
    _, sha = lora(tmp_path)
    code, _, err = run("scan", str(tmp_path / "models"))
    assert code == 0, err
    return sha


def test_declare_records_a_version_with_an_event(tmp_path: Path, db: Path) -> None:
    sha = scanned(tmp_path)
    f = tmp_path / "decl.yaml"
    f.write_text(yaml.safe_dump(consistent(sha)))
    code, out, err = run("declare", "anya_lora.safetensors", str(f))
    assert code == 0, err
    doc_sha = d.load_declaration(f).sha256
    assert out == f"recorded declaration v1 for {sha[:16]}… (document sha256:{doc_sha})\ncontradictions: none found\n"
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT version, sha256, source_path, source_format, schema_version FROM declarations").fetchall()
        assert rows == [(1, doc_sha, str(f), "yaml", "1.0")]
        events = con.execute("SELECT action, subject, CAST(payload AS VARCHAR) FROM events WHERE action LIKE 'declaration.%' ORDER BY seq").fetchall()
        assert [(a, s) for a, s, _ in events] == [("declaration.add", sha), ("declaration.check", sha)]
        assert json.loads(events[0][2])["document_sha256"] == doc_sha
        assert verify_chain(con).ok
        did = con.execute("SELECT id FROM declarations").fetchone()
        assert did is not None and verify_document(con, did[0])
        ev_hash = con.execute("SELECT hash FROM events WHERE action = 'declaration.add'").fetchone()
        assert con.execute("SELECT event_hash FROM declarations").fetchone() == ev_hash


def test_declarations_are_append_only_versions(tmp_path: Path, db: Path) -> None:
    sha = scanned(tmp_path)
    f1 = tmp_path / "v1.json"
    f1.write_text(json.dumps(consistent(sha)))
    assert run("declare", sha[:12], str(f1))[0] == 0
    doc2 = consistent(sha)
    doc2["datasets"][0]["itemCount"] = 30
    f2 = tmp_path / "v2.json"
    f2.write_text(json.dumps(doc2))
    code, out, _ = run("declare", sha[:12], str(f2))
    assert code == 0
    assert out.splitlines()[1:] == [
        "contradictions: 2",
        "  MEDIUM   declaration.image-count.distinct: declaration says 34 distinct training image(s); the file's training folders hold 19",
        "  MEDIUM   declaration.image-count.total: declared training images × repeats = 320; the file's ss_num_train_images is 170",
    ]
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT version, source_path FROM declarations ORDER BY version").fetchall()
        assert rows == [(1, str(f1)), (2, str(f2))]
        assert con.execute("SELECT version, n_contradictions, max_contradiction_rank FROM model_declarations").fetchall() == [(2, 2, 2)]
        assert [r[0] for r in con.execute("SELECT rule_id FROM declaration_contradictions ORDER BY rule_id").fetchall()] == [
            "declaration.image-count.distinct",
            "declaration.image-count.total",
        ]
        assert con.execute("SELECT count(*) FROM declaration_history").fetchone() == (2,)
    # show: current declaration, its history and contradictions
    code, out, _ = run("show", sha[:12], "--section", "declaration")
    assert code == 0
    assert "  Version         2 of 2, recorded " in out
    assert "    [MEDIUM] declaration.image-count.distinct: declaration says 34 distinct training image(s); the file's training folders hold 19" in out
    assert "    exposures_per_image (embedded) = 71.58  ← images_per_epoch × epochs / distinct_images; images_per_epoch=170, epochs=8, distinct_images=19" in out
    assert "  v1  " in out and str(f1) in out
    code, out, _ = run("show", sha[:12], "--format", "json", "--section", "declaration")
    rec = json.loads(out)["declaration"]
    assert rec["current"]["version"] == 2 and [h["version"] for h in rec["history"]] == [2, 1]
    assert rec["current"]["document"]["datasets"][0]["itemCount"] == 30
    ind = {(i["id"], i["source"]): i["value"] for i in rec["indicators"]}
    assert ind[("exposures_per_image", "embedded")] == 170 * 8 / 19
    assert ind[("declared_vs_embedded_images", "declared")] == 34 / 19


def test_invalid_declaration_lists_every_error_and_records_nothing(tmp_path: Path, db: Path) -> None:
    sha = scanned(tmp_path)
    doc = consistent(sha)
    doc["datasets"][0]["licence"] = doc["datasets"][0].pop("license")
    doc["date"] = "14.03.2025"
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(doc))
    with connect(db, read_only=True) as con:
        n_events = con.execute("SELECT count(*) FROM events").fetchone()
    code, out, err = run("declare", sha[:12], str(f))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"modelreg: {f} is invalid (3 problems); nothing was recorded:",
        "  $.datasets[0].licence  unknown property 'licence' (did you mean 'license'?)",
        "  $.datasets[0].license  required property is missing",
        "  $.date                 must be a date (YYYY-MM-DD) or an RFC 3339 date-time (YYYY-MM-DDThh:mm:ssZ)",
    ]
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM declarations").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM events").fetchone() == n_events
    code, out, _ = run("declare", "--check", str(f), "--format", "json")
    assert code == 2
    assert json.loads(out)["errors"][0] == {"path": "$.datasets[0].licence", "message": "unknown property 'licence' (did you mean 'license'?)"}


def test_contradictions_and_fail_on(tmp_path: Path, db: Path) -> None:
    sha = scanned(tmp_path)
    doc = consistent(sha)
    doc["model"]["sha256"] = "f" * 64
    doc["model"]["license"] = "MIT"
    f = tmp_path / "wrong.json"
    f.write_text(json.dumps(doc))
    code, out, _ = run("declare", sha[:12], str(f), "--fail-on", "high")
    assert code == 1
    assert out.splitlines()[1:] == [
        "contradictions: 2",
        f"  HIGH     declaration.hash-mismatch: declaration covers sha256 {'f' * 64}; this file is {sha}",
        "  MEDIUM   declaration.license: declaration says the model's licence is 'MIT'; the file says 'CreativeML OpenRAIL-M' (modelspec.license)",
    ]
    code, out, _ = run("declare", sha[:12], str(f), "--format", "json")
    assert code == 0
    got = json.loads(out)
    assert got["version"] == 2 and [c["rule_id"] for c in got["contradictions"]] == ["declaration.hash-mismatch", "declaration.license"]


def test_recheck_adds_a_check(tmp_path: Path, db: Path) -> None:
    sha = scanned(tmp_path)
    code, _, err = run("declare", "--recheck", sha[:12])
    assert code == 2 and "has no declaration to check" in err
    f = tmp_path / "d.json"
    f.write_text(json.dumps(consistent(sha)))
    run("declare", sha[:12], str(f))
    code, out, _ = run("declare", "--recheck", sha[:12])
    assert code == 0
    assert out == f"checked declaration v1 of {sha[:16]}… again\ncontradictions: none found\n"
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM declaration_checks").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM declarations").fetchone() == (1,)
        assert verify_chain(con).ok


def test_rehash_keeps_declarations(tmp_path: Path, db: Path) -> None:
    sha = scanned(tmp_path)
    f = tmp_path / "d.json"
    f.write_text(json.dumps(consistent(sha)))
    run("declare", sha[:12], str(f))
    assert run("scan", "--rehash", str(tmp_path / "models"))[0] == 0
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM declarations").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM declaration_findings").fetchone() == (0,)


def test_template(tmp_path: Path, db: Path) -> None:
    code, out, _ = run("declare", "--template")
    assert code == 0
    assert out.startswith("# Training-data declaration")
    assert d.validate(yaml.safe_load(out)) == []
    sha = scanned(tmp_path)
    code, out, _ = run("declare", "--template", sha[:12], "--format", "json")
    doc = json.loads(out)
    assert doc["model"]["sha256"] == sha and len(doc["model"]["autov3"]) == 64
    assert d.validate(doc) == []


def test_check_only_and_usage_errors(tmp_path: Path, db: Path) -> None:
    code, out, _ = run("declare", "--check", str(EXAMPLES / "complete.yaml"))
    assert code == 0
    sha = d.load_declaration(EXAMPLES / "complete.yaml").sha256
    assert out == f"{EXAMPLES / 'complete.yaml'}: valid (schema 1.0, sha256:{sha})\n"
    assert run("declare", "--check", str(EXAMPLES / "minimal.json"))[0] == 0
    code, _, err = run("declare", "somemodel")
    assert code == 2 and "give a model REF and a declaration FILE" in err
    code, _, err = run("declare", "--check", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read" in err
    f = tmp_path / "d.json"
    f.write_text(json.dumps(consistent("a" * 64)))
    code, _, err = run("declare", "nosuchmodel", str(f))
    assert code == 2 and "no registered model matches 'nosuchmodel'" in err


# -- facts from embedded metadata ---------------------------------------------------------------------


def test_facts_from_metadata() -> None:
    facts, parser = training_facts(METADATA)
    assert parser == "registry.training.parse_training_metadata"
    assert facts is not None
    assert facts.distinct_images == 19 and facts.num_train_images == 170
    assert facts.base_model_hashes.get("sha256") == BASE
    assert facts.trigger_words[0] == "ohwx"  # issue 3's parser adds folder- and tag-derived ones after it
    assert training_facts(None) == (None, "none")


def test_facts_of_dataset_config_and_reg_dirs() -> None:
    md = {
        "ss_datasets": json.dumps([{"subsets": [
            {"image_dir": "C:\\data\\img\\anya", "num_repeats": 4, "img_count": 30, "is_reg": False},
            {"image_dir": "/data/reg/woman/", "num_repeats": 1, "img_count": 100, "is_reg": True},
        ]}]),
        "ss_network_args": "{\"algo\": \"loha\"}",
        "ss_sd_model_hash": "BE9EDD61",
        "ss_new_sd_model_hash": "None",
        "ss_num_epochs": "NaN",
        "ss_epoch": "3.0",
    }
    f, _ = parse_training_metadata(md)
    assert f.datasets == [DatasetDir("anya", 4, 30, False), DatasetDir("woman", 1, 100, True)]
    assert f.network_args == {"algo": "loha"}
    assert f.base_model_hashes == {"autov1": "be9edd61"}
    assert f.epochs is None and f.epoch == 3
    reg, _ = parse_training_metadata({"ss_reg_dataset_dirs": json.dumps({"1_woman": {"n_repeats": 1, "img_count": 50}})})
    assert reg.datasets == [DatasetDir("1_woman", 1, 50, True)]


def test_real_kohya_metadata_from_the_corpus() -> None:
    import pytest

    from tests.builders import CORPUS

    header = CORPUS / "headers" / "sdxl-kohya.json"
    if not header.exists():
        pytest.skip(f"shared corpus not present ({header})")
    md = json.loads(header.read_text())["metadata"]
    facts, _ = training_facts(md)
    assert facts is not None and facts.network_module == "networks.lora" and facts.network_dim == 32
    doc = {
        "schemaVersion": "1.0",
        "model": {"sha256": "a" * 64},
        "declarant": {"name": "x"},
        "date": "2024-03-30",
        "training": {"method": "lycoris", "lycorisAlgorithm": "loha"},
        "datasets": [{"name": "s", "license": "NOASSERTION", "itemCount": 10}],
    }
    found = d.check_declaration(doc, facts=facts)
    assert [(f.rule_id, f.severity.label) for f in found] == [("declaration.method", "low")]
    assert found[0].message == "declaration says lycoris (loha); the file is lora / lora (from metadata)"


def _record_probe(db: Path, sha: str, people: tuple[float, float, float], objects: tuple[float, float, float]) -> int:
    """A probe run as the probe stores it (figures only; no samples needed for the declaration rules)."""
    with connect(db) as con:
        run_id = con.execute(
            "INSERT INTO probe_runs (blob_sha256, mode, base_ref, base_key, battery, n_prompts, n_seeds, embedder, "
            "started_at, finished_at, config, versions, device, timings, summary, skipped, notes, store_root, actor, "
            "event_hash) VALUES (?, 'lora', 'base', 'sha256:x', 'builtin', 40, 4, 'pixel:16', now(), now(), '{}', "
            "'{}', '{}', '{}', '[]', '[]', '[]', '/tmp', 'test', 'h') RETURNING id",
            [sha],
        ).fetchall()[0][0]
        for grp, (v, lo, hi) in (("people", people), ("objects", objects)):
            con.execute(
                "INSERT INTO probe_metrics VALUES (?, ?, 'concentration', ?, 'collapse', ?, ?, ?, 0.95, 10)",
                [run_id, sha, grp, v, lo, hi],
            )
    return int(run_id)


def test_no_real_persons_is_checked_against_the_probe(tmp_path: Path, db: Path) -> None:
    sha = scanned(tmp_path)
    doc = consistent(sha)
    for ds in doc["datasets"]:
        ds["depictsRealPersons"] = "no"
    f = tmp_path / "decl.yaml"
    f.write_text(yaml.safe_dump(doc))
    code, out, _ = run("declare", "anya_lora.safetensors", str(f))
    assert code == 0 and "declaration.real-persons" not in out  # no probe yet: nothing to contradict

    run_id = _record_probe(db, sha, people=(0.62, 0.55, 0.70), objects=(0.10, 0.05, 0.15))
    code, out, _ = run("declare", "--recheck", "anya_lora.safetensors")
    assert code == 0, out
    assert (
        "HIGH     declaration.real-persons: declaration says the data depicts no real persons; the probe found 1 person"
        in out
    )
    with connect(db, read_only=True) as con:
        ev = con.execute(
            "SELECT evidence FROM declaration_contradictions WHERE rule_id = 'declaration.real-persons'"
        ).fetchall()
    subjects = json.loads(ev[0][0])["probe_subjects"]
    assert subjects == [
        {
            "kind": "person",
            "score": 0.55,
            "threshold": 0.45,
            "label": f"probe run #{run_id}: people prompts collapse 0.62 [0.55, 0.70] (neutral objects 0.10)",
        }
    ]


def test_a_weak_probe_concentration_is_no_contradiction(tmp_path: Path, db: Path) -> None:
    sha = scanned(tmp_path)
    doc = consistent(sha)
    for ds in doc["datasets"]:
        ds["depictsRealPersons"] = "no"
    f = tmp_path / "decl.yaml"
    f.write_text(yaml.safe_dump(doc))
    _record_probe(db, sha, people=(0.30, 0.20, 0.40), objects=(0.28, 0.2, 0.35))
    code, out, _ = run("declare", "anya_lora.safetensors", str(f))
    assert code == 0 and "declaration.real-persons" not in out
