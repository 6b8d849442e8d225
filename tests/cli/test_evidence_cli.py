"""The exhibit, verify, export and log commands, run through click."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import root
from registry.store.db import connect
from tests.builders import write_safetensors
from tests.evidence.registry_fixture import lora_tensors
from tests.evidence.test_exhibit import PDF

PDF_ARGS = [] if PDF else ["--no-pdf"]


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def scanned(tmp_path: Path, db: Path) -> Path:
    model = write_safetensors(tmp_path / "m" / "my-lora.safetensors", lora_tensors(), {"ss_network_dim": "4"})
    code, _, err = run("scan", str(model))
    assert code == 0, err
    return model


def test_exhibit_verify_roundtrip(tmp_path: Path, db: Path, scanned: Path) -> None:
    key, out = tmp_path / "k.pem", tmp_path / "ex"
    code, stdout, stderr = run("exhibit", "my-lora.safetensors", "-o", str(out), "--key", str(key), "--generate-key", *PDF_ARGS)
    assert code == 0, stderr
    assert re.search(r"created signing key .*k\.pem \(ECDSA secp256r1, fingerprint [0-9a-f]{64}\)", stderr)
    assert stdout.startswith(f"exhibit written to {out}: registry exhibit number 1 (numbered across all models), "
                             "for the model file with SHA-256 ")
    assert ("    report.pdf\n" in stdout) == PDF and "    model.sig\n" in stdout
    assert re.search(r"^  MANIFEST sha256:[0-9a-f]{64}$", stdout, re.M)
    assert (os.stat(key).st_mode & 0o777) == 0o600

    code, stdout, _ = run("verify", str(out), "--model", str(scanned))
    assert code == 0
    lines = stdout.splitlines()
    assert [ln.split()[0:2] for ln in lines[:-1]] == [
        ["PASS", "manifest"], ["PASS", "signature"], ["PASS", "envelope"], ["PASS", "record"], ["PASS", "record"],
        ["PASS", "metadata"], ["PASS" if PDF else "SKIP", "report"], ["PASS", "model"], ["PASS", "model"],
    ]  # fmt: skip
    assert lines[-1] == "exhibit verified"

    # issuing was recorded: table row, view, section and event
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT sha256, signer_method, record_sha256 FROM model_exhibits").fetchall()
        ev = con.execute("SELECT action, payload->>'record_sha256' FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    env = json.loads((out / "envelope.json").read_bytes())
    assert rows == [(env["model_sha256"], "ecdsa-key", env["record_sha256"])]
    assert ev == ("exhibit.issue", env["record_sha256"])
    code, stdout, _ = run("show", "my-lora.safetensors")
    assert "Exhibits issued" in stdout and str(out.resolve()) in stdout

    # a changed byte fails, exit 1
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    raw = bytearray((bad / "record.json").read_bytes())
    raw[10] ^= 1
    (bad / "record.json").write_bytes(bytes(raw))
    code, stdout, _ = run("verify", str(bad))
    assert code == 1
    assert "FAIL  manifest" in stdout and re.search(r"record\.json: MANIFEST lists SHA-256 [0-9a-f]{64}, found [0-9a-f]{64}", stdout)
    assert stdout.splitlines()[-1] == "exhibit FAILED verification"

    code, stdout, _ = run("verify", str(out), "--format", "json")
    assert code == 0 and json.loads(stdout)["ok"] is True


def test_second_exhibit_cites_the_first(tmp_path: Path, db: Path, scanned: Path) -> None:
    key = tmp_path / "k.pem"
    assert run("exhibit", "my-lora.safetensors", "-o", str(tmp_path / "a"), "--key", str(key), "--generate-key", "--no-pdf")[0] == 0
    assert run("exhibit", "my-lora.safetensors", "-o", str(tmp_path / "b"), "--key", str(key), "--no-pdf")[0] == 0
    a = json.loads((tmp_path / "a" / "record.json").read_bytes())
    b = json.loads((tmp_path / "b" / "record.json").read_bytes())
    assert [e["action"] for e in b["events"]["entries"]][-1] == "exhibit.issue"
    assert b["events"]["chain_length"] == a["events"]["chain_length"] + 1
    assert b["sections"]["exhibits"][0]["record_sha256"] == json.loads((tmp_path / "a" / "envelope.json").read_bytes())["record_sha256"]
    assert not (tmp_path / "a" / "report.pdf").exists()
    assert "Exhibits issued earlier for this model" in (tmp_path / "b" / "report.html").read_text()
    # the record as of now also cites b's issue event, which was appended after b's record was built
    code, stdout, _ = run("export", "my-lora.safetensors", "--format", "json")
    now = json.loads(stdout)
    assert now["events"]["chain_length"] == b["events"]["chain_length"] + 1


def test_exhibit_usage_errors(tmp_path: Path, db: Path, scanned: Path) -> None:
    out = tmp_path / "ex"
    out.mkdir()
    (out / "x").write_text("x")
    code, _, err = run("exhibit", "my-lora.safetensors", "-o", str(out))
    assert code == 2 and "is not empty" in err
    code, _, err = run("exhibit", "nothing-like-this", "-o", str(tmp_path / "e2"))
    assert code == 2
    code, _, err = run("exhibit", "my-lora.safetensors", "-o", str(tmp_path / "e3"), "--key", str(tmp_path / "missing.pem"))
    assert code == 2 and "cannot read signing key" in err
    code, _, err = run("verify", str(tmp_path / "no-such-dir"))
    assert code == 2


def test_export_formats(tmp_path: Path, db: Path, scanned: Path) -> None:
    from registry.evidence import bom

    code, stdout, _ = run("export", "my-lora.safetensors", "--format", "cyclonedx")
    assert code == 0 and bom.validate_cyclonedx(stdout) == []
    doc = json.loads(stdout)
    assert doc["metadata"]["component"]["name"] == "my-lora.safetensors"
    code, stdout, _ = run("export", "my-lora.safetensors", "--format", "spdx")
    back = bom.read_spdx(json.loads(stdout))
    assert back["models"][0]["name"] == "my-lora.safetensors" and back["trained_on"] == []
    out = tmp_path / "r.json"
    code, _, err = run("export", "my-lora.safetensors", "-o", str(out))
    assert code == 0 and "wrote json export" in err
    from registry.evidence.canonical import canonical_bytes

    raw = out.read_bytes()
    assert canonical_bytes(json.loads(raw)) == raw


def test_log_verify_names_the_first_broken_entry(tmp_path: Path, db: Path, scanned: Path) -> None:
    other = write_safetensors(tmp_path / "m2" / "other.safetensors", lora_tensors(seed=1))
    assert run("scan", str(other))[0] == 0
    code, stdout, _ = run("log", "--verify")
    assert code == 0 and re.fullmatch(r"chain ok: 4 events, head [0-9a-f]{64}, matches the head file \(seq 4\); blobs, sightings and findings agree with their events; the listing agrees with the records\n", stdout)
    code, stdout, _ = run("log", "my-lora.safetensors", "--format", "json")
    assert [e["action"] for e in json.loads(stdout)] == ["blob.add", "sighting.add"]

    with connect(db) as con:  # tamper: rewrite event 3's payload behind the log's back
        con.execute("""UPDATE events SET payload = '{"size": 1}' WHERE seq = 3""")
    code, stdout, stderr = run("log", "--verify")
    assert code == 1
    assert "chain BROKEN at event 3: event 3 (blob.add) was altered" in stderr

    with connect(db) as con:  # delete an earlier entry: the gap is the first break now
        con.execute("DELETE FROM events WHERE seq = 2")
    code, _, stderr = run("log", "--verify")
    assert code == 1 and "chain BROKEN at event 3: sequence jumps from 1 to 3" in stderr


def test_declared_datasets_reach_the_exports_and_the_report(tmp_path: Path, db: Path, scanned: Path) -> None:
    from registry.evidence import bom

    code, stdout, _ = run("export", "my-lora.safetensors", "--format", "json")
    sha = json.loads(stdout)["model"]["sha256"]
    decl = {
        "schemaVersion": "1.0",
        "model": {"sha256": sha},
        "declarant": {"name": "Jane Doe"},
        "date": "2025-03-14",
        "training": {"method": "lora"},
        "datasets": [
            {"name": "Landscape photographs", "license": "CC-BY-4.0", "itemCount": 24, "depictsRealPersons": "no",
             "sources": [{"url": "https://example.org/landscapes"}], "datasetSize": 1000},
            {"name": "Class images", "role": "regularization", "license": "CC0-1.0", "itemCount": 200},
        ],
    }  # fmt: skip
    (tmp_path / "decl.json").write_text(json.dumps(decl))
    code, _, err = run("declare", "my-lora.safetensors", str(tmp_path / "decl.json"))
    assert code == 0, err

    code, stdout, _ = run("export", "my-lora.safetensors", "--format", "cyclonedx")
    assert bom.validate_cyclonedx(stdout) == []
    data = [c for c in json.loads(stdout)["components"] if c["type"] == "data"]
    assert [c["name"] for c in data] == ["Landscape photographs"]  # regularisation images are not training data
    assert data[0]["licenses"] == [{"license": {"name": "CC-BY-4.0"}}]
    assert data[0]["data"][0]["contents"] == {"url": "https://example.org/landscapes"}
    assert {"name": "modelreg:item_count", "value": "24"} in data[0]["properties"]

    code, stdout, _ = run("export", "my-lora.safetensors", "--format", "spdx")
    doc = json.loads(stdout)
    back = bom.read_spdx(doc)
    assert back["trained_on"] == [("my-lora.safetensors", ["Landscape photographs"])]
    ds = next(o for o in doc["@graph"] if o["type"] == "dataset_DatasetPackage")
    assert ds["dataset_datasetSize"] == 1000 and ds["dataset_hasSensitivePersonalInformation"] == "no"
    lic = next(o for o in doc["@graph"] if o["type"] == "simplelicensing_LicenseExpression")
    assert lic["simplelicensing_licenseExpression"] == "CC-BY-4.0"

    out = tmp_path / "ex"
    assert run("exhibit", "my-lora.safetensors", "-o", str(out), "--no-pdf")[0] == 0
    html = (out / "report.html").read_text()
    assert "Training-data declaration <span class=\"note\">(section “declaration”)</span>" in html
    assert "Landscape photographs" in html
