"""modelreg audit, scan hf://, and the provenance section, end to end through the CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import duckdb
import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import root
from registry.audit import companion_kind, hf_cache_root_of, is_other_text
from tests.builders import safetensors_bytes, write_safetensors
from tests.hf_fixtures import FakeCivitai, FakeHub, FakeRepo, add_cache_file, no_proxy

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
C1 = "c" * 40


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _w(seed: int, n: int = 16) -> dict[str, np.ndarray]:
    return {"lora_down.weight": np.random.default_rng(seed).standard_normal((4, n)).astype(np.float16)}


def build_world(tmp: Path) -> dict[str, Path]:
    """A home with a ComfyUI install (sidecars, previews, placeholder), an A1111 install whose pickled
    hash cache must never be opened, and a Hugging Face cache with one altered blob."""
    home = tmp / "home"
    comfy = home / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    loras = comfy / "models" / "loras"
    good = write_safetensors(loras / "good.safetensors", _w(1), {"ss_network_dim": "4"})
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    (loras / "good.civitai.info").write_text(
        json.dumps(
            {
                "id": 7,
                "modelId": 3,
                "name": "v2",
                "baseModel": "SD 1.5",
                "trainedWords": ["sks"],
                "model": {"name": "Good LoRA", "type": "LORA", "nsfw": False, "poi": False},
                "files": [{"name": "good.safetensors", "primary": True, "hashes": {"SHA256": sha.upper(), "AutoV2": sha[:10].upper()}}],
            }
        )
    )
    (loras / "good.preview.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    other = write_safetensors(loras / "other.safetensors", _w(2))
    (loras / "other.cm-info.json").write_text(json.dumps({"ModelName": "Claimed", "VersionName": "v1", "Hashes": {"SHA256": "AB" * 32}}))
    (loras / "put_loras_here").write_bytes(b"")
    # a "model" that is a saved web page: named like a model, so always scanned
    (comfy / "models" / "checkpoints").mkdir(parents=True)
    (comfy / "models" / "checkpoints" / "sdxl.safetensors").write_text("<!DOCTYPE html><html>Sign in</html>")
    sd = home / "stable-diffusion-webui"
    (sd / "models" / "Lora").mkdir(parents=True)
    (sd / "webui.py").write_text("# not run\n")
    write_safetensors(sd / "models" / "Lora" / "a1111.safetensors", _w(3))
    (sd / "cache" / "hashes").mkdir(parents=True)
    # a pickled cache that would run code if loaded; the audit must never open it
    (sd / "cache" / "hashes" / "cache.db").write_bytes(b"\x80\x04cposix\nsystem\n(S'touch PWNED'\ntR.")
    cache = tmp / "hfhome" / "hub"
    w = safetensors_bytes(_w(4))
    add_cache_file(cache, "org/lora", C1, "lora.safetensors", w)
    add_cache_file(cache, "org/lora", C1, "README.md", b"---\nlicense: mit\n---\n", lfs=False)
    altered = add_cache_file(cache, "org/lora", C1, "unet/diffusion.safetensors", safetensors_bytes(_w(5)))
    data = bytearray(altered.resolve().read_bytes())
    data[-2] ^= 0x55
    altered.resolve().write_bytes(bytes(data))
    (cache / "models--org--lora" / "blobs" / ("9" * 64 + ".incomplete")).write_bytes(b"partial")
    return {"home": home, "comfy": comfy, "loras": loras, "good": good, "other": other, "sd": sd, "cache": cache, "altered": altered}


def snapshot_tree(*roots: Path) -> dict[str, tuple[str, int, int]]:
    out = {}
    for root_ in roots:
        for dirpath, _dirs, files in os.walk(root_):
            for name in files:
                p = Path(dirpath) / name
                st = p.lstat()
                digest = hashlib.sha256(os.readlink(p).encode() if p.is_symlink() else p.read_bytes()).hexdigest()
                out[str(p)] = (digest, st.st_mtime_ns, st.st_size)
    return out


@pytest.fixture
def world(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return world_at_home(tmp_path, monkeypatch)


def world_at_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """:func:`build_world`, with HOME pointed at its home and no other model-folder setting in force."""
    w = build_world(tmp_path)
    monkeypatch.setenv("HOME", str(w["home"]))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    monkeypatch.setenv("MODELREG_CONFIG", str(tmp_path / "no-config.yaml"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "INVOKEAI_ROOT", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return w


def test_helpers() -> None:
    assert hf_cache_root_of("/h/hub/models--o--r/snapshots/abc/x.bin") == (Path("/h/hub"), "models--o--r")
    assert hf_cache_root_of("/h/hub/.locks/models--o--r/abc.lock") == (Path("/h/hub"), "models--o--r")
    assert hf_cache_root_of("/h/models--o--r.safetensors") is None
    stems = {"x"}
    assert companion_kind("x.civitai.info", stems) == "sidecar"
    assert companion_kind("x.preview.png", stems) == "image"
    assert companion_kind("x.json", stems) == "sidecar"  # A1111's user metadata (issue 20)
    assert companion_kind("x.txt", stems) == "text"
    assert companion_kind("y.json", stems) is None


def test_is_other_text(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("hello\n")
    (tmp_path / "x.safetensors").write_text("hello\n")
    (tmp_path / "page.txt").write_text("<!DOCTYPE html><html></html>")
    (tmp_path / "bin").write_bytes(b"\x80\x04\x95")
    (tmp_path / "p0").write_bytes(b"cposix\nsystem\n(S'touch PWNED'\ntR.")
    (tmp_path / "p0b").write_bytes(b"(iposix\nsystem\nS'x'\nb.")
    (tmp_path / "notes.md").write_text("# Notes\ncopy the file.\n")
    assert is_other_text(str(tmp_path / "README"), 6)
    assert not is_other_text(str(tmp_path / "x.safetensors"), 6)
    assert not is_other_text(str(tmp_path / "page.txt"), 28)
    assert not is_other_text(str(tmp_path / "bin"), 3)
    assert not is_other_text(str(tmp_path / "p0"), 33)
    assert not is_other_text(str(tmp_path / "p0b"), 26)
    assert is_other_text(str(tmp_path / "notes.md"), 24)


def test_audit_discovers_places_and_reports(world: dict[str, Path], db: Path) -> None:
    before = snapshot_tree(world["home"], world["cache"].parent)
    code, out, err = run("audit", "--format", "json")
    # every searched place is on stderr, marked found or absent
    assert f"found   hf-cache  {world['cache']}  (HF_HOME)" in err
    assert f"found   comfyui   {world['comfy'] / 'models'}" in err
    assert f"found   a1111     {world['sd'] / 'models' / 'Lora'}" in err
    assert f"absent  a1111     {world['sd'] / 'models' / 'Stable-diffusion'}" in err
    assert "absent  invokeai" in err and "absent  swarmui" in err and "absent  fooocus" in err
    rows = json.loads(out)
    got = sorted((r["severity"], r["rule_id"], Path(r["path"]).name) for r in rows)
    assert got == [
        ("high", "file.html-page", "sdxl.safetensors"),
        ("high", "hf-cache.blob-mismatch", "diffusion.safetensors"),
        ("low", "hf-cache.incomplete-download", "9" * 64 + ".incomplete"),
        ("medium", "sidecar.hash-mismatch", "other.safetensors"),
    ]
    # most severe first
    assert [r["severity"] for r in rows] == ["high", "high", "medium", "low"]
    assert code == 1  # high findings, default --fail-on high
    assert "audited: 6 files, 6 new, 0 unchanged, 3 in the Hugging Face cache, 1 of them text files verified only" in err
    assert "3 sidecars/previews, 1 other text/empty files not scanned" in err
    # nothing audited was modified, and the pickled A1111 cache was never touched (its atime aside)
    after = snapshot_tree(world["home"], world["cache"].parent)
    assert after == before
    assert not (world["sd"] / "PWNED").exists() and not Path("PWNED").exists()
    with duckdb.connect(str(db), read_only=True) as con:
        paths = {r[0] for r in con.execute("SELECT path FROM sightings").fetchall()}
        assert not any("cache.db" in p or "webui.py" in p for p in paths)
        prov = con.execute(
            "SELECT source, CAST(provenance AS VARCHAR) FROM sightings WHERE path LIKE '%lora.safetensors' AND path LIKE '%snapshots%'"
        ).fetchall()
        assert prov[0][0] == "hf-cache"
        p = json.loads(prov[0][1])
        assert (p["repo_id"], p["revision"], p["file"], p["refs"]) == ("org/lora", C1, "lora.safetensors", ["main"])
        downloads = con.execute("SELECT repo_id, revision, file FROM hf_downloads ORDER BY file").fetchall()
        assert downloads == [("org/lora", C1, "lora.safetensors"), ("org/lora", C1, "unet/diffusion.safetensors")]
        assert con.execute("SELECT count(*) FROM sidecars").fetchone() == (2,)
        claims = con.execute("SELECT kind, verdict, name, version_name, base_model, trained_words FROM sidecar_claims ORDER BY kind").fetchall()
        assert claims == [("civitai-info", "match", "Good LoRA", "v2", "SD 1.5", ["sks"]), ("cm-info", "mismatch", "Claimed", "v1", None, [])]


def test_show_says_where_it_was_downloaded_from(world: dict[str, Path], db: Path) -> None:
    run("audit", "--exit-zero")
    lora = world["cache"] / "models--org--lora" / "snapshots" / C1 / "lora.safetensors"
    sha = hashlib.sha256(lora.read_bytes()).hexdigest()
    code, out, _ = run("show", sha)
    assert code == 0
    assert f"downloaded from org/lora at commit {C1[:12]} (main), file lora.safetensors" in out
    code, out, _ = run("show", str(world["good"]))
    assert "sidecar good.civitai.info claims 'Good LoRA' 'v2', base model SD 1.5, trained words: sks; its hashes match this file" in out
    code, out, _ = run("show", "--format", "json", str(world["good"]))
    rec = json.loads(out)
    assert rec["provenance"]["sidecars"][0]["verdict"] == "match"


def test_exit_codes(world: dict[str, Path], db: Path) -> None:
    loras = str(world["loras"])
    code, _, err = run("audit", loras)
    assert code == 0 and "1 medium" in err  # the sidecar mismatch is medium; default --fail-on is high
    code, _, _ = run("audit", loras, "--fail-on", "medium")
    assert code == 1
    code, _, _ = run("audit", loras, "--fail-on", "medium", "--exit-zero")
    assert code == 0
    code, _, err = run("audit", loras, "--fail-on", "nonsense")
    assert code == 2 and "Invalid value for '--fail-on'" in err
    # a registry that cannot be opened is a runtime failure: one line, exit 3
    bad = world["home"] / "not-a-db.duckdb"
    bad.write_bytes(b"this is not a DuckDB file" * 200)
    code, _, err = run("--db", str(bad), "audit", loras)
    assert code == 3 and err.startswith("modelreg: ")


def test_sarif_output_is_valid(world: dict[str, Path]) -> None:
    code, out, _ = run("audit", "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    run_ = log["runs"][0]
    results = {(r["ruleId"], r["level"]) for r in run_["results"]}
    assert ("hf-cache.blob-mismatch", "error") in results and ("sidecar.hash-mismatch", "warning") in results
    assert run_["invocations"][0]["exitCode"] == code == 1
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run_["results"]}
    assert (world["other"]).as_uri() in uris


def test_second_audit_is_incremental_and_sidecar_changes_are_read(world: dict[str, Path], db: Path) -> None:
    loras = str(world["loras"])
    run("audit", loras)
    code, out, err = run("audit", loras, "--format", "jsonl")
    assert "audited: 2 files, 0 new, 2 unchanged" in err
    assert [json.loads(x)["rule_id"] for x in out.splitlines()] == ["sidecar.hash-mismatch"]
    # fix the sidecar: the finding goes away, and the claim is re-read once
    sha = hashlib.sha256(world["other"].read_bytes()).hexdigest()
    side = world["loras"] / "other.cm-info.json"
    side.write_text(json.dumps({"ModelName": "Claimed", "Hashes": {"SHA256": sha}}))
    code, out, err = run("audit", loras, "--format", "jsonl", "--fail-on", "info")
    assert out == "" and code == 0
    with duckdb.connect(str(db), read_only=True) as con:
        verdicts = con.execute("SELECT verdict FROM sidecar_claims WHERE sidecar_path = ?", [str(side)]).fetchall()
        assert verdicts == [("match",)]
        n = con.execute("SELECT count(*) FROM findings WHERE rule_id LIKE 'sidecar.%'").fetchone()
        assert n == (0,)
        actions = [r[0] for r in con.execute("SELECT action FROM events ORDER BY seq").fetchall()]
        assert actions.count("audit.run") == 3 and actions.count("sidecar.read") == 3


def test_audit_an_install_root_walks_only_its_model_folders(world: dict[str, Path], db: Path) -> None:
    code, _, err = run("audit", str(world["sd"]), "--format", "json")
    assert code == 0 and "audited: 1 files, 1 new" in err


def test_audit_inside_the_hf_cache_restricts_to_that_repo(world: dict[str, Path], db: Path) -> None:
    add_cache_file(world["cache"], "org/other", C1, "x.safetensors", safetensors_bytes(_w(9)))
    code, out, err = run("audit", str(world["cache"] / "models--org--other"), "--format", "jsonl", "--fail-on", "info")
    assert code == 0 and out == "" and "audited: 1 files, 1 new, 0 unchanged, 1 in the Hugging Face cache" in err


def test_civitai_lookup_during_audit(world: dict[str, Path], db: Path) -> None:
    sha = hashlib.sha256(world["good"].read_bytes()).hexdigest()
    version = {"id": 7, "modelId": 3, "name": "v2", "baseModel": "SD 1.5", "model": {"name": "Good LoRA", "type": "LORA", "poi": True}}
    with no_proxy(), FakeCivitai({sha: version}) as civ:
        code, out, err = run("audit", str(world["loras"]), "--civitai", "--civitai-url", civ.url, "--format", "jsonl")
        assert "2 Civitai lookups" in err
        rules = sorted(json.loads(x)["rule_id"] for x in out.splitlines())
        assert rules == ["civitai.real-person", "sidecar.hash-mismatch"]
        code, _, err = run("audit", str(world["loras"]), "--civitai", "--civitai-url", civ.url)
        assert "Civitai lookups" not in err  # each blob is asked once
        assert len(civ.requests) == 2
    code, out, _ = run("show", sha)
    assert "civitai (" in out and "says 'Good LoRA' 'v2' (LORA, base SD 1.5, depicts a real person (POI))" in out
    assert f"{civ.url}/api/v1/model-versions/by-hash/{sha.upper()}" in out


def test_scan_hf_catalogs_and_show_links_local_copy(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = safetensors_bytes(_w(11), {"ss_network_dim": "4"})
    commit = "d" * 40
    repo = FakeRepo("org/lora", commit, {"lora.safetensors": weights, "README.md": b"hi\n"}, card={"license": "mit", "base_model": "runwayml/stable-diffusion-v1-5"})
    local = tmp_path / "dl" / "lora.safetensors"
    local.parent.mkdir()
    local.write_bytes(weights)
    with no_proxy(), FakeHub([repo]) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, out, err = run("scan", "hf://org/lora", str(local.parent))
        assert code == 0, err
        sha = hashlib.sha256(weights).hexdigest()
        assert f"sha256:{sha[:16]}…" in out and "1 tensors" in out
        assert (
            f"catalogued: hf://org/lora@{commit} ({hub.url}/org/lora/tree/{commit}): 2 files, 1 safetensors headers read "
            "by range requests, no weights downloaded; license mit; base model runwayml/stable-diffusion-v1-5; 0 findings"
        ) in out
        assert "scanned: 1 files, 1 new" in out
        code, _, err = run("scan", "hf://org/missing")
        assert code == 2 and "hf://org/missing" in err  # NotFound is a usage error
    code, out, _ = run("show", sha)
    assert f"published on the Hub as org/lora at commit {commit[:12]}, file lora.safetensors  ({hub.url}/org/lora/resolve/{commit}/lora.safetensors" in out
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT source, url, found, CAST(data AS VARCHAR) FROM remote_observations").fetchone()
        assert row is not None and row[0] == "hf-hub" and row[1] == f"{hub.url}/api/models/org/lora/revision/{commit}"
        assert json.loads(row[3])["card"]["license"] == "mit"
        hub_row = con.execute("SELECT path, sha256, n_tensors, CAST(metadata AS VARCHAR) FROM hub_files WHERE sha256 IS NOT NULL").fetchone()
        assert hub_row == ("lora.safetensors", sha, 1, '{"ss_network_dim": "4"}')


def test_shared_blob_store_is_reached_through_snapshots_only(tmp_path: Path, db: Path) -> None:
    """huggingface_hub's cache-wide store (<cache>/blobs/<2 hex>/<hash>, marked) holds the bytes; repo
    blobs link to it. Its files are audited once, through the snapshot links, with provenance."""
    cache = tmp_path / "hub"
    data = safetensors_bytes(_w(21))
    sha = hashlib.sha256(data).hexdigest()
    store = cache / "blobs"
    (store / "ab").mkdir(parents=True)
    (store / ".huggingface-shared-blobs").write_text("1\n")
    (store / "ab" / ("ab" + "0" * 62)).write_bytes(data)
    repo_blob = cache / "models--org--shared" / "blobs" / sha
    repo_blob.parent.mkdir(parents=True)
    os.symlink(os.path.relpath(store / "ab" / ("ab" + "0" * 62), repo_blob.parent), repo_blob)
    snap = cache / "models--org--shared" / "snapshots" / C1 / "m.safetensors"
    snap.parent.mkdir(parents=True)
    os.symlink(os.path.relpath(repo_blob, snap.parent), snap)
    (cache / "models--org--shared" / "refs").mkdir()
    (cache / "models--org--shared" / "refs" / "main").write_text(C1)
    code, out, err = run("audit", str(cache), "--format", "jsonl", "--fail-on", "info")
    assert (code, out) == (0, ""), err
    assert "audited: 1 files, 1 new, 0 unchanged, 1 in the Hugging Face cache" in err
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT path, source, blob_sha256 FROM sightings").fetchall()
    assert rows == [(str(snap.parent.resolve() / snap.name), "hf-cache", sha)]


def test_audit_real_files_from_the_corpus(tmp_path: Path, db: Path) -> None:
    from tests.builders import CORPUS

    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not present at {CORPUS}")
    import shutil

    models = tmp_path / "models" / "loras"
    models.mkdir(parents=True)
    for rel in ("loras/analog_svd_rank4.safetensors", "pickles/unsafe_zip_pytorch.pt", "embeddings/test_embedding.safetensors"):
        shutil.copy2(CORPUS / rel, models / Path(rel).name)
    before = snapshot_tree(models)
    code, out, err = run("audit", str(models), "--format", "json", "--fail-on", "medium")
    rows = json.loads(out)
    by_file: dict[str, list[str]] = {}
    for r in rows:
        by_file.setdefault(Path(r["path"]).name, []).append(r["severity"])
    # the malicious pickle is reported at medium or above (never executed); the real safetensors are clean
    assert any(s in ("medium", "high", "critical") for s in by_file["unsafe_zip_pytorch.pt"])
    assert "analog_svd_rank4.safetensors" not in by_file or all(s in ("info", "low") for s in by_file["analog_svd_rank4.safetensors"])
    assert code == 1 and "audited: 3 files, 3 new" in err
    assert snapshot_tree(models) == before


def test_audit_flags_a_sidecar_base_model_the_shapes_contradict(tmp_path: Path, db: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "models" / "loras" / "portrait_style_v1.safetensors"
    loras = tmp_path / "loras"
    loras.mkdir()
    model = loras / "portrait.safetensors"
    model.write_bytes(example.read_bytes())  # an SD 1.x LoRA by its shapes
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    (loras / "portrait.civitai.info").write_text(
        json.dumps({"name": "v1", "baseModel": "Pony", "model": {"name": "Portrait"},
                    "files": [{"name": "portrait.safetensors", "hashes": {"SHA256": sha.upper()}}]})  # fmt: skip
    )
    code, out, _ = run("audit", str(loras), "--format", "jsonl", "--exit-zero")
    assert code == 0
    rows = [json.loads(x) for x in out.splitlines()]
    [r] = [r for r in rows if r["rule_id"] == "sidecar.base-model-mismatch"]
    assert r["message"] == "portrait.civitai.info says the base model is 'Pony' (sdxl); the tensor shapes say sd1"


def test_audit_reads_a1111_user_metadata(tmp_path: Path, db: Path) -> None:
    """Issue 20: ``<stem>.json`` beside a LoRA is A1111's user metadata; its "sd version" is checked against
    the shapes, and JSON that is not A1111's is neither a finding nor a claim."""
    example = Path(__file__).resolve().parent.parent / "examples" / "models" / "loras" / "portrait_style_v1.safetensors"
    loras = tmp_path / "Lora"
    loras.mkdir()
    (loras / "portrait.safetensors").write_bytes(example.read_bytes())  # SD 1.x by its shapes
    (loras / "portrait.json").write_text(json.dumps({"sd version": "SDXL", "activation text": "prt style", "preferred weight": 0.7}))
    (loras / "other.safetensors").write_bytes(example.read_bytes()[:-8] + b"\0" * 8)
    (loras / "other.json").write_text(json.dumps({"some": "config"}))
    code, out, err = run("audit", str(loras), "--format", "jsonl", "--exit-zero")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [(r["rule_id"], r["message"]) for r in rows if r["rule_id"].startswith("sidecar.")] == [
        ("sidecar.base-model-mismatch", "portrait.json says the base model is 'SDXL' (sdxl); the tensor shapes say sd1")
    ]
    with duckdb.connect(str(db), read_only=True) as con:
        claims = con.execute("SELECT kind, verdict, base_model, trained_words, json_extract(claims, '$.preferred_weight') FROM sidecar_claims").fetchall()
    assert claims == [("a1111-json", "no-hashes", "SDXL", ["prt style"], "0.7")]


def test_failed_civitai_lookups_are_reported_and_asked_again(world: dict[str, Path], db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: lookups that got no answer are not stored as "not found" (status 0) silently: stderr says
    so, the observation has no status and no found value, and the next run asks again."""
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    loras = str(world["loras"])
    with no_proxy():
        code, _, err = run("audit", loras, "--civitai", "--civitai-url", "http://127.0.0.1:9")
    assert "1 Civitai lookups" in err  # the first got no connection; the second was not tried
    assert "modelreg: Civitai: 1 lookups got no answer (cannot reach Civitai: " in err
    assert "after 4 tries), 1 not tried after that; they are asked again on the next --civitai run" in err
    assert [s for s in slept if s >= 1] == [1.0, 2.0, 4.0]  # backoff (the rest: the rate limit's spacing)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT status, found, json_extract_string(data, '$.error') FROM remote_observations").fetchall()
    assert len(rows) == 1 and rows[0][:2] == (None, None) and rows[0][2].startswith("cannot reach Civitai")
    sha = hashlib.sha256(world["good"].read_bytes()).hexdigest()
    with no_proxy(), FakeCivitai({sha: {"id": 7, "modelId": 3, "name": "v2", "model": {"name": "Good LoRA"}}}) as civ:
        code, _, err = run("audit", loras, "--civitai", "--civitai-url", civ.url)
        assert "2 Civitai lookups" in err and "got no answer" not in err
        code, _, err = run("audit", loras, "--civitai", "--civitai-url", civ.url)
        assert "Civitai lookups" not in err and len(civ.requests) == 2  # answered (found or 404): not asked again


def test_offline_and_civitai_is_a_usage_error(world: dict[str, Path], db: Path) -> None:
    code, _, err = run("audit", str(world["loras"]), "--civitai", "--offline")
    assert code == 2 and "--offline forbids the network" in err
    code, _, err = run("audit", str(world["loras"]), "--offline", "--exit-zero")
    assert code == 0 and "Civitai" not in err
