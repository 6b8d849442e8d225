"""modelreg dupes (issue 20): byte-identical copies, the same tensors under other metadata, renamed copies."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from cli.main import root
from tests.builders import write_safetensors


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _tensors(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"lora_unet_a.lora_down.weight": rng.standard_normal((4, 32)).astype(np.float32),
            "lora_unet_a.lora_up.weight": rng.standard_normal((32, 4)).astype(np.float32)}  # fmt: skip


def test_dupes_identical_renamed_hardlinked_and_same_tensors(tmp_path: Path, db: Path) -> None:
    m = tmp_path / "models"
    (m / "a").mkdir(parents=True)
    (m / "b").mkdir()
    orig = write_safetensors(m / "a" / "style.safetensors", _tensors(1), {"ss_output_name": "style"})
    copy = m / "b" / "style_v2_final.safetensors"
    copy.write_bytes(orig.read_bytes())
    link = m / "a" / "style_link.safetensors"
    os.link(orig, link)  # a hard link: no extra bytes on disk
    (m / "b" / "style_v2_final.civitai.info").write_text(json.dumps({"name": "v2", "model": {"name": "Great Style"}}))
    (m / "a" / "style.json").write_text(json.dumps({"activation text": "stl"}))  # A1111 metadata, no name
    # the same tensors, other metadata: a different file with the same AutoV3
    edited = write_safetensors(m / "b" / "style_edited.safetensors", _tensors(1), {"ss_output_name": "mine", "x": "1"})
    other = write_safetensors(m / "b" / "unrelated.safetensors", _tensors(2))
    code, _, err = run("scan", str(m))
    assert code == 0, err

    code, out, err = run("dupes", str(m), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    size = orig.stat().st_size
    sha = hashlib.sha256(orig.read_bytes()).hexdigest()
    assert doc["files"] == 7 and doc["stale"] == 0  # scan registers every file, the two sidecars too
    # three paths, two distinct stored copies (the hard link shares its bytes): one copy's bytes to reclaim
    assert doc["reclaimable_bytes"] == size
    ident, same = doc["groups"]
    assert (ident["kind"], ident["key"], ident["n_copies"], ident["distinct_storage"], ident["renamed"]) == (
        "identical", f"sha256:{sha}", 3, 2, True
    )
    by_name = {c["name"]: c for c in ident["copies"]}
    assert set(by_name) == {"style.safetensors", "style_link.safetensors", "style_v2_final.safetensors"}
    assert [c["hard_link_of_another_copy"] for c in ident["copies"]].count(True) == 1
    assert by_name["style_v2_final.safetensors"]["sidecars"] == [
        {"kind": "civitai-info", "file": "style_v2_final.civitai.info", "claims_name": "Great Style v2"}
    ]
    assert by_name["style.safetensors"]["sidecars"] == [{"kind": "a1111-json", "file": "style.json", "claims_name": None}]
    assert same["kind"] == "same-tensors" and same["reclaimable_bytes"] == 0
    assert {c["name"] for c in same["copies"]} >= {"style.safetensors", "style_edited.safetensors"}
    assert "unrelated.safetensors" not in {c["name"] for g in doc["groups"] for c in g["copies"]}
    assert same["metadata_keys"] == ["ss_output_name", "x"]
    assert "1 groups of byte-identical files, " + f"{size:,} bytes reclaimable" in err

    # restricted to one folder: no duplicates there but the same-tensors pair
    code, out, _ = run("dupes", str(m / "b"), "--format", "json")
    groups = json.loads(out)["groups"]
    assert [g["kind"] for g in groups] == ["same-tensors"]
    assert {c["name"] for c in groups[0]["copies"]} == {"style_v2_final.safetensors", "style_edited.safetensors"}

    # a file changed since its scan is left out and counted, never reported from stale knowledge
    edited.write_bytes(other.read_bytes() + b"")
    os.utime(edited, ns=(1, 1))
    code, out, err = run("dupes", str(m), "--format", "json")
    assert json.loads(out)["stale"] == 1 and "1 files changed or gone since their scan were left out" in err

    code, out, _ = run("dupes", str(m))
    assert code == 0 and "identical (renamed)" in out and "style_v2_final.civitai.info: 'Great Style v2'" in out


def test_dupes_none_and_bad_path(tmp_path: Path, db: Path) -> None:
    write_safetensors(tmp_path / "x.safetensors", _tensors(3))
    run("scan", str(tmp_path))
    code, out, err = run("dupes")
    assert code == 0 and out == "no duplicates\n" and "0 groups of byte-identical files, 0 bytes reclaimable" in err
    code, _, err = run("dupes", str(tmp_path / "nope"))
    assert code == 2 and "no such file or folder" in err
