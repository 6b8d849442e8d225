from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from registry.evidence import bom
from registry.evidence.canonical import build_record
from registry.store.db import connect
from tests.evidence.registry_fixture import make_registry
from tests.evidence.test_canonical import FakeSection

DECLARATION = {
    "current": {
        "sha256": "ee" * 32,
        "document": {
            "datasets": [
                {
                    "name": "portraits",
                    "description": "studio photographs",
                    "sources": [{"url": "https://example.com/portraits"}],
                    "license": {"spdx": "CC-BY-4.0"},
                    "item_count": 40,
                    "content_categories": ["photographs of real people"],
                    "manifest_sha256": "aa" * 32,
                },
                {"name": "sketches", "license": "proprietary"},
            ]
        },
    },
    "contradictions": [{"rule_id": "declaration.image-count", "message": "declared 40 images; the metadata says 10"}],
}
TRAINING = {
    "trainer": "kohya-ss/sd-scripts",
    "network_dim": 4,
    "network_alpha": 2.0,
    "datasets": [
        {"name": "10_subject", "n_repeats": 10, "img_count": 10, "is_reg": False},
        {"name": "1_reg", "n_repeats": 1, "img_count": 200, "is_reg": True},
    ],
    "base_model_name": "v1-5-pruned-emaonly",
    "base_model_hashes": {"autov1": "e1441589"},
}
PROBE = {"metrics": [{"metric": "Vendi score", "off": {"value": 8.0, "ci": [7.5, 8.5]}, "on": {"value": 2.0, "ci": [1.5, 2.5]}}]}


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    fx = make_registry(tmp_path_factory.mktemp("bom"))
    sections = [
        FakeSection("identify", 20, {"kind": "lora", "architecture": "sd1"}),
        FakeSection("training", 30, TRAINING),
        FakeSection("declarations", 60, DECLARATION),
        FakeSection("probe", 80, PROBE),
    ]
    with connect(fx.db, read_only=True) as con:
        return build_record(con, fx.sha256, sections)


def test_cyclonedx_validates_and_holds_the_model_card(record: dict[str, Any]) -> None:
    doc = bom.cyclonedx_bom(record, "2024-06-01T10:00:00Z")
    text = json.dumps(doc)
    assert bom.validate_cyclonedx(text) == []
    model = doc["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert model["name"] == "some-lora.safetensors"
    assert model["hashes"][0] == {"alg": "SHA-256", "content": record["model"]["sha256"]}
    card = model["modelCard"]
    assert card["modelParameters"]["modelArchitecture"] == "lora (sd1)"
    assert card["modelParameters"]["datasets"] == [{"ref": "data-1"}, {"ref": "data-2"}, {"ref": "data-3"}]
    assert card["quantitativeAnalysis"]["performanceMetrics"][1] == {
        "type": "Vendi score", "value": "2.0", "slice": "on", "confidenceInterval": {"lowerBound": "1.5", "upperBound": "2.5"},
    }  # fmt: skip
    assert card["considerations"]["ethicalConsiderations"] == [{"name": "declared 40 images; the metadata says 10"}]
    data = [c for c in doc["components"] if c["type"] == "data"]
    assert [c["name"] for c in data] == ["portraits", "sketches", "10_subject"]  # the reg folder is not training data
    assert data[0]["data"][0]["contents"] == {"url": "https://example.com/portraits"}
    assert data[0]["licenses"] == [{"license": {"name": "CC-BY-4.0"}}]
    assert {"name": "modelreg:source", "value": "embedded metadata"} in data[2]["properties"]
    assert doc["dependencies"][0] == {"ref": f"model-sha256-{record['model']['sha256']}", "dependsOn": ["data-1", "data-2", "data-3", "base-model"]}
    assert bom.cyclonedx_bom(record, "2024-06-01T10:00:00Z") == doc  # reproducible


def test_cyclonedx_validator_rejects_a_broken_document(record: dict[str, Any]) -> None:
    doc = bom.cyclonedx_bom(record, "2024-06-01T10:00:00Z")
    doc["metadata"]["component"]["type"] = "neural-network"
    doc["metadata"]["component"]["modelCard"]["unknownField"] = 1
    errors = bom.validate_cyclonedx(json.dumps(doc))
    assert errors and any("neural-network" in e for e in errors)


def test_cyclonedx_without_sections(tmp_path: Path) -> None:
    fx = make_registry(tmp_path)
    with connect(fx.db, read_only=True) as con:
        rec = build_record(con, fx.sha256, [])
    doc = bom.cyclonedx_bom(rec, "2024-06-01T10:00:00Z")
    assert bom.validate_cyclonedx(json.dumps(doc)) == []
    assert doc["components"] == [] and "datasets" not in doc["metadata"]["component"]["modelCard"]["modelParameters"]


def test_spdx_reads_back(record: dict[str, Any], tmp_path: Path) -> None:
    doc = bom.spdx_document(record, "2024-06-01T10:00:00Z")
    path = tmp_path / "spdx.json"
    path.write_text(json.dumps(doc))
    back = bom.read_spdx(json.loads(path.read_text()))
    sha = record["model"]["sha256"]
    assert back == {
        "models": [{"name": "some-lora.safetensors", "hashes": {"sha256": sha, "blake3": record["model"]["hashes"]["blake3"]}}],
        "datasets": ["10_subject", "portraits", "sketches"],
        "trained_on": [("some-lora.safetensors", ["10_subject", "portraits", "sketches"])],
    }
    assert doc["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
    types = sorted(o["type"] for o in doc["@graph"])
    assert types.count("ai_AIPackage") == 1 and types.count("dataset_DatasetPackage") == 3
    ai = next(o for o in doc["@graph"] if o["type"] == "ai_AIPackage")
    assert ai["ai_typeOfModel"] == ["lora", "sd1"]
    assert {"type": "DictionaryEntry", "key": "network_dim", "value": "4"} in ai["ai_hyperparameter"]
    assert bom.spdx_document(record, "2024-06-01T10:00:00Z") == doc
